"""The one error handler, against the in-process fake Bot API: the user hears an apology,
every admin a short report whose HTML is escaped (or Telegram would refuse it and the
admins would hear nothing)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from telegram import Chat, Message, Update, User
from telegram.ext import ApplicationBuilder

from bot import messages
from bot.alerts import AdminAlerts
from bot.bootstrap import SERVICES_KEY
from bot.handlers import errors
from tests.support.fake_bot_api import FakeBotApi

USER, ADMINS = 7, (100, 200)


async def test_a_handler_crash_apologises_to_the_user_and_reports_escaped_html() -> None:
    api = FakeBotApi()
    app = ApplicationBuilder().bot(api.bot()).updater(None).build()
    alerts = AdminAlerts(ADMINS)
    app.bot_data[SERVICES_KEY] = SimpleNamespace(alerts=alerts)
    errors.register(app)
    message = Message(
        1, dt.datetime.now(dt.UTC), Chat(USER, Chat.PRIVATE), from_user=User(USER, "U", False)
    )
    update = Update(1, message=message)
    async with app:
        alerts.attach(app.bot)
        await app.process_error(update, ValueError("<script>alert(1)</script> & more"))
    assert api.visible(USER) == [messages.INTERNAL_ERROR]
    for admin in ADMINS:
        (report,) = api.visible(admin)
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in report
        assert "<script>" not in report

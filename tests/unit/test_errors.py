"""The one error handler, against the in-process fake Bot API: the user hears an apology,
every admin a short report whose HTML is escaped (or Telegram would refuse it and the
admins would hear nothing)."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest
from telegram import Chat, Message, Update, User
from telegram.error import Conflict, NetworkError
from telegram.ext import ApplicationBuilder

from bot import messages
from bot.alerts import RECURRING_SECONDS, REPEAT_SECONDS, AdminAlerts
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_polling_errors_alert_once_per_type_per_hour_in_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PTB retries getUpdates forever (409 Conflict from a second instance, 5xx): each
    error used to page every admin, about every 30 s, with a traceback in the log."""
    api = FakeBotApi()
    app = ApplicationBuilder().bot(api.bot()).updater(None).build()
    clock = Clock()
    alerts = AdminAlerts(ADMINS, clock=clock)
    app.bot_data[SERVICES_KEY] = SimpleNamespace(alerts=alerts)
    errors.register(app)
    conflict = Conflict("terminated by other getUpdates request")
    caplog.set_level(logging.INFO, logger=errors.__name__)
    async with app:
        alerts.attach(app.bot)
        for _ in range(5):
            await app.process_error(None, conflict)
            clock.now += 30
        await app.process_error(None, NetworkError("Bad Gateway"))
        clock.now += RECURRING_SECONDS
        await app.process_error(None, conflict)
    for admin in ADMINS:
        reports = api.visible(admin)
        assert [report.count("Conflict") > 0 for report in reports] == [True, False, True]
    records = [r for r in caplog.records if r.name == errors.__name__]
    assert len(records) == 7
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records)


async def test_the_same_report_is_not_repeated_within_minutes() -> None:
    api = FakeBotApi()
    clock = Clock()
    alerts = AdminAlerts(ADMINS, clock=clock)
    alerts.attach(api.bot())
    for text in ("job 1 crashed", "job 1 crashed", "job 2 crashed"):
        await alerts.report(text)
    clock.now += REPEAT_SECONDS
    await alerts.report("job 1 crashed")
    assert api.visible(ADMINS[0]) == [f"⚠️ job {n} crashed" for n in (1, 2, 1)]

"""The loopback Bot API emulator, driven by real python-telegram-bot 22.8 bots."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.support.telegram_emulator import BotApiEmulator, WaitTimeout, detect_entities, parse_html

USER = 4242
OTHER_USER = 5151
GROUP = -100777
VOICE_BYTES = b"OggS" + bytes(range(256)) * 8
WAIT = 10.0
SUBPROCESS_WAIT = 30.0  # a cold interpreter importing PTB on a loaded 2-core machine


@pytest.fixture
def emu() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emulator:
        yield emulator


def build_app(emu: BotApiEmulator, errors: list[object]) -> Application:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(update.effective_message.text, do_quote=True)

    async def voice_length(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        data = await (await message.voice.get_file()).download_as_bytearray()
        await message.reply_text(f"{len(data)} byte")

    async def progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        status = await update.effective_message.reply_text("In coda…")
        await status.edit_text("Trascrizione: 50%")
        await status.edit_text("<b>Fatto</b> &amp; finito", parse_mode="HTML")

    async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_document(
            "ciao è già\n".encode(), filename="trascrizione.txt", caption="Testo completo"
        )

    async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Sì, cancella", callback_data="forget:yes")]]
        )
        await update.effective_message.reply_text("Sicuro?", reply_markup=keyboard)

    async def confirmed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("Fatto")
        await update.callback_query.edit_message_text("Dati cancellati.")

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(context.error)

    app = (
        ApplicationBuilder()
        .token(emu.token)
        .base_url(emu.api_url)
        .base_file_url(emu.file_url)
        .build()
    )
    app.add_handler(CommandHandler("progress", progress))
    app.add_handler(CommandHandler("doc", document))
    app.add_handler(CommandHandler("forget", forget))
    app.add_handler(CallbackQueryHandler(confirmed, pattern="^forget:"))
    app.add_handler(MessageHandler(filters.VOICE, voice_length))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_error_handler(on_error)
    return app


@pytest.fixture
async def polling_bot(emu: BotApiEmulator) -> AsyncIterator[list[object]]:
    """A PTB Application polling the emulator in the test's loop; yields its error list."""
    errors: list[object] = []
    app = build_app(emu, errors)
    await app.initialize()
    await app.start()
    # Errors of the polling loop itself (e.g. an unparsable getUpdates answer) land here too.
    await app.updater.start_polling(poll_interval=0, error_callback=errors.append)
    yield errors
    await app.updater.stop()
    await app.stop()
    await app.shutdown()
    assert errors == []


async def test_polling_bot_echoes_text(emu: BotApiEmulator, polling_bot: list[object]) -> None:
    sent = emu.send_text(user_id=USER, text="ciao bot https://youtu.be/abc")
    replies = await emu.async_wait_for(lambda: emu.messages(USER), WAIT)
    assert [reply.text for reply in replies] == ["ciao bot https://youtu.be/abc"]
    assert replies[0].reply_to == sent["message_id"]
    assert replies[0].message_id == sent["message_id"] + 1
    methods = [method for method, _ in emu.calls]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]


async def test_polling_bot_downloads_voice(emu: BotApiEmulator, polling_bot: list[object]) -> None:
    emu.send_voice(user_id=USER, data=VOICE_BYTES, duration=3)
    reply = await emu.async_wait_for(lambda: emu.messages(USER), WAIT)
    assert reply[0].text == f"{len(VOICE_BYTES)} byte"
    (get_file,) = emu.calls_to("getFile")
    assert get_file["file_id"].startswith("BQAC")


async def test_polling_bot_edits_and_parses_html(
    emu: BotApiEmulator, polling_bot: list[object]
) -> None:
    emu.send_text(user_id=USER, text="/progress")
    done = await emu.async_wait_for(
        lambda: [m for m in emu.messages(USER) if m.text == "Fatto & finito"], WAIT
    )
    (status,) = done
    assert status.edited
    assert status.edit_history == ("In coda…", "Trascrizione: 50%")
    assert status.raw_text == "<b>Fatto</b> &amp; finito"
    assert status.entities == ({"type": "bold", "offset": 0, "length": 5},)
    assert len(emu.calls_to("editMessageText")) == 2


async def test_polling_bot_sends_document(emu: BotApiEmulator, polling_bot: list[object]) -> None:
    emu.send_text(user_id=USER, text="/doc")
    (message,) = await emu.async_wait_for(lambda: emu.messages(USER), WAIT)
    assert message.document is not None
    assert message.document.name == "trascrizione.txt"
    assert message.document.data == "ciao è già\n".encode()
    assert message.caption == "Testo completo"


async def test_polling_bot_inline_confirmation(
    emu: BotApiEmulator, polling_bot: list[object]
) -> None:
    emu.send_text(user_id=USER, text="/forget")
    (question,) = await emu.async_wait_for(lambda: emu.messages(USER), WAIT)
    button = question.reply_markup["inline_keyboard"][0][0]
    query_id = emu.send_callback_query(
        user_id=USER, message_id=question.message_id, data=button["callback_data"]
    )
    await emu.async_wait_for(lambda: emu.messages(USER)[0].text == "Dati cancellati.", WAIT)
    assert emu.messages(USER)[0].reply_markup is None  # editing without markup removes it
    assert emu.calls_to("answerCallbackQuery")[0]["callback_query_id"] == query_id


def test_entities_use_utf16_offsets() -> None:
    text = "😀 /start@whisper_it_test_bot vedi youtu.be/xyz, @mario_rossi #prova"
    kinds = [(e["type"], e["offset"], e["length"]) for e in detect_entities(text)]
    # The emoji is two UTF-16 units.
    assert kinds == [
        ("bot_command", 3, 26),
        ("url", 35, 12),
        ("mention", 49, 12),
        ("hashtag", 62, 6),
    ]


def test_html_parsing_follows_telegram() -> None:
    text, entities = parse_html('<a href="https://x.it/?a=1&amp;b=2">x</a> 1 &lt; 2 &nbsp;')
    assert text == "x 1 < 2 &nbsp;"
    assert entities == [
        {"type": "text_link", "offset": 0, "length": 1, "url": "https://x.it/?a=1&b=2"}
    ]
    _, entities = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert entities == [{"type": "pre", "offset": 0, "length": 5, "language": "python"}]
    for bad in ("1 < 2", "<b>aperto", "<b>x</i>", "<div>x</div>", "</b>"):
        with pytest.raises(ValueError):
            parse_html(bad)


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_api_errors_like_the_real_server(emu: BotApiEmulator) -> None:
    for wrong_token, description in (("999:WRONG", "Unauthorized"), ("999:WRONG!", "Not Found")):
        wrong = Bot(wrong_token, base_url=emu.api_url)
        try:
            with pytest.raises(InvalidToken, match=description):
                await wrong.get_me()
        finally:
            await wrong.request.shutdown()

    emu.send_text(user_id=USER, text="ciao")
    big = emu.send_voice(user_id=USER, data=b"OggS", duration=1, file_size=21 * 1024 * 1024)
    async with Bot(emu.token, base_url=emu.api_url, base_file_url=emu.file_url) as bot:
        assert (await bot.get_me()).username == "whisper_it_test_bot"
        with pytest.raises(BadRequest, match="too big"):
            await bot.get_file(big["voice"]["file_id"])
        sent = await bot.send_message(USER, "uno")
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("uno", chat_id=USER, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="parse entities"):
            await bot.send_message(USER, "1 < 2", parse_mode="HTML")
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(USER, "a" * 4097)
        with pytest.raises(BadRequest, match="replied not found"):
            await bot.send_message(USER, "x", reply_to_message_id=999)
        with pytest.raises(Forbidden):
            await bot.send_message(OTHER_USER, "non mi conosci")
        emu.fail_next("sendMessage", error_code=429, description="Too Many Requests", retry_after=3)
        with pytest.raises(RetryAfter):
            await bot.send_message(USER, "troppo presto")
        assert (await bot.send_message(USER, "adesso sì")).text == "adesso sì"
        await bot.delete_message(USER, sent.message_id)
        with pytest.raises(BadRequest, match="not found"):
            await bot.delete_message(USER, sent.message_id)


async def test_unknown_method_is_404_and_recorded(emu: BotApiEmulator) -> None:
    async with Bot(emu.token, base_url=emu.api_url) as bot:
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod", api_kwargs={"x": 1})
    assert emu.calls_to("noSuchMethod") == [{"x": 1}]


async def test_updates_stay_queued_until_confirmed(emu: BotApiEmulator) -> None:
    emu.send_text(user_id=USER, text="uno")
    emu.send_text(user_id=USER, text="due")
    async with Bot(emu.token, base_url=emu.api_url) as bot:
        first = await bot.get_updates(timeout=0)
        assert [u.message.text for u in first] == ["uno", "due"]
        again = await bot.get_updates(timeout=0)
        assert [u.update_id for u in again] == [u.update_id for u in first]
        assert await bot.get_updates(offset=first[-1].update_id + 1, timeout=0) == ()
        assert emu.pending_update_count == 0


async def test_second_long_poll_ends_the_first_with_conflict(emu: BotApiEmulator) -> None:
    async with (
        Bot(emu.token, base_url=emu.api_url) as first,
        Bot(emu.token, base_url=emu.api_url) as second,
    ):
        waiting = asyncio.create_task(first.get_updates(timeout=5))
        await emu.async_wait_for(lambda: emu.calls_to("getUpdates"), WAIT)
        assert await second.get_updates(timeout=0) == ()
        with pytest.raises(Conflict):
            await waiting


async def test_group_messages_and_members(emu: BotApiEmulator) -> None:
    sent = emu.send_text(user_id=USER, text="/stats", chat_id=GROUP, chat_type="supergroup")
    assert sent["chat"] == {"id": GROUP, "type": "supergroup", "title": "Gruppo di test"}
    emu.set_member_status(chat_id=GROUP, user_id=USER, status="administrator")
    async with Bot(emu.token, base_url=emu.api_url) as bot:
        member = await bot.get_chat_member(GROUP, USER)
        assert member.status == "administrator"
        assert [m.user.id for m in await bot.get_chat_administrators(GROUP)] == [USER]
        reply = await bot.send_message(GROUP, "ok", reply_to_message_id=sent["message_id"])
    assert reply.reply_to_message.text == "/stats"


async def test_async_context_manager_and_wait_timeouts() -> None:
    async with BotApiEmulator(token="777:OTHER", bot_username="altro_bot") as emu:
        assert emu.bot_id == 777
        async with Bot(emu.token, base_url=emu.api_url) as bot:
            assert bot.username == "altro_bot"
        with pytest.raises(WaitTimeout, match="getMe"):
            await emu.async_wait_for(lambda: emu.messages(USER), 0.1)
        with pytest.raises(WaitTimeout):
            emu.wait_for(lambda: False, 0.1)


BOT_SCRIPT = textwrap.dedent(
    """
    import logging
    import sys

    from telegram.ext import ApplicationBuilder, MessageHandler, filters

    token, api_url, file_url = sys.argv[1:4]
    logging.getLogger("httpx").setLevel(logging.WARNING)


    async def echo(update, context):
        await update.effective_message.reply_text("eco: " + update.effective_message.text)


    app = ApplicationBuilder().token(token).base_url(api_url).base_file_url(file_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling(poll_interval=0)
    """
)


def test_subprocess_bot_echoes_and_survives_sigkill(emu: BotApiEmulator, tmp_path: Path) -> None:
    script = tmp_path / "echo_bot.py"
    script.write_text(BOT_SCRIPT)
    args = [sys.executable, str(script), emu.token, emu.api_url, emu.file_url]

    for round_number, text in enumerate(["primo", "dopo il riavvio"], start=1):
        log = (tmp_path / f"bot{round_number}.log").open("w")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            emu.send_text(user_id=USER, text=text)
            emu.wait_for(lambda n=round_number: len(emu.messages(USER)) >= n, SUBPROCESS_WAIT)
            # PTB confirms an update with its next getUpdates; killed before that, the bot
            # would get it again after the restart (as with the real API).
            emu.wait_for(lambda: emu.pending_update_count == 0, WAIT)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(WAIT)
            log.close()
    assert [m.text for m in emu.messages(USER)] == ["eco: primo", "eco: dopo il riavvio"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_bot_receives_posted_updates(emu: BotApiEmulator) -> None:
    errors: list[object] = []
    app = build_app(emu, errors)
    port = free_port()
    webhook_url = f"http://127.0.0.1:{port}/hook"
    await app.initialize()
    await app.start()
    await app.updater.start_webhook(
        listen="127.0.0.1",
        port=port,
        url_path="hook",
        webhook_url=webhook_url,
        secret_token="s3gret0",
    )
    try:
        (set_webhook,) = emu.calls_to("setWebhook")
        assert set_webhook["url"] == webhook_url
        assert set_webhook["secret_token"] == "s3gret0"
        emu.send_text(user_id=USER, text="via webhook")
        replies = await emu.async_wait_for(lambda: emu.messages(USER), WAIT)
        assert replies[0].text == "via webhook"
        assert emu.webhook_failures == []

        # A wrong secret is refused by PTB (403); the emulator keeps retrying, like Telegram.
        emu.deliver_via_webhook(webhook_url, secret_token="sbagliato")
        emu.send_text(user_id=USER, text="secondo")
        await emu.async_wait_for(lambda: emu.webhook_failures, WAIT)
        assert "HTTP 403" in emu.webhook_failures[0]
        emu.deliver_via_webhook(webhook_url, secret_token="s3gret0")
        await emu.async_wait_for(lambda: len(emu.messages(USER)) == 2, WAIT)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert errors == []
    async with Bot(emu.token, base_url=emu.api_url) as bot:
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)

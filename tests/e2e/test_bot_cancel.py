"""The "Annulla" button: a queued or running job is stopped wherever it is, by its sender
only, nothing is stored or sent for it, and its status message says "Annullata" — with
the worker in the bot's process and in another one (the database flag), end to end over
the Bot API emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot import messages
from bot.bootstrap import bootstrap
from bot.cancel_button import CANCEL_PREFIX
from bot.model_holder import ModelHolder
from storage.models import JobStatus
from tests.support.bot_harness import OTHER_USER, USER, bot_settings, running_bot
from tests.support.held_transcriber import HELD_SECONDS, HeldTranscriber
from tests.support.worker_support import tone_wav

LONG_NOTE_SECONDS = 35  # past one window: the long path, with progress reports
SHORT_NOTE_SECONDS = 2
STALE_PRESS = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def _job_status(bot: Any, user_message_id: int) -> str | None:
    return next((j.status for j in bot.jobs() if j.user_message_id == user_message_id), None)


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _cancel_data(message: Any) -> str:
    markup = message.reply_markup or {}
    (button,) = [b for row in markup.get("inline_keyboard", []) for b in row]
    assert button["text"].endswith("Annulla") and button["callback_data"].startswith(CANCEL_PREFIX)
    return button["callback_data"]


async def _status_with_button(bot: Any, user_message_id: int, chat_id: int = USER) -> Any:
    return await bot.wait_message(
        lambda m: m.reply_to == user_message_id and bool(m.reply_markup), chat_id=chat_id
    )


def _answers(bot: Any) -> list[dict[str, Any]]:
    return bot.emu.calls_to("answerCallbackQuery")


async def test_a_running_note_is_stopped_by_its_sender_only_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    model = HeldTranscriber()
    async with running_bot(tmp_path, model) as bot:
        sent = bot.emu.send_voice(
            user_id=USER, data=tone_wav(LONG_NOTE_SECONDS), duration=LONG_NOTE_SECONDS
        )
        await asyncio.to_thread(model.started.wait, HELD_SECONDS)
        status = await _status_with_button(bot, sent["message_id"])
        data = _cancel_data(status)

        # Someone else (in a group they would see it) may not cancel it.
        bot.emu.send_callback_query(
            user_id=OTHER_USER, chat_id=USER, message_id=status.message_id, data=data
        )
        await _until(lambda: len(_answers(bot)) == 1)
        assert _answers(bot)[0]["text"] == messages.CANCEL_NOT_YOURS
        assert _job_status(bot, sent["message_id"]) != JobStatus.CANCELLED

        bot.emu.send_callback_query(user_id=USER, message_id=status.message_id, data=data)
        await bot.wait_message(lambda m: m.content == messages.JOB_CANCELLED)
        model.release.set()  # the model call returns; the next progress report stops it
        await _until(lambda: _job_status(bot, sent["message_id"]) == JobStatus.CANCELLED)
        await asyncio.sleep(0.5)  # anything the worker would still send, it has sent
        assert model.completed == 0
        (only,) = bot.emu.messages(USER)
        assert only.content == messages.JOB_CANCELLED and not only.reply_markup
        assert bot.transcriptions() == []
        assert not any(bot.services.store.root.rglob("*.flac"))


async def test_a_queued_note_is_cancelled_at_once_and_never_reaches_the_model(
    tmp_path: Path,
) -> None:
    model = HeldTranscriber()
    async with running_bot(tmp_path, model, batch_size=1) as bot:
        first = bot.emu.send_voice(
            user_id=USER, data=tone_wav(SHORT_NOTE_SECONDS), duration=SHORT_NOTE_SECONDS
        )
        await asyncio.to_thread(model.started.wait, HELD_SECONDS)
        second = bot.emu.send_voice(
            user_id=USER,
            data=tone_wav(SHORT_NOTE_SECONDS, frequency=660.0),
            duration=SHORT_NOTE_SECONDS,
        )
        queued = await _status_with_button(bot, second["message_id"])
        assert queued.content.startswith("🕐")
        # Answered too late (the bot was busy or restarting): the press still cancels,
        # and no error reaches the user or the admins (the harness fails on any).
        bot.emu.fail_next("answerCallbackQuery", error_code=400, description=STALE_PRESS)
        bot.emu.send_callback_query(
            user_id=USER, message_id=queued.message_id, data=_cancel_data(queued)
        )
        await _until(lambda: _job_status(bot, second["message_id"]) == JobStatus.CANCELLED)
        await bot.wait_message(
            lambda m: m.message_id == queued.message_id and m.content == messages.JOB_CANCELLED
        )
        model.release.set()
        await _until(lambda: _job_status(bot, first["message_id"]) == JobStatus.DONE)
        await asyncio.sleep(0.5)
        assert model.calls == 1
        assert [t.user_message_id for t in _rows(bot)] == [first["message_id"]]
        assert bot.replies_to(second["message_id"])[0].content == messages.JOB_CANCELLED

        # Pressing it again, after the fact: too late, nothing changes.
        bot.emu.send_callback_query(
            user_id=USER, message_id=queued.message_id, data=_cancel_data(queued)
        )
        await _until(lambda: any(a.get("text") == messages.CANCEL_TOO_LATE for a in _answers(bot)))


def _rows(bot: Any) -> list[Any]:
    from storage.models import Transcription

    with bot.services.db.unit_of_work(read_only=True) as uow:
        return list(uow.session.query(Transcription).order_by(Transcription.id))


async def test_a_worker_in_another_process_stops_through_the_database_flag(
    tmp_path: Path,
) -> None:
    model = HeldTranscriber()
    # The front only accepts jobs; the worker has its own services (its own lease owner)
    # on the same database, as ``whisper-it worker`` does.
    async with running_bot(tmp_path, None, workers=0) as bot:
        worker = bootstrap(bot_settings(tmp_path, bot.emu, workers=1))
        worker.pipeline.models = ModelHolder(lambda _spec: model, lambda: "held")
        await worker.runner.start(bot.app.bot)
        try:
            sent = bot.emu.send_voice(
                user_id=USER, data=tone_wav(LONG_NOTE_SECONDS), duration=LONG_NOTE_SECONDS
            )
            await asyncio.to_thread(model.started.wait, HELD_SECONDS)
            status = await _status_with_button(bot, sent["message_id"])
            bot.emu.send_callback_query(
                user_id=USER, message_id=status.message_id, data=_cancel_data(status)
            )
            await _until(
                lambda: any(a.get("text") == messages.CANCEL_ANSWER for a in _answers(bot))
            )
            await asyncio.sleep(1.5)  # the worker's poll has seen the flag by now
            model.release.set()
            await _until(lambda: _job_status(bot, sent["message_id"]) == JobStatus.CANCELLED)
            await asyncio.sleep(0.5)
            assert model.completed == 0  # stopped at its next progress report
            assert bot.transcriptions() == []
            (only,) = bot.emu.messages(USER)
            assert only.content == messages.JOB_CANCELLED and not only.reply_markup
        finally:
            await worker.runner.stop()
            worker.close()

"""Failures around a transcript's delivery, with the in-process fake Bot API: an error
after the transcript went out never replaces it, an empty transcript in a file form gets
the text reply, a failed download is a clear message, a deleted status message does not
swallow the outcome, and an instant repeat gets the hashtags its original lacked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot, InputFile
from telegram.error import BadRequest

from bot import messages
from bot.job_payloads import TelegramFileJob
from storage.chat_settings import OUTPUT_SRT, OUTPUT_TXT, OUTPUT_VTT
from storage.models import JobStatus
from tests.support.fake_bot_api import ApiError, FakeBotApi
from tests.support.worker_support import (
    FakeTagger,
    FakeTranscriber,
    Rig,
    build_rig,
    tone_wav,
    until,
)
from tests.unit.test_worker import (
    ADMIN,
    OTHER,
    USER,
    job_status,
    stored_link_job,
    submit_voice,
    transcriptions,
)

NO_WORDS = "<i>Non ho riconosciuto parole in questo audio.</i>"
SERVER_ERROR = (500, "Internal Server Error")  # python-telegram-bot: NetworkError


@pytest.fixture
async def api() -> FakeBotApi:
    return FakeBotApi()


@contextlib.asynccontextmanager
async def running(rig: Rig, bot: Bot) -> AsyncIterator[None]:
    await rig.runner.start(bot)
    try:
        yield
    finally:
        await rig.runner.stop()


async def ended(rig: Rig, *job_ids: int | None) -> None:
    """Until these jobs are done or failed, and the worker is idle."""
    over = (JobStatus.DONE, JobStatus.FAILED)
    await until(lambda: all(job_status(rig, i or 0) in over for i in job_ids))
    await until(lambda: rig.runner.busy == 0)


# --- an error after delivery began: a new message, the transcript stays --------------------


async def test_a_failed_second_part_keeps_the_first_and_reports_in_a_new_message(
    tmp_path: Path, api
) -> None:
    text = "parola " * 10  # two messages of at most 40 characters
    rig = build_rig(tmp_path, FakeTranscriber(text=text.strip()), max_message_chars=40)
    # sendMessage 1 is the queued message (edited into part 1); 2 would be part 2.
    api.fail_nth["sendMessage"] = {2: SERVER_ERROR}
    async with running(rig, api.bot()):
        submitted = await submit_voice(rig, api)
        await ended(rig, submitted.job_id)
    first, error = api.chat(USER)
    assert first.edits[-1].startswith("parola parola") and first.reply_to == 7
    assert error.text == messages.INTERNAL_ERROR and not error.edits
    assert job_status(rig, submitted.job_id) == JobStatus.FAILED


async def test_a_failure_after_the_whole_reply_keeps_it(
    tmp_path: Path, api, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())

    def broken_finish(*args: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(rig.queue, "finish", broken_finish)
    async with running(rig, api.bot()):
        submitted = await submit_voice(rig, api)
        await ended(rig, submitted.job_id)
    assert api.visible(USER) == ["buongiorno a tutti", messages.INTERNAL_ERROR]


async def test_failed_subtitles_after_the_text_keep_the_text(tmp_path: Path, api) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    status = api._sendMessage({"chat_id": USER, "text": "🕐 In coda"})
    # A link job stored before its worker died, with its status message: answered again.
    job_id = stored_link_job(rig, status_message_id=status["message_id"])
    api.fail["sendDocument"] = SERVER_ERROR
    async with running(rig, api.bot()):
        await ended(rig, job_id)
    assert api.visible(USER) == ["testo salvato\n\n#salvato", messages.INTERNAL_ERROR]


# --- an empty transcript in a file form ---------------------------------------------------


async def test_the_fake_refuses_an_empty_upload_as_telegram_does(api) -> None:
    bot = api.bot()
    with pytest.raises(BadRequest, match="must be non-empty"):
        await bot.send_document(USER, InputFile(b"", filename="vuoto.txt"))


@pytest.mark.parametrize("output", [OUTPUT_TXT, OUTPUT_SRT, OUTPUT_VTT])
async def test_an_empty_transcript_in_a_file_form_gets_the_text_reply(
    tmp_path: Path, api, output: str
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(text=""), tagger=FakeTagger())
    rig.queue.set_preferences(USER, output=output)
    async with running(rig, api.bot()):
        submitted = await submit_voice(rig, api)
        await ended(rig, submitted.job_id)
    assert api.visible(USER) == [NO_WORDS]
    assert "sendDocument" not in api.methods()
    assert job_status(rig, submitted.job_id) == JobStatus.DONE


@pytest.mark.parametrize("output", [OUTPUT_TXT, OUTPUT_SRT, OUTPUT_VTT])
async def test_a_transcript_with_words_still_comes_as_its_file(
    tmp_path: Path, api, output: str
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    rig.queue.set_preferences(USER, output=output)
    async with running(rig, api.bot()):
        submitted = await submit_voice(rig, api)
        await ended(rig, submitted.job_id)
    assert api.visible(USER) == [api.chat(USER)[-1].text]
    assert api.chat(USER)[-1].document == f"trascrizione-{submitted.job_id}.{output}"


# --- a failed download from Telegram ------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (SERVER_ERROR, messages.DOWNLOAD_FAILED),
        ((400, "Bad Request: wrong file_id or the file is temporarily unavailable"),
         messages.DOWNLOAD_FAILED),
        ((400, "Bad Request: file is too big"), messages.TELEGRAM_FILE_TOO_BIG),
    ],
)  # fmt: skip
async def test_a_failed_download_is_a_clear_message_and_no_alert(
    tmp_path: Path, api, failure: tuple[int, str], text: str
) -> None:
    transcriber = FakeTranscriber()
    rig = build_rig(tmp_path, transcriber, admin_ids=[ADMIN])
    bot = api.bot()
    rig.services.alerts.attach(bot)
    api.fail["getFile"] = failure
    async with running(rig, bot):
        submitted = await submit_voice(rig, api)
        await ended(rig, submitted.job_id)
    assert api.visible(USER) == [f"⚠️ {text}"]
    assert api.visible(ADMIN) == []
    assert job_status(rig, submitted.job_id) == JobStatus.FAILED
    assert transcriber.calls == 0


async def test_a_failed_download_in_a_batch_fails_only_its_own_job(tmp_path: Path, api) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(), batch_size=4)
    get_file = api._getFile

    def get_file_or_fail(params: dict[str, Any]) -> dict[str, Any]:
        if params["file_id"].startswith(f"voice-{OTHER}-"):
            raise ApiError(*SERVER_ERROR)
        return get_file(params)

    api._getFile = get_file_or_fail  # type: ignore[method-assign]
    async with running(rig, api.bot()):
        submitted = [await submit_voice(rig, api, user=user) for user in (USER, OTHER, 44)]
        await ended(rig, *(s.job_id for s in submitted))
    assert api.visible(OTHER) == [f"⚠️ {messages.DOWNLOAD_FAILED}"]
    assert api.visible(USER) == api.visible(44) == ["buongiorno a tutti"]


# --- a deleted status message -------------------------------------------------------------


async def test_a_failure_reaches_the_user_whose_status_message_was_deleted(
    tmp_path: Path, api
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(error=ValueError("rotto"), delay=0.3))
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: len(api.chat(USER)) == 1)
        (queued,) = api.chat(USER)
        queued.deleted = True  # the user deleted the "In coda" message
        await until(lambda: job_status(rig, submitted.job_id) == JobStatus.FAILED)
        await until(lambda: rig.runner.busy == 0)
    finally:
        await rig.runner.stop()
    assert api.visible(USER) == [messages.INTERNAL_ERROR]
    assert api.chat(USER)[-1].reply_to == 7


async def test_a_cancel_reaches_the_user_whose_status_message_was_deleted(
    tmp_path: Path, api
) -> None:
    from bot.status_message import StatusMessage

    bot = api.bot()
    sent = await bot.send_message(USER, "🕐 In coda")
    created: list[int] = []

    async def remember(message_id: int) -> None:
        created.append(message_id)

    status = StatusMessage(bot, USER, sent.message_id, 0.0, reply_to=7, on_created=remember)
    api.messages[(USER, sent.message_id)].deleted = True
    await status.show(messages.JOB_CANCELLED)
    assert api.visible(USER) == [messages.JOB_CANCELLED]
    assert created == [status.message_id] and status.message_id != sent.message_id
    await status.show("di nuovo")  # the new message is the one edited from now on
    assert api.visible(USER) == ["di nuovo"]


async def test_a_progress_text_arriving_after_the_transcript_is_dropped(api) -> None:
    """Scheduled from the decoding thread just before the reply, it sent a stray progress
    message after the transcript (before: it edited the transcript's first message)."""
    from bot.status_message import StatusMessage

    bot = api.bot()
    sent = await bot.send_message(USER, "⏳ Trascrivo…")
    status = StatusMessage(bot, USER, sent.message_id, 0.0, reply_to=7)
    await bot.edit_message_text("la trascrizione", USER, sent.message_id)
    status.became_transcript()
    await status.progress("⏳ Trascrivo… 90%", force=True)
    assert api.visible(USER) == ["la trascrizione"]
    await status.show(messages.INTERNAL_ERROR)  # an error still reaches the user, anew
    assert api.visible(USER) == ["la trascrizione", messages.INTERNAL_ERROR]


# --- instant repeats and hashtags ---------------------------------------------------------


_message_ids = itertools.count(7)  # each request its own message


async def _voice(rig: Rig, api: FakeBotApi, file_id: str, data: bytes):
    api.add_file(file_id, data)
    payload = TelegramFileJob("voice", file_id, f"u-{file_id}", duration=1.5)
    return await rig.runner.submit(
        payload, user_id=USER, chat_id=USER, user_message_id=next(_message_ids)
    )


@pytest.mark.parametrize("forwarded", [False, True], ids=["same-audio", "same-file"])
async def test_a_repeat_in_a_chat_with_hashtags_gets_them_when_the_original_had_none(
    tmp_path: Path, api, forwarded: bool
) -> None:
    transcriber = FakeTranscriber()
    rig = build_rig(tmp_path, transcriber, tagger=FakeTagger())
    audio = tone_wav()
    rig.queue.set_preferences(USER, hashtags=False)
    await rig.runner.start(api.bot())
    try:
        first = await _voice(rig, api, "note-a", audio)
        await until(lambda: job_status(rig, first.job_id) == JobStatus.DONE)
        rig.queue.set_preferences(USER, hashtags=True)
        # The same file forwarded (same file_unique_id), or the same audio uploaded anew.
        second = await _voice(rig, api, "note-a" if forwarded else "note-b", audio)
        await until(lambda: job_status(rig, second.job_id) == JobStatus.DONE)
        await asyncio.sleep(0.05)
    finally:
        await rig.runner.stop()
    assert transcriber.calls == 1  # answered from storage
    assert api.visible(USER) == ["buongiorno a tutti", "buongiorno a tutti\n\n#saluti #mattina"]
    rows = transcriptions(rig)
    if forwarded:  # one row answers both (the user's own, in this chat): tagged now
        assert [row.tags for row in rows] == [["#saluti", "#mattina"]]
    else:
        assert [row.tags for row in rows] == [[], ["#saluti", "#mattina"]]

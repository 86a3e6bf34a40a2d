"""Fast tests of the job runner, its queue and Telegram delivery: a real SQLite database,
a fake transcriber and the in-process fake Bot API (tests/support/fake_bot_api.py). Each runs in
well under a second; the end-to-end tests cover the same paths with the real model."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import messages
from bot.job_payloads import LinkJob, TelegramFileJob, UnknownJobError, from_record, to_record
from storage import jobs as job_queue
from storage import repository
from storage.models import Job, JobStatus, Transcription
from storage.privacy import delete_user_data
from tests.support.fake_bot_api import FakeBotApi
from tests.support.worker_support import (
    FakeTagger,
    FakeTranscriber,
    Rig,
    build_rig,
    tone_wav,
    until,
)

USER = 42
ADMIN = 4242
OTHER = 43


def job_status(rig: Rig, job_id: int) -> str | None:
    with rig.db.unit_of_work(read_only=True) as uow:
        job = uow.session.get(Job, job_id)
        return None if job is None else job.status


def reply_ids(rig: Rig) -> list[int]:
    with rig.db.unit_of_work(read_only=True) as uow:
        return [message_id for row in uow.session.scalars(select(Transcription))
                for message_id in row.reply_message_ids]  # fmt: skip


def transcriptions(rig: Rig) -> list[Transcription]:
    with rig.db.unit_of_work(read_only=True) as uow:
        rows = list(uow.session.scalars(select(Transcription)))
        uow.session.expunge_all()
        return rows


def stored_link_job(rig: Rig, *, status_message_id: int | None = None) -> int:
    """The state a kill -9 leaves between storing a link's transcript and replying: the
    job claimed by a worker that died (its lease run out), its transcript stored."""
    with rig.db.unit_of_work() as uow:
        repository.touch_user(uow.session, USER)
        kind, data = to_record(LinkJob("https://www.youtube.com/watch?v=abcdefghijk"))
        job = job_queue.enqueue_job(
            uow.session, kind=kind, payload=data, user_id=USER, chat_id=USER, user_message_id=7
        )
        row = repository.add_transcription(
            uow.session,
            source_kind="youtube",
            text="testo salvato",
            user_id=USER,
            chat_id=USER,
            segments=[{"start": 0.0, "end": 2.0, "text": "testo salvato"}],
            tags=["#salvato"],
        )
        job_queue.claim_next_job(uow.session, owner="dead-worker", lease_seconds=0)
        job.transcription_id = row.id
        job.status_message_id = status_message_id
        uow.commit()
        return job.id


async def submit_voice(rig: Rig, api: FakeBotApi, *, user: int = USER, data: bytes | None = None):
    file_id = f"voice-{user}-{len(api.files)}"
    # A different tone each time: the same audio twice would be an instant repeat.
    tone = tone_wav(frequency=440.0 + 10 * len(api.files))
    api.add_file(file_id, tone if data is None else data)
    payload = TelegramFileJob("voice", file_id, f"u-{file_id}", duration=1.5)
    return await rig.runner.submit(
        payload, user_id=user, chat_id=user, user_message_id=6 + len(api.files)
    )


@pytest.fixture
async def api() -> FakeBotApi:
    return FakeBotApi()


async def test_voice_job_is_answered_once_stored_and_tagged(tmp_path: Path, api) -> None:
    transcriber = FakeTranscriber(text="buongiorno a tutti")
    rig = build_rig(tmp_path, transcriber, tagger=FakeTagger())
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        assert submitted.accepted and submitted.job_id is not None
        await until(lambda: job_status(rig, submitted.job_id) == JobStatus.DONE)
    finally:
        await rig.runner.stop()
    (reply,) = api.chat(USER)
    # The queued message became the transcript, quoting the user's message.
    assert reply.reply_to == 7 and reply.text.startswith("🕐")
    assert reply.edits[-1] == "buongiorno a tutti\n\n#saluti #mattina"
    (row,) = transcriptions(rig)
    assert row.text == "buongiorno a tutti" and row.tags == ["#saluti", "#mattina"]
    assert row.audio_sha256 and rig.store.exists(row.audio_sha256)
    assert row.source_kind == "voice" and transcriber.calls == 1


async def test_a_correction_sent_as_the_transcript_appears_finds_it(tmp_path: Path, api) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(text="buongiorno a tutti"))
    resolved: list[bool] = []
    edit = api._editMessageText

    def edit_and_look_up(params):
        # The instant Telegram shows the transcript, a user can reply to it: the message
        # must already lead to its transcript (finish() has not run yet).
        if params["text"].startswith("buongiorno"):
            with rig.db.unit_of_work(read_only=True) as uow:
                row = repository.find_transcription_by_reply(
                    uow.session, chat_id=USER, message_id=int(params["message_id"])
                )
                resolved.append(row is not None and row.text == "buongiorno a tutti")
        return edit(params)

    api._editMessageText = edit_and_look_up
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: job_status(rig, submitted.job_id) == JobStatus.DONE)
    finally:
        await rig.runner.stop()
    assert resolved == [True]
    # finish() then records the same message once, not twice.
    assert len(reply_ids(rig)) == 1


async def test_damaged_file_gets_its_italian_message_and_nothing_is_stored(
    tmp_path: Path, api
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api, data=b"questo non e' un audio" * 10)
        await until(lambda: job_status(rig, submitted.job_id) == JobStatus.FAILED)
    finally:
        await rig.runner.stop()
    assert api.visible(USER) == [f"⚠️ {messages.AUDIO_ERRORS['corrupt']}"]
    assert transcriptions(rig) == []


async def test_a_crash_tells_the_user_and_alerts_admins_with_escaped_html(
    tmp_path: Path, api
) -> None:
    rig = build_rig(
        tmp_path, FakeTranscriber(error=ValueError("<b>broken</b> & co")), admin_ids=[ADMIN]
    )
    bot = api.bot()
    rig.services.alerts.attach(bot)  # what the application does when it starts
    await rig.runner.start(bot)
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: bool(api.visible(ADMIN)))
    finally:
        await rig.runner.stop()
    assert api.visible(USER) == [messages.INTERNAL_ERROR]
    assert job_status(rig, submitted.job_id) == JobStatus.FAILED
    assert api.visible(ADMIN) == [
        f"⚠️ job {submitted.job_id} (telegram_file): ValueError: &lt;b&gt;broken&lt;/b&gt; &amp; co"
    ]


async def test_late_hashtags_never_hold_back_the_next_job(tmp_path: Path, api) -> None:
    tagger = FakeTagger(delay=1.5)
    rig = build_rig(tmp_path, FakeTranscriber(), tagger=tagger, tag_budget=0.05)
    await rig.runner.start(api.bot())
    try:
        first = await submit_voice(rig, api, user=USER)
        second = await submit_voice(rig, api, user=OTHER)
        started = time.monotonic()
        await until(lambda: job_status(rig, second.job_id) == JobStatus.DONE)
        # One worker: the second job was answered while the first's tags were still late.
        assert time.monotonic() - started < 1.5
        assert job_status(rig, first.job_id) == JobStatus.DONE
        assert api.visible(USER) == ["buongiorno a tutti"]
        await until(lambda: "#saluti" in api.visible(USER)[0], timeout=10)
    finally:
        await rig.runner.stop()
    assert api.visible(USER) == ["buongiorno a tutti\n\n#saluti #mattina"]
    row = next(r for r in transcriptions(rig) if r.user_id == USER)
    assert row.tags == ["#saluti", "#mattina"]


async def test_late_hashtags_that_do_not_fit_spill_into_a_new_message(tmp_path: Path, api) -> None:
    text = "x" * 30  # fits the 40-character limit alone, not with its tags
    rig = build_rig(
        tmp_path,
        FakeTranscriber(text=text),
        tagger=FakeTagger(delay=0.3),
        tag_budget=0.01,
        max_message_chars=40,
    )
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: len(api.chat(USER)) == 2)
        await until(lambda: len(reply_ids(rig)) == 2)
    finally:
        await rig.runner.stop()
    assert api.visible(USER) == [text, "#saluti #mattina"]
    # The new message is a correction handle of the same transcript.
    with rig.db.unit_of_work(read_only=True) as uow:
        for message in api.chat(USER):
            row = repository.find_transcription_by_reply(
                uow.session, chat_id=USER, message_id=message.message_id
            )
            assert row is not None and row.id is not None
    assert job_status(rig, submitted.job_id) == JobStatus.DONE


async def test_a_job_stored_before_a_crash_is_answered_from_the_database(
    tmp_path: Path, api
) -> None:
    transcriber = FakeTranscriber()
    rig = build_rig(tmp_path, transcriber)
    job_id = stored_link_job(rig)
    await rig.runner.start(api.bot())
    try:
        await until(lambda: job_status(rig, job_id) == JobStatus.DONE)
    finally:
        await rig.runner.stop()
    assert transcriber.calls == 0
    transcript, subtitles = api.chat(USER)
    assert transcript.text == "testo salvato\n\n#salvato"
    assert subtitles.document == f"trascrizione-{job_id}.srt"  # a link keeps its subtitles


async def test_forget_while_the_job_runs_keeps_nothing(tmp_path: Path, api) -> None:
    transcriber = FakeTranscriber(delay=0.5)
    rig = build_rig(tmp_path, transcriber)
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: transcriber.calls == 1)
        with rig.db.unit_of_work() as uow:
            delete_user_data(uow.session, rig.store, USER)
            uow.commit()
        await until(lambda: rig.runner.busy == 0 and transcriber.calls == 1)
        await asyncio.sleep(0.7)
    finally:
        await rig.runner.stop()
    assert job_status(rig, submitted.job_id) is None
    assert transcriptions(rig) == []
    assert list(rig.store) == []  # the audio file was not left behind
    assert api.visible(USER) == []  # the status message went away with the data


async def test_queue_limits_refuse_in_italian(tmp_path: Path, api) -> None:
    rig = build_rig(tmp_path, FakeTranscriber(), max_queued=3, max_per_user=2)
    rig.runner.options = replace(rig.runner.options, workers=0)  # nobody works: jobs wait
    await rig.runner.start(api.bot())
    results = [await submit_voice(rig, api) for _ in range(3)]
    assert [r.accepted for r in results] == [True, True, False]
    assert results[2].refusal == messages.TOO_MANY_PENDING.format(count=2)
    assert (await submit_voice(rig, api, user=OTHER)).accepted
    full = await submit_voice(rig, api, user=99)
    assert not full.accepted and full.refusal == messages.QUEUE_FULL
    # Queued messages show each job's place.
    assert api.visible(USER)[1].startswith("🕐")
    assert rig.queue.position(results[1].job_id) == (2, 3)


def test_payloads_round_trip_and_unknown_kinds_fail_loudly() -> None:
    payload = TelegramFileJob("voice", "f1", "u1", duration=3.0, mime_type="audio/ogg")
    assert from_record(*to_record(payload)) == payload
    link = LinkJob("https://youtu.be/abcdefghijk", "abcdefghijk")
    assert from_record(*to_record(link)) == link
    with pytest.raises(UnknownJobError):
        from_record("fax", {})
    with pytest.raises(UnknownJobError):
        from_record("link", {"video_id": "x"})  # no url


def test_a_job_keeps_its_forum_topic_and_payloads_stored_without_one_still_load() -> None:
    note = TelegramFileJob("voice", "f1", "u1", thread_id=77)
    assert from_record(*to_record(note)) == note
    link = LinkJob("https://youtu.be/abcdefghijk", thread_id=77)
    assert from_record(*to_record(link)) == link
    # Stored by a version that kept no topic: no "thread_id" in the JSON.
    old = {"source_kind": "voice", "file_id": "f1", "file_unique_id": "u1", "duration": 3.0}
    assert from_record("telegram_file", old).thread_id is None
    assert from_record("link", {"url": "https://youtu.be/x"}).thread_id is None


async def test_a_burst_of_short_notes_is_decoded_in_batches_and_answered_in_order(
    tmp_path: Path, api
) -> None:
    transcriber = FakeTranscriber()
    rig = build_rig(tmp_path, transcriber, batch_size=4, max_per_user=5)
    await rig.runner.start(api.bot())
    try:
        # Three notes from one user, a damaged file and two more users, all at once.
        submitted = [await submit_voice(rig, api, user=USER) for _ in range(3)]
        submitted.append(await submit_voice(rig, api, user=OTHER, data=b"\x00rotto" * 50))
        submitted += [await submit_voice(rig, api, user=user) for user in (44, 45)]
        ids = [s.job_id for s in submitted]
        await until(
            lambda: all(job_status(rig, i) in (JobStatus.DONE, JobStatus.FAILED) for i in ids)
        )
    finally:
        await rig.runner.stop()
    assert max(transcriber.batches) > 1 and sum(transcriber.batches) == 5
    statuses = [job_status(rig, i) for i in ids]
    assert statuses == [JobStatus.DONE] * 3 + [JobStatus.FAILED] + [JobStatus.DONE] * 2
    # The damaged file got its own message; its batch-mates their transcripts.
    assert api.visible(OTHER) == [f"⚠️ {messages.AUDIO_ERRORS['corrupt']}"]
    for user in (USER, 44, 45):
        assert all(text == "buongiorno a tutti" for text in api.visible(user))
    # One user's notes are answered in the order they were sent.
    with rig.db.unit_of_work(read_only=True) as uow:
        rows = uow.session.scalars(
            select(Transcription).where(Transcription.user_id == USER).order_by(Transcription.id)
        )
        first_replies = [row.reply_message_ids[0] for row in rows]
    answered = [
        int(call.params["message_id"])
        for call in api.calls
        if call.method == "editMessageText"
        and int(call.params["chat_id"]) == USER
        and call.params["text"] == "buongiorno a tutti"
    ]
    assert len(first_replies) == 3 and answered == first_replies  # sent order = answer order


async def test_a_worker_that_lost_its_lease_answers_nothing(tmp_path: Path, api) -> None:
    transcriber = FakeTranscriber(delay=0.6)
    rig = build_rig(tmp_path, transcriber)
    await rig.runner.start(api.bot())
    try:
        submitted = await submit_voice(rig, api)
        await until(lambda: transcriber.calls == 1)
        # Meanwhile the lease expired and another worker took the job over.
        with rig.db.unit_of_work() as uow:
            job = uow.session.get(Job, submitted.job_id)
            job.lease_owner = "another-worker"
            uow.commit()
        await asyncio.sleep(1.0)
    finally:
        await rig.runner.stop()
    assert transcriptions(rig) == []
    assert job_status(rig, submitted.job_id) == "running"  # the new owner's to finish
    assert not any("buongiorno" in text for text in api.visible(USER))


async def test_a_forget_of_the_same_audio_mid_save_leaves_the_new_rows_audio(
    tmp_path: Path, api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTHER's /forget lands after USER's audio (the same as OTHER's) is stored and before
    USER's row is committed: it sees the audio unused and must still not delete it."""
    rig = build_rig(tmp_path, FakeTranscriber(text="stesso audio"))
    tone = tone_wav(frequency=515.0)
    await rig.runner.start(api.bot())
    try:
        api.add_file("first", tone)
        first = await rig.runner.submit(
            TelegramFileJob("voice", "first", "u-first", duration=1.5),
            user_id=OTHER, chat_id=OTHER, user_message_id=7,
        )  # fmt: skip
        await until(lambda: job_status(rig, first.job_id) == JobStatus.DONE)
        put = rig.store._put_pcm
        forgot: list[int] = []

        def put_then_forget(pcm, sha):
            ref = put(pcm, sha)
            if not forgot:
                with rig.db.unit_of_work() as uow:
                    forgot.append(delete_user_data(uow.session, rig.store, OTHER).audio_files)
                    uow.commit()
            return ref

        monkeypatch.setattr(rig.store, "_put_pcm", put_then_forget)
        api.add_file("second", tone)
        second = await rig.runner.submit(
            TelegramFileJob("voice", "second", "u-second", duration=1.5),
            user_id=USER, chat_id=USER, user_message_id=8,
        )  # fmt: skip
        await until(lambda: job_status(rig, second.job_id) == JobStatus.DONE)
    finally:
        await rig.runner.stop()
    assert forgot == [1]  # the forget saw the audio unused (USER's row not committed yet)
    (row,) = transcriptions(rig)
    assert row.user_id == USER
    assert rig.store.exists(row.audio_sha256)


async def test_a_repeat_asked_for_someone_elses_note_belongs_to_its_author(
    tmp_path: Path, api
) -> None:
    """/trascrivi on a note already transcribed: the reused transcript, like a fresh one,
    belongs to the note's author, not to whoever asked (who must not label it)."""
    transcriber = FakeTranscriber(text="nota di altri")
    rig = build_rig(tmp_path, transcriber)
    await rig.runner.start(api.bot())
    try:
        api.add_file("nota", tone_wav(frequency=525.0))
        own = await rig.runner.submit(
            TelegramFileJob("voice", "nota", "u-nota", duration=1.5),
            user_id=OTHER, chat_id=-100, user_message_id=7,
        )  # fmt: skip
        await until(lambda: job_status(rig, own.job_id) == JobStatus.DONE)
        asked = await rig.runner.submit(
            TelegramFileJob("voice", "nota", "u-nota", duration=1.5, by_requester=False,
                            author_id=OTHER),
            user_id=USER, chat_id=-100, user_message_id=8,
        )  # fmt: skip
        await until(lambda: job_status(rig, asked.job_id) == JobStatus.DONE)
    finally:
        await rig.runner.stop()
    assert transcriber.calls == 1  # the second answer came from storage
    # The author's row in that chat answers both (a copy per request is not kept).
    assert [row.user_id for row in transcriptions(rig)] == [OTHER]


def test_the_retention_job_removes_download_folders_a_killed_process_left(
    tmp_path: Path,
) -> None:
    rig = build_rig(tmp_path, FakeTranscriber())
    work_dir = rig.pipeline.work_dir
    assert work_dir is not None
    stale, live = work_dir / "whisper-it-killed", work_dir / "whisper-it-running"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "media.part").write_bytes(b"x" * 100)
    an_hour_and_more = time.time() - 3700
    os.utime(stale, (an_hour_and_more, an_hour_and_more))
    rig.services.purge_old_audio()
    assert not stale.exists() and live.exists()

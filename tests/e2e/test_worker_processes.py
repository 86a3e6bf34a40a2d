"""Transcription workers as their own processes, beside a front that only accepts jobs
(``WHISPER_IT_WORKERS=0``), sharing one database: the real ``whisper-it worker`` with
the real model on SQLite, and two workers answering 200 voice notes on a real PostgreSQL
server while one of them is killed with SIGKILL in the middle."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from model.asr.normalize import error_rates
from storage.models import JobStatus
from tests.support.bot_harness import is_status_text, read_jobs, running_bot
from tests.support.postgres import fresh_database
from tests.support.processes import processes, worker_env, worker_log
from tests.support.speech import synthesize
from tests.support.worker_support import FakeTranscriber, tone_wav

SENTENCE = "Il treno per Milano parte alle otto."


@pytest.mark.slow
async def test_the_real_worker_command_answers_a_front_without_workers(
    tmp_path: Path, speech_dir: Path, model_cache: Path
) -> None:
    wav = synthesize(SENTENCE, speech_dir / "worker-command.wav").read_bytes()
    async with running_bot(tmp_path, None, workers=0, model_cache_dir=model_cache) as bot:
        env = worker_env(bot.emu, tmp_path, model_cache_dir=model_cache, batch_size=4)
        command = [sys.executable, "-m", "bot", "worker"]
        with processes([command], env, tmp_path) as (worker,):
            for n in range(3):
                bot.emu.send_voice(user_id=2000 + n, data=wav, duration=3)
            await bot.wait_for_jobs(3, done=3, timeout=240)
            assert worker.poll() is None, worker_log(tmp_path)
        assert {job.status for job in read_jobs(bot.services.db)} == {JobStatus.DONE}
        for n in range(3):
            (reply,) = bot.emu.messages(2000 + n)
            assert error_rates([SENTENCE], [reply.content]).wer < 0.6, reply.content
    assert "worker" in worker_log(tmp_path) and "ready" in worker_log(tmp_path)


@pytest.mark.slow
async def test_two_workers_answer_200_notes_exactly_once_when_one_is_killed(
    tmp_path: Path, postgres_url: str
) -> None:
    users, per_user = 50, 4
    url = fresh_database(postgres_url, "two_workers")
    overrides = {
        "workers": 0,
        "database_url": url,
        "max_queued_jobs": 1000,
        "max_pending_jobs_per_user": per_user,
        "messages_per_minute": 1000,
        "tagger": "off",
    }
    note = tone_wav(1.5)
    async with running_bot(tmp_path, FakeTranscriber(), **overrides) as bot:
        env = worker_env(
            bot.emu,
            tmp_path,
            database_url=url,
            batch_size=4,
            lease_seconds=2,
            worker_poll_seconds=0.1,
        )
        env["FAKE_TRANSCRIBE_SECONDS"] = "0.05"
        command = [sys.executable, "-m", "tests.support.worker_process"]
        with processes([command, command], env, tmp_path) as (victim, survivor):
            for _note in range(per_user):
                for user in range(users):
                    bot.emu.send_voice(user_id=3000 + user, data=note, duration=2)
            await bot.wait_for_jobs(users * per_user, done=60, timeout=120)
            victim.send_signal(signal.SIGKILL)  # mid-batch: no goodbye, leases just expire
            victim.wait(timeout=10)
            await bot.wait_for_jobs(users * per_user, done=users * per_user, timeout=180)
            assert survivor.poll() is None, worker_log(tmp_path)
        jobs = read_jobs(bot.services.db)
        assert len(jobs) == users * per_user
        assert Counter(job.status for job in jobs) == {JobStatus.DONE: users * per_user}, (
            worker_log(tmp_path)[-3000:]
        )
        assert not [job for job in jobs if job.status == JobStatus.FAILED]
        for user in range(users):
            # Every note answered once: four transcripts, no duplicate, no stuck status.
            texts = [m.content for m in bot.emu.messages(3000 + user)]
            assert texts == ["buongiorno a tutti"] * per_user, texts
            assert not any(is_status_text(text) for text in texts)

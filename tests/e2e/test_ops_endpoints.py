"""``WHISPER_IT_HTTP_PORT`` and ``WHISPER_IT_LOG_FORMAT=json`` with real processes: a
front (``python -m bot bot``, ``WORKERS=0``) and a worker (``tests.support.worker_process``: the
worker command's services with a fake model) answer ``/healthz``, ``/readyz`` and
``/metrics``; the metrics move as the Bot API emulator's voice notes are transcribed, and
every line of both logs is one JSON object. Readiness reasons are checked in-process on a
database whose schema is behind."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.commands.run_bot import SHARED_PORT
from bot.ops import http as ops_http
from bot.ops.health import Probes, queue_snapshot, readiness_problems
from bot.ops.http import OpsAddress, OpsServer
from bot.ops.metrics import OUTCOME_FAILED, Metrics, QueueSnapshot
from storage import jobs, migrations, training_records
from storage.engine import create_engine_for
from storage.models import RunStatus, utcnow
from storage.unit_of_work import Database
from tests.support.bot_harness import ADMIN, bot_process, bot_process_env
from tests.support.ops_support import free_port, wait_ready, worker_process
from tests.support.processes import run_whisper_it
from tests.support.telegram_emulator import BotApiEmulator
from tests.support.worker_support import tone_wav

NOTES = 3
NOTE_SECONDS = 1.5
# How long a test waits for the ops server to drop a stalled connection.
CLOSE_DEADLINE_SECONDS = 60.0
CONFLICTS = 3
# A connect timeout of seconds answers well within this (libpq alone: minutes).
SILENT_DATABASE_DEADLINE = 60.0
PROBES = 8  # more than the default executor's threads on a 2-core machine
CONFLICT_TEXT = "Conflict: terminated by other getUpdates request"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_front_and_worker_serve_probes_and_moving_metrics(tmp_path: Path) -> None:
    front_port, worker_port = free_port(), free_port()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with BotApiEmulator() as emu:
        common = {
            "TAGGER": "off",
            "BATCH_SIZE": "4",
            "WORKER_POLL_SECONDS": "0.2",
            "LOG_FORMAT": "json",
        }
        front_env = bot_process_env(
            emu,
            tmp_path / "data",
            tmp_path / "cache",
            WORKERS="0",
            HTTP_PORT=str(front_port),
            **common,
        )
        worker_env = bot_process_env(
            emu,
            tmp_path / "data",
            tmp_path / "cache",
            WORKERS="1",
            HTTP_PORT=str(worker_port),
            **common,
        )
        front_log, worker_log = tmp_path / "front.log", tmp_path / "worker.log"
        with bot_process(front_env, cwd, front_log) as front:
            assert wait_ready(front_port, front, front_log) == {"status": "ok", "reasons": []}
            with worker_process(worker_env, cwd, worker_log) as worker:
                wait_ready(worker_port, worker, worker_log)
                assert httpx.get(f"http://127.0.0.1:{worker_port}/healthz").status_code == 200
                before = scrape(worker_port)
                assert before[("whisper_it_queue_depth", ())] == 0
                # The model served shows as soon as it is loaded, before any job.
                assert before[("whisper_it_model_info", (("version", "fake-model"),))] == 1
                assert ("whisper_it_jobs_total", (("outcome", "done"),)) not in before
                for user in range(NOTES):
                    emu.send_voice(user_id=5000 + user, data=tone_wav(NOTE_SECONDS), duration=2)
                emu.wait_for(
                    lambda: all(
                        [m.content for m in emu.messages(5000 + user)] == ["buongiorno a tutti"]
                        for user in range(NOTES)
                    ),
                    timeout=120,
                )
                # A job is counted once its reply is recorded, just after the user sees it.
                done = ("whisper_it_jobs_total", (("outcome", "done"),))
                emu.wait_for(lambda: scrape(worker_port).get(done) == NOTES, timeout=30)
                after = scrape(worker_port)
                front_metrics = scrape(front_port)
    assert after[("whisper_it_jobs_total", (("outcome", "done"),))] == NOTES
    assert after[("whisper_it_transcription_seconds_count", ())] == NOTES
    assert after[("whisper_it_audio_seconds_sum", ())] == NOTES * NOTE_SECONDS
    assert after[("whisper_it_batch_size_sum", ())] == NOTES
    assert after[("whisper_it_model_info", (("version", "fake-model"),))] == 1
    assert after[("whisper_it_queue_depth", ())] == 0
    assert after[("whisper_it_oldest_job_age_seconds", ())] == 0
    # The front transcribes nothing but reads the same shared queue.
    assert front_metrics[("whisper_it_queue_depth", ())] == 0
    assert ("whisper_it_jobs_total", (("outcome", "done"),)) not in front_metrics
    front_lines, worker_lines = json_lines(front_log, emu.token), json_lines(worker_log, emu.token)
    accepted = [line for line in front_lines if line["message"].endswith("accepted")]
    answered = [line for line in worker_lines if "answered" in line["message"]]
    assert {line["user_id"] for line in accepted} == {5000 + user for user in range(NOTES)}
    assert {line["job_id"] for line in answered} == {line["job_id"] for line in accepted}
    assert all(line["logger"] == "bot.job_processing" for line in answered)


def json_lines(log: Path, token: str) -> list[dict]:
    """Every line of a process's output, parsed: each must be one JSON object."""
    text = log.read_text()
    assert token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    return lines


async def test_readyz_lists_every_reason_with_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database.open(url)
    migrations.downgrade(url, "-1")  # a database an older version left
    probes = Probes(
        db=db,
        workers_alive=lambda: False,
        model_loaded=lambda: False,
        updates_flowing=lambda: False,
    )
    server = OpsServer(OpsAddress("127.0.0.1", free_port()), Metrics(), probes)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.address.port}") as http:
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
            missing = await http.get("/nothing")
    finally:
        await server.stop()
        db.close()
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    reasons = " | ".join(body["reasons"])
    assert f"needs {migrations.head()}" in reasons
    assert "model not loaded" in reasons
    assert "Telegram updates" in reasons
    assert "worker task stopped" in reasons
    assert health.status_code == 503
    assert missing.status_code == 404


def test_queue_and_training_metrics_are_read_from_the_database(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'q.db'}")
    now = utcnow()
    with db.unit_of_work() as uow:
        jobs.enqueue_job(uow.session, kind="k", payload={}, now=now - timedelta(seconds=90))
        jobs.enqueue_job(uow.session, kind="k", payload={}, now=now - timedelta(seconds=5))
        outcomes = [
            (RunStatus.DONE, True),
            (RunStatus.DONE, False),
            (RunStatus.DONE, True),
            (RunStatus.FAILED, None),
        ]
        for status, promoted in outcomes:
            run = training_records.create_training_run(uow.session, config={})
            report = None if promoted is None else {"promoted": promoted}
            training_records.finish_training_run(uow.session, run.id, status=status, report=report)
        training_records.create_training_run(uow.session, config={})  # still pending
        uow.commit()
    metrics = Metrics(read_database=lambda: queue_snapshot(db))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    db.close()
    assert samples[("whisper_it_queue_depth", ())] == 2
    assert samples[("whisper_it_database_up", ())] == 1
    assert 90 <= samples[("whisper_it_oldest_job_age_seconds", ())] < 120
    runs = "whisper_it_training_runs_total"
    assert samples[(runs, (("decision", "promoted"),))] == 2
    assert samples[(runs, (("decision", "refused"),))] == 1
    assert samples[(runs, (("decision", "failed"),))] == 1


def test_the_ops_port_never_shares_the_webhook_port(tmp_path: Path) -> None:
    settings = {
        "TELEGRAM_TOKEN": "123456:not-contacted",
        "WEBHOOK_URL": "https://bot.example/telegram",
        "WEBHOOK_PORT": "8443",
        "HTTP_PORT": "8443",
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = run_whisper_it(["bot"], tmp_path, settings)
    assert result.returncode == 1
    assert result.stderr.strip() == f"whisper-it: {SHARED_PORT.format(port=8443)}"
    assert not (tmp_path / "data").exists()  # refused before anything was built


async def test_a_half_sent_request_is_dropped_not_held_for_an_hour(tmp_path: Path) -> None:
    """A client that sends part of a request, or nothing, and waits must not keep its
    connection (and a file descriptor) for aiohttp's default hour."""
    db = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    probes = Probes(db=db, workers_alive=lambda: True)
    server = OpsServer(OpsAddress("127.0.0.1", free_port()), Metrics(), probes)
    await server.start()
    try:
        port = server.address.port
        half_reader, half_writer = await asyncio.open_connection("127.0.0.1", port)
        half_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        await half_writer.drain()
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        # Closed by the server well before this generous deadline (an hour without the fix).
        assert await asyncio.wait_for(half_reader.read(), CLOSE_DEADLINE_SECONDS) == b""
        assert await asyncio.wait_for(idle_reader.read(), CLOSE_DEADLINE_SECONDS) == b""
        half_writer.close()
        idle_writer.close()
    finally:
        await server.stop()
        db.close()


def test_a_second_poller_makes_the_front_unready_and_alerts_once(tmp_path: Path) -> None:
    """409 Conflict to getUpdates (another process polls with the same token): /readyz says
    so, and the admins hear it once, not at every retry."""
    port = free_port()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    log_path = tmp_path / "front.log"
    with BotApiEmulator() as emu:
        emu.open_chat(user_id=ADMIN)
        env = bot_process_env(
            emu, tmp_path / "data", tmp_path / "cache", WORKERS="0", HTTP_PORT=str(port)
        )
        with bot_process(env, cwd, log_path) as front:
            wait_ready(port, front, log_path)
            for _ in range(CONFLICTS):
                emu.fail_next("getUpdates", error_code=409, description=CONFLICT_TEXT)
            # Each 409 is logged as one line before its alert is considered.
            emu.wait_for(
                lambda: log_path.read_text().count(CONFLICT_TEXT) >= CONFLICTS, timeout=120
            )
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
            emu.wait_for(lambda: conflict_alerts(emu), timeout=60)  # the first is sent
            alerts = conflict_alerts(emu)  # and the later ones were not
    assert ready.status_code == 503 and "Telegram updates" in ready.text
    assert len(alerts) == 1
    assert "Traceback" not in log_path.read_text()


def conflict_alerts(emu: BotApiEmulator) -> list[str]:
    return [m.content for m in emu.messages(ADMIN) if "Conflict" in m.content]


class HungEngine:
    """A database that never answers: each connection attempt blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.attempts = 0

    def connect(self) -> None:  # (also Metrics' read_database)
        self.attempts += 1
        self.release.wait()
        raise ConnectionError("released")


async def test_probes_on_a_hung_database_hold_one_thread_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each /readyz used to leave a thread stuck in the process's shared default executor,
    until nothing else could run there; /metrics waited without a limit."""
    monkeypatch.setattr(ops_http, "CHECK_TIMEOUT_SECONDS", 1.0)
    engine = HungEngine()
    database = SimpleNamespace(engine=engine)
    probes = Probes(db=database, workers_alive=lambda: True)  # type: ignore[arg-type]
    metrics = Metrics(read_database=engine.connect)  # type: ignore[arg-type]
    server = OpsServer(OpsAddress("127.0.0.1", free_port()), metrics, probes)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.address.port}", timeout=60
        ) as http:
            ready = await asyncio.gather(*(http.get("/readyz") for _ in range(PROBES)))
            again = await http.get("/readyz")
            scraped = await http.get("/metrics")
        attempts = engine.attempts
    finally:
        engine.release.set()
        await server.stop()
    assert {response.status_code for response in [*ready, again]} == {503}
    assert "did not answer" in again.text
    assert attempts == 1  # one check at a time, the others shared its result
    assert scraped.status_code == 503  # answered, within the same timeout


async def test_readiness_on_a_silent_postgres_server_fails_within_seconds() -> None:
    """A server that accepts TCP and never answers (hung, or a proxy whose backend died):
    without a connect timeout, libpq waited for minutes per check."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        engine = create_engine_for(f"postgresql+psycopg://user:pw@127.0.0.1:{port}/whisper")
        probes = Probes(db=SimpleNamespace(engine=engine), workers_alive=lambda: True)  # type: ignore[arg-type]
        try:
            reasons = await asyncio.wait_for(
                asyncio.to_thread(readiness_problems, probes), SILENT_DATABASE_DEADLINE
            )
        finally:
            engine.dispose()
    assert reasons == ["database unreachable: OperationalError"]


async def test_metrics_say_the_database_is_down_and_keep_the_process_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A down database used to turn /metrics into a 503 with a traceback per scrape, hiding
    the per-process counters one would alert on during that same outage."""

    def unreachable() -> QueueSnapshot:
        raise ConnectionRefusedError("database down")

    metrics = Metrics(read_database=unreachable)
    metrics.job_concluded(OUTCOME_FAILED)
    probes = Probes(db=SimpleNamespace(engine=None), workers_alive=lambda: True)  # type: ignore[arg-type]
    server = OpsServer(OpsAddress("127.0.0.1", free_port()), metrics, probes)
    await server.start()
    try:
        first = await asyncio.to_thread(scrape, server.address.port)
        second = await asyncio.to_thread(scrape, server.address.port)
    finally:
        await server.stop()
    for samples in (first, second):
        assert samples[("whisper_it_database_up", ())] == 0
        assert samples[("whisper_it_jobs_total", (("outcome", OUTCOME_FAILED),))] == 1
        assert ("whisper_it_queue_depth", ()) not in samples
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # once per interval

"""Starting bot and worker processes for tests and benchmarks: their environment, their
lifetime (SIGTERM, then SIGKILL) and their logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.bot_harness import bot_settings
from tests.support.telegram_emulator import BotApiEmulator

REPO = Path(__file__).resolve().parents[2]


def worker_env(emu: BotApiEmulator, data_dir: Path, **values: object) -> dict[str, str]:
    settings = bot_settings(data_dir, emu)
    env = {key: value for key, value in os.environ.items() if not key.startswith("WHISPER_IT_")}
    env |= {
        "WHISPER_IT_TELEGRAM_TOKEN": emu.token,
        "WHISPER_IT_TELEGRAM_API_URL": settings.telegram_api_url,
        "WHISPER_IT_TELEGRAM_FILE_URL": settings.telegram_file_url,
        "WHISPER_IT_DATA_DIR": str(data_dir),
        "WHISPER_IT_TAGGER": "off",
        "WHISPER_IT_OFFLINE": "true",
        "WHISPER_IT_LOG_LEVEL": "INFO",
        # A training run would judge the packaged general set (minutes on 2 cores).
        "WHISPER_IT_EVAL_GENERAL_SET": "none",
        "PYTHONPATH": str(REPO),
    }
    env |= {f"WHISPER_IT_{key.upper()}": str(value) for key, value in values.items()}
    return env


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str], logs: Path) -> Iterator[list]:
    started = []
    try:
        for number, command in enumerate(commands):
            log = (logs / f"worker-{number}.log").open("wb")
            started.append(
                subprocess.Popen(command, env=env, cwd=logs, stdout=log, stderr=subprocess.STDOUT)
            )
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def worker_log(logs: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("worker-*.log")))


def run_whisper_it(
    command: list[str], cwd: Path, settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -m bot COMMAND`` in a clean environment: only the given WHISPER_IT_*
    settings (keys without the prefix) and this checkout on the import path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WHISPER_IT_")}
    env |= {f"WHISPER_IT_{key}": value for key, value in settings.items()}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "bot", *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )

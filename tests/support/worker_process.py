"""A ``whisper-it worker`` process with a fake model, for the many-jobs process tests: the
same settings, services, queue, leases and Bot API delivery as the real command
(``bot.commands.worker.serve``); only the model is a stand-in, because 200 real
transcriptions on two CPU cores would take minutes. tests/e2e/test_worker_processes.py also
runs the real command with the real model on a few notes.

Run as ``python -m tests.support.worker_process`` with WHISPER_IT_* settings in the environment;
``FAKE_TRANSCRIBE_SECONDS`` sets the fake model's time per clip.
"""

from __future__ import annotations

import asyncio
import os

from bot.bootstrap import Seams, bootstrap
from bot.cli import configure_logging, secrets_of
from bot.commands.worker import serve
from bot.settings import Settings
from tests.support.worker_support import FakeTranscriber

DELAY_VARIABLE = "FAKE_TRANSCRIBE_SECONDS"


def main() -> None:
    settings = Settings()
    configure_logging(
        settings.log_level, secrets=secrets_of(settings), json_lines=settings.log_format == "json"
    )
    transcriber = FakeTranscriber(delay=float(os.environ.get(DELAY_VARIABLE, "0.01")))
    seams = Seams(load_model=lambda _spec: transcriber, model_spec=lambda: "fake")  # type: ignore[arg-type,return-value]
    services = bootstrap(settings, role="worker", seams=seams)
    try:
        asyncio.run(serve(services))
    finally:
        services.close()


if __name__ == "__main__":
    main()

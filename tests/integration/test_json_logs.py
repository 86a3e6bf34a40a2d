"""``WHISPER_IT_LOG_FORMAT=json`` formatting: one parseable object per record, secrets
redacted in messages and tracebacks, job and user ids from the context or the record.
(tests/e2e/test_ops_endpoints.py parses the logs of a real front and worker line by line.)"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import configure_logging
from bot.commands.worker import NO_TOKEN
from bot.ops.log_format import REDACTED, log_context
from tests.support.processes import run_whisper_it

SECRET = "123456:ABCDEF-secret-token"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("DEBUG", secrets=(SECRET,), json_lines=True)
    yield stream
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    logging.captureWarnings(False)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_record_is_one_json_line_with_ids_and_no_secret(captured: io.StringIO) -> None:
    log = logging.getLogger("whisper.test")
    log.info("plain")
    with log_context(job_id=7, user_id=42):
        log.warning("calling https://api.telegram.org/bot%s/getMe\nsecond line", SECRET)
        try:
            raise RuntimeError(f"token {SECRET} refused")
        except RuntimeError:
            log.exception("failed")
    log.info("explicit", extra={"job_id": 9, "user_id": 3})
    plain, warning, failed, explicit = records(captured)
    assert SECRET not in captured.getvalue()
    assert plain["message"] == "plain" and "job_id" not in plain and plain["level"] == "INFO"
    assert plain["logger"] == "whisper.test" and plain["time"].endswith("+00:00")
    assert warning["message"].endswith("\nsecond line") and REDACTED in warning["message"]
    assert (warning["job_id"], warning["user_id"]) == (7, 42)
    assert failed["level"] == "ERROR" and "RuntimeError: token <redacted>" in failed["exception"]
    assert (explicit["job_id"], explicit["user_id"]) == (9, 3)


def test_python_warnings_are_json_too(captured: io.StringIO) -> None:
    import warnings

    warnings.warn("old API", DeprecationWarning, stacklevel=1)
    (line,) = records(captured)
    assert line["logger"] == "py.warnings" and "old API" in line["message"]


def test_a_command_error_is_a_json_line_too(tmp_path: Path) -> None:
    settings = {"LOG_FORMAT": "json", "DATA_DIR": str(tmp_path / "data")}
    result = run_whisper_it(["worker"], tmp_path, settings)
    assert result.returncode == 1
    (line,) = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["level"] == "ERROR" and line["message"] == f"whisper-it: {NO_TOKEN}"

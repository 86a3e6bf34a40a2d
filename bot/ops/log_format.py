"""``WHISPER_IT_LOG_FORMAT=json``: every log line one JSON object, secrets redacted; and
the job and user a line is about, set by the code that works on them."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

REDACTED = "<redacted>"

_job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_id", default=None)
_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)


@contextlib.contextmanager
def log_context(*, job_id: int | None = None, user_id: int | None = None) -> Iterator[None]:
    """Lines logged inside (in this task or thread) carry these ids."""
    job_token, user_token = _job_id.set(job_id), _user_id.set(user_id)
    try:
        yield
    finally:
        _job_id.reset(job_token)
        _user_id.reset(user_token)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def add_secret(secret: str) -> None:
    """Redact ``secret`` from now on in every log handler configured so far: for a value
    made after logging was set up, such as a generated webhook secret (which PTB's DEBUG
    line for ``setWebhook`` would otherwise show)."""
    if not secret:
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter | JsonFormatter):
            handler.formatter.redact_also(secret)


class _Redacting:
    _secrets: tuple[str, ...]

    def redact_also(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)


class RedactingFormatter(_Redacting, logging.Formatter):
    """Secrets (the bot token is part of every Bot API URL) never reach the log output,
    tracebacks included."""

    def __init__(self, fmt: str, secrets: tuple[str, ...]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(secret for secret in secrets if secret)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


class JsonFormatter(_Redacting, logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the job
    and user ids where known, and the traceback (``exception``) if any."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage(), self._secrets),
        }
        job_id = getattr(record, "job_id", None) or _job_id.get()
        user_id = getattr(record, "user_id", None) or _user_id.get()
        if job_id is not None:
            entry["job_id"] = job_id
        if user_id is not None:
            entry["user_id"] = user_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info), self._secrets)
        elif record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info), self._secrets)
        # json.dumps escapes newlines: a traceback stays on its one line.
        return json.dumps(entry, ensure_ascii=False, default=str)

"""Outgoing flood control: a Bot API call answered 429 "retry after N" was not performed,
so it is repeated after N seconds (every call: sends, edits, uploads). A transcript is
then neither lost (the send is not given up) nor doubled (nothing was sent the first
time). Each repetition is counted in ``whisper_it_telegram_retries_total``.

Calls made under ``without_flood_waits()`` are not repeated: a cosmetic edit (a queued
message's new place) gives up at once rather than keep its job waiting for minutes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

# Telegram asks for seconds to minutes; a call that would wait longer is given up (the
# job then reports the failure) rather than holding a worker for longer.
MAX_RETRIES = 5
MAX_WAIT_SECONDS = 300.0
# Added to Telegram's wait, so the repeated call lands after the window, not on its edge.
RETRY_MARGIN_SECONDS = 0.1
# Set by ``without_flood_waits()``: the waits Telegram asked for and were not honoured.
_REFUSED: ContextVar[list[float] | None] = ContextVar("telegram_flood_refused", default=None)


@contextmanager
def without_flood_waits() -> Iterator[list[float]]:
    """Bot API calls made in this block (and in tasks started in it) raise a 429 at once
    instead of waiting it out; the yielded list gets the seconds each one was asked to
    wait, so the caller can try again later."""
    refused: list[float] = []
    token = _REFUSED.set(refused)
    try:
        yield refused
    finally:
        _REFUSED.reset(token)


class RetryAfterLimiter(BaseRateLimiter[None]):
    """PTB's rate-limiter hook used only to honour 429 answers (no throttling before)."""

    def __init__(
        self,
        *,
        on_retry: Callable[[str], None] | None = None,
        max_retries: int = MAX_RETRIES,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
    ) -> None:
        self._on_retry = on_retry
        self._max_retries = max_retries
        self._max_wait = max_wait_seconds

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        retries = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc)
                if (refused := _REFUSED.get()) is not None:
                    refused.append(wait)
                    raise
                if retries >= self._max_retries or wait > self._max_wait:
                    raise
                retries += 1
                log.warning(
                    "Telegram asked to wait %.0f s before %s (retry %d of %d)",
                    wait,
                    endpoint,
                    retries,
                    self._max_retries,
                )
                if self._on_retry is not None:
                    self._on_retry(endpoint)
                await asyncio.sleep(wait + RETRY_MARGIN_SECONDS)


def _seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the type becomes timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        retry_after = exc.retry_after
    if isinstance(retry_after, dt.timedelta):
        return retry_after.total_seconds()
    return float(retry_after)

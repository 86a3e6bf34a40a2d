"""Outgoing flood control: a Bot API call answered 429 "retry after N" was not performed,
so it is repeated after N seconds (every call: sends, edits, uploads). A transcript is
then neither lost (the send is not given up) nor doubled (nothing was sent the first
time). Each repetition is counted in ``whisper_it_telegram_retries_total``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from collections.abc import Callable, Coroutine
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

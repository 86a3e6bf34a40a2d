"""Whether Telegram updates are really arriving in polling mode, read from the answers to
``getUpdates`` (PTB's ``Updater.running`` stays True after its polling loop has given up).

``WatchedUpdatesRequest`` is the request object PTB uses for ``getUpdates`` only, so every
answer it sees comes from the polling loop, after startup. It tells ``UpdatesWatch``:

- a successful answer: updates are flowing;
- 409 Conflict: another process polls with the same token and takes (some of) the updates;
- 401: Telegram refused the token (revoked or regenerated in @BotFather). PTB's loop
  stops for good; the watch calls ``on_token_refused`` so the process can end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from telegram.request import HTTPXRequest

# getUpdates long-polls for 10 s when idle: no successful answer for this long means the
# polling loop is stuck or dead.
STALE_SECONDS = 60.0
# Not ready for this long after a 409 Conflict: another instance is taking the updates.
CONFLICT_SECONDS = 60.0
# PTB's own getUpdates request uses one connection (ApplicationBuilder's default).
GET_UPDATES_POOL_SIZE = 1


class UpdatesWatch:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_success: float | None = None
        self._last_conflict: float | None = None
        self.token_refused = False
        self.on_token_refused: Callable[[], None] | None = None

    def answered(self, status: int) -> None:
        """One answer to getUpdates, by HTTP status."""
        with self._lock:
            now = self._clock()
            if status == HTTPStatus.OK:
                self._last_success = now
            elif status == HTTPStatus.CONFLICT:
                self._last_conflict = now
            first_refusal = status == HTTPStatus.UNAUTHORIZED and not self.token_refused
            if first_refusal:
                self.token_refused = True
        if first_refusal and self.on_token_refused is not None:
            self.on_token_refused()

    def asking(self) -> None:
        """A getUpdates call starts: the first one gets the full stale period to answer
        (in webhook mode nothing polls, and nothing goes stale)."""
        with self._lock:
            if self._last_success is None:
                self._last_success = self._clock()

    def problem(self) -> str | None:
        """Why updates are not flowing; None if they are (or if nothing polls here)."""
        with self._lock:
            now = self._clock()
            if self.token_refused:
                return "Telegram refused the bot token"
            if self._last_conflict is not None and now - self._last_conflict < CONFLICT_SECONDS:
                return "another process polls with the same token (409 Conflict)"
            if self._last_success is not None and now - self._last_success > STALE_SECONDS:
                return f"no answer from getUpdates for over {STALE_SECONDS:.0f} s"
            return None


class WatchedUpdatesRequest(HTTPXRequest):
    """PTB's getUpdates request, reporting each answer's status to an ``UpdatesWatch``."""

    def __init__(self, watch: UpdatesWatch, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", GET_UPDATES_POOL_SIZE)
        super().__init__(**kwargs)
        self._watch = watch

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        self._watch.asking()
        status, payload = await super().do_request(*args, **kwargs)
        self._watch.answered(status)
        return status, payload

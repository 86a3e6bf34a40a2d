"""An alert worth sending once, then not again for a while (a condition that persists,
such as YouTube refusing this server, would otherwise page the admins per job)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ONE_HOUR_SECONDS = 3600.0


class ThrottledAlert:
    def __init__(
        self,
        interval_seconds: float = ONE_HOUR_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        """True at most once per interval: the caller sends the alert."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return False
            self._last = now
            return True

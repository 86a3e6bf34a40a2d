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


# Keys a KeyedThrottle remembers at most (old ones are forgotten first).
MAX_KEYS = 256


class KeyedThrottle:
    """``ThrottledAlert`` per key (an error type, an alert's text): each key is due at most
    once per interval."""

    def __init__(
        self, interval_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str) -> bool:
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._last.pop(key, None)
            self._last[key] = now  # (re)inserted last: dicts keep insertion order
            while len(self._last) > MAX_KEYS:
                del self._last[next(iter(self._last))]
            return True

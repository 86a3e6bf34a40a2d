"""Flood control: at most N messages per user per minute."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """At most ``limit`` events per user in any ``window`` seconds (in memory: a restart
    forgives everyone, which is fine for flood control)."""

    def __init__(self, *, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, user_id: int, *, now: float | None = None) -> float:
        """Record an event; 0 if allowed, else the seconds to wait (the event is dropped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.setdefault(user_id, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            return 0.0

"""Flood control: at most N messages per user per minute."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable

# Every this many events, users quiet for a whole window are forgotten.
SWEEP_EVERY = 1024


class RateLimiter:
    """At most ``limit`` events per key (a user, a chat, or a user's presses of one kind of
    button) in any ``window`` seconds (in memory: a restart forgives everyone, which is
    fine for flood control)."""

    def __init__(self, *, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[Hashable, deque[float]] = {}
        # Until when a user knows they are over the limit: one notice per stretch, or the
        # notices themselves would flood the chat.
        self._told_until: dict[Hashable, float] = {}
        self._hits = 0
        self._lock = threading.Lock()

    def hit(self, key: Hashable, *, now: float | None = None) -> float:
        """Record an event; 0 if allowed, else the seconds to wait (the event is dropped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._hits += 1
            if self._hits % SWEEP_EVERY == 0:
                self._sweep(now)
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            return 0.0

    def notice_due(self, key: Hashable, wait: float, *, now: float | None = None) -> bool:
        """Whether to tell ``key`` of a refusal (``wait``: what ``hit`` returned):
        once, until the stretch it announced is over."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._told_until.get(key, 0.0) > now:
                return False
            self._told_until[key] = now + wait
            return True

    def _sweep(self, now: float) -> None:
        quiet = [user for user, events in self._events.items()
                 if not events or events[-1] <= now - self.window]  # fmt: skip
        for user in quiet:
            del self._events[user]
        for user in [u for u, until in self._told_until.items() if until <= now]:
            del self._told_until[user]

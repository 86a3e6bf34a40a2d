"""Albums asked for with one caption.

Several files sent together (an album: Telegram's media group) reach the bot as one
message each, sharing a ``media_group_id``, and only one of them carries the caption: in
a group, "@bot" under an album asks for every file in it, not just the one that happens
to hold the caption (the first item or the last, depending on the client). An item
without the caption waits a moment for its album's caption to arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Telegram delivers an album's items within a second or two of each other.
ALBUM_WAIT_SECONDS = 3.0
# How long an album is remembered as asked for (items of one album never come later).
ALBUM_MEMORY_SECONDS = 120.0
# The most albums remembered at once (oldest forgotten first): a flood of albums in many
# groups costs bounded memory.
MAX_ALBUMS = 4096

AlbumKey = tuple[int, str]  # (chat id, media group id)


@dataclass
class _Album:
    seen: float
    asked: asyncio.Event = field(default_factory=asyncio.Event)


class AlbumWatch:
    """Which albums a caption addressed to the bot, for :data:`ALBUM_MEMORY_SECONDS`."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._albums: dict[AlbumKey, _Album] = {}

    def mark_asked(self, key: AlbumKey) -> None:
        """The item with the caption addressed the bot: every item of the album is asked for
        (the ones waiting in :meth:`asked` go on at once)."""
        self._entry(key).asked.set()

    async def asked(self, key: AlbumKey, *, wait: float = ALBUM_WAIT_SECONDS) -> bool:
        """Whether the album's caption addressed the bot, waiting up to ``wait`` seconds
        for it to arrive."""
        album = self._entry(key)
        if album.asked.is_set():
            return True
        try:
            await asyncio.wait_for(album.asked.wait(), wait)
        except TimeoutError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._albums)

    def _entry(self, key: AlbumKey) -> _Album:
        now = self._clock()
        album = self._albums.get(key)
        if album is None:
            self._forget_old(now)
            album = self._albums[key] = _Album(seen=now)
        return album

    def _forget_old(self, now: float) -> None:
        # Insertion order is age order: drop from the front while too old or too many.
        while self._albums:
            key, oldest = next(iter(self._albums.items()))
            if now - oldest.seen < ALBUM_MEMORY_SECONDS and len(self._albums) < MAX_ALBUMS:
                return
            del self._albums[key]

"""AlbumWatch (bot/albums.py): waits for an album's caption, and stays bounded."""

from __future__ import annotations

import asyncio

from bot.albums import ALBUM_MEMORY_SECONDS, MAX_ALBUMS, AlbumWatch


async def test_a_waiting_item_goes_on_when_the_caption_arrives() -> None:
    watch = AlbumWatch()
    waiting = asyncio.create_task(watch.asked((1, "a"), wait=5.0))
    await asyncio.sleep(0)
    watch.mark_asked((1, "a"))
    assert await asyncio.wait_for(waiting, 1.0) is True
    assert await watch.asked((1, "a"), wait=0.0) is True  # later items: at once


async def test_no_caption_means_not_asked_after_the_wait() -> None:
    watch = AlbumWatch()
    watch.mark_asked((1, "a"))
    assert await watch.asked((1, "b"), wait=0.01) is False  # another album
    assert await watch.asked((2, "a"), wait=0.01) is False  # the same id in another chat


async def test_old_albums_are_forgotten_and_the_count_is_capped() -> None:
    now = [0.0]
    watch = AlbumWatch(clock=lambda: now[0])
    for number in range(MAX_ALBUMS + 100):
        watch.mark_asked((1, str(number)))
    assert len(watch) == MAX_ALBUMS
    now[0] = ALBUM_MEMORY_SECONDS + 1
    watch.mark_asked((1, "new"))
    assert len(watch) == 1
    assert await watch.asked((1, "0"), wait=0.0) is False

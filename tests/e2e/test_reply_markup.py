"""Issue 18: captions are cut on their text, never inside HTML markup, and a video's title
is clipped, so no page can make a reply fail (the Bot API emulator's own parser checks)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from bot import formatting
from bot.formatting import MAX_NOTE_CHARS, TELEGRAM_CAPTION_LIMIT, transcript_messages
from storage.models import JobStatus
from tests.support.bot_harness import USER, running_bot
from tests.support.media_server import VIDEO_NAME, MediaServer, video_page_html
from tests.support.telegram_emulator.wire import _formatted

HOSTILE_TITLE = "Tom & Jerry <3 " * 400  # 6,000 characters, with '&' and '<' to escape
TEXT = "Il treno per Milano parte alle otto & arriva alle dieci. " * 300  # over 12,000


def _visible(markup: str) -> str:
    """What Telegram shows; raises like the Bot API ("can't parse entities") on bad HTML."""
    text, _entities = _formatted(markup, "HTML", None)
    return text


@pytest.mark.parametrize("note", [HOSTILE_TITLE, "🎬 " + "x" * 5000, None])
@pytest.mark.parametrize("tags", [(), ("#treno", "#milano")])
def test_file_caption_is_valid_markup_within_the_limit(note: str | None, tags: tuple) -> None:
    content = transcript_messages(TEXT, tags, note=note, file_threshold=12_000)
    assert content.as_file
    (caption,) = content.messages
    shown = _visible(caption)
    assert len(shown.encode("utf-16-le")) // 2 <= TELEGRAM_CAPTION_LIMIT
    assert shown.startswith("📄 Trascrizione completa nel file.")
    assert "Il treno per Milano parte alle otto & arriva" in shown  # the preview survives
    if note:
        assert note.strip()[:20] in shown


def test_inline_reply_with_a_huge_title_stays_within_the_limits() -> None:
    content = transcript_messages("Ciao a tutti.", ("#saluti",), note=HOSTILE_TITLE)
    assert not content.as_file
    for message in content.messages:
        assert len(_visible(message)) <= formatting.TELEGRAM_MESSAGE_LIMIT
    shown = _visible(content.messages[-1])
    title_line = shown.splitlines()[-1]
    assert len(title_line) <= MAX_NOTE_CHARS and title_line.endswith("…")


def test_clip_prefers_a_word_break() -> None:
    assert formatting.clip("uno due tre quattro", 12) == "uno due…"
    assert formatting.clip("breve", 12) == "breve"
    assert len(formatting.clip("x" * 50, 12)) == 12


async def test_a_link_with_a_hostile_title_gets_its_transcript(
    tmp_path: Path, ct2_transcriber, media_server: MediaServer
) -> None:
    """Through the bot: a page titled with 6,000 characters of markup-like text, and a
    transcript long enough to go as a file, so the title lands in a caption."""
    page = media_server.add_file(
        "titolo-lungo.html", video_page_html(VIDEO_NAME, title=html.escape(HOSTILE_TITLE))
    )
    async with running_bot(
        tmp_path, ct2_transcriber, allowed_url_hosts=["127.0.0.1"], long_text_as_file_chars=20
    ) as bot:
        sent = bot.emu.send_text(user_id=USER, text=page)
        job = await bot.wait_job(sent["message_id"], chat_id=USER, timeout=90)
        assert job.status == JobStatus.DONE, job.error
        replies = bot.replies_to(sent["message_id"], chat_id=USER)
        document = next(r for r in replies if r.content.startswith("📄"))
        assert "Tom & Jerry <3" in document.content
        assert len(document.content) <= TELEGRAM_CAPTION_LIMIT

"""Links: the loopback media server stands in for YouTube (allowed as 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from model.asr.normalize import error_rates
from storage.models import JobStatus
from tests.support.bot_harness import USER, running_bot
from tests.support.media_server import DEFAULT_SPEECH, PAGE_NAME, VIDEO_NAME, MediaServer

MAX_CER = 0.4


async def test_link_gets_transcript_and_subtitles_and_other_links_are_refused(
    tmp_path: Path, ct2_transcriber, media_server: MediaServer
) -> None:
    async with running_bot(tmp_path, ct2_transcriber, allowed_url_hosts=["127.0.0.1"]) as bot:
        emu = bot.emu
        # Hosts that are not allowed, and playlists, never reach any server.
        before = list(media_server.requests)
        refused = {
            f"http://localhost:{media_server.port}/{VIDEO_NAME}": "not_allowed_host",
            f"http://{media_server.netloc}@evil.example/{VIDEO_NAME}": "not_allowed_host",
            "https://vimeo.com/12345": "not_allowed_host",
            "https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs-TCfs": (
                "playlist"
            ),
        }
        for number, (url, reason) in enumerate(refused.items(), start=1):
            emu.send_text(user_id=USER, text=f"Trascrivi questo: {url}")
            await emu.async_wait_for(lambda n=number: len(bot.texts()) == n)
            assert bot.texts()[-1] == messages.link_error(reason), url
        # A linked word (a forwarded channel post): the address is in the entity.
        emu.send_text(
            user_id=USER, text="Trascrivi questo video",
            entities=[{"type": "text_link", "offset": 17, "length": 5,
                       "url": "https://vimeo.com/777"}],
        )  # fmt: skip
        await emu.async_wait_for(lambda: len(bot.texts()) == len(refused) + 1)
        assert bot.texts()[-1] == messages.link_error("not_allowed_host")
        assert media_server.requests == before
        assert bot.jobs() == []

        sent = emu.send_text(user_id=USER, text=f"Ecco il video: {media_server.url(PAGE_NAME)}")
        replies = await bot.wait_reply(sent["message_id"], timeout=60)
        (job,) = bot.jobs()
        assert job.status == JobStatus.DONE, job
        text_reply, srt_reply = replies
        transcript = text_reply.content.split("\n\n")[0]
        assert error_rates([DEFAULT_SPEECH], [transcript]).cer < MAX_CER, transcript
        assert "🎬" in text_reply.content  # the video's title
        assert srt_reply.document is not None and srt_reply.document.name.endswith(".srt")
        srt = srt_reply.document.data.decode()
        assert srt.startswith("1\n00:00:0") and " --> " in srt
        assert all(m.reply_to == sent["message_id"] for m in replies)
        assert any("/" + VIDEO_NAME in path for path in media_server.requests[len(before) :])
        # Stored as a YouTube-kind transcription; both messages are correction handles.
        stored = bot.transcription_by_reply(text_reply.message_id)
        assert stored is not None and stored.source_kind == "youtube"
        assert stored.source_ref and str(media_server.port) in stored.source_ref
        assert stored.reply_message_ids == (text_reply.message_id, srt_reply.message_id)
        # The download progress was shown in the status message.
        assert any(h.startswith("⬇️") for h in text_reply.edit_history), text_reply.edit_history

"""YouTube from a server: ``WHISPER_IT_YTDLP_COOKIES_FILE`` reaches yt-dlp (a private copy,
YouTube links only, never logged); "Sign in to confirm you're not a bot" tells the user
the truth and alerts the admins once an hour; ``doctor`` warns about an old yt-dlp.

YouTube itself cannot be reached from here: its answer is stood in for by making yt-dlp's
``extract_info`` raise the error YouTube's extractor raises (its text, verbatim)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
import yt_dlp

from bot import messages
from bot.commands.doctor import YTDLP_MAX_AGE_DAYS, check_ytdlp, ytdlp_release_date
from bot.ops.throttled_alert import ThrottledAlert
from bot.settings import Settings
from model.media import download_process, youtube
from model.media.links import LinkError, parse_link
from model.media.youtube import DownloadLimits, download_audio
from tests.support.bot_harness import ADMIN, USER, running_bot
from tests.support.worker_support import FakeTranscriber

VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
BOT_CHECK = (
    "ERROR: [youtube] dQw4w9WgXcQ: Sign in to confirm you’re not a bot. Use "
    "--cookies-from-browser or --cookies for the authentication. See  "
    "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to "
    "manually pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#"
    "exporting-youtube-cookies  for tips on effectively exporting YouTube cookies"
)
COOKIE_VALUE = "SECRET-SID-VALUE-0123456789"
COOKIES = (
    f"# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t2000000000\tSID\t{COOKIE_VALUE}\n"
)


async def test_bot_check_tells_the_truth_and_alerts_admins_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(COOKIES)
    cookies.chmod(0o400)  # a read-only secret: yt-dlp must not need to write it
    seen: list[dict[str, Any]] = []

    def refused(self: yt_dlp.YoutubeDL, url: str, *args: Any, **kwargs: Any) -> None:
        path = self.params.get("cookiefile")
        seen.append({"path": path, "text": Path(path).read_text() if path else None})
        raise yt_dlp.utils.DownloadError(BOT_CHECK)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", refused)
    # yt-dlp runs in a child process (issue 18) where this patch would not reach: here it
    # runs in the test's process, on the same code path inside the child.
    monkeypatch.setattr(download_process, "download_in_child", youtube.download_in_process)
    caplog.set_level(logging.DEBUG)
    async with running_bot(
        tmp_path, FakeTranscriber(), tagger="off", ytdlp_cookies_file=cookies
    ) as bot:
        bot.emu.open_chat(user_id=ADMIN)
        for _ in range(2):
            sent = bot.emu.send_text(user_id=USER, text=VIDEO)
            job = await bot.wait_job(sent["message_id"], timeout=60)
            assert job.status == "failed" and job.error == "blocked"
        user_texts = bot.texts()
        admin_texts = bot.texts(ADMIN)
    truth = messages.link_error("blocked")
    assert [text for text in user_texts if "robot" in text] == [f"⚠️ {truth}"] * 2
    assert "Riprovare non serve" in truth and "riprova più tardi" not in truth
    alerts = [text for text in admin_texts if "WHISPER_IT_YTDLP_COOKIES_FILE" in text]
    assert len(alerts) == 1, admin_texts
    assert "pip install -U yt-dlp" in alerts[0]
    # yt-dlp got a private copy of the cookies, removed after the download.
    assert [entry["text"] for entry in seen] == [COOKIES, COOKIES]
    assert all(Path(entry["path"]) != cookies for entry in seen)
    assert not any(Path(entry["path"]).exists() for entry in seen)
    assert cookies.read_text() == COOKIES
    assert COOKIE_VALUE not in caplog.text


def test_the_alert_is_due_once_an_hour() -> None:
    now = [0.0]
    alert = ThrottledAlert(clock=lambda: now[0])
    assert alert.due() and not alert.due()
    now[0] = 3599.0
    assert not alert.due()
    now[0] = 3600.0
    assert alert.due()


def test_doctor_warns_about_an_old_yt_dlp_and_a_missing_cookies_file(tmp_path: Path) -> None:
    released = ytdlp_release_date(yt_dlp.version.__version__)
    assert released is not None
    fresh = check_ytdlp(Settings(_env_file=None), today=released + dt.timedelta(days=3))
    assert fresh.status == "ok" and fresh.details["age_days"] == 3
    late = released + dt.timedelta(days=YTDLP_MAX_AGE_DAYS + 1)
    old = check_ytdlp(Settings(_env_file=None), today=late)
    assert old.status == "warn" and "pip install -U yt-dlp" in old.summary
    missing = Settings(_env_file=None, ytdlp_cookies_file=tmp_path / "absent.txt")
    assert check_ytdlp(missing, today=released).status == "warn"
    assert ytdlp_release_date("2026.11.23.232815") == dt.date(2026, 11, 23)
    assert ytdlp_release_date("unknown") is None


def test_an_unreadable_cookies_file_is_skipped_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    def refused(self: yt_dlp.YoutubeDL, url: str, *args: Any, **kwargs: Any) -> None:
        seen.append(self.params.get("cookiefile"))
        raise yt_dlp.utils.DownloadError(BOT_CHECK)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", refused)
    # yt-dlp runs in a child process (issue 18) where this patch would not reach: here it
    # runs in the test's process, on the same code path inside the child.
    monkeypatch.setattr(download_process, "download_in_child", youtube.download_in_process)
    limits = DownloadLimits(max_seconds=60, max_bytes=2**20, cookies_file=tmp_path / "gone.txt")
    with pytest.raises(LinkError) as raised:
        download_audio(parse_link(VIDEO), tmp_path / "downloads", limits=limits)
    assert raised.value.reason == "blocked"
    assert seen == [None]
    assert "gone.txt" in caplog.text and "not readable" in caplog.text
    assert list((tmp_path / "downloads").iterdir()) == []  # the work folder was removed

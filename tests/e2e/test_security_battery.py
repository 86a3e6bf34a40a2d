"""The adversarial battery (issue 10, SECURITY.md): hostile input, end to end.

Files, links, commands, messages sent on behalf of a chat, forged button data and forged
webhook calls go through the real bot over the Bot API emulator (one shared bot per module,
so the battery stays fast); files and links also go through ``whisper-it transcribe`` in
this process. Every case asserts its exact outcome: the Italian refusal the user sees, the
job's error code, nothing stored for that user, no request to a loopback listener nobody
listed (an HTTP service, a UDP port), the worker held for seconds at most, and no
exception reaching the bot's error handler or a log.

The other engineer's corrections/privacy cases live in tests/e2e/test_security_corrections.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from bot import messages
from bot.cancel_button import CANCEL_PREFIX
from bot.cli import main
from bot.confirm_button import CONFIRM_PREFIX
from storage.models import JobStatus
from tests.support import hostile_inputs as hostile
from tests.support import hostile_media
from tests.support.bot_harness import ADMIN, USER, RunningBot, running_bot
from tests.support.media_server import PAGE_NAME, VIDEO_NAME, MediaServer, serve_directory
from tests.support.speech import synthesize

SHARED_BOT = pytest.mark.asyncio(loop_scope="module")
HELD_SECONDS = 5.0  # the longest a hostile input may keep the worker busy
REPLY_TIMEOUT = 30.0
SECRET_TEXT = "Questa è la nota vocale privata di un altro utente."
FORGER_CHAT = 666
# Every case writes as a user of its own, so per-user limits and "nothing stored for this
# user" checks never mix cases on the shared bot.
_USERS = itertools.count(70_000)


# --------------------------------------------------------------------------- the stage


class UdpListener:
    """A loopback UDP port that records every datagram (an SDP's RTP/RTCP target)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((hostile.LOOPBACK, 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.received.append(self._socket.recv(65_536))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


@dataclass(frozen=True)
class Targets:
    """What an attacker would like to reach; every case asserts it stayed out of reach."""

    workdir: Path  # the bot's working folder, holding another user's recording
    secret: Path
    site: MediaServer  # the operator-added host (listed as the IP literal 127.0.0.1:port)
    internal: MediaServer  # a loopback service nobody listed
    udp: UdpListener

    @property
    def internal_name(self) -> str:
        """A host *name* the operator listed that resolves to loopback (attacker's DNS)."""
        return f"localhost:{self.internal.port}"


@dataclass(frozen=True)
class Snapshot:
    site_requests: int
    internal_requests: int
    datagrams: int
    stored_files: frozenset[Path] = field(default_factory=frozenset)


def _stored_files(data_dir: Path) -> frozenset[Path]:
    return frozenset(path for path in data_dir.rglob("*") if path.is_file())


def _snapshot(targets: Targets, data_dir: Path) -> Snapshot:
    return Snapshot(
        site_requests=len(targets.site.requests),
        internal_requests=len(targets.internal.requests),
        datagrams=len(targets.udp.received),
        stored_files=_stored_files(data_dir / "audio"),
    )


def _assert_nothing_reached(targets: Targets, before: Snapshot, *, site_allowed: bool) -> None:
    assert len(targets.internal.requests) == before.internal_requests, targets.internal.requests
    assert len(targets.udp.received) == before.datagrams
    if not site_allowed:
        assert len(targets.site.requests) == before.site_requests, targets.site.requests


@pytest.fixture(scope="module")
def targets(
    tmp_path_factory: pytest.TempPathFactory, speech_dir: Path, media_server: MediaServer
) -> Iterator[Targets]:
    workdir = tmp_path_factory.mktemp("battery-cwd")
    secret = synthesize(SECRET_TEXT, workdir / hostile.SECRET_NAME)
    internal_root = tmp_path_factory.mktemp("internal-service")
    (internal_root / VIDEO_NAME).write_bytes((media_server.root / VIDEO_NAME).read_bytes())
    udp = UdpListener()
    # The bot runs where its data is: a playlist names files relative to the working folder.
    with pytest.MonkeyPatch.context() as patch, serve_directory(internal_root) as internal:
        patch.chdir(workdir)
        yield Targets(workdir, secret, media_server, internal, udp)
    udp.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(
    tmp_path_factory: pytest.TempPathFactory, ct2_transcriber, targets: Targets
) -> Iterator[RunningBot]:
    async with running_bot(
        tmp_path_factory.mktemp("battery-bot"),
        ct2_transcriber,
        allowed_url_hosts=[targets.site.netloc, targets.internal_name],
        messages_per_minute=10_000,
        max_pending_jobs_per_user=10,
    ) as running:
        yield running


def _assert_clean(bot: RunningBot, user: int, caplog: pytest.LogCaptureFixture) -> None:
    assert bot.errors == []
    assert [t for t in bot.transcriptions() if t.user_id == user] == []
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class FileCase:
    id: str
    build: Callable[[Targets], bytes]
    reason: str = "corrupt"  # the job's error code, a key of messages.AUDIO_ERRORS
    send_as: str = "audio"  # voice | audio | document
    file_name: str = "nota.mp3"
    mime_type: str = "audio/mpeg"


def _mute_video(targets: Targets) -> bytes:
    import subprocess

    out = targets.workdir / "muta.mp4"
    if not out.exists():
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
             "color=c=blue:s=64x48:d=2", "-c:v", "libx264", str(out)],
            check=True,
        )  # fmt: skip
    return out.read_bytes()


def _speech_with_one_nan(targets: Targets) -> bytes:
    import soundfile

    samples, _rate = soundfile.read(targets.secret, dtype="float32")
    return hostile.nan_in_speech(samples)


FILE_CASES = [
    FileCase("ffconcat-as-mp3", lambda t: hostile.ffconcat()),
    FileCase("ffconcat-as-voice", lambda t: hostile.ffconcat(), send_as="voice"),
    FileCase(
        "ffconcat-as-ogg-document",
        lambda t: hostile.ffconcat(),
        send_as="document",
        file_name="nota.ogg",
        mime_type="audio/ogg",
    ),
    FileCase("ffconcat-absolute-path", lambda t: hostile.ffconcat(str(t.secret))),
    FileCase("ffconcat-url", lambda t: hostile.ffconcat(t.site.url(VIDEO_NAME))),
    FileCase(
        "ffconcat-subfile",
        lambda t: hostile.ffconcat(f"'subfile,,start,0,end,0,,:{hostile.SECRET_NAME}'"),
    ),
    FileCase("hls-to-file", lambda t: hostile.hls_playlist(hostile.SECRET_NAME)),
    FileCase("hls-to-loopback-url", lambda t: hostile.hls_playlist(t.internal.url(VIDEO_NAME))),
    FileCase("sdp-udp-to-loopback", lambda t: hostile.sdp_session(t.udp.port)),
    FileCase("srt-as-audio", lambda t: hostile.srt_subtitles()),
    FileCase("png-as-voice", lambda t: hostile.png_image(), send_as="voice"),
    FileCase("nan-float-wav", lambda t: hostile.float_wav(np.nan), file_name="nota.wav"),
    FileCase("inf-float-wav", lambda t: hostile.float_wav(np.inf), file_name="nota.wav"),
    FileCase("minus-inf-float-wav", lambda t: hostile.float_wav(-np.inf), file_name="nota.wav"),
    FileCase("one-nan-in-speech", _speech_with_one_nan, file_name="nota.wav"),
    FileCase("random-bytes", lambda t: np.random.default_rng(10).bytes(40_000)),
    FileCase("empty-file", lambda t: b"", reason="empty"),
    FileCase("text-as-mp3", lambda t: ("non è un audio " * 200).encode()),
    FileCase(
        "html-page-as-mp3",
        lambda t: f'<html><video src="{t.internal.url(VIDEO_NAME)}"></video></html>'.encode(),
    ),
    FileCase("zip-as-mp3", lambda t: b"PK\x03\x04" + bytes(200)),
    FileCase(
        "webvtt-as-voice",
        lambda t: b"WEBVTT\n\n00:00.000 --> 00:02.000\nciao a tutti\n",
        send_as="voice",
    ),
    # Issue 18: real containers that cost memory or CPU, or break PyAV (decoded in the sandbox).
    FileCase(
        "mp4-sample-table-memory-bomb",
        lambda t: hostile_media.mp4_sample_table_bomb(),
        send_as="document",
        file_name="nota.m4a",
        mime_type="audio/mp4",
    ),
    FileCase("wav-200MHz", lambda t: hostile_media.wav_declaring_rate(), file_name="nota.wav"),
    FileCase("mp3-rate-change-mid-file", lambda t: hostile_media.mp3_rate_change()),
    FileCase("float-wav-of-3e38", lambda t: hostile_media.huge_float_wav(), file_name="nota.wav"),
    FileCase("wav-64-channels", lambda t: hostile_media.wav_with_channels(), file_name="nota.wav"),
    FileCase(
        "video-without-audio",
        _mute_video,
        reason="no_audio",
        send_as="document",
        file_name="muto.mp4",
        mime_type="video/mp4",
    ),
]


def _send_file(bot: RunningBot, user: int, case: FileCase, data: bytes) -> dict:
    if case.send_as == "voice":
        return bot.emu.send_voice(user_id=user, data=data, duration=3)
    if case.send_as == "audio":
        return bot.emu.send_audio(
            user_id=user, data=data, duration=3, file_name=case.file_name, mime_type=case.mime_type
        )
    return bot.emu.send_document(
        user_id=user, data=data, file_name=case.file_name, mime_type=case.mime_type
    )


@SHARED_BOT
@pytest.mark.parametrize("case", FILE_CASES, ids=lambda case: case.id)
async def test_hostile_file_is_refused_as_damaged(
    bot: RunningBot, targets: Targets, case: FileCase, caplog: pytest.LogCaptureFixture
) -> None:
    user = next(_USERS)
    data = case.build(targets)
    before = _snapshot(targets, bot.services.settings.data_dir)
    started = time.monotonic()
    sent = _send_file(bot, user, case, data)
    job = await bot.wait_job(sent["message_id"], chat_id=user, timeout=REPLY_TIMEOUT)
    held = time.monotonic() - started
    (status,) = bot.replies_to(sent["message_id"], chat_id=user)
    assert status.content == f"⚠️ {messages.AUDIO_ERRORS[case.reason]}"
    assert (job.status, job.error) == (JobStatus.FAILED, case.reason)
    assert held < HELD_SECONDS, held
    _assert_nothing_reached(targets, before, site_allowed=False)
    assert _stored_files(bot.services.settings.data_dir / "audio") == before.stored_files
    _assert_clean(bot, user, caplog)


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class LinkCase:
    id: str
    text: Callable[[Targets], str]
    reason: str | None  # a key of messages.LINK_ERRORS; None: not taken for a link at all
    by_download: bool = False  # refused while downloading (a job), not by the parser


def _redirect(name: str, location: Callable[[Targets], str]) -> Callable[[Targets], str]:
    return lambda t: t.site.redirect(name, location(t))


def _embedding_page(t: Targets) -> str:
    page = f'<html><title>x</title><video src="{t.internal.url(VIDEO_NAME)}"></video></html>'
    return t.site.add_file("embeds-internal.html", page)


def _sample_aes_playlist(t: Targets) -> str:
    from tests.support.hostile_media import sample_aes_playlist

    return t.site.add_file("sample-aes.m3u8", sample_aes_playlist(t.internal))


VID = "dQw4w9WgXcQ"
LINK_CASES = [
    LinkCase(
        "localhost-not-listed",
        lambda t: f"http://localhost:{t.site.port}/{VIDEO_NAME}",
        "not_allowed_host",
    ),
    LinkCase("loopback-port-not-listed", lambda t: t.internal.url(VIDEO_NAME), "not_allowed_host"),
    LinkCase(
        "ipv6-loopback", lambda t: f"http://[::1]:{t.site.port}/{VIDEO_NAME}", "not_allowed_host"
    ),
    LinkCase(
        "ipv4-mapped-loopback",
        lambda t: f"http://[::ffff:127.0.0.1]:{t.site.port}/x",
        "not_allowed_host",
    ),
    LinkCase(
        "decimal-ip", lambda t: f"http://2130706433:{t.site.port}/{VIDEO_NAME}", "not_allowed_host"
    ),
    LinkCase(
        "hex-ip", lambda t: f"http://0x7f000001:{t.site.port}/{VIDEO_NAME}", "not_allowed_host"
    ),
    LinkCase(
        "userinfo",
        lambda t: f"http://{t.site.netloc}@evil.example/{VIDEO_NAME}",
        "not_allowed_host",
    ),
    LinkCase(
        "look-alike-host",
        lambda t: f"https://youtube.com.evil.example/watch?v={VID}",
        "not_allowed_host",
    ),
    LinkCase(
        "punycode-host", lambda t: f"https://xn--yutube-wqf.com/watch?v={VID}", "not_allowed_host"
    ),
    LinkCase("file-scheme", lambda t: "file:///etc/passwd", "bad_scheme"),
    LinkCase("ftp-scheme", lambda t: f"ftp://{t.site.netloc}/{VIDEO_NAME}", "bad_scheme"),
    LinkCase(
        "playlist",
        lambda t: "https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F36",
        "playlist",
    ),
    LinkCase("channel", lambda t: "https://www.youtube.com/@canale", "channel"),
    LinkCase(
        "overlong-url",
        lambda t: f"https://www.youtube.com/watch?v={VID}&x=" + "a" * 3000,
        "bad_url",
    ),
    LinkCase("javascript-scheme", lambda t: "javascript:alert(document.cookie)", None),
    LinkCase(
        "redirect-to-unlisted-loopback",
        _redirect("r-internal.mp4", lambda t: t.internal.url(VIDEO_NAME)),
        "not_allowed_host",
        by_download=True,
    ),
    LinkCase(
        "redirect-to-name-resolving-to-loopback",
        _redirect("r-dns.mp4", lambda t: f"http://{t.internal_name}/{VIDEO_NAME}"),
        "not_allowed_host",
        by_download=True,
    ),
    LinkCase(
        "redirect-to-file-url",
        _redirect("r-file.mp4", lambda t: f"file://{t.secret}"),
        "not_allowed_host",
        by_download=True,
    ),
    LinkCase(
        "listed-name-resolving-to-loopback",
        lambda t: f"http://{t.internal_name}/{VIDEO_NAME}",
        "not_allowed_host",
        by_download=True,
    ),
    LinkCase(
        "page-embedding-loopback-media", _embedding_page, "not_allowed_host", by_download=True
    ),
    # Issue 18: yt-dlp would hand this playlist to ffmpeg, which fetches key and segments
    # from the unlisted port itself.
    LinkCase("hls-sample-aes-via-ffmpeg", _sample_aes_playlist, "needs_program", by_download=True),
]


@SHARED_BOT
@pytest.mark.parametrize("case", LINK_CASES, ids=lambda case: case.id)
async def test_hostile_link_is_refused(
    bot: RunningBot, targets: Targets, case: LinkCase, caplog: pytest.LogCaptureFixture
) -> None:
    user = next(_USERS)
    url = case.text(targets)
    before = _snapshot(targets, bot.services.settings.data_dir)
    started = time.monotonic()
    sent = bot.emu.send_text(user_id=user, text=f"Trascrivi: {url}")
    if case.by_download:
        job = await bot.wait_job(sent["message_id"], chat_id=user, timeout=REPLY_TIMEOUT)
        (status,) = bot.replies_to(sent["message_id"], chat_id=user)
        assert status.content == f"⚠️ {messages.link_error(case.reason)}"
        assert (job.status, job.error) == (JobStatus.FAILED, case.reason)
    else:
        await bot.emu.async_wait_for(lambda: bot.texts(user), timeout=REPLY_TIMEOUT)
        expected = messages.TEXT_HINT if case.reason is None else messages.link_error(case.reason)
        assert bot.texts(user) == [expected]
        assert [job for job in bot.jobs() if job.chat_id == user] == []
    assert time.monotonic() - started < HELD_SECONDS
    # The operator's own host may be asked for the page or the redirect, nothing else.
    _assert_nothing_reached(targets, before, site_allowed=case.by_download)
    _assert_clean(bot, user, caplog)


# --------------------------------------------------------------------------- commands

ADMIN_ONLY = ["/stats", "/retrain", "/rollback", "/wer", "/models", "/status", "/contributors"]


@SHARED_BOT
@pytest.mark.parametrize("command", ADMIN_ONLY)
async def test_admin_command_from_a_user_is_refused(
    bot: RunningBot, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = next(_USERS)
    # The username and name of an admin change nothing: only the numeric id counts.
    bot.emu.send_text(user_id=user, text=command, username="admin", first_name="Admin")
    await bot.emu.async_wait_for(lambda: bot.texts(user), timeout=REPLY_TIMEOUT)
    assert bot.texts(user) == [messages.NOT_ADMIN]
    answers = [method for method, params in bot.emu.calls if params.get("chat_id") == user]
    assert answers == ["sendMessage"]  # the refusal only: no statistics, plot or file
    _assert_clean(bot, user, caplog)


# --------------------------------------------------------------------------- senders, buttons

# Sent on behalf of a chat: Telegram puts a placeholder every such chat shares in ``from``
# (the group itself: an anonymous admin; a channel: "send as", or its automatic forward).
CHAT_SENDERS = {
    "anonymous-admin": {"own_group": True},
    "send-as-channel": {},
    "channel-automatic-forward": {"automatic_forward": True},
}


@SHARED_BOT
@pytest.mark.parametrize("sender", list(CHAT_SENDERS))
async def test_message_sent_on_behalf_of_a_chat_is_refused(
    bot: RunningBot, sender: str, caplog: pytest.LogCaptureFixture
) -> None:
    number = next(_USERS)
    group, channel = -number, -1_000_000_000 - number
    options = dict(CHAT_SENDERS[sender])
    sender_chat = group if options.pop("own_group", False) else channel
    bot.emu.send_text(
        user_id=number, text=f"@{bot.emu.bot_username} https://youtu.be/{VID}", chat_id=group,
        chat_type="supergroup", sender_chat=sender_chat, **options,
    )  # fmt: skip
    await bot.emu.async_wait_for(lambda: bot.texts(group), timeout=REPLY_TIMEOUT)
    assert bot.texts(group) == [messages.SENT_AS_CHAT]
    assert [job for job in bot.jobs() if job.chat_id == group] == []
    _assert_clean(bot, number, caplog)


FORGED_BUTTONS = hostile.forged_button_data((CANCEL_PREFIX, CONFIRM_PREFIX))


@SHARED_BOT
@pytest.mark.parametrize("data", FORGED_BUTTONS, ids=[f"b{i}" for i in range(len(FORGED_BUTTONS))])
async def test_forged_button_is_answered_and_changes_nothing(
    bot: RunningBot, data: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = next(_USERS)
    bot.emu.send_text(user_id=user, text="/help")
    await bot.emu.async_wait_for(lambda: bot.texts(user), timeout=REPLY_TIMEOUT)
    (shown,) = bot.emu.messages(user)
    query = bot.emu.send_callback_query(user_id=user, message_id=shown.message_id, data=data)
    (answered,) = await bot.emu.async_wait_for(
        lambda: [
            call
            for call in bot.emu.calls_to("answerCallbackQuery")
            if call["callback_query_id"] == query
        ],
        timeout=REPLY_TIMEOUT,
    )
    assert answered.get("text") == messages.BUTTON_UNKNOWN
    assert bot.emu.messages(user) == [shown]  # not edited, nothing else sent
    assert [job for job in bot.jobs() if job.chat_id == user] == []
    _assert_clean(bot, user, caplog)


# --------------------------------------------------------------------------- forged updates


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webhook_bot(
    tmp_path_factory: pytest.TempPathFactory, ct2_transcriber
) -> Iterator[tuple[RunningBot, str, str]]:
    """The bot in webhook mode with no secret configured: it generates and registers one."""
    with socket.socket() as probe:
        probe.bind((hostile.LOOPBACK, 0))
        port = probe.getsockname()[1]
    hook = f"http://{hostile.LOOPBACK}:{port}/hook"
    async with running_bot(
        tmp_path_factory.mktemp("battery-webhook"),
        ct2_transcriber,
        webhook_url=hook,
        webhook_listen=hostile.LOOPBACK,
        webhook_port=port,
        webhook_path="hook",
        messages_per_minute=10_000,
    ) as running:
        (registered,) = running.emu.calls_to("setWebhook")
        yield running, hook, registered["secret_token"]


def _forged_stats(number: int) -> dict[str, object]:
    return hostile.command_update(
        user_id=ADMIN,
        chat_id=FORGER_CHAT,
        text="/stats",
        update_id=hostile.FORGED_UPDATE_ID + number,
    )


UPDATE_CASES: list[tuple[str, Callable[[str], str | None], str]] = [
    ("no-secret-header", lambda secret: None, "application/json"),
    ("empty-secret", lambda secret: "", "application/json"),
    ("wrong-secret", lambda secret: "A" * len(secret), "application/json"),
    ("secret-other-case", lambda secret: secret.swapcase(), "application/json"),
    ("secret-prefix", lambda secret: secret[:-1], "application/json"),
    ("secret-with-suffix", lambda secret: secret + "A", "application/json"),
    ("right-secret-not-json", lambda secret: secret, "text/plain"),
]


@SHARED_BOT
@pytest.mark.parametrize(
    ("case", "secret_for", "content_type"), UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES]
)
async def test_forged_webhook_update_is_rejected_before_any_handler(
    webhook_bot: tuple[RunningBot, str, str],
    case: str,
    secret_for: Callable[[str], str | None],
    content_type: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, hook, secret = webhook_bot
    number = next(_USERS)
    status = await asyncio.to_thread(
        hostile.post_update, hook, _forged_stats(number), secret_for(secret),
        content_type=content_type,
    )  # fmt: skip
    assert status == 403
    # A genuine update (the emulator delivers with the registered secret) is answered, so
    # the forged one, had it been accepted, would have been handled by now too.
    bot.emu.send_text(user_id=USER, text="/privacy")
    await bot.emu.async_wait_for(
        lambda: sum("Privacy" in text for text in bot.texts(USER)) >= 1, timeout=REPLY_TIMEOUT
    )
    assert [
        params for _method, params in bot.emu.calls if params.get("chat_id") == FORGER_CHAT
    ] == []
    assert bot.errors == [] and "Traceback" not in caplog.text


@SHARED_BOT
@pytest.mark.parametrize(
    ("secret_for", "status"),
    [(lambda s: "A" * len(s), 403), (str, 413)],
    ids=["forger-100MB", "secret-100MB"],
)
async def test_a_huge_webhook_request_is_refused_on_its_headers(
    webhook_bot: tuple[RunningBot, str, str], secret_for: Callable[[str], str], status: int
) -> None:
    """PTB's listener read bodies of up to 100 MB before it checked the secret (the README
    asked for a proxy to cap them): now a forger's, or any over the limit, is refused on
    the headers, before a byte of the body is sent."""
    _bot, hook, secret = webhook_bot
    head = {"Content-Type": "application/json", "Content-Length": "100000000"}
    head[hostile.SECRET_TOKEN_HEADER] = secret_for(secret)
    assert await asyncio.to_thread(hostile.post_headers_only, hook, head) == status


@SHARED_BOT
async def test_webhook_secret_is_generated_strong_and_the_right_one_is_handled(
    webhook_bot: tuple[RunningBot, str, str],
) -> None:
    bot, hook, secret = webhook_bot
    assert len(secret) >= 43 and secret.replace("-", "").replace("_", "").isalnum()
    bot.emu.open_chat(user_id=FORGER_CHAT)
    update = hostile.command_update(
        user_id=FORGER_CHAT, chat_id=FORGER_CHAT, text="/help", update_id=hostile.FORGED_UPDATE_ID
    )
    assert await asyncio.to_thread(hostile.post_update, hook, update, secret) == 200
    await bot.emu.async_wait_for(lambda: bot.texts(FORGER_CHAT), timeout=REPLY_TIMEOUT)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def run_cli(
    targets: Targets,
    model_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Callable[..., tuple[int, str, str]]:
    """``whisper-it ARGS`` in this process (bot.cli.main), in the battery's working folder."""
    caplog.set_level(logging.INFO)  # the root level of a fresh process (the CLI quiets it)
    data = tmp_path / "data"
    data.mkdir()
    (data / "cache").symlink_to(model_cache, target_is_directory=True)
    for key in [key for key in os.environ if key.startswith("WHISPER_IT_")]:
        monkeypatch.delenv(key)
    env = {
        "DATA_DIR": str(data),
        "TAGGER": "keywords",
        "OFFLINE": "true",
        "ALLOWED_URL_HOSTS": f"{targets.site.netloc},{targets.internal_name}",
    }
    for key, value in env.items():
        monkeypatch.setenv(f"WHISPER_IT_{key}", value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


CLI_FILES = {
    "ffconcat": lambda t: hostile.ffconcat(),
    "sdp": lambda t: hostile.sdp_session(t.udp.port),
    "nan-wav": lambda t: hostile.float_wav(np.nan),
    "png": lambda t: hostile.png_image(),
    "srt": lambda t: hostile.srt_subtitles(),
    "mp4-memory-bomb": lambda t: hostile_media.mp4_sample_table_bomb(),
    "wav-200MHz": lambda t: hostile_media.wav_declaring_rate(),
    "mp3-rate-change": lambda t: hostile_media.mp3_rate_change(),
    "float-wav-3e38": lambda t: hostile_media.huge_float_wav(),
}
CLI_LINKS = {
    "redirect-to-unlisted-loopback": (
        lambda t: t.site.redirect("cli-r.mp4", t.internal.url(VIDEO_NAME)),
        "not_allowed_host",
    ),
    "listed-name-resolving-to-loopback": (
        lambda t: f"http://{t.internal_name}/{VIDEO_NAME}",
        "not_allowed_host",
    ),
    "page-embedding-loopback-media": (_embedding_page, "not_allowed_host"),
    "hls-sample-aes-via-ffmpeg": (_sample_aes_playlist, "needs_program"),
    "loopback-port-not-listed": (lambda t: t.internal.url(PAGE_NAME), "not_allowed_host"),
}


def _assert_one_line(result: tuple[int, str, str], message: str) -> None:
    code, out, err = result
    assert code == 1 and out == ""
    assert "Traceback" not in err
    assert err.splitlines() == [f"whisper-it: {message}"], err


@pytest.mark.parametrize("name", list(CLI_FILES))
def test_cli_refuses_hostile_file(run_cli, targets: Targets, name: str) -> None:
    path = targets.workdir / f"cli-{name}.mp3"
    path.write_bytes(CLI_FILES[name](targets))
    before = _snapshot(targets, targets.workdir)
    started = time.monotonic()
    _assert_one_line(run_cli("transcribe", str(path)), messages.AUDIO_ERRORS["corrupt"])
    assert time.monotonic() - started < HELD_SECONDS
    _assert_nothing_reached(targets, before, site_allowed=False)


@pytest.mark.parametrize("name", list(CLI_LINKS))
def test_cli_refuses_hostile_link(run_cli, targets: Targets, name: str) -> None:
    build, reason = CLI_LINKS[name]
    url = build(targets)
    before = _snapshot(targets, targets.workdir)
    _assert_one_line(run_cli("transcribe", url), messages.LINK_ERRORS[reason])
    _assert_nothing_reached(targets, before, site_allowed=True)


def test_battery_size() -> None:
    """Issue 10 asks for at least 50 hostile inputs overall; this file holds most of them."""
    count = (
        len(FILE_CASES) + len(LINK_CASES) + len(ADMIN_ONLY) + len(UPDATE_CASES)
        + len(CHAT_SENDERS) + len(FORGED_BUTTONS) + len(CLI_FILES) + len(CLI_LINKS)
    )  # fmt: skip
    assert count >= 50, count

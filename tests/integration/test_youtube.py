"""YouTube link parsing (allow-list) and yt-dlp downloads through a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from model.media.links import (
    LinkError,
    VideoLink,
    parse_link,
)
from model.media.youtube import (
    DownloadLimits,
    DownloadProgress,
    _refusal,
    download_audio,
)
from tests.support.media_server import (
    MISSING_NAME,
    PAGE_NAME,
    VIDEO_NAME,
    MediaServer,
    serve_directory,
    video_page_html,
)

ROOMY = DownloadLimits(max_seconds=600, max_bytes=50_000_000, timeout_seconds=30)


# --------------------------------------------------------------------------- parsing


# --------------------------------------------------------------------------- downloading


@pytest.fixture
def allowed(media_server: MediaServer) -> frozenset[str]:
    return frozenset({media_server.netloc})


def _link(server: MediaServer, name: str, allowed: frozenset[str]) -> VideoLink:
    return parse_link(server.url(name), extra_hosts=allowed)


def test_download_mp4_with_progress(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    updates: list[DownloadProgress] = []
    media = download_audio(
        _link(media_server, VIDEO_NAME, allowed), tmp_path, limits=ROOMY, progress=updates.append
    )
    served = (media_server.root / VIDEO_NAME).read_bytes()
    assert media.path.parent == tmp_path
    assert media.path.read_bytes() == served
    assert list(tmp_path.iterdir()) == [media.path]  # yt-dlp's work folder is gone
    assert media.video_id is None
    assert media.webpage_url == media_server.url(VIDEO_NAME)

    fractions = [update.fraction for update in updates]
    assert len(fractions) >= 3
    assert all(fraction is not None for fraction in fractions)
    assert fractions == sorted(fractions)
    assert fractions[0] < 1.0
    assert fractions[-1] == 1.0
    assert updates[-1].status == "finished"
    assert updates[-1].downloaded_bytes == updates[-1].total_bytes == len(served)

    with av.open(str(media.path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base) > 3.0  # the espeak sentences


def test_download_from_page_embedding_the_video(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    updates: list[DownloadProgress] = []
    media = download_audio(
        _link(media_server, PAGE_NAME, allowed), tmp_path, limits=ROOMY, progress=updates.append
    )
    assert media.path.read_bytes() == (media_server.root / VIDEO_NAME).read_bytes()
    assert media.title is not None and media.title.startswith("Video di prova")
    assert media.webpage_url == media_server.url(PAGE_NAME)
    assert updates[-1].fraction == 1.0


def test_too_big_leaves_nothing(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    small = DownloadLimits(max_seconds=600, max_bytes=1_000)
    with pytest.raises(LinkError) as caught:
        download_audio(_link(media_server, VIDEO_NAME, allowed), tmp_path, limits=small)
    assert caught.value.reason == "too_big"
    assert list(tmp_path.iterdir()) == []


def test_declared_duration_refused_before_download(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    ld = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "Lezione di tre ore",
        "contentUrl": media_server.url(VIDEO_NAME),
        "duration": "PT3H",
    }
    page = f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head></html>'
    link = parse_link(media_server.add_file("long.html", page), extra_hosts=allowed)
    before = len(media_server.requests)
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path, limits=ROOMY)
    assert caught.value.reason == "too_long"
    assert media_server.requests[before:] == ["/long.html"]  # the video was never fetched
    assert list(tmp_path.iterdir()) == []


def test_missing_video_is_unavailable(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    with pytest.raises(LinkError) as caught:
        download_audio(_link(media_server, MISSING_NAME, allowed), tmp_path, limits=ROOMY)
    assert caught.value.reason == "unavailable"
    assert list(tmp_path.iterdir()) == []


def test_host_not_allowed_is_refused_before_any_request(media_server: MediaServer) -> None:
    before = len(media_server.requests)
    for url in (
        media_server.url(VIDEO_NAME),
        f"http://localhost:{media_server.port}/{VIDEO_NAME}",
        f"http://{media_server.netloc}@evil.example/{VIDEO_NAME}",
    ):
        with pytest.raises(LinkError) as caught:
            parse_link(url)
        assert caught.value.reason == "not_allowed_host"
    assert media_server.requests[before:] == []


def test_page_cannot_send_the_downloader_to_another_host(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    # Same server under another name: any request to it would be recorded.
    elsewhere = f"http://localhost:{media_server.port}/{VIDEO_NAME}"
    media_server.add_file("foreign.html", video_page_html(elsewhere))
    media_server.add_file(
        "refresh.html", f'<meta http-equiv="refresh" content="0; url={elsewhere}">'
    )
    for name in ("foreign.html", "refresh.html"):
        before = len(media_server.requests)
        with pytest.raises(LinkError) as caught:
            download_audio(_link(media_server, name, allowed), tmp_path, limits=ROOMY)
        assert caught.value.reason == "not_allowed_host"
        assert media_server.requests[before:] == [f"/{name}"]
    assert list(tmp_path.iterdir()) == []


def test_cancel_aborts_and_cleans_up(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    cancel = threading.Event()

    def cancel_on_first_update(update: DownloadProgress) -> None:
        cancel.set()

    with pytest.raises(LinkError) as caught:
        download_audio(
            _link(media_server, VIDEO_NAME, allowed),
            tmp_path,
            limits=ROOMY,
            progress=cancel_on_first_update,
            cancel=cancel,
        )
    assert caught.value.reason == "cancelled"
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    media_server.add_file("slow.mp4", media_server.root / VIDEO_NAME)
    link = parse_link(media_server.stall("slow.mp4", 3.0), extra_hosts=allowed)
    quick = DownloadLimits(max_seconds=600, max_bytes=50_000_000, timeout_seconds=0.5)
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path, limits=quick)
    assert caught.value.reason == "timeout"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- metadata and errors
# Live streams and YouTube's own error messages can't be produced offline: these check the
# decision functions on the metadata and exceptions yt-dlp hands over.


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        ({"live_status": "is_live"}, "live"),
        ({"is_live": True}, "live"),
        ({"live_status": "is_upcoming"}, "upcoming"),
        ({"duration": 601}, "too_long"),
        ({"duration": 600, "filesize": 50_000_001}, "too_big"),
        ({"filesize_approx": 60_000_000}, "too_big"),
        ({"requested_formats": [{"filesize": 30_000_000}, {"filesize": 30_000_000}]}, "too_big"),
        ({"format_id": "137", "acodec": "none"}, "no_audio"),
        ({"live_status": "was_live", "duration": 599, "filesize": 1_000}, None),
        ({"duration": None, "filesize": None}, None),
    ],
)
def test_metadata_refusals(info: dict[str, object], reason: str | None) -> None:
    refusal = _refusal(info, ROOMY)
    assert (refusal[0] if refusal else None) == reason


# --------------------------------------------------------------------------- request guard
# Issue 10: an operator-added host could 302-redirect yt-dlp (or resolve) to loopback and
# private services before any check saw it. Redirects are re-checked against the allow-list
# and every address is checked when the socket connects. "localhost" stands for a host name
# an attacker controls the DNS of: it resolves to 127.0.0.1 without being an IP literal.


@pytest.fixture(scope="module")
def internal_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """A second loopback listener: the machine's own service an attacker wants to reach."""
    root = tmp_path_factory.mktemp("internal")
    (root / VIDEO_NAME).write_bytes(b"secret internal data")
    with serve_directory(root) as server:
        yield server


def _refused_untouched(link: VideoLink, tmp_path: Path, internal: MediaServer) -> LinkError:
    before = len(internal.requests)
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path, limits=ROOMY)
    assert caught.value.reason == "not_allowed_host", caught.value
    assert internal.requests[before:] == []  # not even a connection reached it
    assert list(tmp_path.iterdir()) == []
    return caught.value


def test_redirect_off_the_allow_list_is_not_followed(
    media_server: MediaServer, internal_service: MediaServer, tmp_path: Path
) -> None:
    target = internal_service.url(VIDEO_NAME)
    url = media_server.redirect("moved.mp4", target)
    link = parse_link(url, extra_hosts=frozenset({media_server.netloc}))
    error = _refused_untouched(link, tmp_path, internal_service)
    assert "redirect" in str(error)


def test_redirect_to_a_listed_name_resolving_to_loopback_is_refused_at_connect(
    media_server: MediaServer, internal_service: MediaServer, tmp_path: Path
) -> None:
    name = f"localhost:{internal_service.port}"
    url = media_server.redirect("via-dns.mp4", f"http://{name}/{VIDEO_NAME}")
    link = parse_link(url, extra_hosts=frozenset({media_server.netloc, name}))
    error = _refused_untouched(link, tmp_path, internal_service)
    assert "resolves to 127.0.0.1" in str(error)


def test_listed_name_resolving_to_loopback_is_refused_at_connect(
    internal_service: MediaServer, tmp_path: Path
) -> None:
    link = parse_link(
        f"http://localhost:{internal_service.port}/{VIDEO_NAME}",
        extra_hosts=frozenset({"localhost"}),
    )
    _refused_untouched(link, tmp_path, internal_service)


def test_redirect_between_listed_ip_literals_is_followed(
    media_server: MediaServer, internal_service: MediaServer, tmp_path: Path
) -> None:
    """The other side: what the operator listed as IP literals is reachable, redirects too."""
    url = media_server.redirect("to-video.mp4", media_server.url(VIDEO_NAME))
    link = parse_link(url, extra_hosts=frozenset({media_server.netloc}))
    media = download_audio(link, tmp_path, limits=ROOMY)
    assert media.path.read_bytes() == (media_server.root / VIDEO_NAME).read_bytes()


def test_only_the_guarded_request_handler_is_used(media_server: MediaServer) -> None:
    """requests/curl_cffi (yt-dlp[default]) would connect without the guard."""
    from model.media.netguard import guarded_downloader

    link = parse_link(media_server.url(VIDEO_NAME), extra_hosts=frozenset({"127.0.0.1"}))
    with guarded_downloader(link, {"quiet": True}) as ydl:
        handlers = ydl._request_director.handlers
        assert list(handlers) == ["_GuardedUrllib"], list(handlers)
        assert ydl.proxies == {"all": "__noproxy__"}


def test_a_playlist_behind_a_redirecting_page_is_refused_before_any_entry(
    media_server: MediaServer, allowed: frozenset[str], tmp_path: Path
) -> None:
    """A page whose meta refresh points to a feed of five files: yt-dlp followed it and
    downloaded every entry, each within the size limit, the job's total unbounded."""
    entries = "".join(
        f'<item><title>e{n}</title><guid>g{n}</guid><enclosure url="{media_server.url(VIDEO_NAME)}'
        f'?n={n}" type="video/mp4" length="1000"/></item>'
        for n in range(5)
    )
    media_server.add_file(
        "feed.xml", f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}'
        "</channel></rss>",
    )  # fmt: skip
    page = '<html><head><meta http-equiv="refresh" content="0; url=/feed.xml"></head></html>'
    link = parse_link(media_server.add_file("rimanda.html", page), extra_hosts=allowed)
    before = len(media_server.requests)
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path, limits=ROOMY)
    assert caught.value.reason == "playlist"
    assert media_server.requests[before:] == ["/rimanda.html", "/feed.xml"]
    assert list(tmp_path.iterdir()) == []

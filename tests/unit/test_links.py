"""Links without a network: YouTube URL parsing and canonical form, the host allow-list,
the address classes refused at connect, redirect policy and yt-dlp error mapping."""

from __future__ import annotations

import ipaddress

import pytest
import yt_dlp

from model.media.address_policy import connect_allowed, is_public_address, request_allowed
from model.media.links import (
    LINK_ERROR_REASONS,
    YOUTUBE_HOSTS,
    LinkError,
    VideoLink,
    find_links,
    parse_link,
    parse_timestamp,
)
from model.media.ytdlp_messages import link_error_from

VID = "dQw4w9WgXcQ"
WATCH = f"https://www.youtube.com/watch?v={VID}"
ACCEPTED = [
    # (input, expected video id, expected start seconds)
    (WATCH, VID, None),
    (f"https://youtube.com/watch?v={VID}", VID, None),
    (f"http://m.youtube.com/watch?v={VID}&feature=share", VID, None),
    (f"https://music.youtube.com/watch?v={VID}&si=abc", VID, None),
    (f"https://youtu.be/{VID}", VID, None),
    (f"https://youtu.be/{VID}?si=xyz&t=42", VID, 42),
    (f"youtu.be/{VID}", VID, None),  # no scheme, as people paste it
    (f"www.youtube.com/watch?v={VID}", VID, None),
    (f"https://www.youtube.com/shorts/{VID}?feature=share", VID, None),
    (f"https://www.youtube.com/embed/{VID}?start=15", VID, 15),
    (f"https://www.youtube-nocookie.com/embed/{VID}", VID, None),
    (f"https://youtube-nocookie.com/embed/{VID}", VID, None),
    (f"https://www.youtube.com/live/{VID}?si=1", VID, None),
    (f"https://www.youtube.com/v/{VID}", VID, None),
    (f"{WATCH}&t=1m30s", VID, 90),
    (f"{WATCH}&t=90", VID, 90),
    (f"{WATCH}&t=90s", VID, 90),
    (f"{WATCH}#t=1h2m3s", VID, 3723),
    (f"{WATCH}&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=3", VID, None),  # the one video
    (f"HTTPS://WWW.YOUTUBE.COM/watch?v={VID}", VID, None),  # mixed case host and scheme
    (f"https://www.youtube.com./watch?v={VID}", VID, None),  # trailing dot: same DNS name
    (f"https://www.youtube.com:443/watch?v={VID}", VID, None),  # default port
    ("https://www.youtube.com/watch?v=%64Qw4w9WgXcQ", VID, None),  # percent-encoded id
    (f"  \n{WATCH}\t ", VID, None),  # surrounding whitespace
    (f"//www.youtube.com/watch?v={VID}", VID, None),  # protocol-relative
    ("https://youtu.be/abc-DEF_123", "abc-DEF_123", None),
]
REFUSED = [
    # look-alike hosts
    (f"https://youtube.com.evil.example/watch?v={VID}", "not_allowed_host"),
    (f"https://evil-youtube.com/watch?v={VID}", "not_allowed_host"),
    (f"https://www.youtube.co/watch?v={VID}", "not_allowed_host"),
    (f"https://xn--yutube-wqf.com/watch?v={VID}", "not_allowed_host"),  # punycode look-alike
    (f"https://yоutube.com/watch?v={VID}", "not_allowed_host"),  # Cyrillic "о"
    (f"https://www.youtube.com%2eevil.example/watch?v={VID}", "not_allowed_host"),
    (f"https://%77ww.youtube.com/watch?v={VID}", "not_allowed_host"),  # percent-encoded host
    (f"https://youtube.com../watch?v={VID}", "not_allowed_host"),
    (f"https://vimeo.com/{VID}", "not_allowed_host"),
    # userinfo tricks
    ("https://youtube.com@evil.example/", "not_allowed_host"),
    (f"https://www.youtube.com:443@evil.example/watch?v={VID}", "not_allowed_host"),
    (f"https://evil.example@www.youtube.com/watch?v={VID}", "not_allowed_host"),
    (f"https://youtube.com\\@evil.example/watch?v={VID}", "bad_url"),  # backslash
    # IP literals and ports
    ("http://127.0.0.1/video.mp4", "not_allowed_host"),
    ("http://[::1]:8000/video.mp4", "not_allowed_host"),
    ("http://2130706433/video.mp4", "not_allowed_host"),  # 127.0.0.1 as an integer
    (f"https://www.youtube.com:8443/watch?v={VID}", "not_allowed_host"),
    ("https://www.youtube.com:99999/watch", "bad_url"),
    # other schemes
    ("javascript:alert(document.cookie)", "bad_scheme"),
    ("javascript://www.youtube.com/%0aalert(1)", "bad_scheme"),
    (f"ftp://www.youtube.com/watch?v={VID}", "bad_scheme"),
    ("file:///etc/passwd", "bad_scheme"),
    ("data:text/html,<script>alert(1)</script>", "bad_scheme"),
    (f"http:www.youtube.com/watch?v={VID}", "bad_url"),
    # playlists and channels
    ("https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist"),
    ("https://www.youtube.com/watch?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist"),
    (
        "https://www.youtube.com/embed/videoseries?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
        "playlist",
    ),
    ("https://youtu.be/?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", "playlist"),
    ("https://www.youtube.com/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw", "channel"),
    ("https://www.youtube.com/@GoogleDevelopers", "channel"),
    ("https://www.youtube.com/@GoogleDevelopers/videos", "channel"),
    ("https://www.youtube.com/c/GoogleDevelopers", "channel"),
    ("https://www.youtube.com/user/GoogleDevelopers", "channel"),
    # not a single video
    ("https://www.youtube.com/", "not_a_video"),
    ("https://www.youtube.com/results?search_query=pizza", "not_a_video"),
    ("https://www.youtube.com/watch?v=tooshort", "not_a_video"),
    (f"https://www.youtube.com/watch?v={VID}x", "not_a_video"),
    ("https://www.youtube.com/watch?v=abc<script>", "not_a_video"),
    (f"https://www.youtube.com/watch?v={VID}&v=abcdefghijk", "not_a_video"),
    (f"https://youtu.be/{VID}/extra", "not_a_video"),
    # not URLs
    (VID, "bad_url"),  # a bare id: yt-dlp would take it
    ("", "bad_url"),
    ("   ", "bad_url"),
    (f"https://www.you tube.com/watch?v={VID}", "bad_url"),
    (f"https://www.youtube.com/watch?v={VID}\u200b", "bad_url"),  # zero-width space
    (f"{WATCH}&pad=" + "a" * 5000, "bad_url"),  # very long
]


@pytest.mark.parametrize(("url", "video_id", "start"), ACCEPTED)
def test_accepted_links_are_canonicalised(url: str, video_id: str, start: int | None) -> None:
    link = parse_link(url)
    assert link.url == f"https://www.youtube.com/watch?v={video_id}"
    assert link.video_id == video_id
    assert link.start_seconds == start
    assert link.host in YOUTUBE_HOSTS


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_links(url: str, reason: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_link(url)
    assert caught.value.reason == reason
    assert caught.value.reason in LINK_ERROR_REASONS


def test_extra_hosts_allow_only_what_is_listed() -> None:
    any_port = frozenset({"127.0.0.1"})
    link = parse_link("HTTP://127.0.0.1:8123/media/page.html?x=1#frag", extra_hosts=any_port)
    assert link == VideoLink(
        url="http://127.0.0.1:8123/media/page.html?x=1",
        video_id=None,
        start_seconds=None,
        host="127.0.0.1",
        allowed_hosts=any_port,  # redirects and connections are judged against them
    )
    one_port = frozenset({"127.0.0.1:8123"})
    assert parse_link("http://127.0.0.1:8123/v.mp4", extra_hosts=one_port).host == "127.0.0.1"
    for url in (
        "http://127.0.0.1:8124/v.mp4",  # another port
        "http://127.0.0.1/v.mp4",  # default port 80
        "http://127.0.0.1.evil.example:8123/v.mp4",
        "http://user@127.0.0.1:8123/v.mp4",
        "http://127.0.0.2:8123/v.mp4",
    ):
        with pytest.raises(LinkError) as caught:
            parse_link(url, extra_hosts=one_port)
        assert caught.value.reason == "not_allowed_host", url
    # IPv6 literals can be listed too, and YouTube stays allowed beside extra hosts.
    assert parse_link("http://[::1]:9/x", extra_hosts=frozenset({"[::1]"})).host == "::1"
    assert parse_link(WATCH, extra_hosts=any_port).video_id == VID


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90", 90), ("90s", 90), ("1m30s", 90), ("1h", 3600), ("2m", 120), ("x", None), ("", None)],
)
def test_parse_timestamp(value: str, seconds: int | None) -> None:
    assert parse_timestamp(value) == seconds


def test_find_links_in_italian_text() -> None:
    text = (
        "Ciao! Mi trascrivi questo video? https://youtu.be/dQw4w9WgXcQ?t=1m30s, "
        "e anche «www.youtube.com/shorts/abcdefghijk». L'altro link (https://vimeo.com/12345) "
        "non va, e nemmeno https://www.youtube.com/playlist?list=PL123. "
        "Ripeto il primo: https://www.youtube.com/watch?v=dQw4w9WgXcQ!\n"
        "Scrivimi a mario@youtube.com o visita youtube.com oggi; dQw4w9WgXcQ da solo non conta."
    )
    links, errors = find_links(text)
    assert [link.url for link in links] == [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://www.youtube.com/watch?v=abcdefghijk",
    ]
    assert links[0].start_seconds == 90
    assert [(error.reason, error.url) for error in errors] == [
        ("not_allowed_host", "https://vimeo.com/12345"),
        ("playlist", "https://www.youtube.com/playlist?list=PL123"),
    ]
    assert find_links("nessun link qui, solo testo. Fine.") == ([], [])


@pytest.mark.parametrize(
    "text",
    [
        "Trascrivi “https://youtu.be/dQw4w9WgXcQ”",  # iOS's typographic quotes
        "l’ho visto qui: ‘youtube.com/watch?v=dQw4w9WgXcQ’",
        "„https://youtu.be/dQw4w9WgXcQ“ grazie",
        "https://youtu.be/dQw4w9WgXcQ\u200b",  # a zero-width space pasted after it
        "\ufeffhttps://youtu.be/dQw4w9WgXcQ\u2060",
    ],
)
def test_links_end_at_typographic_quotes_and_invisible_separators(text: str) -> None:
    links, errors = find_links(text)
    assert [link.url for link in links] == ["https://www.youtube.com/watch?v=dQw4w9WgXcQ"]
    assert errors == []


def test_find_links_with_extra_host_without_scheme() -> None:
    links, errors = find_links(
        "prova 127.0.0.1:8000/video.mp4 grazie", extra_hosts=frozenset({"127.0.0.1"})
    )
    assert errors == []
    assert [link.host for link in links] == ["127.0.0.1"]


def test_link_error_reasons_are_closed() -> None:
    with pytest.raises(ValueError):
        LinkError("something_new")
    assert len(set(LINK_ERROR_REASONS)) == len(LINK_ERROR_REASONS)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Private video. Sign in if you've been granted access to this video", "private"),
        ("Sign in to confirm your age. This video may be inappropriate for some users.",
         "age_restricted"),
        ("Sign in to confirm you’re not a bot. Use --cookies-from-browser", "blocked"),
        ("Video unavailable. This video has been removed by the uploader", "unavailable"),
        ("This live event will begin in 3 hours.", "upcoming"),
        ("Requested format is not available. Use --list-formats", "no_audio"),
        ("Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
        ("Unable to download webpage: HTTP Error 500: Internal Server Error", "download_failed"),
        ("Unable to download webpage: <urlopen error [Errno 111] Connection refused>", "network"),
        ("Unable to download webpage: The read operation timed out", "timeout"),
        ("Unsupported URL: https://example.invalid/", "not_a_video"),
        ("Something nobody expected", "download_failed"),
    ],
)  # fmt: skip
def test_ytdlp_errors_map_to_reasons(message: str, reason: str) -> None:
    cause = yt_dlp.utils.ExtractorError(message, expected=True)
    error = yt_dlp.utils.DownloadError(f"ERROR: [youtube] {VID}: {message}", (None, cause, None))
    mapped = link_error_from(error, parse_link(WATCH))
    assert mapped.reason == reason
    assert mapped.url == WATCH


NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    youtube = parse_link(WATCH)
    operator = parse_link("http://media.example/v.mp4", extra_hosts=frozenset({"media.example"}))
    assert not is_public_address(ip)
    assert not connect_allowed(youtube, ip, 443)
    assert not connect_allowed(operator, ip, 80)


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert connect_allowed(parse_link(WATCH), ipaddress.ip_address(address), 443)


def test_private_address_only_as_a_listed_ip_literal() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    any_port = parse_link("http://127.0.0.1:8/v", extra_hosts=frozenset({"127.0.0.1"}))
    one_port = parse_link("http://127.0.0.1:8/v", extra_hosts=frozenset({"127.0.0.1:8"}))
    assert connect_allowed(any_port, loopback, 9)
    assert connect_allowed(one_port, loopback, 8) and not connect_allowed(one_port, loopback, 9)
    assert not connect_allowed(one_port, ipaddress.ip_address("127.0.0.2"), 8)
    unspecified = parse_link("http://0.0.0.0:8/v", extra_hosts=frozenset({"0.0.0.0"}))
    assert not connect_allowed(unspecified, ipaddress.ip_address("0.0.0.0"), 8)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://rr3---sn-abc.googlevideo.com/videoplayback?x=1", True),
        ("https://www.youtube.com/watch?v=x", True),
        ("https://consent.youtube.com/m", True),
        ("https://i.ytimg.com/vi/x.jpg", True),
        ("http://127.0.0.1/", False),
        ("https://googlevideo.com.evil.example/", False),
        ("https://evilgooglevideo.com/", False),
        ("https://user@www.youtube.com/", False),
        ("ftp://www.youtube.com/", False),
        ("file:///etc/passwd", False),
    ],
)
def test_youtube_redirects_stay_with_youtube(url: str, allowed: bool) -> None:
    assert request_allowed(parse_link(WATCH), url) is allowed


def test_operator_redirects_stay_on_listed_hosts_and_ports() -> None:
    link = parse_link(
        "http://media.example:8080/v", extra_hosts=frozenset({"media.example:8080", "cdn.example"})
    )
    assert request_allowed(link, "http://media.example:8080/other")
    assert request_allowed(link, "https://cdn.example/v.mp4")
    assert not request_allowed(link, "http://media.example:8081/v")
    assert not request_allowed(link, "http://media.example/v")
    assert not request_allowed(link, "http://169.254.169.254/latest/meta-data/")
    assert not request_allowed(link, "https://www.youtube.com/watch?v=" + VID)

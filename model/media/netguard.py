"""Every HTTP request a download makes goes through one guarded door (issue 10).

yt-dlp sends pages, embeds and media through ``YoutubeDL.urlopen`` and a request handler
(urllib, requests, curl_cffi ... whichever is installed). Here a YoutubeDL subclass uses
only a urllib handler whose checks the rules of model/media/links.py drive:

- at *connect* time, every address the host name resolved to is checked before the socket
  connects (:func:`model.media.links.connect_allowed`), so neither DNS nor a redirect can lead to
  loopback, private or link-local services (no window between check and connect);
- every HTTP redirect is re-checked against the allow-list
  (:func:`model.media.links.request_allowed`) before it is followed;
- for operator-added hosts, every request yt-dlp starts itself must stay on the link's own
  origin (a page could name any other URL as its media).

Proxies from the environment are not used: a proxy would make the connect-time check see
only the proxy's address.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit

from model.media.address_policy import connect_allowed, request_allowed
from model.media.links import DEFAULT_PORTS, LinkError, VideoLink
from model.media.native_only import check_native

DIRECT_CONNECTION = ""  # yt-dlp's "proxy" option: "" means connect directly
_MAX_SHOWN_URL = 200


class BlockedRequestError(OSError):
    """A connection or redirect the allow-list refuses (an OSError, so yt-dlp wraps it)."""


def guarded_downloader(link: VideoLink, options: dict[str, Any]) -> Any:
    """A ``yt_dlp.YoutubeDL`` for ``link`` whose every request is held to the rules above."""
    import yt_dlp

    handler = _guarded_request_handler(link)

    class _GuardedYoutubeDL(yt_dlp.YoutubeDL):
        def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
            # Only the guarded handler, whatever else (requests, curl_cffi) is installed.
            return super().build_request_director([handler], preferences)

        def dl(self, name: str, info: Any, subtitle: bool = False, test: bool = False) -> Any:
            check_native(info, self.params, url=link.url)  # no ffmpeg, rtmpdump, mpv ...
            return super().dl(name, info, subtitle, test)

        def urlopen(self, req: Any) -> Any:
            url = req if isinstance(req, str) else getattr(req, "url", None) or req.full_url
            if link.video_id is None and _origin(url) != _origin(link.url):
                raise LinkError("not_allowed_host", f"request to {url[:_MAX_SHOWN_URL]}")
            return super().urlopen(req)

    return _GuardedYoutubeDL({**options, "proxy": DIRECT_CONNECTION})


def _guarded_request_handler(link: VideoLink) -> type[Any]:
    """yt-dlp's urllib request handler, its connecting and redirecting handlers guarded."""
    from yt_dlp.networking._urllib import ProxyHandler, UrllibRH

    http_handler = _guarded_http_handler(link)
    redirect_handler = _guarded_redirect_handler(link)

    class _GuardedUrllibRH(UrllibRH):
        def _create_instance(
            self, proxies: Any, cookiejar: Any, legacy_ssl_support: Any = None
        ) -> Any:
            # yt-dlp's own handler list with the connecting and redirecting handlers guarded,
            # and without ftp: and file: (ftplib and the disk are beyond the guard).
            opener = urllib.request.OpenerDirector()
            for handler in (
                ProxyHandler(proxies),
                http_handler(
                    debuglevel=int(bool(self.verbose)),
                    context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support),
                    source_address=self.source_address,
                ),
                urllib.request.HTTPCookieProcessor(cookiejar),
                urllib.request.DataHandler(),
                urllib.request.UnknownHandler(),
                urllib.request.HTTPDefaultErrorHandler(),
                urllib.request.HTTPErrorProcessor(),
                redirect_handler(),
            ):
                opener.add_handler(handler)
            opener.addheaders = []  # as yt-dlp: no urllib default User-Agent
            return opener

    return _GuardedUrllibRH


def _guarded_http_handler(link: VideoLink) -> type[Any]:
    """An HTTP(S) handler whose connections check every resolved address before connecting."""
    from yt_dlp.networking._helper import _socket_connect, create_connection
    from yt_dlp.networking._urllib import HTTPHandler

    def connect(address: tuple[str, int], timeout: Any = None, source: Any = None) -> Any:
        def checked(ip_addr: Any, timeout: Any, source_address: Any) -> Any:
            resolved = ipaddress.ip_address(ip_addr[4][0].split("%")[0])
            if not connect_allowed(link, resolved, address[1]):
                raise BlockedRequestError(f"{address[0]} resolves to {resolved}, not allowed")
            return _socket_connect(ip_addr, timeout, source_address)

        return create_connection(address, timeout, source, _create_socket_func=checked)

    def guarded_connection(conn_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        connection = conn_class(*args, **kwargs)
        connection._create_connection = connect
        return connection

    class _GuardedHTTPHandler(HTTPHandler):
        def http_open(self, req: Any) -> Any:
            conn_class = self._make_conn_class(http.client.HTTPConnection, req)
            return self.do_open(functools.partial(guarded_connection, conn_class), req)

        def https_open(self, req: Any) -> Any:
            conn_class = self._make_conn_class(http.client.HTTPSConnection, req)
            return self.do_open(
                functools.partial(guarded_connection, conn_class), req, context=self._context
            )

    return _GuardedHTTPHandler


def _guarded_redirect_handler(link: VideoLink) -> type[Any]:
    """A redirect handler that refuses every target the link may not request."""
    from yt_dlp.networking._urllib import RedirectHandler

    def check(newurl: str) -> None:
        if not request_allowed(link, newurl):
            raise BlockedRequestError(f"redirect to {newurl[:_MAX_SHOWN_URL]}, not allowed")

    class _GuardedRedirectHandler(RedirectHandler):
        def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
            # Checked before urllib's own checks, so every refused target (file:, another
            # host, a private address) gets the same answer.
            location = headers.get("location") or headers.get("uri")
            if location is not None:
                check(urljoin(req.full_url, location))
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

        def redirect_request(
            self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> Any:
            check(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return _GuardedRedirectHandler


def _origin(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return ("", None)
    return ((parts.hostname or "").rstrip(".").lower(), port)


def blocked_cause(exc: BaseException) -> BlockedRequestError | None:
    """The BlockedRequestError somewhere inside yt-dlp's wrapping of ``exc``, if any."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedRequestError):
            return current
        exc_info = getattr(current, "exc_info", None)
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None),
                    getattr(current, "cause", None), exc_info[1] if exc_info else None]  # fmt: skip
    return None

"""The webhook listener (bot/ops/webhook.py) over a real loopback socket.

What PTB's tornado listener did not do: answer before reading the body. A forger without
the secret, or a body over the limit, is refused on the headers alone; these tests send
only the headers of a large request and time out on a listener that waits for the body.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest

from bot.ops.webhook import KEEPALIVE_TIMEOUT_SECONDS, SECRET_HEADER, start_listener, webhook_app

SECRET = "s3cret-token-for-tests-0123456789"
MAX_BODY = 65_536
PATH = "/hook"
ANSWER_TIMEOUT = 5.0
BODY_TIMEOUT = 0.5


class Listener:
    def __init__(self, port: int, queue: asyncio.Queue) -> None:
        self.port = port
        self.queue = queue

    async def exchange(self, head: dict[str, str], body: bytes = b"", *, send_body=True) -> int:
        """The status line's code; only the headers go out when ``send_body`` is False."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if send_body:
            writer.write(body)
        await writer.drain()
        try:
            status = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
        finally:
            writer.close()
        return int(status.split()[1])


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    queue: asyncio.Queue = asyncio.Queue()
    app = webhook_app(
        path=PATH,
        secret=SECRET,
        application_bot=None,
        update_queue=queue,
        max_body_bytes=MAX_BODY,
        body_timeout=BODY_TIMEOUT,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = await start_listener(app, "127.0.0.1", port)
    try:
        yield Listener(port, queue)
    finally:
        await runner.cleanup()


def _update(update_id: int = 7) -> bytes:
    return json.dumps({"update_id": update_id}).encode()


def _head(body_length: int, *, secret: str | None = SECRET, kind="application/json"):
    head = {"Content-Type": kind, "Content-Length": str(body_length)}
    if secret is not None:
        head[SECRET_HEADER] = secret
    return head


async def test_an_update_with_the_secret_is_queued(listener: Listener) -> None:
    body = _update(41)
    assert await listener.exchange(_head(len(body)), body) == 200
    update = listener.queue.get_nowait()
    assert update.update_id == 41


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x", "è" * 8])
async def test_a_100_mb_request_without_the_secret_is_refused_before_its_body(
    listener: Listener, secret: str | None
) -> None:
    head = _head(100_000_000, secret=secret)
    assert await listener.exchange(head, send_body=False) == 403
    assert listener.queue.empty()


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    listener: Listener,
) -> None:
    assert await listener.exchange(_head(MAX_BODY + 1), send_body=False) == 413


async def test_a_chunked_body_over_the_limit_is_refused(listener: Listener) -> None:
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    head[SECRET_HEADER] = SECRET
    chunk = b" " * 16_384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    assert await listener.exchange(head, body) == 413
    assert listener.queue.empty()


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"text"', b'{"no_update_id": 1}', b"\xff\xfe"]
)
async def test_an_unreadable_update_is_a_bad_request(listener: Listener, body: bytes) -> None:
    assert await listener.exchange(_head(len(body)), body) == 400
    assert listener.queue.empty()


async def test_another_content_type_is_refused(listener: Listener) -> None:
    body = _update()
    assert await listener.exchange(_head(len(body), kind="text/plain"), body) == 403
    assert listener.queue.empty()


async def test_a_half_sent_request_is_dropped(listener: Listener) -> None:
    """Headers that never end must not hold a connection (and a descriptor) for long."""
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), KEEPALIVE_TIMEOUT_SECONDS * 3) == b""
    writer.close()


async def test_a_body_that_never_finishes_is_cut_off(listener: Listener) -> None:
    """Even with the secret, a body sent slowly must not hold its handler for ever."""
    body = _update()
    assert await listener.exchange(_head(len(body) + 100), body) == 408
    assert listener.queue.empty()

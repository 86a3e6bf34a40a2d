"""The operations HTTP server (``WHISPER_IT_HTTP_PORT``): ``/healthz``, ``/readyz`` and
``/metrics`` for probes and Prometheus. It runs on the process's own event loop; every
check that touches the database runs in the server's own thread, one at a time: a probe
that comes while the same check runs shares its result, so a hung database holds one
thread, not one per probe (nor the threads the rest of the process uses). It never
shares a port with the Telegram webhook listener, and serves nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from bot.ops.health import Probes, liveness_problems, readiness_problems
from bot.ops.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
STATUS_OK = 200
STATUS_UNAVAILABLE = 503
# A probe that cannot answer within this long counts as failed (a stuck database).
CHECK_TIMEOUT_SECONDS = 10.0
# An idle or half-sent request is dropped after this long (aiohttp's default is an hour,
# so a client holding connections open could use up every file descriptor).
KEEPALIVE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class OpsAddress:
    host: str
    port: int


class OpsServer:
    def __init__(self, address: OpsAddress, metrics: Metrics, probes: Probes) -> None:
        self.address = address
        self.metrics = metrics
        self.probes = probes
        self._runner: web.AppRunner | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-checks")
        self._running: dict[str, asyncio.Future] = {}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(READY_PATH, self._ready)
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, self.address.port)
        await site.start()
        log.info(
            "operations endpoints on http://%s:%d (%s, %s, %s)",
            self.address.host,
            self.address.port,
            HEALTH_PATH,
            READY_PATH,
            METRICS_PATH,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _health(self, request: web.Request) -> web.Response:
        # No database, no thread: answering at all is the event loop's proof of life.
        return _answer(liveness_problems(self.probes))

    async def _shared(self, name: str, check: Callable[[], T]) -> T:
        """``check`` in the server's thread, waited for ``CHECK_TIMEOUT_SECONDS`` at most;
        while it runs, later requests wait for the same result instead of queueing more."""
        running = self._running.get(name)
        if running is None or running.done():
            running = asyncio.get_running_loop().run_in_executor(self._pool, check)
            # Retrieved even when every request gave up waiting (no "never retrieved").
            running.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._running[name] = running
        return await asyncio.wait_for(asyncio.shield(running), CHECK_TIMEOUT_SECONDS)

    async def _ready(self, request: web.Request) -> web.Response:
        try:
            reasons = await self._shared(READY_PATH, lambda: readiness_problems(self.probes))
        except TimeoutError:
            reasons = [f"checks did not answer within {CHECK_TIMEOUT_SECONDS:.0f} s"]
        return _answer(reasons)

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            body = await self._shared(METRICS_PATH, self._render)
        except TimeoutError:
            log.warning("metrics not rendered within %.0f s", CHECK_TIMEOUT_SECONDS)
            return web.Response(text="metrics unavailable\n", status=STATUS_UNAVAILABLE)
        except Exception:  # (the database being down is a metric, not an error)
            log.exception("metrics not rendered")
            return web.Response(text="metrics unavailable\n", status=STATUS_UNAVAILABLE)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    def _render(self) -> bytes:
        if self.probes.model_loaded is not None:
            self.probes.model_loaded()  # records the model served (whisper_it_model_info)
        return self.metrics.render()


def _answer(reasons: list[str]) -> web.Response:
    body = {"status": "ok" if not reasons else "unavailable", "reasons": reasons}
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=STATUS_OK if not reasons else STATUS_UNAVAILABLE,
        content_type="application/json",
    )

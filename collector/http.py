"""The collector's HTTP side (aiohttp, imported only here): the /metrics, /healthz, /readyz server and
a small client for remote write."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from collector import exposition
from collector.store import Store


def make_app(store: Store, is_ready: Callable[[], bool]) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        t0 = time.perf_counter()
        body = exposition.render_bytes(store, store.clock())
        store.metrics.rendered(time.perf_counter() - t0)
        data = body + store.metrics.render()
        return web.Response(body=data, headers={"Content-Type": exposition.CONTENT_TYPE})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not connected to the MQTT broker\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host, self._port = host, port
        self.bound_port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)  # tells the real port when 0 was asked
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._runner.cleanup()


class HttpPoster:
    """POST bytes with one shared connection pool (remote write)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                return response.status, (await response.read()).decode("utf-8", errors="replace")
        except aiohttp.ClientError as exc:
            raise OSError(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

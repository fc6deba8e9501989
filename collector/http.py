"""The collector's HTTP side (aiohttp, imported only here): the /metrics, /healthz, /readyz server, the
status pages (``/``, ``/office/<agent>``, their JSON under ``/api/``; docs/status-pages.md) and a small
client for remote write.

/metrics must survive its readers. Every scrape shares one rendering (:class:`SharedRendering`): it
is rendered again only when the store changed and the last rendering is older than a short window
(five times what rendering costs, at least 50 ms), or after ``MAX_AGE`` seconds; concurrent scrapers
get the same bytes object. A response is streamed in chunks, waiting for the reader (``drain``), so a
slow reader holds a view of the shared bytes and about one chunk of its own, never a copy of the page;
it is cut after ``write_timeout`` seconds. At most ``MAX_GENERATIONS`` renderings are alive at once:
a new one cuts the readers still on the oldest.

Connections are bounded: at most ``max_connections`` at once (and never more than the file-descriptor
limit leaves room for). When a new connection would pass the bound, the oldest idle one (no request in
progress: half-sent, or kept alive) is closed; failing that, the oldest request that has run for more
than ``EVICT_AFTER`` seconds (a slow reader), failing that the oldest request. So ``/healthz`` answers
even while the connection table is full of half-open or slow connections. A connection must send a
complete request within ``request_timeout`` seconds of opening (or of its last response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from collector import exposition, status_pages
from collector.status_answers import Answer as StatusAnswer
from collector.status_answers import StatusAnswers
from collector.status_assets import CSP
from collector.status_history import TrafficHistory
from collector.store import Store

log = logging.getLogger("hatang.collector.http")

CHUNK = 64 * 1024  # bytes written per step of a response (then wait for the reader)
MIN_SHARE = 0.05  # seconds: a rendering younger than this is always shared
SHARE_FACTOR = 5.0  # ... and one younger than this many times its own rendering time
MAX_AGE = 5.0  # seconds: rendered again after this even without a change (liveness is computed at render)
MAX_GENERATIONS = 3  # renderings alive at once (being sent to someone)
EVICT_AFTER = 5.0  # seconds a request must have run before its connection may be closed for a new one
FD_RESERVE = 32  # file descriptors kept for MQTT, remote write, files, when bounding connections
# asyncio accepts up to this many connections in one go, before any of them reaches our protocol factory
# (where the bound is applied), and closes the connections closed for them one loop turn later: twice
# this many file descriptors are needed beyond the bound
ACCEPT_BATCH = 16
LISTEN_BACKLOG = 1024  # the kernel's queue of connections waiting to be accepted


@dataclass(eq=False)
class Rendering:
    body: bytes
    made: float  # monotonic time
    version: int
    readers: set[asyncio.Task[Any]] = field(default_factory=set)


class SharedRendering:
    """One /metrics rendering shared by every concurrent scraper (see the module doc)."""

    def __init__(self, render: Callable[[], bytes], version: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._render = render
        self._version = version
        self._clock = clock
        self._alive: list[Rendering] = []  # oldest first; the last is the current one
        self._cost = 0.0  # seconds the last rendering took
        self.renders = 0

    def current(self) -> Rendering:
        now = self._clock()
        self._alive = [r for r in self._alive if r.readers or r is self._alive[-1]]
        last = self._alive[-1] if self._alive else None
        if last is not None:
            age = now - last.made
            fresh_enough = age < max(MIN_SHARE, SHARE_FACTOR * self._cost)
            if fresh_enough or (age < MAX_AGE and last.version == self._version()):
                return last
        while len(self._alive) >= MAX_GENERATIONS:  # memory bound: cut the readers of the oldest
            oldest = self._alive.pop(0)
            for task in list(oldest.readers):
                task.cancel()
            oldest.readers.clear()
        version = self._version()
        started = time.perf_counter()
        body = self._render()
        self._cost = time.perf_counter() - started
        self.renders += 1
        rendering = Rendering(body, self._clock(), version)
        self._alive.append(rendering)
        return rendering


async def send_body(request: web.Request, body: bytes, content_type: str, write_timeout: float,
                    ) -> web.StreamResponse:
    """Stream ``body`` in chunks, waiting for the reader; give up (close) after ``write_timeout``."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = len(body)
    view = memoryview(body)
    try:
        async with asyncio.timeout(write_timeout):
            await response.prepare(request)
            for start in range(0, len(view), CHUNK):
                await response.write(view[start:start + CHUNK])
            await response.write_eof()
    except (TimeoutError, ConnectionError, asyncio.CancelledError) as exc:
        if request.transport is not None:
            request.transport.abort()  # a reader too slow or cut: free its connection now
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        view.release()
    return response


SHARED_RENDERING = web.AppKey("shared_rendering", SharedRendering)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 256
    request_timeout: float = 10.0  # to send a complete request, after connecting or after a response
    write_timeout: float = 60.0  # to read one /metrics response


_PRIVATE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", **_PRIVATE}
PAGE_HEADERS = {"Content-Type": status_pages.CONTENT_TYPE, "Content-Security-Policy": CSP,
                "Referrer-Policy": "no-referrer", **_PRIVATE}


def _respond(answer: StatusAnswer) -> web.Response:
    headers = PAGE_HEADERS if answer.kind == "html" else JSON_HEADERS
    if answer.status == 503:
        headers = {**headers, "Retry-After": "1"}
    return web.Response(status=answer.status, body=answer.body, headers=headers)


def add_status_routes(app: web.Application, store: Store, history: TrafficHistory | None,
                      grafana: Callable[[], str | None]) -> None:
    """The status pages and their JSON (docs/status-pages.md), shared and budgeted by
    collector/status_answers.py; ``grafana``: the Grafana URL, per request."""
    answers = StatusAnswers(store, history, grafana, store.clock, lambda: store.version)

    async def serve(request: web.Request) -> web.Response:
        match = request.match_info
        return _respond(answers.get(request.path, match.get("agent"), match.get("device")))

    @web.middleware
    async def not_found(request: web.Request, handler: _View) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _respond(answers.not_found(request.path))

    app.middlewares.append(not_found)
    for route in ("/", "/office/{agent}", "/office/{agent}/device/{device:.+}", "/api/offices",
                  "/api/office/{agent}", "/api/office/{agent}/device/{device:.+}"):
        app.router.add_get(route, serve)


def make_app(store: Store, is_ready: Callable[[], bool], limits: HttpLimits | None = None, *,
             history: TrafficHistory | None = None, grafana: Callable[[], str | None] = lambda: None,
             ) -> web.Application:
    limits = limits or HttpLimits()

    def render() -> bytes:
        t0 = time.perf_counter()
        body = exposition.render_bytes(store, store.clock())
        store.metrics.rendered(time.perf_counter() - t0)
        return body + store.metrics.render()

    shared = SharedRendering(render, lambda: store.version)

    async def metrics(request: web.Request) -> web.StreamResponse:
        rendering = shared.current()
        task = asyncio.current_task()
        assert task is not None
        rendering.readers.add(task)
        try:
            return await send_body(request, rendering.body, exposition.CONTENT_TYPE, limits.write_timeout)
        finally:
            rendering.readers.discard(task)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not connected to the MQTT broker\n")

    app = web.Application(middlewares=[_track_requests])
    app[SHARED_RENDERING] = shared
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_status_routes(app, store, history, grafana)
    return app


_View = Callable[[web.Request], Awaitable[web.StreamResponse]]
# handler -> loop time its current request started (absent: idle). Read by the connection bound.
_started: dict[object, float] = {}


@web.middleware
async def _track_requests(request: web.Request, handler: _View) -> web.StreamResponse:
    protocol = request.protocol
    _started[protocol] = asyncio.get_running_loop().time()
    try:
        return await handler(request)
    finally:
        _started.pop(protocol, None)


def fd_headroom() -> int:
    """Connections the file-descriptor limit leaves room for (after raising the soft limit to the hard
    one: systemd's default soft limit is 1024 while the hard one is far higher)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return max(8, soft - FD_RESERVE - 2 * ACCEPT_BATCH) if soft != resource.RLIM_INFINITY else 1 << 20


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int, limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        # aiohttp closes a connection that has no complete request within keepalive_timeout of opening
        # or of its last response: that is our request (header) timeout.
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.limits.request_timeout,
                                     handler_cancellation=True)
        self._host, self._port = host, port
        self.bound_port = port
        self.max_connections = self.limits.max_connections
        self._server: asyncio.AbstractServer | None = None
        # connections made by our factory and not closed, with when they opened (counted here, not from
        # aiohttp's list, which learns of a connection one loop turn later)
        self._open: dict[RequestHandler, float] = {}
        self.evicted = 0
        self.refused = 0

    async def start(self) -> None:
        await self._runner.setup()
        headroom = fd_headroom()
        if self.max_connections > headroom:
            log.warning("http.max_connections %d is more than the open-file limit leaves room for: %d "
                        "connections at most (raise LimitNOFILE)", self.max_connections, headroom)
            self.max_connections = headroom
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.setblocking(False)
            # asyncio accepts up to ``backlog`` connections per wakeup: keep that small (file descriptors
            # beyond the bound), and the kernel's queue long, so a /healthz probe is not dropped while
            # a flood of connections waits to be accepted
            self._server = await loop.create_server(self._protocol, sock=sock, backlog=ACCEPT_BATCH)
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self.bound_port = int(sock.getsockname()[1])

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        now = asyncio.get_running_loop().time()
        if len(self._open) >= self.max_connections:
            victim = self._victim(list(self._open), now)
            if victim is None:
                self.refused += 1
                return _Refuse()
            self.evicted += 1
            del self._open[victim]
            victim.force_close()
            transport = victim.transport
            if transport is not None:
                transport.abort()
        # what aiohttp's Server.__call__ does, with a handler that tells us when its connection ends
        handler = _Handler(server, loop=asyncio.get_running_loop(), **server._kwargs)
        handler.on_lost = self._open.pop
        self._open[handler] = now
        return handler

    def _victim(self, live: list[RequestHandler], now: float) -> RequestHandler | None:
        idle = [h for h in live if h not in _started]
        if idle:
            return min(idle, key=lambda h: self._open.get(h, 0.0))
        busy = [h for h in live if now - _started.get(h, now) >= EVICT_AFTER] or live
        return min(busy, key=lambda h: _started.get(h, now)) if busy else None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        await self._runner.cleanup()


class _Handler(RequestHandler):
    """aiohttp's connection handler, reporting the end of its connection."""

    __slots__ = ("on_lost",)
    on_lost: Callable[[RequestHandler, None], object]

    def connection_lost(self, exc: BaseException | None) -> None:
        on_lost = getattr(self, "on_lost", None)
        if on_lost is not None:
            on_lost(self, None)
        super().connection_lost(exc)


class _Refuse(asyncio.Protocol):
    """A connection over the bound when none can be closed for it: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def tls_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None,
                insecure_skip_verify: bool) -> ssl.SSLContext:
    """The TLS settings of a remote-write endpoint (raises OSError or ssl.SSLError)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class HttpPoster:
    """POST bytes with one shared connection pool (remote write). ``tls``: the TLS context per URL."""

    def __init__(self, tls: dict[str, ssl.SSLContext] | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tls = tls or {}

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, data=body, headers=headers, ssl=self._tls.get(url, True),
                                          timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                return response.status, (await response.read()).decode("utf-8", errors="replace")
        except aiohttp.ClientError as exc:
            raise OSError(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

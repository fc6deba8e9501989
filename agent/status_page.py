"""The local status page's HTTP server (aiohttp; the only agent module that imports it).

agent/service.py imports this module only when ``status`` is configured, so an agent without the page
never loads aiohttp (its memory is counted, docs/performance.md). Routes, all GET (and HEAD):

- ``/``: the page (agent/status_html.py), which refreshes itself from ``/api/status``;
- ``/api/status``: the snapshot as JSON (agent/status_view.py);
- anything else: a small 404 page; another method on a known path: 405.

Read-only, no cookies, no forms. Every answer carries ``Cache-Control: no-store`` and a Content Security
Policy that allows only the page's own inline style and script (by hash) and requests to itself. When it
listens on a loopback address, a request must name a loopback address or ``localhost`` in its Host
header (403 otherwise): a web page elsewhere cannot read it by pointing a name of its own at 127.0.0.1
(DNS rebinding). A port that cannot be bound is logged and the agent runs on without the page: polling
and the uplink matter more than the page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent.config import LocalStatusConfig, loopback_host
from agent.status_html import CSP, render_error, render_not_found, render_page
from agent.status_view import LocalAgentSource, snapshot, to_json_bytes

log = logging.getLogger("hatang.agent.status")

ROUTES = ("/", "/api/status")
SHUTDOWN_TIMEOUT = 1.0  # seconds a request in progress may take when the agent stops
HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _host_name(header: str) -> str:
    """The host part of a Host header: ``[::1]:9109`` -> ``[::1]``, ``127.0.0.1:9109`` -> ``127.0.0.1``."""
    if header.startswith("["):
        return header.partition("]")[0] + "]"
    return header.rpartition(":")[0] if ":" in header else header


def _html(status: int, body: str, **extra: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers={**HEADERS, **extra})


def make_app(agent: LocalAgentSource, listen_host: str) -> web.Application:
    loopback_only = loopback_host(listen_host)

    async def handle(request: web.Request) -> web.StreamResponse:
        if loopback_only and not loopback_host(_host_name(request.host)):
            return _html(403, render_error(
                403, "Không được phép", "Forbidden",
                "Trang trạng thái này chỉ mở được qua địa chỉ 127.0.0.1 (hoặc localhost) của máy đặt agent."))
        if request.path not in ROUTES:
            return _html(404, render_not_found(request.path))
        if request.method not in ("GET", "HEAD"):
            return _html(405, render_error(405, "Phương thức không được hỗ trợ", "Method Not Allowed",
                                           f"Trang này chỉ đọc (GET), không nhận {request.method}."),
                         Allow="GET, HEAD")
        snap = snapshot(agent)
        if request.path == "/":
            return _html(200, render_page(snap))
        return web.Response(body=to_json_bytes(snap), content_type="application/json", charset="utf-8",
                            headers=HEADERS)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve_status_page(config: LocalStatusConfig, agent: LocalAgentSource
                            ) -> Callable[[], Awaitable[None]] | None:
    """Serve the page on ``config.listen``; return the coroutine function that stops it, or None (logged)
    when the address cannot be bound."""
    host, port = config.host_port()
    runner = web.AppRunner(make_app(agent, host), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        log.error("cannot serve the local status page on %s: %s (status.listen: another program may use "
                  "the port); the agent runs on without it", config.listen, exc.strerror or exc)
        return None
    log.info("local status page on http://%s/", config.listen)
    return runner.cleanup

"""A real Alertmanager (Debian ``prometheus-alertmanager`` 0.25) on loopback, and the sinks it notifies.

* :func:`render_test_config` renders a copy of deploy/alertmanager/hatang.yml for a test: the same routes,
  inhibit rules, receivers and templates, with every address pointed at loopback sinks, secrets in the
  test's directory and short group timings. It refuses to produce a config that names any host outside
  127.0.0.0/8.
* :func:`start_alertmanager` starts ``prometheus-alertmanager`` with clustering off, storage in a
  private directory and ``--web.listen-address=127.0.0.1:PORT``; it is stopped by PID (``stop()``).
* :class:`HttpSink` records the HTTP requests of the webhook and of the fake Telegram Bot API
  (Alertmanager 0.25 posts JSON to ``{api_url}/bot{token}/sendMessage`` and wants ``{"ok": true,
  "result": <Message>}`` back). :class:`SmtpSink` is an aiosmtpd server that keeps every message.
"""

from __future__ import annotations

import copy
import email
import email.policy
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.services import (
    LOOPBACK,
    _Service,
    _start_with_port_retry,
    free_tcp_port,
    require_binary,
)

__all__ = [
    "SHIPPED",
    "Alertmanager",
    "HttpRequest",
    "HttpSink",
    "SmtpSink",
    "amtool",
    "render_test_config",
    "start_alertmanager",
]

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager"
READY_TIMEOUT = 30.0
TELEGRAM_TOKEN = "123456:TEST-token-loopback"


def amtool() -> str:
    return require_binary("amtool", "prometheus-alertmanager")


# --------------------------------------------------------------------------------------------------
# the test copy of the shipped config


def _walk_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from _walk_routes(child)


_URL_HOST = re.compile(r"^[a-z]+://([^/:]+)")


def _hosts(doc: Any) -> Iterator[str]:
    """Every host named in the config: URLs and host:port smarthosts."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, str) and ("smarthost" in key or key.endswith("url")):
                match = _URL_HOST.match(value)
                yield match.group(1) if match else value.rsplit(":", 1)[0]
            else:
                yield from _hosts(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _hosts(item)


def render_test_config(
    workdir: Path, *, smtp_port: int, webhook_url: str, telegram_url: str, smtp_password: str,
    webhook_token: str, timing: str = "1s",
) -> Path:
    """Write ``workdir/alertmanager.yml``: the shipped config with loopback addresses, the secrets
    (files in ``workdir/secrets``), absolute template paths and ``timing`` as group_wait and
    group_interval everywhere. Returns its path."""
    doc: dict[str, Any] = yaml.safe_load((SHIPPED / "hatang.yml").read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    secrets = workdir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    # Alertmanager 0.25 sends the file's bytes verbatim: a trailing newline becomes part of the password
    # (seen here as "535 Authentication credentials invalid"). The webhook's credentials_file is trimmed.
    (secrets / "smtp-password").write_text(smtp_password, encoding="utf-8")
    (secrets / "webhook-token").write_text(webhook_token + "\n", encoding="utf-8")

    glob = doc["global"]
    glob["smtp_smarthost"] = f"{LOOPBACK}:{smtp_port}"
    glob["smtp_hello"] = "localhost"
    glob["smtp_require_tls"] = False  # the sink speaks plain SMTP on loopback
    glob["smtp_auth_password_file"] = str(secrets / "smtp-password")
    glob["telegram_api_url"] = telegram_url
    doc["templates"] = [str(SHIPPED / "templates" / "*.tmpl")]
    for route in _walk_routes(doc["route"]):
        for key in ("group_wait", "group_interval"):
            if key in route or route is doc["route"]:
                route[key] = timing
    for receiver in doc["receivers"]:
        for tg in receiver.get("telegram_configs", []):
            tg["bot_token"] = TELEGRAM_TOKEN
            tg["api_url"] = telegram_url
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(secrets / "webhook-token")
    foreign = sorted({h for h in _hosts(doc) if not h.startswith("127.")})
    if foreign:
        raise AssertionError(f"test config would talk to non-loopback hosts {foreign}")
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Alertmanager


@dataclass(eq=False)
class Alertmanager(_Service):
    host: str
    port: int
    pid: int
    config_path: Path
    log_path: Path
    storage_dir: Path
    binary: str = field(default="/usr/bin/prometheus-alertmanager", repr=False)
    _proc: Any = field(default=None, repr=False)
    _ready_timeout: float = field(default=READY_TIMEOUT, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        return [
            self.binary, f"--config.file={self.config_path}", f"--storage.path={self.storage_dir}",
            f"--web.listen-address={self.host}:{self.port}", "--cluster.listen-address=",
            f"--web.external-url={self.url}/", "--log.level=info",
        ]

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts (what Prometheus does)."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.read()

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: every alert with its status (state, inhibitedBy, silencedBy)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
        return result


def start_alertmanager(workdir: Path, config_path: Path) -> Alertmanager:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)

    def make(port: int) -> Alertmanager:
        return Alertmanager(
            host=LOOPBACK, port=port, pid=0, config_path=config_path, log_path=workdir / "alertmanager.log",
            storage_dir=workdir / "data", binary=binary,
        )

    return _start_with_port_retry(make, None, free_tcp_port)


# --------------------------------------------------------------------------------------------------
# sinks


@dataclass(frozen=True)
class HttpRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpSink:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers ``reply`` as JSON."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.requests.append(HttpRequest(self.path, dict(self.headers.items()), body))
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, free_tcp_port()), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self) -> list[HttpRequest]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


TELEGRAM_REPLY: dict[str, Any] = {
    "ok": True,
    "result": {"message_id": 1, "date": 1_700_000_000, "chat": {"id": -1000000000001, "type": "supergroup"},
               "text": "ok"},
}


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._sink._lock:
            self._sink.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1:``port`` requiring AUTH PLAIN (user ``username``, ``password``) over plain
    SMTP (Go's PLAIN auth allows that to 127.0.0.1 only); keeps (recipients, parsed message) of every mail.
    aiosmtpd warns (UserWarning) about AUTH without TLS on every connection: filter it in the test."""

    def __init__(self, username: str, password: str) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.logins: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self.port = free_tcp_port()

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
                  and auth_data.password.decode() == password)
            with self._lock:
                self.logins.append((mechanism, ok))
            return AuthResult(success=ok, handled=False)

        self._controller = Controller(
            _Handler(self), hostname=LOOPBACK, port=self.port, authenticator=authenticate,
            auth_required=True, auth_require_tls=False, ready_timeout=10,
            # aiosmtpd's LOGIN challenge is "User Name", Alertmanager 0.25 expects "Username:" (what
            # Postfix and Exchange send) and aborts: offer PLAIN only.
            auth_exclude_mechanism=["LOGIN"],
        )
        self._controller.start()

    def received(self) -> list[tuple[list[str], EmailMessage]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._controller.stop()

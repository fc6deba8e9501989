"""Remote-write credentials stay secret: basic auth and bearer tokens from files, TLS with a client
certificate, and every URL that reaches a label or a log line redacted. A real ``hatang collector``
(push mode: every poll is remote-written) writes to a real HTTP(S) receiver on loopback that checks the
Authorization header; the secrets must appear nowhere in /metrics or the collector's log."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e.conftest import Collector
from tests.support.hatang import HatangProcess, find, parse, run_hatang, scrape, write_yaml
from tests.support.mqtt_publisher import Publisher
from tests.support.services import Mosquitto, free_tcp_port
from tests.support.waiting import wait_until
from wire.codec import encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import data_topic

pytestmark = pytest.mark.integration

PASSWORD = "Mật-khẩu-s3cret-p4ss"
TOKEN = "tok-9f8e7d6c5b4a"
URL_TOKEN = "qtok-1234567890"


@dataclass
class Receiver:
    """An HTTP(S) remote-write receiver: answers ``fail_first`` requests with 500 (quoting the request
    line, as some proxies do), then 204 if the Authorization header is ``expected``, else 401."""

    expected: str
    fail_first: int = 0
    context: ssl.SSLContext | None = None
    seen: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.seen.append(self.headers.get("Authorization"))
                receiver.paths.append(self.path)
                if len(receiver.seen) <= receiver.fail_first:
                    self.send_response(500)
                    body = f"upstream failed for POST {self.path}".encode()
                elif self.headers.get("Authorization") != receiver.expected:
                    self.send_response(401)
                    body = b"unauthorized"
                else:
                    self.send_response(204)
                    body = b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.port = free_tcp_port()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.context is not None:
            self._server.socket = self.context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def authorized(self) -> int:
        return sum(1 for header in self.seen if header == self.expected)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def publish_polls(mosquitto: Mosquitto, count: int = 3) -> None:
    import time

    publisher = Publisher(mosquitto, "polls")
    try:
        family = Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), 12.0),))
        publisher.publish([(data_topic("xa-a", "sw"), encode_batch(PollBatch(
            agent="xa-a", boot_id="b", seq=seq, ts=time.time(), device="sw", interval=60, up=True,
            duration=0.1, families=(family,)))) for seq in range(1, count + 1)])
    finally:
        publisher.close()


def secret_file(tmp_path: Path, name: str, secret: str) -> Path:
    path = tmp_path / name
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def assert_secret_nowhere(collector: Collector, *secrets: str) -> str:
    text = scrape(collector.url)
    log = collector.process.log()
    for secret in secrets:
        assert secret not in text, f"{secret!r} on /metrics"
        assert secret not in log, f"{secret!r} in the log:\n{log[-3000:]}"
    return text


def test_basic_auth_from_a_file_and_a_token_in_the_url_never_show(
    tmp_path: Path, mosquitto: Mosquitto, start_collector: Callable[..., Collector],
    receivers: list[Receiver],
) -> None:
    receiver = Receiver(basic("hatang", PASSWORD), fail_first=2).start()
    receivers.append(receiver)
    url = f"http://127.0.0.1:{receiver.port}/api/v1/write?tenant=tinh&token={URL_TOKEN}"
    collector = start_collector(mode="push", remote_write=[{
        "url": url, "basic_auth": {"username": "hatang",
                                   "password_file": str(secret_file(tmp_path, "rw-password", PASSWORD))}}])
    publish_polls(mosquitto)
    wait_until(lambda: receiver.authorized >= 1, timeout=60, message="an authorized write")
    assert all(path.endswith(f"token={URL_TOKEN}") for path in receiver.paths)  # the URL is used as given
    wait_until(lambda: "works again" in collector.process.log(), timeout=30,
               message="the failure and recovery log lines")
    text = assert_secret_nowhere(collector, PASSWORD, URL_TOKEN, basic("hatang", PASSWORD).split()[1])
    shown = f"http://127.0.0.1:{receiver.port}/api/v1/write?tenant=tinh&token=***"
    sent = find(parse(text), "hatang_collector_remote_write_samples_total", result="sent")
    assert [labels["url"] for labels, _ in sent] == [shown]
    assert sent[0][1] >= 1
    assert shown in collector.process.log()


def test_credentials_inside_the_url_are_sent_as_a_header_and_redacted(
    tmp_path: Path, mosquitto: Mosquitto, start_collector: Callable[..., Collector],
    receivers: list[Receiver],
) -> None:
    receiver = Receiver(basic("hatang", PASSWORD), fail_first=1).start()
    receivers.append(receiver)
    quoted = PASSWORD.encode().hex()  # keep the URL ASCII: percent-encode the password
    encoded = "".join(f"%{quoted[i:i + 2]}" for i in range(0, len(quoted), 2))
    collector = start_collector(mode="push", remote_write=[
        {"url": f"http://hatang:{encoded}@127.0.0.1:{receiver.port}/api/v1/write"}])
    publish_polls(mosquitto)
    wait_until(lambda: receiver.authorized >= 1, timeout=60, message="an authorized write")
    text = assert_secret_nowhere(collector, PASSWORD, encoded, basic("hatang", PASSWORD).split()[1])
    assert f'url="http://***@127.0.0.1:{receiver.port}/api/v1/write"' in text


def test_bearer_token_over_mutual_tls(
    tmp_path: Path, mosquitto: Mosquitto, start_collector: Callable[..., Collector],
    receivers: list[Receiver],
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("collector.hatang")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    receiver = Receiver(f"Bearer {TOKEN}", context=context).start()
    receivers.append(receiver)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    (tmp_path / "client.key").chmod(0o600)
    collector = start_collector(mode="push", remote_write=[{
        "url": f"https://127.0.0.1:{receiver.port}/api/v1/write",
        "bearer_token_file": str(secret_file(tmp_path, "rw-token", TOKEN)),
        "tls": {"ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "client.pem"),
                "key_file": str(tmp_path / "client.key")}}])
    publish_polls(mosquitto)
    wait_until(lambda: receiver.authorized >= 1, timeout=60, message="an authorized write over TLS")
    assert_secret_nowhere(collector, TOKEN)


def test_a_missing_secret_file_is_a_config_error_naming_file_and_key(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess],
) -> None:
    missing = tmp_path / "no-such-password"
    path = write_yaml(tmp_path / "collector.yaml", {
        "mqtt": {"url": mosquitto.url},
        "remote_write": [{"url": "http://127.0.0.1:9/api/v1/write",
                          "basic_auth": {"username": "u", "password_file": str(missing)}}]})
    result = run_hatang(["check", "-c", str(path)])
    assert result.returncode == 2, result
    assert "remote_write[0].basic_auth.password_file" in result.stderr + result.stdout
    assert str(missing) in result.stderr + result.stdout

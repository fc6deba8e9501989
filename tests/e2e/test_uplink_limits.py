"""The agent's uplink under stress: a full buffer, TLS with a private CA, a wrong password."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e.conftest import Collector
from tests.support.hatang import HatangProcess, one, pending_clause, wait_for_series
from tests.support.services import Mosquitto, Snmpd, free_tcp_port, require_binary, start_mosquitto
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MAX_BYTES = 64 * 1024  # the smallest buffer the config allows


def _device(port: int, interval: float = 1.0) -> dict[str, Any]:
    return {"name": "core-switch", "address": "127.0.0.1", "port": port, "interval": interval,
            "snmp": {"timeout": 0.5, "retries": 0}}


def _queue_state(tmp_path: Path) -> tuple[int, int, int]:
    """(messages, payload bytes, dropped) of the agent's disk queue, read while the agent runs."""
    db = sqlite3.connect(f"file:{tmp_path / 'buffer-xa-dai-dinh' / 'queue.sqlite3'}?mode=ro", uri=True)
    try:
        query = f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages{pending_clause(db)}"
        depth, size = db.execute(query).fetchone()
        row = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
    finally:
        db.close()
    return int(depth), int(size), int(row[0]) if row else 0


def test_full_buffer_drops_the_oldest_counts_it_and_keeps_running(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    mosquitto.stop()  # the uplink is down from the start
    agent = start_agent([_device(snmpd.port)], buffer={"path": str(tmp_path / "buffer-xa-dai-dinh"),
                                                        "max_bytes": MAX_BYTES}, self_metrics_interval=1)
    wait_until(lambda: _queue_state(tmp_path)[2] >= 3, timeout=60, message="the buffer to overflow",
               ignore=(sqlite3.OperationalError,))  # until the agent has created its queue
    depth, size, dropped = _queue_state(tmp_path)
    assert size <= MAX_BYTES and depth > 0 and dropped >= 3
    assert agent.running()

    mosquitto.start()
    collector = start_collector()
    series = wait_for_series(collector.url, "hatang_agent_queue_dropped_total", timeout=30,
                             agent="xa-dai-dinh")
    assert (one(series, "hatang_agent_queue_dropped_total", agent="xa-dai-dinh") or 0) >= dropped
    wait_for_series(collector.url, "hatang_interface_in_bytes_total", timeout=30, device="core-switch")
    wait_until(lambda: _queue_state(tmp_path)[0] == 0, timeout=30, message="the queue to drain")


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, Path, dict[str, str]]]:
    """Mosquitto with a plain listener (for the collector) and a TLS listener (for the agent),
    both requiring a password; certificates from a throw-away CA."""
    passwd_tool = require_binary("mosquitto_passwd", "mosquitto")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    passwords = {"xa-dai-dinh": "mat-khau-dung", "collector": "collector-secret"}
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(passwords.items()):
        subprocess.run([passwd_tool, "-b", *(["-c"] if i == 0 else []), str(passwd), user, password],
                       check=True, timeout=10)
    tls_port = free_tcp_port()
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=(
        f"allow_anonymous false\npassword_file {passwd}\n"
        f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\n"
        f"keyfile {certs / 'server.key'}\n"))
    try:
        yield broker, tls_port, certs / "ca.pem", passwords
    finally:
        broker.stop()


def test_agent_publishes_over_tls_with_a_password_file(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path, dict[str, str]], snmpd: Snmpd,
    start_collector: Callable[..., Collector], start_agent: Callable[..., HatangProcess],
) -> None:
    broker, tls_port, ca_file, passwords = tls_broker
    (tmp_path / "mqtt-password").write_text(passwords["xa-dai-dinh"] + "\n")
    collector = start_collector(mqtt={"url": broker.url, "username": "collector",
                                      "password": passwords["collector"]})
    start_agent([_device(snmpd.port, interval=2)], mqtt={
        "url": f"mqtts://127.0.0.1:{tls_port}", "ca_file": str(ca_file),
        "password_file": str(tmp_path / "mqtt-password")})
    series = wait_for_series(collector.url, "hatang_interface_in_bytes_total", timeout=30,
                             device="core-switch")
    assert one(series, "hatang_agent_up", agent="xa-dai-dinh") == 1
    assert "New client connected" in broker.log() and "u'xa-dai-dinh'" in broker.log()


def test_wrong_password_is_one_clear_log_line_and_the_agent_backs_off(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path, dict[str, str]], snmpd: Snmpd,
    start_agent: Callable[..., HatangProcess],
) -> None:
    broker, tls_port, ca_file, _ = tls_broker
    agent = start_agent([_device(snmpd.port, interval=2)], mqtt={
        "url": f"mqtts://127.0.0.1:{tls_port}", "ca_file": str(ca_file), "password": "sai-mat-khau"})
    wait_until(lambda: broker.log().count("not authorised") >= 3, timeout=30,
               message="three refused connection attempts")
    log = agent.log()
    assert log.count("unreachable") == 1, log
    assert "Not authorized" in log or "Bad user name or password" in log, log
    assert agent.running()
    assert _queue_state(tmp_path)[0] > 0  # polls are kept for when the password is fixed


def test_unknown_certificate_authority_is_refused(
    tmp_path: Path, tls_broker: tuple[Mosquitto, int, Path, dict[str, str]], snmpd: Snmpd,
    start_agent: Callable[..., HatangProcess],
) -> None:
    broker, tls_port, _, passwords = tls_broker
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    agent = start_agent([_device(snmpd.port, interval=2)], mqtt={
        "url": f"mqtts://127.0.0.1:{tls_port}", "ca_file": str(other_ca),
        "password": passwords["xa-dai-dinh"]})
    wait_until(lambda: "unreachable" in agent.log(), timeout=20, message="the TLS failure to be logged")
    assert "CERTIFICATE_VERIFY_FAILED" in agent.log()
    assert agent.running()
    assert "u'xa-dai-dinh'" not in broker.log()


def test_agent_authenticates_with_a_client_certificate(
    tmp_path: Path, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    """Mutual TLS: the broker requires a client certificate and takes the agent id from its CN."""
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    client = ca.issue_cert("xa-dai-dinh.agents.hatang", common_name="xa-dai-dinh")
    client.cert_chain_pems[0].write_to_path(str(certs / "agent.pem"))
    client.private_key_pem.write_to_path(str(certs / "agent.key"))
    tls_port = free_tcp_port()
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=(
        "per_listener_settings true\nallow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\n"
        f"keyfile {certs / 'server.key'}\nrequire_certificate true\nuse_identity_as_username true\n"))
    try:
        collector = start_collector(mqtt={"url": broker.url})
        start_agent([_device(snmpd.port, interval=2)], mqtt={
            "url": f"mqtts://127.0.0.1:{tls_port}", "ca_file": str(certs / "ca.pem"),
            "cert_file": str(certs / "agent.pem"), "key_file": str(certs / "agent.key")})
        wait_for_series(collector.url, "hatang_interface_in_bytes_total", timeout=30, device="core-switch")
        assert "u'xa-dai-dinh'" in broker.log()  # the username came from the certificate
    finally:
        broker.stop()

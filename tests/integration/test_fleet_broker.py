"""``hatang fleet`` against a real Mosquitto that uses the files it generates.

The broker runs the shipped settings (deploy/mosquitto/hatang.conf without its host paths), the shipped
ACL, and the fleet directory's TLS certificate, CA and password file, exactly where ``hatang fleet init``
put them; every fleet command runs as a process (``$HATANG_BIN``) and reloads the broker through the
fleet's reload command (SIGHUP to the broker's pid file). Checked: TLS is required on the agents' port and
the broker's certificate verifies against the CA of the enrolment bundle; a wrong password is refused; an
agent is confined to its subtree while the collector reads everything; a revoked agent is refused (and a
connected one is thrown out); a rotated password replaces the old one; with ``require_certificate`` an
agent needs the client certificate of its bundle; and the real agent, started from an unpacked enrolment
bundle, reaches the collector's user.
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.hatang import HatangProcess, run_hatang
from tests.support.services import (
    SHIPPED_MOSQUITTO,
    Mosquitto,
    free_tcp_port,
    shipped_broker_settings,
    start_mosquitto,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
SUCCESS = 0
NOT_AUTHORIZED = 135
REFUSED = {134, 135}  # bad username or password / not authorised (Mosquitto 2.0.11 answers 135)


@dataclass
class Fleet:
    root: Path
    broker: Mosquitto
    tls_port: int

    def hatang(self, *args: str) -> str:
        done = run_hatang(["fleet", *args, "--fleet", str(self.root)])
        assert done.returncode == 0, f"hatang fleet {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def enrol(self, agent_id: str, *extra: str, wait: bool = True) -> Path:
        """``add-agent``; with ``wait``, until the broker has read the new password file (the reload
        command's SIGHUP is handled in the broker's own loop, a moment after the command returns)."""
        self.hatang("add-agent", agent_id, "--site", "province=Vĩnh Phúc,commune=Đại Đình", *extra)
        bundle = self.root / "enrol" / f"{agent_id}.tar.gz"
        if wait:
            password = bundle_password(bundle)
            wait_until(lambda: self.accepts(agent_id, password), TIMEOUT,
                       message=f"the broker to accept {agent_id}")
        return bundle

    def accepts(self, user: str, password: str) -> bool:
        client = Client(self.tls_port, user, password, ca=self.root / "broker" / "ca.crt")
        try:
            return client.connect() == SUCCESS
        finally:
            client.close()


def bundle_password(bundle: Path) -> str:
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("secrets/mqtt-password")
        assert member is not None
        return member.read().decode().strip()


def _start_fleet_broker(workdir: Path, *, require_certificate: bool = False) -> Fleet:
    workdir.mkdir(parents=True, exist_ok=True)
    fleet = workdir / "fleet"
    tls_port = free_tcp_port()
    pid_file = workdir / "mosquitto.pid"
    reload_command = shlex.join(["sh", "-c", f'kill -HUP "$(cat {shlex.quote(str(pid_file))})"'])
    done = run_hatang(["fleet", "init", "--fleet", str(fleet), "--broker-url", f"mqtts://localhost:{tls_port}",
                       "--server-ip", "127.0.0.1", "--reload-command", reload_command])
    assert done.returncode == 0, done.stderr
    acl = workdir / "hatang.acl"
    acl.write_bytes((SHIPPED_MOSQUITTO / "hatang.acl").read_bytes())
    broker_dir = fleet / "broker"
    extra = (f"{shipped_broker_settings()}\npersistence_location {workdir}/\npid_file {pid_file}\n"
             f"allow_anonymous false\npassword_file {broker_dir / 'mosquitto.passwd'}\nacl_file {acl}\n"
             f"listener {tls_port} 127.0.0.1\ncertfile {broker_dir / 'server.crt'}\n"
             f"keyfile {broker_dir / 'server.key'}\ncafile {broker_dir / 'ca.crt'}\n"
             + ("require_certificate true\n" if require_certificate else ""))
    broker = start_mosquitto(workdir, extra_config=extra)
    wait_until(pid_file.exists, TIMEOUT, message="mosquitto's pid file")
    return Fleet(fleet, broker, tls_port)


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    made = _start_fleet_broker(tmp_path / "centre")
    try:
        yield made
    finally:
        made.broker.stop()
        if request.session.testsfailed:
            sys.stderr.write(f"\n----- mosquitto log -----\n{made.broker.log()[-6000:]}\n")


@dataclass
class Bundle:
    directory: Path
    agent_id: str

    @property
    def password(self) -> str:
        return (self.directory / "secrets" / "mqtt-password").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"


def unpack(bundle: Path, into: Path) -> Bundle:
    into.mkdir(parents=True)
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    agent_id = bundle.name.removesuffix(".tar.gz")
    return Bundle(into, agent_id)


class Client:
    """A paho MQTT v5 client over TLS (or plain TCP), recording CONNACK, PUBACKs, messages, disconnects."""

    def __init__(self, port: int, username: str, password: str, *, ca: Path | None,
                 cert: tuple[Path, Path] | None = None) -> None:
        self.port = port
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                                   protocol=mqtt.MQTTv5)
        self._client.username_pw_set(username, password)
        if ca is not None:
            self._client.tls_set(ca_certs=str(ca), certfile=str(cert[0]) if cert else None,
                                 keyfile=str(cert[1]) if cert else None, cert_reqs=ssl.CERT_REQUIRED)
        self._lock = threading.Lock()
        self.connack: int | None = None
        self.acks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.disconnected = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connack = reason.value

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        with self._lock:
            self.acks[mid] = reason.value

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode],
                      props: Any) -> None:
        with self._lock:
            self.subacks[mid] = [r.value for r in reasons]

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def connect(self) -> int | str:
        """The CONNACK reason code, or the name of the error that stopped the connection before one."""
        try:
            self._client.connect("localhost", self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            return type(exc).__name__
        self._client.loop_start()
        wait_until(lambda: self.connack is not None or self.disconnected.is_set(), TIMEOUT,
                   message="CONNACK or disconnection")
        return self.connack if self.connack is not None else "disconnected"

    def publish(self, topic: str, payload: bytes) -> int:
        info = self._client.publish(topic, payload, qos=1)
        return wait_until(lambda: (self.acks[info.mid],) if info.mid in self.acks else None, TIMEOUT,
                          message=f"PUBACK for {topic}")[0]

    def subscribe(self, topic: str) -> None:
        _, mid = self._client.subscribe(topic, qos=1)
        granted = wait_until(lambda: self.subacks.get(mid), TIMEOUT, message=f"SUBACK for {topic}")
        assert granted == [1], granted

    def peer_certificate(self) -> bytes:
        """The DER certificate the broker presented on this (connected) TLS connection."""
        sock = self._client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der

    def wait_for(self, topic: str, payload: bytes | None = None) -> bytes:
        def got() -> tuple[bytes] | None:
            with self._lock:
                return next(((p,) for t, p in self.messages if t == topic and payload in (None, p)), None)
        return wait_until(got, TIMEOUT, message=f"a message on {topic}")[0]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_the_broker_requires_tls_and_the_right_password(fleet: Fleet, tmp_path: Path,
                                                        clients: list[Client]) -> None:
    bundle = unpack(fleet.enrol("xa-a"), tmp_path / "xa-a")
    plain = Client(fleet.tls_port, "xa-a", bundle.password, ca=None)
    clients.append(plain)
    assert plain.connect() != SUCCESS, "plain MQTT was accepted on the TLS port"
    wrong = Client(fleet.tls_port, "xa-a", bundle.password + "x", ca=bundle.ca)
    clients.append(wrong)
    assert wrong.connect() in REFUSED
    stranger = Client(fleet.tls_port, "xa-b", bundle.password, ca=bundle.ca)
    clients.append(stranger)
    assert stranger.connect() in REFUSED
    right = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
    clients.append(right)
    assert right.connect() == SUCCESS  # TLS verified against the bundle's CA, host name "localhost"


def test_an_agent_is_confined_to_its_subtree_and_the_collector_reads_all(
        fleet: Fleet, tmp_path: Path, clients: list[Client]) -> None:
    a = unpack(fleet.enrol("xa-a"), tmp_path / "xa-a")
    b = unpack(fleet.enrol("xa-b"), tmp_path / "xa-b")
    collector_password = (fleet.root / "secrets" / "collector-password").read_text().strip()
    collector = Client(fleet.tls_port, "collector.hatang", collector_password, ca=a.ca)
    clients.append(collector)
    assert collector.connect() == SUCCESS
    collector.subscribe("hatang/v1/#")
    agent_a = Client(fleet.tls_port, "xa-a", a.password, ca=a.ca)
    agent_b = Client(fleet.tls_port, "xa-b", b.password, ca=b.ca)
    clients += [agent_a, agent_b]
    assert agent_a.connect() == SUCCESS and agent_b.connect() == SUCCESS
    assert agent_a.publish("hatang/v1/agents/xa-b/status", b"forged") == NOT_AUTHORIZED
    assert agent_a.publish("hatang/v1/agents/xa-a/status", b"a") == SUCCESS
    assert agent_b.publish("hatang/v1/agents/xa-b/status", b"b") == SUCCESS
    assert collector.wait_for("hatang/v1/agents/xa-a/status") == b"a"
    assert collector.wait_for("hatang/v1/agents/xa-b/status") == b"b"  # after the forged one, had it passed
    assert all(payload != b"forged" for _, payload in collector.messages)


def test_a_revoked_agent_is_refused_and_thrown_out(fleet: Fleet, tmp_path: Path,
                                                    clients: list[Client]) -> None:
    bundle = unpack(fleet.enrol("xa-a"), tmp_path / "xa-a")
    connected = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
    clients.append(connected)
    assert connected.connect() == SUCCESS
    out = fleet.hatang("revoke-agent", "xa-a")
    assert "broker reloaded" in out
    assert connected.disconnected.wait(TIMEOUT), "the connected revoked agent was not disconnected"
    again = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
    clients.append(again)
    assert again.connect() in REFUSED
    record = json.loads((fleet.root / "agents" / "xa-a.json").read_text())
    assert record["revoked_at"]
    assert not (fleet.root / "enrol" / "xa-a.tar.gz").exists()
    listing = fleet.hatang("list")
    assert any(line.split()[:2] == ["xa-a", "revoked"] for line in listing.splitlines())


def test_rotation_replaces_the_password(fleet: Fleet, tmp_path: Path, clients: list[Client]) -> None:
    old = unpack(fleet.enrol("xa-a"), tmp_path / "old")
    fleet.hatang("rotate-agent", "xa-a")
    new = unpack(fleet.root / "enrol" / "xa-a.tar.gz", tmp_path / "new")
    assert old.password != new.password
    wait_until(lambda: fleet.accepts("xa-a", new.password), TIMEOUT, message="the broker to reload")
    refused = Client(fleet.tls_port, "xa-a", old.password, ca=old.ca)
    accepted = Client(fleet.tls_port, "xa-a", new.password, ca=new.ca)
    clients += [refused, accepted]
    assert refused.connect() in REFUSED
    assert accepted.connect() == SUCCESS


def test_enrolling_twice_and_bad_names_are_refused(fleet: Fleet) -> None:
    fleet.enrol("xa-a")
    for args, expected in ((["add-agent", "xa-a", "--site", "province=P"], "already enrolled"),
                           (["add-agent", "Xa A", "--site", "province=P"], "agent id"),
                           (["add-agent", "xa-c", "--site", "commune=C"], "province is required"),
                           (["add-agent", "xa-c", "--site", "tinh=P"], "KEY=VALUE"),
                           (["revoke-agent", "xa-z"], "not enrolled")):
        done = run_hatang(["fleet", *args, "--fleet", str(fleet.root)])
        assert done.returncode == 1 and expected in done.stderr, (args, done.stderr)
    done = run_hatang(["fleet", "list", "--fleet", str(fleet.root / "nowhere")])
    assert done.returncode == 1 and "hatang fleet init" in done.stderr


def test_a_broker_that_requires_certificates_takes_the_bundles_one(tmp_path: Path,
                                                                   clients: list[Client]) -> None:
    fleet = _start_fleet_broker(tmp_path / "centre", require_certificate=True)
    try:
        with_cert = unpack(fleet.enrol("xa-a", "--client-cert", wait=False), tmp_path / "xa-a")
        without = unpack(fleet.enrol("xa-b", wait=False), tmp_path / "xa-b")
        assert (with_cert.directory / "client.crt").exists()
        assert oct((with_cert.directory / "secrets" / "client.key").stat().st_mode & 0o777) == "0o600"
        pair = (with_cert.directory / "client.crt", with_cert.directory / "secrets" / "client.key")
        certified = Client(fleet.tls_port, "xa-a", with_cert.password, ca=with_cert.ca, cert=pair)
        bare = Client(fleet.tls_port, "xa-b", without.password, ca=without.ca)
        clients += [certified, bare]
        # the broker reads the password file of the second enrolment a moment after its reload command
        wait_until(lambda: reloads(fleet) >= 2, TIMEOUT, message="the broker to reload twice")
        assert certified.connect() == SUCCESS
        assert bare.connect() != SUCCESS
    finally:
        fleet.broker.stop()


def test_the_agent_runs_from_its_enrolment_bundle(fleet: Fleet, tmp_path: Path,
                                                  clients: list[Client]) -> None:
    """The unpacked bundle is the agent's whole configuration: secrets through --credentials (as systemd's
    $CREDENTIALS_DIRECTORY), the CA beside agent.yaml; its birth message reaches the collector's user."""
    snmp = fleet.root / "snmp"
    (snmp / "snmp-community").write_text("cong-dong-tinh\n")
    bundle = unpack(fleet.enrol("xa-a", "--buffer-path", str(tmp_path / "buffer")), tmp_path / "xa-a")
    assert (bundle.directory / "secrets" / "snmp-community").read_text() == "cong-dong-tinh\n"
    with tarfile.open(fleet.root / "enrol" / "xa-a.tar.gz") as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes["secrets"] == 0o700
    assert modes["secrets/snmp-community"] == modes["secrets/mqtt-password"] == 0o600
    assert oct((fleet.root / "enrol" / "xa-a.tar.gz").stat().st_mode & 0o777) == "0o600"
    config = bundle.directory / "agent.yaml"
    check = run_hatang(["check", "-c", str(config)])
    assert check.returncode != 0 and "--credentials" in check.stderr  # says how to check by hand
    check = run_hatang(["check", "--credentials", str(bundle.directory / "secrets"), "-c", str(config)])
    assert check.returncode == 0, check.stderr
    collector_password = (fleet.root / "secrets" / "collector-password").read_text().strip()
    collector = Client(fleet.tls_port, "collector.hatang", collector_password, ca=bundle.ca)
    clients.append(collector)
    assert collector.connect() == SUCCESS
    collector.subscribe("hatang/v1/agents/xa-a/status")
    agent = HatangProcess(["agent", "--credentials", str(bundle.directory / "secrets"), "-c", str(config)],
                          tmp_path / "agent.log").start()
    try:
        birth = json.loads(collector.wait_for("hatang/v1/agents/xa-a/status"))
        assert birth["agent"] == "xa-a" and birth["online"] is True, birth
    finally:
        agent.stop()
    assert os.path.exists(tmp_path / "buffer")


def test_a_renewed_broker_certificate_is_served_after_the_reload(fleet: Fleet, tmp_path: Path,
                                                                 clients: list[Client]) -> None:
    """renew-broker reissues the broker's certificate from the same CA: agents' bundles keep verifying it."""
    bundle = unpack(fleet.enrol("xa-a"), tmp_path / "xa-a")
    before = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
    clients.append(before)
    assert before.connect() == SUCCESS
    old_der = before.peer_certificate()
    out = fleet.hatang("renew-broker")
    assert "broker certificate renewed for localhost, 127.0.0.1" in out and "broker reloaded" in out
    new_pem = (fleet.root / "broker" / "server.crt").read_bytes()
    assert ssl.PEM_cert_to_DER_cert(new_pem.decode()) != old_der
    new_der = ssl.PEM_cert_to_DER_cert(new_pem.decode())

    def served_new() -> bool:
        """A fresh connection, verified against the bundle's CA, gets the new certificate (the broker
        handles the SIGHUP of the reload command in its own loop, a moment after the command returns)."""
        after = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
        clients.append(after)
        assert after.connect() == SUCCESS
        return after.peer_certificate() == new_der

    wait_until(served_new, TIMEOUT, message="the broker to serve the renewed certificate")
    listing = fleet.hatang("list")
    assert listing.startswith("broker certificate: valid until ")


def reloads(fleet: Fleet) -> int:
    """How many reloads the broker has done (it logs "Reloading config." when it handles SIGHUP)."""
    return fleet.broker.log().count("Reloading config.")


def test_a_push_with_the_fleets_defaults_reaches_the_agent_over_tls(fleet: Fleet, tmp_path: Path,
                                                                      clients: list[Client]) -> None:
    """docs/remote-config.md: after `keygen` into the fleet directory, `hatang fleet push AGENT FILE`
    needs no option: the broker URL, its CA, the centre's user and password (made by `init`) and the
    key all come from the fleet directory; the enrolment bundle then carries centre.pub, with which the
    agent's side verifies what arrives."""
    fleet.hatang("keygen", str(fleet.root))
    bundle = unpack(fleet.enrol("xa-a"), tmp_path / "xa-a")
    assert (bundle.directory / "centre.pub").read_bytes() == (fleet.root / "centre.pub").read_bytes()
    assert "remote_config: {public_key_file: centre.pub}" in (bundle.directory / "agent.yaml").read_text()
    agent = Client(fleet.tls_port, "xa-a", bundle.password, ca=bundle.ca)
    clients.append(agent)
    assert agent.connect() == SUCCESS
    agent.subscribe("hatang/v1/agents/xa-a/config")
    document = tmp_path / "xa-a.yaml"
    document.write_text("devices:\n  - {name: core-switch, address: 192.0.2.1, "
                        "snmp: {community_file: \"${CREDENTIALS_DIRECTORY}/snmp-community\"}}\n")
    assert "revision 1 for xa-a published" in fleet.hatang("push", "xa-a", str(document), "--wait", "0.5")
    payload = agent.wait_for("hatang/v1/agents/xa-a/config")
    from hatang.signing import load_verifiers
    from wire.remote_config import decode_body, decode_envelope

    envelope = decode_envelope(payload)
    [verifier] = load_verifiers(bundle.directory / "centre.pub")
    assert envelope.key_id == verifier.key_id and verifier.verify(envelope.body, envelope.signature)
    assert decode_body(envelope.body).config["devices"][0]["name"] == "core-switch"
    assert (fleet.root / "pushed" / "xa-a" / "000001.signed").read_bytes() == payload
    assert "revision 2 for xa-a" in fleet.hatang("push", "xa-a", str(document), "--wait", "0.5")

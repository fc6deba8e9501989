"""The shipped broker ACL (deploy/mosquitto/hatang.acl) and settings (deploy/mosquitto/hatang.conf, all
but the listeners and file paths) against a real Mosquitto, and the collector's identity check behind it.

docs/wire.md and docs/operations.md ("Broker security") promise: each agent's MQTT username is its agent
id, ``pattern write hatang/v1/agents/%u/#`` keeps it inside its own subtree, the collector user reads
everything, and a payload that claims another agent on the agent's own topic is rejected by the collector
(``hatang_collector_rejected_messages_total{reason="identity"}``).

Absence is proven, not guessed: after a message that must not arrive, a marker that must arrive is sent
on the same path (same publisher, same broker), and once the marker is in, the receiver that must not
get the forbidden message does one QoS 1 round trip of its own. Mosquitto is single-threaded and
writes a connection's packets in order, so anything queued for that receiver before its PUBACK would
have been read before the PUBACK.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from tests.support.hatang import HatangProcess, one, parse, scrape, wait_for_series, write_yaml
from tests.support.mqtt_recorder import Client
from tests.support.services import (
    SHIPPED_MOSQUITTO,
    Mosquitto,
    free_tcp_port,
    shipped_broker_settings,
    start_shipped_mosquitto,
)
from tests.support.waiting import wait_until
from wire.codec import encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import config_topic, data_topic, subscription

pytestmark = pytest.mark.integration

SHIPPED_ACL = SHIPPED_MOSQUITTO / "hatang.acl"
PASSWORDS = {"xa-a": "mat-khau-a", "xa-b": "mat-khau-b", "collector.hatang": "mat-khau-trung-tam",
             "centre.hatang": "mat-khau-cau-hinh"}

SUCCESS = 0
NOT_AUTHORIZED = 135  # MQTT v5 reason code 0x87
BAD_USERNAME_OR_PASSWORD = 134  # 0x86; Mosquitto 2.0.11 answers 135 for a wrong password, newer ones 134
REFUSED = {BAD_USERNAME_OR_PASSWORD, NOT_AUTHORIZED}
TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------- broker


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """Mosquitto with the project's own ACL file (copied verbatim) and a password file for xa-a, xa-b and
    the collector; anonymous clients refused."""
    mosquitto = start_shipped_mosquitto(tmp_path / "mosquitto", PASSWORDS)
    try:
        yield mosquitto
    finally:
        mosquitto.stop()
        if request.session.testsfailed:
            sys.stderr.write(f"\n----- mosquitto log -----\n{mosquitto.log()[-6000:]}\n")


def test_the_acl_and_settings_under_test_are_the_shipped_ones(broker: Mosquitto) -> None:
    config = broker.config_path.read_text()
    acl_path = next(line.split(None, 1)[1] for line in config.splitlines() if line.startswith("acl_file "))
    assert Path(acl_path).read_bytes() == SHIPPED_ACL.read_bytes()
    assert "pattern write hatang/v1/agents/%u/data/+" in SHIPPED_ACL.read_text()
    assert "pattern read hatang/v1/agents/%u/config" in SHIPPED_ACL.read_text()
    for setting in ("use_username_as_clientid true", "persistence true", "autosave_interval 10"):
        assert setting in shipped_broker_settings() and setting in config


@pytest.fixture
def connect(broker: Mosquitto) -> Iterator[Any]:
    """``connect(user, password=<the right one>, protocol=...)`` -> connected Client; closed at teardown."""
    clients: list[Client] = []

    def make(user: str, password: str | None = None, *,
             protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> Client:
        client = Client(broker, user, PASSWORDS[user] if password is None else password, protocol=protocol)
        clients.append(client)
        assert client.connect() == SUCCESS, f"{user} could not connect"
        return client

    yield make
    for client in clients:
        client.close()


def marker() -> bytes:
    return f"marker-{uuid.uuid4().hex}".encode()


# ---------------------------------------------------------------------------------------------- tests


def test_an_agent_publishes_in_its_own_subtree_and_the_collector_user_receives_it(connect: Any) -> None:
    collector = connect("collector.hatang")
    assert collector.subscribe(subscription()) == [1]  # granted QoS 1
    agent = connect("xa-a")
    topic = data_topic("xa-a", "sw")
    for qos in (0, 1):
        payload = marker()
        assert agent.publish(topic, payload, qos=qos) == SUCCESS
        collector.wait_for(topic, payload)
    for topic_kind in ("status", "events", "self", "replay/sw"):
        payload = marker()
        assert agent.publish(f"hatang/v1/agents/xa-a/{topic_kind}", payload) == SUCCESS
        collector.wait_for(f"hatang/v1/agents/xa-a/{topic_kind}", payload)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_an_agent_cannot_publish_as_another_agent(connect: Any, protocol: MQTTProtocolVersion) -> None:
    collector = connect("collector.hatang")
    collector.subscribe(subscription())
    agent = connect("xa-a", protocol=protocol)
    forbidden = [data_topic("xa-b", "sw"), "hatang/v1/agents/xa-b/status", "hatang/v1/agents/xa-ab/data/sw",
                 "hatang/v1/agents/collector/data/sw", "hatang/v1/other", "hatang/v2/agents/xa-a/data/sw"]
    spoof = b"spoofed-by-xa-a"
    for topic in forbidden:
        reason = agent.publish(topic, spoof)
        if protocol == mqtt.MQTTv5:
            assert reason == NOT_AUTHORIZED, f"{topic}: PUBACK reason {reason}, expected 135 not authorized"
        else:  # MQTT 3.1.1 has no reason in PUBACK: Mosquitto acknowledges and drops the message silently
            assert reason == SUCCESS
    fence = marker()
    assert agent.publish(data_topic("xa-a", "sw"), fence) == SUCCESS
    collector.wait_for(data_topic("xa-a", "sw"), fence)  # published after the spoofs, by the same client
    assert [m for m in collector.messages() if m[1] == spoof] == []
    assert [topic for topic, _ in collector.messages()] == [data_topic("xa-a", "sw")]


def test_an_agent_cannot_read_any_topic_not_even_another_agents(connect: Any) -> None:
    """The ACL gives agents write access only. Mosquitto grants the SUBSCRIBE and checks read access per
    message at delivery, so the proof is that nothing is ever delivered."""
    collector = connect("collector.hatang")
    collector.subscribe(subscription())
    snoop = connect("xa-a")
    for pattern in (subscription(), "hatang/v1/agents/xa-b/#", "#", data_topic("xa-b", "sw")):
        granted = snoop.subscribe(pattern, qos=0)
        assert all(code in (0, 1, 2, NOT_AUTHORIZED) for code in granted), granted
    other = connect("xa-b")
    secret = b"xa-b-private-data"
    assert other.publish(data_topic("xa-b", "sw"), secret) == SUCCESS
    assert other.publish("hatang/v1/agents/xa-b/status", secret) == SUCCESS
    assert snoop.publish(data_topic("xa-a", "sw"), b"own") == SUCCESS  # own subtree: write-only, too
    fence = marker()
    assert other.publish(data_topic("xa-b", "sw"), fence) == SUCCESS
    collector.wait_for(data_topic("xa-b", "sw"), fence)
    assert snoop.publish(data_topic("xa-a", "sw"), marker()) == SUCCESS  # round trip on snoop's connection
    assert snoop.messages() == [], "an agent received messages it has no read access to"
    assert (data_topic("xa-b", "sw"), secret) in collector.messages()  # the positive control


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize(
    ("user", "password"),
    [("xa-a", "wrong"), ("xa-a", PASSWORDS["xa-b"]), ("xa-khong-co", "x"), ("collector.hatang", ""),
     (None, None)],
    ids=["wrong-password", "another-agents-password", "unknown-user", "empty-password", "anonymous"],
)
def test_a_wrong_password_an_unknown_user_and_anonymous_are_refused(
    broker: Mosquitto, protocol: MQTTProtocolVersion, user: str | None, password: str | None
) -> None:
    client = Client(broker, user, password, protocol=protocol)
    try:
        code = client.connect(threaded=False)
        assert code in REFUSED, f"CONNACK reason {code}"
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- collector


@dataclass
class RunningCollector:
    process: HatangProcess
    url: str


@pytest.fixture
def authenticated_collector(tmp_path: Path, broker: Mosquitto,
                            request: pytest.FixtureRequest) -> Iterator[RunningCollector]:
    """``hatang collector`` logged in as user ``collector`` with its password from a file."""
    secret = tmp_path / "collector-password"
    secret.write_text(PASSWORDS["collector.hatang"] + "\n", encoding="utf-8")
    secret.chmod(0o600)
    listen = f"127.0.0.1:{free_tcp_port()}"
    config = write_yaml(tmp_path / "collector.yaml", {
        "mqtt": {"url": broker.url, "username": "collector.hatang", "password_file": str(secret),
                 "client_id": f"hatang-collector-{uuid.uuid4().hex[:8]}"},
        "listen": listen,
    })
    process = HatangProcess(["collector", "-c", str(config)], tmp_path / "collector.log").start()
    url = f"http://{listen}/metrics"
    try:
        wait_until(lambda: one(parse(scrape(url)), "hatang_collector_broker_connected") == 1, 20,
                   interval=0.2, message="the collector to log in to the broker", ignore=(OSError,))
        yield RunningCollector(process, url)
    finally:
        process.stop()
        if request.session.testsfailed:
            sys.stderr.write(f"\n----- collector log -----\n{process.log()[-6000:]}\n")


def _batch(agent: str, device: str, seq: int, value: float) -> bytes:
    return encode_batch(PollBatch(
        agent=agent, boot_id="acl-test", seq=seq, ts=time.time(), device=device, interval=60, up=True,
        duration=0.01, site=(("province", "Vĩnh Phúc"),),
        families=(Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), value),)),),
    ))


def test_the_collector_rejects_a_payload_claiming_another_agent_as_identity(
    connect: Any, authenticated_collector: RunningCollector
) -> None:
    agent = connect("xa-a")
    # 1. On xa-b's topic: the broker refuses it, the collector never sees it.
    assert agent.publish(data_topic("xa-b", "sw"), _batch("xa-b", "sw", 1, 111)) == NOT_AUTHORIZED
    # 2. On its own topic, claiming to be xa-b: passes the broker, the collector rejects it.
    assert agent.publish(data_topic("xa-a", "sw"), _batch("xa-b", "sw", 2, 222)) == SUCCESS
    # 3. On its own topic, claiming another device of its own: also identity.
    assert agent.publish(data_topic("xa-a", "sw"), _batch("xa-a", "router", 3, 333)) == SUCCESS
    # 4. Honest: accepted. The collector handles one connection's messages in order, so once this is
    #    served, 1-3 have been handled (or dropped by the broker).
    assert agent.publish(data_topic("xa-a", "sw"), _batch("xa-a", "sw", 4, 444)) == SUCCESS

    series = wait_for_series(authenticated_collector.url, "hatang_device_uptime_seconds", timeout=15,
                             agent="xa-a")
    assert one(series, "hatang_device_uptime_seconds", agent="xa-a", device="sw") == 444
    assert one(series, "hatang_collector_rejected_messages_total", reason="identity") == 2
    assert one(series, "hatang_collector_messages_total", kind="data") == 1  # only the honest one counts
    for (name, labels), _ in series.items():
        assert ("agent", "xa-b") not in labels, f"{name}{dict(labels)}: xa-b data got through"
        assert ("device", "router") not in labels, f"{name}{dict(labels)}: spoofed device got through"
    log = authenticated_collector.process.log()
    assert ("rejected message on hatang/v1/agents/xa-a/data/sw: identity: "
            "payload claims xa-b/sw on xa-a/sw") in log


def test_only_the_centre_writes_an_agents_config_and_only_that_agent_reads_it(connect: Any) -> None:
    """docs/remote-config.md: the config topic is written by the centre's user only (an agent cannot
    configure itself or another), read by its own agent only (not by another agent, not by the collector),
    and retained, so that an agent connecting later gets it."""
    collector = connect("collector.hatang")
    collector.subscribe(subscription())
    agent = connect("xa-a")
    assert agent.subscribe(config_topic("xa-a")) == [1]
    other = connect("xa-b")
    other.subscribe(config_topic("xa-a"))
    other.subscribe("hatang/v1/agents/+/config")
    centre = connect("centre.hatang")
    forged = b"forged-by-an-agent"
    assert agent.publish(config_topic("xa-a"), forged) == NOT_AUTHORIZED
    assert other.publish(config_topic("xa-a"), forged) == NOT_AUTHORIZED
    assert collector.publish(config_topic("xa-a"), forged) == NOT_AUTHORIZED
    for topic in (data_topic("xa-a", "sw"), "hatang/v1/agents/xa-a/status"):
        assert centre.publish(topic, b"injected") == NOT_AUTHORIZED, topic
    document = marker()
    assert centre.publish(config_topic("xa-a"), document, retain=True) == SUCCESS
    agent.wait_for(config_topic("xa-a"), document)
    fence = marker()
    assert agent.publish(data_topic("xa-a", "sw"), fence) == SUCCESS
    collector.wait_for(data_topic("xa-a", "sw"), fence)
    assert other.publish(data_topic("xa-b", "sw"), marker()) == SUCCESS  # round trip on other's connection
    assert [m for m in collector.messages() if "/config" in m[0]] == []
    assert other.messages() == []
    assert [m for m in agent.messages() if m[1] == forged] == []
    later = connect("xa-a")  # retained: delivered at subscription
    later.subscribe(config_topic("xa-a"))
    later.wait_for(config_topic("xa-a"), document)
    assert centre.subscribe(config_topic("xa-a")) == [1]  # the centre reads it back (next revision)
    centre.wait_for(config_topic("xa-a"), document)


def test_the_collector_user_reads_but_cannot_publish_as_an_agent(connect: Any) -> None:
    """Leaked collector credentials must not let anyone inject agent data."""
    collector = connect("collector.hatang")
    collector.subscribe(subscription())
    for topic in (data_topic("xa-a", "sw"), "hatang/v1/agents/xa-a/status", "hatang/v1/agents/xa-b/events"):
        assert collector.publish(topic, b"injected") == NOT_AUTHORIZED, topic
    agent = connect("xa-a")
    fence = marker()
    assert agent.publish(data_topic("xa-a", "sw"), fence) == SUCCESS
    collector.wait_for(data_topic("xa-a", "sw"), fence)
    assert [m for m in collector.messages() if m[1] == b"injected"] == []


def test_a_login_cannot_take_over_another_clients_session(broker: Mosquitto, connect: Any) -> None:
    """With the shipped settings an agent's login that sends the collector's client id (or another
    agent's) connects as itself: the collector stays connected and its persistent session keeps
    receiving. Without use_username_as_clientid the broker would hand the id over (MQTT's rule) and, on a
    clean start, discard the collector's session."""
    collector = Client(broker, "collector.hatang", PASSWORDS["collector.hatang"],
                       client_id="hatang-collector")
    assert collector.connect(persistent=True) == SUCCESS
    try:
        assert collector.subscribe("hatang/v1/agents/#") == [1]
        agent_a = Client(broker, "xa-a", PASSWORDS["xa-a"], client_id="hatang-agent-xa-a")
        assert agent_a.connect() == SUCCESS
        try:
            for stolen in ("hatang-collector", "hatang-agent-xa-a", "xa-a", "collector.hatang"):
                thief = Client(broker, "xa-b", PASSWORDS["xa-b"], client_id=stolen)
                assert thief.connect() == SUCCESS
                thief.close()
            payload = marker()
            assert agent_a.publish("hatang/v1/agents/xa-a/data/sw", payload) == SUCCESS
            collector.wait_for("hatang/v1/agents/xa-a/data/sw", payload)  # still subscribed, same session
            assert collector.disconnects == [] and agent_a.disconnects == []
        finally:
            agent_a.close()
    finally:
        collector.close()

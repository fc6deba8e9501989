"""The agent's uplink against brokers that fail: a Mosquitto killed with SIGKILL (what it acknowledged and
had not saved is sent again), a broker ACL that refuses the agent's username (MQTT 5 reason codes: the
messages stay queued), a broker that closes the connection right after CONNACK or while a PUBACK is
awaited (no "Future exception was never retrieved", noticed at once), the demo's MQTT 3.1.1-only broker
(the agent falls back), and the agent's start-up with many long device names, an unresolvable device
address and a buffer directory held by another agent.

Real Mosquitto (persistence on, the shipped ACL) and ``hatang agent`` processes where the behaviour spans
processes; the uplink in-process against tiny asyncio MQTT servers where a misbehaving broker is needed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.queue import DiskQueue
from agent.uplink import Uplink, UplinkSettings
from hatang.demo_broker import EmbeddedBroker
from tests.e2e.conftest import SITE, Collector
from tests.support.hatang import HatangProcess, find, one, parse, run_hatang, try_scrape, write_yaml
from tests.support.services import (
    Mosquitto,
    Snmpd,
    free_tcp_port,
    free_udp_port,
    start_mosquitto,
    start_shipped_mosquitto,
)
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration

AGENT = "xa-dai-dinh"
TOPICS = "hatang/v1/agents/#"


# ---------------------------------------------------------------------------------------------- helpers


class Subscriber:
    """A paho MQTT 5 subscriber on its own network thread: all agent topics, QoS 1. ``persistent``: a fixed
    client id, clean start off and a session expiry, so the broker queues for it while it is away (the
    collector's setup). It subscribes again on every connect; ``seqs()`` are the distinct (boot, seq) of
    the numbered messages (polls, self metrics, traps) it received."""

    def __init__(self, broker: Mosquitto, client_id: str, *, persistent: bool, username: str | None = None,
                 password: str | None = None) -> None:
        self.broker = broker
        self.client_id = client_id
        self.persistent = persistent
        self.username = username
        self.password = password
        self._lock = threading.Lock()
        self.messages: list[tuple[str, bytes]] = []
        self._client: mqtt.Client | None = None
        self._subscribed = threading.Event()

    def connect(self) -> Subscriber:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        self._subscribed.clear()

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            c.subscribe(TOPICS, qos=1)

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
            self._subscribed.set()

        def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append((message.topic, bytes(message.payload)))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        properties = None
        if self.persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=not self.persistent,
                       properties=properties)
        client.loop_start()
        self._client = client
        wait_until(self._subscribed.is_set, 15, message=f"subscriber {self.client_id} to subscribe")
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def snapshot(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def numbered(self) -> list[tuple[str, int]]:
        """(boot, seq) of every numbered message received, duplicates included."""
        out = []
        for topic, payload in self.snapshot():
            if topic.endswith("/status"):
                continue
            doc = json.loads(payload)
            out.append((doc["boot"], int(doc["seq"])))
        return out

    def top(self) -> int:
        """The highest sequence number received (0 before any)."""
        return max((seq for _, seq in self.numbered()), default=0)

    def seqs(self) -> dict[str, set[int]]:
        by_boot: dict[str, set[int]] = {}
        for boot, seq in self.numbered():
            by_boot.setdefault(boot, set()).add(seq)
        return by_boot

    def statuses(self) -> list[dict[str, Any]]:
        return [json.loads(p) | {"_size": len(p)} for t, p in self.snapshot() if t.endswith("/status") and p]


def _dead_devices(count: int, prefix: str = "sw", interval: float = 1.0) -> list[dict[str, Any]]:
    """Devices on UDP ports nobody listens on: each poll fails fast and still yields one message."""
    return [{"name": f"{prefix}-{i}", "address": "127.0.0.1", "port": free_udp_port(), "interval": interval,
             "profiles": ["system"], "snmp": {"timeout": 0.2, "retries": 0}} for i in range(count)]


def _start_agent(tmp_path: Path, processes: list[HatangProcess], broker_url: str,
                 devices: list[dict[str, Any]], name: str = "agent", **overrides: Any) -> HatangProcess:
    config = {"agent_id": AGENT, "site": SITE, "mqtt": {"url": broker_url},
              "buffer": {"path": str(tmp_path / "buffer"), "replay_rate": 1000}, "devices": devices,
              "self_metrics_interval": 1, **overrides}
    path = write_yaml(tmp_path / f"{name}.yaml", config)
    proc = HatangProcess(["agent", "-c", str(path)], tmp_path / f"{name}.log").start()
    processes.append(proc)
    return proc


def _pending(buffer: Path) -> list[tuple[str, bytes]]:
    """(device, payload) of the messages waiting in an agent's disk queue (read while it runs): not the
    delivered ones it keeps for redelivery."""
    db = sqlite3.connect(f"file:{buffer / 'queue.sqlite3'}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        kept = " WHERE id NOT IN (SELECT id FROM delivered)" if "delivered" in tables else ""
        rows = db.execute(f"SELECT device, payload FROM messages{kept} ORDER BY id").fetchall()
    finally:
        db.close()
    return [(str(d), bytes(p)) for d, p in rows]


def _self_metric(payload: bytes, name: str, **labels: str) -> float | None:
    doc = json.loads(payload)
    label_sets = doc.get("label_sets", [])
    for family in doc["metrics"]:
        if family["name"] == name:
            for index, value in zip(family["series"], family["values"], strict=True):
                if all(label_sets[index].get(k) == v for k, v in labels.items()):
                    return float(value)
    return None


# ---------------------------------------------------------------------------------------------- 1. crash


def _watch(broker: Mosquitto, count: int, what: str) -> Subscriber:
    """A clean-session subscriber that is online, once it has ``count`` messages."""
    watcher = Subscriber(broker, f"watch-{uuid.uuid4().hex[:6]}", persistent=False).connect()
    wait_until(lambda: watcher.count() >= count, 60, message=what)
    return watcher


def _broker_crashes(tmp_path: Path, processes: list[HatangProcess], *, kills: int, devices: int,
                    away_messages: int) -> dict[str, float]:
    """A persistent-session subscriber (the collector) goes away, the agent keeps publishing (the broker
    acknowledges and queues for the subscriber, in memory), the broker is killed with SIGKILL and
    restarted from its last save, the subscriber comes back; ``kills`` times. Returns the figures; fails
    naming what was lost."""
    store = tmp_path / "mosquitto-data"
    store.mkdir()
    # autosave_interval far beyond the test: the broker saves only on the clean stop below, so every kill
    # loses all that it acknowledged since (a production broker saves every 10 s: the same, smaller).
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=(
        f"persistence true\npersistence_location {store}/\nautosave_interval 3600\n"))
    collector = Subscriber(broker, "test-collector", persistent=True)
    watcher: Subscriber | None = None
    started = time.monotonic()
    try:
        collector.connect().close()
        broker.stop()  # a clean stop saves: every restarted broker has the collector's session
        broker.start()
        collector.connect()
        agent = _start_agent(tmp_path, processes, broker.url, _dead_devices(devices))
        watcher = _watch(broker, 5, "the agent's first messages")
        for _ in range(kills):
            collector.close()  # away: the broker queues for its session
            top = watcher.top()
            # new messages acknowledged by the broker (the watcher, online, has them)
            wait_until(lambda w=watcher, top=top: w.top() >= top + away_messages, 60,
                       message="new messages published while the collector is away")
            broker.kill()
            watcher.close()
            broker.start()
            collector.connect()
            watcher = _watch(broker, 3, "the agent to reconnect and publish")
        assert agent.running(), agent.log()[-3000:]
        boots = collector.seqs()
        assert len(boots) == 1, f"one agent boot expected: {list(boots)}"
        produced = max(next(iter(boots.values())))
        deadline = time.monotonic() + 30
        while True:
            got = next(iter(collector.seqs().values()))
            missing = set(range(1, produced + 1)) - got
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        numbered = collector.numbered()
        figures = {"kills": kills, "produced": produced, "received_distinct": produced - len(missing),
                   "lost": len(missing), "duplicates": len(numbered) - len(set(numbered)),
                   "seconds": round(time.monotonic() - started, 1)}
        last_self = [p for t, p in collector.snapshot() if t.endswith("/self")][-1]
        figures["redelivered_by_agent"] = _self_metric(last_self, "hatang_agent_redelivered_total") or 0
        print(f"\nbroker SIGKILL figures: {figures}")
        assert not missing, (f"{len(missing)} of {produced} messages lost over {kills} broker kills "
                             f"(seq {sorted(missing)[:30]}...): {figures}")
        return figures
    finally:
        if watcher is not None:
            watcher.close()
        collector.close()
        broker.stop()


def test_messages_a_killed_broker_acknowledged_but_never_saved_are_sent_again(
    tmp_path: Path, processes: list[HatangProcess]
) -> None:
    figures = _broker_crashes(tmp_path, processes, kills=3, devices=4, away_messages=10)
    assert figures["produced"] >= 40


@pytest.mark.soak
def test_twelve_broker_kills_lose_nothing_full_size(tmp_path: Path, processes: list[HatangProcess]) -> None:
    figures = _broker_crashes(tmp_path, processes, kills=12, devices=9, away_messages=110)
    assert figures["produced"] >= 1400


# ---------------------------------------------------------------------------------------------- 2. ACL


PASSWORDS = {AGENT: "mat-khau-dung", "xa-khac": "mat-khau-khac", "collector.hatang": "mat-khau-trung-tam"}


@pytest.fixture
def acl_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """Mosquitto as shipped (settings, ACL, client ids bound to usernames); passwords for two agents and the
    collector."""
    broker = start_shipped_mosquitto(tmp_path / "mosquitto", PASSWORDS)
    try:
        yield broker
    finally:
        broker.stop()
        if request.session.testsfailed:
            sys.stderr.write(f"\n----- mosquitto log -----\n{broker.log()[-4000:]}\n")


def test_a_username_the_acl_refuses_keeps_the_messages_queued_counted_and_logged_once(
    tmp_path: Path, acl_broker: Mosquitto, processes: list[HatangProcess]
) -> None:
    collector = Subscriber(acl_broker, "collector.hatang", persistent=False, username="collector.hatang",
                           password=PASSWORDS["collector.hatang"]).connect()
    try:
        wrong = tmp_path / "wrong-password"
        wrong.write_text(PASSWORDS["xa-khac"])
        agent = _start_agent(tmp_path, processes, acl_broker.url, _dead_devices(1), name="wrong",
                             mqtt={"url": acl_broker.url, "username": "xa-khac", "password_file": str(wrong)})
        buffer = tmp_path / "buffer"

        def refusals() -> float | None:
            selfs = [p for d, p in _pending(buffer) if d == "@self"]
            value = _self_metric(selfs[-1], "hatang_agent_publish_rejected_total", reason="not_authorized") \
                if selfs else None
            return value if value is not None and value >= 3 else None

        wait_until(refusals, 60, interval=0.2, message="three refusals counted in the agent's self metrics",
                   ignore=(sqlite3.OperationalError,))
        wait_until(lambda: len(_pending(buffer)) >= 6, 30, message="refused messages staying queued")
        assert collector.snapshot() == [], "the broker delivered messages it refused"
        log = agent.log()
        assert log.count("refuses the agent's messages") == 1, log
        assert "Not authorized (0x87)" in log and "mqtt.username" in log
        assert "connected to broker" not in log
        assert agent.stop() == 0

        right = tmp_path / "password"
        right.write_text(PASSWORDS[AGENT])
        queued_seqs = {(json.loads(p)["boot"], json.loads(p)["seq"]) for d, p in _pending(buffer)}
        agent = _start_agent(tmp_path, processes, acl_broker.url, _dead_devices(1), name="right",
                             mqtt={"url": acl_broker.url, "password_file": str(right)})
        wait_until(lambda: queued_seqs <= set(collector.numbered()), 60, interval=0.2,
                   message=f"the {len(queued_seqs)} queued messages at the collector")
        assert "connected to broker" in agent.log()
        assert "refuses" not in agent.log()
    finally:
        collector.close()


# ---------------------------------------------------------------------------------------------- 3. faults


class TinyBroker:
    """Just enough of an MQTT server to misbehave: answers CONNECT with CONNACK (MQTT 5 or 3.1.1, as
    asked), then ``close_after_connack`` closes at once; ``close_on_data`` acknowledges the birth message
    (a retained PUBLISH) and closes on the next PUBLISH without a PUBACK."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connects: list[float] = []
        self.closed_on_data: list[float] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TinyBroker:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @staticmethod
    async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, await reader.readexactly(length)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first, body = await self._packet(reader)
            assert first >> 4 == 1, "CONNECT expected"
            name_length = int.from_bytes(body[:2], "big")
            level = body[2 + name_length]
            self.connects.append(time.monotonic())
            writer.write(bytes([0x20, 3, 0, 0, 0]) if level == 5 else bytes([0x20, 2, 0, 0]))
            await writer.drain()
            if self.mode == "close_after_connack":
                return
            while True:
                first, body = await self._packet(reader)
                if first >> 4 != 3:
                    continue
                topic_length = int.from_bytes(body[:2], "big")
                packet_id = body[2 + topic_length:4 + topic_length]
                if first & 1:  # retained: the birth
                    writer.write(bytes([0x40, 2]) + packet_id)
                    await writer.drain()
                    continue
                self.closed_on_data.append(time.monotonic())
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def _never_retrieved(loop_errors: list[dict[str, Any]]) -> list[str]:
    gc.collect()  # unreferenced futures report their unread exception when collected
    return [str(c.get("message")) for c in loop_errors if "never retrieved" in str(c.get("message"))]


async def test_a_broker_that_closes_each_connection_right_after_connack_floods_nothing(
    tmp_path: Path, loop_errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = await TinyBroker("close_after_connack").start()
    queue = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)
    uplink = Uplink(UplinkSettings(f"mqtt://127.0.0.1:{broker.port}", "c"), "xa-a", queue,
                    birth=lambda: b"{}", will=b"{}", max_backoff=0.2)
    task = asyncio.create_task(uplink.run())
    try:
        await async_wait_until(lambda: len(broker.connects) >= 4, 30, message="four connection attempts")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()
        queue.close()
    assert _never_retrieved(loop_errors) == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["hatang.agent.uplink"], [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage()


async def test_a_connection_lost_while_waiting_for_a_puback_is_noticed_at_once(
    tmp_path: Path, loop_errors: list[dict[str, Any]]
) -> None:
    broker = await TinyBroker("close_on_data").start()
    queue = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)
    queue.append("sw", b'{"n": 1}', live_for=3600)
    uplink = Uplink(UplinkSettings(f"mqtt://127.0.0.1:{broker.port}", "c"), "xa-a", queue,
                    birth=lambda: b"{}", will=b"{}", max_backoff=0.2)
    task = asyncio.create_task(uplink.run())
    try:
        await async_wait_until(lambda: len(broker.connects) >= 2, 30, message="a second connection")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()
    assert broker.connects[1] - broker.closed_on_data[0] < 3.0, "the lost connection was noticed late"
    assert [m.payload for m in queue.peek(10)] == [b'{"n": 1}'], "an unacknowledged message left the queue"
    queue.close()
    assert _never_retrieved(loop_errors) == []


async def test_the_demo_broker_speaks_only_mqtt_311_and_the_uplink_falls_back_to_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.uplink")
    broker = EmbeddedBroker(port=free_tcp_port())
    await broker.start()
    queue = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)
    uplink = Uplink(UplinkSettings(broker.url, "hatang-agent-xa-a"), "xa-a", queue, birth=lambda: b"{}",
                    will=b"{}")
    task: asyncio.Task[None] | None = None
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier="observer") as observer:
            await observer.subscribe("hatang/v1/agents/#", qos=1)
            task = asyncio.create_task(uplink.run())
            queue.append("sw", b'{"n": 1}', live_for=3600)
            uplink.notify()
            async with asyncio.timeout(20):
                async for message in observer.messages:
                    if str(message.topic) == "hatang/v1/agents/xa-a/data/sw":
                        assert message.payload == b'{"n": 1}'
                        break
        assert uplink.protocol == "3.1.1"
        messages = [r.getMessage() for r in caplog.records]
        assert sum("does not speak MQTT 5" in m for m in messages) == 1, messages
        assert not [m for m in messages if "unreachable" in m], messages
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await broker.stop()
        queue.close()


# ---------------------------------------------------------------------------------------------- 4. start


def test_an_agent_with_1100_long_device_names_starts_and_its_will_stays_small(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess]
) -> None:
    """The status messages used to list every device: 1,100 names of 63 characters made the will (which
    travels in CONNECT, at most 65,535 bytes) overflow (struct.error) and the agent died at start."""
    observer = Subscriber(mosquitto, "observer", persistent=False).connect()
    try:
        devices = _dead_devices(1100, interval=3600)
        for i, device in enumerate(devices):
            device["name"] = f"thiet-bi-{i:04d}-so-thong-tin-va-truyen-thong-tinh-vinh-phuc-tang-ba"[:63]
        assert all(len(d["name"]) == 63 for d in devices)
        agent = _start_agent(tmp_path, processes, mosquitto.url, devices, self_metrics_interval=60)

        def birth() -> dict[str, Any] | None:
            return next((s for s in observer.statuses() if s["online"]), None)

        status = wait_until(birth, 60, message="the agent's birth message")
        assert status["_size"] <= 256 * 1024
        assert len(status["devices"]) in (0, 1100)
        agent.stop(signal.SIGKILL)
        will = wait_until(lambda: next((s for s in observer.statuses() if not s["online"]), None), 30,
                          message="the agent's will after SIGKILL")
        assert will["devices"] == [] and will["_size"] < 2048
    finally:
        observer.close()


def test_a_device_whose_address_does_not_resolve_is_reported_down_and_the_others_run(
    tmp_path: Path, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector()
    devices = [
        {"name": "khong-phan-giai", "address": "khong-ton-tai.invalid", "interval": 1,
         "profiles": ["system"], "snmp": {"timeout": 0.5, "retries": 0}},
        {"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port, "interval": 1,
         "profiles": ["system"], "snmp": {"timeout": 0.5, "retries": 0}},
    ]
    agent = start_agent(devices)

    def two_address_errors() -> Any:
        text = try_scrape(collector.url)
        series = parse(text) if text else {}
        errors = one(series, "hatang_device_poll_errors_total", device="khong-phan-giai", reason="address")
        return series if errors is not None and errors >= 2 else None

    series = wait_until(two_address_errors, 60, interval=0.3,
                        message="two polls of the unresolvable device counted with reason address")
    assert one(series, "hatang_device_up", device="khong-phan-giai") == 0
    assert one(series, "hatang_device_up", device="core-switch") == 1
    assert find(series, "hatang_device_uptime_seconds", device="core-switch")
    assert agent.running()
    assert "Traceback" not in agent.log()


def test_a_second_agent_on_the_same_buffer_says_so_and_exits_2(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess]
) -> None:
    first = _start_agent(tmp_path, processes, mosquitto.url, [])
    wait_until(lambda: (tmp_path / "buffer" / "queue.lock").exists() and "starting" in first.log(), 30,
               message="the first agent to hold its buffer")
    second = run_hatang(["agent", "-c", str(tmp_path / "agent.yaml")], timeout=60)
    assert second.returncode == 2, second
    assert "Traceback" not in second.stderr, second.stderr
    assert f"in use by another hatang agent (pid {first.pid})" in second.stderr, second.stderr
    assert "buffer.path" in second.stderr
    assert first.running()

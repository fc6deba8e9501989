"""The agent with its buffer on a small filesystem (a real 2 MiB tmpfs) that fills up while the broker is
down: the agent keeps running (same pid), counts what it could not store, and when the broker is back
its queue drains: every numbered message is received, still queued, or counted as dropped (in = out +
dropped). Then an agent killed on a full disk is started again on it, with the broker up, and drains.

Real ``hatang agent`` processes, snmpd and a Mosquitto that keeps the subscriber's session across its
restarts (persistence on), so nothing the agent publishes while the subscriber is away is lost on the
broker's side. Mounting a tmpfs needs root: without it the test skips, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.e2e.conftest import SITE
from tests.support.hatang import HatangProcess, write_yaml
from tests.support.services import Mosquitto, Snmpd, require_binary, start_mosquitto, unavailable
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

AGENT = "xa-dai-dinh"
DEVICES = 10  # polls of snmpd's system and interfaces tables, every second: ~40 kB/s into the queue


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """Keeps sessions and their queued messages across its restarts, without a limit on the queue."""
    store = tmp_path / "mosquitto-data"
    store.mkdir()
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=(
        f"persistence true\npersistence_location {store}/\nautosave_interval 1\nmax_queued_messages 0\n"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted at teardown (after the agents are stopped: fixtures end in reverse)."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs (a small filesystem to fill up) needs root")
    point = tmp_path / "small-fs"
    point.mkdir()
    result = subprocess.run([require_binary("mount", "mount"), "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                             str(point)], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        unavailable(f"cannot mount a tmpfs on {point}: {result.stderr.strip()}")
    try:
        yield point
    finally:
        umount = require_binary("umount", "mount")
        if subprocess.run([umount, str(point)], capture_output=True, timeout=30, check=False).returncode:
            subprocess.run([umount, "-l", str(point)], capture_output=True, timeout=30, check=False)


class Subscriber:
    """A persistent MQTT 5 session on all agent topics (QoS 1): the broker queues for it while it is
    disconnected, and keeps the queue across its own restarts."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self._lock = threading.Lock()
        self.received: list[tuple[str, int]] = []  # (boot, seq) of numbered messages, duplicates included
        self._client: mqtt.Client | None = None

    def connect(self) -> None:
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="disk-faults-watch",
                             protocol=mqtt.MQTTv5)

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            c.subscribe("hatang/v1/agents/#", qos=1)

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
            subscribed.set()

        def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            if message.topic.endswith("/status"):
                return
            doc = json.loads(message.payload)
            with self._lock:
                self.received.append((str(doc["boot"]), int(doc["seq"])))

        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=False,
                       properties=properties)
        client.loop_start()
        self._client = client
        wait_until(subscribed.is_set, 15, message="the subscriber to subscribe")

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def seqs(self, boot: str) -> Counter[int]:
        with self._lock:
            return Counter(seq for b, seq in self.received if b == boot)


@pytest.fixture
def subscriber(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    watcher = Subscriber(mosquitto)
    try:
        yield watcher
    finally:
        watcher.disconnect()


def _queue(buffer: Path) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """((boot, seq) of the messages waiting to be sent, counters) of the agent's queue, read beside it."""
    db = sqlite3.connect(f"file:{buffer / 'queue.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT payload FROM messages WHERE id NOT IN (SELECT id FROM delivered) "
                          "ORDER BY id").fetchall()
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    finally:
        db.close()
    pending = []
    for (payload,) in rows:
        doc = json.loads(payload)
        pending.append((str(doc["boot"]), int(doc["seq"])))
    return pending, counters


def _boot(agent: HatangProcess) -> str:
    """The agent's boot id, from its start-up line."""
    line = wait_until(lambda: next((x for x in agent.log().splitlines() if ", boot " in x), None), 30,
                      message="the agent's start-up line")
    return line.rsplit(", boot ", 1)[1].split()[0]


def _fill_until_full(agent: HatangProcess, what: str) -> None:
    wait_until(lambda: "cannot write to the disk queue" in agent.log() or not agent.running(), 60,
               interval=0.2, message=what)
    assert agent.running(), agent.log()[-3000:]


def test_a_full_buffer_disk_neither_stops_the_agent_nor_its_queue(
    tmp_path: Path, small_fs: Path, mosquitto: Mosquitto, subscriber: Subscriber, snmpd: Snmpd,
    processes: list[HatangProcess],
) -> None:
    buffer = small_fs / "buffer"
    config = write_yaml(tmp_path / "agent.yaml", {
        "agent_id": AGENT, "site": SITE, "mqtt": {"url": mosquitto.url},
        "buffer": {"path": str(buffer), "replay_rate": 1000}, "self_metrics_interval": 1,
        "devices": [{"name": f"sw-{i}", "address": "127.0.0.1", "port": snmpd.port, "interval": 1,
                     "profiles": ["system", "interfaces"], "snmp": {"timeout": 0.5, "retries": 0}}
                    for i in range(DEVICES)]})

    def agent() -> HatangProcess:  # the same agent started again: a log file of each run's own
        proc = HatangProcess(["agent", "-c", str(config)], tmp_path / f"agent-{len(processes)}.log").start()
        processes.append(proc)
        return proc

    subscriber.connect()  # the session exists: the broker keeps what the agent publishes for it
    subscriber.disconnect()
    mosquitto.stop()

    # 1. The broker is down and the disk fills up: the agent keeps running and counts what it drops.
    first = agent()
    pid = first.pid
    boot = _boot(first)
    _fill_until_full(first, "the buffer's filesystem to fill up")
    queued_when_full = len(_queue(buffer)[0])
    assert queued_when_full > 50
    wait_until(lambda: "Traceback" not in first.log() and first.log().count(", boot ") == 1, 3)
    mosquitto.start()
    subscriber.connect()
    # the broker is back: the queue drains while polls go on (in the time the agent's backoff takes)
    wait_until(lambda: len(subscriber.seqs(boot)) >= queued_when_full, 60, interval=0.5,
               message="the queued messages to arrive")
    assert first.running() and first.pid == pid
    assert first.log().count("cannot write to the disk queue") == 1  # one line, not one per message
    assert first.stop() == 0  # a clean stop: what it still holds stays in the queue

    pending, counters = _queue(buffer)
    still_queued = {seq for b, seq in pending if b == boot}
    dropped = counters.get("dropped_full", 0) + counters.get("dropped", 0)
    assert counters.get("dropped_full", 0) > 0  # persisted once the disk had room again

    last: list[tuple[int, int, int]] = []  # (made, received or queued, dropped) of the last look

    # what it made, as it says at its stop: the newest messages may be among the dropped, so the highest
    # sequence number received or queued can be short of it
    made = re.search(rf"boot {boot} made (\d+) message", first.log())
    assert made is not None, first.log()[-3000:]

    def accounted() -> tuple[int, int] | None:
        """(messages the agent made, duplicates received) once each is received, queued or dropped."""
        received = subscriber.seqs(boot)
        produced = int(made.group(1))
        assert max([*received, *still_queued]) <= produced
        out = len(set(received) | still_queued)
        last[:] = [(produced, out, dropped)]
        return (produced, sum(received.values()) - len(received)) if produced == out + dropped else None

    try:
        produced, duplicates = wait_until(accounted, 30, interval=0.5, message="in = out + dropped")
    except AssertionError:
        raise AssertionError(f"made != received or queued + dropped: {last}\n{first.log()[-3000:]}") from None
    print(f"\nfirst agent: {produced} messages made, {produced - dropped} received or still queued, "
          f"{dropped} dropped (disk full), {duplicates} duplicates; {queued_when_full} queued when full")
    assert duplicates <= max(5, produced // 20), (produced, duplicates)  # sent once, not over and over

    # 2. Killed on a full disk, started again on it with the broker up: it opens its queue and drains.
    mosquitto.stop()
    second = agent()
    second_boot = _boot(second)
    wait_until(lambda: sum(1 for b, _ in _queue(buffer)[0] if b == second_boot) >= 20, 30, interval=0.2,
               message="the second agent to queue polls while the broker is down")
    ballast = os.open(small_fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # another program takes what is left of the filesystem
        with pytest.raises(OSError):
            for _ in range(1000):
                os.write(ballast, bytes(4096))
    finally:
        os.close(ballast)
    _fill_until_full(second, "the second agent to find the disk full")
    second.stop(signal.SIGKILL)
    stored = {seq for b, seq in _queue(buffer)[0] if b == second_boot}
    assert stored

    mosquitto.start()
    third = agent()
    third_pid = third.pid
    wait_until(lambda: stored <= set(subscriber.seqs(second_boot)), 60, interval=0.5,
               message="the killed agent's queue to drain after the restart on a full disk")
    assert third.running() and third.pid == third_pid, third.log()[-3000:]
    assert "Traceback" not in third.log()

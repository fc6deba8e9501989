"""Scale out: two collectors share the subscription; one is killed mid-run; nothing lost or duplicated.

Real Mosquitto and VictoriaMetrics (``-dedup.minScrapeInterval=1ms``) on loopback; two ``hatang
collector`` processes in push mode in one shared group (``mqtt.shared_group``), each with its own client
id. 1,000 simulated agents (a few paho connections; the test broker has no ACL) publish a retained birth
and then poll batches built with ``wire.codec.encode_batch``. Collector 1 is killed with SIGKILL while it
still has messages to handle, its share queues at the broker (persistent session), and it is restarted
with the same client id, as systemd's ``Restart=always`` would. Every published sample must then be in
VictoriaMetrics exactly once, with its value and poll timestamp.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hatang import HatangProcess, find, one, parse, try_scrape, write_yaml
from tests.support.mqtt_publisher import Publisher
from tests.support.services import Mosquitto, free_tcp_port, require_binary, start_mosquitto
from tests.support.victoriametrics import VictoriaMetrics, start_victoria_metrics
from tests.support.waiting import wait_until
from wire.codec import encode_batch, encode_status
from wire.messages import AgentStatus, Family, PollBatch, Sample
from wire.topics import data_topic, status_topic

pytestmark = pytest.mark.integration

AGENTS = 1000
ROUNDS = 9  # poll batches per agent
INTERFACES = 10  # per batch: 1 gauge + 2 counters x INTERFACES = 21 samples
CONNECTIONS = 10  # publisher connections, AGENTS / CONNECTIONS agents each
GROUP = "hatang"
METRICS = ("hatang_device_uptime_seconds", "hatang_interface_in_bytes_total",
           "hatang_interface_out_bytes_total")
POLL_SUCCESS = "hatang_device_poll_success"  # added by the collector to every device poll
SELECTOR = ('{__name__=~"hatang_device_uptime_seconds|hatang_interface_(in|out)_bytes_total'
            '|hatang_device_poll_success"}')
SITE = (("commune", "Đại Đình"), ("province", "Vĩnh Phúc"))
RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules"


# ------------------------------------------------------------------------------------------ publishers


@dataclass(frozen=True)
class Expected:
    """What was published: {(metric, agent, if_index): {timestamp ms: value}}."""

    samples: dict[tuple[str, str, str], dict[int, float]]

    def count(self) -> int:
        return sum(len(points) for points in self.samples.values())


class Agents:
    """1,000 simulated agents with one device each, sharing a few publisher connections."""

    def __init__(self, broker: Mosquitto) -> None:
        self.ids = [f"xa-{i:04d}" for i in range(AGENTS)]
        self.boots = {agent: uuid.uuid4().hex for agent in self.ids}
        self.publishers = [Publisher(broker, f"agents-{n}", inflight=200) for n in range(CONNECTIONS)]
        self.base = time.time() - 600.0  # poll times in the recent past, 30 s apart
        self.expected: dict[tuple[str, str, str], dict[int, float]] = {}
        self.messages = 0

    def _spread(self, messages: list[tuple[str, bytes, bool]]) -> None:
        """Publish over all connections at once; return when the broker acknowledged every message
        (it does not wait for the collectors)."""
        share = -(-len(messages) // CONNECTIONS)
        chunks = [messages[i * share:(i + 1) * share] for i in range(CONNECTIONS)]
        infos = [
            [p.client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in chunk]
            for p, chunk in zip(self.publishers, chunks, strict=True)
        ]
        deadline = time.monotonic() + 60
        for batch in infos:
            for info in batch:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                assert info.is_published(), f"no PUBACK from the broker (rc {info.rc})"

    def births(self) -> None:
        self._spread([
            (status_topic(agent), encode_status(AgentStatus(
                agent=agent, boot_id=self.boots[agent], online=True, ts=time.time(), version="test",
                site=SITE, devices=("sw",))), True)
            for agent in self.ids
        ])

    def batch(self, agent: int, round_: int) -> bytes:
        name = self.ids[agent]
        ts = round(self.base + 30.0 * round_, 3)
        ts_ms = round(ts * 1000)
        uptime = 1000.0 + 30.0 * round_ + agent / 1000
        families = [Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), uptime),))]
        self.expected.setdefault((METRICS[0], name, ""), {})[ts_ms] = uptime
        self.expected.setdefault((POLL_SUCCESS, name, ""), {})[ts_ms] = 1.0  # up=True below
        for metric, factor in ((METRICS[1], 7), (METRICS[2], 11)):
            samples = []
            for index in range(1, INTERFACES + 1):
                value = float(factor * (agent * 1_000_000 + round_ * 1000 + index))
                samples.append(Sample((("if_index", str(index)),), value))
                self.expected.setdefault((metric, name, str(index)), {})[ts_ms] = value
            families.append(Family(metric, "counter", "Bytes.", tuple(samples)))
        return encode_batch(PollBatch(
            agent=name, boot_id=self.boots[name], seq=round_ + 1, ts=ts, device="sw", interval=30.0,
            up=True, duration=0.05, site=SITE, families=tuple(families),
        ))

    def rounds(self, first: int, last: int) -> None:
        """Every agent publishes poll batches ``first`` to ``last - 1`` (returns on the broker's PUBACKs)."""
        messages = [(data_topic(self.ids[a], "sw"), self.batch(a, r), False)
                    for r in range(first, last) for a in range(AGENTS)]
        self._spread(messages)
        self.messages += len(messages)

    def close(self) -> None:
        for publisher in self.publishers:
            publisher.close()


# ------------------------------------------------------------------------------------------ collectors


@dataclass
class Member:
    process: HatangProcess
    url: str  # /metrics

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        text = try_scrape(self.url)
        return parse(text) if text is not None else None

    def value(self, name: str, **labels: str) -> float:
        series = self.scrape()
        return (one(series, name, **labels) or 0.0) if series is not None else -1.0

    def agents_up(self) -> int:
        series = self.scrape() or {}
        return sum(1 for _, value in find(series, "hatang_agent_up") if value == 1)


def _member(tmp_path: Path, n: int, broker: Mosquitto, store: VictoriaMetrics) -> Member:
    port = free_tcp_port()
    config = write_yaml(tmp_path / f"collector-{n}.yaml", {
        "mqtt": {"url": broker.url, "client_id": f"hatang-collector-{n}", "shared_group": GROUP},
        "listen": f"127.0.0.1:{port}",
        "mode": "push",
        "remote_write": [{"url": store.remote_write_url}],
    })
    process = HatangProcess(["collector", "-c", str(config)], tmp_path / f"collector-{n}.log")
    return Member(process, f"http://127.0.0.1:{port}/metrics")


def _start(member: Member) -> None:
    member.process.start()
    wait_until(lambda: member.value("hatang_collector_broker_connected") == 1, timeout=20, interval=0.1,
               message=f"{member.process.args[-1]} to connect to the broker")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """Queues enough for a member's share while it restarts (as deploy/mosquitto/hatang.conf does)."""
    mosquitto = start_mosquitto(tmp_path / "mosquitto", extra_config="max_queued_messages 100000")
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    vm = start_victoria_metrics(tmp_path / "victoria-metrics")
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def members(tmp_path: Path, broker: Mosquitto, store: VictoriaMetrics,
            request: pytest.FixtureRequest) -> Iterator[list[Member]]:
    group = [_member(tmp_path, n, broker, store) for n in (1, 2)]
    yield group
    for member in group:
        member.process.stop()
    if request.session.testsfailed:
        for member in group:
            name, text = member.process.log_path.name, member.process.log()[-4000:]
            sys.stderr.write(f"\n----- {name} -----\n{text}\n")


# ------------------------------------------------------------------------------------------ the test


def _stored_count(store: VictoriaMetrics, start: float, end: float) -> int:
    store.flush()
    window = f"{int(end - start) + 2}s"
    result = store.query(f"sum(count_over_time({SELECTOR}[{window}]))", time=end + 1)
    return int(float(result[0]["value"][1])) if result else 0


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_two_collectors_share_the_work_and_a_stopped_one_loses_nothing(
    tmp_path: Path, broker: Mosquitto, store: VictoriaMetrics, members: list[Member],
    stop_signal: signal.Signals,
) -> None:
    """SIGKILL: what collector 1 had not finished comes back from the broker after its restart; what it
    wrote but had not acknowledged is written again and stored once (dedup). SIGTERM: it stops taking
    messages, finishes writing and acknowledges what it wrote before it disconnects."""
    first = members[0]
    for member in members:
        _start(member)
    agents = Agents(broker)
    try:
        agents.births()
        # Every member has every agent's birth (status is not shared): agent liveness agrees.
        wait_until(lambda: all(m.agents_up() == AGENTS for m in members), timeout=30, interval=0.2,
                   message="every agent's birth at every collector")

        started = time.monotonic()
        agents.rounds(0, 3)
        # Kill collector 1 while it is still working through its share of the first rounds.
        def working() -> float | None:
            handled = first.value("hatang_collector_messages_total", kind="data")
            return handled if handled > 0 else None

        seen = wait_until(working, timeout=30, interval=0.02, message="collector 1 to handle data messages")
        first.process.stop(sig=stop_signal)
        # Mid-run: the broker hands out round robin, so 1,500 of the 3,000 messages so far are its share.
        assert seen < AGENTS * 3 / 2, f"collector 1 had already handled its whole share ({seen})"
        killed_at = time.monotonic()
        agents.rounds(3, 6)  # collector 1's share waits at the broker (its persistent session)
        _start(first)  # same client id: takes its session back
        restarted_at = time.monotonic()
        agents.rounds(6, ROUNDS)
        published_at = time.monotonic()

        expected = Expected(agents.expected)
        start = agents.base - 1
        end = agents.base + 30.0 * ROUNDS
        last = [0]

        def all_stored() -> bool:
            last[0] = _stored_count(store, start, end)
            return last[0] >= expected.count()

        try:
            wait_until(all_stored, timeout=45, interval=0.5,
                       message="all published samples in VictoriaMetrics")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last[0]} of {expected.count()} samples stored") from None
        total = last[0]
        stored_at = time.monotonic()
    finally:
        agents.close()

    # Exactly once: every published (series, timestamp) with its value, and nothing else.
    assert total == expected.count()
    exported = store.export(SELECTOR, start, end + 1)
    stored: dict[tuple[str, str, str], dict[int, float]] = {}
    for labels, stamps, values in exported:
        key = (labels["__name__"], labels["agent"], labels.get("if_index", ""))
        assert labels["device"] == "sw" and labels["province"] == "Vĩnh Phúc", labels
        assert key not in stored, f"two series for {key}: the label sets differ"
        assert len(stamps) == len(set(stamps)), f"duplicate samples in {key}: {stamps}"
        stored[key] = dict(zip(stamps, values, strict=True))
    missing = {k: sorted(set(v) - set(stored.get(k, {}))) for k, v in expected.samples.items()
               if set(v) - set(stored.get(k, {}))}
    assert not missing, f"{len(missing)} series miss samples, e.g. {list(missing.items())[:3]}"
    assert stored == expected.samples

    # Both members did part of the work; the restarted one got its queued share back and, through its
    # own (not shared) status subscription, every agent's retained birth again.
    handled = [m.value("hatang_collector_messages_total", kind="data") for m in members]
    assert handled[1] > 0 and handled[0] > 0, handled
    assert [m.agents_up() for m in members] == [AGENTS, AGENTS]
    inserted = store.metric("vm_rows_inserted_total")
    if stop_signal is signal.SIGTERM:  # a clean stop acknowledges all it wrote: nothing is written twice
        assert inserted == expected.count()
    messages = AGENTS * ROUNDS
    print(
        f"\nscale-out ({stop_signal.name}): {AGENTS} agents, {messages} poll messages, "
        f"{expected.count()} samples; "
        f"collector 1 stopped after handling {seen:.0f} data messages, down "
        f"{restarted_at - killed_at:.1f} s; after its restart it handled {handled[0]:.0f}, "
        f"collector 2 {handled[1]:.0f}; published in {published_at - started:.1f} s, all stored "
        f"{stored_at - started:.1f} s after the first publish ({messages / (stored_at - started):.0f} "
        f"messages/s, {expected.count() / (stored_at - started):.0f} samples/s end to end); "
        f"rows written to VictoriaMetrics {inserted:.0f} (duplicates removed by dedup: "
        f"{inserted - expected.count():.0f})"
    )


def test_group_recording_rules_pass_promtool() -> None:
    """deploy/prometheus/rules/hatang-group.rules.yml: the group-wide liveness a shared group needs."""
    promtool = require_binary("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "rules", "hatang-group.rules.yml"], cwd=RULES,
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([promtool, "test", "rules", "hatang-group.rules.test.yml"], cwd=RULES,
                           capture_output=True, text=True, timeout=120, check=False)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr

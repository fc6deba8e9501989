"""Nothing lost: outages of the broker, the agent and the collector leave no gap in Prometheus.

Real Mosquitto, snmpd and Prometheus (remote-write receiver, out-of-order window) on loopback; hatang
agent and collector as processes. What the agent had queued during an outage is read from its disk
queue (SQLite, readable while the agent runs) and must appear in Prometheus at the poll timestamps.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Collector
from tests.support.hatang import (
    HatangProcess,
    one,
    parse,
    pending_clause,
    scrape,
    try_scrape,
    wait_for_series,
)
from tests.support.prometheus import Prometheus, start_prometheus
from tests.support.services import Mosquitto, Snmpd, free_tcp_port, start_mosquitto_keeping_sessions
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

INTERVAL = 2.0
GRACE = 0.5  # collector live_grace: a poll older than INTERVAL + GRACE on arrival is backfilled
# Broker crashes are tests/e2e/test_broker_faults.py: here a message the broker accepted is not sent again
# (redelivery would put polls that were live, and maybe never scraped, back into the queue under test).
NO_REDELIVERY = {"redeliver_window": 0}
GAUGE = "hatang_device_uptime_seconds"
COUNTER = "hatang_interface_in_bytes_total"
POLL_SUCCESS = "hatang_device_poll_success"


class _LazyPrometheus:
    """Started once the collector's port is known."""

    def __init__(self, workdir: Path, holder: list[Prometheus]) -> None:
        self.workdir, self.holder = workdir, holder

    def start(self, target: str) -> Prometheus:
        prometheus = start_prometheus(self.workdir, [target])
        self.holder.append(prometheus)
        return prometheus


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that keeps sessions across its own restart (as deploy/mosquitto/hatang.conf does), so the
    collector's persistent session queues what agents publish before the collector reconnects."""
    broker = start_mosquitto_keeping_sessions(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[_LazyPrometheus]:
    holder: list[Prometheus] = []
    yield _LazyPrometheus(tmp_path / "prometheus", holder)
    for p in holder:
        p.stop()


def _device(port: int) -> dict[str, Any]:
    return {"name": "core-switch", "address": "127.0.0.1", "port": port, "interval": INTERVAL,
            "snmp": {"timeout": 0.5, "retries": 0}, "profiles": ["system", "interfaces"]}


def _queue_db(tmp_path: Path) -> Path:
    return tmp_path / "buffer-xa-dai-dinh" / "queue.sqlite3"


def _queued(tmp_path: Path) -> list[dict[str, Any]]:
    """Poll batches waiting in the agent's disk queue (read-only; the agent keeps running)."""
    db = sqlite3.connect(f"file:{_queue_db(tmp_path)}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT device, payload FROM messages{pending_clause(db)} ORDER BY id").fetchall()
    finally:
        db.close()
    return [json.loads(payload) for device, payload in rows if device == "core-switch"]


def _sample(batch: dict[str, Any], name: str, **labels: str) -> float | None:
    """A sample of a queued poll payload, compact (what the agent sends) or verbose (docs/wire.md); for
    POLL_SUCCESS, what the collector derives from the poll's ``up`` (the availability report's input)."""
    if name == POLL_SUCCESS:
        return 1.0 if batch["up"] else 0.0
    label_sets = batch.get("label_sets", [])
    for family in batch["metrics"]:
        if family["name"] == name:
            if "values" in family:
                pairs = list(zip((label_sets[i] for i in family["series"]), family["values"], strict=True))
            else:
                pairs = [(s["labels"], s["value"]) for s in family["samples"]]
            for sample_labels, value in pairs:
                if all(sample_labels.get(k) == v for k, v in labels.items()):
                    return float(value)
    return None


def _setup(tmp_path: Path, snmpd: Snmpd, start_collector: Callable[..., Collector],
           start_agent: Callable[..., HatangProcess], prometheus: _LazyPrometheus,
           **agent_overrides: Any) -> tuple[Collector, Prometheus, HatangProcess]:
    # Prometheus needs the collector's address and the collector needs Prometheus' address: start
    # Prometheus scraping a port chosen first, then the collector on that port.
    collector_port = free_tcp_port()
    prom = prometheus.start(f"127.0.0.1:{collector_port}")
    collector = start_collector(listen=f"127.0.0.1:{collector_port}", live_grace=GRACE,
                                remote_write=[{"url": prom.remote_write_url}])
    agent = start_agent([_device(snmpd.port)], self_metrics_interval=INTERVAL, mqtt=NO_REDELIVERY,
                        **agent_overrides)
    wait_for_series(collector.url, COUNTER, timeout=30, device="core-switch", if_name="lo")
    wait_until(lambda: prom.api("query", query=f'{COUNTER}{{if_name="lo"}}')["result"], timeout=20,
               message="Prometheus to scrape the collector")
    return collector, prom, agent


def _wait_queued(tmp_path: Path, count: int, timeout: float) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        queued = _queued(tmp_path)
        return queued if len(queued) >= count else None

    return wait_until(enough, timeout=timeout, message=f"{count} poll batches in the agent's disk queue")


def _wait_drained(tmp_path: Path, timeout: float = 30) -> None:
    wait_until(lambda: not _queued(tmp_path), timeout=timeout, message="the agent's queue to drain")


def _assert_backfilled(prom: Prometheus, batches: list[dict[str, Any]]) -> None:
    """Every batch's gauge and counter value, and its success, is in Prometheus at the batch's poll time,
    exactly once."""
    assert batches
    start, end = batches[0]["ts"] - 0.001, batches[-1]["ts"] + 0.001
    for name, labels, selector in (
        (GAUGE, {}, f'{GAUGE}{{device="core-switch"}}'),
        (COUNTER, {"if_name": "lo"}, f'{COUNTER}{{device="core-switch",if_name="lo"}}'),
        (POLL_SUCCESS, {}, f'{POLL_SUCCESS}{{device="core-switch"}}'),
    ):
        expected = [(round(b["ts"], 3), _sample(b, name, **labels)) for b in batches]
        assert all(v is not None for _, v in expected)

        def stored(selector: str = selector, count: int = len(expected)) -> list[tuple[float, float]] | None:
            series = prom.raw_samples(selector, start, end)
            points = [(round(t, 3), v) for _, ts, vs in series for t, v in zip(ts, vs, strict=True)]
            return points if len(points) >= count else None

        points = wait_until(stored, timeout=30, message=f"backfilled {name} samples in Prometheus")
        assert len(series_ := prom.raw_samples(selector, start, end)) == 1, series_  # one series: same labels
        assert len(points) == len(expected), f"{name}: stored {points} != queued {expected}"
        for (stored_ts, stored_value), (ts, value) in zip(points, expected, strict=True):
            # remote write carries milliseconds; the value is exactly the polled one
            assert abs(stored_ts - ts) <= 0.001 and stored_value == value, (name, points, expected)
        window_ms = math.ceil((end - start) * 1000)
        count = prom.api("query", query=f"count_over_time({selector}[{window_ms}ms])",
                         time=f"{end:.3f}")["result"]
        assert int(float(count[0]["value"][1])) == len(expected)


def _assert_one_sample_per_poll(prom: Prometheus, start: float, end: float) -> None:
    """No duplicate and no gap in Prometheus over [start, end]: one series per selector, and successive
    samples one poll interval apart (Prometheus itself keeps one sample per (series, timestamp); the same
    poll stored twice would be two samples at different times, a lost one a step of two intervals)."""
    for name, selector in ((GAUGE, f'{GAUGE}{{device="core-switch"}}'),
                           (COUNTER, f'{COUNTER}{{device="core-switch",if_name="lo"}}')):
        series = prom.raw_samples(selector, start, end)
        assert len(series) == 1, f"{name}: {len(series)} series (the label sets differ): {series}"
        stamps = series[0][1]
        steps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
        assert stamps and all(step > INTERVAL - 0.5 for step in steps), f"{name}: duplicates: {steps}"
        assert all(step < INTERVAL + 0.5 for step in steps), f"{name}: gaps: {steps}"


def _late(batches: list[dict[str, Any]], back_at: float) -> list[dict[str, Any]]:
    """Batches that arrive too late to be live when the uplink comes back at ``back_at``.

    The polls of the last interval or two before that arrive live, and the collector may receive two of
    them within one scrape interval (they waited at the broker for its reconnect): it serves the newest
    and remote-writes the older one (a live poll replaced before any scrape showed it), so they are in
    Prometheus too: _assert_one_sample_per_poll checks the whole span for gaps."""
    return [b for b in batches if b["ts"] < back_at - (INTERVAL + GRACE + 1.0)]


def test_broker_outage_leaves_no_gap_and_no_duplicate_in_prometheus(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess], prometheus: _LazyPrometheus,
) -> None:
    collector, prom, agent = _setup(tmp_path, snmpd, start_collector, start_agent, prometheus)
    down_at = time.time()
    mosquitto.stop()
    wait_until(lambda: one(parse(scrape(collector.url)), "hatang_collector_broker_connected") == 0,
               timeout=10, message="the collector to notice the broker is gone")
    queued = _wait_queued(tmp_path, 6, timeout=30)
    back_at = time.time()
    mosquitto.start()
    _wait_drained(tmp_path)
    late = _late(queued, back_at)
    assert len(late) >= 4
    _assert_backfilled(prom, late)
    # No duplicate over the whole span, from before the outage to live polls after it. A poll whose
    # PUBACK was lost in the outage is legitimately sent again (at least once) and the collector drops it
    # as a duplicate: what must hold is that Prometheus has it once, not that the network never repeats.
    live_until = back_at + 4 * INTERVAL

    def live_again() -> bool:
        stamps = [t for _, ts, _ in prom.raw_samples(f'{GAUGE}{{device="core-switch"}}', back_at, time.time())
                  for t in ts]
        return bool(stamps) and max(stamps) >= live_until

    wait_until(live_again, timeout=30, message="live polls in Prometheus after the outage")
    _assert_one_sample_per_poll(prom, down_at - 3 * INTERVAL, live_until)
    assert agent.running()
    series = parse(scrape(collector.url))
    assert (one(series, "hatang_collector_late_samples_total") or 0) > 0


def test_agent_killed_during_an_outage_loses_nothing_it_had_queued(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess], prometheus: _LazyPrometheus,
) -> None:
    collector, prom, agent = _setup(tmp_path, snmpd, start_collector, start_agent, prometheus)
    mosquitto.stop()
    before_kill = _wait_queued(tmp_path, 4, timeout=30)
    agent.stop(sig=signal.SIGKILL)
    after_kill = _queued(tmp_path)
    assert after_kill[: len(before_kill)] == before_kill  # the queue survived kill -9
    restarted = start_agent([_device(snmpd.port)], self_metrics_interval=INTERVAL, mqtt=NO_REDELIVERY)
    wait_until(lambda: len(_queued(tmp_path)) >= len(after_kill) + 3, timeout=30,
               message="the restarted agent to queue more polls")
    queued = _queued(tmp_path)
    boots = {b["boot"] for b in queued}
    assert len(boots) == 2, "the restarted agent has a new boot id"
    back_at = time.time()
    mosquitto.start()
    _wait_drained(tmp_path)
    _assert_backfilled(prom, _late(queued, back_at))
    assert restarted.running()
    assert try_scrape(collector.url) is not None


def test_collector_killed_and_restarted_loses_no_sample(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess], prometheus: _LazyPrometheus,
) -> None:
    collector, prom, _ = _setup(tmp_path, snmpd, start_collector, start_agent, prometheus)
    killed_at = time.time()
    collector.process.stop(sig=signal.SIGKILL)
    # The broker keeps the collector's persistent session and queues what the agent publishes.
    wait_until(lambda: time.time() > killed_at + 5 * INTERVAL, timeout=6 * INTERVAL, interval=0.2,
               message="five poll intervals with the collector down")
    collector.process.start()
    wait_for_series(collector.url, COUNTER, timeout=30, device="core-switch", if_name="lo")
    selector = f'{COUNTER}{{device="core-switch",if_name="lo"}}'
    window = (killed_at + 1.0, killed_at + 5 * INTERVAL - INTERVAL - GRACE - 1.0)

    def backfilled() -> list[float] | None:
        series = prom.raw_samples(selector, *window)
        stamps = series[0][1] if series else []
        return stamps if stamps and stamps[-1] >= window[1] - INTERVAL else None

    stamps = wait_until(backfilled, timeout=30, message="the collector's downtime to be backfilled")
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
    assert stamps[0] <= window[0] + INTERVAL, (window, stamps)
    assert all(abs(g - INTERVAL) < 0.5 for g in gaps), f"gaps or duplicates between polls: {gaps}"


def test_push_mode_writes_every_poll_once_at_its_timestamp(
    tmp_path: Path, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess], prometheus: _LazyPrometheus,
) -> None:
    prom = prometheus.start("127.0.0.1:1")  # scrapes nothing useful: every sample comes by remote write
    collector = start_collector(mode="push", live_grace=GRACE, remote_write=[{"url": prom.remote_write_url}])
    start_agent([_device(snmpd.port)], self_metrics_interval=INTERVAL, mqtt=NO_REDELIVERY)
    wait_for_series(collector.url, "hatang_device_last_poll_timestamp_seconds", timeout=30,
                    device="core-switch")
    started = time.time()
    selector = f'{GAUGE}{{device="core-switch"}}'

    def six_polls() -> list[float] | None:
        series = prom.raw_samples(selector, started, time.time())
        return series[0][1] if series and len(series[0][1]) >= 6 else None

    stamps = wait_until(six_polls, timeout=40, message="six pushed polls in Prometheus")
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
    assert all(abs(g - INTERVAL) < 0.5 for g in gaps), f"gaps or duplicates between polls: {gaps}"
    assert len(prom.raw_samples(selector, started, time.time())) == 1  # one series: the collector's labels

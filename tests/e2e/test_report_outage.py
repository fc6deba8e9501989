"""The availability report's headline claim (issue #14, docs/operations.md "Availability"), with a WAN cut.

When an office's link to the centre is cut, ``hatang report`` shows the office's connection DOWN for the
outage (the centre could not see the agent: ``hatang_agent_up`` 0) but its devices UP: the agent kept
polling, queued the polls on disk, and once the link is back the collector writes them late, at their own
times, as ``hatang_device_poll_success``. Before the queue drained, the same minutes of the device read
UNKNOWN (no data) once they are past the 3-minute look-back after its last live poll.

Real processes on loopback: Mosquitto (persistent sessions), snmpd, Prometheus (remote-write receiver,
out-of-order window) scraping the collector, the collector (remote write, small ``live_grace``) connected
to Mosquitto directly, and one agent whose MQTT URL points at a TCP proxy in front of Mosquitto
(tests/support/tcp_proxy.py). The outage is caused, not simulated: the proxy resets both sides of the
agent's connection and refuses new ones for five minutes, so the broker publishes the agent's will and
the agent's reconnects fail. A soak test (about seven minutes): ``pytest -m soak``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Collector
from tests.support.hatang import HatangProcess, pending_clause, run_hatang
from tests.support.prometheus import Prometheus, start_prometheus
from tests.support.services import Mosquitto, Snmpd, free_tcp_port, start_mosquitto_keeping_sessions
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.soak]

AGENT = "xa-dai-dinh"
DEVICE = "core-switch"
INTERVAL = 10.0  # the device's poll interval
KEEPALIVE = 5  # the agent's MQTT keepalive (agent.yaml mqtt.keepalive)
GRACE = 2.0  # collector live_grace: a poll older than INTERVAL + GRACE on arrival is written late
OUTAGE = 300.0  # seconds the link stays cut
MINUTE = 60  # the report's grid (hatang/availability/definitions.py STEP_SECONDS)
LOOKBACK = 180  # a sample at s gives the state of the minute-end instants in [s, s + 180] (definitions.py)
AGENT_UP = f'hatang_agent_up{{agent="{AGENT}"}}'
POLL_SUCCESS = f'hatang_device_poll_success{{agent="{AGENT}",device="{DEVICE}"}}'


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker keeping sessions (as deploy/mosquitto/hatang.conf does): the collector's persistent
    session, as in tests/e2e/test_nothing_lost.py. Overrides the conftest broker for start_collector and
    start_agent."""
    broker = start_mosquitto_keeping_sessions(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def wan(mosquitto: Mosquitto) -> Iterator[TcpProxy]:
    """The office's WAN link: a TCP proxy in front of the broker that the test can cut."""
    proxy = TcpProxy(mosquitto.host, mosquitto.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass(frozen=True)
class Centre:
    prometheus: Prometheus
    collector_port: int  # Prometheus scrapes 127.0.0.1:collector_port: start the collector there


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    # Prometheus needs the collector's address and the collector Prometheus' (remote write): a port first.
    port = free_tcp_port()
    prometheus = start_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"])
    try:
        yield Centre(prometheus, port)
    finally:
        prometheus.stop()


@dataclass(frozen=True)
class Minutes:
    """One row of the report's CSV: minutes in each state."""

    up: int
    down: int
    unknown: int
    maintenance: int


def _device(port: int) -> dict[str, Any]:
    return {"name": DEVICE, "address": "127.0.0.1", "port": port, "interval": INTERVAL,
            "snmp": {"timeout": 2.0, "retries": 1}, "profiles": ["system"]}


def _queued_polls(tmp_path: Path) -> list[dict[str, Any]]:
    """The device's poll batches waiting in the agent's disk queue (read-only, the agent keeps running);
    as tests/e2e/test_nothing_lost.py ``_queued``."""
    path = tmp_path / f"buffer-{AGENT}" / "queue.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT device, payload FROM messages{pending_clause(db)} ORDER BY id").fetchall()
    finally:
        db.close()
    return [json.loads(payload) for device, payload in rows if device == DEVICE]


def _query(prom: Prometheus, query: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
    result: list[dict[str, Any]] = prom.api("query", **params)["result"]
    return result


def _samples(prom: Prometheus, start: float, end: float) -> list[tuple[float, float]]:
    """The device's stored poll-success samples in [start, end] (one series)."""
    series = prom.raw_samples(POLL_SUCCESS, start, end)
    assert len(series) <= 1, f"{POLL_SUCCESS}: {len(series)} series: {series}"
    return list(zip(series[0][1], series[0][2], strict=True)) if series else []


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _report(prom: Prometheus, start: int, end: int, fmt: str) -> subprocess.CompletedProcess[str]:
    done = run_hatang(["report", "--prometheus", prom.url, "--from", _iso(start), "--to", _iso(end),
                       "--format", fmt], timeout=120)
    assert done.returncode == 0, f"hatang report --format {fmt} exited {done.returncode}:\n{done.stderr}"
    return done


def _report_rows(prom: Prometheus, start: int, end: int) -> tuple[Minutes, Minutes]:
    """(office, device) minutes from ``hatang report --format csv`` over [start, end)."""
    text = _report(prom, start, end, "csv").stdout
    assert text.startswith("\ufeff"), "the CSV starts with a UTF-8 byte order mark"
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))

    def only(kind: str, device: str) -> Minutes:
        hits = [r for r in rows if r["kind"] == kind and r["agent"] == AGENT and r["device"] == device]
        assert len(hits) == 1, f"{kind} rows of {AGENT}/{device or '-'}: {hits}\n{text}"
        row = hits[0]
        minutes = Minutes(int(row["up_minutes"]), int(row["down_minutes"]), int(row["unknown_minutes"]),
                          int(row["maintenance_minutes"]))
        assert minutes.up + minutes.down + minutes.unknown + minutes.maintenance == (end - start) // MINUTE
        return minutes

    return only("office", ""), only("device", DEVICE)


def test_wan_cut_reports_the_office_down_and_its_device_up_once_the_buffered_polls_arrive(
    tmp_path: Path, snmpd: Snmpd, wan: TcpProxy, centre: Centre,
    start_collector: Callable[..., Collector], start_agent: Callable[..., HatangProcess],
) -> None:
    prom = centre.prometheus
    start_collector(listen=f"127.0.0.1:{centre.collector_port}", live_grace=GRACE,
                    remote_write=[{"url": prom.remote_write_url}])
    agent = start_agent([_device(snmpd.port)], agent_id=AGENT,
                        mqtt={"url": f"mqtt://{wan.address}", "keepalive": KEEPALIVE})
    wait_until(lambda: _query(prom, f"{AGENT_UP} == 1") and _query(prom, f"{POLL_SUCCESS} == 1"),
               timeout=90, interval=1.0, message="the agent (through the proxy) and its device in Prometheus")
    assert wan.connections() >= 1, "the agent reaches the broker through the proxy"
    accepted_before_cut = wan.accepted

    # --- the WAN link fails: both ends of the agent's connection are reset, reconnects are refused
    cut_at = time.time()
    wan.cut()
    assert wan.aborted >= 1 and wan.connections() == 0
    wait_until(lambda: _query(prom, f"{AGENT_UP} == 0"), timeout=30, interval=0.5,
               message="Prometheus to see the agent down (the broker published its will)")
    live = _samples(prom, cut_at - 600, time.time())
    assert live, f"no {POLL_SUCCESS} sample before the cut"
    last_live, last_value = live[-1]
    assert last_value == 1.0 and cut_at - (INTERVAL + GRACE + 5) < last_live < cut_at + 1, (cut_at, live[-3:])

    restore_due = cut_at + OUTAGE
    wait_until(lambda: time.time() >= restore_due or not agent.running(), timeout=OUTAGE + 30, interval=1.0,
               message="the outage to last its five minutes")
    assert agent.running(), "the agent survived the outage"
    assert wan.accepted == accepted_before_cut, "no connection got through the cut link"

    # --- just before the link comes back: the report over the outage's whole minutes
    p_start = math.ceil(cut_at / MINUTE) * MINUTE + MINUTE
    p_end = math.floor(time.time() / MINUTE) * MINUTE
    minutes = (p_end - p_start) // MINUTE
    assert minutes >= 3, (cut_at, p_start, p_end)
    office_before, device_before = _report_rows(prom, p_start, p_end)
    queued = _queued_polls(tmp_path)
    restored_at = time.time()
    wan.restore()

    # Expected, from the last live poll: a minute is up while its end is within LOOKBACK of that sample,
    # unknown after (no sample can be newer: nothing crossed the link).
    ends = [p_start + MINUTE * (i + 1) for i in range(minutes)]
    expected_up = sum(1 for end in ends if last_live <= end <= last_live + LOOKBACK)
    assert expected_up < minutes
    assert office_before.up + office_before.down == minutes and office_before.down >= minutes - 1, (
        f"office during the outage: {office_before} over {minutes} minutes")
    assert device_before == Minutes(expected_up, 0, minutes - expected_up, 0), (
        f"device before the queue drained: {device_before}; expected {expected_up} up then unknown "
        f"(last live poll {last_live:.3f}, minute ends {ends})")

    # The polls the agent made while the centre could not see it, waiting in its disk queue.
    span_start = last_live + INTERVAL / 2
    buffered = [b for b in queued if span_start < b["ts"] <= restored_at]
    assert all(b["up"] for b in buffered), "the device answered every poll during the outage"
    assert len(buffered) >= int((restored_at - last_live) / INTERVAL) - 1, (
        f"the agent kept polling: {len(buffered)} polls queued in {restored_at - last_live:.0f} s")

    # --- the link is back: the queue drains and the polls land in Prometheus at their own times
    wait_until(lambda: not _queued_polls(tmp_path), timeout=120, interval=0.5,
               message="the agent's disk queue to drain after the link came back")
    window_ms = int((restored_at - span_start) * 1000)
    count_query = f"count_over_time({POLL_SUCCESS}[{window_ms}ms])"

    def replayed() -> tuple[int] | None:
        result = _query(prom, count_query, at=restored_at)
        count = int(float(result[0]["value"][1])) if result else 0
        return (count,) if count >= len(buffered) - 1 else None

    (replayed_count,) = wait_until(replayed, timeout=60, interval=1.0,
                                   message=f"the {len(buffered)} buffered polls in Prometheus")
    assert abs(replayed_count - len(buffered)) <= 1, (replayed_count, len(buffered))
    stamps = [t for t, _ in _samples(prom, last_live, restored_at + INTERVAL)]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
    assert stamps[0] == last_live and stamps[-1] >= restored_at - INTERVAL, (last_live, restored_at, stamps)
    assert all(gap < 1.5 * INTERVAL for gap in gaps), f"gaps between the outage's polls in Prometheus: {gaps}"

    # --- the same period again: the office stays down, the device is now up throughout
    office_after, device_after = _report_rows(prom, p_start, p_end)
    assert office_after.down == office_before.down, (office_before, office_after)
    assert device_after == Minutes(minutes, 0, 0, 0), f"device after the queue drained: {device_after}"
    html = _report(prom, p_start, p_end, "html").stdout
    assert "<html" in html.lower() and AGENT in html

    print(f"\nreport-outage: link cut {restored_at - cut_at:.0f} s ({_iso(int(cut_at))} to "
          f"{_iso(int(restored_at))}); polls buffered {len(buffered)}, replayed {replayed_count}; "
          f"period {_iso(p_start)} to {_iso(p_end)} ({minutes} min): before drain device up "
          f"{device_before.up} unknown {device_before.unknown} (expected {expected_up}/"
          f"{minutes - expected_up}), after drain device up {device_after.up} unknown "
          f"{device_after.unknown}; office down {office_before.down} then {office_after.down}")

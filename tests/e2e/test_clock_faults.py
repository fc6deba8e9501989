"""Clock steps lose nothing: real ``hatang agent`` and ``hatang collector`` processes whose clocks are an
hour off (libfaketime, Debian package ``faketime``), real Mosquitto and snmpd. Every poll is served live
on /metrics at its real time, nothing is rejected or remote-written as late, and the collector's
offset estimate is right to within seconds (collector/clock.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SITE
from tests.support.hatang import (
    HatangProcess,
    hatang_command,
    hatang_env,
    outside_cwd,
    try_scrape,
    write_yaml,
)
from tests.support.services import Mosquitto, Snmpd, _spawn, free_tcp_port, require_binary, unavailable
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HOUR = 3600.0
INTERVAL = 2  # seconds between polls
SLACK = 5.0  # seconds: poll duration, scrape timing and the 0.2 s scrape loop


@dataclass(eq=False)
class FakedProcess(HatangProcess):
    """``hatang ARGS`` under ``faketime -f OFFSET`` (the wall clock shifted; monotonic time untouched,
    so asyncio's timers are real). tests/support/hatang.py's HatangProcess cannot prefix a command yet."""

    offset: str = ""

    def start(self) -> FakedProcess:
        env = hatang_env()
        if self.offset:
            # libfaketime preloaded into hatang itself (what `faketime -f` does, but the `faketime` command
            # stays the parent: stopping it by PID would leave hatang running)
            require_binary("faketime", "faketime")
            env.update(LD_PRELOAD=str(libfaketime()), FAKETIME=self.offset, FAKETIME_DONT_FAKE_MONOTONIC="1")
        self.proc = _spawn([*hatang_command(), *self.args], self.log_path, env=env, cwd=outside_cwd())
        return self


def libfaketime() -> Path:
    """The preload library of Debian's faketime package."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")) + sorted(
        Path("/usr/lib/faketime").glob("libfaketime.so.1"))
    if not found:
        unavailable("libfaketime.so.1 not found: install the Debian package faketime")
    return found[0]


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float | None]]


def scrape(url: str) -> Scrape | None:
    text = try_scrape(url)
    if text is None:
        return None
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            stamp = None if s.timestamp is None else float(s.timestamp)
            out[(s.name, tuple(sorted(s.labels.items())))] = (s.value, stamp)
    return out


def pick(series: Scrape, name: str, **labels: str) -> tuple[float, float | None] | None:
    for (sample_name, sample_labels), value in series.items():
        if sample_name == name and all(dict(sample_labels).get(k) == v for k, v in labels.items()):
            return value
    return None


def total(series: Scrape, name: str) -> float:
    return sum(v for (n, _), (v, _) in series.items() if n == name)


@pytest.fixture
def run(tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess]) -> Callable[..., FakedProcess]:
    def start(kind: str, config: dict[str, Any], name: str, offset: str = "") -> FakedProcess:
        path = write_yaml(tmp_path / f"{name}.yaml", config)
        proc = FakedProcess([kind, "-c", str(path)], tmp_path / f"{name}.log", offset=offset).start()
        processes.append(proc)
        return proc

    return start


def agent_config(tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, agent_id: str) -> dict[str, Any]:
    return {
        "agent_id": agent_id, "site": SITE, "mqtt": {"url": mosquitto.url},
        "buffer": {"path": str(tmp_path / f"buffer-{agent_id}")}, "self_metrics_interval": 5,
        "devices": [{"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port, "interval": INTERVAL,
                     "snmp": {"timeout": 0.5, "retries": 0}, "profiles": ["system"]}],
    }


def watch_polls(url: str, agents: list[str], seconds: float) -> tuple[dict[str, set[float]], Scrape]:
    """Scrape for ``seconds``; every served poll of each agent must carry a timestamp within SLACK of
    the real time it was scraped at. Returns the distinct poll times served per agent and the last
    scrape."""
    served: dict[str, set[float]] = {a: set() for a in agents}
    last: Scrape = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        series = scrape(url)
        now = time.time()
        if series is not None:
            last = series
            for agent in agents:
                hit = pick(series, "hatang_device_uptime_seconds", agent=agent)
                if hit is None:
                    continue
                stamp = hit[1]
                assert stamp is not None, f"{agent}: poll served without a timestamp"
                assert abs(stamp - now) < INTERVAL + SLACK, (
                    f"{agent}: poll served at {stamp} while the real time is {now} ({stamp - now:+.1f} s)")
                served[agent].add(stamp)
        time.sleep(0.2)
    return served, last


def test_agents_an_hour_behind_and_ahead_are_served_live_at_their_real_time(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, run: Callable[..., FakedProcess],
) -> None:
    port = free_tcp_port()
    url = f"http://127.0.0.1:{port}/metrics"
    collector = run("collector", {"mqtt": {"url": mosquitto.url}, "listen": f"127.0.0.1:{port}"}, "collector")
    wait_until(lambda: (s := scrape(url)) and pick(s, "hatang_collector_broker_connected") == (1.0, None),
               timeout=30, message="the collector connected")
    run("agent", agent_config(tmp_path, mosquitto, snmpd, "xa-cham"), "agent-cham", offset="-1h")
    run("agent", agent_config(tmp_path, mosquitto, snmpd, "xa-nhanh"), "agent-nhanh", offset="+1h")
    wait_until(lambda: (s := scrape(url)) and all(
        pick(s, "hatang_device_uptime_seconds", agent=a) for a in ("xa-cham", "xa-nhanh")),
        timeout=60, message="both agents' polls on /metrics")

    served, last = watch_polls(url, ["xa-cham", "xa-nhanh"], 12)
    for agent in ("xa-cham", "xa-nhanh"):
        assert len(served[agent]) >= 12 / INTERVAL - 2, (agent, sorted(served[agent]))  # every poll, live
        assert pick(last, "hatang_device_up", agent=agent) == (1.0, None)
    behind = pick(last, "hatang_agent_clock_offset_seconds", agent="xa-cham")
    ahead = pick(last, "hatang_agent_clock_offset_seconds", agent="xa-nhanh")
    assert behind is not None and abs(behind[0] + HOUR) < SLACK, behind
    assert ahead is not None and abs(ahead[0] - HOUR) < SLACK, ahead
    assert total(last, "hatang_collector_rejected_messages_total") == 0
    assert total(last, "hatang_collector_late_samples_total") == 0
    assert total(last, "hatang_collector_clock_offset_seconds") == 0  # one agent each way: no majority
    log = collector.log()
    assert log.count("agent xa-cham: its clock is 3600 s behind") == 1, log[-3000:]
    assert log.count("agent xa-nhanh: its clock is 3600 s ahead") == 1, log[-3000:]


def test_a_collector_an_hour_behind_serves_its_agents_at_their_real_time(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, run: Callable[..., FakedProcess],
) -> None:
    agents = ["xa-mot", "xa-hai"]
    started = [run("agent", agent_config(tmp_path, mosquitto, snmpd, a), f"agent-{a}") for a in agents]
    for proc in started:
        wait_until(lambda: "connected to broker" in proc.log(), timeout=30,  # noqa: B023 (used at once)
                   message="agent connected")
    port = free_tcp_port()
    url = f"http://127.0.0.1:{port}/metrics"
    collector = run("collector", {"mqtt": {"url": mosquitto.url}, "listen": f"127.0.0.1:{port}"}, "collector",
                    offset="-1h")
    wait_until(lambda: (s := scrape(url)) and all(pick(s, "hatang_device_uptime_seconds", agent=a)
                                                  for a in agents),
               timeout=60, message="both agents' polls on /metrics")

    served, last = watch_polls(url, agents, 12)
    for agent in agents:
        assert len(served[agent]) >= 12 / INTERVAL - 2, (agent, sorted(served[agent]))
        offset = pick(last, "hatang_agent_clock_offset_seconds", agent=agent)
        assert offset is not None and abs(offset[0] - HOUR) < SLACK, offset  # agent minus collector
        assert pick(last, "hatang_device_up", agent=agent) == (1.0, None)
        seen = pick(last, "hatang_agent_last_seen_timestamp_seconds", agent=agent)
        assert seen is not None and abs(seen[0] - time.time()) < INTERVAL + SLACK  # real time, too
    collector_offset = total(last, "hatang_collector_clock_offset_seconds")
    assert abs(collector_offset + HOUR) < SLACK, collector_offset
    assert total(last, "hatang_collector_rejected_messages_total") == 0
    assert total(last, "hatang_collector_late_samples_total") == 0
    logged = re.search(r"the collector's clock is ([+-]\d+) s off", collector.log())
    assert logged is not None and abs(int(logged.group(1)) + HOUR) < SLACK, collector.log()[-2000:]

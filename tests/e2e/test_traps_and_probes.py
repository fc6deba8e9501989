"""Traps and link probes end to end: net-snmp snmptrap -> hatang agent -> MQTT -> collector /metrics."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Collector
from tests.support.hatang import HatangProcess, one, parse, scrape, wait_for_series
from tests.support.services import Snmpd, free_udp_port, require_binary
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"


def _last_poll(url: str) -> float:
    return one(parse(scrape(url)), "hatang_device_last_poll_timestamp_seconds", device="core-switch") or 0.0


def test_link_down_trap_is_counted_and_the_device_is_polled_again_at_once(
    snmpd: Snmpd, start_collector: Callable[..., Collector], start_agent: Callable[..., HatangProcess],
) -> None:
    trap_port = free_udp_port()
    collector = start_collector()
    agent = start_agent(
        [{"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port, "interval": 300,
          "snmp": {"timeout": 0.5, "retries": 0}}],
        traps={"listen": f"127.0.0.1:{trap_port}", "communities": ["traps-secret"]},
    )
    wait_for_series(collector.url, "hatang_device_up", timeout=30, device="core-switch")
    wait_until(lambda: "receiving SNMP traps" in agent.log(), timeout=10, message="the trap receiver")
    first_poll = _last_poll(collector.url)
    sent_at = time.time()
    snmptrap = require_binary("snmptrap", "snmp")
    subprocess.run([snmptrap, "-v2c", "-c", "traps-secret", f"127.0.0.1:{trap_port}", "", LINK_DOWN,
                    "1.3.6.1.2.1.2.2.1.1.2", "i", "2", "1.3.6.1.2.1.2.2.1.8.2", "i", "2"],
                   check=True, timeout=10, env={"MIBS": "", "PATH": "/usr/bin:/bin"})
    series = wait_for_series(collector.url, "hatang_trap_received_total", timeout=15, device="core-switch",
                             trap="linkDown")
    assert one(series, "hatang_trap_received_total", device="core-switch", trap="linkDown") == 1
    last = one(series, "hatang_trap_last_timestamp_seconds", device="core-switch", trap="linkDown")
    assert last is not None and sent_at - 1 <= last <= time.time()
    # the 300 s interval would not poll again for minutes: the trap triggered the new poll
    polled = wait_until(lambda: (p := _last_poll(collector.url)) > first_poll and p, timeout=10,
                        message="an immediate re-poll after the trap")
    assert polled >= sent_at - 0.5

    # a trap with a wrong community is not delivered
    subprocess.run([snmptrap, "-v2c", "-c", "wrong", f"127.0.0.1:{trap_port}", "", LINK_DOWN],
                   check=True, timeout=10, env={"MIBS": "", "PATH": "/usr/bin:/bin"})
    subprocess.run([snmptrap, "-v2c", "-c", "traps-secret", f"127.0.0.1:{trap_port}", "",
                    "1.3.6.1.6.3.1.1.5.4"], check=True, timeout=10, env={"MIBS": "", "PATH": "/usr/bin:/bin"})
    series = wait_for_series(collector.url, "hatang_trap_received_total", timeout=15, trap="linkUp")
    assert one(series, "hatang_trap_received_total", device="core-switch", trap="linkDown") == 1


def test_probe_to_loopback_reports_up_rtt_and_no_loss(
    start_collector: Callable[..., Collector], start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector()
    start_agent([], probes=[{"name": "cong-tinh", "address": "127.0.0.1", "count": 3, "spacing": 0.1,
                             "timeout": 1.0, "interval": 5}])
    series = wait_for_series(collector.url, "hatang_probe_up", timeout=30, device="cong-tinh")
    ((labels, up),) = [(dict(k[1]), v) for k, v in series.items() if k[0] == "hatang_probe_up"]
    assert up == 1 and labels["target"] == "127.0.0.1" and labels["method"] in ("icmp", "tcp")
    assert one(series, "hatang_probe_loss_ratio", device="cong-tinh") == 0
    rtt = one(series, "hatang_probe_rtt_seconds", device="cong-tinh", stat="avg")
    assert rtt is not None and 0 < rtt < 1
    assert one(series, "hatang_device_up", device="cong-tinh") is None  # a probe is not a device

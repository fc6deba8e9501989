"""One real path: net-snmp snmpd -> hatang agent -> Mosquitto -> hatang collector -> /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import SITE, Collector
from tests.support.hatang import HatangProcess, find, one, parse, scrape, wait_for_series
from tests.support.services import Snmpd, free_udp_port, snmpget
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
POLL_INTERVAL = 2


def _device(name: str, port: int, **snmp: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "127.0.0.1",
        "port": port,
        "interval": POLL_INTERVAL,
        "snmp": {"version": "2c", "community": "public", "timeout": 0.5, "retries": 0, **snmp},
        "profiles": ["system", "interfaces"],
    }


def _last_poll(url: str, device: str) -> float:
    return one(parse(scrape(url)), "hatang_device_last_poll_timestamp_seconds", device=device) or 0.0


def test_lo_byte_counters_equal_what_snmpget_reads_within_a_poll(
    snmpd: Snmpd,
    start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector()
    start_agent([_device("core-switch", snmpd.port)])
    series = wait_for_series(collector.url, "hatang_interface_in_bytes_total", timeout=30, if_name="lo")
    (lo_labels, _), = find(series, "hatang_interface_in_bytes_total", if_name="lo")
    index = lo_labels["if_index"]
    assert lo_labels["agent"] == "xa-dai-dinh" and lo_labels["device"] == "core-switch"
    assert {k: lo_labels[k] for k in SITE} == SITE

    for column, metric in ((IF_HC_IN_OCTETS, "hatang_interface_in_bytes_total"),
                           (IF_HC_OUT_OCTETS, "hatang_interface_out_bytes_total")):
        before_time = time.time()
        before = int(snmpget(snmpd, f"{column}.{index}"))
        # A poll that started after `before` was read must report at least `before` ...
        wait_until(lambda: _last_poll(collector.url, "core-switch") > before_time, timeout=15,  # noqa: B023
                   message="a poll that started after the first snmpget")
        published = one(parse(scrape(collector.url)), metric, device="core-switch", if_index=index)
        # ... and at most what snmpd says afterwards.
        after = int(snmpget(snmpd, f"{column}.{index}"))
        assert published is not None
        assert before <= published <= after, (column, before, published, after)
        assert after > 0

    final = parse(scrape(collector.url))
    assert one(final, "hatang_device_up", device="core-switch") == 1
    assert one(final, "hatang_agent_up", agent="xa-dai-dinh") == 1
    assert one(final, "hatang_interface_oper_status", device="core-switch", if_index=index) == 1
    uptime = one(final, "hatang_device_uptime_seconds", device="core-switch")
    assert uptime is not None and uptime >= 0
    sys_name = snmpget(snmpd, "1.3.6.1.2.1.1.5.0").strip('"')
    assert find(final, "hatang_device_info", device="core-switch", sys_name=sys_name)
    speed = one(final, "hatang_interface_speed_bytes", device="core-switch", if_index=index)
    assert speed is not None and speed >= 0


def test_unreachable_device_is_down_while_the_others_keep_being_polled(
    snmpd: Snmpd,
    start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector()
    dead_port = free_udp_port()  # nothing listens here
    start_agent([_device("dead-switch", dead_port), _device("core-switch", snmpd.port)])
    series = wait_for_series(collector.url, "hatang_device_up", timeout=30, device="dead-switch")
    assert one(series, "hatang_device_up", device="dead-switch") == 0
    assert (one(series, "hatang_device_poll_errors", device="dead-switch") or 0) >= 1
    assert not find(series, "hatang_interface_in_bytes_total", device="dead-switch")

    first = wait_until(lambda: _last_poll(collector.url, "core-switch"), timeout=20,
                       message="a poll of the live device")
    wait_until(lambda: _last_poll(collector.url, "core-switch") > first, timeout=20,
               message="the live device to be polled again while the dead one times out")
    series = parse(scrape(collector.url))
    assert one(series, "hatang_device_up", device="core-switch") == 1
    assert one(series, "hatang_device_up", device="dead-switch") == 0
    assert find(series, "hatang_interface_in_bytes_total", device="core-switch")

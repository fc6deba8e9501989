"""`hatang demo` runs the whole system with no external service and stops by itself: every kind of data a
dashboard shows appears (several offices, site coordinates, interfaces, UPS, servers, link probes, traps,
a device down, vendor health chosen by sysObjectID with a failed fan and power supply, LLDP links)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hatang import HatangProcess, Series, find, one, parse, try_scrape
from tests.support.services import free_tcp_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DURATION = 35
AGENTS = ("ttdl-tinh", "xa-dai-dinh", "xa-lap-thach", "phuong-vinh-yen")
DAI_DINH = ("core-switch", "access-switch", "router-tsldcd", "ups-mot-cua", "ups-phong-may")


def test_demo_gives_every_dashboard_data_and_stops_by_itself(tmp_path: Path) -> None:
    port = free_tcp_port()
    demo = HatangProcess(["demo", "--listen", f"127.0.0.1:{port}", "--duration", str(DURATION)],
                         tmp_path / "demo.log").start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape_when(ready: Callable[[Series], bool]) -> Callable[[], Series | None]:
            def attempt() -> Series | None:
                text = try_scrape(url)
                series = parse(text) if text else {}
                return series if series and ready(series) else None
            return attempt

        def every_device_polled(series: Series) -> bool:
            return (all(find(series, "hatang_device_up", agent="xa-dai-dinh", device=d) for d in DAI_DINH)
                    and len(find(series, "hatang_device_up")) >= 16
                    and len(find(series, "hatang_probe_up")) == len(AGENTS))

        series = wait_until(scrape_when(every_device_polled), timeout=25, interval=0.5,
                            message="a poll of every device and probe")
        # offices: one agent each, online, with its version and its site (coordinates from the inventory)
        for agent in AGENTS:
            assert one(series, "hatang_agent_up", agent=agent) == 1
            (info_labels, info), = find(series, "hatang_agent_info", agent=agent)
            assert info == 1 and info_labels["version"], info_labels
            (site, _), = find(series, "hatang_site_info", agent=agent)
            assert 20 < float(site["latitude"]) < 23 and 104 < float(site["longitude"]) < 107, site
        sites = {labels["agent"]: labels for labels, _ in find(series, "hatang_site_info")}
        assert sites["xa-dai-dinh"]["district"] and "district" not in sites["phuong-vinh-yen"]
        assert sites["ttdl-tinh"]["role"] == "datacenter"
        # devices and interfaces
        assert one(series, "hatang_device_up", device="ups-phong-may") == 0
        assert sum(v == 1 for _, v in find(series, "hatang_device_up")) >= 15
        assert len(find(series, "hatang_interface_in_bytes_total", device="core-switch")) == 24
        aliases = {labels["if_alias"] for labels, _ in find(series, "hatang_interface_oper_status")}
        assert "Uplink - Đường truyền số liệu chuyên dùng" in aliases
        # UPS on every office, answering
        ups_agents = {labels["agent"] for labels, _ in find(series, "hatang_ups_battery_charge_ratio")}
        assert ups_agents == set(AGENTS)
        assert all(0 < v <= 1 for _, v in find(series, "hatang_ups_battery_charge_ratio"))
        assert find(series, "hatang_ups_battery_runtime_seconds") and find(series, "hatang_ups_output_source")
        # data-centre servers: CPU, storage per mount, memory, load
        mounts = {labels["mount"] for labels, _ in find(series, "hatang_host_storage_used_bytes",
                                                         agent="ttdl-tinh", storage_type="fixedDisk")}
        assert {"/", "/var", "/data"} <= mounts
        assert find(series, "hatang_host_cpu_load_ratio", agent="ttdl-tinh")
        assert find(series, "hatang_host_memory_total_bytes") and find(series, "hatang_host_load1")
        # switch health from the vendor profiles that `profiles: auto` chose by sysObjectID
        assert find(series, "hatang_device_cpu_utilization_ratio", device="core-switch",
                    component="MPU Board 0")
        assert find(series, "hatang_device_temperature_celsius", device="switch-vinh-yen")
        assert one(series, "hatang_device_fan_ok", device="switch-lap-thach") == 0
        assert one(series, "hatang_device_power_supply_ok", device="core-switch-ttdl", component="0.3") == 0
        # the government-network link of each office answers
        assert {labels["agent"] for labels, v in find(series, "hatang_probe_up") if v == 1} == set(AGENTS)
        assert find(series, "hatang_probe_rtt_seconds", stat="avg")

        # the flapping port's traps and the UPS that loses mains (both within seconds of the start)
        def trap_and_battery(s: Series) -> bool:
            return bool([v for _, v in find(s, "hatang_trap_received_total", agent="xa-dai-dinh",
                                            device="core-switch") if v >= 1]
                        and one(s, "hatang_ups_on_battery", device="ups-lap-thach") == 1)

        wait_until(scrape_when(trap_and_battery), timeout=8, interval=0.5,
                   message="a linkDown trap and a UPS on battery")

        # LLDP: the Đại Đình switches see each other, a link confirmed by both ends; every office has one
        def links_joined(s: Series) -> bool:
            confirmed = find(s, "hatang_link_info", confirmed="true")
            return ({labels["agent"] for labels, _ in confirmed} == set(AGENTS)
                    and bool(find(s, "hatang_link_info", agent="xa-dai-dinh", device="access-switch",
                                  remote_device="core-switch", confirmed="true")))

        wait_until(scrape_when(links_joined), timeout=8, interval=0.5, message="confirmed LLDP links")
        assert demo.wait_exit(timeout=DURATION + 20) == 0
        assert f"Metrics:  {url}" in demo.log()
        # the status page's address comes first (issue #18)
        assert re.findall(r"http://\S+", demo.log())[0] == url.removesuffix("metrics")
        assert "hatang demo stopped." in demo.log()
    finally:
        demo.stop()

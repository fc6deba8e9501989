"""Collector lifecycle: SIGHUP reload of config and inventory; agents remembered across restarts."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Collector
from tests.support.hatang import HatangProcess, find, one, parse, scrape, wait_for_series
from tests.support.services import Mosquitto, Snmpd
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _device(port: int) -> dict[str, Any]:
    return {"name": "core-switch", "address": "127.0.0.1", "port": port, "interval": 2,
            "snmp": {"timeout": 0.5, "retries": 0}, "profiles": ["system"]}


def test_sighup_applies_a_new_inventory_and_survives_a_broken_one(
    tmp_path: Path, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector()
    start_agent([_device(snmpd.port)])  # claims province Vĩnh Phúc
    wait_for_series(collector.url, "hatang_device_uptime_seconds", timeout=30, province="Vĩnh Phúc")

    inventory = tmp_path / "inventory.yaml"
    shutil.copy(ROOT / "deploy/examples/inventory.yaml", inventory)
    config = yaml.safe_load(collector.config_path.read_text(encoding="utf-8"))
    config["inventory"] = str(inventory)
    collector.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    collector.process.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    series = wait_for_series(collector.url, "hatang_device_uptime_seconds", timeout=20, province="Phú Thọ",
                             district="Tam Đảo (cũ)")
    assert find(series, "hatang_site_info", agent="xa-dai-dinh", site_name="UBND xã Đại Đình")
    assert one(series, "hatang_agent_up", agent="phuong-vinh-yen") == 0  # listed, never seen

    inventory.write_text("sites:\n  - {agent: xa-dai-dinh}\n", encoding="utf-8")  # province missing
    collector.process.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_until(lambda: "reload failed" in collector.process.log(), timeout=10, message="the reload error")
    assert "sites[0].province" in collector.process.log()
    assert collector.process.running()
    assert find(parse(scrape(collector.url)), "hatang_site_info", agent="xa-dai-dinh")


def test_agents_are_remembered_across_a_collector_restart(
    tmp_path: Path, mosquitto: Mosquitto, snmpd: Snmpd, start_collector: Callable[..., Collector],
    start_agent: Callable[..., HatangProcess],
) -> None:
    collector = start_collector(state_file=str(tmp_path / "state.json"))
    agent = start_agent([_device(snmpd.port)])
    series = wait_for_series(collector.url, "hatang_agent_last_seen_timestamp_seconds", timeout=30,
                             agent="xa-dai-dinh")
    agent.stop(sig=signal.SIGKILL)  # gone without a goodbye
    last_seen = one(parse(scrape(collector.url)), "hatang_agent_last_seen_timestamp_seconds",
                    agent="xa-dai-dinh")
    assert collector.process.stop() == 0
    # the broker restarts too, without persistence: no retained status tells about the agent any more
    mosquitto.stop()
    mosquitto.start()
    collector.process.start()
    series = wait_for_series(collector.url, "hatang_agent_up", timeout=30, agent="xa-dai-dinh")
    assert one(series, "hatang_agent_up", agent="xa-dai-dinh") == 0
    restored = one(series, "hatang_agent_last_seen_timestamp_seconds", agent="xa-dai-dinh")
    assert last_seen is not None and restored is not None and abs(restored - last_seen) < 5


def test_readyz_follows_the_broker_connection_and_healthz_the_process(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector],
) -> None:
    import urllib.error
    import urllib.request

    collector = start_collector()
    base = collector.url.rsplit("/", 1)[0]

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    wait_until(lambda: status("/readyz") == 200, timeout=10, message="/readyz 200 while connected")
    mosquitto.stop()
    wait_until(lambda: status("/readyz") == 503, timeout=10, message="/readyz 503 without a broker")
    assert status("/healthz") == 200
    # /metrics is one rendering shared for up to 50 ms (collector/http.py): it follows within that
    wait_until(lambda: one(parse(scrape(collector.url)), "hatang_collector_broker_connected") == 0,
               timeout=2, message="/metrics to show the broker connection lost")
    mosquitto.start()
    wait_until(lambda: status("/readyz") == 200, timeout=30, message="/readyz 200 after reconnecting")

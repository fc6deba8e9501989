"""A running ``hatang agent`` never loads pydantic nor PyYAML: its configuration and profiles are checked by a
child process (agent/checked_config.py) and arrive as plain dataclasses, so the office agent's memory
stays small (issue #19, goal 5; docs/performance.md). Read from the agent's own ``/proc/PID/maps`` while it
polls a real snmpd and publishes to a real Mosquitto."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hatang import HatangProcess, run_hatang, write_yaml
from tests.support.mqtt_recorder import Client
from tests.support.services import Mosquitto, Snmpd, heavy_libraries
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_polling_agent_has_neither_pydantic_nor_yaml_loaded(
    start_agent: Callable[..., HatangProcess], mosquitto: Mosquitto, snmpd: Snmpd, tmp_path: Path
) -> None:
    recorder = Client(mosquitto, None)
    recorder.connect()
    try:
        recorder.subscribe("hatang/v1/agents/xa-dai-dinh/data/#")
        agent = start_agent([{"name": "may-chu", "address": "127.0.0.1", "port": snmpd.port, "interval": 1,
                              "profiles": ["system", "interfaces", "host"]}])

        def polled_up() -> dict[str, object] | None:
            for _, payload in recorder.messages():
                batch = json.loads(payload)
                if batch.get("device") == "may-chu" and batch.get("up"):
                    return dict(batch)
            return None

        batch = wait_until(polled_up, 30, interval=0.1, message="a poll of snmpd published by the agent")
        assert batch["metrics"], batch
        assert heavy_libraries(agent.pid) == [], "the running agent mapped pydantic or PyYAML"
    finally:
        recorder.close()


def test_a_config_error_at_start_still_names_file_and_key(tmp_path: Path) -> None:
    """The child that checks the configuration reports its errors as ``hatang check`` does (exit 2)."""
    path = write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc"}, "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "buffer": {"path": str(tmp_path / "buffer")},
        "devices": [{"name": "sw", "address": "10.0.0.2", "snmp": {"version": "3"}}]})
    done = run_hatang(["agent", "-c", str(path)], timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{path}: devices[0].snmp: Value error, SNMPv3 needs username" in done.stderr
    assert "Traceback" not in done.stderr

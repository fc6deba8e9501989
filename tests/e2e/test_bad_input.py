"""Bad input gets a clear error and loses nothing: config errors, malformed MQTT payloads."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Collector
from tests.support.hatang import (
    HatangProcess,
    find,
    one,
    parse,
    run_hatang,
    scrape,
    wait_for_series,
    write_yaml,
)
from tests.support.services import Mosquitto, require_binary
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

GOOD_BATCH = {
    "v": 1, "type": "poll", "agent": "xa-tot", "boot": "b1", "seq": 1, "ts": time.time(), "device": "sw",
    "interval": 60, "up": True, "duration": 0.1, "site": {"province": "Vĩnh Phúc"},
    "metrics": [{"name": "hatang_device_uptime_seconds", "type": "gauge", "help": "h",
                 "samples": [{"labels": {}, "value": 42}]}],
}


def _publish(mosquitto: Mosquitto, topic: str, payload: bytes) -> None:
    tool = require_binary("mosquitto_pub", "mosquitto-clients")
    subprocess.run([tool, "-h", mosquitto.host, "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-s"],
                   input=payload, check=True, timeout=10)


def _rejected(url: str, reason: str) -> float:
    return one(parse(scrape(url)), "hatang_collector_rejected_messages_total", reason=reason) or 0.0


def test_malformed_payloads_are_counted_by_reason_and_the_collector_keeps_serving(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    collector = start_collector()
    bad = [
        ("hatang/v1/agents/xa-a/data/sw", b"\xff\xfe not json", "json"),
        ("hatang/v1/agents/xa-a/data/sw", b"[1, 2, 3", "json"),
        ("hatang/v1/agents/xa-a/data/sw", json.dumps({**GOOD_BATCH, "v": 9}).encode(), "version"),
        ("hatang/v1/agents/xa-a/data/sw", json.dumps({**GOOD_BATCH, "agent": "xa-a", "seq": "one"}).encode(),
         "schema"),
        ("hatang/v1/agents/xa-a/data/sw", b'{"v": 1, "type": "poll", "ts": NaN}', "schema"),
        ("hatang/v1/agents/xa-a/data/sw", json.dumps(GOOD_BATCH).encode(), "identity"),  # claims xa-tot
        ("hatang/v1/agents/xa-a/bogus", b"{}", "topic"),
    ]
    for topic, payload, _ in bad:
        _publish(mosquitto, topic, payload)
    good = {**GOOD_BATCH, "ts": time.time()}  # a live poll (a poll older than its interval goes to backfill)
    _publish(mosquitto, "hatang/v1/agents/xa-tot/data/sw", json.dumps(good).encode())

    series = wait_for_series(collector.url, "hatang_device_uptime_seconds", timeout=15, agent="xa-tot")
    expected: dict[str, int] = {}
    for _, _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    for reason, count in expected.items():
        assert one(series, "hatang_collector_rejected_messages_total", reason=reason) == count, reason
    assert one(series, "hatang_device_uptime_seconds", agent="xa-tot", device="sw") == 42
    assert not find(series, "hatang_device_up", agent="xa-a")
    assert collector.process.running()
    assert "rejected message" in collector.process.log()
    created = [name for name, _ in series if name.endswith("_created")]
    assert not created, f"prometheus-client's _created series are exposed: {created}"


def test_agent_with_a_mistyped_key_exits_naming_file_and_key_path(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc"}, "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "buffer": {"path": str(tmp_path / "buf")},
        "devices": [{"name": "a", "address": "127.0.0.1"}, {"name": "b", "address": "127.0.0.1"},
                    {"name": "c", "address": "127.0.0.1", "snmp": {"version": "2c", "comunity": "x"}}],
    })
    for command in (["agent", "-c", str(path)], ["check", "-c", str(path)]):
        result = run_hatang(command)
        assert result.returncode == 2, result
        assert f"{path}: devices[2].snmp.comunity: unknown key; did you mean 'community'?" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    for command in ("agent", "collector", "check"):
        result = run_hatang([command, "-c", str(tmp_path / "nope.yaml")])
        assert result.returncode == 2
        assert f"{tmp_path / 'nope.yaml'}: file not found" in result.stderr


def test_check_accepts_the_shipped_examples_and_names_the_kind() -> None:
    """The examples name files of a production host (/etc/hatang/...): keys and values only here."""
    root = Path(__file__).resolve().parents[2]
    agent = run_hatang(["check", "--skip-files", "-c", str(root / "deploy/examples/agent.yaml")])
    assert agent.returncode == 0 and "OK: agent config for 'xa-dai-dinh' with 2 device(s)" in agent.stdout
    collector = run_hatang(["check", "--skip-files", "-c", str(root / "deploy/examples/collector.yaml")])
    assert collector.returncode == 0 and "OK: collector config" in collector.stdout


def test_collector_config_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "collector.yaml", {"mqtt": {"url": "mqtt://127.0.0.1:1883"}, "lisen": ":1"})
    result = run_hatang(["check", "-c", str(path), "--kind", "collector"])
    assert result.returncode == 2
    assert f"{path}: lisen: unknown key; did you mean 'listen'?" in result.stderr


def test_agent_keeps_running_while_the_broker_is_unreachable(
    tmp_path: Path, start_agent: Callable[..., HatangProcess]
) -> None:
    agent = start_agent([], mqtt={"url": "mqtt://127.0.0.1:9"})  # nothing listens on port 9
    wait_until(lambda: "unreachable" in agent.log(), timeout=15, message="the agent to log the broker state")
    assert agent.running()
    assert agent.log().count("unreachable") == 1, "one log line per state change, not per retry"
    assert agent.stop() == 0

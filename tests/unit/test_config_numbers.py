"""Numbers in configs: no .nan/.inf in any float field of the agent or collector config (found by walking
the models, so a new field is covered without a new test), every port in 1-65535, and the agent's MQTT
settings ``redeliver_window`` and ``protocol``."""

from __future__ import annotations

import copy
import math
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import config as agent_config
from agent.config import AgentConfig
from collector import config as collector_config
from collector.config import CollectorConfig
from hatang import configfile
from hatang.configfile import ConfigError

AGENT_BASE: dict[str, Any] = {
    "agent_id": "xa-dai-dinh",
    "site": {"province": "Vĩnh Phúc"},
    "mqtt": {"url": "mqtt://127.0.0.1:1883"},
    "buffer": {"path": "buffer"},
    "devices": [{"name": "core-switch", "address": "192.0.2.1"}],
    "traps": {"listen": "127.0.0.1:1162", "users": [{"username": "u"}]},
    "probes": [{"name": "cong-tinh", "address": "10.0.0.1"}],
}
COLLECTOR_BASE: dict[str, Any] = {
    "mqtt": {"url": "mqtt://127.0.0.1:1883"},
    "remote_write": [{"url": "http://127.0.0.1:8428/api/v1/write"}],
}

Loc = tuple[str | int, ...]


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def float_fields(model: type, loc: Loc = ()) -> Iterator[Loc]:
    """The key path of every float field in ``model`` (lists of models: their first item)."""
    for name, (annotation, _) in configfile.model_fields(model).items():
        annotation = _unwrap(annotation)
        if typing.get_origin(annotation) is list:
            item = _unwrap(typing.get_args(annotation)[0])
            if configfile.is_model(item):
                yield from float_fields(item, (*loc, name, 0))
            continue
        if annotation is float:
            yield (*loc, name)
        elif configfile.is_model(annotation):
            yield from float_fields(annotation, (*loc, name))


def dotted(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(loc))


def with_value(base: dict[str, Any], loc: Loc, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node: Any = doc
    for part in loc[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[loc[-1]] = value
    return doc


def write(tmp_path: Path, doc: dict[str, Any], name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def problems(load: Callable[[Path], Any], path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.path == str(path)
    return info.value.problems


AGENT_FLOATS = list(float_fields(AgentConfig))
COLLECTOR_FLOATS = list(float_fields(CollectorConfig))
NON_FINITE = [(math.nan, ".nan"), (math.inf, ".inf"), (-math.inf, "-.inf")]


def test_the_walk_finds_the_float_fields() -> None:
    assert {"buffer.replay_rate", "buffer.max_age", "devices[0].interval", "devices[0].snmp.timeout",
            "probes[0].interval", "mqtt.redeliver_window", "self_metrics_interval"} <= set(
        map(dotted, AGENT_FLOATS))
    assert {"stale_after_intervals", "live_grace", "remote_write[0].timeout"} <= set(
        map(dotted, COLLECTOR_FLOATS))


def test_the_base_configs_load(tmp_path: Path) -> None:
    agent_config.load(write(tmp_path, AGENT_BASE))
    collector_config.load(write(tmp_path, COLLECTOR_BASE, "collector.yaml"))


@pytest.mark.parametrize(("value", "spelt"), NON_FINITE, ids=[s for _, s in NON_FINITE])
@pytest.mark.parametrize("loc", AGENT_FLOATS, ids=map(dotted, AGENT_FLOATS))
def test_no_agent_float_accepts_nan_or_infinity(tmp_path: Path, loc: Loc, value: float, spelt: str) -> None:
    [(key, message)] = problems(agent_config.load, write(tmp_path, with_value(AGENT_BASE, loc, value)))
    assert key == dotted(loc)
    assert message.startswith(f"must be a finite number, not {spelt} ")
    assert "give a plain number" in message


@pytest.mark.parametrize(("value", "spelt"), NON_FINITE, ids=[s for _, s in NON_FINITE])
@pytest.mark.parametrize("loc", COLLECTOR_FLOATS, ids=map(dotted, COLLECTOR_FLOATS))
def test_no_collector_float_accepts_nan_or_infinity(tmp_path: Path, loc: Loc, value: float,
                                                    spelt: str) -> None:
    path = write(tmp_path, with_value(COLLECTOR_BASE, loc, value), "collector.yaml")
    [(key, message)] = problems(collector_config.load, path)
    assert key == dotted(loc)
    assert message.startswith(f"must be a finite number, not {spelt} ")


def test_nan_interval_is_not_reported_as_out_of_range(tmp_path: Path) -> None:
    """Was: "Input should be less than or equal to 86400" for interval: .nan."""
    [(key, message)] = problems(agent_config.load, write(tmp_path, with_value(
        AGENT_BASE, ("devices", 0, "interval"), math.nan)))
    assert key == "devices[0].interval"
    assert "86400" not in message and "such as the default 60" in message


def test_infinite_replay_rate_is_rejected(tmp_path: Path) -> None:
    """Was accepted, then an OverflowError in the uplink after an outage."""
    [(key, message)] = problems(agent_config.load, write(tmp_path, with_value(
        AGENT_BASE, ("buffer", "replay_rate"), math.inf)))
    assert key == "buffer.replay_rate"
    assert "not .inf" in message and "such as the default 20" in message


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity"])
def test_numbers_written_as_text_are_rejected_too(tmp_path: Path, text: str) -> None:
    [(key, message)] = problems(agent_config.load, write(tmp_path, with_value(
        AGENT_BASE, ("devices", 0, "interval"), text)))
    assert key == "devices[0].interval" and "must be a finite number" in message


def test_every_non_finite_collector_number_is_reported_at_once(tmp_path: Path) -> None:
    doc = with_value(COLLECTOR_BASE, ("stale_after_intervals",), math.nan)
    doc = with_value(doc, ("live_grace",), math.inf)
    keys = [key for key, _ in problems(collector_config.load, write(tmp_path, doc, "collector.yaml"))]
    assert keys == ["stale_after_intervals", "live_grace"]


# --- ports -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loc", "value"), [
    (("traps", "listen"), "0.0.0.0:99999"),
    (("traps", "listen"), "127.0.0.1:0"),
    (("traps", "listen"), "[::]:65536"),
    (("mqtt", "url"), "mqtt://broker.example:99999"),
    (("mqtt", "url"), "mqtts://broker.example:0/"),
    (("devices", 0, "port"), 0),
    (("devices", 0, "port"), 65536),
    (("probes", 0, "tcp_port"), 0),
    (("probes", 0, "tcp_port"), 99999),
])
def test_every_port_is_checked(tmp_path: Path, loc: Loc, value: Any) -> None:
    [(key, message)] = problems(agent_config.load, write(tmp_path, with_value(AGENT_BASE, loc, value)))
    assert key == dotted(loc)
    assert "65535" in message


def test_out_of_range_listen_port_says_which_range(tmp_path: Path) -> None:
    [(_, message)] = problems(agent_config.load, write(tmp_path, with_value(
        AGENT_BASE, ("traps", "listen"), "0.0.0.0:99999")))
    assert message == "port 99999 is out of range: use 1-65535 (SNMP traps are sent to UDP port 162)"


@pytest.mark.parametrize(("loc", "value"), [
    (("traps", "listen"), "0.0.0.0:162"), (("traps", "listen"), "[::1]:65535"),
    (("mqtt", "url"), "mqtts://broker.example:8883/"), (("mqtt", "url"), "mqtt://broker.example"),
    (("devices", 0, "port"), 65535), (("probes", 0, "tcp_port"), 1),
])
def test_ports_in_range_are_accepted(tmp_path: Path, loc: Loc, value: Any) -> None:
    agent_config.load(write(tmp_path, with_value(AGENT_BASE, loc, value)))


# --- MQTT settings for the uplink ----------------------------------------------------------------------


def test_mqtt_redeliver_window_and_protocol_defaults(tmp_path: Path) -> None:
    mqtt = agent_config.load(write(tmp_path, AGENT_BASE)).mqtt
    assert mqtt.redeliver_window == 120.0
    assert mqtt.protocol == "auto"


@pytest.mark.parametrize(("given", "expected"), [(0, 0.0), (600, 600.0), (2.5, 2.5)])
def test_mqtt_redeliver_window_accepts_seconds(tmp_path: Path, given: float, expected: float) -> None:
    doc = with_value(AGENT_BASE, ("mqtt", "redeliver_window"), given)
    assert agent_config.load(write(tmp_path, doc)).mqtt.redeliver_window == expected


@pytest.mark.parametrize("given", [-1, math.inf, math.nan, "soon"])
def test_mqtt_redeliver_window_rejects_negative_and_non_finite(tmp_path: Path, given: Any) -> None:
    doc = with_value(AGENT_BASE, ("mqtt", "redeliver_window"), given)
    [(key, message)] = problems(agent_config.load, write(tmp_path, doc))
    assert key == "mqtt.redeliver_window"
    assert "unknown key" not in message


@pytest.mark.parametrize(("given", "expected"), [("auto", "auto"), ("5", "5"), (5, "5"), ("3.1.1", "3.1.1")])
def test_mqtt_protocol_accepts_auto_5_and_311(tmp_path: Path, given: Any, expected: str) -> None:
    doc = with_value(AGENT_BASE, ("mqtt", "protocol"), given)
    assert agent_config.load(write(tmp_path, doc)).mqtt.protocol == expected


def test_mqtt_protocol_written_bare_in_yaml_is_accepted(tmp_path: Path) -> None:
    text = yaml.safe_dump(AGENT_BASE).replace("url: mqtt://127.0.0.1:1883",
                                              "url: mqtt://127.0.0.1:1883\n  protocol: 5")
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    assert agent_config.load(path).mqtt.protocol == "5"


@pytest.mark.parametrize("given", ["4", 3, "3.1", "v5", True])
def test_mqtt_protocol_rejects_other_versions(tmp_path: Path, given: Any) -> None:
    doc = with_value(AGENT_BASE, ("mqtt", "protocol"), given)
    [(key, message)] = problems(agent_config.load, write(tmp_path, doc))
    assert key == "mqtt.protocol"
    assert message == "Input should be 'auto', '5' or '3.1.1'"

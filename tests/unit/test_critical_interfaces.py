"""critical_interfaces: the pure matcher, config validation and defaults, and the poller's
hatang_interface_critical family."""

from __future__ import annotations

import textwrap
import unicodedata
from pathlib import Path

import pytest

from agent import config as agent_config
from agent.critical import (
    CRITICAL_METRIC,
    DEFAULT_PATTERNS,
    compile_patterns,
    critical_family,
    is_critical,
    pattern_problem,
)
from agent.device_setup import make_poller
from agent.poller import DevicePoller
from agent.profiles import load_profiles, parse_oid
from agent.snmp.values import OID, SnmpValue
from hatang.configfile import ConfigError
from tests.support.sequential_walks import SequentialWalks
from wire.messages import Family, Sample

IF_NAME = parse_oid("1.3.6.1.2.1.31.1.1.1.1")
IF_ALIAS = parse_oid("1.3.6.1.2.1.31.1.1.1.18")
IF_DESCR = parse_oid("1.3.6.1.2.1.2.2.1.2")
IF_TYPE = parse_oid("1.3.6.1.2.1.2.2.1.3")
IF_ADMIN = parse_oid("1.3.6.1.2.1.2.2.1.7")
IF_OPER = parse_oid("1.3.6.1.2.1.2.2.1.8")
IF_HC_IN = parse_oid("1.3.6.1.2.1.31.1.1.1.6")


def labels(index: str, name: str, alias: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"if_index": index, "if_name": name, "if_alias": alias, "if_descr": name,
                         "if_type": "6"}.items()))


def interface_families(rows: list[tuple[str, str, str]]) -> list[Family]:
    oper = Family("hatang_interface_oper_status", "gauge", "", tuple(Sample(labels(*r), 1) for r in rows))
    admin = Family("hatang_interface_admin_status", "gauge", "", tuple(Sample(labels(*r), 1) for r in rows))
    uptime = Family("hatang_device_uptime_seconds", "gauge", "", (Sample((), 5),))
    return [uptime, oper, admin]


# --- the pure matcher ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "alias", "expected"), [
    ("Gi0/1", "Uplink to VNPT", True),
    ("WAN1", "", True),  # the name is matched too
    ("ge-0/0/1", "Đường truyền CHUYÊN DÙNG", True),  # case-insensitive, Vietnamese
    ("ge-0/0/2", "duong truyen chuyen dung", True),  # without diacritics
    ("ge-0/0/3", "Mạng truyền số liệu (TSLCD)", True),
    ("eth1", "Internet FPT", True),
    ("Gi0/2", "Phòng một cửa", False),
    ("lo", "", False),
])
def test_default_patterns(name: str, alias: str, expected: bool) -> None:
    assert is_critical(compile_patterns(DEFAULT_PATTERNS), name, alias) is expected


def test_decomposed_vietnamese_alias_matches_a_composed_pattern() -> None:
    alias = unicodedata.normalize("NFD", "Kênh chuyên dùng")
    assert alias != unicodedata.normalize("NFC", alias)
    assert is_critical(compile_patterns(["chuyên dùng"]), "Gi0/1", alias)


def test_critical_family_has_exactly_the_interface_labels_once_per_matching_interface() -> None:
    families = interface_families([("1", "Gi0/1", "uplink core"), ("2", "Gi0/2", "phòng họp"),
                                   ("3", "Gi0/3", "WAN Viettel")])
    family = critical_family(families, compile_patterns(DEFAULT_PATTERNS))
    assert family is not None
    assert family.name == CRITICAL_METRIC and family.type == "gauge"
    assert family.samples == (Sample(labels("1", "Gi0/1", "uplink core"), 1),
                              Sample(labels("3", "Gi0/3", "WAN Viettel"), 1))


def test_verdicts_kept_between_polls_are_reused_and_new_interfaces_matched() -> None:
    patterns = compile_patterns(DEFAULT_PATTERNS)
    known: dict[tuple[tuple[str, str], ...], bool] = {}
    first = interface_families([("1", "Gi0/1", "uplink core"), ("2", "Gi0/2", "phòng họp")])
    assert critical_family(first, patterns, known) is not None
    assert known == {labels("1", "Gi0/1", "uplink core"): True, labels("2", "Gi0/2", "phòng họp"): False}
    # a kept verdict is used as it is (the pattern is not searched again) ...
    known[labels("2", "Gi0/2", "phòng họp")] = True
    family = critical_family(first, patterns, known)
    assert family is not None and len(family.samples) == 2
    # ... and an interface seen for the first time is matched
    second = interface_families([("3", "Gi0/3", "WAN Viettel")])
    family = critical_family(second, patterns, known)
    assert family is not None and family.samples == (Sample(labels("3", "Gi0/3", "WAN Viettel"), 1),)
    assert labels("3", "Gi0/3", "WAN Viettel") in known


def test_kept_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.critical.MAX_REMEMBERED", 2)
    known = {labels(str(i), f"x{i}", ""): False for i in range(3)}
    critical_family(interface_families([("9", "uplink", "")]), compile_patterns(DEFAULT_PATTERNS), known)
    assert known == {labels("9", "uplink", ""): True}


def test_no_family_without_patterns_matches_or_interfaces() -> None:
    families = interface_families([("1", "Gi0/1", "phòng họp")])
    assert critical_family(families, compile_patterns(DEFAULT_PATTERNS)) is None
    assert critical_family(interface_families([("1", "uplink", "")]), ()) is None
    # only hatang_interface_* rows with an if_index count
    other = [Family("hatang_host_storage_used_bytes", "gauge", "", (Sample((("mount", "/uplink"),), 1),))]
    assert critical_family(other, compile_patterns([".*"])) is None


def test_pattern_problem_names_the_fix() -> None:
    assert pattern_problem("uplink|wan") is None
    problem = pattern_problem("Gi0/1 (uplink")
    assert problem is not None
    assert "invalid regular expression 'Gi0/1 (uplink'" in problem and "backslash" in problem


# --- config ----------------------------------------------------------------------------------------

BASE = """\
agent_id: xa-dai-dinh
site: {province: "Phú Thọ", commune: "Đại Đình"}
mqtt: {url: "mqtt://127.0.0.1:1883"}
buffer: {path: buffer}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(BASE + textwrap.dedent(text), encoding="utf-8")
    return path


def test_invalid_pattern_is_a_config_error_naming_file_key_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        devices:
          - name: sw
            address: 192.0.2.1
            critical_interfaces: ["uplink", "Gi0/1 (wan"]
        """)
    with pytest.raises(ConfigError) as caught:
        agent_config.parse(path)
    text = str(caught.value)
    assert str(path) in text
    assert "devices[0].critical_interfaces[1]" in text
    assert "invalid regular expression" in text and "backslash" in text


def test_invalid_agent_level_pattern_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'critical_interfaces: ["[wan"]\n')
    with pytest.raises(ConfigError) as caught:
        agent_config.parse(path)
    assert "critical_interfaces[0]" in str(caught.value)


def test_device_list_overrides_the_agent_default_which_overrides_the_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        critical_interfaces: ["^ge-0/0/0$"]
        devices:
          - {name: a, address: 192.0.2.1}
          - {name: b, address: 192.0.2.2, critical_interfaces: ["vnpt"]}
          - {name: c, address: 192.0.2.3, critical_interfaces: []}
        """)
    config = agent_config.parse(path)
    assert [d.critical_interfaces for d in config.devices] == [["^ge-0/0/0$"], ["vnpt"], []]
    bare = agent_config.parse(write(tmp_path, "devices: [{name: a, address: 192.0.2.1}]\n"))
    assert bare.devices[0].critical_interfaces is None  # make_poller then uses DEFAULT_PATTERNS


# --- the poller publishes it -----------------------------------------------------------------------


def col(root: OID, rows: dict[int, SnmpValue]) -> list[tuple[OID, SnmpValue]]:
    return [((*root, index), value) for index, value in rows.items()]


def text(value: str) -> SnmpValue:
    return SnmpValue("octets", value.encode())


class Reader(SequentialWalks):
    async def get(self, oids: object) -> list[tuple[OID, SnmpValue]]:
        return []

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        walks = {
            IF_NAME: col(IF_NAME, {1: text("Gi0/1"), 2: text("Gi0/2")}),
            IF_ALIAS: col(IF_ALIAS, {1: text("Đường lên chuyên dùng"), 2: text("Phòng văn thư")}),
            IF_DESCR: col(IF_DESCR, {1: text("GigabitEthernet0/1"), 2: text("GigabitEthernet0/2")}),
            IF_TYPE: col(IF_TYPE, {1: SnmpValue("integer", 6), 2: SnmpValue("integer", 6)}),
            IF_ADMIN: col(IF_ADMIN, {1: SnmpValue("integer", 1), 2: SnmpValue("integer", 1)}),
            IF_OPER: col(IF_OPER, {1: SnmpValue("integer", 2), 2: SnmpValue("integer", 1)}),
            IF_HC_IN: col(IF_HC_IN, {1: SnmpValue("counter64", 10), 2: SnmpValue("counter64", 20)}),
        }
        return walks.get(root, [])


async def test_poller_publishes_the_critical_interfaces_with_the_interface_labels(tmp_path: Path) -> None:
    profiles = load_profiles()
    config = agent_config.parse(write(tmp_path, "devices: [{name: sw, address: 192.0.2.1, "
                                                "profiles: [interfaces]}]\n"))
    outcome = await make_poller(config.devices[0], Reader(), profiles).poll()
    by_name = {f.name: f for f in outcome.families}
    critical = by_name[CRITICAL_METRIC]
    oper = {s.labels: s.value for s in by_name["hatang_interface_oper_status"].samples}
    assert [s.value for s in critical.samples] == [1]
    assert critical.samples[0].labels in oper  # exactly the labels of the interface's other series
    assert dict(critical.samples[0].labels)["if_index"] == "1"
    assert CRITICAL_METRIC in {f.name for f in outcome.published}


async def test_poller_without_patterns_publishes_no_critical_family() -> None:
    poller = DevicePoller("sw", Reader(), [load_profiles()["interfaces"]], deadline=30.0)
    outcome = await poller.poll()
    assert CRITICAL_METRIC not in {f.name for f in outcome.families}

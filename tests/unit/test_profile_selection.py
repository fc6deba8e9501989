"""``profiles: auto``: the pure rule (choose, probe_oids), identify() over a fake reader, the poller's
identification at the first poll and after a sysObjectID change, the ``match`` format's errors, the
config key, the report of ``hatang poll``, the birth's ``profiles`` and SnmpTarget.get_next."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import config as agent_config
from agent.poll_once import format_report
from agent.poller import DevicePoller, PollOutcome
from agent.profile_catalog import show_profile
from agent.profile_selection import (
    SYS_DESCR,
    SYS_OBJECT_ID,
    AutoProfiles,
    DeviceIdentity,
    choose,
    identify,
    probe_oids,
)
from agent.profiles import Profile, load_profiles, parse_oid
from agent.snmp.errors import SnmpNotIncreasing, SnmpTimeout, SnmpWrongOid
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue
from hatang import configfile
from hatang.configfile import ConfigError, validate
from tests.support.sequential_walks import SequentialWalks
from tests.support.waiting import async_wait_until
from tests.unit.test_snmp_target import END, FakeSession, Resp
from wire.codec import DecodeError, decode_status, encode_status
from wire.messages import AgentStatus

CISCO = "1.3.6.1.4.1.9.1.617"
NET_SNMP = "1.3.6.1.4.1.8072.3.2.10"
IF_TABLE, HR_STORAGE, UPS_BATTERY = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.25.2.3.1", "1.3.6.1.2.1.33.1.2"
VENDOR_TABLE = "1.3.6.1.4.1.9.9.109.1.1.1"
UPTIME_OID = "1.3.6.1.2.1.1.3.0"


def oid(text: str) -> OID:
    return parse_oid(text)


def profile(name: str, **doc: Any) -> Profile:
    doc.setdefault("scalars", [{"name": f"hatang_test_{name.replace('-', '_')}", "type": "gauge",
                                "oid": "1.3.6.1.4.1.99999.1.0", "help": "test"}])
    return validate(Profile, {"name": name, **doc}, Path(f"{name}.yaml"))


def catalogue(*profiles: Profile) -> dict[str, Profile]:
    return {p.name: p for p in profiles}


STANDARD = catalogue(
    profile("system", match={}),
    profile("interfaces", match={"answers": [IF_TABLE]}),
    profile("host", match={"answers": [HR_STORAGE]}),
    profile("ups", match={"answers": [UPS_BATTERY]}),
    profile("cisco", match={"sys_object_id": ["1.3.6.1.4.1.9"], "answers": [VENDOR_TABLE]}),
    profile("linux", match={"sys_descr": "(?i)^linux "}),
    profile("by-name-only"),
)


# --- choose ------------------------------------------------------------------------------------------


def test_a_profile_with_an_empty_match_is_chosen_for_every_device() -> None:
    assert choose(STANDARD, DeviceIdentity(None, None), set()) == ["system"]


def test_answers_decide_for_the_standard_profiles() -> None:
    identity = DeviceIdentity("1.3.6.1.4.1.311.1.1.3.1.2", "Windows")
    answered = {oid(IF_TABLE), oid(HR_STORAGE)}
    assert choose(STANDARD, identity, answered) == ["host", "interfaces", "system"]
    # a UPS card that says it is Linux (net-snmp): the UPS-MIB it answers gives it ups all the same
    assert choose(STANDARD, DeviceIdentity(NET_SNMP, "Linux GSE200M"), {oid(UPS_BATTERY)}) == [
        "linux", "system", "ups"]


def test_sys_object_id_prefixes_match_whole_arcs() -> None:
    answered = {oid(VENDOR_TABLE)}
    assert "cisco" in choose(STANDARD, DeviceIdentity(CISCO, None), answered)
    assert "cisco" in choose(STANDARD, DeviceIdentity("1.3.6.1.4.1.9", None), answered)  # the prefix itself
    assert "cisco" not in choose(STANDARD, DeviceIdentity("1.3.6.1.4.1.99.1", None), answered)
    assert "cisco" not in choose(STANDARD, DeviceIdentity("1.3.6.1.4.1", None), answered)
    assert "cisco" not in choose(STANDARD, DeviceIdentity(None, "Cisco IOS"), answered)


def test_identity_alone_is_not_enough_when_answers_are_missing() -> None:
    assert "cisco" not in choose(STANDARD, DeviceIdentity(CISCO, None), set())


def test_sys_descr_is_the_fallback_identity() -> None:
    either = catalogue(profile("vendor", match={"sys_object_id": ["1.3.6.1.4.1.2011"],
                                                "sys_descr": "(?i)huawei versatile routing"}))
    assert choose(either, DeviceIdentity("1.3.6.1.4.1.2011.2.23.276", "S5720"), set()) == ["vendor"]
    generic = DeviceIdentity(NET_SNMP, "Huawei Versatile Routing Platform Software")
    assert choose(either, generic, set()) == ["vendor"]
    no_object_id = DeviceIdentity(None, "huawei versatile routing")
    assert choose(either, no_object_id, set()) == ["vendor"]
    assert choose(either, DeviceIdentity(NET_SNMP, "Linux box"), set()) == []
    assert choose(STANDARD, DeviceIdentity(NET_SNMP, "Linux gw 6.1.0"), set()) == ["linux", "system"]
    assert choose(STANDARD, DeviceIdentity(NET_SNMP, "Not linux "), set()) == ["system"]  # searched, anchored


def test_every_answers_subtree_is_needed() -> None:
    both = catalogue(profile("both", match={"answers": [IF_TABLE, HR_STORAGE]}))
    assert choose(both, DeviceIdentity(None, None), {oid(IF_TABLE)}) == []
    assert choose(both, DeviceIdentity(None, None), {oid(IF_TABLE), oid(HR_STORAGE)}) == ["both"]


def test_a_profile_without_match_is_never_chosen() -> None:
    assert "by-name-only" not in choose(STANDARD, DeviceIdentity(CISCO, "Linux x"), set(map(oid, (
        IF_TABLE, HR_STORAGE, UPS_BATTERY, VENDOR_TABLE))))


def test_a_chosen_profile_replaces_the_profiles_it_extends_transitively() -> None:
    profiles = catalogue(
        profile("system", match={}),
        profile("sensors", match={"answers": [HR_STORAGE]}),
        profile("vendor-base", extends=["sensors"], match={"sys_object_id": ["1.3.6.1.4.1.2011"]}),
        profile("vendor-model", extends=["vendor-base"], match={"sys_object_id": ["1.3.6.1.4.1.2011.2.23"]}),
    )
    answered = {oid(HR_STORAGE)}
    assert choose(profiles, DeviceIdentity("1.3.6.1.4.1.2011.2.23.1", None), answered) == [
        "system", "vendor-model"]
    assert choose(profiles, DeviceIdentity("1.3.6.1.4.1.2011.5", None), answered) == ["system", "vendor-base"]
    assert choose(profiles, DeviceIdentity("1.3.6.1.4.1.9", None), answered) == ["sensors", "system"]


def test_probe_oids_are_the_answers_of_profiles_with_match_once_each_in_order() -> None:
    profiles = {**STANDARD, "again": profile("again", match={"answers": [IF_TABLE]}),
                "unmatched": profile("unmatched")}
    assert probe_oids(profiles) == sorted(map(oid, (IF_TABLE, HR_STORAGE, UPS_BATTERY, VENDOR_TABLE)))


NEW_TABLE, OLD_TABLE = "1.3.6.1.4.1.25506.2.6.1.1.1.1", "1.3.6.1.4.1.2011.10.2.6.1.1.1.1"  # H3C's two tables
H3C = catalogue(
    profile("system", match={}),
    profile("h3c", match={"sys_object_id": ["1.3.6.1.4.1.25506.1"], "answers_any": [NEW_TABLE, OLD_TABLE]}),
    profile("both", match={"answers": [IF_TABLE], "answers_any": [NEW_TABLE, OLD_TABLE]}),
)


def test_answers_any_needs_one_of_its_subtrees() -> None:
    comware = DeviceIdentity("1.3.6.1.4.1.25506.1.578", "H3C Comware")
    assert choose(H3C, comware, {oid(NEW_TABLE)}) == ["h3c", "system"]
    assert choose(H3C, comware, {oid(OLD_TABLE)}) == ["h3c", "system"]
    assert choose(H3C, comware, {oid(NEW_TABLE), oid(OLD_TABLE)}) == ["h3c", "system"]
    assert choose(H3C, comware, {oid(IF_TABLE)}) == ["system"]  # neither table: no empty vendor profile
    assert choose(H3C, DeviceIdentity(CISCO, None), {oid(NEW_TABLE)}) == ["system"]  # identity still needed


def test_answers_and_answers_any_hold_together() -> None:
    anyone = DeviceIdentity(None, None)
    assert choose(H3C, anyone, {oid(IF_TABLE), oid(OLD_TABLE)}) == ["both", "system"]
    assert choose(H3C, anyone, {oid(IF_TABLE)}) == ["system"]
    assert choose(H3C, anyone, {oid(OLD_TABLE)}) == ["system"]


def test_probe_oids_include_the_answers_any_subtrees() -> None:
    assert probe_oids(H3C) == sorted(map(oid, (IF_TABLE, NEW_TABLE, OLD_TABLE)))


async def test_identify_probes_the_alternatives_of_candidates_only() -> None:
    rows = {"1.3.6.1.2.1.1.2.0": SnmpValue("oid", "1.3.6.1.4.1.25506.1.578"),
            f"{OLD_TABLE}.6.1": SnmpValue("integer", 12)}  # answers the older table only
    device = Device(rows)
    identity, answered = await identify(device, H3C)
    assert device.nexts == sorted(map(oid, (IF_TABLE, NEW_TABLE, OLD_TABLE)))
    assert answered == {oid(OLD_TABLE)}
    assert choose(H3C, identity, answered) == ["h3c", "system"]
    linux = Device(linux_rows())  # not an H3C: only `both`'s subtrees (no sysObjectID test) are probed
    await identify(linux, catalogue(H3C["h3c"]))
    assert linux.nexts == []


def test_hatang_profiles_name_shows_answers_any(tmp_path: Path) -> None:
    write_profile(tmp_path / "user", {"name": "vendor", "match": {
        "sys_object_id": ["1.3.6.1.4.1.25506.1"], "answers": [IF_TABLE],
        "answers_any": [NEW_TABLE, OLD_TABLE]}})
    shown = " ".join(show_profile("vendor", tmp_path / "user").split())
    assert (f"auto: chosen for sysObjectID under 1.3.6.1.4.1.25506.1 that answers {IF_TABLE} and one of "
            f"{NEW_TABLE}, {OLD_TABLE}") in shown


# --- the match format ---------------------------------------------------------------------------------


def write_profile(directory: Path, doc: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{doc['name']}.yaml"
    doc.setdefault("scalars", [{"name": "hatang_test_value", "type": "gauge", "oid": "1.3.6.1.4.1.99999.1.0",
                                "help": "test"}])
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("match", "key", "words"), [
    ({"sys_object_id": ["1.3.6.1.4.1.9x"]}, "match.sys_object_id", "not a numeric OID"),
    ({"sys_object_id": []}, "match.sys_object_id", "at least one sysObjectID prefix"),
    ({"sys_descr": "(?i)huawei ("}, "match.sys_descr", "not a valid regular expression"),
    ({"answers": ["ifTable"]}, "match.answers", "not a numeric OID"),
    ({"answers_any": ["1.3.6.1.4.1.25506.2.6.1.1.1.1", "hh3cEntityExtStateEntry"]}, "match.answers_any",
     "not a numeric OID"),
    ({"sysobjectid": ["1.3.6.1.4.1.9"]}, "match.sysobjectid", "unknown key"),
    ("cisco", "match", ""),
])
def test_match_errors_name_the_file_and_key(tmp_path: Path, match: Any, key: str, words: str) -> None:
    path = write_profile(tmp_path / "user", {"name": "vendor", "match": match})
    with pytest.raises(ConfigError) as caught:
        load_profiles(tmp_path / "user")
    assert caught.value.path == str(path)
    assert caught.value.problems[0][0].startswith(key), caught.value.problems
    assert words in str(caught.value)


def test_a_single_prefix_may_be_written_without_a_list(tmp_path: Path) -> None:
    write_profile(tmp_path / "user", {"name": "vendor", "match": {"sys_object_id": "1.3.6.1.4.1.9",
                                                                  "answers": ".1.3.6.1.4.1.9.9"}})
    match = load_profiles(tmp_path / "user")["vendor"].match
    assert match is not None and match.prefixes == [oid("1.3.6.1.4.1.9")]
    assert match.answer_oids == [oid("1.3.6.1.4.1.9.9")]


def test_auto_is_not_a_profile_name(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "user", {"name": "auto"})
    with pytest.raises(ConfigError) as caught:
        load_profiles(tmp_path / "user")
    assert caught.value.path == str(path) and "reserved" in str(caught.value)


def test_the_builtin_profiles_match_as_documented() -> None:
    builtin = load_profiles()
    answers = {name: builtin[name].match for name in ("system", "interfaces", "host", "ups", "sensors")}
    assert {name: m.answers if m else None for name, m in answers.items()} == {
        "system": [], "interfaces": [IF_TABLE], "host": [HR_STORAGE], "ups": [UPS_BATTERY],
        "sensors": ["1.3.6.1.2.1.99.1.1.1"]}
    assert all(m is not None and m.sys_object_id is None and m.sys_descr is None for m in answers.values())


def test_hatang_profiles_name_shows_match_and_extends(tmp_path: Path) -> None:
    assert "auto: chosen for every device\n" in show_profile("system")
    assert f"auto: chosen for every device that answers {IF_TABLE}\n" in show_profile("interfaces")
    write_profile(tmp_path / "user", {"name": "vendor", "extends": ["ups"], "match": {
        "sys_object_id": ["1.3.6.1.4.1.2011"], "sys_descr": "^Linux GSE", "answers": [UPS_BATTERY]}})
    write_profile(tmp_path / "user", {"name": "plain"})
    shown = " ".join(show_profile("vendor", tmp_path / "user").split())  # lines are wrapped at 100
    assert "extends: ups (their metrics are shown below;" in shown
    assert (f"auto: chosen for sysObjectID under 1.3.6.1.4.1.2011 or sysDescr matching '^Linux GSE' that "
            f"answers {UPS_BATTERY}") in shown
    assert "hatang_ups_battery_status" in shown  # the base's metrics are part of the merged profile
    assert "auto: never chosen automatically" in show_profile("plain", tmp_path / "user")


# --- identify over a reader -------------------------------------------------------------------------


def text(value: str) -> SnmpValue:
    return SnmpValue("octets", value.encode())


class Device(SequentialWalks):
    """An SnmpReader over sorted rows; counts requests; ``silent`` raises a timeout for every request."""

    def __init__(self, rows: Mapping[str, SnmpValue], *, silent: bool = False,
                 broken_next: Sequence[OID] = ()) -> None:
        self.rows = dict(sorted((oid(k), v) for k, v in rows.items()))
        self.silent = silent
        self.broken_next = set(broken_next)
        self.gets: list[tuple[OID, ...]] = []
        self.nexts: list[OID] = []
        self.walks: list[OID] = []

    def _check(self) -> None:
        if self.silent:
            raise SnmpTimeout("no answer from 192.0.2.9:161 within 1 s x 2 tries: device down")

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        self._check()
        self.gets.append(tuple(oids))
        return [(o, self.rows.get(o, SnmpValue("no_such_object", None))) for o in oids]

    async def get_next(self, start: OID) -> tuple[OID, SnmpValue] | None:
        self._check()
        self.nexts.append(start)
        if start in self.broken_next:
            raise SnmpNotIncreasing("OID not increasing")
        return next(((o, v) for o, v in self.rows.items() if o > start), None)

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        self._check()
        self.walks.append(root)
        return [(o, v) for o, v in self.rows.items() if o[:len(root)] == root]


def linux_rows(sys_object_id: str = NET_SNMP, *, storage: bool = True) -> dict[str, SnmpValue]:
    rows = {
        "1.3.6.1.2.1.1.1.0": text("Linux gw 6.1.0 #1 SMP x86_64"),
        "1.3.6.1.2.1.1.2.0": SnmpValue("oid", sys_object_id),
        UPTIME_OID: SnmpValue("timeticks", 123456),
        f"{IF_TABLE}.1.1": SnmpValue("integer", 1),
        "1.3.6.1.2.1.2.2.1.2.1": text("eth0"),  # beside ifIndex: an ifDescr
    }
    rows["1.3.6.1.2.1.2.2.1.8.1"] = SnmpValue("integer", 1)  # ifOperStatus up
    if storage:
        rows[f"{HR_STORAGE}.1.1"] = SnmpValue("integer", 1)
        rows["1.3.6.1.2.1.25.1.6.0"] = SnmpValue("gauge32", 97)  # hrSystemProcesses
    return rows


async def test_identify_asks_identity_then_one_getnext_per_candidate_subtree() -> None:
    device = Device({**linux_rows(), "1.3.6.1.2.1.33.1.1.1.0": text("ACME")})  # upsIdent, no battery
    identity, answered = await identify(device, STANDARD)
    assert identity == DeviceIdentity(NET_SNMP, "Linux gw 6.1.0 #1 SMP x86_64")
    assert device.gets == [(SYS_OBJECT_ID, SYS_DESCR)]
    # cisco's subtree is not probed: its sysObjectID prefix does not hold
    assert device.nexts == sorted(map(oid, (IF_TABLE, HR_STORAGE, UPS_BATTERY)))
    assert answered == {oid(IF_TABLE), oid(HR_STORAGE)}  # the GETNEXT after upsBattery lies outside it
    assert choose(STANDARD, identity, answered) == ["host", "interfaces", "linux", "system"]


async def test_identify_of_a_device_without_identity_objects() -> None:
    identity, answered = await identify(Device({f"{IF_TABLE}.1.1": SnmpValue("integer", 1)}), STANDARD)
    assert identity == DeviceIdentity(None, None)
    assert choose(STANDARD, identity, answered) == ["interfaces", "system"]


@pytest.mark.parametrize("value", [SnmpValue("octets", b"1.3.6.1.4.1.9"), SnmpValue("oid", "1.3.x.4"),
                                   SnmpValue("no_such_object", None)])
async def test_a_sys_object_id_that_is_not_an_oid_is_no_identity(value: SnmpValue) -> None:
    identity, _ = await identify(Device({"1.3.6.1.2.1.1.2.0": value}), STANDARD)
    assert identity == DeviceIdentity(None, None)


async def test_identify_raises_for_a_silent_device() -> None:
    with pytest.raises(SnmpTimeout):
        await identify(Device(linux_rows(), silent=True), STANDARD)


async def test_a_broken_answer_to_a_probe_leaves_only_that_subtree_unanswered() -> None:
    device = Device(linux_rows(), broken_next=[oid(HR_STORAGE)])
    _, answered = await identify(device, STANDARD)
    assert answered == {oid(IF_TABLE)}


# --- the poller with profiles: auto -----------------------------------------------------------------


def auto_poller(device: Device, profiles: Mapping[str, Profile] | None = None) -> DevicePoller:
    selection = AutoProfiles("gw", profiles if profiles is not None else load_profiles())
    return DevicePoller("gw", device, [], deadline=30.0, timeout_errors=(SnmpTimeout,),
                        snmp_errors=(SnmpNotIncreasing, SnmpWrongOid), selection=selection)


async def test_the_first_poll_identifies_then_polls_the_chosen_profiles_system_first(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.profiles")
    builtin = load_profiles()
    standard = {name: builtin[name] for name in ("system", "interfaces", "host", "ups", "sensors")}
    device = Device(linux_rows())
    poller = auto_poller(device, standard)
    outcome = await poller.poll()
    assert outcome.up and outcome.profiles == ("system", "host", "interfaces")  # uptime block first
    names = {f.name for f in outcome.families}
    assert {"hatang_device_uptime_seconds", "hatang_interface_oper_status", "hatang_host_processes"} <= names
    assert outcome.errors == ()
    again = await poller.poll()
    assert again.profiles == outcome.profiles
    assert len(device.gets[0]) == 2 and device.gets.count((SYS_OBJECT_ID, SYS_DESCR)) == 1  # identified once
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"device gw (sysObjectID {NET_SNMP}): profiles system, host, interfaces, chosen "
                      "automatically"]


async def test_a_silent_device_is_down_like_today_and_identified_at_its_next_poll() -> None:
    device = Device(linux_rows(), silent=True)
    poller = auto_poller(device)
    first = await poller.poll()
    assert not first.up and first.profiles == () and first.families == ()
    assert [(e.profile, e.reason) for e in first.errors] == [("*", "timeout")]
    assert "device down" in first.errors[0].error
    assert dict(first.problems)["timeout"] == 1
    device.silent = False
    second = await poller.poll()
    assert second.up and "system" in second.profiles
    assert poller.selection is not None and poller.selection.identity is not None


async def test_a_changed_sys_object_id_makes_the_next_poll_choose_again(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.profiles")
    builtin = load_profiles()
    standard = {name: builtin[name] for name in ("system", "interfaces", "host", "ups", "sensors")}
    device = Device(linux_rows())
    poller = auto_poller(device, standard)
    assert (await poller.poll()).profiles == ("system", "host", "interfaces")
    # the box at this address is replaced by a UPS card that runs net-snmp on another sysObjectID
    device.rows = Device({**linux_rows("1.3.6.1.4.1.2011.2.999", storage=False),
                          "1.3.6.1.2.1.33.1.2.1.0": SnmpValue("integer", 2)}).rows
    seen = await poller.poll()  # polls the old set, sees the new sysObjectID
    assert seen.profiles == ("system", "host", "interfaces")
    chosen = await poller.poll()
    assert chosen.profiles == ("system", "interfaces", "ups")
    assert [f.samples[0].value for f in chosen.families if f.name == "hatang_ups_battery_status"] == [2]
    assert chosen.errors == ()
    assert device.gets.count((SYS_OBJECT_ID, SYS_DESCR)) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1] == ("device gw (sysObjectID 1.3.6.1.4.1.2011.2.999): profiles system, interfaces, ups, "
                         "chosen automatically")
    assert any("now says sysObjectID 1.3.6.1.4.1.2011.2.999" in line for line in lines)


async def test_a_listed_set_is_polled_as_before_without_identification() -> None:
    device = Device(linux_rows())
    builtin = load_profiles()
    poller = DevicePoller("gw", device, [builtin["system"], builtin["interfaces"]], deadline=30.0)
    outcome = await poller.poll()
    assert outcome.profiles == ("system", "interfaces") and poller.selection is None
    assert device.nexts == [] and (SYS_OBJECT_ID, SYS_DESCR) not in device.gets


# --- config, hatang poll, the birth -------------------------------------------------------------------


def agent_doc(profiles: Any = None) -> dict[str, Any]:
    device: dict[str, Any] = {"name": "sw", "address": "192.0.2.1"}
    if profiles is not None:
        device["profiles"] = profiles
    return {"agent_id": "xa-test", "site": {"province": "Hà Nội"}, "mqtt": {"url": "mqtt://127.0.0.1"},
            "buffer": {"path": "buffer"}, "devices": [device]}


def parse_doc(tmp_path: Path, doc: dict[str, Any]) -> agent_config.AgentConfig:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return agent_config.parse(path)


@pytest.mark.parametrize("profiles", [None, "auto", ["auto"]])
def test_profiles_auto_is_the_default_and_may_be_written(tmp_path: Path, profiles: Any) -> None:
    [device] = parse_doc(tmp_path, agent_doc(profiles)).devices
    assert device.profiles == ["auto"] and device.auto_profiles


@pytest.mark.parametrize(("profiles", "words"), [
    (["auto", "ups"], "cannot be combined with names"),
    ("interfaces", "write a list of profile names"),
])
def test_auto_is_alone_or_the_list_is_exact(tmp_path: Path, profiles: Any, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_doc(tmp_path, agent_doc(profiles))
    assert caught.value.problems[0][0] == "devices[0].profiles" and words in str(caught.value)


def test_a_list_is_exactly_those_profiles(tmp_path: Path) -> None:
    [device] = parse_doc(tmp_path, agent_doc(["system", "ups"])).devices
    assert device.profiles == ["system", "ups"] and not device.auto_profiles


def test_hatang_poll_shows_the_chosen_profiles(tmp_path: Path) -> None:
    [device] = parse_doc(tmp_path, agent_doc()).devices
    chosen = PollOutcome(1.0, True, 0.2, (), (), (), ("system", "host", "interfaces"))
    report = format_report(device, chosen, identity=DeviceIdentity(NET_SNMP, "Linux"))
    assert report.splitlines()[0] == (f"device sw at 192.0.2.1:161, SNMP v2c, profiles: auto: system, host, "
                                      f"interfaces (chosen for sysObjectID {NET_SNMP})")
    silent = PollOutcome(1.0, False, 2.0, (), (), (), ())
    assert format_report(device, silent).splitlines()[0].endswith(
        "profiles: auto (none chosen yet: the device did not answer)")
    [listed] = parse_doc(tmp_path, agent_doc(["system", "interfaces"])).devices
    assert format_report(listed, chosen).splitlines()[0].endswith("profiles: system, interfaces")


def status(profiles: tuple[tuple[str, tuple[str, ...]], ...]) -> AgentStatus:
    return AgentStatus(agent="xa-test", boot_id="b" * 32, online=True, ts=1795550790.0, devices=("sw", "ups"),
                       profiles=profiles)


def test_the_birth_carries_the_profiles_of_each_device_as_an_optional_field() -> None:
    with_profiles = status((("sw", ("system", "interfaces")), ("ups", ("system", "ups"))))
    payload = encode_status(with_profiles)
    assert b'"profiles":{"sw":["system","interfaces"],"ups":["system","ups"]}' in payload
    assert decode_status(payload) == with_profiles
    assert b'"profiles"' not in encode_status(status(()))  # left out when empty, as older agents sent


@pytest.mark.parametrize("bad", ['[]', '{"sw": "system"}', '{"sw": [1]}', '{"no such/device": []}'])
def test_a_malformed_profiles_field_is_rejected(bad: str) -> None:
    payload = encode_status(status(())).replace(b'"buffer":{}', b'"buffer":{},"profiles":' + bad.encode())
    with pytest.raises(DecodeError) as caught:
        decode_status(payload)
    assert caught.value.reason == "schema"


# --- SnmpTarget.get_next ----------------------------------------------------------------------------

ROWS = [((1, 3, 6, 1, 2, 1, 1, 1, 0), text("box")),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 1), SnmpValue("integer", 1))]


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_get_next_is_one_getnext(version: str) -> None:
    session = FakeSession(ROWS, version=version)
    target = SnmpTarget(session)
    assert await target.get_next((1, 3, 6, 1, 2, 1, 2)) == ROWS[1]
    assert await target.get_next(ROWS[1][0]) is None  # end of the MIB view (v1: noSuchName)
    assert [r.kind for r in session.requests] == ["next", "next"]


async def test_get_next_judges_the_answer() -> None:
    asked = (1, 3, 6, 1, 2, 1, 2)
    echo = FakeSession(script=[Resp([(asked, SnmpValue("integer", 5))])])
    with pytest.raises(SnmpNotIncreasing):
        await SnmpTarget(echo).get_next(asked)
    two = FakeSession(script=[Resp(list(ROWS))])
    with pytest.raises(SnmpWrongOid):
        await SnmpTarget(two).get_next(asked)
    ended = FakeSession(script=[Resp([(asked, END)]), Resp([(asked, SnmpValue("no_such_object", None))])])
    target = SnmpTarget(ended)
    assert await target.get_next(asked) is None and await target.get_next(asked) is None


# --- the agent: birth message, published again when a choice changes -----------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Any:
    from agent.service import AgentService

    config = configfile.validate(agent_config.AgentConfig, {
        "agent_id": "xa-test", "site": {"province": "Hà Nội"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "buffer": {"path": str(tmp_path / "buffer")},
        "devices": [{"name": "sw", "address": "192.0.2.1", "profiles": ["system", "interfaces"]},
                    {"name": "ups", "address": "192.0.2.2"}]})
    made = AgentService(config, tmp_path / "agent.yaml")
    yield made
    made.queue.close()


async def test_the_birth_lists_profiles_and_is_published_again_when_a_choice_changes(
        service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import service as service_module

    monkeypatch.setattr(service_module, "BIRTH_REFRESH_DELAY", 0.0)
    refreshed: list[AgentStatus] = []
    monkeypatch.setattr(service.uplink, "refresh_birth",
                        lambda: refreshed.append(decode_status(service._status(online=True))))
    birth = decode_status(service._status(online=True))
    assert birth.profiles == (("sw", ("system", "interfaces")),)  # "ups" is not identified yet

    def outcome(*profiles: str) -> PollOutcome:
        return PollOutcome(1795550790.0, True, 0.1, (), (), (), profiles)

    service.record("sw", 60.0, outcome("system", "interfaces"))  # a listed set: no change
    service.record("ups", 60.0, outcome())  # not identified (did not answer): nothing to say
    service.record("ups", 60.0, outcome("system", "interfaces", "ups"))
    service.record("ups", 60.0, outcome("system", "interfaces", "ups"))  # the same again: once
    await wait_for(lambda: len(refreshed) == 1)
    assert refreshed[0].profiles == (("sw", ("system", "interfaces")),
                                     ("ups", ("system", "interfaces", "ups")))
    service.record("ups", 60.0, outcome("system", "huawei-ups"))  # another box at the address
    await wait_for(lambda: len(refreshed) == 2)
    assert dict(refreshed[1].profiles)["ups"] == ("system", "huawei-ups")
    assert not decode_status(service._status(online=False)).profiles  # never in the will


async def wait_for(condition: Any) -> None:
    await async_wait_until(condition, 5.0, message="the birth published again")


async def test_the_uplink_publishes_the_birth_again_on_the_current_connection(tmp_path: Path) -> None:
    from agent.queue import DiskQueue
    from agent.uplink import Uplink, UplinkSettings
    from tests.unit.test_uplink_drain import FakeConnection

    births = iter([b'{"n":1}', b'{"n":2}'])
    queue = DiskQueue(tmp_path, max_bytes=1 << 20, max_age=86400)
    uplink = Uplink(UplinkSettings("mqtt://127.0.0.1:1", "c"), "xa-a", queue, birth=lambda: next(births),
                    will=b"{}")
    client = FakeConnection()
    task = asyncio.create_task(uplink._drain(client))
    try:
        uplink.refresh_birth()
        await async_wait_until(lambda: client.published, 5.0, message="the birth published again")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        queue.close()
    assert client.published == [("hatang/v1/agents/xa-a/status", b'{"n":1}')]

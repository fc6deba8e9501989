"""The real agent poller against recordings of real equipment (PyPI ``snmpsim-data``).

Each recording is replayed over UDP on 127.0.0.1 (tests/support/snmprec.py, on the project's BER codec
and simulator); the real SNMP client (agent.snmp.engine) and DevicePoller poll it with all built-in profiles.
Expected values are computed here from the parsed recording and the MIB definitions (RFC 2863 IF-MIB,
RFC 2790 HOST-RESOURCES-MIB, UCD-SNMP-MIB, RFC 1628 UPS-MIB, RFC 3433 ENTITY-SENSOR-MIB), not taken from
the profiles. Without snmpsim-data these tests skip, or fail when CI=true.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent.poller import DevicePoller, PollOutcome
from agent.profiles import Profile, load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from hatang.sim import ber
from hatang.sim.ber import OID, Value
from tests.support import snmprec
from wire.codec import decode_batch, encode_batch
from wire.messages import Family, PollBatch

pytestmark = pytest.mark.integration

PROFILES = ("system", "interfaces", "host", "ups", "sensors")  # all of them on every device
DEVICES = {
    "cisco-switch": "network/switch/cisco-c3560",
    "huawei-switch": "network/router/huawei-s5720",
    "router": "network/router/cisco-unmarked-0",  # HC counters on 1 of 28 interfaces: 32-bit per row
    "ups": "UPS/eaton-93e-80",
    "linux": "os/linux/slackware",
    "windows": "os/windows/server-2003-5-2",
    "sensors": "cloud/arista-dcs-7150s-52-cl",
}
INT_TAGS = {ber.INTEGER, ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64}


def oid(text: str) -> OID:
    return snmprec.parse_oid(text)


# --- the recording, read independently of the agent ---------------------------------------------------


number = snmprec.number


def plain_text(value: Value | None) -> str | None:
    """Printable ASCII text with whitespace collapsed, None for anything else (checked for safety only)."""
    if value is None:
        return ""
    if value.tag == ber.OBJECT_IDENTIFIER and isinstance(value.value, tuple):
        return ".".join(map(str, value.value))
    if value.tag == ber.INTEGER and isinstance(value.value, int):
        return str(value.value)
    if not isinstance(value.value, bytes):
        return None
    raw = value.value.rstrip(b"\x00")
    if not all(32 <= b < 127 or b in b"\t\r\n" for b in raw):
        return None
    return " ".join(raw.decode("ascii").split())


def numbers(rec: snmprec.Recording, column: str) -> dict[str, float]:
    return {i: n for i, v in rec.column(oid(column)).items() if (n := number(v)) is not None}


def scalar(rec: snmprec.Recording, text: str) -> float | None:
    return number(rec.get(oid(text)))


# --- polling ------------------------------------------------------------------------------------------


@dataclass
class Polled:
    rec: snmprec.Recording
    outcomes: list[PollOutcome]
    requests: list[int]  # requests the device answered, per poll

    @property
    def families(self) -> dict[str, Family]:
        return {f.name: f for f in self.outcomes[0].families}

    def values(self, name: str, key: str) -> dict[str, float]:
        family = self.families.get(name)
        return {} if family is None else {dict(s.labels)[key]: s.value for s in family.samples}

    def labels(self, name: str, key: str) -> dict[str, dict[str, str]]:
        return {dict(s.labels)[key]: dict(s.labels) for s in self.families[name].samples}

    def one(self, name: str) -> float | None:
        family = self.families.get(name)
        if family is None:
            return None
        [sample] = family.samples
        return sample.value


@asynccontextmanager
async def served(rec: snmprec.Recording, overrides: Mapping[OID, Value] | None = None
                 ) -> AsyncIterator[tuple[DevicePoller, snmprec.SimulatorHandle]]:
    handle = await snmprec.serve([snmprec.device(rec, overrides)])
    engine = SnmpEngine()
    try:
        target = await engine.target("127.0.0.1", handle.endpoints[0].port, Credentials("2c", "public"),
                                     timeout=2.0, retries=1)
        profiles = load_profiles()
        poller = DevicePoller(rec.name, target, [profiles[p] for p in PROFILES], deadline=120.0,
                              timeout_errors=(SnmpTimeout,), snmp_errors=(SnmpError,))
        yield poller, handle
    finally:
        engine.close()
        handle.close()


async def poll_recording(data_dir: Path, device: str, overrides: Mapping[OID, Value] | None = None,
                         polls: int = 2) -> Polled:
    rec = snmprec.load_recording(snmprec.find_recording(data_dir, DEVICES[device]))
    outcomes, requests = [], []
    async with served(rec, overrides) as (poller, handle):
        for _ in range(polls):
            before = handle.stats(0).requests
            outcomes.append(await poller.poll())
            requests.append(handle.stats(0).requests - before)
    absent = [name for name in PROFILES if not recorded(rec, load_profiles()[name])]
    for outcome in outcomes:
        assert outcome.up
        # a profile whose MIB the device lacks (UPS on a switch, ...) is reported as empty; nothing else
        # (no unusable value: the profiles' valid ranges admit every real device's readings)
        assert [(e.profile, e.reason) for e in outcome.errors] == [(name, "empty_profile") for name in absent]
    return Polled(rec, outcomes, requests)


def recorded(rec: snmprec.Recording, profile: Profile) -> bool:
    """Whether the recording holds any value the profile reads (a scalar, or a row of a metric column)."""
    if any(o in rec.values for o in profile.scalar_oids()):
        return True
    columns = [src.parsed for table in profile.tables for spec in table.metrics
               for src in (spec.source, spec.fallback) if src is not None]
    return any(rec.column(column) for column in columns)


def assert_publishable(outcome: PollOutcome, device: str) -> None:
    """The outcome passes the collector's own wire validation (reserved labels, finite numbers, UTF-8)."""
    batch = PollBatch(agent="xa-test", boot_id="b" * 32, seq=1, ts=outcome.ts, device=device, interval=60.0,
                      up=outcome.up, duration=outcome.duration, site=(("province", "Vĩnh Phúc"),),
                      errors=outcome.errors, families=outcome.families)
    decoded = decode_batch(encode_batch(batch))
    assert [f.name for f in decoded.families] == [f.name for f in outcome.families]
    for family in outcome.families:
        for sample in family.samples:
            assert math.isfinite(sample.value)
            for _, text in sample.labels:
                assert not any(unicodedata.category(ch) == "Cc" for ch in text), text


def assert_close(actual: Mapping[str, float], expected: Mapping[str, float]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-12), key


# --- checks per MIB -------------------------------------------------------------------------------------

IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
# metric -> (64-bit column or None, 32-bit column): IF-MIB
IF_COUNTERS = {
    "hatang_interface_in_bytes_total": (f"{IFX}.6", f"{IF}.10"),
    "hatang_interface_out_bytes_total": (f"{IFX}.10", f"{IF}.16"),
    "hatang_interface_in_unicast_packets_total": (f"{IFX}.7", f"{IF}.11"),
    "hatang_interface_in_multicast_packets_total": (f"{IFX}.8", f"{IFX}.2"),
    "hatang_interface_in_broadcast_packets_total": (f"{IFX}.9", f"{IFX}.3"),
    "hatang_interface_out_unicast_packets_total": (f"{IFX}.11", f"{IF}.17"),
    "hatang_interface_out_multicast_packets_total": (f"{IFX}.12", f"{IFX}.4"),
    "hatang_interface_out_broadcast_packets_total": (f"{IFX}.13", f"{IFX}.5"),
}
IF_DIRECT = {
    "hatang_interface_in_errors_total": f"{IF}.14", "hatang_interface_out_errors_total": f"{IF}.20",
    "hatang_interface_in_discards_total": f"{IF}.13", "hatang_interface_out_discards_total": f"{IF}.19",
    "hatang_interface_oper_status": f"{IF}.8", "hatang_interface_admin_status": f"{IF}.7",
}


def interface_rows(rec: snmprec.Recording) -> set[str]:
    """Rows the poller sees in the metric columns it walks every poll."""
    columns = [hc for hc, _ in IF_COUNTERS.values()] + list(IF_DIRECT.values()) + [f"{IFX}.15", f"{IF}.9"]
    return {i for c in columns for i in rec.column(oid(c))}


def expected_counter(rec: snmprec.Recording, hc: str, low: str) -> dict[str, float]:
    """HC value where the row has one; the 32-bit value where it does not (RFC 2863: HC preferred)."""
    wide, narrow = numbers(rec, hc), numbers(rec, low)
    if not wide:
        return narrow
    rows = interface_rows(rec)
    return {**{i: v for i, v in narrow.items() if i in rows}, **wide}


def check_system(polled: Polled) -> None:
    rec, outcome = polled.rec, polled.outcomes[0]
    ticks = scalar(rec, "1.3.6.1.2.1.1.3.0")
    assert ticks is not None
    assert polled.one("hatang_device_uptime_seconds") == pytest.approx(ticks / 100)
    boot = polled.one("hatang_device_boot_time_seconds")
    assert boot is not None
    assert abs(boot - (outcome.ts - ticks / 100)) <= outcome.duration + 1.0
    assert polled.one("hatang_device_reboots_total") == 0
    for later in polled.outcomes[1:]:  # stable across polls, no reboot
        fams = {f.name: f for f in later.families}
        assert fams["hatang_device_boot_time_seconds"].samples[0].value == boot
        assert fams["hatang_device_reboots_total"].samples[0].value == 0
    [info] = polled.families["hatang_device_info"].samples
    labels = dict(info.labels)
    for label, column in (("sys_name", "1.3.6.1.2.1.1.5.0"), ("sys_descr", "1.3.6.1.2.1.1.1.0"),
                          ("sys_object_id", "1.3.6.1.2.1.1.2.0")):
        expected = plain_text(rec.get(oid(column)))
        if expected is not None:
            assert labels[label] == expected[:256]


def check_interfaces(polled: Polled) -> None:
    rec = polled.rec
    assert interface_rows(rec), "the recording has an ifTable"
    for name, (hc, low) in IF_COUNTERS.items():
        assert_close(polled.values(name, "if_index"), expected_counter(rec, hc, low))
    for name, column in IF_DIRECT.items():
        assert_close(polled.values(name, "if_index"), numbers(rec, column))
    high, speed = numbers(rec, f"{IFX}.15"), numbers(rec, f"{IF}.5")
    expected_speed = ({i: v * 1_000_000 / 8 for i, v in high.items()} if high
                      else {i: v / 8 for i, v in speed.items()})
    if high:
        expected_speed.update({i: speed[i] / 8 for i in interface_rows(rec) - high.keys() if i in speed})
    assert_close(polled.values("hatang_interface_speed_bytes", "if_index"), expected_speed)

    uptime = (scalar(rec, "1.3.6.1.2.1.1.3.0") or 0) / 100
    boot = polled.one("hatang_device_boot_time_seconds") or 0.0
    changes = {i: boot + v / 100 for i, v in numbers(rec, f"{IF}.9").items() if v / 100 <= uptime + 300}
    assert_close(polled.values("hatang_interface_last_change_timestamp_seconds", "if_index"), changes)

    labels = polled.labels("hatang_interface_oper_status", "if_index")
    for index, row in labels.items():
        for label, column in (("if_name", f"{IFX}.1"), ("if_alias", f"{IFX}.18"), ("if_descr", f"{IF}.2"),
                              ("if_type", f"{IF}.3")):
            expected = plain_text(rec.get((*oid(column), *oid(index))))
            if expected is not None:
                assert row[label] == expected[:256], (index, label)


HR_STORAGE = "1.3.6.1.2.1.25.2.3.1"
HR_STORAGE_TYPES = {1: "other", 2: "ram", 3: "virtualMemory", 4: "fixedDisk", 5: "removableDisk",
                    6: "floppyDisk", 7: "compactDisc", 8: "ramDisk", 9: "flashMemory", 10: "networkDisk"}
UCD_CPU = {"user": 50, "nice": 51, "system": 52, "idle": 53, "wait": 54, "kernel": 55, "interrupt": 56,
           "softirq": 61, "steal": 64, "guest": 65, "guest_nice": 66}
UCD_MEMORY = {"memory_total": (20, 5), "memory_free": (21, 6), "memory_buffers": (25, 14),
              "memory_cached": (26, 15), "swap_total": (18, 3), "swap_free": (19, 4),
              "memory_available": (27, 0)}  # kB: (64-bit object, 32-bit object or 0 for none)
UCD = "1.3.6.1.4.1.2021"


def check_host(polled: Polled) -> None:
    rec = polled.rec
    units = numbers(rec, f"{HR_STORAGE}.4")
    for what, column in (("size", 5), ("used", 6)):
        expected = {i: v * units[i] for i, v in numbers(rec, f"{HR_STORAGE}.{column}").items() if i in units}
        assert expected, "the recording has an hrStorageTable"
        assert_close(polled.values(f"hatang_host_storage_{what}_bytes", "storage_index"), expected)
    for index, labels in polled.labels("hatang_host_storage_used_bytes", "storage_index").items():
        mount = plain_text(rec.get((*oid(f"{HR_STORAGE}.3"), *oid(index))))
        if mount is not None:
            assert labels["mount"] == mount
        kind = rec.get((*oid(f"{HR_STORAGE}.2"), *oid(index)))
        assert kind is not None and isinstance(kind.value, tuple)
        if kind.value[:-1] == oid("1.3.6.1.2.1.25.2.1"):
            assert labels["storage_type"] == HR_STORAGE_TYPES[kind.value[-1]]
    loads = {i: v / 100 for i, v in numbers(rec, "1.3.6.1.2.1.25.3.3.1.2").items()}
    assert_close(polled.values("hatang_host_cpu_load_ratio", "cpu"), loads)
    assert polled.one("hatang_host_processes") == scalar(rec, "1.3.6.1.2.1.25.1.6.0")
    assert polled.one("hatang_host_users") == scalar(rec, "1.3.6.1.2.1.25.1.5.0")

    for minutes, row in (("1", 1), ("5", 2), ("15", 3)):
        text, whole = scalar(rec, f"{UCD}.10.1.3.{row}"), scalar(rec, f"{UCD}.10.1.5.{row}")
        expected_load = text if text is not None else (None if whole is None else whole / 100)
        assert polled.one(f"hatang_host_load{minutes}") == (
            None if expected_load is None else pytest.approx(expected_load))
    for name, (wide, narrow) in UCD_MEMORY.items():
        kb = scalar(rec, f"{UCD}.4.{wide}.0")
        kb = kb if kb is not None or not narrow else scalar(rec, f"{UCD}.4.{narrow}.0")
        assert polled.one(f"hatang_host_{name}_bytes") == (None if kb is None else kb * 1024), name
    ticks = {mode: v for mode, n in UCD_CPU.items() if (v := scalar(rec, f"{UCD}.11.{n}.0")) is not None}
    assert polled.values("hatang_host_cpu_ticks_total", "mode") == ticks


UPS = "1.3.6.1.2.1.33.1"


def check_ups(polled: Polled) -> None:
    rec = polled.rec

    def ups(suffix: str) -> float | None:
        return scalar(rec, f"{UPS}.{suffix}")

    source = ups("4.1.0")
    assert source is not None, "the recording has UPS-MIB"
    expected = {
        "hatang_ups_battery_status": ups("2.1.0"), "hatang_ups_time_on_battery_seconds": ups("2.2.0"),
        "hatang_ups_battery_runtime_seconds": (ups("2.3.0") or 0) * 60,
        "hatang_ups_battery_charge_ratio": (ups("2.4.0") or 0) / 100,
        "hatang_ups_battery_voltage_volts": (ups("2.5.0") or 0) / 10,
        "hatang_ups_battery_temperature_celsius": ups("2.7.0"),
        "hatang_ups_output_source": source, "hatang_ups_on_battery": 1 if source == 5 else 0,
        "hatang_ups_output_frequency_hertz": (ups("4.2.0") or 0) / 10, "hatang_ups_alarms": ups("6.1.0"),
    }
    for name, value in expected.items():
        assert polled.one(name) == pytest.approx(value), name
    for name, column, scale in (("hatang_ups_input_voltage_volts", "3.3.1.3", 1),
                                ("hatang_ups_input_frequency_hertz", "3.3.1.2", 0.1),
                                ("hatang_ups_output_voltage_volts", "4.4.1.2", 1),
                                ("hatang_ups_output_current_amperes", "4.4.1.3", 0.1),
                                ("hatang_ups_output_power_watts", "4.4.1.4", 1),
                                ("hatang_ups_output_load_ratio", "4.4.1.5", 0.01)):
        lines = {i: v * scale for i, v in numbers(rec, f"{UPS}.{column}").items()}
        assert lines, column
        assert_close(polled.values(name, "line"), lines)


SENSOR = "1.3.6.1.2.1.99.1.1.1"
SENSOR_METRICS = {8: "temperature_celsius", 10: "fan_speed_rpm", 3: "voltage_volts", 4: "voltage_volts",
                  5: "current_amperes", 6: "power_watts", 7: "frequency_hertz", 9: "humidity_ratio",
                  11: "airflow_cubic_meters_per_minute", 1: "value", 2: "value", 12: "value"}


def check_sensors(polled: Polled) -> None:
    rec = polled.rec
    kinds, scales, precisions = (rec.column(oid(f"{SENSOR}.{n}")) for n in (1, 2, 3))
    statuses = numbers(rec, f"{SENSOR}.5")
    expected: dict[str, dict[str, float]] = {}
    for index, raw in rec.column(oid(f"{SENSOR}.4")).items():
        if statuses.get(index) in (2, 3):
            continue
        kind = number(kinds.get(index))
        assert kind is not None
        name = "hatang_sensor_" + SENSOR_METRICS[int(kind)]
        exponent = 3 * (int(number(scales.get(index)) or 9) - 9) - int(number(precisions.get(index)) or 0)
        reading = Decimal(int(number(raw) or 0)).scaleb(exponent)
        expected.setdefault(name, {})[index] = float(reading / 100 if kind == 9 else reading)
    assert expected, "the recording has working ENTITY-SENSOR-MIB sensors"
    for name, values in expected.items():
        assert_close(polled.values(name, "entity_index"), values)
    assert_close(polled.values("hatang_sensor_status", "entity_index"), statuses)
    names = rec.column(oid("1.3.6.1.2.1.47.1.1.1.1.7"))
    descrs = rec.column(oid("1.3.6.1.2.1.47.1.1.1.1.2"))
    for index, labels in polled.labels("hatang_sensor_status", "entity_index").items():
        for label, values in (("entity_name", names), ("entity_descr", descrs)):
            text = plain_text(values.get(index))
            if text is not None:
                assert labels[label] == text


CHECKS = {
    "cisco-switch": [check_system, check_interfaces],
    "huawei-switch": [check_system, check_interfaces],
    "router": [check_system, check_interfaces],
    "ups": [check_system, check_interfaces, check_ups],
    "linux": [check_system, check_interfaces, check_host],
    "windows": [check_system, check_interfaces, check_host],
    "sensors": [check_system, check_interfaces, check_host, check_sensors],
}
ABSENT = {  # metric prefixes a device's recording has no MIB for: no samples, no error
    "cisco-switch": ("hatang_host_", "hatang_ups_", "hatang_sensor_"),
    "router": ("hatang_host_", "hatang_ups_", "hatang_sensor_"),
    "ups": ("hatang_host_", "hatang_sensor_"),
    "windows": ("hatang_ups_", "hatang_sensor_", "hatang_host_load", "hatang_host_memory_"),
}


@pytest.mark.parametrize("device", sorted(DEVICES))
async def test_recorded_device_metrics_match_the_recording(data_dir: Path, device: str) -> None:
    polled = await poll_recording(data_dir, device)
    for check in CHECKS[device]:
        check(polled)
    for prefix in ABSENT.get(device, ()):
        assert not [n for n in polled.families if n.startswith(prefix)], prefix
    for outcome in polled.outcomes:
        assert_publishable(outcome, device)
    # the second poll reuses the cached labels: fewer requests, the same samples
    assert polled.requests[1] < polled.requests[0]
    assert polled.outcomes[1].families == polled.outcomes[0].families


async def test_router_without_hc_counters_on_most_interfaces_falls_back_per_row(data_dir: Path) -> None:
    polled = await poll_recording(data_dir, "router", polls=1)
    hc = numbers(polled.rec, f"{IFX}.6")
    low = numbers(polled.rec, f"{IF}.10")
    assert 0 < len(hc) < len(low)  # the premise: HC on some interfaces only
    in_bytes = polled.values("hatang_interface_in_bytes_total", "if_index")
    assert set(in_bytes) == set(low) | set(hc)
    assert all(in_bytes[i] == low[i] for i in low.keys() - hc.keys())


VI_ALIAS = "Đường truyền số liệu chuyên dùng – Sở TT&TT Vĩnh Phúc"
VI_NAME = "Tổng đài UBND xã Đại Đình"


async def test_vietnamese_and_invalid_utf8_strings_are_safe(data_dir: Path) -> None:
    rec = snmprec.load_recording(snmprec.find_recording(data_dir, DEVICES["cisco-switch"]))
    rows = sorted(rec.column(oid(f"{IFX}.6")), key=int)[:4]
    alias = oid(f"{IFX}.18")
    overrides = {
        (*alias, int(rows[0])): Value(ber.OCTET_STRING, VI_ALIAS.encode("utf-8")),
        (*alias, int(rows[1])): Value(ber.OCTET_STRING, b"Ph\xf2ng m\xe1y ch\xfa \xff\xfe uplink"),  # CP1258
        (*alias, int(rows[2])): Value(ber.OCTET_STRING, b"\x00\x1a\x2b\x3c\x4d\x5e"),  # a MAC address
        (*alias, int(rows[3])): Value(ber.OCTET_STRING, b"Uplink\x07 to\x1b core" + b"\x00" * 8),
        oid("1.3.6.1.2.1.1.5.0"): Value(ber.OCTET_STRING, VI_NAME.encode("utf-8")),
    }
    async with served(rec, overrides) as (poller, _):
        outcome = await poller.poll()
    assert {e.reason for e in outcome.errors} <= {"empty_profile"}
    assert_publishable(outcome, "cisco-switch")
    families = {f.name: f for f in outcome.families}
    aliases = {dict(s.labels)["if_index"]: dict(s.labels)["if_alias"]
               for s in families["hatang_interface_in_bytes_total"].samples}
    assert aliases[rows[0]] == VI_ALIAS
    assert aliases[rows[1]].startswith("Ph") and "\ufffd" in aliases[rows[1]] and aliases[rows[1]].endswith(
        "uplink")
    assert aliases[rows[2]] == "00:1a:2b:3c:4d:5e"
    assert aliases[rows[3]] == "Uplink to core"
    [info] = families["hatang_device_info"].samples
    assert dict(info.labels)["sys_name"] == VI_NAME


SMALL_RECORDING_BYTES = 256 * 1024  # larger recordings (17 of 102, 80 % of the poll time) run under soak


def _every_recording() -> list[Any]:
    """Every recording of network gear, UPSes and hosts in snmpsim-data (equipment an office has); the
    largest under the ``soak`` marker."""
    found = snmprec.data_dir()
    if found is None:
        return ["(snmpsim-data missing)"]  # the data_dir fixture fails or skips the test with the reason
    paths = [p for kind in ("network", "UPS", "os") for p in sorted((found / kind).rglob("*.snmprec*"))]
    return [pytest.param(str(p.relative_to(found)).split(".snmprec")[0],
                         marks=[pytest.mark.soak] if p.stat().st_size > SMALL_RECORDING_BYTES else [])
            for p in paths]


@pytest.mark.parametrize("relative", _every_recording())
async def test_every_recorded_device_polls_without_a_false_error_or_a_false_value(data_dir: Path,
                                                                                  relative: str) -> None:
    """All profiles on every recording: the device is up, the only problems are profiles whose MIB it
    lacks, and no published value is a sentinel or an impossible reading."""
    rec = snmprec.load_recording(snmprec.find_recording(data_dir, relative))
    async with served(rec) as (poller, _):
        outcome = await poller.poll()
    absent = [name for name in PROFILES if not recorded(rec, load_profiles()[name])]
    assert outcome.up, outcome.errors
    assert [(e.profile, e.reason) for e in outcome.errors] == [(name, "empty_profile") for name in absent]
    assert_publishable(outcome, "device")
    for family in outcome.families:
        for sample in family.samples:
            if family.name.endswith(("_ratio", "_bytes", "_seconds", "_total", "_volts", "_watts")):
                assert sample.value >= 0, (family.name, sample)

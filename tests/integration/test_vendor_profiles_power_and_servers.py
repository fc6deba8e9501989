"""Vendor profiles for firewalls, routers, power gear and servers, proven against recordings.

Profiles: fortinet-fortigate, mikrotik-routeros, apc-ups, apc-pdu, huawei-ups, netsnmp-linux, windows
(agent/profiles/). Each recording (snmpsim-data, or a hand-made one in tests/recordings/handmade/ where
snmpsim-data has none) is replayed on 127.0.0.1 (tests/support/snmprec.py) and polled by the real SNMP
client and DevicePoller with the profile alone. Every sample of the families the profile defines is
compared with a value computed here from the recording and the MIB definitions (FORTINET-FORTIGATE-MIB,
MIKROTIK-MIB, PowerNet-MIB, RFC 1628 UPS-MIB with Huawei's units, RFC 2790 HOST-RESOURCES-MIB), not from
the profile; the families a profile takes over from the one it extends must equal what that base profile
publishes alone. choose() must give each recording's device exactly its intended vendor profile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.poller import DevicePoller, PollOutcome
from agent.profile_selection import DeviceIdentity, choose, probe_oids
from agent.profiles import Profile, load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from hatang.sim import ber
from hatang.sim.ber import OID, Value
from tests.support import snmprec
from wire.messages import Family

pytestmark = pytest.mark.integration

HANDMADE = Path(__file__).resolve().parents[1] / "recordings" / "handmade"
INT_TAGS = {ber.INTEGER, ber.COUNTER32, ber.GAUGE32, ber.TIMETICKS, ber.COUNTER64}
Key = tuple[str, ...]
Expected = dict[str, dict[Key, float]]  # family -> {values of its key labels: value}


@dataclass(frozen=True)
class Case:
    profile: str
    source: str  # "snmpsim" or "handmade"
    path: str  # relative to snmpsim-data's data folder, or a file name stem under tests/recordings/handmade


NETSNMP_LINUX = ("ibm-x3550-m3", "slackware", "unknown-001", "unknown-002", "unknown-003", "unknown-004",
                 "unknown-006", "unknown-007")
CASES: dict[str, Case] = {
    "fortinet-xcu": Case("fortinet-fortigate", "snmpsim", "network/firewall/fortinet-xcu"),
    "mikrotik-handmade": Case("mikrotik-routeros", "handmade", "mikrotik-routeros"),
    "apc-ups-handmade": Case("apc-ups", "handmade", "apc-smart-ups"),
    "apc-7902b": Case("apc-pdu", "snmpsim", "UPS/apc-7902b"),
    "apc-8641": Case("apc-pdu", "snmpsim", "UPS/apc-8641"),
    "apc-8932": Case("apc-pdu", "snmpsim", "UPS/apc-8932"),
    "huawei-ups5000": Case("huawei-ups", "snmpsim", "UPS/huawei-gse200m"),
    **{f"linux-{n}": Case("netsnmp-linux", "snmpsim", f"os/linux/{n}") for n in NETSNMP_LINUX},
    "windows-xp": Case("windows", "snmpsim", "os/windows/XP"),
    "windows-2003": Case("windows", "snmpsim", "os/windows/server-2003-5-2"),
}


def oid(text: str) -> OID:
    return snmprec.parse_oid(text)


def load_case(data_dir: Path, case: Case) -> snmprec.Recording:
    if case.source == "handmade":
        return snmprec.load_recording(HANDMADE / f"{case.path}.snmprec")
    return snmprec.load_recording(snmprec.find_recording(data_dir, case.path))


# --- the recording, read independently of the agent ---------------------------------------------------


number = snmprec.number


def text(value: Value | None) -> str | None:
    """Printable ASCII text with whitespace collapsed ("" when absent); None for anything else."""
    if value is None:
        return ""
    if not isinstance(value.value, bytes):
        return None
    raw = value.value.rstrip(b"\x00")
    if not all(32 <= b < 127 or b in b"\t\r\n" for b in raw):
        return None
    return " ".join(raw.decode("ascii").split())


def scalar(rec: snmprec.Recording, name: str) -> float | None:
    return number(rec.get(oid(name)))


def column(rec: snmprec.Recording, name: str) -> dict[str, float]:
    return {i: n for i, v in rec.column(oid(name)).items() if (n := number(v)) is not None}


def labels_of(rec: snmprec.Recording, name: str) -> dict[str, str | None]:
    return {i: text(v) for i, v in rec.column(oid(name)).items()}


# --- expected values per MIB ----------------------------------------------------------------------------

FG = "1.3.6.1.4.1.12356.101.4"  # FORTINET-FORTIGATE-MIB::fgSystem


FG_FAN_NAMES = ("FAN1", "FAN2", "FAN3", "FAN4", "FAN5", "FAN6", "PS1 Fan 1", "PS1 Fan 2", "PS2 Fan 1",
                "PS2 Fan 2")  # the fan sensors of the FortiGate recording (fgHwSensorEntName), listed by hand
FG_PSU_NAMES = ("PS1 Status", "PS2 Status")  # its power supplies' state sensors


def expect_fortigate(rec: snmprec.Recording) -> Expected:
    # fgSysCpuUsage, fgSysMemUsage (percent), fgSysMemCapacity (KB)
    cpu, usage, capacity = (scalar(rec, f"{FG}.1.{n}.0") for n in (3, 4, 5))
    assert cpu is not None and usage is not None and capacity is not None
    system = ("system",)
    names = labels_of(rec, f"{FG}.3.2.1.2")  # fgHwSensorEntName
    alarms = column(rec, f"{FG}.3.2.1.4")  # fgHwSensorEntAlarmStatus: false(0) ok, true(1) alarm

    def states(wanted: tuple[str, ...]) -> dict[Key, float]:
        return {(i,): float(alarms[i] == 0) for i, name in names.items()
                if name in wanted and alarms.get(i) in (0, 1)}

    return {
        "hatang_device_fan_ok": states(FG_FAN_NAMES),
        "hatang_device_power_supply_ok": states(FG_PSU_NAMES),
        "hatang_device_cpu_utilization_ratio": {system: cpu / 100},
        "hatang_device_memory_total_bytes": {system: capacity * 1024},
        "hatang_device_memory_used_bytes": {system: usage / 100 * capacity * 1024},
        "hatang_fortinet_processor_usage_ratio": {
            (i,): v / 100 for i, v in column(rec, f"{FG}.4.2.1.2").items()},  # fgProcessorUsage
        "hatang_fortinet_hw_sensor_value": {(i,): v for i, v in column(rec, f"{FG}.3.2.1.3").items()},
        "hatang_fortinet_hw_sensor_alarm": {(i,): v for i, v in column(rec, f"{FG}.3.2.1.4").items()},
    }


HR = "1.3.6.1.2.1.25"
HR_RAM = oid("1.3.6.1.2.1.25.2.1.2")  # HOST-RESOURCES-TYPES::hrStorageRam


def unsigned(value: float) -> float:
    return value + 2**32 if value < 0 else value  # hrStorageSize/Used: Integer32 that overflowed


def expect_host_health(rec: snmprec.Recording) -> Expected:
    """RFC 2790: hrProcessorLoad per processor (0..100 %), memory from the hrStorageRam rows."""
    loads = {i: v for i, v in column(rec, f"{HR}.3.3.1.2").items() if 0 <= v <= 100}
    types = rec.column(oid(f"{HR}.2.3.1.2"))
    units = column(rec, f"{HR}.2.3.1.4")
    ram = [i for i, v in types.items() if v.value == HR_RAM and i in units]
    sizes, used = column(rec, f"{HR}.2.3.1.5"), column(rec, f"{HR}.2.3.1.6")
    return {
        "hatang_device_cpu_utilization_ratio": {(i,): v / 100 for i, v in loads.items()},
        "hatang_device_memory_total_bytes": {(i,): unsigned(sizes[i]) * units[i] for i in ram if i in sizes},
        "hatang_device_memory_used_bytes": {(i,): unsigned(used[i]) * units[i] for i in ram if i in used},
    }


HOST_HEALTH_KEYS = {"hatang_device_cpu_utilization_ratio": ("cpu",),
                    "hatang_device_memory_total_bytes": ("storage_index",),
                    "hatang_device_memory_used_bytes": ("storage_index",)}
HOST_HEALTH_COMPONENTS = {"hatang_device_cpu_utilization_ratio": f"{HR}.3.2.1.3",  # hrDeviceDescr
                          "hatang_device_memory_total_bytes": f"{HR}.2.3.1.3",  # hrStorageDescr
                          "hatang_device_memory_used_bytes": f"{HR}.2.3.1.3"}

MT = "1.3.6.1.4.1.14988.1.1.3"  # MIKROTIK-MIB::mtxrHealth
MT_TEMPERATURES = {10: "temperature", 11: "processor-temperature", 6: "cpu-temperature",
                   7: "board-temperature", 5: "sensor-temperature"}  # mtxrHl*Temperature (tenths of °C)
MT_GAUGE_UNITS = {1: ("hatang_device_temperature_celsius", 1), 2: ("hatang_mikrotik_fan_speed_rpm", 1),
                  3: ("hatang_mikrotik_voltage_volts", 10), 4: ("hatang_mikrotik_current_amperes", 10),
                  5: ("hatang_mikrotik_power_watts", 10), 6: ("hatang_mikrotik_health_status", 1)}


MT_STATE_ROWS = {"fan-state": "hatang_device_fan_ok", "psu1-state": "hatang_device_power_supply_ok",
                 "psu2-state": "hatang_device_power_supply_ok"}  # the recording's status(6) rows, by name


def expect_mikrotik(rec: snmprec.Recording) -> Expected:
    out: Expected = {name: {} for name, _ in MT_GAUGE_UNITS.values()}
    out["hatang_device_power_supply_ok"] = {}
    out["hatang_device_fan_ok"] = {}
    for arc, component in MT_TEMPERATURES.items():
        if (v := scalar(rec, f"{MT}.{arc}.0")) is not None:
            out["hatang_device_temperature_celsius"][(component, "")] = v / 10
    for arc, component in ((15, "psu"), (16, "backup-psu")):  # BoolValue false(0) / true(1)
        if (v := scalar(rec, f"{MT}.{arc}.0")) is not None and v in (0, 1):
            out["hatang_device_power_supply_ok"][(component, "")] = v
    for arc, component in ((17, "fan1"), (18, "fan2")):
        if (v := scalar(rec, f"{MT}.{arc}.0")) is not None:
            out["hatang_mikrotik_fan_speed_rpm"][(component, "")] = v
    names = labels_of(rec, f"{MT}.100.1.2")  # mtxrGaugeName
    values, units = column(rec, f"{MT}.100.1.3"), column(rec, f"{MT}.100.1.4")  # Value, Unit
    for index, value in values.items():
        family, divisor = MT_GAUGE_UNITS[int(units[index])]
        out[family][(names[index] or "", index)] = value / divisor
        state = MT_STATE_ROWS.get(names[index] or "")
        if units[index] == 6 and state is not None and value in (0, 1):  # RouterOS: 0 ok, 1 fail
            out[state][(names[index] or "", index)] = float(value == 0)
    health = expect_host_health(rec)
    for family, values_by_key in health.items():
        out[family] = values_by_key
    return out


UPS = "1.3.6.1.4.1.318.1.1.1"  # PowerNet-MIB::ups


def expect_apc_ups(rec: snmprec.Recording) -> Expected:
    def first(high: str, high_divisor: float, adv: str, adv_divisor: float) -> float | None:
        fine = scalar(rec, f"{UPS}.{high}")
        if fine is not None:
            return fine / high_divisor
        coarse = scalar(rec, f"{UPS}.{adv}")
        return None if coarse is None else coarse / adv_divisor

    line = ("1",)
    runtime = scalar(rec, f"{UPS}.2.2.3.0")  # upsAdvBatteryRunTimeRemaining (TimeTicks; max = not present)
    temperature = scalar(rec, f"{UPS}.2.2.2.0")  # upsAdvBatteryTemperature (°C; 255 = not present)
    status = scalar(rec, f"{UPS}.4.1.1.0")  # upsBasicOutputStatus
    battery_volts = first("2.3.4.0", 10, "2.2.8.0", 1)
    values: dict[str, float | None] = {
        "hatang_ups_time_on_battery_seconds": _div(scalar(rec, f"{UPS}.2.1.2.0"), 100),
        "hatang_ups_battery_runtime_seconds": None if runtime in (None, 2**32 - 1) else _div(runtime, 100),
        "hatang_ups_battery_charge_ratio": first("2.3.1.0", 1000, "2.2.1.0", 100),
        "hatang_ups_battery_voltage_volts": battery_volts,
        "hatang_ups_battery_temperature_celsius": None if temperature == 255 else temperature,
        "hatang_ups_on_battery": None if status in (None, 1) else float(status == 3),
        "hatang_ups_output_frequency_hertz": first("4.3.2.0", 10, "4.2.2.0", 1),
        "hatang_apc_ups_battery_replace": _map(scalar(rec, f"{UPS}.2.2.4.0"), lambda v: float(v == 2)),
        "hatang_apc_ups_battery_status": scalar(rec, f"{UPS}.2.1.1.0"),
        "hatang_apc_ups_output_status": status,
    }
    out: Expected = {name: {(): v} for name, v in values.items() if v is not None}
    if temperature is not None and temperature != 255:
        out["hatang_device_temperature_celsius"] = {("battery",): temperature}
    for name, high, adv, high_div, adv_div in (
            ("hatang_ups_input_voltage_volts", "3.3.1.0", "3.2.1.0", 10, 1),
            ("hatang_ups_input_frequency_hertz", "3.3.4.0", "3.2.4.0", 10, 1),
            ("hatang_ups_output_voltage_volts", "4.3.1.0", "4.2.1.0", 10, 1),
            ("hatang_ups_output_current_amperes", "4.3.4.0", "4.2.4.0", 10, 1),
            ("hatang_ups_output_load_ratio", "4.3.3.0", "4.2.3.0", 1000, 100)):
        if (v := first(high, high_div, adv, adv_div)) is not None:
            out[name] = {line: v}
    return out


def _div(value: float | None, divisor: float) -> float | None:
    return None if value is None else value / divisor


def _map(value: float | None, fn: Callable[[float], float]) -> float | None:
    return None if value is None else fn(value)


PDU = "1.3.6.1.4.1.318.1.1.26"  # PowerNet-MIB::rPDU2


def expect_apc_pdu(rec: snmprec.Recording) -> Expected:
    def present(col: str, absent: tuple[float, ...] = (-1,)) -> dict[str, float]:
        return {i: v for i, v in column(rec, col).items() if v not in absent}

    dev, phase, bank, probe = f"{PDU}.4.3.1", f"{PDU}.6.3.1", f"{PDU}.8.3.1", f"{PDU}.10.2.2.1"
    out: Expected = {
        "hatang_pdu_power_watts": {(i,): v * 10 for i, v in present(f"{dev}.5").items()},  # hundredths of kW
        "hatang_pdu_apparent_power_volt_amperes": {(i,): v * 10 for i, v in present(f"{dev}.16").items()},
        "hatang_pdu_power_factor_ratio": {(i,): v / 100 for i, v in present(f"{dev}.17").items()},
        "hatang_pdu_energy_joules_total": {(i,): v * 360000 for i, v in present(f"{dev}.9").items()},
        "hatang_pdu_load_state": {(i,): v for i, v in present(f"{dev}.4", (5,)).items()},  # notsupported(5)
        "hatang_device_power_supply_ok": {
            **{(i, "Power Supply 1"): float(v == 1) for i, v in present(f"{dev}.13", (3,)).items()},
            **{(i, "Power Supply 2"): float(v == 1) for i, v in present(f"{dev}.14", (3,)).items()}},
        "hatang_pdu_phase_current_amperes": {(i,): v / 10 for i, v in present(f"{phase}.5").items()},
        "hatang_pdu_phase_voltage_volts": {(i,): v for i, v in present(f"{phase}.6").items()},
        "hatang_pdu_phase_power_watts": {(i,): v * 10 for i, v in present(f"{phase}.7").items()},
        "hatang_pdu_phase_load_state": {(i,): v for i, v in present(f"{phase}.4").items()},
        "hatang_pdu_bank_current_amperes": {(i,): v / 10 for i, v in present(f"{bank}.5").items()},
        "hatang_pdu_bank_load_state": {(i,): v for i, v in present(f"{bank}.4").items()},
    }
    comms = column(rec, f"{probe}.6")  # rPDU2SensorTempHumidityStatusCommStatus: commsOK(2)
    out["hatang_device_temperature_celsius"] = {
        (i,): v / 10 for i, v in column(rec, f"{probe}.8").items() if comms.get(i) == 2}
    return out


UPS_MIB = "1.3.6.1.2.1.33.1"


def expect_huawei_ups(rec: snmprec.Recording) -> Expected:
    """UPS-MIB read with the Huawei UPS5000's units: voltages 0.1 V, frequencies 0.01 Hz, power 0.1 kW."""
    def lines(col: str, factor: float) -> dict[Key, float]:
        return {(i,): v * factor for i, v in column(rec, f"{UPS_MIB}.{col}").items()}

    frequency = scalar(rec, f"{UPS_MIB}.4.2.0")
    assert frequency is not None
    return {
        "hatang_ups_output_frequency_hertz": {(): frequency / 100},
        "hatang_ups_input_voltage_volts": lines("3.3.1.3", 0.1),
        "hatang_ups_input_frequency_hertz": lines("3.3.1.2", 0.01),
        "hatang_ups_output_voltage_volts": lines("4.4.1.2", 0.1),
        "hatang_ups_output_current_amperes": lines("4.4.1.3", 0.1),
        "hatang_ups_output_power_watts": lines("4.4.1.4", 100),
        "hatang_ups_output_load_ratio": {k: v for k, v in lines("4.4.1.5", 0.01).items() if v >= 0},
    }


@dataclass(frozen=True)
class Check:
    expect: Callable[[snmprec.Recording], Expected]
    keys: Mapping[str, tuple[str, ...]]  # family -> the labels that key its samples
    base: str | None  # the profile this one extends: its other families must be published unchanged


FORTIGATE_KEYS = {"hatang_device_cpu_utilization_ratio": ("component",),
                  "hatang_device_fan_ok": ("sensor",), "hatang_device_power_supply_ok": ("sensor",),
                  "hatang_device_memory_total_bytes": ("component",),
                  "hatang_device_memory_used_bytes": ("component",),
                  "hatang_fortinet_processor_usage_ratio": ("processor",),
                  "hatang_fortinet_hw_sensor_value": ("sensor",),
                  "hatang_fortinet_hw_sensor_alarm": ("sensor",)}
MIKROTIK_KEYS = {**{name: ("component", "gauge") for name, _ in MT_GAUGE_UNITS.values()},
                 "hatang_device_power_supply_ok": ("component", "gauge"),
                 "hatang_device_fan_ok": ("component", "gauge"), **HOST_HEALTH_KEYS}
APC_UPS_KEYS = {**{name: ("line",) for name in (
    "hatang_ups_input_voltage_volts", "hatang_ups_input_frequency_hertz", "hatang_ups_output_voltage_volts",
    "hatang_ups_output_current_amperes", "hatang_ups_output_load_ratio")},
    "hatang_device_temperature_celsius": ("component",)}
APC_PDU_KEYS = {"hatang_device_power_supply_ok": ("pdu", "component"),
                "hatang_device_temperature_celsius": ("probe_index",),
                **{f"hatang_pdu_{n}": ("phase_index",) for n in (
                    "phase_current_amperes", "phase_voltage_volts", "phase_power_watts", "phase_load_state")},
                **{f"hatang_pdu_{n}": ("bank_index",) for n in ("bank_current_amperes", "bank_load_state")}}
CHECKS: dict[str, Check] = {
    "fortinet-fortigate": Check(expect_fortigate, FORTIGATE_KEYS, None),
    "mikrotik-routeros": Check(expect_mikrotik, MIKROTIK_KEYS, "host"),
    "apc-ups": Check(expect_apc_ups, APC_UPS_KEYS, "ups"),
    "apc-pdu": Check(expect_apc_pdu, APC_PDU_KEYS, None),
    "huawei-ups": Check(expect_huawei_ups, {"hatang_ups_output_frequency_hertz": ()}, "ups"),
    "netsnmp-linux": Check(expect_host_health, HOST_HEALTH_KEYS, "host"),
    "windows": Check(expect_host_health, HOST_HEALTH_KEYS, "host"),
}
DEFAULT_KEYS = {"apc-pdu": ("pdu",), "huawei-ups": ("line",)}  # families not in keys: keyed by these labels


# --- polling ------------------------------------------------------------------------------------------


async def poll(rec: snmprec.Recording, profile: Profile) -> PollOutcome:
    handle = await snmprec.serve([snmprec.device(rec)])
    engine = SnmpEngine()
    try:
        target = await engine.target("127.0.0.1", handle.endpoints[0].port, Credentials("2c", "public"),
                                     timeout=2.0, retries=1)
        poller = DevicePoller(rec.name, target, [profile], deadline=120.0, timeout_errors=(SnmpTimeout,),
                              snmp_errors=(SnmpError,))
        return await poller.poll()
    finally:
        engine.close()
        handle.close()


def keyed(family: Family, keys: tuple[str, ...]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for sample in family.samples:
        labels = dict(sample.labels)
        key = tuple(labels.get(k, "") for k in keys)
        assert key not in out, (family.name, key)  # one sample per key: no duplicate series
        out[key] = sample.value
    return out


def assert_family(family: Family | None, expected: Mapping[Key, float], keys: tuple[str, ...]) -> None:
    actual = {} if family is None else keyed(family, keys)
    name = family.name if family is not None else "(absent)"
    assert actual.keys() == expected.keys(), name
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-12), (name, key)


def families(outcome: PollOutcome) -> dict[str, Family]:
    return {f.name: f for f in outcome.families}


@pytest.mark.parametrize("case_name", sorted(CASES))
async def test_vendor_profile_samples_match_the_recording(data_dir: Path, case_name: str) -> None:
    case = CASES[case_name]
    profiles = load_profiles()
    rec = load_case(data_dir, case)
    check = CHECKS[case.profile]
    outcome = await poll(rec, profiles[case.profile])
    assert outcome.up
    assert outcome.errors == ()
    published = families(outcome)
    expected = check.expect(rec)  # every family the profile defines; an empty one must be absent
    assert any(expected.values()), "the recording has what the profile reads"
    for name, values in expected.items():
        assert_family(published.get(name), values, check.keys.get(name, DEFAULT_KEYS.get(case.profile, ())))
    inherited: dict[str, Family] = {}
    if check.base is not None:
        # what the profile takes over from the one it extends is exactly what that profile publishes alone
        inherited = {name: family for name, family in families(await poll(rec, profiles[check.base])).items()
                     if name not in expected}
        for name, family in inherited.items():
            assert published[name].samples == family.samples, name
    assert set(published) <= set(expected) | set(inherited), set(published) - set(expected) - set(inherited)
    if case.profile in ("netsnmp-linux", "windows", "mikrotik-routeros"):
        assert_host_health_components(rec, published)
    if case.profile == "fortinet-fortigate":
        names = labels_of(rec, f"{FG}.3.2.1.2")  # fgHwSensorEntName
        for family in ("hatang_fortinet_hw_sensor_value", "hatang_device_fan_ok",
                       "hatang_device_power_supply_ok"):
            for sample in published[family].samples:
                labels = dict(sample.labels)
                if (sensor_name := names.get(labels["sensor"])) is not None:
                    assert labels["component"] == sensor_name


def assert_host_health_components(rec: snmprec.Recording, published: Mapping[str, Family]) -> None:
    """component is the hrDeviceDescr (CPUs) or hrStorageDescr (memory) of the sample's row."""
    for name, descr_column in HOST_HEALTH_COMPONENTS.items():
        family = published.get(name)
        index_label = HOST_HEALTH_KEYS[name][0]
        descrs = labels_of(rec, descr_column)
        for sample in family.samples if family is not None else ():
            labels = dict(sample.labels)
            if (descr := descrs.get(labels[index_label])) is not None:
                assert labels["component"] == descr, (name, labels)


def test_fan_and_power_supply_states_come_from_the_sensors_named_so(data_dir: Path) -> None:
    """FortiGate: every fan sensor and both supplies' state sensors of the recording (none in alarm);
    MikroTik (hand-made): the fan state row ok, psu1-state ok, psu2-state failed, and the mtxrHl* supplies."""
    fortigate = expect_fortigate(load_case(data_dir, CASES["fortinet-xcu"]))
    assert list(fortigate["hatang_device_fan_ok"].values()) == [1.0] * len(FG_FAN_NAMES)
    assert list(fortigate["hatang_device_power_supply_ok"].values()) == [1.0] * len(FG_PSU_NAMES)
    mikrotik = expect_mikrotik(load_case(data_dir, CASES["mikrotik-handmade"]))
    assert mikrotik["hatang_device_fan_ok"] == {("fan-state", "8"): 1.0}
    assert mikrotik["hatang_device_power_supply_ok"] == {
        ("psu", ""): 1, ("backup-psu", ""): 0, ("psu1-state", "9"): 1.0, ("psu2-state", "10"): 0.0}


async def test_huawei_ups5000_units_are_corrected_and_plain_ups_is_ten_times_off(data_dir: Path) -> None:
    """The UPS5000 sends UPS-MIB voltages in 0.1 V and frequencies in 0.01 Hz: huawei-ups gives raw / 10 and
    raw / 100; the plain `ups` profile on the same device reads 10x too high (V as 0.1 V x 10, Hz / 10)."""
    profiles = load_profiles()
    rec = load_case(data_dir, CASES["huawei-ups5000"])
    assert text(rec.get(oid(f"{UPS_MIB}.1.2.0"))) == "UPS5000"  # upsIdentModel.0: the premise
    corrected = families(await poll(rec, profiles["huawei-ups"]))
    plain = families(await poll(rec, profiles["ups"]))
    raw_in_v, raw_in_hz = column(rec, f"{UPS_MIB}.3.3.1.3"), column(rec, f"{UPS_MIB}.3.3.1.2")
    raw_out_v, raw_out_hz = column(rec, f"{UPS_MIB}.4.4.1.2"), scalar(rec, f"{UPS_MIB}.4.2.0")
    assert raw_in_v and raw_in_hz and raw_out_v and raw_out_hz is not None
    for name, raw, divisor in (("hatang_ups_input_voltage_volts", raw_in_v, 10),
                               ("hatang_ups_input_frequency_hertz", raw_in_hz, 100),
                               ("hatang_ups_output_voltage_volts", raw_out_v, 10)):
        fixed, naive = keyed(corrected[name], ("line",)), keyed(plain[name], ("line",))
        assert fixed == {(i,): pytest.approx(v / divisor) for i, v in raw.items()}, name
        assert naive == {k: pytest.approx(10 * v) for k, v in fixed.items()}, name
    fixed_hz = corrected["hatang_ups_output_frequency_hertz"].samples[0].value
    naive_hz = plain["hatang_ups_output_frequency_hertz"].samples[0].value
    assert fixed_hz == pytest.approx(raw_out_hz / 100) and naive_hz == pytest.approx(10 * fixed_hz)
    # the corrected readings are those of a 220/230 V, 50 Hz supply
    assert all(200 <= v / 10 <= 250 for v in raw_in_v.values()) and 49 <= raw_out_hz / 100 <= 51
    # output power in 0.1 kW: close to V x I (power factor 0.6..1), where W would be absurdly low
    volts, amps = raw_out_v["1"] / 10, column(rec, f"{UPS_MIB}.4.4.1.3")["1"] / 10
    watts = keyed(corrected["hatang_ups_output_power_watts"], ("line",))[("1",)]
    assert 0.6 * volts * amps <= watts <= volts * amps


async def test_apc_ups_falls_back_to_whole_units_without_high_precision_objects(data_dir: Path) -> None:
    """A card without the upsHighPrec* objects: the upsAdv* readings (whole units) are published instead."""
    profiles = load_profiles()
    full = load_case(data_dir, CASES["apc-ups-handmade"])
    high_prec = oid(f"{UPS}.2.3"), oid(f"{UPS}.3.3"), oid(f"{UPS}.4.3")
    rec = snmprec.Recording(full.name, {k: v for k, v in full.values.items()
                                        if not any(k[:len(p)] == p for p in high_prec)})
    assert len(rec.values) < len(full.values)
    outcome = await poll(rec, profiles["apc-ups"])
    assert outcome.errors == ()
    published = families(outcome)
    expected = expect_apc_ups(rec)
    assert expected["hatang_ups_input_voltage_volts"] == {("1",): scalar(rec, f"{UPS}.3.2.1.0")}
    for name, values in expected.items():
        assert_family(published.get(name), values, APC_UPS_KEYS.get(name, ()))


def answered_by(rec: snmprec.Recording, prefixes: list[OID]) -> set[OID]:
    """The probe subtrees in which the recording has an object (what a GETNEXT on each would find)."""
    return {p for p in prefixes if rec.column(p)}


def identity_of(rec: snmprec.Recording) -> DeviceIdentity:
    object_id = rec.get(oid("1.3.6.1.2.1.1.2.0"))
    descr = rec.get(oid("1.3.6.1.2.1.1.1.0"))
    return DeviceIdentity(
        ".".join(map(str, object_id.value)) if object_id is not None and isinstance(object_id.value, tuple)
        else None,
        descr.value.decode("utf-8", errors="replace") if descr is not None and isinstance(descr.value, bytes)
        else None)


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_choose_gives_each_recorded_device_its_vendor_profile(data_dir: Path, case_name: str) -> None:
    case = CASES[case_name]
    profiles = load_profiles()
    rec = load_case(data_dir, case)
    chosen = choose(profiles, identity_of(rec), answered_by(rec, probe_oids(profiles)))
    vendor = [name for name in chosen if (m := profiles[name].match) is not None
              and (m.sys_object_id is not None or m.sys_descr is not None)]
    assert vendor == [case.profile], chosen
    assert not set(profiles[case.profile].extends) & set(chosen), chosen  # the base is included, not added

"""Tests of the built-in profiles (against the MIBs' own OIDs), the format's validation, the docs, and the
profile catalog behind ``hatang profiles``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from agent.profile_catalog import list_profiles, show_profile
from agent.profiles import (
    BUILTIN_DIR,
    MetricSpec,
    Profile,
    TableSpec,
    UnknownProfileError,
    load_profiles,
    parse_oid,
)
from hatang.configfile import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs"
IF_ENTRY, IFX_ENTRY = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
SENSOR_ENTRY = "1.3.6.1.2.1.99.1.1.1"
ENTITY_NAMES = "1.3.6.1.2.1.47.1.1.1.1."  # ENTITY-MIB entPhysicalEntry: names and classes of entities
HOST_MIBS = ["1.3.6.1.2.1.25.", "1.3.6.1.4.1.2021."]  # HOST-RESOURCES-MIB, UCD-SNMP-MIB
UPS_MIB = "1.3.6.1.2.1.33.1."
# MIB subtrees each built-in profile may read or probe (a typo in an OID usually lands outside them)
SUBTREES = {
    "system": ["1.3.6.1.2.1.1."],
    "interfaces": [f"{IF_ENTRY}.", f"{IFX_ENTRY}."],
    "host": HOST_MIBS,
    "ups": [UPS_MIB],
    "sensors": [f"{SENSOR_ENTRY}.", ENTITY_NAMES],
    # LLDP-MIB lldpLocalSystemData/lldpRemTable, CISCO-CDP-MIB, IF-MIB ifName of the CDP rows
    "neighbors": ["1.0.8802.1.1.2.1.3.", "1.0.8802.1.1.2.1.4.", "1.3.6.1.4.1.9.9.23.1.", f"{IFX_ENTRY}."],
    "huawei-vrp": ["1.3.6.1.4.1.2011.5.25.31.", ENTITY_NAMES],  # HUAWEI-ENTITY-EXTENT-MIB
    # CISCO-PROCESS-MIB, CISCO-MEMORY-POOL-MIB, CISCO-ENVMON-MIB, CISCO-ENTITY-SENSOR-MIB
    "cisco-ios": ["1.3.6.1.4.1.9.9.109.", "1.3.6.1.4.1.9.9.48.", "1.3.6.1.4.1.9.9.13.", "1.3.6.1.4.1.9.9.91.",
                  ENTITY_NAMES],
    "h3c-comware": ["1.3.6.1.4.1.25506.2.6.", "1.3.6.1.4.1.2011.10.2.6.", ENTITY_NAMES],  # (H)H3C-ENTITY-EXT
    "juniper-junos": ["1.3.6.1.4.1.2636.3.1."],  # JUNIPER-MIB jnxBoxAnatomy
    "ruijie-rgos": ["1.3.6.1.4.1.4881.1.1.10.2.35.", "1.3.6.1.4.1.4881.1.1.10.2.36."],  # MEMORY, PROCESS
    "zte-zxr10": ["1.3.6.1.4.1.3902.3.3."],  # ZXR10-MIB zxr10SystemUnitTable
    "fortinet-fortigate": ["1.3.6.1.4.1.12356.101.4."],  # FORTINET-FORTIGATE-MIB fgSystem
    "mikrotik-routeros": [*HOST_MIBS, "1.3.6.1.4.1.14988.1.1.3."],  # + MIKROTIK-MIB mtxrHealth
    "apc-ups": ["1.3.6.1.4.1.318.1.1.1.", UPS_MIB],  # PowerNet-MIB ups (+ UPS-MIB from `ups`)
    "apc-pdu": ["1.3.6.1.4.1.318.1.1.26."],  # PowerNet-MIB rPDU2
    "huawei-ups": [UPS_MIB, "1.3.6.1.4.1.2011.6.174."],  # UPS-MIB, Huawei hwUps (probed)
    "netsnmp-linux": HOST_MIBS,
    "windows": HOST_MIBS,
}
STANDARD = ("system", "interfaces", "host", "ups", "sensors")
# the normalised device health families (docs/metrics.md "Device health (vendor profiles)"): one meaning,
# help and type across vendors; their help points to docs/metrics.md, which names each vendor's object
HEALTH = ("hatang_device_cpu_utilization_ratio", "hatang_device_memory_used_bytes",
          "hatang_device_memory_total_bytes", "hatang_device_temperature_celsius", "hatang_device_fan_ok",
          "hatang_device_power_supply_ok")


@pytest.fixture(scope="module")
def builtin() -> dict[str, Profile]:
    return load_profiles()


def all_metrics(profile: Profile) -> list[MetricSpec]:
    return [*profile.scalars, *(m for t in profile.tables for m in t.metrics)]


def metric(profile: Profile, name: str) -> MetricSpec:
    [found] = [m for m in all_metrics(profile) if m.name == name]
    return found


def table(profile: Profile, name: str) -> TableSpec:
    [found] = [t for t in profile.tables if t.name == name]
    return found


def every_oid(profile: Profile) -> list[str]:
    """Every OID the profile reads (values, fallbacks, helpers, filters, labels and the columns they go
    through) or probes (its match's subtrees)."""
    oids: list[str] = []
    for m in all_metrics(profile):
        oids.extend(o for o in (m.oid, m.multiply_by, m.add) if o)
        oids.extend(x.oid for x in (m.fallback,) if x)
        oids.extend(c.oid for c in m.filter)
        oids.extend(label.oid for label in m.labels.values())
        if m.scale_from:
            oids.extend(o for o in (m.scale_from.si_prefix, m.scale_from.precision) if o)
    for t in profile.tables:
        oids.extend(label.oid for label in t.labels.values())
        oids.extend(label.via for label in t.labels.values() if label.via)
    if profile.uptime:
        oids.append(profile.uptime.oid)
    if profile.match:
        oids.extend([*profile.match.answers, *profile.match.answers_any])
    return oids


def test_every_shipped_profile_loads_and_has_its_mibs_listed_here(builtin: dict[str, Profile]) -> None:
    assert set(builtin) == set(SUBTREES) == {p.stem for p in BUILTIN_DIR.glob("*.yaml")}
    for name, profile in builtin.items():
        assert profile.description, name


@pytest.mark.parametrize("name", sorted(SUBTREES))
def test_builtin_oids_stay_in_their_mibs(builtin: dict[str, Profile], name: str) -> None:
    oids = every_oid(builtin[name])
    assert oids, name
    for oid in oids:
        assert any(f"{oid}.".startswith(prefix) for prefix in SUBTREES[name]), f"{name}: {oid}"


def test_vendor_profiles_match_by_their_vendors_identity(builtin: dict[str, Profile]) -> None:
    """Every profile beyond the standard ones and neighbors says which devices it fits: sysObjectID
    prefixes under an enterprise (1.3.6.1.4.1.N), so `profiles: auto` never gives it to every device."""
    for name, profile in builtin.items():
        if name in (*STANDARD, "neighbors"):
            continue
        assert profile.match is not None and profile.match.sys_object_id, name
        assert all(p.startswith("1.3.6.1.4.1.") for p in profile.match.sys_object_id), name


@pytest.mark.parametrize("name", sorted(SUBTREES))
def test_builtin_help_names_the_mib_object(builtin: dict[str, Profile], name: str) -> None:
    for m in all_metrics(builtin[name]):
        if m.name in HEALTH:
            continue  # one help across vendors (below); docs/metrics.md names each vendor's object
        assert re.search(r"[A-Za-z0-9-]+-MIB::\w+", m.help), f"{name}: {m.name}: {m.help}"


def test_the_health_families_mean_the_same_in_every_profile(builtin: dict[str, Profile]) -> None:
    helps: dict[str, set[str]] = {name: set() for name in HEALTH}
    for profile in builtin.values():
        for m in all_metrics(profile):
            if m.name in HEALTH:
                helps[m.name].add(m.help)
                assert m.type == "gauge", (profile.name, m.name)
            if m.name.endswith("_ok"):  # 1 ok / 0 failed: a yes/no of the vendor's state, or a BoolValue
                assert m.equals is not None or (m.valid is not None and m.valid.min == 0 and m.valid.max == 1
                                                and m.scale == 1.0), (profile.name, m.name)
    for name, texts in helps.items():
        assert len(texts) == 1, (name, texts)  # one family, one help, whichever vendor sends it
        assert "docs/metrics.md" in next(iter(texts)) or name.endswith("_ok"), name


def test_metric_names_follow_the_unit_conventions(builtin: dict[str, Profile]) -> None:
    for profile in builtin.values():
        for m in all_metrics(profile):
            if m.type == "counter":
                assert m.name.endswith("_total"), m.name
            else:
                assert not m.name.endswith("_total"), m.name
            if "_ratio" in m.name:
                # percentages become 0..1; APC's upsHighPrec* readings are tenths of a percent (/ 1000),
                # and the help says so
                assert m.scale in (0.01, 0.001), f"{profile.name}: {m.name}: scale {m.scale}"
                assert m.scale == 0.01 or "/ 1000" in m.help, f"{profile.name}: {m.name}"
                assert m.fallback is None or m.fallback.scale in (0.01, 0.001), f"{profile.name}: {m.name}"


def test_system_profile_detects_reboots_from_sys_up_time(builtin: dict[str, Profile]) -> None:
    uptime = builtin["system"].uptime
    assert uptime is not None
    assert uptime.oid == "1.3.6.1.2.1.1.3.0"
    assert uptime.boot_time.name == "hatang_device_boot_time_seconds"
    assert uptime.reboots is not None and uptime.reboots.name == "hatang_device_reboots_total"


def test_interfaces_packets_pair_hc_with_32_bit_columns(builtin: dict[str, Profile]) -> None:
    interfaces = builtin["interfaces"]
    expected = {  # IF-MIB: ifXTable HC column -> 32-bit column (ifTable or ifXTable)
        "in_unicast": (f"{IFX_ENTRY}.7", f"{IF_ENTRY}.11"),
        "in_multicast": (f"{IFX_ENTRY}.8", f"{IFX_ENTRY}.2"),
        "in_broadcast": (f"{IFX_ENTRY}.9", f"{IFX_ENTRY}.3"),
        "out_unicast": (f"{IFX_ENTRY}.11", f"{IF_ENTRY}.17"),
        "out_multicast": (f"{IFX_ENTRY}.12", f"{IFX_ENTRY}.4"),
        "out_broadcast": (f"{IFX_ENTRY}.13", f"{IFX_ENTRY}.5"),
    }
    for what, (hc, low) in expected.items():
        m = metric(interfaces, f"hatang_interface_{what}_packets_total")
        assert (m.type, m.oid, m.fallback and m.fallback.oid) == ("counter", hc, low)
    last_change = metric(interfaces, "hatang_interface_last_change_timestamp_seconds")
    assert (last_change.oid, last_change.scale, last_change.as_timestamp) == (f"{IF_ENTRY}.9", 0.01, True)
    labels = {name: label.oid for name, label in interfaces.tables[0].labels.items()}
    assert labels["if_type"] == f"{IF_ENTRY}.3"


def test_interfaces_keeps_its_contract_names(builtin: dict[str, Profile]) -> None:
    names = {m.name for m in all_metrics(builtin["interfaces"])}
    assert names >= {
        "hatang_interface_in_bytes_total", "hatang_interface_out_bytes_total",
        "hatang_interface_in_errors_total", "hatang_interface_out_errors_total",
        "hatang_interface_in_discards_total", "hatang_interface_out_discards_total",
        "hatang_interface_oper_status", "hatang_interface_admin_status", "hatang_interface_speed_bytes"}


def test_host_storage_is_in_bytes_per_mount(builtin: dict[str, Profile]) -> None:
    storage = table(builtin["host"], "storage")
    assert storage.labels["mount"].oid == "1.3.6.1.2.1.25.2.3.1.3"
    kinds = storage.labels["storage_type"]
    assert kinds.oid == "1.3.6.1.2.1.25.2.3.1.2"
    assert set(kinds.map) == {f"1.3.6.1.2.1.25.2.1.{n}" for n in range(1, 11)}  # HOST-RESOURCES-TYPES
    for name, column in (("size", 5), ("used", 6)):
        m = metric(builtin["host"], f"hatang_host_storage_{name}_bytes")
        assert (m.oid, m.multiply_by) == (f"1.3.6.1.2.1.25.2.3.1.{column}", "1.3.6.1.2.1.25.2.3.1.4")
    cpu = metric(builtin["host"], "hatang_host_cpu_load_ratio")
    assert (cpu.oid, cpu.scale, table(builtin["host"], "processors").index_label) == (
        "1.3.6.1.2.1.25.3.3.1.2", 0.01, "cpu")


def test_host_ucd_memory_is_kilobytes_and_cpu_ticks_cover_the_raw_counters(
    builtin: dict[str, Profile],
) -> None:
    host = builtin["host"]
    memory = [m for m in host.scalars if "_memory_" in m.name or "_swap_" in m.name]
    assert len(memory) == 7
    for m in memory:
        assert m.oid is not None and m.oid.startswith("1.3.6.1.4.1.2021.4.") and m.scale == 1024
        assert m.fallback is None or m.fallback.scale == 1024
    ticks = [m for m in host.scalars if m.name == "hatang_host_cpu_ticks_total"]
    modes = {m.const_labels["mode"]: m.oid for m in ticks}
    assert modes["user"] == "1.3.6.1.4.1.2021.11.50.0"  # ssCpuRawUser
    assert modes["idle"] == "1.3.6.1.4.1.2021.11.53.0"  # ssCpuRawIdle
    assert modes["wait"] == "1.3.6.1.4.1.2021.11.54.0"  # ssCpuRawWait
    assert len(set(modes.values())) == len(ticks) == 11
    assert len({m.help for m in ticks}) == 1  # one family: one help


def test_ups_profile_follows_rfc_1628(builtin: dict[str, Profile]) -> None:
    ups = builtin["ups"]
    expected = {  # name: (oid, scale)
        "hatang_ups_battery_status": ("1.3.6.1.2.1.33.1.2.1.0", 1.0),
        "hatang_ups_time_on_battery_seconds": ("1.3.6.1.2.1.33.1.2.2.0", 1.0),
        "hatang_ups_battery_runtime_seconds": ("1.3.6.1.2.1.33.1.2.3.0", 60.0),
        "hatang_ups_battery_charge_ratio": ("1.3.6.1.2.1.33.1.2.4.0", 0.01),
        "hatang_ups_output_source": ("1.3.6.1.2.1.33.1.4.1.0", 1.0),
        "hatang_ups_input_voltage_volts": ("1.3.6.1.2.1.33.1.3.3.1.3", 1.0),
        "hatang_ups_output_voltage_volts": ("1.3.6.1.2.1.33.1.4.4.1.2", 1.0),
        "hatang_ups_output_load_ratio": ("1.3.6.1.2.1.33.1.4.4.1.5", 0.01),
    }
    for name, (oid, scale) in expected.items():
        m = metric(ups, name)
        assert (m.oid, m.scale) == (oid, scale), name
    on_battery = metric(ups, "hatang_ups_on_battery")
    assert (on_battery.oid, on_battery.equals) == ("1.3.6.1.2.1.33.1.4.1.0", [5])


def test_sensor_metrics_split_the_sensor_types_without_overlap(builtin: dict[str, Profile]) -> None:
    sensors = builtin["sensors"].tables[0]
    assert sensors.labels["entity_name"].oid == "1.3.6.1.2.1.47.1.1.1.1.7"  # entPhysicalName
    assert sensors.labels["sensor_type"].oid == f"{SENSOR_ENTRY}.1"
    covered: list[str] = []
    for m in sensors.metrics:
        if m.name == "hatang_sensor_status":
            assert m.oid == f"{SENSOR_ENTRY}.5" and not m.filter
            continue
        assert m.oid == f"{SENSOR_ENTRY}.4"
        assert m.scale_from is not None
        assert (m.scale_from.si_prefix, m.scale_from.precision) == (f"{SENSOR_ENTRY}.2", f"{SENSOR_ENTRY}.3")
        by_oid = {c.oid: c for c in m.filter}
        assert by_oid[f"{SENSOR_ENTRY}.5"].none_of == ["2", "3"]
        covered.extend(by_oid[f"{SENSOR_ENTRY}.1"].any_of or [])
    assert sorted(covered, key=int) == [str(n) for n in range(1, 13)]  # EntitySensorDataType 1..12, once each
    assert metric(builtin["sensors"], "hatang_sensor_temperature_celsius").filter[0].any_of == ["8"]


# --- documentation ------------------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The body of a markdown section (up to the next heading of the same or a higher level)."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert match is not None, heading
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end():end.start() if end else len(text)]


def test_every_builtin_metric_is_documented(builtin: dict[str, Profile]) -> None:
    metrics_md = (DOCS / "metrics.md").read_text(encoding="utf-8")
    profiles_md = (DOCS / "profiles.md").read_text(encoding="utf-8")
    for name, profile in builtin.items():
        assert f"`{name}`" in profiles_md, name
        names = {m.name for m in all_metrics(profile)}
        if profile.uptime:
            names.add(profile.uptime.boot_time.name)
            names |= {profile.uptime.reboots.name} if profile.uptime.reboots else set()
        for metric_name in names:
            assert f"`{metric_name}`" in metrics_md, metric_name


def test_the_vendor_profiles_and_their_health_sources_are_documented(builtin: dict[str, Profile]) -> None:
    """docs/profiles.md's vendor table has a row per vendor profile; docs/metrics.md's health section
    defines the six families and names every profile that publishes one of them (its source objects)."""
    vendor_rows = section((DOCS / "profiles.md").read_text(encoding="utf-8"), "Vendor profiles")
    health = section((DOCS / "metrics.md").read_text(encoding="utf-8"), "Device health (vendor profiles)")
    for family in HEALTH:
        assert f"`{family}`" in health, family
    for name, profile in builtin.items():
        if name in (*STANDARD, "neighbors"):
            continue
        assert re.search(rf"^\| `{re.escape(name)}` \|", vendor_rows, re.MULTILINE), name
        if {m.name for m in all_metrics(profile)} & set(HEALTH):
            assert f"`{name}`" in health, name


def test_format_extensions_are_documented() -> None:
    profiles_md = (DOCS / "profiles.md").read_text(encoding="utf-8")
    keys = ("multiply_by", "scale_from", "si_prefix", "precision", "filter", "any_of", "none_of", "equals",
            "const_labels", "as_timestamp", "last_arc", "map", "uptime", "boot_time", "reboots", "extends",
            "match", "sys_object_id", "sys_descr", "answers", "answers_any", "index_arcs", "via", "add",
            "matches")
    for key in keys:
        assert re.search(rf"`[^`]*\b{key}\b[^`]*`", profiles_md), key  # named in code, as written in a file


# --- validation of user profiles ----------------------------------------------------------------------


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


TABLE = "name: p\ntables:\n  - name: t\n    index_label: idx\n"
M = "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h"  # a table metric, to be continued


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        (TABLE + "    labels: {device: 1.3.6.1.2}\n" + M + "}]\n",
         "tables[0].labels", "set by the collector"),
        ("name: p\ntables:\n  - {name: t, index_label: instance, metrics: []}\n", "tables[0].index_label",
         "set by the collector"),
        (TABLE + "    labels: {idx: 1.3.6.1.2}\n    metrics: []\n", "tables[0]", "both index_label"),
        (TABLE + "    metrics: [{name: hatang_device_up, type: gauge, oid: 1.3.6.1, help: h}]\n",
         "tables[0].metrics[0].name", "reserved for the collector"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, filter: [{oid: 1.3.6.1.2}]}]\n",
         "tables[0].metrics[0].filter[0]", "exactly one of any_of, none_of or matches"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h,\n"
                 "               filter: [{oid: 1.3.6.1.2, any_of: [1], none_of: [2]}]}]\n",
         "tables[0].metrics[0].filter[0]", "exactly one of any_of, none_of or matches"),
        (TABLE + M + ", filter: [{oid: x, any_of: [1]}]}]\n",
         "tables[0].metrics[0].filter[0].oid", "numeric OID"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, scale_from: {}}]\n",
         "tables[0].metrics[0].scale_from", "si_prefix, precision or both"),
        (TABLE + M + ", scale_from: {prefix: 1.3.6}}]\n",
         "tables[0].metrics[0].scale_from.prefix", "unknown key"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, multiply_by: ifSpeed}]\n",
         "tables[0].metrics[0].multiply_by", "numeric OID"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, const_labels: {idx: a}}]\n",
         "tables[0].metrics[0].const_labels", "already label the table's rows"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, const_labels: {job: a}}]\n",
         "tables[0].metrics[0].const_labels", "set by the collector"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, labels: {a: 1.3.6.1.9}}]\n",
         "tables[0].metrics[0].labels", "take their labels from the table"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h},\n"
                 "              {name: m, type: counter, oid: 1.3.6.2, help: h}]\n",
         "tables[0].metrics[1]", "is a counter here but a gauge"),
        (TABLE + "    metrics: [{name: m, type: gauge, oid: 1.3.6.1, help: h, equals: five}]\n",
         "tables[0].metrics[0].equals[0]", "integer"),
        (TABLE + "    labels: {k: {oid: 1.3.6.1.2, last_arc: maybe}}\n    metrics: []\n",
         "tables[0].labels.k.last_arc", "boolean"),
        ("name: p\nuptime: {oid: 1.3.6.1.2.1.1.3.0}\n", "uptime.boot_time", "missing"),
        ("name: p\nuptime: {oid: 1.3.6.1.2.1.1.3.0, boot_time: {name: b, help: h, type: gauge}}\n",
         "uptime.boot_time.type", "unknown key"),
    ],
)
def test_invalid_extension_reports_file_and_key(tmp_path: Path, body: str, key: str, fragment: str) -> None:
    path = write(tmp_path, "p", body)
    with pytest.raises(ConfigError) as info:
        load_profiles(tmp_path)
    assert info.value.path == str(path)
    keys = [k for k, _ in info.value.problems]
    assert key in keys, info.value.problems
    assert fragment in dict(info.value.problems)[key]


def test_extensions_accept_single_values_and_plain_label_oids(tmp_path: Path) -> None:
    write(tmp_path, "p", """\
        name: p
        scalars:
          - {name: on_x, type: gauge, oid: .1.3.6.1.4.1.1.0, equals: 5, help: h}
        tables:
          - name: t
            index_label: idx
            labels: {a: .1.3.6.1.4.1.2.1, b: {oid: 1.3.6.1.4.1.2.2, map: {1: one}}}
            metrics:
              - {name: m, type: gauge, oid: 1.3.6.1.4.1.2.3, help: h,
                 filter: [{oid: 1.3.6.1.4.1.2.4, any_of: 7}]}
        """)
    profile = load_profiles(tmp_path)["p"]
    assert profile.scalars[0].equals == [5]
    labels = profile.tables[0].labels
    assert (labels["a"].oid, labels["b"].map) == ("1.3.6.1.4.1.2.1", {"1": "one"})
    assert profile.tables[0].metrics[0].filter[0].any_of == ["7"]
    assert profile.scalar_oids() == [parse_oid("1.3.6.1.4.1.1.0")]


# --- catalog ------------------------------------------------------------------------------------------


def test_list_profiles_shows_builtins_and_user_profiles_with_origin(tmp_path: Path) -> None:
    write(tmp_path, "pdu", """\
        name: pdu
        description: "Rack PDU outlets"
        scalars:
          - {name: hatang_pdu_load_amperes, type: gauge, oid: 1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1, help: h}
        """)
    user_system = write(tmp_path, "system", "name: system\ndescription: my own system\n")
    text = list_profiles(tmp_path)
    lines = {line.split()[0]: line for line in text.splitlines() if line and not line.startswith("Show")}
    assert set(lines) == {"PROFILE", *SUBTREES, "pdu"}
    assert "built-in" in lines["ups"] and "RFC 1628" in lines["ups"]
    assert str(tmp_path / "pdu.yaml") in lines["pdu"] and "Rack PDU outlets" in lines["pdu"]
    assert str(user_system) in lines["system"] and "replaces the built-in" in lines["system"]
    assert "built-in" in list_profiles(None).splitlines()[1]


@pytest.mark.parametrize("name", sorted(SUBTREES))
def test_show_profile_lists_every_metric_with_type_oid_and_help(builtin: dict[str, Profile],
                                                                 name: str) -> None:
    text = show_profile(name)
    assert text.startswith(f"profile: {name}\norigin: built-in\n")
    flat = " ".join(text.split())
    for m in all_metrics(builtin[name]):
        assert f"{m.name} [" in flat
        assert f"[{m.type}]" in flat or m.type == "info"
        if m.oid:
            assert f"oid: {m.oid}" in flat
        assert " ".join(m.help.split()) in flat


def test_show_profile_explains_transforms() -> None:
    flat = " ".join(show_profile("host").split())
    assert "x value of 1.3.6.1.2.1.25.2.3.1.4" in flat
    assert 'labels mode="idle"' in flat
    assert "else 1.3.6.1.4.1.2021.10.1.5.1 x 0.01" in flat
    assert "1 if value in 5, else 0" in " ".join(show_profile("ups").split())
    assert "reboot detection from 1.3.6.1.2.1.1.3.0" in show_profile("system")


def test_show_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    known = ", ".join(sorted(SUBTREES))
    with pytest.raises(UnknownProfileError, match=f"unknown profile 'upss'; known: {known}"):
        show_profile("upss", tmp_path)


def test_catalog_reports_a_broken_user_profile(tmp_path: Path) -> None:
    write(tmp_path, "bad", "name: bad\nscalars: [{name: x, type: gauge, oid: 1.3.6, help: h, scael: 2}]\n")
    with pytest.raises(ConfigError, match=r"scalars\[0\]\.scael"):
        list_profiles(tmp_path)

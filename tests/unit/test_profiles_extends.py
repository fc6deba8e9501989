"""``extends``: a profile includes other profiles' scalars, tables and uptime, replacing the ones it
defines itself by name; unknown bases, cycles and conflicts are errors naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.profiles import OID, Profile, extended_by, load_profile_files, load_profiles, parse_oid
from hatang.configfile import ConfigError


def write(directory: Path, name: str, **doc: Any) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **doc}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def gauge(name: str, oid: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "type": "gauge", "oid": oid, "help": f"{name} (test)", **more}


def table(name: str, *metrics: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "index_label": "index", "metrics": list(metrics)}


def polled_oids(profile: Profile) -> set[OID]:
    """Every OID the poller reads for the profile: its GET and its table columns."""
    columns = {src.parsed for t in profile.tables for m in t.metrics for src in (m.source, m.fallback) if src}
    return set(profile.scalar_oids()) | columns


@pytest.fixture
def user(tmp_path: Path) -> Path:
    return tmp_path / "profiles"


def test_an_extending_profile_polls_its_bases_oids_and_its_own(user: Path) -> None:
    write(user, "vendor", extends=["sensors", "system"],
          scalars=[gauge("hatang_device_cpu_utilization_ratio", "1.3.6.1.4.1.2011.1.0", scale=0.01)])
    profiles = load_profiles(user)
    vendor, sensors, system = profiles["vendor"], profiles["sensors"], profiles["system"]
    assert vendor.extends == ["sensors", "system"]
    own = parse_oid("1.3.6.1.4.1.2011.1.0")
    assert polled_oids(vendor) == polled_oids(sensors) | polled_oids(system) | {own}
    assert vendor.uptime == system.uptime  # the base's reboot detection comes along
    assert [t.name for t in vendor.tables] == ["sensors"]
    assert [m.name for m in vendor.scalars][-1] == "hatang_device_cpu_utilization_ratio"  # bases first
    assert vendor.match is None  # match is not inherited: only by name until it has its own


def test_a_metric_defined_here_replaces_the_bases_by_name_in_scalars_and_tables(user: Path) -> None:
    """A Huawei UPS5000 reports UPS-MIB frequencies in 0.01 Hz: the vendor profile redefines them."""
    write(user, "ups-centi", extends=["ups"], scalars=[
        gauge("hatang_ups_output_frequency_hertz", "1.3.6.1.2.1.33.1.4.2.0", scale=0.01),
        gauge("hatang_ups_input_frequency_hertz", "1.3.6.1.2.1.33.1.3.3.1.2.1", scale=0.01),
    ])
    merged, base = load_profiles(user)["ups-centi"], load_profiles()["ups"]
    scalars = {m.name: m for m in merged.scalars}
    assert scalars["hatang_ups_output_frequency_hertz"].scale == 0.01
    assert sum(m.name == "hatang_ups_output_frequency_hertz" for m in merged.scalars) == 1
    assert len(merged.scalars) == len(base.scalars) + 1  # one replaced, one added
    tables = {t.name: [m.name for m in t.metrics] for t in merged.tables}
    assert tables["input"] == ["hatang_ups_input_voltage_volts"]  # the frequency column left the table
    assert tables["output"] == [m.name for m in base.tables[1].metrics]


def test_a_table_defined_here_replaces_the_bases_table_of_that_name(user: Path) -> None:
    write(user, "ifaces", extends=["interfaces"], tables=[
        table("interfaces", gauge("hatang_interface_oper_status", "1.3.6.1.2.1.2.2.1.8"))])
    [interfaces] = load_profiles(user)["ifaces"].tables
    assert [m.name for m in interfaces.metrics] == ["hatang_interface_oper_status"]
    assert interfaces.labels == {}


def test_a_base_table_left_without_metrics_is_dropped(user: Path) -> None:
    write(user, "base", tables=[table("t", gauge("hatang_test_a", "1.3.6.1.4.1.99999.1.1"))])
    write(user, "child", extends="base", scalars=[gauge("hatang_test_a", "1.3.6.1.4.1.99999.2.0")])
    child = load_profiles(user)["child"]
    assert child.tables == [] and [m.oid for m in child.scalars] == ["1.3.6.1.4.1.99999.2.0"]


def test_extends_is_transitive_and_a_diamond_includes_the_shared_base_once(user: Path) -> None:
    write(user, "a", scalars=[gauge("hatang_test_a", "1.3.6.1.4.1.99999.1.0")],
          tables=[table("ta", gauge("hatang_test_ta", "1.3.6.1.4.1.99999.9.1"))])
    write(user, "b", extends=["a"], scalars=[gauge("hatang_test_b", "1.3.6.1.4.1.99999.2.0")])
    write(user, "c", extends=["a"], scalars=[gauge("hatang_test_c", "1.3.6.1.4.1.99999.3.0")])
    write(user, "d", extends=["b", "c"], scalars=[gauge("hatang_test_d", "1.3.6.1.4.1.99999.4.0")])
    profiles = load_profiles(user)
    assert [m.name for m in profiles["d"].scalars] == ["hatang_test_a", "hatang_test_b", "hatang_test_c",
                                                        "hatang_test_d"]
    assert [t.name for t in profiles["d"].tables] == ["ta"]
    assert extended_by(profiles, "d") == {"a", "b", "c"}
    assert extended_by(profiles, "a") == set()


def test_a_user_profile_replacing_a_base_is_what_its_extenders_include(user: Path) -> None:
    write(user, "system", scalars=[gauge("hatang_device_uptime_seconds", "1.3.6.1.2.1.1.3.0", scale=0.01)])
    write(user, "vendor", extends=["system"])
    vendor = load_profiles(user)["vendor"]
    assert [m.name for m in vendor.scalars] == ["hatang_device_uptime_seconds"] and vendor.uptime is None


@pytest.mark.parametrize(("docs", "failing", "key", "words"), [
    ({"v": {"extends": ["nope"]}}, "v", "extends[0]", "unknown profile 'nope'; known:"),
    ({"v": {"extends": ["v"]}}, "v", "extends[0]", "cycle: v -> v"),
    ({"a": {"extends": ["b"]}, "b": {"extends": ["c"]}, "c": {"extends": ["a"]}}, "c", "extends[0]",
     "cycle: a -> b -> c -> a"),
    ({"v": {"extends": ["system", "system"]}}, "v", "extends", "system listed twice"),
    ({"v": {"extends": ["system", "w"]}, "w": {"uptime": {
        "oid": "1.3.6.1.4.1.99999.3.0", "boot_time": {"name": "hatang_test_boot", "help": "x"}}}},
     "v", "extends", "both have an uptime block"),
    ({"v": {"extends": ["x", "y"]}, "x": {"tables": [table("t", gauge("hatang_test_x", "1.3.6.1.4.1.1.1"))]},
      "y": {"tables": [table("t", gauge("hatang_test_y", "1.3.6.1.4.1.1.2"))]}},
     "v", "extends", "both have a table named 't'"),
    ({"v": {"extends": ["x", "y"]}, "x": {"scalars": [gauge("hatang_test_m", "1.3.6.1.4.1.1.1.0")]},
      "y": {"scalars": [{"name": "hatang_test_m", "type": "counter", "oid": "1.3.6.1.4.1.1.2.0",
                         "help": "x"}]}},
     "v", "scalars[1] (with the profiles it extends)", "is a counter here but a gauge at scalars[0]"),
    ({"v": {"extends": ["system"]}, "w": {"extends": ["system"], "scalars": [
        {"name": "hatang_device_boot_time_seconds", "type": "counter", "oid": "1.3.6.1.4.1.1.0",
         "help": "x"}]}}, "w", "uptime.boot_time (with the profiles it extends)",
     "a gauge here but a counter"),
])
def test_errors_name_the_file_and_key(user: Path, docs: dict[str, dict[str, Any]], failing: str, key: str,
                                      words: str) -> None:
    for name, doc in docs.items():
        doc.setdefault("scalars", [gauge(f"hatang_test_{name}_value", "1.3.6.1.4.1.99999.7.0")])
        write(user, name, **doc)
    with pytest.raises(ConfigError) as caught:
        load_profile_files(user)
    assert caught.value.path == str(user / f"{failing}.yaml")
    keys = [k for k, _ in caught.value.problems]
    assert any(k.startswith(key) for k in keys), caught.value.problems
    assert words in str(caught.value)

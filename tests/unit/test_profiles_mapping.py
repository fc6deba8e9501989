"""Tests of SNMP profiles (loading, user overrides, errors) and the pure mapping to metric families."""

from __future__ import annotations

import math
import textwrap
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import mapping
from agent.mapping import label_text, map_scalars, map_table, numeric
from agent.profiles import BUILTIN_DIR, Profile, TableSpec, load_profiles, parse_oid
from agent.snmp.values import ABSENT_KINDS, OID, SnmpValue
from hatang.configfile import ConfigError
from wire.messages import Family, Sample

COUNTER64_MAX = 2**64 - 1
ALIAS_VI = "Đường truyền số liệu chuyên dùng"

# IF-MIB columns (as the built-in interfaces profile names them)
IF_DESCR = parse_oid("1.3.6.1.2.1.2.2.1.2")
IF_SPEED = parse_oid("1.3.6.1.2.1.2.2.1.5")
IF_ADMIN = parse_oid("1.3.6.1.2.1.2.2.1.7")
IF_OPER = parse_oid("1.3.6.1.2.1.2.2.1.8")
IF_IN_OCTETS = parse_oid("1.3.6.1.2.1.2.2.1.10")
IF_IN_ERRORS = parse_oid("1.3.6.1.2.1.2.2.1.14")
IF_OUT_OCTETS = parse_oid("1.3.6.1.2.1.2.2.1.16")
IF_NAME = parse_oid("1.3.6.1.2.1.31.1.1.1.1")
IF_HC_IN = parse_oid("1.3.6.1.2.1.31.1.1.1.6")
IF_HC_OUT = parse_oid("1.3.6.1.2.1.31.1.1.1.10")
IF_HIGH_SPEED = parse_oid("1.3.6.1.2.1.31.1.1.1.15")
IF_ALIAS = parse_oid("1.3.6.1.2.1.31.1.1.1.18")

SYS_DESCR = parse_oid("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = parse_oid("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")


def octets(value: bytes | str) -> SnmpValue:
    return SnmpValue("octets", value.encode() if isinstance(value, str) else value)


def c32(value: int) -> SnmpValue:
    return SnmpValue("counter32", value)


def c64(value: int) -> SnmpValue:
    return SnmpValue("counter64", value)


def gauge(value: int) -> SnmpValue:
    return SnmpValue("gauge32", value)


def integer(value: int) -> SnmpValue:
    return SnmpValue("integer", value)


@pytest.fixture(scope="module")
def builtin() -> dict[str, Profile]:
    return load_profiles()


@pytest.fixture(scope="module")
def interfaces(builtin: dict[str, Profile]) -> TableSpec:
    return builtin["interfaces"].tables[0]


def by_name(families: list[Family]) -> dict[str, Family]:
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "one family per metric name"
    return {f.name: f for f in families}


def values_by_index(family: Family) -> dict[str, float]:
    return {dict(s.labels)["if_index"]: s.value for s in family.samples}


def write_profile(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def profile_error(user_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_profiles(user_dir)
    return info.value


# --- profiles --------------------------------------------------------------------------------------


def test_builtin_profiles_load(builtin: dict[str, Profile]) -> None:
    assert set(builtin) >= {"system", "interfaces"}
    assert {p.stem for p in BUILTIN_DIR.glob("*.yaml")} == set(builtin)
    system = builtin["system"]
    assert system.name == "system"
    assert [m.name for m in system.scalars] == ["hatang_device_uptime_seconds", "hatang_device_info"]
    assert system.scalar_oids() == [SYS_UPTIME, SYS_NAME, SYS_DESCR, SYS_OBJECT_ID]
    table = builtin["interfaces"].tables[0]
    assert table.index_label == "if_index"
    assert set(table.labels) == {"if_name", "if_alias", "if_descr", "if_type"}
    assert all(m.type in ("gauge", "counter") and m.oid for m in table.metrics)


def test_interfaces_columns_pair_hc_counters_with_their_32_bit_fallback(interfaces: TableSpec) -> None:
    pairs = dict(mapping.table_columns(interfaces))
    assert pairs[IF_HC_IN] == IF_IN_OCTETS
    assert pairs[IF_HC_OUT] == IF_OUT_OCTETS
    assert pairs[IF_HIGH_SPEED] == IF_SPEED
    assert pairs[IF_IN_ERRORS] is None
    assert pairs[IF_NAME] is None and pairs[IF_ALIAS] is None and pairs[IF_DESCR] is None


def test_user_profile_dir_adds_and_overrides_profiles(tmp_path: Path) -> None:
    write_profile(tmp_path, "ups", """\
        name: ups
        description: "UPS-MIB battery"
        scalars:
          - name: hatang_ups_battery_charge_ratio
            type: gauge
            oid: .1.3.6.1.2.1.33.1.2.4.0
            scale: 0.01
            help: "Battery charge (UPS-MIB::upsEstimatedChargeRemaining)."
        """)
    write_profile(tmp_path, "system", """\
        name: system
        scalars:
          - {name: hatang_custom_uptime_seconds, type: gauge, oid: 1.3.6.1.2.1.1.3.0, scale: 0.01, help: "x"}
        """)
    profiles = load_profiles(tmp_path)
    assert set(profiles) >= {"system", "interfaces", "ups"}
    assert [m.name for m in profiles["system"].scalars] == ["hatang_custom_uptime_seconds"]
    assert profiles["ups"].scalars[0].oid == "1.3.6.1.2.1.33.1.2.4.0"  # leading dot accepted
    assert profiles["interfaces"] == load_profiles()["interfaces"]


def test_user_profile_dir_ignores_non_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("not a profile", encoding="utf-8")
    (tmp_path / "old.yaml.bak").write_text("{{{", encoding="utf-8")
    assert set(load_profiles(tmp_path)) == set(load_profiles())


def test_broken_user_profile_names_file_and_key(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "ups", """\
        name: ups
        tables:
          - name: battery
            index_label: idx
            metrics:
              - {name: hatang_ups_x, type: gauge, oid: 1.3.6.1.2.1.33.1.2.4, help: h, scael: 2}
        """)
    error = profile_error(tmp_path)
    assert error.path == str(path)
    [(key, message)] = error.problems
    assert key == "tables[0].metrics[0].scael"
    assert "did you mean 'scale'?" in message
    assert str(error).startswith(f"{path}: tables[0].metrics[0].scael: unknown key")


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("name: other\n", "name", "must equal the file name 'ups'"),
        ("name: ups\nscalars:\n  - {name: hatang_x, type: gauge, help: h}\n", "scalars[0].oid",
         "required for gauge and counter"),
        ("name: ups\nscalars:\n  - {name: hatang_x, type: gauge, oid: 'iso.3.6', help: h}\n",
         "scalars[0].oid", "numeric OID"),
        ("name: ups\nscalars:\n  - {name: hatang-x, type: gauge, oid: 1.3.6.1, help: h}\n", "scalars[0].name",
         "Prometheus metric name"),
        ("name: ups\nscalars:\n  - {name: hatang_x, type: histogram, oid: 1.3.6.1, help: h}\n",
         "scalars[0].type", "gauge"),
        ("name: ups\nscalars:\n  - {name: hatang_x, type: info, help: h, labels: {sys-name: 1.3.6.1}}\n",
         "scalars[0].labels", "Prometheus label name"),
        ("name: ups\nscalars:\n  - {name: hatang_x, type: gauge, oid: 1.3.6.1}\n", "scalars[0].help",
         "missing"),
        ("name: ups\ntables:\n  - {name: t, index_label: i, metrics: [{name: m, type: info, help: h}]}\n",
         "tables[0].metrics[0]", "need an oid"),
        ("name: ups\ntables:\n  - {name: t, index_label: i, metrics: [{name: m, type: gauge, help: h}]}\n",
         "tables[0].metrics[0]", "need an oid"),
        ("name: ups\ntables:\n  - {name: t, metrics: []}\n", "tables[0].index_label", "missing"),
    ],
)
def test_invalid_user_profile_reports_the_key(tmp_path: Path, body: str, key: str, fragment: str) -> None:
    path = write_profile(tmp_path, "ups", body)
    error = profile_error(tmp_path)
    assert error.path == str(path)
    assert error.problems[0][0] == key
    assert fragment in error.problems[0][1]


def test_user_profile_with_bad_yaml_reports_line(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "ups", "name: ups\nscalars:\n  - {name: x, type: gauge\n")
    error = profile_error(tmp_path)
    assert error.path == str(path)
    assert "invalid YAML: line" in error.problems[0][1]


def test_missing_user_profile_dir_is_an_error(tmp_path: Path) -> None:
    error = profile_error(tmp_path / "absent")
    assert error.path == str(tmp_path / "absent")
    assert "profile directory not found" in str(error)


# --- label_text ------------------------------------------------------------------------------------


def test_label_text_keeps_vietnamese_utf8_intact() -> None:
    assert label_text(octets(ALIAS_VI.encode("utf-8"))) == ALIAS_VI
    assert label_text(octets("Vĩnh Phúc – Tam Đảo")) == "Vĩnh Phúc – Tam Đảo"


def test_label_text_keeps_decomposed_vietnamese_combining_marks() -> None:
    decomposed = unicodedata.normalize("NFD", ALIAS_VI)
    assert label_text(octets(decomposed)) == decomposed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Gi0/1\x00\x00\x00\x00", "Gi0/1"),  # NUL padding
        (ALIAS_VI.encode() + b"\x00" * 8, ALIAS_VI),
        (b"  uplink   to\tcore  ", "uplink to core"),  # whitespace collapsed
        (b"line1\r\nline2", "line1 line2"),
        (b"", ""),
        (b"\x00\x00\x00", ""),
    ],
)
def test_label_text_cleans_padding_and_whitespace(raw: bytes, expected: str) -> None:
    assert label_text(octets(raw)) == expected


def test_label_text_removes_control_characters() -> None:
    text = label_text(octets(b"Uplink\x07 to\x1b core\x7f router"))
    assert not any(unicodedata.category(ch) == "Cc" for ch in text)
    assert text.startswith("Uplink")
    assert text.endswith("router")
    assert "core" in text


@pytest.mark.parametrize("raw", [b"abc\xff", b"Gi0/1 \xc3", b"\xd0\xb0\x80xyz", b"caf\xe9 Ph\xfa"])
def test_label_text_replaces_invalid_utf8_without_raising(raw: bytes) -> None:
    text = label_text(octets(raw))
    assert "\ufffd" in text or all(c in "0123456789abcdef:" for c in text)
    assert raw[:2].decode("ascii", errors="ignore")[:1] in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00\x1a\x2b\x3c\x4d\x5e", "00:1a:2b:3c:4d:5e"),
        (b"\x00\x1a\x2b\x3c\x4d\x00", "00:1a:2b:3c:4d:00"),  # a MAC may end in a zero byte
        (b"\xff\xff\xff\xff\xff\xff", "ff:ff:ff:ff:ff:ff"),
        (b"\xa4\xbb\x6d\x12\x34\x56", "a4:bb:6d:12:34:56"),
        (b"\x08\x00\x27\x4e\x1f\x9a", "08:00:27:4e:1f:9a"),
    ],
    ids=["leading-zero", "trailing-zero", "all-ff", "high-bytes", "zero-inside"],
)
def test_label_text_renders_mac_address_bytes_as_hex(raw: bytes, expected: str) -> None:
    assert label_text(SnmpValue("octets", raw)) == expected


def test_label_text_renders_mostly_binary_values_as_hex() -> None:
    assert label_text(octets(bytes(range(0x80, 0x90)))) == ":".join(f"{b:02x}" for b in range(0x80, 0x90))


def test_label_text_cuts_labels_at_256_characters() -> None:
    assert label_text(octets("đ" * 1000)) == "đ" * mapping.MAX_LABEL_CHARS
    assert len(label_text(octets(bytes(range(0x80, 0x100)) * 4))) <= mapping.MAX_LABEL_CHARS
    assert label_text(SnmpValue("octets", "x" * 300)) == "x" * mapping.MAX_LABEL_CHARS


def test_label_text_of_other_kinds() -> None:
    assert label_text(None) == ""
    assert label_text(SnmpValue("no_such_instance", None)) == ""
    assert label_text(integer(17)) == "17"
    assert label_text(SnmpValue("oid", "1.3.6.1.4.1.9.1.1")) == "1.3.6.1.4.1.9.1.1"
    assert label_text(SnmpValue("ipaddress", "192.0.2.1")) == "192.0.2.1"


@given(st.binary(max_size=600))
def test_label_text_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    for kind in ("octets", "opaque"):
        text = label_text(SnmpValue(kind, raw))
        assert isinstance(text, str)
        assert len(text) <= mapping.MAX_LABEL_CHARS
        assert not any(unicodedata.category(ch) == "Cc" for ch in text)
        text.encode("utf-8")  # always writable as UTF-8


@given(st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), max_size=300))
def test_label_text_keeps_printable_utf8_text(text: str) -> None:
    assert label_text(octets(text.encode("utf-8"))) == " ".join(text.split())[: mapping.MAX_LABEL_CHARS]


# --- numeric ---------------------------------------------------------------------------------------


def test_numeric_keeps_counter64_max_as_an_exact_int() -> None:
    value = numeric(c64(COUNTER64_MAX))
    assert value == COUNTER64_MAX
    assert isinstance(value, int)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (integer(-5), -5),
        (c32(2**32 - 1), 2**32 - 1),
        (gauge(1000), 1000),
        (SnmpValue("timeticks", 4294967295), 4294967295),
        (c64(2**53 + 1), 2**53 + 1),
    ],
)
def test_numeric_returns_numeric_kinds_unchanged(value: SnmpValue, expected: int) -> None:
    assert numeric(value) == expected
    assert type(numeric(value)) is int


def test_numeric_applies_scale() -> None:
    assert numeric(SnmpValue("timeticks", 123456), 0.01) == pytest.approx(1234.56)
    assert numeric(gauge(1000), 125000) == 125_000_000
    assert numeric(gauge(100_000_000), 0.125) == 12_500_000


@pytest.mark.parametrize("kind", sorted(ABSENT_KINDS))
def test_numeric_of_absent_kinds_is_none(kind: str) -> None:
    assert numeric(SnmpValue(kind, None)) is None
    assert numeric(SnmpValue(kind, None), 2.0) is None


def test_numeric_of_nothing_is_none() -> None:
    assert numeric(None) is None
    assert numeric(SnmpValue("ipaddress", "192.0.2.1")) is None
    assert numeric(SnmpValue("oid", "1.3.6")) is None


@pytest.mark.parametrize(
    ("raw", "scale", "expected"),
    [(b"42", 1.0, 42.0), (b" 42.5 \n", 1.0, 42.5), (b"-3", 1.0, -3.0), (b"235", 0.1, 23.5),
     (b"1e3", 1.0, 1000.0)],
)
def test_numeric_parses_numbers_in_octet_strings(raw: bytes, scale: float, expected: float) -> None:
    assert numeric(octets(raw), scale) == pytest.approx(expected)
    assert numeric(SnmpValue("opaque", raw), scale) == pytest.approx(expected)


@pytest.mark.parametrize("raw", [b"", b"abc", b"12 V", b"nan", b"NaN", b"inf", b"-Infinity", b"\xff\xfe",
                                 "Đại".encode()])
def test_numeric_of_non_numeric_octet_strings_is_none(raw: bytes) -> None:
    assert numeric(octets(raw)) is None


# --- map_scalars -----------------------------------------------------------------------------------


def test_map_scalars_system_profile(builtin: dict[str, Profile]) -> None:
    values: dict[OID, SnmpValue] = {
        SYS_UPTIME: SnmpValue("timeticks", 123456),
        SYS_NAME: octets("core-switch.xa-dai-dinh"),
        SYS_DESCR: octets(b"Cisco IOS Software, C2960 \x00\x00"),
        SYS_OBJECT_ID: SnmpValue("oid", "1.3.6.1.4.1.9.1.1208"),
    }
    families = by_name(map_scalars(builtin["system"], values))
    uptime = families["hatang_device_uptime_seconds"]
    assert uptime.type == "gauge"
    assert uptime.samples[0].labels == ()
    assert uptime.samples[0].value == pytest.approx(1234.56)
    info = families["hatang_device_info"]
    assert info.type == "gauge"
    assert info.samples == (Sample((("sys_descr", "Cisco IOS Software, C2960"),
                                    ("sys_name", "core-switch.xa-dai-dinh"),
                                    ("sys_object_id", "1.3.6.1.4.1.9.1.1208")), 1),)
    assert info.help.startswith("Identity of the device")


def test_map_scalars_leaves_out_absent_values(builtin: dict[str, Profile]) -> None:
    values: dict[OID, SnmpValue] = {
        SYS_UPTIME: SnmpValue("no_such_object", None),
        SYS_NAME: SnmpValue("no_such_instance", None),
    }
    assert map_scalars(builtin["system"], values) == []


def test_map_scalars_info_with_some_labels_keeps_empty_ones(builtin: dict[str, Profile]) -> None:
    families = by_name(map_scalars(builtin["system"], {SYS_NAME: octets("Trạm Tam Đảo")}))
    assert set(families) == {"hatang_device_info"}
    labels = dict(families["hatang_device_info"].samples[0].labels)
    assert labels == {"sys_name": "Trạm Tam Đảo", "sys_descr": "", "sys_object_id": ""}


def test_map_scalars_uses_fallback_when_primary_is_absent(tmp_path: Path) -> None:
    write_profile(tmp_path, "ups", """\
        name: ups
        scalars:
          - name: hatang_ups_input_volts
            type: gauge
            oid: 1.3.6.1.4.1.1.1.0
            scale: 0.1
            fallback: {oid: 1.3.6.1.4.1.1.2.0, scale: 1}
            help: "Input voltage."
        """)
    profile = load_profiles(tmp_path)["ups"]
    primary, fallback = parse_oid("1.3.6.1.4.1.1.1.0"), parse_oid("1.3.6.1.4.1.1.2.0")
    assert profile.scalar_oids() == [primary, fallback]
    [family] = map_scalars(profile, {primary: SnmpValue("no_such_object", None), fallback: octets(b"231")})
    assert family.samples[0].value == 231
    [family] = map_scalars(profile, {primary: gauge(2305), fallback: octets(b"231")})
    assert family.samples[0].value == pytest.approx(230.5)


# --- map_table -------------------------------------------------------------------------------------


def if_labels() -> dict[OID, dict[str, SnmpValue]]:
    return {
        IF_NAME: {"1": octets("Gi0/1"), "2": octets("Gi0/2")},
        IF_ALIAS: {"1": octets(ALIAS_VI), "2": octets(b"")},
        IF_DESCR: {"1": octets("GigabitEthernet0/1"), "2": octets("GigabitEthernet0/2")},
    }


def test_map_table_with_hc_columns(interfaces: TableSpec) -> None:
    columns = {
        **if_labels(),
        IF_HC_IN: {"1": c64(COUNTER64_MAX), "2": c64(5)},
        IF_HC_OUT: {"1": c64(2**40), "2": c64(0)},
        IF_IN_OCTETS: {"1": c32(111), "2": c32(222)},  # ignored: HC values exist
        IF_HIGH_SPEED: {"1": gauge(1000), "2": gauge(10_000)},
        IF_OPER: {"1": integer(1), "2": integer(2)},
        IF_ADMIN: {"1": integer(1), "2": integer(1)},
        IF_IN_ERRORS: {"1": c32(3), "2": c32(0)},
    }
    families = by_name(map_table(interfaces, columns))
    in_bytes = families["hatang_interface_in_bytes_total"]
    assert in_bytes.type == "counter"
    assert values_by_index(in_bytes) == {"1": COUNTER64_MAX, "2": 5}
    assert isinstance(values_by_index(in_bytes)["1"], int)
    assert values_by_index(families["hatang_interface_out_bytes_total"]) == {"1": 2**40, "2": 0}
    assert values_by_index(families["hatang_interface_speed_bytes"]) == {"1": 125_000_000, "2": 1_250_000_000}
    assert values_by_index(families["hatang_interface_oper_status"]) == {"1": 1, "2": 2}
    assert families["hatang_interface_oper_status"].type == "gauge"
    assert dict(in_bytes.samples[0].labels) == {"if_index": "1", "if_name": "Gi0/1", "if_alias": ALIAS_VI,
                                               "if_descr": "GigabitEthernet0/1", "if_type": ""}
    assert in_bytes.samples[0].labels == tuple(sorted(in_bytes.samples[0].labels))
    # columns that were not read give no family at all
    assert "hatang_interface_out_discards_total" not in families


def test_map_table_falls_back_to_32_bit_columns_when_hc_is_absent(interfaces: TableSpec) -> None:
    columns = {
        **if_labels(),
        IF_HC_IN: {},
        IF_IN_OCTETS: {"1": c32(2**32 - 1), "2": c32(7)},
        IF_OUT_OCTETS: {"1": c32(8), "2": c32(9)},
        IF_SPEED: {"1": gauge(100_000_000), "2": gauge(10_000_000)},
    }
    families = by_name(map_table(interfaces, columns))
    assert values_by_index(families["hatang_interface_in_bytes_total"]) == {"1": 2**32 - 1, "2": 7}
    assert values_by_index(families["hatang_interface_out_bytes_total"]) == {"1": 8, "2": 9}
    assert values_by_index(families["hatang_interface_speed_bytes"]) == {"1": 12_500_000, "2": 1_250_000}


def test_map_table_mixes_hc_and_32_bit_per_row(interfaces: TableSpec) -> None:
    columns = {
        **if_labels(),
        IF_NAME: {"1": octets("Gi0/1"), "2": octets("Gi0/2"), "3": octets("Vl1")},
        IF_HC_IN: {"1": c64(10**15), "3": SnmpValue("no_such_instance", None)},
        IF_IN_OCTETS: {"1": c32(1), "2": c32(2), "3": c32(3)},
        IF_HIGH_SPEED: {"1": gauge(1000)},
        IF_SPEED: {"2": gauge(100_000_000), "3": gauge(4_294_967_295)},
    }
    families = by_name(map_table(interfaces, columns))
    assert values_by_index(families["hatang_interface_in_bytes_total"]) == {"1": 10**15, "2": 2, "3": 3}
    assert values_by_index(families["hatang_interface_speed_bytes"]) == {
        "1": 1000 * 125000, "2": 100_000_000 / 8, "3": 4_294_967_295 / 8}
    [labels3] = [dict(s.labels) for s in families["hatang_interface_in_bytes_total"].samples
                 if dict(s.labels)["if_index"] == "3"]
    assert labels3 == {"if_index": "3", "if_name": "Vl1", "if_alias": "", "if_descr": "", "if_type": ""}


def test_map_table_skips_rows_without_values(interfaces: TableSpec) -> None:
    columns = {
        **if_labels(),
        IF_DESCR: {"1": octets("Gi0/1"), "2": octets("Gi0/2"), "99": octets("only a label")},
        IF_HC_IN: {"1": c64(1), "2": SnmpValue("no_such_instance", None)},
        IF_IN_OCTETS: {"2": SnmpValue("no_such_instance", None)},
        IF_OPER: {"2": integer(1)},
    }
    families = by_name(map_table(interfaces, columns))
    assert values_by_index(families["hatang_interface_in_bytes_total"]) == {"1": 1}
    assert values_by_index(families["hatang_interface_oper_status"]) == {"2": 1}
    assert all(dict(s.labels)["if_index"] != "99" for f in families.values() for s in f.samples)


def test_map_table_of_empty_walks_gives_no_families(interfaces: TableSpec) -> None:
    assert map_table(interfaces, {}) == []
    assert map_table(interfaces, {IF_HC_IN: {}, IF_IN_OCTETS: {}, **if_labels()}) == []


def test_map_table_keeps_multi_part_row_indices(tmp_path: Path) -> None:
    write_profile(tmp_path, "sensors", """\
        name: sensors
        tables:
          - name: t
            index_label: idx
            metrics: [{name: hatang_sensor_value, type: gauge, oid: 1.3.6.1.4.1.9.9.91.1.1.1.1.4, help: h}]
        """)
    table = load_profiles(tmp_path)["sensors"].tables[0]
    column = parse_oid("1.3.6.1.4.1.9.9.91.1.1.1.1.4")
    rows = mapping.rows_by_index(column, [((*column, 3, 1, 2), integer(42)), ((*column, 10), integer(7))])
    assert rows == {"3.1.2": integer(42), "10": integer(7)}
    [family] = map_table(table, {column: rows})
    assert [(s.labels, s.value) for s in family.samples] == [((("idx", "3.1.2"),), 42), ((("idx", "10"),), 7)]


def test_mapped_values_are_finite_numbers(interfaces: TableSpec) -> None:
    columns = {IF_HC_IN: {"1": octets(b"inf")}, IF_IN_OCTETS: {"1": octets(b"nan")},
               IF_OPER: {"1": integer(1)}}
    for family in map_table(interfaces, columns):
        assert all(math.isfinite(s.value) for s in family.samples)
    assert "hatang_interface_in_bytes_total" not in by_name(map_table(interfaces, columns))


# --- labels read through a value (via), sums of two columns (add), filters by regex (matches) ----------

CPM = "1.3.6.1.4.1.9.9.109.1.1.1.1"  # CISCO-PROCESS-MIB::cpmCPUTotalEntry
CPM_PHYSICAL, CPM_5MIN = parse_oid(f"{CPM}.2"), parse_oid(f"{CPM}.8")
ENT_NAME = parse_oid("1.3.6.1.2.1.47.1.1.1.1.7")  # ENTITY-MIB::entPhysicalName
POOL = "1.3.6.1.4.1.9.9.48.1.1.1"  # CISCO-MEMORY-POOL-MIB::ciscoMemoryPoolEntry
POOL_NAME, POOL_USED, POOL_FREE = (parse_oid(f"{POOL}.{n}") for n in (2, 5, 6))


VIA_LABEL = "{oid: 1.3.6.1.2.1.47.1.1.1.1.7, via: " + f"{CPM}.2" + "}"  # entPhysicalName via PhysicalIndex


def cpu_table(tmp_path: Path, label: str = VIA_LABEL) -> TableSpec:
    write_profile(tmp_path, "cpu", f"""\
        name: cpu
        tables:
          - name: cpus
            index_label: cpu_index
            labels:
              component: {label}
            metrics: [{{name: hatang_device_cpu_utilization_ratio, type: gauge, oid: {CPM}.8, scale: 0.01,
                        help: h}}]
        """)
    return load_profiles(tmp_path)["cpu"].tables[0]


def components(families: list[Family]) -> dict[str, str]:
    [family] = families
    return {dict(s.labels)["cpu_index"]: dict(s.labels)["component"] for s in family.samples}


def test_a_label_via_a_column_reads_the_row_that_column_names(tmp_path: Path) -> None:
    """component = entPhysicalName at the index cpmCPUTotalPhysicalIndex gives; 0, nothing, a pointer to
    a row without a name, or an empty name: the row's own index."""
    table = cpu_table(tmp_path)
    columns = {
        CPM_5MIN: {str(i): gauge(10 * i) for i in range(1, 7)},
        CPM_PHYSICAL: {"1": integer(3017), "2": integer(3001), "3": integer(0), "5": integer(4242),
                       "6": integer(22)},
        ENT_NAME: {"3017": octets("CPU of Routing Processor 5"),
                   "3001": octets("CPU of Switching Processor 5"), "22": octets(""), "0": octets("chassis")},
    }
    assert components(map_table(table, columns)) == {
        "1": "CPU of Routing Processor 5", "2": "CPU of Switching Processor 5", "3": "3", "4": "4", "5": "5",
        "6": "6"}
    # the walked columns: the label's column and the column it goes through, both slow (label) columns
    plan = mapping.table_plan(table)
    assert set(plan.slow_columns) == {ENT_NAME, CPM_PHYSICAL} and plan.filter_columns == ()


def test_a_via_column_that_is_not_an_index_falls_back_to_the_row_index(tmp_path: Path) -> None:
    table = cpu_table(tmp_path)
    columns = {CPM_5MIN: {"1": gauge(5), "2": gauge(6), "3": gauge(7)},
               CPM_PHYSICAL: {"1": octets("x y"), "2": SnmpValue("no_such_instance", None),
                              "3": SnmpValue("oid", "1.3.6.1.2.1.47.1.1.1.1.7.3017")},
               ENT_NAME: {"3017": octets("named")}}
    assert components(map_table(table, columns)) == {"1": "1", "2": "2", "3": "3"}


def test_a_via_label_keeps_map_and_multi_arc_pointers(tmp_path: Path) -> None:
    table = cpu_table(tmp_path, VIA_LABEL[:-1] + ", map: {RP: route processor}}")
    columns = {CPM_5MIN: {"1": gauge(5), "2": gauge(1)},
               CPM_PHYSICAL: {"1": integer(7), "2": octets("1.2")},
               ENT_NAME: {"7": octets("RP"), "1.2": octets("slot 1 cpu 2")}}
    assert components(map_table(table, columns)) == {"1": "route processor", "2": "slot 1 cpu 2"}


@pytest.mark.parametrize(("label", "key", "words"), [
    ("{oid: 1.3.6.1.2.1.47.1.1.1.1.7, via: cpmCPUTotalPhysicalIndex}", "tables[0].labels.component.via",
     "numeric OID"),
    ("{oid: 1.3.6.1.2.1.47.1.1.1.1.7, via: 1.3.6.1.4.1.9.9.109.1.1.1.1.2, index_arcs: [1]}",
     "tables[0].labels.component", "via or index_arcs"),
])
def test_via_errors_name_the_key(tmp_path: Path, label: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        cpu_table(tmp_path, label)
    assert key in dict(info.value.problems) and words in dict(info.value.problems)[key], info.value.problems


def test_via_is_for_table_labels_only(tmp_path: Path) -> None:
    write_profile(tmp_path, "s", """\
        name: s
        scalars:
          - {name: i, type: info, help: h, labels: {a: {oid: 1.3.6.1.2.1.1.5.0, via: 1.3.6.1.2.1.1.7.0}}}
        """)
    problems = dict(profile_error(tmp_path).problems)
    assert "use them in a table's labels" in problems["scalars[0].labels.a"]


def pools_table(tmp_path: Path, extra: str = "") -> TableSpec:
    write_profile(tmp_path, "pools", f"""\
        name: pools
        tables:
          - name: pools
            index_label: pool_index
            labels: {{component: {POOL}.2}}
            metrics:
              - {{name: hatang_device_memory_total_bytes, type: gauge, oid: {POOL}.5, add: {POOL}.6, help: h
                  {extra}}}
        """)
    return load_profiles(tmp_path)["pools"].tables[0]


def test_add_sums_two_columns_of_the_row(tmp_path: Path) -> None:
    table = pools_table(tmp_path)
    columns = {POOL_USED: {"1": gauge(22188980), "2": gauge(3640984), "3": gauge(5)},
               POOL_FREE: {"1": gauge(53499780), "2": gauge(4747624), "3": octets("n/a")},
               POOL_NAME: {"1": octets("Processor"), "2": octets("I/O")}}
    [family] = map_table(table, columns)
    assert {dict(s.labels)["component"]: s.value for s in family.samples} == {
        "Processor": 22188980 + 53499780, "I/O": 3640984 + 4747624}  # no free (or no number): no sample
    assert all(isinstance(s.value, int) for s in family.samples)  # bytes stay exact
    plan = mapping.table_plan(table)
    assert plan.filter_columns == (POOL_FREE,) and plan.slow_columns == (POOL_NAME,)  # read every poll


def test_add_comes_before_scale_and_after_the_checks_of_the_reading(tmp_path: Path) -> None:
    table = pools_table(tmp_path, ", scale: 1024, unknown: [0], valid: {max: 100}")
    columns = {POOL_USED: {"1": gauge(3), "2": gauge(0), "3": gauge(101)},
               POOL_FREE: {"1": gauge(5), "2": gauge(5), "3": gauge(5)}}
    bad: list[mapping.BadValue] = []
    [family] = map_table(table, columns, bad=bad)
    assert [(dict(s.labels)["pool_index"], s.value) for s in family.samples] == [("1", 8 * 1024)]
    assert [b.index for b in bad] == ["3"]


def test_an_add_column_that_labels_the_rows_too_is_still_read_every_poll(tmp_path: Path) -> None:
    write_profile(tmp_path, "p", f"""\
        name: p
        tables:
          - name: t
            index_label: idx
            labels: {{free: {POOL}.6}}
            metrics: [{{name: m, type: gauge, oid: {POOL}.5, add: {POOL}.6, help: h}}]
        """)
    plan = mapping.table_plan(load_profiles(tmp_path)["p"].tables[0])
    assert plan.filter_columns == (POOL_FREE,) and plan.slow_columns == ()


def test_add_on_a_scalar_is_read_in_the_same_get(tmp_path: Path) -> None:
    write_profile(tmp_path, "s", """\
        name: s
        scalars: [{name: m, type: gauge, oid: 1.3.6.1.4.1.1.1.0, add: 1.3.6.1.4.1.1.2.0, help: h}]
        """)
    profile = load_profiles(tmp_path)["s"]
    assert profile.scalar_oids() == [parse_oid("1.3.6.1.4.1.1.1.0"), parse_oid("1.3.6.1.4.1.1.2.0")]
    [family] = map_scalars(profile, {parse_oid("1.3.6.1.4.1.1.1.0"): gauge(2),
                                     parse_oid("1.3.6.1.4.1.1.2.0"): integer(-5)})
    assert family.samples[0].value == -3


def test_add_and_equals_do_not_go_together(tmp_path: Path) -> None:
    write_profile(tmp_path, "s", """\
        name: s
        scalars: [{name: m, type: gauge, oid: 1.3.6.1.4.1.1.1.0, add: 1.3.6.1.4.1.1.2.0, equals: 1, help: h}]
        """)
    assert "give one of them" in str(profile_error(tmp_path))


SENSOR = "1.3.6.1.4.1.12356.101.4.3.2.1"  # FORTINET-FORTIGATE-MIB::fgHwSensorEntry
SENSOR_NAME, SENSOR_ALARM = parse_oid(f"{SENSOR}.2"), parse_oid(f"{SENSOR}.4")


def test_a_filter_matches_a_regular_expression_in_the_text(tmp_path: Path) -> None:
    write_profile(tmp_path, "fg", f"""\
        name: fg
        tables:
          - name: sensors
            index_label: sensor
            labels: {{component: {SENSOR}.2}}
            metrics:
              - {{name: hatang_device_fan_ok, type: gauge, oid: {SENSOR}.4, equals: [0], help: h,
                  filter: [{{oid: {SENSOR}.2, matches: "(?i)fan"}}]}}
        """)
    table = load_profiles(tmp_path)["fg"].tables[0]
    columns = {SENSOR_ALARM: {str(i): integer(0 if i != 3 else 1) for i in range(1, 7)},
               SENSOR_NAME: {"1": octets("FAN1"), "2": octets("PS1 Fan 1"), "3": octets("fan 3"),
                             "4": octets("PS1 Status"), "6": integer(7)}}
    [family] = map_table(table, columns)
    assert {dict(s.labels)["component"]: s.value for s in family.samples} == {
        "FAN1": 1, "PS1 Fan 1": 1, "fan 3": 0}  # no name (5) or a number (6): no match
    assert mapping.table_plan(table).filter_columns == ()  # the name column is a label: cached


def test_matches_is_searched_not_anchored_and_numbers_compare_as_text(tmp_path: Path) -> None:
    write_profile(tmp_path, "s", """\
        name: s
        scalars:
          - {name: m, type: gauge, oid: 1.3.6.1.4.1.1.1.0, help: h,
             filter: [{oid: 1.3.6.1.4.1.1.2.0, matches: "^4[0-9]$"}, {oid: 1.3.6.1.4.1.1.3.0, matches: psu}]}
        """)
    profile = load_profiles(tmp_path)["s"]
    values = {parse_oid("1.3.6.1.4.1.1.1.0"): gauge(1), parse_oid("1.3.6.1.4.1.1.2.0"): integer(42),
              parse_oid("1.3.6.1.4.1.1.3.0"): octets("psu1-state")}
    assert [f.samples[0].value for f in map_scalars(profile, values)] == [1]
    values[parse_oid("1.3.6.1.4.1.1.2.0")] = integer(420)
    assert map_scalars(profile, values) == []


@pytest.mark.parametrize(("condition", "words"), [
    ('{oid: 1.3.6.1.2, matches: "fan("}', "not a valid regular expression"),
    ("{oid: 1.3.6.1.2, matches: fan, any_of: [1]}", "exactly one of any_of, none_of or matches"),
])
def test_matches_errors_name_the_filter(tmp_path: Path, condition: str, words: str) -> None:
    write_profile(tmp_path, "s", f"""\
        name: s
        scalars: [{{name: m, type: gauge, oid: 1.3.6.1.4.1.1.1.0, help: h, filter: [{condition}]}}]
        """)
    error = profile_error(tmp_path)
    assert any(key.startswith("scalars[0].filter[0]") and words in problem
               for key, problem in error.problems), error.problems

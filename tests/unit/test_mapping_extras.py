"""Tests of the profile format extensions in the pure mapping, and of the uptime (reboot) arithmetic."""

from __future__ import annotations

import dataclasses
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import mapping, uptime
from agent.mapping import map_scalars, map_table, table_plan
from agent.profiles import MetricSpec, Profile, TableSpec, load_profiles, parse_oid
from agent.snmp.values import SnmpValue
from agent.transforms import label_text
from agent.uptime import WRAP_SECONDS, Epoch, UptimeState, observe, stamp_to_unix
from hatang import configfile
from wire.messages import Family

T = "1.3.6.1.4.1.99999.1.1"  # a made-up table entry for user profiles
COL = {n: parse_oid(f"{T}.{n}") for n in range(1, 10)}


def integer(value: int) -> SnmpValue:
    return SnmpValue("integer", value)


def octets(value: str | bytes) -> SnmpValue:
    return SnmpValue("octets", value.encode() if isinstance(value, str) else value)


def oid_value(text: str) -> SnmpValue:
    return SnmpValue("oid", text)


def load_user(tmp_path: Path, name: str, body: str) -> Profile:
    (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(body), encoding="utf-8")
    return load_profiles(tmp_path)[name]


def by_name(families: list[Family]) -> dict[str, Family]:
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "one family per metric name"
    return {f.name: f for f in families}


def by_label(family: Family, label: str) -> dict[str, float]:
    return {dict(s.labels)[label]: s.value for s in family.samples}


@pytest.fixture(scope="module")
def builtin() -> dict[str, Profile]:
    return load_profiles()


# --- multiply_by, scale_from, filter, equals, const_labels, label maps --------------------------------


@pytest.fixture
def storage_like(tmp_path: Path) -> TableSpec:
    return load_user(tmp_path, "disks", f"""\
        name: disks
        tables:
          - name: t
            index_label: idx
            labels: {{kind: {{oid: {T}.2, last_arc: true, map: {{"4": disk}}}}}}
            metrics:
              - {{name: x_bytes, type: gauge, oid: {T}.5, multiply_by: {T}.4, help: h}}
        """).tables[0]


def test_multiply_by_uses_the_same_rows_column_and_stays_exact(storage_like: TableSpec) -> None:
    big = 2**40 + 1  # a Counter64 (an INTEGER this large is no SNMP value: reported as unusable)
    columns = {COL[5]: {"1": SnmpValue("counter64", big), "2": integer(7), "3": integer(9)},
               COL[4]: {"1": integer(4096), "2": integer(1024)},
               COL[2]: {"1": oid_value("1.3.6.1.2.1.25.2.1.4"), "2": oid_value("1.3.6.1.4.1.8072.7")}}
    [family] = map_table(storage_like, columns)
    values = by_label(family, "idx")
    assert values == {"1": big * 4096, "2": 7 * 1024}  # row 3 has no multiplier: no sample
    assert isinstance(values["1"], int)
    assert by_label(family, "kind") == {"disk": big * 4096, "7": 7 * 1024}  # last arc, then the map


def test_scalar_multiply_by_reads_another_scalar(tmp_path: Path) -> None:
    profile = load_user(tmp_path, "p", f"""\
        name: p
        scalars: [{{name: x, type: gauge, oid: {T}.1.0, multiply_by: {T}.2.0, help: h}}]
        """)
    assert profile.scalar_oids() == [parse_oid(f"{T}.1.0"), parse_oid(f"{T}.2.0")]
    [family] = map_scalars(profile, {parse_oid(f"{T}.1.0"): integer(3), parse_oid(f"{T}.2.0"): integer(5)})
    assert family.samples[0].value == 15
    assert map_scalars(profile, {parse_oid(f"{T}.1.0"): integer(3)}) == []


@pytest.fixture
def sensor_like(tmp_path: Path) -> TableSpec:
    return load_user(tmp_path, "s", f"""\
        name: s
        tables:
          - name: t
            index_label: idx
            metrics:
              - name: x_celsius
                type: gauge
                oid: {T}.4
                scale_from: {{si_prefix: {T}.2, precision: {T}.3}}
                filter: [{{oid: {T}.1, any_of: [8]}}, {{oid: {T}.5, none_of: [2, 3]}}]
                help: h
        """).tables[0]


def expected_sensor(value: int, prefix: int, precision: int) -> float:
    return float(Decimal(value).scaleb(3 * (prefix - 9) - precision))


@pytest.mark.parametrize(("value", "prefix", "precision"),
                         [(4618, 9, 0), (229, 9, 1), (330, 9, 2), (6015, 8, 0), (5, 10, -2), (123456, 7, 3),
                          (-55, 9, 1), (1, 1, 9), (1, 17, -8)])
def test_scale_from_applies_si_prefix_and_precision(sensor_like: TableSpec, value: int, prefix: int,
                                                    precision: int) -> None:
    columns = {COL[1]: {"1": integer(8)}, COL[2]: {"1": integer(prefix)}, COL[3]: {"1": integer(precision)},
               COL[4]: {"1": integer(value)}, COL[5]: {"1": integer(1)}}
    [family] = map_table(sensor_like, columns)
    assert family.samples[0].value == expected_sensor(value, prefix, precision)


def test_scale_from_out_of_range_scale_gives_no_sample_and_absent_scale_means_units(
    sensor_like: TableSpec,
) -> None:
    columns = {COL[1]: {"1": integer(8), "2": integer(8), "3": integer(8)},
               COL[2]: {"1": integer(18), "2": integer(0)}, COL[3]: {"3": integer(1)},
               COL[4]: {"1": integer(5), "2": integer(5), "3": integer(215)}}
    [family] = map_table(sensor_like, columns)
    assert by_label(family, "idx") == {"3": 21.5}


def test_filter_any_of_needs_the_value_and_none_of_lets_absent_values_pass(sensor_like: TableSpec) -> None:
    columns = {COL[1]: {"1": integer(8), "2": integer(10), "4": integer(8), "5": integer(8)},
               COL[4]: {str(i): integer(40 + i) for i in range(1, 6)},
               COL[5]: {"1": integer(1), "2": integer(1), "5": integer(2)}}
    [family] = map_table(sensor_like, columns)
    # 2: wrong type; 3: type absent; 4: status absent (passes none_of); 5: status unavailable
    assert by_label(family, "idx") == {"1": 41, "4": 44}


def test_equals_maps_a_value_to_one_or_zero(builtin: dict[str, Profile]) -> None:
    source = parse_oid("1.3.6.1.2.1.33.1.4.1.0")
    for raw, on_battery in [(5, 1), (3, 0), (4, 0), (1, 0)]:
        families = by_name(map_scalars(builtin["ups"], {source: integer(raw)}))
        assert families["hatang_ups_on_battery"].samples[0].value == on_battery
        assert families["hatang_ups_output_source"].samples[0].value == raw
    assert "hatang_ups_on_battery" not in by_name(map_scalars(builtin["ups"], {}))


def test_scalars_sharing_a_name_merge_into_one_family_by_const_labels(builtin: dict[str, Profile]) -> None:
    raw = {50: 2458, 51: 30, 52: 1853, 53: 43639, 54: 946, 61: 4316}
    values = {parse_oid(f"1.3.6.1.4.1.2021.11.{n}.0"): SnmpValue("counter32", v) for n, v in raw.items()}
    ticks = by_name(map_scalars(builtin["host"], values))["hatang_host_cpu_ticks_total"]
    assert ticks.type == "counter"
    modes = {50: "user", 51: "nice", 52: "system", 53: "idle", 54: "wait", 61: "softirq"}
    assert by_label(ticks, "mode") == {modes[n]: v for n, v in raw.items()}
    assert "ssCpuRawUser" in ticks.help


def test_label_map_renders_oid_values_by_full_oid(builtin: dict[str, Profile]) -> None:
    table = builtin["host"].tables[1]
    used, units, descr, kind = (parse_oid(f"1.3.6.1.2.1.25.2.3.1.{n}") for n in (6, 4, 3, 2))
    columns = {used: {"1": integer(10), "2": integer(20), "3": integer(30)},
               units: {"1": integer(1024), "2": integer(4096), "3": integer(512)},
               descr: {"1": octets("Physical memory"), "2": octets("/"),
                       "3": octets("C:\\ Label:  Serial 5c")},
               kind: {"1": oid_value("1.3.6.1.2.1.25.2.1.2"), "2": oid_value("1.3.6.1.2.1.25.2.1.4"),
                      "3": oid_value("1.3.6.1.4.1.311.1.1")}}
    family = by_name(map_table(table, columns))["hatang_host_storage_used_bytes"]
    labels = {dict(s.labels)["storage_index"]: dict(s.labels) for s in family.samples}
    assert labels["1"]["storage_type"] == "ram"
    assert labels["2"]["storage_type"] == "fixedDisk"
    assert labels["3"]["storage_type"] == "1.3.6.1.4.1.311.1.1"  # not in the map: as read
    assert labels["3"]["mount"] == "C:\\ Label: Serial 5c"
    assert by_label(family, "mount") == {"Physical memory": 10240, "/": 81920, "C:\\ Label: Serial 5c": 15360}


def test_load_average_reads_octet_strings_else_the_integer_column(builtin: dict[str, Profile]) -> None:
    la = {n: parse_oid(f"1.3.6.1.4.1.2021.10.1.3.{n}") for n in (1, 2, 3)}
    la_int = {n: parse_oid(f"1.3.6.1.4.1.2021.10.1.5.{n}") for n in (1, 2, 3)}
    values = {la[1]: octets("0.46"), la[2]: octets(b"garbage"), la_int[2]: integer(13),
              la[3]: SnmpValue("no_such_instance", None), la_int[3]: integer(2)}
    families = by_name(map_scalars(builtin["host"], values))
    assert families["hatang_host_load1"].samples[0].value == pytest.approx(0.46)
    assert families["hatang_host_load5"].samples[0].value == pytest.approx(0.13)
    assert families["hatang_host_load15"].samples[0].value == pytest.approx(0.02)


def test_memory_prefers_64_bit_objects_and_converts_kilobytes(builtin: dict[str, Profile]) -> None:
    total_x, total, free = (parse_oid(f"1.3.6.1.4.1.2021.4.{n}.0") for n in (20, 5, 6))
    families = by_name(map_scalars(builtin["host"], {total_x: SnmpValue("counter64", 2**33),
                                                     total: integer(1021976), free: integer(63676)}))
    assert families["hatang_host_memory_total_bytes"].samples[0].value == 2**33 * 1024
    assert families["hatang_host_memory_free_bytes"].samples[0].value == 63676 * 1024


def test_as_timestamp_needs_an_epoch(tmp_path: Path) -> None:
    table = load_user(tmp_path, "lc", f"""\
        name: lc
        tables:
          - name: t
            index_label: idx
            metrics: [{{name: x_timestamp_seconds, type: gauge, oid: {T}.9, scale: 0.01, as_timestamp: true,
                        help: h}}]
        """).tables[0]
    columns = {COL[9]: {"1": SnmpValue("timeticks", 0), "2": SnmpValue("timeticks", 12345)}}
    assert map_table(table, columns) == []
    epoch = Epoch(start=1_700_000_000.0, uptime=500.0, boot_time=1_700_000_000.0)
    [family] = map_table(table, columns, epoch=epoch)
    assert by_label(family, "idx") == {"1": 1_700_000_000.0, "2": 1_700_000_123.45}


def test_table_plan_separates_metric_filter_and_slow_columns(builtin: dict[str, Profile]) -> None:
    sensors = table_plan(builtin["sensors"].tables[0])
    s = "1.3.6.1.2.1.99.1.1.1"
    assert {c for c, _ in sensors.metric_columns} == {parse_oid(f"{s}.4"), parse_oid(f"{s}.5")}
    assert sensors.filter_columns == ()  # type is a label (slow), status a metric column
    assert set(sensors.slow_columns) == {parse_oid(f"{s}.{n}") for n in (1, 2, 3)} | {
        parse_oid("1.3.6.1.2.1.47.1.1.1.1.7"), parse_oid("1.3.6.1.2.1.47.1.1.1.1.2")}
    storage = table_plan(builtin["host"].tables[1])
    assert parse_oid("1.3.6.1.2.1.25.2.3.1.4") in storage.slow_columns  # hrStorageAllocationUnits


def test_table_plan_walks_non_label_filter_columns_every_poll(tmp_path: Path) -> None:
    table = load_user(tmp_path, "f", f"""\
        name: f
        tables:
          - name: t
            index_label: idx
            metrics: [{{name: x, type: gauge, oid: {T}.4, filter: [{{oid: {T}.7, any_of: [1]}}], help: h}}]
        """).tables[0]
    plan = table_plan(table)
    assert plan.filter_columns == (COL[7],)
    assert plan.slow_columns == ()
    assert (COL[7], None) in mapping.table_columns(table)


def test_uptime_families_from_state(builtin: dict[str, Profile]) -> None:
    spec = builtin["system"].uptime
    assert spec is not None
    state = UptimeState(uptime=10.0, mono=0.0, epoch=1000.0, boot_time=1000.0, reboots=2)
    families = by_name(mapping.map_uptime(spec, state))
    assert families["hatang_device_boot_time_seconds"].samples[0].value == 1000.0
    assert families["hatang_device_reboots_total"].type == "counter"
    assert families["hatang_device_reboots_total"].samples[0].value == 2
    assert mapping.uptime_seconds(spec, {spec.parsed: SnmpValue("timeticks", 12345)}) == pytest.approx(123.45)


def test_label_text_of_six_byte_text_is_not_mistaken_for_a_mac() -> None:
    assert label_text(octets("Gi0/24")) == "Gi0/24"
    assert label_text(octets("Cổng 1")) == "Cổng 1"


# --- uptime arithmetic ------------------------------------------------------------------------------

BOOT = 1_790_000_000.0


def reading(up: float, *, at: float, mono0: float = 5000.0) -> dict[str, float]:
    """A reading taken ``at`` seconds after BOOT (wall) with a monotonic clock offset."""
    return {"uptime": up, "wall": BOOT + at, "mono": mono0 + at}


def run(readings: list[dict[str, float]]) -> tuple[UptimeState, list[bool]]:
    state: UptimeState | None = None
    reboots = []
    for r in readings:
        state, rebooted = observe(state, r["uptime"], wall=r["wall"], mono=r["mono"])
        reboots.append(rebooted)
    assert state is not None
    return state, reboots


def test_first_reading_sets_boot_time() -> None:
    state, flags = run([reading(1234.5, at=1234.5)])
    assert state.boot_time == pytest.approx(BOOT)
    assert (state.reboots, flags) == (0, [False])


def test_boot_time_is_stable_under_latency_jitter() -> None:
    jitter = [0.0, 0.8, -0.6, 1.9, 0.1, -1.5]
    state, flags = run([reading(100.0 + 60 * i, at=100.0 + 60 * i + j) for i, j in enumerate(jitter)])
    assert state.boot_time == BOOT + 0.0  # first estimate kept exactly
    assert not any(flags)


def test_uptime_going_back_is_a_reboot() -> None:
    state, flags = run([reading(5000.0, at=5000.0), reading(5060.0, at=5060.0), reading(30.0, at=5120.0)])
    assert flags == [False, False, True]
    assert state.reboots == 1
    assert state.boot_time == pytest.approx(BOOT + 5090.0)


def test_restart_during_a_long_gap_is_a_reboot_even_if_uptime_grew() -> None:
    # polled at 100 s uptime; the device restarts at t=200 and is next polled at t=10,000 (uptime 9,800)
    state, flags = run([reading(100.0, at=100.0), reading(9800.0, at=10_000.0)])
    assert flags == [False, True]
    assert state.boot_time == pytest.approx(BOOT + 200.0)


def test_wrap_at_497_days_is_not_a_reboot() -> None:
    before = WRAP_SECONDS - 20.0
    state, flags = run([reading(before - 60, at=before - 60), reading(before, at=before),
                        reading(40.0, at=WRAP_SECONDS + 40.0), reading(100.0, at=WRAP_SECONDS + 100.0)])
    assert flags == [False, False, False, False]
    assert state.reboots == 0
    assert state.wraps == 1
    assert state.boot_time == BOOT
    assert state.epoch == pytest.approx(BOOT + WRAP_SECONDS)


def test_reboot_near_the_wrap_is_still_a_reboot() -> None:
    before = WRAP_SECONDS - 20.0
    # the uptime went back to 40 s, but 1,000 s passed: a wrap would read ~980 s
    state, flags = run([reading(before, at=before), reading(40.0, at=before + 1000.0)])
    assert flags == [False, True]
    assert state.wraps == 0


def test_wall_clock_step_of_the_agent_is_not_a_reboot() -> None:
    first = reading(1000.0, at=1000.0)
    stepped = {"uptime": 1060.0, "wall": BOOT + 1060.0 - 3600.0, "mono": first["mono"] + 60.0}
    state, flags = run([first, stepped])
    assert flags == [False, False]
    assert state.boot_time == pytest.approx(BOOT - 3600.0)  # re-anchored to the new wall clock


def test_slow_device_clock_reanchors_without_a_reboot() -> None:
    # device ticks 0.1 % slow: after a day its uptime is 86 s behind the wall clock
    state, flags = run([reading(1000.0, at=1000.0), reading(1000.0 + 86_400 * 0.999, at=1000.0 + 86_400)])
    assert flags == [False, False]
    assert state.boot_time == pytest.approx(BOOT + 86.4)


@given(st.lists(st.floats(min_value=1.0, max_value=200_000.0), min_size=1, max_size=40),
       st.floats(min_value=0.0, max_value=WRAP_SECONDS - 1.0))
def test_a_device_that_never_restarts_is_never_flagged(gaps: list[float], start: float) -> None:
    at, up = start, start
    readings = [reading(up, at=at)]
    for gap in gaps:
        at += gap
        up = (up + gap) % WRAP_SECONDS
        readings.append(reading(up, at=at))
    state, flags = run(readings)
    assert not any(flags)
    assert state.boot_time == pytest.approx(BOOT, abs=1e-3)


@given(st.floats(min_value=60.0, max_value=400 * 86400.0), st.floats(min_value=1.0, max_value=3600.0),
       st.floats(min_value=0.0, max_value=3000.0))
def test_a_restart_between_two_polls_is_flagged(up_before: float, gap: float, down_for: float) -> None:
    restart_after = min(down_for, gap - 0.5)  # restarted some time within the gap
    new_uptime = gap - restart_after
    state, flags = run([reading(up_before, at=up_before), reading(new_uptime, at=up_before + gap)])
    if new_uptime + uptime.MIN_TOLERANCE < gap or new_uptime < up_before - uptime.BACKSTEP_SLACK:
        assert flags[1] is True
        assert state.reboots == 1


def test_stamp_to_unix_places_stamps_in_the_right_epoch() -> None:
    epoch = Epoch(start=BOOT, uptime=1000.0, boot_time=BOOT)
    assert stamp_to_unix(0.0, epoch) == BOOT
    assert stamp_to_unix(999.0, epoch) == BOOT + 999.0
    assert stamp_to_unix(1100.0, epoch) == BOOT + 1100.0  # read a little after the uptime
    assert stamp_to_unix(50_000.0, epoch) is None  # would be before the boot
    wrapped = Epoch(start=BOOT + WRAP_SECONDS, uptime=1000.0, boot_time=BOOT)
    assert stamp_to_unix(50_000.0, wrapped) == pytest.approx(BOOT + 50_000.0)  # before the wrap
    assert stamp_to_unix(10.0, wrapped) == pytest.approx(BOOT + WRAP_SECONDS + 10.0)


# --- the short path of plain metrics (MetricSpec.plain) ---------------------------------------------

# MetricSpec fields that MetricSpec.plain looks at (any of them set: the full path), and the ones that do
# not change a value. A new field must be put in one of the two, after deciding whether plain must see it.
PLAIN_RULES = {"fallback", "filter", "equals", "add", "multiply_by", "scale_from", "as_timestamp", "unknown",
               "valid", "as_unsigned"}
NOT_A_VALUE_RULE = {"name", "type", "help", "oid", "scale", "labels", "const_labels"}


def test_plain_looks_at_every_field_that_changes_a_value() -> None:
    assert {f.name for f in dataclasses.fields(MetricSpec)} == PLAIN_RULES | NOT_A_VALUE_RULE


@pytest.mark.parametrize("rule", sorted(PLAIN_RULES))
def test_a_metric_with_any_value_rule_takes_the_full_path(rule: str) -> None:
    settings: dict[str, object] = {
        "fallback": {"oid": "1.3.6.1.2.1.2.2.1.10"},
        "filter": [{"oid": "1.3.6.1.2.1.2.2.1.8", "any_of": ["1"]}],
        "equals": [1], "add": "1.3.6.1.2.1.2.2.1.10", "multiply_by": "1.3.6.1.2.1.2.2.1.10",
        "scale_from": {"si_prefix": "1.3.6.1.2.1.99.1.1.1.2"}, "as_timestamp": True, "unknown": [-1],
        "valid": {"min": 0}, "as_unsigned": True}
    base = {"name": "hatang_x", "type": "gauge", "help": "x", "oid": "1.3.6.1.2.1.31.1.1.1.6"}
    assert configfile.validate(MetricSpec, base).plain is not None
    assert configfile.validate(MetricSpec, {**base, rule: settings[rule]}).plain is None


# --- row label sets kept between polls (map_table's row_labels, TablePlan.steady_labels) ------------


def test_labels_are_steady_only_when_every_label_column_is_a_slow_one(tmp_path: Path,
                                                                       builtin: dict[str, Profile]) -> None:
    assert table_plan(builtin["interfaces"].tables[0]).steady_labels
    table = load_user(tmp_path, "status", f"""\
        name: status
        tables:
          - name: t
            index_label: idx
            labels: {{state: {T}.2, name: {T}.3}}
            metrics: [{{name: hatang_x_state, type: gauge, oid: {T}.2, help: h}}]
        """).tables[0]
    assert not table_plan(table).steady_labels  # state labels the rows and is read every poll


def test_kept_row_labels_give_the_same_families_as_labels_made_every_time(tmp_path: Path) -> None:
    table = load_user(tmp_path, "ups", f"""\
        name: ups
        tables:
          - name: t
            index_label: idx
            labels: {{name: {T}.3, kind: {{oid: {T}.4, map: {{"1": battery}}}}}}
            metrics:
              - {{name: hatang_x_load, type: gauge, oid: {T}.2, help: h}}
              - {{name: hatang_x_temp, type: gauge, oid: {T}.5, help: h, const_labels: {{unit: c}}}}
        """).tables[0]
    slow = {COL[3]: {"1": octets("Bộ lưu điện 1"), "2": octets("UPS 2")}, COL[4]: {"1": integer(1)}}
    kept: dict[str, tuple[tuple[str, str], ...]] = {}
    for load in (10, 11, 12):
        columns = {**slow, COL[2]: {"1": integer(load), "2": integer(load + 5), "3": integer(1)},
                   COL[5]: {"2": integer(30)}}
        assert map_table(table, columns, row_labels=kept) == map_table(table, columns)
    assert sorted(kept) == ["1", "2", "3"]
    assert dict(kept["1"]) == {"idx": "1", "name": "Bộ lưu điện 1", "kind": "battery"}

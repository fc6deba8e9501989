"""Values must mean what they say: Opaque floats, decimal scaling, ifHighSpeed 0, sentinels, overflowed
Integer32, wrong types; and the poller reports what it could not use, profiles that returned nothing,
and counts every problem by reason (issue #10)."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence

import pytest

from agent import mapping
from agent.poller import DevicePoller, PollOutcome
from agent.profiles import Profile, load_profiles, parse_oid
from agent.snmp.values import OID, SnmpValue
from agent.transforms import apply_scale, numeric, unusable
from tests.support.sequential_walks import SequentialWalks
from tests.unit.test_poller_cache import IF, IFX, Clocks, FakeDevice, families, make
from wire.codec import decode_batch, encode_batch
from wire.messages import ERROR_REASONS, Family, PollBatch, ProfileError

UPS = {name: parse_oid(f"1.3.6.1.2.1.33.1.{n}") for name, n in (
    ("status", "2.1.0"), ("on_battery", "2.2.0"), ("minutes", "2.3.0"), ("charge", "2.4.0"),
    ("temperature", "2.7.0"), ("source", "4.1.0"), ("load", "4.4.1.5"), ("out_voltage", "4.4.1.2"))}
HR_STORAGE = {name: parse_oid(f"1.3.6.1.2.1.25.2.3.1.{n}") for name, n in
              (("type", 2), ("descr", 3), ("units", 4), ("size", 5), ("used", 6))}
IF_HIGH_SPEED = parse_oid("1.3.6.1.2.1.31.1.1.1.15")


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


def opaque_float(number: float) -> SnmpValue:
    """net-snmp's encoding of an Opaque float: 9f 78 04 + IEEE 754 single."""
    return SnmpValue("opaque", b"\x9f\x78\x04" + struct.pack(">f", number))


def opaque_double(number: float) -> SnmpValue:
    return SnmpValue("opaque", b"\x9f\x79\x08" + struct.pack(">d", number))


# ------------------------------------------------------------------------------------------ values


def test_opaque_float_and_double_are_read_as_numbers() -> None:
    assert numeric(opaque_float(36.5)) == 36.5
    assert numeric(opaque_double(0.123456789012)) == 0.123456789012
    assert numeric(SnmpValue("opaque", b"\x9f\x7a\x01\xff")) == -1  # Opaque integer64
    assert numeric(SnmpValue("opaque", b"\x9f\x7b\x02\x01\x00")) == 256  # Opaque unsigned64
    assert numeric(opaque_float(float("nan"))) is None
    assert numeric(SnmpValue("opaque", b"\x9f\x78\x05" + b"\x00" * 4)) is None  # length lies


def test_decimal_scaling_gives_the_shortest_exact_value() -> None:
    assert repr(390315276 * 0.01) == "3903152.7600000002"  # the defect: multiplying by 0.01
    assert repr(numeric(SnmpValue("counter32", 390315276), 0.01)) == "3903152.76"
    assert repr(apply_scale(2301, 0.1)) == "230.1"
    assert apply_scale(10_000_000, 0.125) == 1_250_000
    assert apply_scale(3, 60) == 180
    assert apply_scale(7, 1.0) == 7 and isinstance(apply_scale(7, 1.0), int)
    assert apply_scale(10, 0.3) == pytest.approx(3.0)  # not 1/n: multiplied


def test_wrong_types_are_described_and_absent_values_are_not() -> None:
    assert unusable(SnmpValue("octets", b"abc")) == "OCTET STRING 'abc' where a number is expected"
    assert unusable(SnmpValue("octets", b"12.5")) is None  # numbers as text are read (laLoad)
    assert unusable(SnmpValue("no_such_instance", None)) is None
    assert unusable(None) is None
    assert "Opaque" in (unusable(SnmpValue("opaque", b"\x01\x02")) or "")


# ------------------------------------------------------------------------------ profiles as data


def _ups_scalars(**values: SnmpValue) -> dict[OID, SnmpValue]:
    return {UPS[name]: value for name, value in values.items()}


def test_ups_unknown_readings_are_absent_not_negative(profiles: dict[str, Profile]) -> None:
    values = _ups_scalars(minutes=SnmpValue("integer", -1), charge=SnmpValue("integer", -1),
                          temperature=SnmpValue("integer", -1), status=SnmpValue("integer", 2))
    bad: list[mapping.BadValue] = []
    fams = {f.name: f for f in mapping.map_scalars(profiles["ups"], values, bad=bad)}
    assert "hatang_ups_battery_runtime_seconds" not in fams
    assert "hatang_ups_battery_charge_ratio" not in fams
    assert "hatang_ups_battery_temperature_celsius" not in fams
    assert fams["hatang_ups_battery_status"].samples[0].value == 2
    assert bad == []  # "unknown" is not an error


def test_ups_readings_outside_the_mib_are_reported_not_published(profiles: dict[str, Profile]) -> None:
    table = next(t for t in profiles["ups"].tables if t.name == "output")
    load = UPS["load"]
    columns = {load: {"1": SnmpValue("integer", 250), "2": SnmpValue("integer", 37),
                      "3": SnmpValue("integer", 4294967295)}}  # beyond Integer32: as the fast path reads it
    bad: list[mapping.BadValue] = []
    fams = {f.name: f for f in mapping.map_table(table, columns, bad=bad)}
    samples = fams["hatang_ups_output_load_ratio"].samples
    assert [(dict(s.labels)["line"], s.value) for s in samples] == [("2", 0.37)]
    assert [(b.metric, b.oid, b.index) for b in bad] == [("hatang_ups_output_load_ratio", load, "1"),
                                                         ("hatang_ups_output_load_ratio", load, "3")]
    assert "250 outside 0..200 allowed by the MIB" in bad[0].describe()
    assert "INTEGER 4294967295 outside the Integer32 range" in bad[1].describe()
    charge = mapping.map_scalars(profiles["ups"], _ups_scalars(charge=SnmpValue("integer", 100)))
    assert charge[0].samples[0].value == 1  # the bound itself is valid


def test_storage_sizes_that_overflowed_integer32_are_read_unsigned(profiles: dict[str, Profile]) -> None:
    table = next(t for t in profiles["host"].tables if t.name == "storage")
    # a 10 TiB disk in 4 kB units: 2,684,354,560 units, sent as the Integer32 -1,610,612,736
    units = 10 * 2**40 // 4096
    columns = {
        HR_STORAGE["size"]: {"31": SnmpValue("integer", units - 2**32)},
        HR_STORAGE["used"]: {"31": SnmpValue("integer", 1000)},
        HR_STORAGE["units"]: {"31": SnmpValue("integer", 4096)},
        HR_STORAGE["descr"]: {"31": SnmpValue("octets", b"/srv")},
    }
    fams = {f.name: f for f in mapping.map_table(table, columns)}
    assert fams["hatang_host_storage_size_bytes"].samples[0].value == 10 * 2**40
    assert fams["hatang_host_storage_used_bytes"].samples[0].value == 1000 * 4096


def _speed(fams: Sequence[Family]) -> dict[str, float]:
    fam = next(f for f in fams if f.name == "hatang_interface_speed_bytes")
    return {dict(s.labels)["if_index"]: s.value for s in fam.samples}


def test_interface_speed_falls_back_to_ifspeed_where_ifhighspeed_is_zero(
        profiles: dict[str, Profile]) -> None:
    table = profiles["interfaces"].tables[0]
    columns = {
        IF_HIGH_SPEED: {"1": SnmpValue("gauge32", 0), "2": SnmpValue("gauge32", 1000),
                        "3": SnmpValue("gauge32", 0)},
        IF["speed"]: {"1": SnmpValue("gauge32", 2_048_000), "2": SnmpValue("gauge32", 4294967295),
                      "3": SnmpValue("gauge32", 0)},
    }
    assert _speed(mapping.map_table(table, columns)) == {
        "1": 256_000,  # a 2 Mb/s serial line: ifSpeed / 8
        "2": 125_000_000,  # 1 Gb/s from ifHighSpeed; ifSpeed's 2^32-1 ignored
        "3": 0,  # both 0: really 0
    }


def test_the_poller_reads_ifspeed_cells_where_ifhighspeed_is_zero(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), ports=(1, 2))
    device.columns[IF_HIGH_SPEED] = {1: SnmpValue("gauge32", 0), 2: SnmpValue("gauge32", 100)}
    device.columns[IF["speed"]] = {1: SnmpValue("gauge32", 64_000), 2: SnmpValue("gauge32", 100_000_000)}
    outcome = asyncio.run(make(device, profiles).poll())
    assert _speed(outcome.families) == {"1": 8_000, "2": 12_500_000}
    assert [(IF["speed"] + (1,))] in device.gets  # one GET for the one zero cell, no walk of ifSpeed
    assert device.walks[IF["speed"]] == 0


# -------------------------------------------------------------------------------------- the poller


def test_unusable_values_are_counted_reported_and_logged_once(profiles: dict[str, Profile],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    device = FakeDevice(Clocks(), ports=(1, 2, 3))
    device.columns[IFX["hc_in"]] = {1: SnmpValue("counter64", 10), 2: SnmpValue("octets", b"n/a"),
                                    3: SnmpValue("octets", b"n/a")}
    poller = make(device, profiles)
    caplog.set_level(logging.WARNING, "hatang.agent.poller")

    async def three() -> list[PollOutcome]:
        return [await poller.poll() for _ in range(3)]

    last = asyncio.run(three())[-1]
    in_bytes = families(last.families)["hatang_interface_in_bytes_total"]
    assert {dict(s.labels)["if_index"] for s in in_bytes.samples} == {"1"}
    [error] = last.errors
    assert (error.profile, error.reason) == ("interfaces", "bad_value")
    assert error.error.startswith("2 value(s) could not be used")
    assert "OCTET STRING 'n/a' where a number is expected" in error.error
    assert "1.3.6.1.2.1.31.1.1.1.6.2" in error.error
    assert dict(last.problems)["bad_value"] == 6
    logged = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(logged) == 1  # once per device, metric and column, not per row or poll


def test_every_poll_publishes_problem_counts_for_every_reason(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    poller = make(device, profiles, names=("system", "interfaces", "ups"))
    outcome = asyncio.run(poller.poll())
    assert [(e.profile, e.reason) for e in outcome.errors] == [("ups", "empty_profile")]
    published = {f.name: f for f in outcome.published}
    counter = published["hatang_device_poll_errors_total"]
    assert counter.type == "counter"
    counts = {dict(s.labels)["reason"]: s.value for s in counter.samples}
    assert set(counts) == set(ERROR_REASONS)
    assert counts["empty_profile"] == 1 and counts["timeout"] == 0
    assert "hatang_device_poll_errors_total" not in {f.name for f in outcome.families}


class _SlowTable(SequentialWalks):
    """A v1-like device: fast scalars and ifXTable, a never-ending ifTable walk."""

    def __init__(self, device: FakeDevice, slow: OID) -> None:
        self.device, self.slow = device, slow

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        return await self.device.get(oids)

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        if root == self.slow:
            await asyncio.sleep(3600)
        return await self.device.walk(root, max_rows=max_rows)


def test_a_poll_out_of_time_publishes_the_tables_it_completed(profiles: dict[str, Profile]) -> None:
    host = next(t for t in profiles["host"].tables if t.name == "storage")
    device = FakeDevice(Clocks())
    device.columns[HR_STORAGE["size"]] = {1: SnmpValue("integer", 10)}
    device.columns[HR_STORAGE["used"]] = {1: SnmpValue("integer", 5)}
    device.columns[HR_STORAGE["units"]] = {1: SnmpValue("integer", 4096)}
    reader = _SlowTable(device, parse_oid("1.3.6.1.2.1.25.3.3.1.2"))  # hrProcessorLoad never ends
    assert host.name == "storage"
    poller = DevicePoller("old-ups", reader, [profiles["system"], profiles["host"]], deadline=0.2,
                          deadline_hint="; use v2c")

    async def poll() -> PollOutcome:
        async with asyncio.timeout(10):
            return await poller.poll()

    outcome = asyncio.run(poll())
    names = set(families(outcome.families))
    assert "hatang_device_uptime_seconds" in names  # the system profile completed
    assert "hatang_host_processes" not in names  # absent scalars
    assert "hatang_host_storage_size_bytes" not in names  # storage comes after processors: not reached
    [error] = outcome.errors
    assert error.reason == "deadline"
    assert "profile host, table processors (column 1.3.6.1.2.1.25.3.3.1.2)" in error.error
    assert error.error.endswith("published what completed (whole tables); use v2c")


def test_profile_error_reasons_travel_on_the_wire_and_old_payloads_still_decode() -> None:
    batch = PollBatch("xa-a", "b" * 32, 1, 1_790_000_000.0, "sw", 60, True, 0.1,
                      errors=(ProfileError("ups", "returned no data", "empty_profile"),
                              ProfileError("*", "older agent")))
    payload = encode_batch(batch)
    assert b'"reason"' in payload and payload.count(b'"reason"') == 1  # omitted when empty
    assert decode_batch(payload).errors == batch.errors

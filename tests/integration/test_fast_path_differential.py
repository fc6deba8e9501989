"""The agent's fast v1/v2c path (agent.snmp.ber + agent.snmp.community) against its pysnmp path, on every
recording of real equipment that tests/integration/test_recorded_devices.py replays (PyPI snmpsim-data).

For each recording: a walk of the whole MIB with SnmpEngine(fast_path=True) and with
SnmpEngine(fast_path=False) must give identical rows, and those rows must be the recording itself; two
polls with every built-in profile through DevicePoller (the second one reusing cached labels) must give
identical families: names, types, help, labels and values. Both pollers run on the same fixed clock, so
values derived from the time (boot time, interface last change) are comparable exactly; timestamps and
durations are not compared. SNMPv1 (GETNEXT walks, noSuchName, Counter64 hidden by the simulator as RFC
2576 says) is checked on two recordings. Without snmpsim-data these tests skip, or fail when CI=true.

An OID that BER cannot carry (one arc, or 1.40.1) fails alike on both paths, with SnmpError (reason
snmp_error). Broken answers (wrong OIDs, OIDs not increasing) are compared on both paths in
tests/integration/test_snmp_broken_answers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent.poller import DevicePoller, PollOutcome
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from agent.snmp.values import OID, SnmpValue
from hatang.sim import ber
from hatang.sim.ber import Value
from tests.integration.test_recorded_devices import DEVICES, PROFILES
from tests.support import snmprec
from tests.support.bad_responders import serve, silent

pytestmark = pytest.mark.integration

V2C = Credentials("2c", "public")
V1 = Credentials("1", "public")
V1_DEVICES = ("ups", "windows")  # the smaller recordings: a v1 walk is one GETNEXT per row
NOW = 1_795_550_709.0  # both pollers' clock
MONOTONIC = 5_000.0

KINDS = {ber.INTEGER: "integer", ber.OCTET_STRING: "octets", ber.NULL: "null", ber.OBJECT_IDENTIFIER: "oid",
         ber.IP_ADDRESS: "ipaddress", ber.COUNTER32: "counter32", ber.GAUGE32: "gauge32",
         ber.TIMETICKS: "timeticks", ber.OPAQUE: "opaque", ber.COUNTER64: "counter64",
         ber.NO_SUCH_OBJECT: "no_such_object", ber.NO_SUCH_INSTANCE: "no_such_instance",
         ber.END_OF_MIB_VIEW: "end_of_mib_view"}


def recording(data_dir: Path, device: str) -> snmprec.Recording:
    return snmprec.load_recording(snmprec.find_recording(data_dir, DEVICES[device]))


@asynccontextmanager
async def served(rec: snmprec.Recording) -> AsyncIterator[int]:
    handle = await snmprec.serve([snmprec.device(rec)])
    try:
        yield handle.endpoints[0].port
    finally:
        handle.close()


def snmp_value(value: Value) -> SnmpValue:
    """A recorded value as the agent should see it, written out independently of both paths."""
    kind, raw = KINDS[value.tag], value.value
    if isinstance(raw, tuple):
        return SnmpValue(kind, ".".join(map(str, raw)))
    if value.tag == ber.IP_ADDRESS and isinstance(raw, bytes):
        return SnmpValue(kind, ".".join(map(str, raw)))
    return SnmpValue(kind, raw)


def recorded_rows(rec: snmprec.Recording, v1: bool) -> list[tuple[OID, SnmpValue]]:
    return [(oid, snmp_value(value)) for oid, value in sorted(rec.values.items())
            if not (v1 and value.tag == ber.COUNTER64)]  # RFC 2576: a v1 agent skips Counter64 objects


def roots(rec: snmprec.Recording) -> list[OID]:
    """The whole MIB: a walk of (1,) cannot be encoded (BER needs two arcs), so one walk per first two
    arcs that occur, e.g. (1, 0) for IEEE 802.1AB LLDP-MIB (1.0.8802) and (1, 3) for the rest."""
    return sorted({oid[:2] for oid in rec.values})


async def walk(port: int, creds: Credentials, fast_path: bool,
               walk_roots: list[OID]) -> tuple[list[tuple[OID, SnmpValue]], int]:
    """The rows under ``walk_roots``, and how many datagrams needed repair_unsigned (or were read as
    two's complement)."""
    engine = SnmpEngine(fast_path=fast_path)
    try:
        target = await engine.target("127.0.0.1", port, creds, timeout=2.0, retries=1)
        rows = []
        for root in walk_roots:
            rows += await target.walk(root, max_rows=1_000_000)
        return rows, engine.repaired_datagrams
    finally:
        engine.close()


async def polls(port: int, name: str, creds: Credentials, fast_path: bool) -> list[PollOutcome]:
    engine = SnmpEngine(fast_path=fast_path)
    try:
        target = await engine.target("127.0.0.1", port, creds, timeout=2.0, retries=1)
        profiles = load_profiles()
        poller = DevicePoller(name, target, [profiles[p] for p in PROFILES], deadline=120.0,
                              timeout_errors=(SnmpTimeout,), snmp_errors=(SnmpError,),
                              clock=lambda: NOW, monotonic=lambda: MONOTONIC)
        return [await poller.poll(), await poller.poll()]  # the second one with cached labels
    finally:
        engine.close()


def assert_same_polls(fast: list[PollOutcome], slow: list[PollOutcome]) -> None:
    assert len(fast) == len(slow)
    for mine, theirs in zip(fast, slow, strict=True):
        assert mine.up and theirs.up
        assert (mine.ts, mine.errors) == (theirs.ts, theirs.errors)
        assert [f.name for f in mine.families] == [f.name for f in theirs.families]
        for family, other in zip(mine.families, theirs.families, strict=True):
            assert family == other, family.name  # type, help, every sample's labels and value
    assert sum(len(f.samples) for f in fast[0].families) > 0


@pytest.mark.parametrize("device", sorted(DEVICES))
async def test_walk_of_the_whole_mib_is_identical_on_both_paths(data_dir: Path, device: str) -> None:
    rec = recording(data_dir, device)
    async with served(rec) as port:
        fast, fast_repaired = await walk(port, V2C, True, roots(rec))
        slow, slow_repaired = await walk(port, V2C, False, roots(rec))
    assert fast == slow
    assert fast == recorded_rows(rec, v1=False)  # and both are the recording, all of it
    assert fast_repaired == slow_repaired == 0


@pytest.mark.parametrize("device", sorted(DEVICES))
async def test_polls_with_every_profile_are_identical_on_both_paths(data_dir: Path, device: str) -> None:
    rec = recording(data_dir, device)
    async with served(rec) as port:
        fast = await polls(port, rec.name, V2C, fast_path=True)
        slow = await polls(port, rec.name, V2C, fast_path=False)
    assert_same_polls(fast, slow)
    # no SNMP error (a real device is never flagged wrong_oid, not_increasing, ...); a profile whose MIB
    # the device lacks is reported as empty (the poller's empty_profile), alike on both paths
    assert {e.reason for e in fast[0].errors} <= {"empty_profile"}, fast[0].errors


@pytest.mark.parametrize("device", V1_DEVICES)
async def test_snmpv1_walk_and_polls_are_identical_on_both_paths(data_dir: Path, device: str) -> None:
    rec = recording(data_dir, device)
    async with served(rec) as port:
        fast, _ = await walk(port, V1, True, roots(rec))
        slow, _ = await walk(port, V1, False, roots(rec))
        assert fast == slow
        assert fast == recorded_rows(rec, v1=True)
        assert_same_polls(await polls(port, rec.name, V1, fast_path=True),
                          await polls(port, rec.name, V1, fast_path=False))


@pytest.mark.parametrize("oid", [(1,), (1, 40, 1)])
async def test_an_oid_ber_cannot_carry_fails_alike_on_both_paths(oid: OID) -> None:
    async with await serve(silent()) as responder:
        for fast_path in (False, True):
            engine = SnmpEngine(fast_path=fast_path)
            try:
                target = await engine.target(responder.host, responder.port, V2C, timeout=0.2, retries=0)
                with pytest.raises(SnmpError) as got:
                    await target.get([oid])
                with pytest.raises(SnmpError) as walked:
                    await target.walk(oid)
                assert type(got.value) is type(walked.value) is SnmpError
                assert got.value.reason == walked.value.reason == "snmp_error"
            finally:
                engine.close()

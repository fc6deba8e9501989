"""``profiles: auto`` with the real agent poller against recordings of real equipment (PyPI
``snmpsim-data``), replayed over UDP on 127.0.0.1 by tests/support/snmprec.py.

A device configured without ``profiles`` (the default, ``auto``) is built by agent.device_setup.make_poller
as the agent builds it, with the real SNMP client. What each device must get is computed here from the
recording and the MIBs' definitions, not from the profiles: ``system`` always; ``interfaces`` where the
recording has an ifTable (RFC 2863 IF-MIB ifEntry 1.3.6.1.2.1.2.2.1), ``host`` an hrStorageTable (RFC 2790
HOST-RESOURCES-MIB hrStorageEntry 1.3.6.1.2.1.25.2.3.1), ``ups`` a UPS-MIB battery group (RFC 1628 upsBattery
1.3.6.1.2.1.33.1.2), ``sensors`` an entPhySensorTable (RFC 3433 ENTITY-SENSOR-MIB entPhySensorEntry
1.3.6.1.2.1.99.1.1.1). Without snmpsim-data these tests skip, or fail when CI=true.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent.config import DeviceConfig
from agent.device_setup import make_poller
from agent.poller import DevicePoller, PollOutcome
from agent.profiles import Profile, load_profiles, parse_oid
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from hatang.sim.ber import OID, Value
from hatang.sim.device import SimulatedDevice
from tests.support import snmprec

pytestmark = pytest.mark.integration

TEST_DEADLINE = 120.0
STANDARD = ("system", "interfaces", "host", "ups", "sensors")
SUBTREES = {  # profile -> the MIB table or group whose presence gives it
    "interfaces": "1.3.6.1.2.1.2.2.1",
    "host": "1.3.6.1.2.1.25.2.3.1",
    "ups": "1.3.6.1.2.1.33.1.2",
    "sensors": "1.3.6.1.2.1.99.1.1.1",
}
METRIC_PREFIXES = {"interfaces": "hatang_interface_", "host": "hatang_host_", "ups": "hatang_ups_",
                   "sensors": "hatang_sensor_"}
RECORDINGS = {
    "cisco-switch": "network/switch/cisco-c3560",
    "linux": "os/linux/slackware",
    "ups": "UPS/eaton-93e-80",
    "ups-card-says-linux": "UPS/huawei-gse200m",  # sysObjectID net-snmp Linux, answers UPS-MIB
    "windows": "os/windows/server-2003-5-2",
    "sensors": "cloud/arista-dcs-7150s-52-cl",
}


def load(data_dir: Path, device: str) -> snmprec.Recording:
    return snmprec.load_recording(snmprec.find_recording(data_dir, RECORDINGS[device]))


def sys_object_id(rec: snmprec.Recording) -> str:
    value = rec.get(parse_oid("1.3.6.1.2.1.1.2.0"))
    assert value is not None and isinstance(value.value, tuple)
    return ".".join(map(str, value.value))


def expected_profiles(rec: snmprec.Recording) -> set[str]:
    """The standard profiles a recording's device must get: system, and each whose MIB it holds."""
    return {"system"} | {name for name, subtree in SUBTREES.items() if rec.column(parse_oid(subtree))}


class Swappable(SimulatedDevice):
    """A served device whose recording can be replaced while it is served (the box at an address is
    swapped for another one)."""

    def __init__(self, inner: SimulatedDevice) -> None:
        super().__init__(inner.name, {})
        self.inner = inner

    def now(self) -> float:
        return self.inner.now()

    def get(self, oid: OID, t: float | None = None) -> Value | None:
        return self.inner.get(oid, t)

    def index_after(self, oid: OID) -> int:
        return self.inner.index_after(oid)

    def entry(self, index: int, t: float) -> tuple[OID, Value] | None:
        return self.inner.entry(index, t)

    def has_prefix(self, prefix: OID) -> bool:
        return self.inner.has_prefix(prefix)


@asynccontextmanager
async def auto_device(rec: snmprec.Recording, profiles: Mapping[str, Profile]
                      ) -> AsyncIterator[tuple[DevicePoller, Swappable]]:
    """The recording served on 127.0.0.1 and the agent's poller of a device configured without
    ``profiles`` (so ``auto``)."""
    served = Swappable(snmprec.device(rec))
    handle = await snmprec.serve([served])
    engine = SnmpEngine()
    try:
        config = DeviceConfig(name="thiet-bi", address="127.0.0.1", port=handle.endpoints[0].port,
                              interval=130)
        assert config.auto_profiles
        target = await engine.target("127.0.0.1", config.port, Credentials("2c", "public"), timeout=2.0,
                                     retries=1)
        yield make_poller(config, target, profiles), served
    finally:
        engine.close()
        handle.close()


def standard_catalogue() -> dict[str, Profile]:
    """The built-in standard profiles only: vendor profiles are proven by their own tests."""
    builtin = load_profiles()
    return {name: builtin[name] for name in STANDARD}


def polled_prefixes(outcome: PollOutcome) -> set[str]:
    return {name for name, prefix in METRIC_PREFIXES.items()
            if any(f.name.startswith(prefix) for f in outcome.families)}


@pytest.mark.parametrize("device", sorted(RECORDINGS))
async def test_a_device_gets_the_standard_profiles_its_recording_answers(data_dir: Path, device: str) -> None:
    rec = load(data_dir, device)
    expected = expected_profiles(rec)
    async with asyncio.timeout(TEST_DEADLINE), auto_device(rec, standard_catalogue()) as (poller, _):
        first = await poller.poll()
        second = await poller.poll()
    for outcome in (first, second):
        assert outcome.up
        assert set(outcome.profiles) == expected
        assert outcome.profiles[0] == "system"  # the boot time first, for ifLastChange's timestamps
        assert outcome.errors == (), outcome.errors  # a chosen profile has data: no empty_profile
        assert polled_prefixes(outcome) == expected - {"system"}
    assert poller.selection is not None and poller.selection.identity is not None
    assert poller.selection.identity.sys_object_id == sys_object_id(rec)


def test_the_recordings_cover_the_cases_of_the_issue(data_dir: Path) -> None:
    """Guards the parametrisation above: the cases it claims are in the recordings."""
    assert expected_profiles(load(data_dir, "cisco-switch")) == {"system", "interfaces"}
    assert "host" in expected_profiles(load(data_dir, "linux"))
    assert "ups" in expected_profiles(load(data_dir, "ups"))
    card = load(data_dir, "ups-card-says-linux")
    assert sys_object_id(card).startswith("1.3.6.1.4.1.8072.3.2") and "ups" in expected_profiles(card)
    assert "sensors" in expected_profiles(load(data_dir, "sensors"))


async def test_a_device_swapped_for_another_is_identified_again(data_dir: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.profiles")
    switch, ups = load(data_dir, "cisco-switch"), load(data_dir, "ups")
    assert sys_object_id(switch) != sys_object_id(ups)
    async with asyncio.timeout(TEST_DEADLINE), auto_device(switch, standard_catalogue()) as (poller, served):
        before = await poller.poll()
        assert set(before.profiles) == expected_profiles(switch)
        served.inner = snmprec.device(ups)  # another box answers at the address
        seen = await poller.poll()  # still the switch's profiles; this poll reads the new sysObjectID
        assert seen.up and set(seen.profiles) == expected_profiles(switch)
        after = await poller.poll()
        again = await poller.poll()
    assert set(after.profiles) == expected_profiles(ups) == set(again.profiles)
    assert after.errors == () and polled_prefixes(after) == expected_profiles(ups) - {"system"}
    assert poller.selection is not None and poller.selection.identity is not None
    assert poller.selection.identity.sys_object_id == sys_object_id(ups)
    chosen = [r.getMessage() for r in caplog.records if "chosen automatically" in r.getMessage()]
    assert len(chosen) == 2, chosen  # logged once per change
    assert sys_object_id(switch) in chosen[0] and sys_object_id(ups) in chosen[1]


@pytest.mark.parametrize("device", sorted(RECORDINGS))
async def test_with_every_profile_each_standard_one_answered_is_polled_itself_or_through_a_vendor_one(
        data_dir: Path, device: str) -> None:
    """With vendor profiles too, what a device answers is still polled: by the standard profile, or by a
    chosen profile that extends it; nothing is chosen whose subtrees the device lacks."""
    rec = load(data_dir, device)
    profiles = load_profiles()
    async with asyncio.timeout(TEST_DEADLINE), auto_device(rec, profiles) as (poller, _):
        outcome = await poller.poll()
    assert outcome.up
    chosen = set(outcome.profiles)
    included = chosen | {base for name in chosen for base in _bases(profiles, name)}
    assert expected_profiles(rec) <= included
    for name in chosen:
        match = profiles[name].match
        assert match is not None
        assert all(rec.column(parse_oid(subtree)) for subtree in match.answers), name


def _bases(profiles: Mapping[str, Profile], name: str) -> set[str]:
    out: set[str] = set()
    for base in profiles[name].extends:
        out |= {base} | _bases(profiles, base)
    return out

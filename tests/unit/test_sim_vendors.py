"""The demo's simulated vendor switches (hatang/sim/vendors.py) and their LLDP (hatang/sim/lldp.py): what
``profiles: auto`` chooses for every device of the demo, the staged faults read from the vendor MIBs'
own columns over a simulated day, and cables seen from both ends with each other's chassis and port."""

from __future__ import annotations

import pytest

from agent.profile_selection import DeviceIdentity, choose, probe_oids
from agent.profiles import load_profiles
from hatang.demo_sites import OFFICES, build_office
from hatang.sim.ber import OID, Value
from hatang.sim.device import IFX_ENTRY, SimulatedDevice
from hatang.sim.lldp import LLDP_LOCAL, LLDP_REMOTE, Cable, cable, chassis_id
from hatang.sim.vendors import (
    CISCO_ENVMON,
    HH3C_ENTITY_EXT,
    HW_PWR_STATUS,
    MODELS,
    Condition,
    make_vendor_switch,
)

T0 = 1_700_000_000.0
DAY = range(0, 86400, 97)  # sample times over a simulated day (seconds since the device started)
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)


def _int(device: SimulatedDevice, oid: OID, t: float = 0.0) -> int:
    value = device.get(oid, t)
    assert value is not None and isinstance(value.value, int), (oid, value)
    return value.value


def _bytes(value: Value | None) -> bytes:
    assert value is not None and isinstance(value.value, bytes), value
    return value.value


def _auto_profiles(device: SimulatedDevice) -> list[str]:
    """What agent.profile_selection chooses for the device (a GETNEXT answers a subtree with an object)."""
    catalogue = load_profiles()
    oid_value, descr = device.get(SYS_OBJECT_ID), device.get(SYS_DESCR)
    assert oid_value is not None and isinstance(oid_value.value, tuple)
    identity = DeviceIdentity(".".join(map(str, oid_value.value)), _bytes(descr).decode())
    answered = {prefix for prefix in probe_oids(catalogue) if device.has_prefix(prefix)}
    return choose(catalogue, identity, answered)


@pytest.fixture(scope="module")
def demo() -> dict[str, SimulatedDevice]:
    return {d.name: d for office in OFFICES for d in build_office(office, T0)}


def test_auto_gives_the_vendor_profiles_and_neighbours(demo: dict[str, SimulatedDevice]) -> None:
    chosen = {name: set(_auto_profiles(device)) for name, device in demo.items()}
    vendor = {"core-switch-ttdl": "huawei-vrp", "core-switch": "huawei-vrp", "access-switch": "h3c-comware",
              "switch-lap-thach": "cisco-ios", "switch-vinh-yen": "h3c-comware"}
    for name, profile in vendor.items():
        assert {"system", "interfaces", profile, "neighbors"} <= chosen[name], (name, chosen[name])
    for name in ("router-ttdl", "router-tsldcd", "router-lap-thach", "router-vinh-yen"):
        assert chosen[name] == {"system", "interfaces", "neighbors"}, (name, chosen[name])
    for name in ("may-chu-dvc", "may-chu-csdl"):
        assert chosen[name] == {"system", "interfaces", "netsnmp-linux"}, (name, chosen[name])
    for name in ("ups-ttdl", "ups-mot-cua", "ups-lap-thach", "ups-vinh-yen"):
        assert chosen[name] == {"system", "interfaces", "ups"}, (name, chosen[name])


def test_staged_faults_hold_all_day_and_readings_move(demo: dict[str, SimulatedDevice]) -> None:
    # core-switch-ttdl (Huawei): power supply 3 notSupply(2), the others supply(1)
    ttdl = demo["core-switch-ttdl"]
    assert [_int(ttdl, (*HW_PWR_STATUS, 6, 0, n)) for n in (1, 2, 3, 4)] == [1, 1, 2, 1]
    # switch-lap-thach (Cisco): fan critical(3), temperature above 70 °C all day, but not constant
    lap = demo["switch-lap-thach"]
    assert _int(lap, (*CISCO_ENVMON, 4, 1, 3, 1004)) == 3
    temps = [_int(lap, (*CISCO_ENVMON, 3, 1, 7, 1008), t) for t in DAY]
    assert min(temps) > 70 and max(temps) < 80 and len(set(temps)) > 3
    # access-switch (H3C, index 2 = its board): CPU above 90 %, memory above 95 % all day
    access = demo["access-switch"]
    cpu = [_int(access, (*HH3C_ENTITY_EXT, 6, 2), t) for t in DAY]
    memory = [_int(access, (*HH3C_ENTITY_EXT, 8, 2), t) for t in DAY]
    assert min(cpu) > 90 and max(cpu) <= 99 and len(set(cpu)) > 3
    assert min(memory) > 95 and max(memory) <= 99
    # a healthy switch: moderate load, normal(2) parts, plausible temperature
    vinh_yen = demo["switch-vinh-yen"]
    assert all(5 <= _int(vinh_yen, (*HH3C_ENTITY_EXT, 6, 2), t) <= 40 for t in DAY)
    assert all(30 <= _int(vinh_yen, (*HH3C_ENTITY_EXT, 12, 2), t) <= 50 for t in DAY)
    assert {_int(vinh_yen, (*HH3C_ENTITY_EXT, 19, i)) for i in (101, 102, 111, 112)} == {2}


def test_every_model_builds_with_its_identity_and_port_names() -> None:
    for key, model in MODELS.items():
        device = make_vendor_switch(f"sw-{key}", key, Condition(failed_fans=(1,)), ports=6, flap_port=None,
                                    clock=lambda: T0)
        assert device.get(SYS_OBJECT_ID) is not None
        assert _bytes(device.get((*IFX_ENTRY, 1, 3))) == model.identity.port_name.format(n=3).encode()
        assert chassis_id(device)[:3] == model.oui
        assert _auto_profiles(device) == sorted({"system", "interfaces", model.mib})


def test_cables_are_seen_from_both_ends(demo: dict[str, SimulatedDevice]) -> None:
    cables = [c for office in OFFICES for c in office.cables]
    assert len(cables) >= len(OFFICES)  # every office has a link to draw
    for c in cables:
        for (near, near_port), (far, far_port) in (((c.a, c.a_port), (c.b, c.b_port)),
                                                   ((c.b, c.b_port), (c.a, c.a_port))):
            me, peer, column = demo[near], demo[far], len(LLDP_REMOTE)
            rows = [o for o in me.oids if o[:column + 1] == (*LLDP_REMOTE, 5) and o[-2] == near_port]
            assert len(rows) == 1, (near, near_port)
            index = rows[0][column + 1:]
            assert _bytes(me.get((*LLDP_REMOTE, 5, *index))) == _bytes(peer.get((*LLDP_LOCAL, 2, 0)))
            far_id = _bytes(peer.get((*LLDP_LOCAL, 7, 1, 3, far_port)))
            assert far_id == _bytes(peer.get((*IFX_ENTRY, 1, far_port)))  # its ifName
            assert _bytes(me.get((*LLDP_REMOTE, 7, *index))) == far_id
            assert _bytes(me.get((*LLDP_REMOTE, 9, *index))) == far.encode()


def test_cable_to_an_unknown_device_is_an_error() -> None:
    switch = make_vendor_switch("sw", "h3c-s5500", ports=4, flap_port=None, clock=lambda: T0)
    with pytest.raises(KeyError):
        cable({"sw": switch}, [Cable("sw", 4, "router", 2)])
    assert cable({"sw": switch}, []) == {"sw": switch}

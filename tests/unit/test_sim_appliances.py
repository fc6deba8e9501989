"""Simulated UPS and server (hatang/sim/appliances.py), the demo's offices and its link traps."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.inventory import load as load_inventory
from hatang.demo import agent_config
from hatang.demo_loopback import LINK_DOWN, LINK_UP, link_trap, next_change
from hatang.demo_sites import FLAP, FLAP_PORT, OFFICES, build_device, write_inventory
from hatang.sim import ber
from hatang.sim.appliances import HR, UCD, UPS_MIB, make_server, make_ups
from hatang.sim.device import Flap, SimulatedDevice, make_switch

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def num(device: SimulatedDevice, o: tuple[int, ...]) -> int:
    v = device.get(o)
    assert v is not None and isinstance(v.value, int), o
    return v.value


def text(device: SimulatedDevice, o: tuple[int, ...]) -> str:
    v = device.get(o)
    assert v is not None and isinstance(v.value, bytes), o
    return v.value.decode()


def test_ups_on_mains_then_on_battery_then_recharging() -> None:
    clock = FakeClock()
    ups = make_ups("ups", seed=1, clock=clock, outage=Flap(period=240, down=60), battery_minutes=10)
    source, on_batt, charge = (*UPS_MIB, 4, 1, 0), (*UPS_MIB, 2, 2, 0), (*UPS_MIB, 2, 4, 0)
    runtime, alarms, in_volts = (*UPS_MIB, 2, 3, 0), (*UPS_MIB, 6, 1, 0), (*UPS_MIB, 3, 3, 1, 3, 1)
    assert (num(ups, source), num(ups, on_batt), num(ups, charge), num(ups, alarms)) == (3, 0, 100, 0)
    assert 200 < num(ups, in_volts) < 240 and num(ups, (*UPS_MIB, 2, 1, 0)) == 2
    full_runtime = num(ups, runtime)
    clock.now = T0 + 180 + 50  # 50 s into the outage
    assert (num(ups, source), num(ups, on_batt), num(ups, alarms), num(ups, in_volts)) == (5, 50, 1, 0)
    assert 80 < num(ups, charge) < 100 and num(ups, runtime) < full_runtime
    clock.now = T0 + 239  # the end of the outage
    low = num(ups, charge)
    clock.now = T0 + 240 + 30  # mains back 30 s ago: recharging, slower than it drained
    assert num(ups, source) == 3 and low < num(ups, charge) < 100
    for column in (2, 3, 4, 5):  # output voltage, current, power, load
        assert num(ups, (*UPS_MIB, 4, 4, 1, column, 1)) > 0


def test_ups_values_fit_the_mib_ranges_of_the_profile() -> None:
    clock = FakeClock()
    ups = make_ups("ups3", seed=3, clock=clock, lines=3, capacity_va=20000)
    for t in range(0, 3600, 97):
        clock.now = T0 + t
        assert 1 <= num(ups, (*UPS_MIB, 2, 1, 0)) <= 4 and 0 <= num(ups, (*UPS_MIB, 2, 4, 0)) <= 100
        assert all(0 <= num(ups, (*UPS_MIB, 4, 4, 1, 5, line)) <= 200 for line in (1, 2, 3))
        assert -50 <= num(ups, (*UPS_MIB, 2, 7, 0)) <= 150
    assert [o[-1] for o, _ in ups.walk((*UPS_MIB, 4, 4, 1, 1))] == [1, 2, 3]


def test_server_cpu_storage_memory_and_load() -> None:
    clock = FakeClock()
    srv = make_server("srv", seed=2, clock=clock, cpus=4, mounts=(("/", 50), ("/var", 100), ("/data", 2000)))
    cpu_ticks = [(*UCD, 11, c, 0) for c in (50, 51, 52, 53, 54, 56, 61, 64)]
    before = [num(srv, o) for o in cpu_ticks]
    descr = {o[-1]: v.value for o, v in srv.walk((*HR, 2, 3, 1, 3))}
    assert {b"/", b"/var", b"/data", b"Physical memory"} <= set(descr.values())
    data = next(i for i, d in descr.items() if d == b"/data")
    used = num(srv, (*HR, 2, 3, 1, 6, data))
    assert 0 < used < num(srv, (*HR, 2, 3, 1, 5, data))
    assert num(srv, (*HR, 2, 3, 1, 4, data)) == 4096
    clock.now = T0 + 60
    after = [num(srv, o) for o in cpu_ticks]
    total = sum(a - b for a, b in zip(after, before, strict=True))
    assert total == pytest.approx(100 * 4 * 60, abs=20)  # 100 ticks a second per CPU, spread over modes
    assert all(a >= b for a, b in zip(after, before, strict=True))
    assert num(srv, (*HR, 2, 3, 1, 6, data)) >= used  # disks fill, slowly
    loads = [o for o, _ in srv.walk((*HR, 3, 3, 1, 2))]
    assert len(loads) == 4 and all(0 <= num(srv, o) <= 100 for o in loads)
    for n in (1, 2, 3):
        assert float(text(srv, (*UCD, 10, 1, 3, n))) == pytest.approx(num(srv, (*UCD, 10, 1, 5, n)) / 100)
    total_kb, avail_kb = num(srv, (*UCD, 4, 5, 0)), num(srv, (*UCD, 4, 27, 0))
    assert total_kb == 32 * 1024 * 1024 and 0 < num(srv, (*UCD, 4, 6, 0)) < avail_kb < total_kb
    assert srv.get((*UCD, 4, 20, 0)) == ber.counter64(total_kb)


def test_link_traps_follow_the_flap() -> None:
    clock = FakeClock()
    flap = Flap(period=60, down=20)
    switch = make_switch("sw", ports=8, flap_port=2, clock=clock)
    assert next_change(flap, 10) == 40 and next_change(flap, 45) == 60 and next_change(flap, 60) == 100
    clock.now = T0 + 41
    down = ber.decode_message(link_trap(switch, 2, flap.is_up(switch.now()), 7))
    assert down.community == b"public" and down.pdu.request_id == 7
    varbinds = dict(down.pdu.varbinds)
    assert varbinds[ber.SNMP_TRAP_OID_0] == ber.oid(LINK_DOWN)
    assert varbinds[(1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 2)] == ber.integer(2)
    up = ber.decode_message(link_trap(switch, 2, True, 8))
    assert dict(up.pdu.varbinds)[ber.SNMP_TRAP_OID_0] == ber.oid(LINK_UP)


def test_demo_offices_inventory_and_agent_configs(tmp_path: Path) -> None:
    agents = [o.agent for o in OFFICES]
    assert len(agents) >= 3 and len(set(agents)) == len(agents)
    assert any(o.district for o in OFFICES) and any(o.commune and not o.district for o in OFFICES)
    inventory = load_inventory(write_inventory(tmp_path / "inventory.csv"))
    assert set(inventory.sites) == set(agents)
    assert all(s.latitude is not None and s.longitude is not None for s in inventory.sites.values())
    names = [p.name for o in OFFICES for p in o.devices]
    assert len(set(names)) == len(names)
    kinds = {p.kind for o in OFFICES for p in o.devices}
    assert {"switch", "router", "ups", "server", "silent"} <= kinds
    ports = {name: 10_000 + i for i, name in enumerate(names)}
    for office in OFFICES:
        config = agent_config(office, ports, "mqtt://127.0.0.1:1883", tmp_path, 4000, 4001)
        assert config.site.labels() == inventory.sites[office.agent].labels()
        assert len(config.probes) == 1 and config.probes[0].method == "tcp"
        assert (config.traps is not None) == office.traps
        for plan in office.devices:
            if plan.kind != "silent":
                device = build_device(office, plan, T0)
                assert device.name == plan.name and len(device) > 10
    trapped = next(o for o in OFFICES if o.traps)
    assert trapped.devices[0].name == "core-switch"  # a trap from 127.0.0.1 goes to the first device there
    assert trapped.devices[0].options["flap_port"] == FLAP_PORT and FLAP.down < FLAP.period

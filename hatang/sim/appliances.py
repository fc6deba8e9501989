"""Simulated appliances: a UPS (RFC 1628 UPS-MIB) and a Linux server (HOST-RESOURCES-MIB, UCD-SNMP-MIB).

They answer what the built-in ``ups`` and ``host`` profiles read (agent/profiles/ups.yaml, host.yaml), on
top of the system group and a small ifTable made like the switches' (hatang/sim/device.py). Values are
functions of the seconds since the device started: gauges move plausibly (waves plus noise that is the
same for every read within 10 s), counters grow, disks fill; a UPS may lose mains now and then.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence

from hatang.sim.ber import COUNTER32, OID, TIMETICKS, Value, counter64, gauge32, integer, octets, oid
from hatang.sim.device import Clock, Flap, Provider, SimulatedDevice, _build, _mac, _Port

UPS_MIB: OID = (1, 3, 6, 1, 2, 1, 33, 1)
HR: OID = (1, 3, 6, 1, 2, 1, 25)
UCD: OID = (1, 3, 6, 1, 4, 1, 2021)
_CPU_MODEL = "GenuineIntel: Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz"  # net-snmp's hrDeviceDescr of a CPU
_HR_STORAGE_TYPES = {"other": 1, "ram": 2, "virtualMemory": 3, "fixedDisk": 4}


def _wobble(key: float, t: float, step: float = 10.0) -> float:
    """Deterministic noise in [-1, 1], constant for ``step`` seconds (the same at every poll within)."""
    x = math.sin((t // step) * 12.9898 + key * 78.233) * 43758.5453
    return 2 * (x - math.floor(x)) - 1


def _wave(t: float, period: float, phase: float) -> float:
    return math.sin(2 * math.pi * t / period + phase)


Curve = Callable[[float], float]  # a quantity as a function of the seconds since the device started


def _as(make: Callable[[int], Value], fn: Curve) -> Callable[[float], Value]:
    """A provider: the curve's value at t, rounded, as an SNMP value of the given type."""
    return lambda t: make(round(fn(t)))


def _const(x: float) -> Curve:
    return lambda t: x


def _counter32(n: int) -> Value:
    return Value(COUNTER32, n % 2**32)


def make_ups(name: str, *, seed: int = 0, clock: Clock = time.time, start: float | None = None,
             lines: int = 1, capacity_va: int = 3000, battery_minutes: float = 30.0,
             outage: Flap | None = None,
             location: str = "Phòng máy chủ, UBND xã Đại Đình",
             contact: str = "Tổ CNTT <cntt@example.gov.vn>") -> SimulatedDevice:
    """A UPS network card speaking RFC 1628 UPS-MIB (what the ``ups`` profile reads), ``lines`` phases.

    ``outage``: mains fails for ``outage.down`` seconds every ``outage.period`` (None: never); the UPS
    then runs on battery (output source battery(5), one alarm), the charge falls and recovers afterwards
    at a quarter of that rate. ``battery_minutes`` is the runtime of a full battery at half load.
    """
    rng = random.Random(f"ups:{seed}:{name}")
    base_load, ph, key = rng.uniform(0.25, 0.55), rng.uniform(0, 2 * math.pi), rng.uniform(0, 100)
    full_runtime = battery_minutes * 60 * 0.5 / base_load  # seconds at the mean load
    drain = 100 / full_runtime  # percent per second on battery

    def load(t: float) -> float:
        return base_load * (1 + 0.1 * _wave(t, 900, ph)) + 0.02 * _wobble(key, t)

    def on_battery(t: float) -> bool:
        return outage is not None and not outage.is_up(t)

    def seconds_on_battery(t: float) -> float:
        change = outage.last_change(t) if outage is not None else None
        return t - change if on_battery(t) and change is not None else 0.0

    def charge(t: float) -> float:
        if on_battery(t):
            return max(0.0, 100 - drain * seconds_on_battery(t))
        change = outage.last_change(t) if outage is not None else None
        if outage is None or change is None:
            return 100.0
        return min(100.0, 100 - drain * outage.down + drain / 4 * (t - change))

    def value(fn: Curve) -> Callable[[float], Value]:
        return _as(integer, fn)

    volts = 24 * lines  # nominal battery voltage, V DC
    u1 = (*UPS_MIB, 1)
    table: dict[OID, Provider] = {
        (*u1, 1, 0): octets("HATANG-SIM"), (*u1, 2, 0): octets(f"SIM-{capacity_va // 1000}K"),
        (*u1, 3, 0): octets("UPS 3.2.1"), (*u1, 4, 0): octets("NMC 7.4"), (*u1, 5, 0): octets(name),
        (*UPS_MIB, 2, 1, 0): value(lambda t: 3 if charge(t) < 25 else 2),
        (*UPS_MIB, 2, 2, 0): value(seconds_on_battery),
        (*UPS_MIB, 2, 3, 0): value(lambda t: charge(t) / 100 * full_runtime * base_load / load(t) / 60),
        (*UPS_MIB, 2, 4, 0): value(charge),
        (*UPS_MIB, 2, 5, 0): value(lambda t: 10 * volts * (
            (0.9 + 0.1 * charge(t) / 100 - 0.03 * load(t)) if on_battery(t) else 1.125)),
        (*UPS_MIB, 2, 7, 0): value(lambda t: 27 + 2 * _wave(t, 3600, ph) + 0.4 * _wobble(key + 1, t, 60)),
        (*UPS_MIB, 3, 2, 0): integer(lines), (*UPS_MIB, 4, 3, 0): integer(lines),
        (*UPS_MIB, 4, 1, 0): value(lambda t: 5 if on_battery(t) else 3),
        (*UPS_MIB, 4, 2, 0): value(lambda t: 500 + 2 * _wobble(key + 2, t)),
        (*UPS_MIB, 6, 1, 0): value(lambda t: (1 + (charge(t) < 25)) if on_battery(t) else 0),
    }
    for i in range(1, lines + 1):
        table.update(_ups_line(i, key, lines, capacity_va, load, on_battery))
    card = _Port(1, "eth0", "UPS network management card", "", speed=100_000_000, mac=_mac(rng, 1),
                 in_bps=2e3, out_bps=4e3, pkt_size=200.0, last_change=rng.uniform(20, 200))
    return _build(name, f"HATANG-SIM UPS {capacity_va} VA, {lines} phase(s) (simulated)", [card],
                  boot_age=rng.uniform(30, 300) * 86400, day=86400.0, clock=clock, start=start,
                  location=location, contact=contact, extra=table)


def _ups_line(i: int, key: float, lines: int, capacity_va: int, load: Curve,
              on_battery: Callable[[float], bool]) -> dict[OID, Provider]:
    """upsInputTable and upsOutputTable rows of line ``i``."""

    def mains(scale: float, spread: float) -> Curve:
        return lambda t: 0.0 if on_battery(t) else scale + spread * _wobble(key + 10 * i, t)

    def power(t: float) -> float:
        return capacity_va * 0.9 * load(t) * (1 + 0.05 * _wobble(key + 20 * i, t)) / lines

    return {
        (*UPS_MIB, 3, 3, 1, 1, i): integer(i), (*UPS_MIB, 3, 3, 1, 2, i): _as(integer, mains(500, 2)),
        (*UPS_MIB, 3, 3, 1, 3, i): _as(integer, mains(226, 4)),
        (*UPS_MIB, 4, 4, 1, 1, i): integer(i), (*UPS_MIB, 4, 4, 1, 2, i): integer(230),
        (*UPS_MIB, 4, 4, 1, 3, i): _as(integer, lambda t: power(t) / 230 * 10),
        (*UPS_MIB, 4, 4, 1, 4, i): _as(integer, power),
        (*UPS_MIB, 4, 4, 1, 5, i): _as(integer, lambda t: power(t) * lines / (capacity_va * 0.9) * 100),
    }


def _disk_used(units: int, share: float, growth: float, since: float) -> Curve:
    """Allocation units in use: ``share`` of the disk ``since`` seconds before the start, growing."""
    return lambda t: min(units, units * share + growth * (since + t))


def make_server(name: str, *, seed: int = 0, clock: Clock = time.time, start: float | None = None,
                cpus: int = 8, memory_gib: int = 32,
                mounts: Sequence[tuple[str, int]] = (("/", 50), ("/var", 100), ("/data", 2000), ("/boot", 1)),
                location: str = "Phòng máy chủ, Trung tâm dữ liệu tỉnh",
                contact: str = "Tổ CNTT <cntt@example.gov.vn>") -> SimulatedDevice:
    """A Linux server with net-snmp: HOST-RESOURCES-MIB (processors, storage, processes) and UCD-SNMP-MIB
    (load averages, memory, raw CPU ticks), what the ``host`` profile reads; ``mounts`` are (path, GB).

    CPU load follows a 15-minute wave with noise; the tick counters integrate it; disks fill slowly.
    """
    rng = random.Random(f"server:{seed}:{name}")
    mean, ph, key = rng.uniform(0.15, 0.4), rng.uniform(0, 2 * math.pi), rng.uniform(0, 100)
    boot_age, period, amp = rng.uniform(3, 90) * 86400, 900.0, 0.5
    w = 2 * math.pi / period

    def busy(t: float) -> float:  # share of all CPUs busy, smooth
        return mean * (1 + amp * math.sin(w * t + ph))

    def busy_seconds(t: float) -> float:  # integral of busy over the uptime, per CPU
        s = boot_age + t
        return mean * (s + amp * (math.cos(ph - w * boot_age) - math.cos(w * t + ph)) / w)

    def busy_ticks(share: float) -> Curve:
        return lambda t: 100 * cpus * share * busy_seconds(t)

    def cpu_load(cpu: int) -> Curve:
        return lambda t: max(0, min(100, 100 * busy(t) * (1 + 0.3 * _wobble(key + cpu, t))))

    def load_avg(n: int, lag: float, damp: float, scale: float = 1.0) -> Curve:  # 1, 5, 15 min: smoother
        return lambda t: scale * max(0.0, cpus * 1.1 * (mean + damp * (busy(t - lag) - mean))
                                     + 0.05 * damp * _wobble(key + n, t))

    def text(fn: Curve) -> Callable[[float], Value]:
        return lambda t: octets(f"{fn(t):.2f}")

    uptime: Curve = lambda t: boot_age + t  # noqa: E731
    table: dict[OID, Provider] = {
        (*HR, 1, 1, 0): _as(lambda n: Value(TIMETICKS, n % 2**32), lambda t: uptime(t) * 100),
        (*HR, 1, 5, 0): _as(gauge32, lambda t: 2 + _wobble(key, t, 120)),
        (*HR, 1, 6, 0): _as(gauge32, lambda t: 280 + 60 * busy(t) + 8 * _wobble(key + 1, t)),
        (*HR, 1, 7, 0): integer(0),
        # ssCpuRaw*: user, nice, system, wait, interrupt, softirq share the busy time; idle the rest
        (*UCD, 11, 53, 0): _as(_counter32, lambda t: 100 * cpus * (uptime(t) * 0.998 - busy_seconds(t))),
        (*UCD, 11, 64, 0): _as(_counter32, lambda t: 100 * cpus * 0.002 * uptime(t)),  # steal
    }
    for column in (55, 65, 66):  # kernel, guest, guest_nice: 0 on Linux
        table[(*UCD, 11, column, 0)] = _counter32(0)
    for column, share in {50: 0.72, 51: 0.01, 52: 0.17, 54: 0.06, 56: 0.01, 61: 0.03}.items():
        table[(*UCD, 11, column, 0)] = _as(_counter32, busy_ticks(share))
    for cpu in range(cpus):
        index = 196608 + cpu  # net-snmp's hrDeviceIndex of processors
        table[(*HR, 3, 3, 1, 1, index)] = oid((0, 0))
        table[(*HR, 3, 3, 1, 2, index)] = _as(integer, cpu_load(cpu))
        table.update({  # hrDeviceTable row of the processor: type hrDeviceProcessor, descr, running(2)
            (*HR, 3, 2, 1, 1, index): integer(index), (*HR, 3, 2, 1, 2, index): oid((*HR, 3, 1, 3)),
            (*HR, 3, 2, 1, 3, index): octets(_CPU_MODEL), (*HR, 3, 2, 1, 4, index): oid((0, 0)),
            (*HR, 3, 2, 1, 5, index): integer(2), (*HR, 3, 2, 1, 6, index): _counter32(0)})
    for n, lag, damp in ((1, 30.0, 1.0), (2, 150.0, 0.6), (3, 450.0, 0.25)):
        table[(*UCD, 10, 1, 1, n)] = integer(n)
        table[(*UCD, 10, 1, 2, n)] = octets(f"Load-{(1, 5, 15)[n - 1]}")
        table[(*UCD, 10, 1, 3, n)] = text(load_avg(n, lag, damp))
        table[(*UCD, 10, 1, 5, n)] = _as(integer, load_avg(n, lag, damp, 100))
    total_kb, swap_kb = memory_gib * 1024 * 1024, 8 * 1024 * 1024
    used: Curve = lambda t: total_kb * (0.35 + 0.1 * busy(t))  # noqa: E731
    buffers: Curve = _const(total_kb * 0.02)
    cached: Curve = lambda t: total_kb * (0.3 + 0.02 * _wave(t, 3600, ph))  # noqa: E731
    swap_used: Curve = lambda t: 180_000 + (2 * t) % 50_000  # noqa: E731
    free: Curve = lambda t: total_kb - used(t) - buffers(t) - cached(t)  # noqa: E731
    kb: dict[int, Curve] = {  # UCD-SNMP-MIB memory column -> kB
        3: _const(swap_kb), 4: lambda t: swap_kb - swap_used(t), 5: _const(total_kb), 6: free, 14: buffers,
        15: cached, 27: lambda t: free(t) + buffers(t) + 0.8 * cached(t)}
    for column, fn in kb.items():
        table[(*UCD, 4, column, 0)] = _as(integer, fn)
    for column, x in {18: 3, 19: 4, 20: 5, 21: 6, 25: 14, 26: 15}.items():  # the 64-bit ...X objects
        table[(*UCD, 4, column, 0)] = _as(counter64, kb[x])
    storage: list[tuple[int, str, str, int, Curve, Curve]] = [
        (1, "ram", "Physical memory", 1024, kb[5], lambda t: total_kb - free(t)),
        (3, "virtualMemory", "Virtual memory", 1024, _const(total_kb + swap_kb),
         lambda t: total_kb - free(t) + swap_used(t)),
        (6, "other", "Memory buffers", 1024, kb[5], buffers),
        (7, "other", "Cached memory", 1024, kb[5], cached),
    ]
    for i, (mount, gb) in enumerate(mounts):
        units = gb * 10**9 // 4096
        used0, growth = rng.uniform(0.2, 0.7), units * rng.uniform(0.002, 0.02) / 86400  # 0.2-2 % a day
        storage.append((31 + i, "fixedDisk", mount, 4096, _const(units), _disk_used(units, used0, growth,
                                                                                  boot_age % 86400)))
    for index, kind, descr, unit, size, in_use in storage:
        table.update({
            (*HR, 2, 3, 1, 1, index): integer(index),
            (*HR, 2, 3, 1, 2, index): oid((*HR, 2, 1, _HR_STORAGE_TYPES[kind])),
            (*HR, 2, 3, 1, 3, index): octets(descr), (*HR, 2, 3, 1, 4, index): integer(unit),
            (*HR, 2, 3, 1, 5, index): _as(integer, size), (*HR, 2, 3, 1, 6, index): _as(integer, in_use),
        })
    ports = [
        _Port(1, "lo", "lo", "", if_type=24, speed=10_000_000, mtu=65536, in_bps=5e5, out_bps=5e5, phase=ph,
              pkt_size=400.0, mcast=0.0, bcast=0.0),
        _Port(2, "ens192", "VMware VMXNET3 Ethernet Controller", "LAN - Mạng máy chủ", speed=10_000_000_000,
              mac=_mac(rng, 2), in_bps=rng.uniform(20e6, 200e6), out_bps=rng.uniform(50e6, 400e6),
              amplitude=0.6, phase=ph, pkt_size=900.0, last_change=rng.uniform(20, 200)),
    ]
    return _build(name, "Linux " + name + " 5.14.0-427.el9.x86_64 #1 SMP x86_64 (HATANG-SIM)", ports,
                  boot_age=boot_age, day=86400.0, clock=clock, start=start, location=location,
                  contact=contact, extra=table)

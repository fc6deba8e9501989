"""A simulated SNMP device: a sorted OID table whose values are static or functions of elapsed time.

A provider is either a :class:`~hatang.sim.ber.Value` or a callable taking the seconds elapsed since the
device started (``clock() - start``, never negative) and returning a Value, so counters can grow with time
and tests can drive everything with a fake clock. Lookups use a dict (``get``) and ``bisect`` over the
sorted OID list (``get_next``). :func:`make_switch` and :func:`make_router` build realistic devices
(system group, IF-MIB ifTable and ifXTable) whose counters grow at seeded, per-port rates; the UPS and the
server (hatang/sim/appliances.py) are built on the same pieces.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from hatang.sim.ber import COUNTER32, COUNTER64, OID, TIMETICKS, Value, gauge32, integer, octets, oid

Provider = Value | Callable[[float], Value]
Clock = Callable[[], float]


class SimulatedDevice:
    """An immutable OID table served at a point in (possibly fake) time."""

    def __init__(self, name: str, table: Mapping[OID, Provider], *, clock: Clock = time.time,
                 start: float | None = None) -> None:
        self.name = name
        self.clock = clock
        self.start = clock() if start is None else start
        self._oids: list[OID] = sorted(table)
        self._providers: list[Provider] = [table[o] for o in self._oids]
        self._by_oid: dict[OID, Provider] = dict(table)

    def __len__(self) -> int:
        return len(self._oids)

    def __repr__(self) -> str:
        return f"SimulatedDevice({self.name!r}, {len(self)} OIDs)"

    def with_rows(self, rows: Mapping[OID, Provider]) -> SimulatedDevice:
        """The same device (name, clock, start) answering ``rows`` too (replacing objects it had)."""
        return SimulatedDevice(self.name, {**self._by_oid, **rows}, clock=self.clock, start=self.start)

    @property
    def oids(self) -> Sequence[OID]:
        """The sorted OIDs (do not modify)."""
        return self._oids

    def now(self) -> float:
        """Seconds elapsed since the device started (clamped at 0)."""
        return max(0.0, self.clock() - self.start)

    @staticmethod
    def _eval(p: Provider, t: float) -> Value:
        return p if isinstance(p, Value) else p(t)

    def get(self, oid: OID, t: float | None = None) -> Value | None:
        p = self._by_oid.get(oid)
        if p is None:
            return None
        return self._eval(p, self.now() if t is None else t)

    def index_after(self, oid: OID) -> int:
        """Position of the first OID strictly greater than ``oid`` (may be ``len(self)``)."""
        return bisect_right(self._oids, oid)

    def entry(self, index: int, t: float) -> tuple[OID, Value] | None:
        """The (OID, value) at ``index`` of the sorted table, or None past the end."""
        if index >= len(self._oids):
            return None
        return self._oids[index], self._eval(self._providers[index], t)

    def get_next(self, oid: OID, t: float | None = None) -> tuple[OID, Value] | None:
        return self.entry(self.index_after(oid), self.now() if t is None else t)

    def has_prefix(self, prefix: OID) -> bool:
        """True if some OID in the table starts with ``prefix``."""
        i = bisect_left(self._oids, prefix)
        return i < len(self._oids) and self._oids[i][: len(prefix)] == prefix

    def walk(self, prefix: OID = (), t: float | None = None) -> Iterator[tuple[OID, Value]]:
        """All (OID, value) pairs under ``prefix`` in order, evaluated at one instant."""
        when = self.now() if t is None else t
        n = len(prefix)
        for i in range(bisect_left(self._oids, prefix), len(self._oids)):
            o = self._oids[i]
            if o[:n] != prefix:
                break
            yield o, self._eval(self._providers[i], when)


# ---------------------------------------------------------------- realistic devices

SYSTEM: OID = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER: OID = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
UP, DOWN = 1, 2
_SIM_OBJECT_ID = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)
# Counter columns: column -> counter quantity name (see _Port.quantities).
_IF_COUNTERS32 = {10: "in_octets", 11: "in_ucast", 13: "in_discards", 14: "in_errors",
                  16: "out_octets", 17: "out_ucast", 19: "out_discards", 20: "out_errors"}
_IFX_COUNTERS32 = {2: "in_mcast", 3: "in_bcast", 4: "out_mcast", 5: "out_bcast"}
_IFX_COUNTERS64 = {6: "in_octets", 7: "in_ucast", 8: "in_mcast", 9: "in_bcast",
                   10: "out_octets", 11: "out_ucast", 12: "out_mcast", 13: "out_bcast"}
_ACCESS_ALIASES = ("Bộ phận một cửa", "Phòng Văn hoá - Xã hội", "Phòng Tư pháp - Hộ tịch", "Camera an ninh")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a switch says it is: sysObjectID, sysDescr and how it names its ports (``{n}``: the port
    number). The default is the simulator's own generic switch; hatang/sim/vendors.py has real models'."""

    object_id: OID = _SIM_OBJECT_ID
    descr: str = "HATANG-SIM {ports}-port Gigabit L2 switch, firmware 2.1.4 (simulated)"
    port_name: str = "Gi0/{n}"  # IF-MIB ifName
    port_descr: str = "GigabitEthernet0/{n}"  # IF-MIB ifDescr


GENERIC_SWITCH = Identity()


@dataclass(frozen=True, slots=True)
class Flap:
    """Up for ``period - down`` seconds, then down for ``down`` seconds, from the simulator start."""

    period: float = 60.0
    down: float = 20.0

    def is_up(self, t: float) -> bool:
        return t % self.period < self.period - self.down

    def up_time(self, t: float) -> float:
        """Seconds spent up within [0, t]."""
        k, r = divmod(t, self.period)
        return k * (self.period - self.down) + min(r, self.period - self.down)

    def last_change(self, t: float) -> float | None:
        """Time of the last transition at or before ``t`` (None: none since the start)."""
        k, r = divmod(t, self.period)
        if r < self.period - self.down:
            return None if k == 0 else k * self.period
        return k * self.period + self.period - self.down


@dataclass(frozen=True, slots=True)
class _Port:
    index: int
    name: str
    descr: str
    alias: str = ""
    if_type: int = 6  # ethernetCsmacd
    speed: int = 1_000_000_000  # bit/s
    mtu: int = 1500
    mac: bytes = b""
    admin_up: bool = True
    oper_up: bool = True
    in_bps: float = 0.0  # mean rates in bit/s; the rate varies by +-amplitude over a "day"
    out_bps: float = 0.0
    amplitude: float = 0.5
    phase: float = 0.0
    pkt_size: float = 600.0
    mcast: float = 0.02  # fractions of packets
    bcast: float = 0.01
    errors_per_s: float = 0.0
    discards_per_s: float = 0.0
    last_change: float = 0.0  # seconds after boot, for ports that do not flap
    flap: Flap | None = None

    def traffic_seconds(self, boot_age: float) -> Callable[[float], float]:
        """Seconds since boot during which the port passed traffic, as a function of t."""
        if not (self.admin_up and self.oper_up):
            return lambda t: 0.0
        flap = self.flap
        if flap is not None:
            return lambda t: boot_age + flap.up_time(t)
        return lambda t: boot_age + t

    def quantities(self, boot_age: float, day: float) -> dict[str, Callable[[float], float]]:
        up = self.traffic_seconds(boot_age)
        w, amp, ph = 2 * math.pi / day, self.amplitude, self.phase

        def octet_fn(bps: float) -> Callable[[float], float]:
            # Closed-form integral of bps/8 * (1 + amp * sin(w*s + ph)) over [0, s]: monotonic, smooth.
            return lambda t: bps / 8 * ((s := up(t)) + amp * (math.cos(ph) - math.cos(w * s + ph)) / w)

        def pkt_fn(octet: Callable[[float], float], frac: float) -> Callable[[float], float]:
            return lambda t: octet(t) / self.pkt_size * frac

        def rate_fn(per_s: float) -> Callable[[float], float]:
            return lambda t: up(t) * per_s

        q_in, q_out = octet_fn(self.in_bps), octet_fn(self.out_bps)
        ucast = 1.0 - self.mcast - self.bcast
        return {"in_octets": q_in, "out_octets": q_out,
                "in_ucast": pkt_fn(q_in, ucast), "out_ucast": pkt_fn(q_out, ucast),
                "in_mcast": pkt_fn(q_in, self.mcast), "out_mcast": pkt_fn(q_out, self.mcast),
                "in_bcast": pkt_fn(q_in, self.bcast), "out_bcast": pkt_fn(q_out, self.bcast),
                "in_errors": rate_fn(self.errors_per_s), "out_errors": rate_fn(self.errors_per_s / 4),
                "in_discards": rate_fn(self.discards_per_s), "out_discards": rate_fn(self.discards_per_s / 2)}


def _counter(fn: Callable[[float], float], tag: int, modulus: int) -> Callable[[float], Value]:
    return lambda t: Value(tag, int(fn(t)) % modulus)


def _ticks(seconds: Callable[[float], float]) -> Callable[[float], Value]:
    return lambda t: Value(TIMETICKS, int(seconds(t) * 100) % 2**32)


def _port_rows(p: _Port, boot_age: float, day: float) -> dict[OID, Provider]:
    i = p.index
    oper: Provider = integer(UP if p.admin_up and p.oper_up else DOWN)
    last_change: Provider = Value(TIMETICKS, int(p.last_change * 100) % 2**32)
    flap = p.flap
    if flap is not None and p.admin_up and p.oper_up:
        oper = lambda t: integer(UP if flap.is_up(t) else DOWN)  # noqa: E731
        last_change = _ticks(lambda t: p.last_change if (c := flap.last_change(t)) is None else boot_age + c)
    rows: dict[OID, Provider] = {
        (*IF_ENTRY, 1, i): integer(i), (*IF_ENTRY, 2, i): octets(p.descr),
        (*IF_ENTRY, 3, i): integer(p.if_type), (*IF_ENTRY, 4, i): integer(p.mtu),
        (*IF_ENTRY, 5, i): gauge32(min(p.speed, 2**32 - 1)),
        (*IF_ENTRY, 6, i): octets(p.mac), (*IF_ENTRY, 7, i): integer(UP if p.admin_up else DOWN),
        (*IF_ENTRY, 8, i): oper, (*IF_ENTRY, 9, i): last_change,
        (*IFX_ENTRY, 1, i): octets(p.name), (*IFX_ENTRY, 15, i): gauge32(p.speed // 1_000_000),
        (*IFX_ENTRY, 18, i): octets(p.alias),
    }
    q = p.quantities(boot_age, day)
    for col, name in _IF_COUNTERS32.items():
        rows[(*IF_ENTRY, col, i)] = _counter(q[name], COUNTER32, 2**32)
    for col, name in _IFX_COUNTERS32.items():
        rows[(*IFX_ENTRY, col, i)] = _counter(q[name], COUNTER32, 2**32)
    for col, name in _IFX_COUNTERS64.items():
        rows[(*IFX_ENTRY, col, i)] = _counter(q[name], COUNTER64, 2**64)
    return rows


def _build(name: str, descr: str, ports: Sequence[_Port], *, boot_age: float, day: float, clock: Clock,
           start: float | None, location: str, contact: str,
           extra: Mapping[OID, Provider] | None = None, object_id: OID = _SIM_OBJECT_ID) -> SimulatedDevice:
    table: dict[OID, Provider] = {
        **(extra or {}),
        (*SYSTEM, 1, 0): octets(descr), (*SYSTEM, 2, 0): oid(object_id),
        (*SYSTEM, 3, 0): _ticks(lambda t: boot_age + t), (*SYSTEM, 4, 0): octets(contact),
        (*SYSTEM, 5, 0): octets(name), (*SYSTEM, 6, 0): octets(location), (*SYSTEM, 7, 0): integer(6),
        IF_NUMBER: integer(len(ports)),
    }
    for p in ports:
        table.update(_port_rows(p, boot_age, day))
    return SimulatedDevice(name, table, clock=clock, start=start)


def _mac(rng: random.Random, index: int) -> bytes:
    return bytes((0x02, *rng.randbytes(3), (index >> 8) & 0xFF, index & 0xFF))


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def make_switch(name: str, ports: int = 24, *, seed: int = 0, clock: Clock = time.time,
                start: float | None = None, flap_port: int | None = 2, flap_period: float = 60.0,
                flap_down: float = 20.0, day: float = 86400.0,
                location: str = "Phòng máy chủ, UBND xã Đại Đình",
                contact: str = "Tổ CNTT <cntt@example.gov.vn>", identity: Identity = GENERIC_SWITCH,
                extra: Mapping[OID, Provider] | None = None) -> SimulatedDevice:
    """An access switch: ports 1..ports-1 are access ports, port ``ports`` is the uplink.

    Port ports-1 is admin-down, port ports-2 has no cable (oper-down), some other access ports are
    oper-down at random (seeded); ``flap_port`` (None: none) flaps with the given period and down time.
    ``identity`` gives its sysObjectID, sysDescr and port names; ``extra`` more objects it answers (a
    vendor's MIB tables, hatang/sim/vendors.py).
    """
    if ports < 2:
        raise ValueError("a switch needs at least 2 ports")
    if flap_port is not None and not 1 <= flap_port < ports:
        raise ValueError("flap_port must be an access port (1..ports-1)")
    rng = random.Random(f"switch:{seed}:{name}")
    flap = Flap(flap_period, flap_down)
    error_port = rng.randrange(1, ports)
    result: list[_Port] = []
    for i in range(1, ports + 1):
        mac, phase, changed = _mac(rng, i), rng.uniform(0, 2 * math.pi), rng.uniform(20, 200)
        port_name, port_descr = identity.port_name.format(n=i), identity.port_descr.format(n=i)
        if i == ports:
            uplink = "Uplink - Đường truyền số liệu chuyên dùng"
            result.append(_Port(i, port_name, port_descr, uplink, mac=mac, phase=phase,
                                last_change=changed, in_bps=rng.uniform(60e6, 120e6),
                                out_bps=rng.uniform(20e6, 60e6), amplitude=0.6,
                                pkt_size=rng.uniform(700, 1000), discards_per_s=0.2))
            continue
        admin_up = not (ports >= 4 and i == ports - 1 and i != flap_port)
        oper_up = admin_up and not (ports >= 5 and i == ports - 2 and i != flap_port)
        if i not in (1, flap_port) and rng.random() < 0.2:
            oper_up = False
        alias = _ACCESS_ALIASES[i - 1] if i <= len(_ACCESS_ALIASES) else ""
        result.append(_Port(i, port_name, port_descr, alias, mac=mac, phase=phase,
                            last_change=changed, speed=100_000_000 if rng.random() < 0.2 else 1_000_000_000,
                            admin_up=admin_up, oper_up=oper_up, in_bps=_log_uniform(rng, 4e3, 3e6),
                            out_bps=_log_uniform(rng, 4e3, 3e6), pkt_size=rng.uniform(200, 800),
                            errors_per_s=0.05 if i == error_port else 0.0,
                            flap=flap if i == flap_port else None))
    return _build(name, identity.descr.format(ports=ports), result, boot_age=rng.uniform(3, 60) * 86400,
                  day=day, clock=clock, start=start, location=location, contact=contact, extra=extra,
                  object_id=identity.object_id)


def make_router(name: str, *, seed: int = 0, clock: Clock = time.time, start: float | None = None,
                day: float = 86400.0, location: str = "Phòng máy chủ, UBND xã Đại Đình",
                contact: str = "Tổ CNTT <cntt@example.gov.vn>") -> SimulatedDevice:
    """A branch router: 10G fibre WAN to the government network, LAN, loopback and a VPN tunnel."""
    rng = random.Random(f"router:{seed}:{name}")

    def ph() -> float:
        return rng.uniform(0, 2 * math.pi)

    ports = [
        _Port(1, "xe-0/0/0", "TenGigabitEthernet0/0/0", "WAN - Mạng truyền số liệu chuyên dùng (cáp quang)",
              speed=10_000_000_000, mac=_mac(rng, 1), in_bps=rng.uniform(200e6, 600e6),
              out_bps=rng.uniform(80e6, 250e6), amplitude=0.7, phase=ph(), pkt_size=900.0,
              discards_per_s=0.5, last_change=rng.uniform(20, 200)),
        _Port(2, "ge-0/0/1", "GigabitEthernet0/0/1", "LAN - Mạng nội bộ UBND", mac=_mac(rng, 2),
              in_bps=rng.uniform(80e6, 250e6), out_bps=rng.uniform(200e6, 600e6), amplitude=0.7,
              phase=ph(), pkt_size=850.0, last_change=rng.uniform(20, 200)),
        _Port(3, "lo0", "Loopback0", "", if_type=24, speed=0, mtu=65535, in_bps=2e3, out_bps=2e3,
              phase=ph(), pkt_size=100.0, mcast=0.0, bcast=0.0),
        _Port(4, "gr-0/0/0", "Tunnel0", "VPN về Sở Thông tin và Truyền thông", if_type=131,
              speed=100_000_000, mtu=1476, in_bps=rng.uniform(5e6, 50e6), out_bps=rng.uniform(5e6, 50e6),
              phase=ph(), pkt_size=700.0, mcast=0.0, bcast=0.0, last_change=rng.uniform(60, 600)),
    ]
    return _build(name, "HATANG-SIM branch router, 10GE WAN, firmware 5.3.2 (simulated)", ports,
                  boot_age=rng.uniform(3, 60) * 86400, day=day, clock=clock, start=start,
                  location=location, contact=contact)

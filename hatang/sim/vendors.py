"""Simulated switches of real vendors: they say what they are (sysObjectID, sysDescr, port names) and answer
their vendor's health MIB as real gear does, so ``profiles: auto`` gives them the vendor profiles
(agent/profiles/huawei-vrp.yaml, h3c-comware.yaml, cisco-ios.yaml) and those read CPU, memory and
temperature per board, fans and power supplies from them.

A switch is two pieces of data: a :class:`Model` from :data:`MODELS` (identity, boards, fans, supplies,
which MIB) and a :class:`Condition` (how loaded and warm it runs, which fans or supplies have failed).
:func:`make_vendor_switch` builds it on :func:`~hatang.sim.device.make_switch`. Readings move like the
appliances' gauges (hatang/sim/appliances.py): a slow wave plus noise that holds for 10 s, so every poll
within those seconds reads the same; a failed part stays failed. sysObjectIDs are the vendors' product
OIDs (Huawei S5720-36C-EI and S12704 and Cisco Catalyst 3560G as in the snmpsim-data recordings,
H3C's from HH3C-PRODUCT-ID-MIB); the other values are invented within the MIBs' types.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hatang.sim.appliances import _wave, _wobble
from hatang.sim.ber import OID, Value, gauge32, integer, octets
from hatang.sim.device import Clock, Identity, Provider, SimulatedDevice, make_switch

ENT_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)  # ENTITY-MIB::entPhysicalEntry
BRIDGE_ADDRESS: OID = (1, 3, 6, 1, 2, 1, 17, 1, 1, 0)  # BRIDGE-MIB::dot1dBaseBridgeAddress.0: chassis MAC
HW_ENTITY_STATE: OID = (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 1, 1)  # HUAWEI-ENTITY-EXTENT-MIB
HW_FAN_STATUS: OID = (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 10, 1)
HW_PWR_STATUS: OID = (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 18, 1)
HH3C_ENTITY_EXT: OID = (1, 3, 6, 1, 4, 1, 25506, 2, 6, 1, 1, 1, 1)  # HH3C-ENTITY-EXT-MIB
CISCO_CPU: OID = (1, 3, 6, 1, 4, 1, 9, 9, 109, 1, 1, 1, 1)  # CISCO-PROCESS-MIB::cpmCPUTotalEntry
CISCO_MEMORY_POOL: OID = (1, 3, 6, 1, 4, 1, 9, 9, 48, 1, 1, 1)  # CISCO-MEMORY-POOL-MIB
CISCO_ENVMON: OID = (1, 3, 6, 1, 4, 1, 9, 9, 13, 1)  # CISCO-ENVMON-MIB::ciscoEnvMonObjects
CHASSIS, POWER_SUPPLY, FAN, MODULE = 3, 6, 7, 9  # ENTITY-MIB PhysicalClass
Mib = Literal["huawei-vrp", "h3c-comware", "cisco-ios"]
Curve = Callable[[float], float]


@dataclass(frozen=True)
class Board:
    """A part with a CPU and memory (a switch's main board, a chassis's MPU or line card)."""

    name: str  # entPhysicalName
    memory_bytes: int
    load: float = 1.0  # share of the switch's CPU load this board carries


@dataclass(frozen=True)
class Model:
    """A vendor's switch model as the simulator plays it."""

    mib: Mib  # whose health tables it answers
    identity: Identity
    chassis: str  # entPhysicalName of the chassis
    boards: tuple[Board, ...]
    oui: bytes  # the vendor's first three bytes of the chassis MAC
    fans: int = 2
    supplies: int = 2


@dataclass(frozen=True)
class Condition:
    """How a simulated switch is doing: mean CPU load and its swing (0..1), memory in use (0..1), board
    temperature (°C), and the fans and supplies (numbered from 1) that have failed."""

    cpu: float = 0.15
    cpu_swing: float = 0.08
    memory: float = 0.45
    temperature: float = 41.0
    failed_fans: tuple[int, ...] = ()
    failed_supplies: tuple[int, ...] = ()


HEALTHY = Condition()
_HUAWEI_DESCR = ("{model}\r\nHuawei Versatile Routing Platform Software\r\n"
                 "VRP (R) software, Version {version}\r\nCopyright (C) 2000-2019 HUAWEI TECH CO., LTD")
MODELS: dict[str, Model] = {
    "huawei-s5720": Model(
        "huawei-vrp", Identity((1, 3, 6, 1, 4, 1, 2011, 2, 23, 276),
                               _HUAWEI_DESCR.format(model="S5720-36C-EI-AC",
                                                    version="5.170 (S5720 V200R011C10SPC500)"),
                               "GigabitEthernet0/0/{n}", "GigabitEthernet0/0/{n}"),
        "HUAWEI S5720 Routing Switch", (Board("MPU Board 0", 1024 * 2**20),), bytes.fromhex("00e0fc")),
    "huawei-s12704": Model(
        "huawei-vrp", Identity((1, 3, 6, 1, 4, 1, 2011, 2, 279, 3),
                               _HUAWEI_DESCR.format(model="S12704",
                                                    version="5.170 (S12700 V200R013C00SPC500)"),
                               "GigabitEthernet1/0/{n}", "GigabitEthernet1/0/{n}"),
        "HUAWEI S12704 chassis",
        (Board("MPU Board 5", 4096 * 2**20), Board("LPU Board 1", 390 * 2**20, 0.6),
         Board("SFU Board 7", 390 * 2**20, 0.3)),
        bytes.fromhex("00e0fc"), fans=4, supplies=4),
    "h3c-s5500": Model(
        "h3c-comware", Identity((1, 3, 6, 1, 4, 1, 25506, 1, 1),
                                "H3C Comware Platform Software, Software Version 5.20, Release 2220P02\r\n"
                                "H3C S5500-28C-EI\r\nCopyright (c) 2004-2012 Hangzhou H3C Tech. Co., Ltd.",
                                "GigabitEthernet1/0/{n}", "GigabitEthernet1/0/{n}"),
        "H3C S5500-28C-EI", (Board("Slot 1", 256 * 2**20),), bytes.fromhex("000fe2")),
    "h3c-s3100": Model(  # fanless, one internal supply
        "h3c-comware", Identity((1, 3, 6, 1, 4, 1, 25506, 1, 24),
                                "H3C Comware Platform Software, Software Version 3.10, Release 2211P02\r\n"
                                "H3C S3100-8T-SI\r\nCopyright (c) 2004-2010 Hangzhou H3C Tech. Co., Ltd.",
                                "Ethernet1/0/{n}", "Ethernet1/0/{n}"),
        "H3C S3100-8T-SI", (Board("Slot 1", 64 * 2**20),), bytes.fromhex("000fe2"), fans=0, supplies=1),
    "cisco-c3560": Model(
        "cisco-ios", Identity((1, 3, 6, 1, 4, 1, 9, 1, 617),
                              "Cisco IOS Software, C3560 Software (C3560-IPSERVICESK9-M), "
                              "Version 12.2(55)SE3, RELEASE SOFTWARE (fc1)\r\n"
                              "Technical Support: http://www.cisco.com/techsupport\r\n"
                              "Copyright (c) 1986-2011 by Cisco Systems, Inc.",
                              "Gi0/{n}", "GigabitEthernet0/{n}"),
        "Switch 1", (Board("Processor", 96 * 2**20),), bytes.fromhex("00000c"), fans=1, supplies=1),
}


@dataclass(frozen=True)
class _Readings:
    """The condition as curves of the seconds since the device started."""

    cpu: Curve  # percent
    memory: Curve  # percent
    temperature: Curve  # °C
    fan_speed: Curve  # percent

    @classmethod
    def of(cls, condition: Condition, rng: random.Random) -> _Readings:
        ph, key = rng.uniform(0, 2 * math.pi), rng.uniform(0, 100)
        c = condition

        def cpu(t: float) -> float:
            return 100 * max(0.01, min(0.99, c.cpu + c.cpu_swing * _wave(t, 600, ph)
                                       + 0.01 * _wobble(key, t)))

        def memory(t: float) -> float:  # creeps with the hour, barely moves
            return 100 * min(0.99, c.memory + 0.006 * _wave(t, 3600, ph) + 0.003 * _wobble(key + 1, t))

        def temperature(t: float) -> float:  # the room's day, a little of the load, sensor noise
            return (c.temperature + 1.5 * _wave(t, 3600, ph + 1) + 0.04 * (cpu(t) - 100 * c.cpu)
                    + 0.4 * _wobble(key + 2, t, 30))

        def fan_speed(t: float) -> float:
            return 45 + 0.8 * (temperature(t) - 35)

        return cls(cpu, memory, temperature, fan_speed)


def _int(fn: Curve, make: Callable[[int], Value] = integer) -> Callable[[float], Value]:
    return lambda t: make(round(fn(t)))


def _scaled(fn: Curve, share: float) -> Curve:
    return lambda t: fn(t) * share


def _offset(fn: Curve, delta: float) -> Curve:
    return lambda t: fn(t) + delta


def _free(size: int, used: Curve) -> Curve:
    return lambda t: size - round(used(t))  # the pool's size is exactly used + free


def _entity(index: int, cls: int, name: str) -> dict[OID, Provider]:
    return {(*ENT_PHYSICAL, 2, index): octets(name), (*ENT_PHYSICAL, 5, index): integer(cls),
            (*ENT_PHYSICAL, 7, index): octets(name)}


def _huawei(model: Model, c: Condition, r: _Readings) -> dict[OID, Provider]:
    """HUAWEI-ENTITY-EXTENT-MIB: hwEntityStateTable rows of the chassis and boards (by entPhysicalIndex),
    hwFanStatusTable and hwPwrStatusTable (by slot.number)."""
    rows = _entity(67108867, CHASSIS, model.chassis)
    s = HW_ENTITY_STATE
    rows.update({(*s, 5, 67108867): integer(0), (*s, 7, 67108867): integer(0), (*s, 9, 67108867): integer(0),
                 (*s, 11, 67108867): integer(0), (*s, 19, 67108867): integer(0)})
    for k, board in enumerate(model.boards):
        i = 67108873 + 262144 * k  # Huawei numbers entities by slot
        big = board.memory_bytes > 2**31 - 1  # hwEntityMemSize is an Integer32: -1, read hwEntityMemSizeMega
        rows.update(_entity(i, MODULE, board.name))
        rows.update({(*s, 5, i): _int(_scaled(r.cpu, board.load)),
                     (*s, 7, i): _int(r.memory if k == 0 else _scaled(r.memory, 0.5)),
                     (*s, 9, i): integer(-1 if big else board.memory_bytes),
                     (*s, 11, i): _int(_offset(r.temperature, -2.0 * k)),  # boards further from the heat
                     (*s, 19, i): integer(board.memory_bytes // 2**20)})
    for n in range(1, model.fans + 1):
        failed = n in c.failed_fans
        rows.update({(*HW_FAN_STATUS, 1, 0, n): integer(0), (*HW_FAN_STATUS, 2, 0, n): integer(n),
                     (*HW_FAN_STATUS, 5, 0, n): integer(0) if failed else _int(r.fan_speed),
                     (*HW_FAN_STATUS, 6, 0, n): integer(1),  # present
                     (*HW_FAN_STATUS, 7, 0, n): integer(2 if failed else 1),  # abnormal(2), normal(1)
                     (*HW_FAN_STATUS, 8, 0, n): octets(f"FAN{n}")})
    for n in range(1, model.supplies + 1):
        rows.update({(*HW_PWR_STATUS, 1, 0, n): integer(0), (*HW_PWR_STATUS, 2, 0, n): integer(n),
                     (*HW_PWR_STATUS, 5, 0, n): integer(1),  # present
                     # hwEntityPwrState notSupply(2), supply(1)
                     (*HW_PWR_STATUS, 6, 0, n): integer(2 if n in c.failed_supplies else 1),
                     (*HW_PWR_STATUS, 9, 0, n): octets(f"PWR{n}")})
    return rows


def _h3c(model: Model, c: Condition, r: _Readings) -> dict[OID, Provider]:
    """HH3C-ENTITY-EXT-MIB hh3cEntityExtStateTable, by entPhysicalIndex: boards with CPU, memory and
    temperature; fans and supplies (ENTITY-MIB class fan / powerSupply) with their error status."""
    e = HH3C_ENTITY_EXT
    parts: list[tuple[int, int, str, int]] = [(1, CHASSIS, model.chassis, 2)]  # index, class, name, status
    parts += [(100 + n, FAN, f"Fan {n}", 41 if n in c.failed_fans else 2) for n in range(1, model.fans + 1)]
    parts += [(110 + n, POWER_SUPPLY, f"PSU {n}", 51 if n in c.failed_supplies else 2)
              for n in range(1, model.supplies + 1)]  # normal(2), fanError(41), psuError(51)
    rows: dict[OID, Provider] = {}
    for i, cls, name, status in parts:
        rows.update(_entity(i, cls, name))
        rows.update({(*e, 6, i): integer(0), (*e, 8, i): integer(0), (*e, 10, i): gauge32(0),
                     (*e, 12, i): integer(0), (*e, 19, i): integer(status)})
    for k, board in enumerate(model.boards):
        i = 2 + k
        rows.update(_entity(i, MODULE, board.name))
        rows.update({(*e, 6, i): _int(_scaled(r.cpu, board.load)), (*e, 8, i): _int(r.memory),
                     (*e, 10, i): gauge32(board.memory_bytes), (*e, 12, i): _int(r.temperature),
                     (*e, 19, i): integer(2)})
    return rows


def _cisco(model: Model, c: Condition, r: _Readings) -> dict[OID, Provider]:
    """CISCO-PROCESS-MIB cpmCPUTotalTable (one CPU, entity 1001), CISCO-MEMORY-POOL-MIB (Processor and
    I/O pools), CISCO-ENVMON-MIB temperature, fan and supply status."""
    rows = _entity(1001, CHASSIS, model.chassis)
    cpu = CISCO_CPU
    rows[(*cpu, 2, 1)] = integer(1001)  # cpmCPUTotalPhysicalIndex
    for column in (3, 4, 5, 6, 7, 8):  # 5 s, 1 min, 5 min; the ...Rev columns the same
        rows[(*cpu, column, 1)] = _int(r.cpu, gauge32)
    total = model.boards[0].memory_bytes
    for index, name, size, share in ((1, "Processor", total, r.memory), (2, "I/O", total // 8,
                                                                         lambda t: 38.0)):
        used: Curve = _scaled(share, size / 100)
        pool = CISCO_MEMORY_POOL
        rows.update({(*pool, 2, index): octets(name), (*pool, 3, index): integer(0),
                     (*pool, 4, index): integer(1), (*pool, 5, index): _int(used, gauge32),
                     (*pool, 6, index): _int(_free(size, used), gauge32),
                     (*pool, 7, index): _int(_scaled(_free(size, used), 0.6), gauge32)})  # largest free
    env = CISCO_ENVMON
    rows.update({(*env, 3, 1, 2, 1008): octets("SW#1, Sensor#1"),
                 (*env, 3, 1, 3, 1008): _int(r.temperature, gauge32),
                 (*env, 3, 1, 4, 1008): integer(68),  # threshold
                 (*env, 3, 1, 5, 1008): integer(0),
                 (*env, 3, 1, 6, 1008): _int(lambda t: 2 if r.temperature(t) > 68 else 1),  # warning, normal
                 (*env, 3, 1, 7, 1008): _int(r.temperature)})
    for n in range(1, model.fans + 1):
        rows.update({(*env, 4, 1, 2, 1003 + n): octets(f"Switch#1, Fan#{n}"),
                     (*env, 4, 1, 3, 1003 + n): integer(3 if n in c.failed_fans else 1)})  # critical, normal
    for n in range(1, model.supplies + 1):
        failed = n in c.failed_supplies
        rows.update({(*env, 5, 1, 2, 1002 + n): octets(f"Sw1, PS{n} {'Faulty' if failed else 'Normal'}, "
                                                       "RPS NotExist"),
                     (*env, 5, 1, 3, 1002 + n): integer(3 if failed else 1),
                     (*env, 5, 1, 4, 1002 + n): integer(2)})  # ciscoEnvMonSupplySource ac(2)
    return rows


_TABLES = {"huawei-vrp": _huawei, "h3c-comware": _h3c, "cisco-ios": _cisco}


def vendor_rows(name: str, model: Model, condition: Condition = HEALTHY, *, seed: int = 0
                ) -> dict[OID, Provider]:
    """The objects a switch of ``model`` answers beyond IF-MIB: its chassis MAC (dot1dBaseBridgeAddress,
    which LLDP announces) and its vendor's health tables in ``condition``."""
    rng = random.Random(f"vendor:{seed}:{name}")
    mac = model.oui + rng.randbytes(3)
    return {BRIDGE_ADDRESS: octets(mac), **_TABLES[model.mib](model, condition, _Readings.of(condition, rng))}


def make_vendor_switch(name: str, model: str, condition: Condition = HEALTHY, *, seed: int = 0,
                       clock: Clock = time.time, start: float | None = None, **options: Any
                       ) -> SimulatedDevice:
    """:func:`~hatang.sim.device.make_switch` as a ``model`` of :data:`MODELS` in ``condition`` (the other
    keyword arguments are make_switch's)."""
    spec = MODELS[model]
    return make_switch(name, seed=seed, clock=clock, start=start, identity=spec.identity,
                       extra=vendor_rows(name, spec, condition, seed=seed), **options)

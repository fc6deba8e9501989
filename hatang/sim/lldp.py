"""LLDP between simulated devices: each end of a cable answers LLDP-MIB (IEEE 802.1AB) as real gear does,
naming itself (lldpLocChassisId, lldpLocSysName, lldpLocPortTable) and the device at the other end
(lldpRemTable: its chassis id, port and system name), which the ``neighbors`` profile reads and the
collector joins into links (collector/topology.py).

Cables are data (:class:`Cable`: two device names and port numbers); what each end announces is read from
the devices themselves: the chassis id is the device's dot1dBaseBridgeAddress (hatang/sim/vendors.py)
or, without one, a MAC made from its name; the port id its IF-MIB ifName (subtype interfaceName), the
port description its ifDescr; the system name and description its sysName and sysDescr.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hatang.sim.ber import OID, Value, integer, octets
from hatang.sim.device import IF_ENTRY, IFX_ENTRY, SYSTEM, Provider, SimulatedDevice
from hatang.sim.vendors import BRIDGE_ADDRESS

LLDP_LOCAL: OID = (1, 0, 8802, 1, 1, 2, 1, 3)  # LLDP-MIB::lldpLocalSystemData
LLDP_REMOTE: OID = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)  # LLDP-MIB::lldpRemEntry
MAC_ADDRESS, INTERFACE_NAME = 4, 5  # LldpChassisIdSubtype macAddress(4), LldpPortIdSubtype interfaceName(5)
_CAPABILITIES = b"\x28\x00"  # LldpSystemCapabilitiesMap: bridge(2), router(4)


@dataclass(frozen=True)
class Cable:
    """Port ``a_port`` (ifIndex) of device ``a`` is cabled to port ``b_port`` of device ``b``."""

    a: str
    a_port: int
    b: str
    b_port: int


def _bytes(device: SimulatedDevice, oid: OID) -> bytes | None:
    value = device.get(oid, 0.0)
    return value.value if value is not None and isinstance(value.value, bytes) else None


def chassis_id(device: SimulatedDevice) -> bytes:
    """The MAC the device announces as its chassis id."""
    mac = _bytes(device, BRIDGE_ADDRESS)
    return mac if mac else b"\x02" + hashlib.sha256(device.name.encode()).digest()[:5]


def port_id(device: SimulatedDevice, port: int) -> bytes:
    """The device's name of a port: ifName, else ifDescr."""
    return _bytes(device, (*IFX_ENTRY, 1, port)) or _bytes(device, (*IF_ENTRY, 2, port)) or str(port).encode()


def _announced(device: SimulatedDevice, port: int) -> dict[str, Value]:
    """What the device announces on one port, as the columns of a neighbour's lldpRemTable row."""
    return {"chassis": octets(chassis_id(device)), "port": octets(port_id(device, port)),
            "port_desc": octets(_bytes(device, (*IF_ENTRY, 2, port)) or b""),
            "sys_name": octets(_bytes(device, (*SYSTEM, 5, 0)) or device.name.encode()),
            "sys_desc": octets(_bytes(device, (*SYSTEM, 1, 0)) or b"")}


def lldp_rows(device: SimulatedDevice, neighbours: Iterable[tuple[int, SimulatedDevice, int]]
              ) -> dict[OID, Provider]:
    """LLDP-MIB of ``device``: its local data (every port of its ifTable in lldpLocPortTable) and one
    lldpRemTable row per (local port, neighbour device, neighbour's port)."""
    loc = LLDP_LOCAL
    rows: dict[OID, Provider] = {
        (*loc, 1, 0): integer(MAC_ADDRESS), (*loc, 2, 0): octets(chassis_id(device)),
        (*loc, 3, 0): octets(_bytes(device, (*SYSTEM, 5, 0)) or device.name.encode()),
        (*loc, 4, 0): octets(_bytes(device, (*SYSTEM, 1, 0)) or b""),
        (*loc, 5, 0): octets(_CAPABILITIES), (*loc, 6, 0): octets(_CAPABILITIES),
    }
    ports = [o[-1] for o in device.oids if o[:-1] == (*IF_ENTRY, 1)]
    for port in ports:  # lldpLocPortNum = ifIndex, as most switches number them
        rows.update({(*loc, 7, 1, 2, port): integer(INTERFACE_NAME),
                     (*loc, 7, 1, 3, port): octets(port_id(device, port)),
                     (*loc, 7, 1, 4, port): octets(_bytes(device, (*IF_ENTRY, 2, port)) or b"")})
    rem = LLDP_REMOTE
    for n, (port, peer, peer_port) in enumerate(sorted(neighbours, key=lambda x: x[0]), start=1):
        seen = _announced(peer, peer_port)
        index = (0, port, n)  # lldpRemTimeMark (0: since the agent start), lldpRemLocalPortNum, lldpRemIndex
        rows.update({(*rem, 4, *index): integer(MAC_ADDRESS), (*rem, 5, *index): seen["chassis"],
                     (*rem, 6, *index): integer(INTERFACE_NAME), (*rem, 7, *index): seen["port"],
                     (*rem, 8, *index): seen["port_desc"], (*rem, 9, *index): seen["sys_name"],
                     (*rem, 10, *index): seen["sys_desc"], (*rem, 11, *index): octets(_CAPABILITIES),
                     (*rem, 12, *index): octets(_CAPABILITIES)})
    return rows


def cable(devices: Mapping[str, SimulatedDevice], cables: Iterable[Cable]) -> dict[str, SimulatedDevice]:
    """The devices with the LLDP-MIB their cables give them (a device on no cable is returned as it is).
    Raises KeyError for a cable to a device not in ``devices``."""
    seen: dict[str, list[tuple[int, SimulatedDevice, int]]] = defaultdict(list)
    for c in cables:
        a, b = devices[c.a], devices[c.b]
        seen[c.a].append((c.a_port, b, c.b_port))
        seen[c.b].append((c.b_port, a, c.a_port))
    return {name: device.with_rows(lldp_rows(device, seen[name])) if name in seen else device
            for name, device in devices.items()}

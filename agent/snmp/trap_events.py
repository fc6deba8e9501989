"""SNMP notifications as plain data: what the trap receiver turns every accepted trap or inform into.

Pure (no pysnmp, no sockets) and unit-tested without either: the well-known notification names, the
RFC 3584 conversion of SNMPv1 traps, :class:`TrapEvent`, the rendering of values as text, and
:class:`V3User` (an SNMPv3 user allowed to send notifications; protocol names from
:mod:`agent.snmp.credentials`). The receiver is :mod:`agent.snmp.traps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.snmp.credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS, security_level
from agent.snmp.values import NUMERIC_KINDS, SnmpValue

# ------------------------------------------------------------------------------------------- constants

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"  # RFC 3584: carries the community string; never exposed
SNMP_TRAPS = "1.3.6.1.6.3.1.1.5"  # generic traps, RFC 3584 3.1.3: snmpTraps.(generic-trap + 1)
IF_INDEX_PREFIX = "1.3.6.1.2.1.2.2.1.1."  # IF-MIB ifIndex.N, sent in linkDown/linkUp

#: Notification OIDs with a well-known name (standard MIBs, Net-SNMP, APC PowerNet v1 traps).
TRAP_NAMES: dict[str, str] = {
    # SNMPv2-MIB / IF-MIB generic traps (RFC 3418, RFC 2863)
    f"{SNMP_TRAPS}.1": "coldStart",
    f"{SNMP_TRAPS}.2": "warmStart",
    f"{SNMP_TRAPS}.3": "linkDown",
    f"{SNMP_TRAPS}.4": "linkUp",
    f"{SNMP_TRAPS}.5": "authenticationFailure",
    f"{SNMP_TRAPS}.6": "egpNeighborLoss",
    # UPS-MIB (RFC 1628)
    "1.3.6.1.2.1.33.2.1": "upsTrapOnBattery",
    "1.3.6.1.2.1.33.2.2": "upsTrapTestCompleted",
    "1.3.6.1.2.1.33.2.3": "upsTrapAlarmEntryAdded",
    "1.3.6.1.2.1.33.2.4": "upsTrapAlarmEntryRemoved",
    # BRIDGE-MIB (RFC 4188)
    "1.3.6.1.2.1.17.0.1": "newRoot",
    "1.3.6.1.2.1.17.0.2": "topologyChange",
    # RMON-MIB (RFC 2819)
    "1.3.6.1.2.1.16.0.1": "risingAlarm",
    "1.3.6.1.2.1.16.0.2": "fallingAlarm",
    # BGP4-MIB (RFC 4273; and the RFC 1657 names)
    "1.3.6.1.2.1.15.0.1": "bgpEstablishedNotification",
    "1.3.6.1.2.1.15.0.2": "bgpBackwardTransNotification",
    "1.3.6.1.2.1.15.7.1": "bgpEstablished",
    "1.3.6.1.2.1.15.7.2": "bgpBackwardTransition",
    # OSPF-TRAP-MIB (RFC 4750)
    "1.3.6.1.2.1.14.16.2.2": "ospfNbrStateChange",
    "1.3.6.1.2.1.14.16.2.16": "ospfIfStateChange",
    # ENTITY-MIB (RFC 6933)
    "1.3.6.1.2.1.47.2.0.1": "entConfigChange",
    # NET-SNMP-AGENT-MIB
    "1.3.6.1.4.1.8072.4.0.1": "nsNotifyStart",
    "1.3.6.1.4.1.8072.4.0.2": "nsNotifyShutdown",
    "1.3.6.1.4.1.8072.4.0.3": "nsNotifyRestart",
    # APC PowerNet-MIB (SNMPv1 traps, enterprise apc 1.3.6.1.4.1.318, converted per RFC 3584)
    "1.3.6.1.4.1.318.0.1": "apcCommunicationLost",
    "1.3.6.1.4.1.318.0.5": "apcUpsOnBattery",
    "1.3.6.1.4.1.318.0.7": "apcLowBattery",
    "1.3.6.1.4.1.318.0.9": "apcPowerRestored",
}

# ------------------------------------------------------------------------------------------- data


class MalformedTrap(ValueError):
    """A notification that cannot be turned into an event (e.g. no snmpTrapOID.0)."""


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 user allowed to send notifications.

    ``engine_id`` (hex, ``0x`` prefix and ``:`` separators allowed) is the *sending* device's engine id;
    SNMPv3 traps need it, informs do not (see the module docstring). Several entries may share a user
    name with different engine ids (one per device); informs then use the first entry's passwords.
    """

    username: str
    auth_protocol: str | None = None  # MD5 SHA SHA224 SHA256 SHA384 SHA512
    auth_password: str = field(default="", repr=False)
    priv_protocol: str | None = None  # DES AES AES192 AES256
    priv_password: str = field(default="", repr=False)
    engine_id: str | None = None

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("SNMPv3 user needs a username")
        if self.auth_protocol is not None and self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"unknown auth_protocol {self.auth_protocol!r}; "
                             f"known: {', '.join(AUTH_PROTOCOLS)}")
        if self.priv_protocol is not None and self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"unknown priv_protocol {self.priv_protocol!r}; "
                             f"known: {', '.join(PRIV_PROTOCOLS)}")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("priv_protocol needs auth_protocol too (SNMPv3 has no privacy without auth)")
        for kind in ("auth", "priv"):
            if getattr(self, f"{kind}_protocol") and len(getattr(self, f"{kind}_password")) < 8:
                raise ValueError(f"{kind}_password of user {self.username!r} must have at least 8 characters "
                                 "(RFC 3414 11.2; net-snmp refuses shorter ones too)")
        if self.engine_id is not None:
            engine_id_bytes(self.engine_id)

    @property
    def security_level(self) -> str:
        return security_level(self.auth_protocol, self.priv_protocol)


@dataclass(frozen=True, slots=True)
class TrapEvent:
    ts: float  # unix time received
    source: str  # sender IP address (of the UDP datagram)
    version: str  # "1", "2c", "3"
    security_name: str  # "communities[i]" for v1/v2c (never the community itself), the user for v3
    trap_oid: str  # snmpTrapOID.0; for v1 converted per RFC 3584
    trap_name: str  # well-known name (TRAP_NAMES) or else the OID
    uptime: float | None  # sysUpTime.0 in seconds
    varbinds: tuple[tuple[str, str, str], ...]  # (oid, kind, value as text); snmpTrapCommunity.0 dropped
    if_index: str | None  # ifIndex from an IF-MIB ifIndex.N varbind (linkDown/linkUp), if present
    inform: bool = False  # True when it was an acknowledged InformRequest


# ------------------------------------------------------------------------------------------- pure parts


def engine_id_bytes(text: str) -> bytes:
    """Parse an engine id written in hex (``80001f8880...``, ``0x8000...`` or ``80:00:1f:...``)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"engine id {text!r} is not hex") from None
    if not 5 <= len(raw) <= 32:
        raise ValueError(f"engine id {text!r} has {len(raw)} bytes; SNMP engine ids have 5 to 32")
    return raw


def v1_trap_oid(enterprise: str, generic: int, specific: int) -> str:
    """snmpTrapOID.0 of an SNMPv1 trap (RFC 3584 3.1.2-3).

    Generic traps 0-5 become ``snmpTraps.(generic + 1)`` (coldStart ... egpNeighborLoss); an
    enterpriseSpecific (6) trap becomes ``enterprise.0.specific``.
    """
    if generic == 6:
        return f"{enterprise.strip('.')}.0.{specific}"
    if 0 <= generic <= 5:
        return f"{SNMP_TRAPS}.{generic + 1}"
    raise MalformedTrap(f"SNMPv1 generic-trap {generic} is not 0..6")


def trap_name(oid: str) -> str:
    return TRAP_NAMES.get(oid, oid)


def render_value(value: SnmpValue) -> str:
    """Value as text: numbers in decimal, strings as UTF-8 text when they are printable UTF-8, else
    ``0x`` and lower-case hex (MAC addresses, binary, legacy 8-bit encodings); absent values as ""."""
    v = value.value
    if value.kind in NUMERIC_KINDS and isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        try:
            text = v.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + v.hex()
        if all(ch.isprintable() or ch in "\t\r\n" for ch in text):
            return text
        return "0x" + v.hex()
    return "" if v is None else str(v)


def v1_varbinds(
    *,
    enterprise: str,
    agent_address: str,
    generic: int,
    specific: int,
    timestamp: int,
    varbinds: Sequence[tuple[str, SnmpValue]],
) -> list[tuple[str, SnmpValue]]:
    """The SNMPv2 varbind list of an SNMPv1 trap (RFC 3584 3.1.4), without snmpTrapCommunity.0:
    sysUpTime.0, snmpTrapOID.0, the trap's varbinds, snmpTrapAddress.0, snmpTrapEnterprise.0."""
    return [
        (SYS_UPTIME, SnmpValue("timeticks", timestamp)),
        (SNMP_TRAP_OID, SnmpValue("oid", v1_trap_oid(enterprise, generic, specific))),
        *varbinds,
        (SNMP_TRAP_ADDRESS, SnmpValue("ipaddress", agent_address)),
        (SNMP_TRAP_ENTERPRISE, SnmpValue("oid", enterprise.strip("."))),
    ]


def build_event(
    *,
    ts: float,
    source: str,
    version: str,
    security_name: str,
    varbinds: Sequence[tuple[str, SnmpValue]],
    inform: bool = False,
) -> TrapEvent:
    """Turn an SNMPv2-style varbind list (sysUpTime.0, snmpTrapOID.0, ...) into a :class:`TrapEvent`.

    Raises :class:`MalformedTrap` when snmpTrapOID.0 is missing or not an OID (RFC 3416 4.2.6 makes it
    the second varbind; we accept it anywhere).
    """
    kept = [(oid, value) for oid, value in varbinds if oid != SNMP_TRAP_COMMUNITY]
    values = dict(kept)
    trap = values.get(SNMP_TRAP_OID)
    if trap is None or trap.kind != "oid" or not isinstance(trap.value, str):
        raise MalformedTrap("notification without snmpTrapOID.0")
    ticks = values.get(SYS_UPTIME)
    uptime = ticks.value / 100.0 if ticks is not None and isinstance(ticks.value, int) else None
    if_index = next(
        (render_value(value) or oid[len(IF_INDEX_PREFIX):] for oid, value in kept
         if oid.startswith(IF_INDEX_PREFIX) and oid.count(".") == IF_INDEX_PREFIX.count(".")),
        None,
    )
    return TrapEvent(
        ts=ts,
        source=source,
        version=version,
        security_name=security_name,
        trap_oid=trap.value,
        trap_name=trap_name(trap.value),
        uptime=uptime,
        varbinds=tuple((oid, value.kind, render_value(value)) for oid, value in kept),
        if_index=if_index,
        inform=inform,
    )

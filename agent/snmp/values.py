"""SNMP values as plain data (no pysnmp types): what every session returns and the mapping reads."""

from __future__ import annotations

from typing import NamedTuple

OID = tuple[int, ...]


class SnmpValue(NamedTuple):
    """One value as read. A NamedTuple, not a dataclass: a poll makes thousands (a frozen dataclass costs
    three times as much to create)."""

    # integer octets oid ipaddress counter32 gauge32 timeticks opaque counter64 null
    # no_such_object no_such_instance end_of_mib_view unknown
    kind: str
    value: int | bytes | str | None


NUMERIC_KINDS = frozenset({"integer", "counter32", "gauge32", "timeticks", "counter64"})
ABSENT_KINDS = frozenset({"no_such_object", "no_such_instance", "end_of_mib_view", "null", "unknown"})


def oid_text(oid: OID) -> str:
    return ".".join(map(str, oid))


def oids_text(oids: tuple[OID, ...] | list[OID], *, shown: int = 3) -> str:
    """``1.3.6.1.2.1.2.2.1.10, 1.3.6.1.2.1.2.2.1.16 and 5 more``: a few OIDs, for messages."""
    more = f" and {len(oids) - shown} more" if len(oids) > shown else ""
    return ", ".join(map(oid_text, oids[:shown])) + more

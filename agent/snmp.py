"""The agent's SNMP client: the only module that imports pysnmp.

A small surface: :class:`SnmpEngine` (one per process; building one costs ~80 ms) makes
:class:`SnmpTarget` objects for devices, which offer ``get`` and ``walk``. Values come back as
:class:`SnmpValue` (a kind name and a plain Python value), errors as :class:`SnmpError` subclasses,
so nothing outside this module sees pysnmp types.

Walks are our own loop on GETBULK (GETNEXT for v1): they stay inside the requested subtree, stop on a
non-increasing OID, cap rows, treat ``endOfMibView`` as the end, and halve max-repetitions on tooBig.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import errind, rfc1902, rfc1905

from agent.varbind import NUMERIC_KINDS, OID, SnmpValue, oid_text


class SnmpError(Exception):
    """An SNMP request failed."""


class SnmpTimeout(SnmpError):
    """No answer in time (also what a wrong community or an unknown v3 user looks like)."""


class SnmpWalkError(SnmpError):
    """A walk was abandoned: the device returned OIDs that do not increase, or too many rows."""


@dataclass(frozen=True, slots=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = "public"
    username: str = ""
    auth_protocol: str | None = None  # MD5 SHA SHA224 SHA256 SHA384 SHA512
    auth_password: str = ""
    priv_protocol: str | None = None  # DES AES AES192 AES256
    priv_password: str = ""
    context: str = ""


AUTH_PROTOCOLS = {
    "MD5": hlapi.USM_AUTH_HMAC96_MD5,
    "SHA": hlapi.USM_AUTH_HMAC96_SHA,
    "SHA224": hlapi.USM_AUTH_HMAC128_SHA224,
    "SHA256": hlapi.USM_AUTH_HMAC192_SHA256,
    "SHA384": hlapi.USM_AUTH_HMAC256_SHA384,
    "SHA512": hlapi.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    "DES": hlapi.USM_PRIV_CBC56_DES,
    "AES": hlapi.USM_PRIV_CFB128_AES,
    "AES192": hlapi.USM_PRIV_CFB192_AES,
    "AES256": hlapi.USM_PRIV_CFB256_AES,
}

_KINDS: dict[Any, str] = {
    rfc1902.Integer.tagSet: "integer",
    rfc1902.OctetString.tagSet: "octets",
    rfc1902.ObjectIdentifier.tagSet: "oid",
    rfc1902.IpAddress.tagSet: "ipaddress",
    rfc1902.Counter32.tagSet: "counter32",
    rfc1902.Gauge32.tagSet: "gauge32",
    rfc1902.TimeTicks.tagSet: "timeticks",
    rfc1902.Opaque.tagSet: "opaque",
    rfc1902.Counter64.tagSet: "counter64",
    rfc1902.Null.tagSet: "null",
    rfc1905.NoSuchObject.tagSet: "no_such_object",
    rfc1905.NoSuchInstance.tagSet: "no_such_instance",
    rfc1905.EndOfMibView.tagSet: "end_of_mib_view",
}


def _convert(value: Any) -> SnmpValue:
    kind = _KINDS.get(value.tagSet, "unknown")
    if kind in NUMERIC_KINDS:
        return SnmpValue(kind, int(value))
    if kind in ("octets", "opaque"):
        return SnmpValue(kind, bytes(value.asOctets()))
    if kind == "ipaddress":
        return SnmpValue(kind, ".".join(str(b) for b in value.asNumbers()))
    if kind == "oid":
        return SnmpValue(kind, ".".join(str(n) for n in value))
    return SnmpValue(kind, None)


def _auth_data(creds: Credentials) -> Any:
    if creds.version == "3":
        auth = AUTH_PROTOCOLS[creds.auth_protocol] if creds.auth_protocol else hlapi.USM_AUTH_NONE
        priv = PRIV_PROTOCOLS[creds.priv_protocol] if creds.priv_protocol else hlapi.USM_PRIV_NONE
        return hlapi.UsmUserData(
            creds.username,
            authKey=creds.auth_password or None,
            privKey=creds.priv_password or None,
            authProtocol=auth,
            privProtocol=priv,
        )
    return hlapi.CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)


class SnmpEngine:
    """One pysnmp engine for the whole process."""

    def __init__(self) -> None:
        self._engine = hlapi.SnmpEngine()

    async def target(
        self, host: str, port: int, creds: Credentials, *, timeout: float, retries: int
    ) -> SnmpTarget:
        transport = await hlapi.UdpTransportTarget.create((host, port), timeout=timeout, retries=retries)
        return SnmpTarget(self._engine, transport, creds)

    def close(self) -> None:
        dispatcher = self._engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()


class SnmpTarget:
    """One device with its credentials. Not safe for concurrent use: one request in flight at a time."""

    def __init__(self, engine: Any, transport: Any, creds: Credentials) -> None:
        self._engine = engine
        self._transport = transport
        self._creds = creds
        self._auth = _auth_data(creds)
        self._context = hlapi.ContextData(contextName=creds.context) if creds.context else hlapi.ContextData()
        self.max_repetitions = 10

    def _check(self, error_indication: Any, error_status: Any, error_index: Any) -> None:
        if error_indication:
            if isinstance(error_indication, errind.RequestTimedOut):
                raise SnmpTimeout("no response (timeout): device down, wrong address, or wrong credentials")
            raise SnmpError(str(error_indication))
        if error_status and int(error_status) != 0:
            raise SnmpError(f"device reported {error_status.prettyPrint()} at varbind {int(error_index)}")

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        """GET the given OIDs. Missing objects come back as ``no_such_*`` values, also on SNMPv1."""
        wanted = list(oids)
        while wanted:
            request = [hlapi.ObjectType(hlapi.ObjectIdentity(oid_text(o))) for o in wanted]
            ind, status, index, varbinds = await hlapi.get_cmd(
                self._engine, self._auth, self._transport, self._context, *request, lookupMib=False
            )
            if not ind and status and int(status) == 2 and self._creds.version == "1" and int(index) > 0:
                wanted.pop(int(index) - 1)  # v1 noSuchName fails the whole request: drop and retry
                continue
            self._check(ind, status, index)
            found = {tuple(name): _convert(value) for name, value in varbinds}
            return [(o, found.get(o, SnmpValue("no_such_object", None))) for o in oids]
        return [(o, SnmpValue("no_such_object", None)) for o in oids]

    async def _next_rows(self, oid: OID) -> list[tuple[OID, SnmpValue]]:
        request = hlapi.ObjectType(hlapi.ObjectIdentity(oid_text(oid)))
        while True:
            if self._creds.version == "1":
                ind, status, index, varbinds = await hlapi.next_cmd(
                    self._engine, self._auth, self._transport, self._context, request, lookupMib=False
                )
                if not ind and status and int(status) == 2:  # noSuchName: end of the MIB view
                    return []
            else:
                ind, status, index, varbinds = await hlapi.bulk_cmd(
                    self._engine, self._auth, self._transport, self._context,
                    0, self.max_repetitions, request, lookupMib=False,
                )
                if not ind and status and int(status) == 1 and self.max_repetitions > 1:  # tooBig
                    self.max_repetitions = max(1, self.max_repetitions // 2)
                    continue
            self._check(ind, status, index)
            return [(tuple(name), _convert(value)) for name, value in varbinds]

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        """All (oid, value) pairs strictly inside the subtree ``root``, in order."""
        rows: list[tuple[OID, SnmpValue]] = []
        cursor = root
        depth = len(root)
        while True:
            batch = await self._next_rows(cursor)
            if not batch:
                return rows
            for oid, value in batch:
                if oid[:depth] != root or value.kind == "end_of_mib_view":
                    return rows
                if oid <= cursor:
                    raise SnmpWalkError(f"device returned non-increasing OID {oid_text(oid)} "
                                        f"after {oid_text(cursor)} while walking {oid_text(root)}")
                rows.append((oid, value))
                cursor = oid
                if len(rows) > max_rows:
                    raise SnmpWalkError(f"more than {max_rows} rows under {oid_text(root)}")

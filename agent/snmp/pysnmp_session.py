"""SNMP over pysnmp: SNMPv3 (and v1/v2c when the fast path is off). The only pysnmp import for polling.

:class:`PysnmpEngine` (one per process; building one costs ~80 ms) owns pysnmp's engine and one UDP
socket for all devices; :class:`PysnmpSession` is the :class:`agent.snmp.session.Session` of one device.
Values leave as :class:`agent.snmp.values.SnmpValue` (:func:`convert`), failures as
:class:`agent.snmp.errors.SnmpError`: nothing outside this module (and the trap receiver) sees pysnmp
types.

SNMPv3 protocols (pysnmp 7.1.30 against net-snmp 5.9.3 ``snmpd`` on Debian 12; tests/integration/
test_snmpv3.py checks every combination below against a real snmpd):

=========  =========================================  ===============================================
our name   pysnmp constant                            net-snmp ``createUser`` / ``snmpget -x`` name
=========  =========================================  ===============================================
MD5 SHA    USM_AUTH_HMAC96_MD5 / _SHA                 MD5 / SHA
SHA224     USM_AUTH_HMAC128_SHA224                    SHA-224
SHA256     USM_AUTH_HMAC192_SHA256                    SHA-256
SHA384     USM_AUTH_HMAC256_SHA384                    SHA-384
SHA512     USM_AUTH_HMAC384_SHA512                    SHA-512
DES        USM_PRIV_CBC56_DES                         DES
AES        USM_PRIV_CFB128_AES                        AES (= AES128)
AES192     USM_PRIV_CFB192_AES_BLUMENTHAL             AES192 / AES-192 (Blumenthal key extension)
AES256     USM_PRIV_CFB256_AES_BLUMENTHAL             AES256 / AES-256 (Blumenthal key extension)
AES192C    USM_PRIV_CFB192_AES ("AES-192-Cisco")      AES192C (Reeder key extension, Cisco IOS)
AES256C    USM_PRIV_CFB256_AES ("AES-256-Cisco")      AES256C (Reeder key extension, Cisco IOS)
=========  =========================================  ===============================================

pysnmp's plain ``USM_PRIV_CFB192_AES``/``CFB256_AES`` use the Reeder key extension, which is *not* what
net-snmp means by AES192/AES256: with MD5 or SHA (and SHA224 for AES256) the localized key is too short
and the two extensions give different keys, so the device silently drops every request (a timeout).
With SHA256 and longer hashes no extension is needed and both work. We therefore map AES192/AES256 to
the Blumenthal variants and offer the Reeder ones as AES192C/AES256C for Cisco-style devices.

Socket: we create it ourselves (pysnmp would open one lazily) so that we can ask for a large
``SO_RCVBUF`` and see every datagram before pysnmp does: datagrams are counted per sender (a timeout
can then say the device did answer, unusably) and negative unsigned integers from buggy v1/v2c devices
are rewritten (:func:`agent.snmp.unsigned_repair.repair_unsigned`) before pyasn1's range check would drop the
whole reply. For SNMPv3 the bytes are authenticated (and usually encrypted), so such replies are lost
and the request ends as a timeout whose message mentions undecodable replies.

Cancellation: a request cancelled by the caller (``asyncio.timeout`` around a poll) leaves pysnmp's
pending-request entry behind until its own timeout expires; the callback then finds the future
cancelled and does nothing, and a late answer is matched by request-id and dropped. The next request
on the same device is unaffected (tested). pysnmp offers no way to withdraw a request, so a cancelled
one is still retransmitted until its timeout x tries is over (:attr:`PysnmpEngine.idle` tells when all
such requests are gone).

Shared SNMPv3 user names: pysnmp keeps one USM user entry per user name (and engine ID), so two devices
that share a user name but not its passwords or protocols would overwrite each other's keys, and
overlapping polls fail with wrongDigest. When the engine sees such a user name, each session using it
discovers its device's engine ID once (an RFC 3414 discovery probe) and gives pysnmp a user entry keyed
by that engine ID. After any SNMPv3 error other than a timeout the pin is dropped and rediscovered on
the next request (a replaced device has a new engine ID). Devices that share the same credentials
need none of this.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pysnmp_config
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import errind, rfc1902, rfc1905

from agent.snmp.credentials import AUTH_PROTOCOLS as AUTH_NAMES
from agent.snmp.credentials import PRIV_PROTOCOLS as PRIV_NAMES
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpAddressError, SnmpError, timeout_error, v3_error
from agent.snmp.unsigned_repair import repair_unsigned
from agent.snmp.v3_discovery import discovery_request, engine_id_of
from agent.snmp.values import NUMERIC_KINDS, OID, SnmpValue, oid_text

log = logging.getLogger("hatang.agent.snmp")

AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": hlapi.USM_AUTH_HMAC96_MD5,
    "SHA": hlapi.USM_AUTH_HMAC96_SHA,
    "SHA224": hlapi.USM_AUTH_HMAC128_SHA224,
    "SHA256": hlapi.USM_AUTH_HMAC192_SHA256,
    "SHA384": hlapi.USM_AUTH_HMAC256_SHA384,
    "SHA512": hlapi.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS: dict[str, Any] = {
    "DES": hlapi.USM_PRIV_CBC56_DES,
    "AES": hlapi.USM_PRIV_CFB128_AES,
    "AES128": hlapi.USM_PRIV_CFB128_AES,
    "AES192": hlapi.USM_PRIV_CFB192_AES_BLUMENTHAL,  # what net-snmp calls AES192 (see module doc)
    "AES256": hlapi.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": hlapi.USM_PRIV_CFB192_AES,  # Reeder key extension ("AES-192-Cisco")
    "AES256C": hlapi.USM_PRIV_CFB256_AES,
}
assert tuple(AUTH_PROTOCOLS) == AUTH_NAMES and tuple(PRIV_PROTOCOLS) == PRIV_NAMES  # one list of names

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

# pysnmp's error indications -> the RFC 3414 names agent.snmp.errors.v3_error words its messages by
_INDICATIONS: tuple[tuple[type[Any] | tuple[type[Any], ...], str], ...] = (
    (errind.UnknownUserName, "unknownUserName"),
    (errind.WrongDigest, "wrongDigest"),
    (errind.DecryptionError, "decryptionError"),
    (errind.UnsupportedSecurityLevel, "unsupportedSecLevel"),
    ((errind.UnsupportedPrivProtocol, errind.UnsupportedAuthProtocol, errind.NoEncryption,
      errind.EncryptionError), "unsupportedProtocol"),
    (errind.NotInTimeWindow, "notInTimeWindow"),
    (errind.UnknownEngineID, "unknownEngineID"),
)


def convert(value: Any) -> SnmpValue:
    """A pysnmp/pyasn1 value as a plain :class:`SnmpValue` (unknown types: kind "unknown", no value)."""
    kind = _KINDS.get(getattr(value, "tagSet", None), "unknown")
    if kind in NUMERIC_KINDS:
        return SnmpValue(kind, int(value))
    if kind in ("octets", "opaque"):
        return SnmpValue(kind, bytes(value.asOctets()))
    if kind == "ipaddress":
        return SnmpValue(kind, ".".join(str(b) for b in value.asNumbers()))
    if kind == "oid":
        return SnmpValue(kind, ".".join(str(n) for n in value))
    return SnmpValue(kind, None)


def auth_data(creds: Credentials, engine_id: bytes | None = None) -> Any:
    """pysnmp's CommunityData/UsmUserData for ``creds``; :class:`SnmpError` for unusable credentials."""
    if creds.version == "3":
        if not creds.username:
            raise SnmpError("SNMPv3 needs a user name")
        try:
            auth = AUTH_PROTOCOLS[creds.auth_protocol] if creds.auth_protocol else hlapi.USM_AUTH_NONE
        except KeyError:
            raise SnmpError(f"unknown SNMPv3 authentication protocol {creds.auth_protocol!r}; "
                            f"known: {', '.join(AUTH_PROTOCOLS)}") from None
        try:
            priv = PRIV_PROTOCOLS[creds.priv_protocol] if creds.priv_protocol else hlapi.USM_PRIV_NONE
        except KeyError:
            raise SnmpError(f"unknown SNMPv3 privacy protocol {creds.priv_protocol!r}; "
                            f"known: {', '.join(PRIV_PROTOCOLS)}") from None
        if priv is not hlapi.USM_PRIV_NONE and auth is hlapi.USM_AUTH_NONE:
            raise SnmpError("SNMPv3 privacy needs an authentication protocol too")
        try:
            return hlapi.UsmUserData(
                creds.username,
                authKey=creds.auth_password or None,
                privKey=creds.priv_password or None,
                authProtocol=auth,
                privProtocol=priv,
                securityEngineId=hlapi.OctetString(engine_id) if engine_id is not None else None,
            )
        except PySnmpError as exc:
            raise SnmpError(f"bad SNMPv3 credentials for user {creds.username!r}: {exc}") from None
    if creds.version not in ("1", "2c"):
        raise SnmpError(f"unknown SNMP version {creds.version!r}; known: 1, 2c, 3")
    return hlapi.CommunityData(creds.community, mpModel=0 if creds.version == "1" else 1)


class _Transport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's asyncio UDP transport, counting datagrams per sender and repairing negative unsigned
    integers before pysnmp decodes them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: Counter[tuple[str, int]] = Counter()
        self.repaired = 0

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self.received[(str(address[0]), int(address[1]))] += 1
        fixed = repair_unsigned(datagram)
        if fixed is not datagram:
            self.repaired += 1
        super().datagram_received(fixed, address)


class _Discovery(asyncio.DatagramProtocol):
    def __init__(self, reply: asyncio.Future[bytes]) -> None:
        self.reply = reply

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reply.done() and engine_id_of(data) is not None:
            self.reply.set_result(data)


@dataclass(frozen=True, slots=True)
class PysnmpReply:
    """A response as pysnmp gave it, in plain values (an :class:`agent.snmp.session.Reply`)."""

    error_status: int
    error_index: int
    error_name: str
    varbinds: list[tuple[OID, SnmpValue]]


_NO_ERROR = "noError"


class PysnmpEngine:
    """pysnmp's engine and the one UDP socket of all pysnmp sessions of the process."""

    def __init__(self, receive_buffer: int) -> None:
        self.engine = hlapi.SnmpEngine()
        self._wanted_buffer = receive_buffer
        self._transport: _Transport | None = None
        self._lock = asyncio.Lock()
        self.receive_buffer: int | None = None  # what the kernel granted (Linux reports twice the ask)
        self._v3_keys: dict[str, set[tuple[Any, ...]]] = {}  # user name -> distinct credential sets

    async def session(self, host: str, port: int, creds: Credentials, *, timeout: float,
                      retries: int) -> PysnmpSession:
        """A session for one device; :class:`SnmpError` for bad credentials or an unusable address."""
        auth = auth_data(creds)
        if creds.version == "3":
            self._v3_keys.setdefault(creds.username, set()).add(
                (creds.auth_protocol, creds.auth_password, creds.priv_protocol, creds.priv_password))
        transport = await self._ensure_transport()
        try:
            target = await hlapi.UdpTransportTarget.create((host, port), timeout=timeout, retries=retries)
        except PySnmpError as exc:
            raise SnmpAddressError(f"cannot use address {host}:{port}: {exc}") from None
        return PysnmpSession(self, target, creds, auth, host, port, transport.received, timeout, retries)

    def user_is_shared(self, username: str) -> bool:
        """True when sessions use ``username`` with different passwords or protocols."""
        return len(self._v3_keys.get(username, ())) > 1

    async def _ensure_transport(self) -> _Transport:
        async with self._lock:
            if self._transport is None:
                self._transport = await self._open_transport()
            return self._transport

    async def _open_transport(self) -> _Transport:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._wanted_buffer)
            except OSError as exc:  # pragma: no cover - platform without the option
                log.debug("cannot set SO_RCVBUF: %s", exc)
            self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            transport = _Transport().open_server_mode(sock=sock)
            await transport._lport  # the asyncio endpoint is created in a task: wait for it
            assert isinstance(transport, _Transport)
        except BaseException:
            sock.close()
            raise
        pysnmp_config.add_transport(self.engine, udp.DOMAIN_NAME, transport)
        log.debug("SNMP socket %s, SO_RCVBUF %s bytes", sock.getsockname(), self.receive_buffer)
        return transport

    @property
    def idle(self) -> bool:
        """True when pysnmp has no request in flight, counting requests whose caller was cancelled."""
        dispatcher = self.engine.transport_dispatcher
        return dispatcher is None or not dispatcher.jobs_are_pending()

    @property
    def repaired(self) -> int:
        return self._transport.repaired if self._transport is not None else 0

    def close(self) -> None:
        dispatcher = self.engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()
        self._transport = None


class PysnmpSession:
    """One device over pysnmp (an :class:`agent.snmp.session.Session`)."""

    def __init__(self, owner: PysnmpEngine, target: Any, creds: Credentials, auth: Any, host: str, port: int,
                 received: Counter[tuple[str, int]], timeout: float, retries: int) -> None:
        self.creds = creds
        self.host = host
        self.port = port
        self._owner = owner
        self._target = target
        self._auth = auth
        self._context = hlapi.ContextData(contextName=creds.context) if creds.context else hlapi.ContextData()
        resolved = getattr(target, "transport_address", None) or (host, port)
        self._address = (str(resolved[0]), int(resolved[1] or 0))  # datagrams arrive from this address
        self._received = received
        self._timeout = timeout
        self._tries = retries + 1
        self.engine_id: bytes | None = None  # pinned SNMPv3 engine ID (only for a shared user name)

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    @staticmethod
    def _objects(oids: Sequence[OID]) -> list[Any]:
        return [hlapi.ObjectType(hlapi.ObjectIdentity(oid_text(o))) for o in oids]

    async def get(self, oids: Sequence[OID]) -> PysnmpReply:
        await self._pin_engine_id()
        return await self._request(hlapi.get_cmd(self._owner.engine, self._auth, self._target, self._context,
                                                 *self._objects(oids), lookupMib=False))

    async def get_next(self, oid: OID) -> PysnmpReply:
        await self._pin_engine_id()
        return await self._request(hlapi.next_cmd(self._owner.engine, self._auth, self._target, self._context,
                                                  *self._objects((oid,)), lookupMib=False))

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> PysnmpReply:
        await self._pin_engine_id()
        return await self._request(hlapi.bulk_cmd(self._owner.engine, self._auth, self._target,
                                                  self._context, 0, max_repetitions, *self._objects(oids),
                                                  lookupMib=False))

    async def _request(self, call: Awaitable[Any]) -> PysnmpReply:
        """Run one pysnmp command: its response, or the error its indication stands for."""
        before = self._received[self._address]
        try:
            indication, status, index, varbinds = await call
        except PySnmpError as exc:
            raise SnmpError(f"{self._where()}: {exc}") from None
        if indication and not isinstance(indication, errind.EmptyResponse):  # empty: the target judges
            if isinstance(indication, errind.RequestTimedOut):
                raise timeout_error(self._where(), self.creds, self._timeout, self._tries,
                                    self._received[self._address] - before)
            if self.engine_id is not None:  # the device may have a new engine ID: discover it again
                self.engine_id = None
                self._auth = auth_data(self.creds)
            name = next((name for kinds, name in _INDICATIONS if isinstance(indication, kinds)), "")
            raise v3_error(self._where(), self.creds, name, str(indication))
        code = int(status) if status else 0
        return PysnmpReply(code, int(index) if index else 0, status.prettyPrint() if code else _NO_ERROR,
                           [(tuple(name), convert(value)) for name, value in varbinds])

    async def _pin_engine_id(self) -> None:
        """pysnmp keeps one USM entry per user name: when several devices share a user name with
        different keys, give this device's user its own entry, keyed by the device's engine ID."""
        if (self.engine_id is None and self.creds.version == "3"
                and self._owner.user_is_shared(self.creds.username)):
            self.engine_id = await self._discover_engine_id()
            self._auth = auth_data(self.creds, self.engine_id)
            log.debug("%s: SNMPv3 user %r pinned to engine ID %s", self._where(), self.creds.username,
                      self.engine_id.hex())

    async def _discover_engine_id(self) -> bytes:
        loop = asyncio.get_running_loop()
        for _ in range(self._tries):
            reply: asyncio.Future[bytes] = loop.create_future()
            try:
                endpoint, _ = await loop.create_datagram_endpoint(functools.partial(_Discovery, reply),
                                                                  remote_addr=self._address)
            except OSError as exc:
                raise SnmpAddressError(f"{self._where()}: cannot send SNMPv3 discovery: {exc}") from None
            try:
                endpoint.sendto(discovery_request(int.from_bytes(os.urandom(3), "big")))
                async with asyncio.timeout(self._timeout or 1.0):
                    engine_id = engine_id_of(await reply)  # _Discovery takes only replies that have one
                if engine_id is not None:
                    return engine_id
            except TimeoutError:
                continue
            finally:
                endpoint.close()
        raise timeout_error(self._where(), self.creds, self._timeout, self._tries, 0)

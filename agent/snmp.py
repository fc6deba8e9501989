"""The agent's SNMP client: the only module that imports pysnmp.

A small surface: :class:`SnmpEngine` (one per process; building one costs ~80 ms) makes
:class:`SnmpTarget` objects for devices, which offer ``get`` and ``walk``. Values come back as
:class:`SnmpValue` (a kind name and a plain Python value), errors as :class:`SnmpError` subclasses with
messages an operator can act on, so nothing outside this module sees pysnmp types.

Errors: every :class:`SnmpError` carries a machine-readable ``reason`` (a class attribute) so that the
poller can count problems by reason (``hatang_device_poll_errors_total{reason}``); the message is for a
person. The classes and their reasons:

============================  ==================  ========================================================
class                         ``reason``          meaning
============================  ==================  ========================================================
:class:`SnmpError`            ``snmp_error``      anything else: an error-status such as ``genErr``, an
                                                  unknown protocol name, an OID that BER cannot carry
:class:`SnmpTimeout`          ``timeout``         no usable answer in time (see below)
:class:`SnmpAuthError`        ``auth``            the device rejected our credentials or our access
:class:`SnmpAddressError`     ``address``         the device's address cannot be resolved or used
:class:`SnmpWrongOid`         ``wrong_oid``       the response does not answer the request: a GET answered
                                                  with other OIDs (or in another order, or another number
                                                  of varbinds), a GETNEXT not answered with exactly one
                                                  varbind, a GETBULK answered with none (a buggy agent)
:class:`SnmpNotIncreasing`    ``not_increasing``  a walk got an OID not greater than the one before it
                                                  (net-snmp: "OID not increasing"): the agent loops, echoes
                                                  the requested OID, or goes backwards
:class:`SnmpTooManyRows`      ``too_many_rows``   a walk went past its row cap
:class:`SnmpWalkTooLong`      ``walk_time``       a walk went past its time cap
============================  ==================  ========================================================

:class:`SnmpNotIncreasing`, :class:`SnmpTooManyRows` and :class:`SnmpWalkTooLong` are
:class:`SnmpWalkError` (a walk was abandoned). :data:`ERROR_REASONS` lists every reason.

    :class:`SnmpTimeout`: a v1/v2c device does not answer a wrong community and net-snmp drops a v3
    request it cannot decrypt (wrong privacy password or protocol), so both look like a timeout; the
    message says so. When datagrams did arrive from the device but could not be used (malformed BER, an
    answer with another request-id, community or SNMP version), the message says that too.
    :class:`SnmpAuthError`: unknown user, wrong authentication password or protocol, a security level
    the user lacks, a privacy protocol the device does not support, or ``authorizationError``/
    ``noAccess``.

Broken answers are errors, never data, on both the fast v1/v2c path and the pysnmp path (the same
checks, in this module): every GET response must carry, position by position, exactly the OIDs of the
request that was sent (after SNMPv1's noSuchName drop-and-retry); a walk's OIDs must increase strictly,
from the requested OID on and within each GETBULK response. Otherwise a device that answers with the
wrong objects, or echoes the OID it was asked for, would look healthy with no data.

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

Walks are our own loop on GETBULK (GETNEXT for v1): they stay inside the requested subtree (a GETBULK
response may run past it: the walk ends there, and what follows in that response is not looked at), raise
:class:`SnmpNotIncreasing` on an OID that is not greater than the one before it (also the requested OID
echoed back), except that an SNMPv1 walk ends cleanly on the last row repeated after at least one row (v1
agents do that at the end of the MIB) and any walk ends on an exception value (``noSuch*``) that repeats
the requested OID (net-snmp ends there too), cap rows and (optionally) time, treat ``endOfMibView`` as
the end and ``noSuch*`` with increasing OIDs as values,
halve max-repetitions on tooBig, and on a timeout of a bulk request to a device that answered before,
retry once with max-repetitions 1 (devices that silently drop large responses; it then grows back by
doubling after every 50 good responses, up to half the size that got no answer). A device that dies
mid-walk therefore costs one extra timeout.

Socket: the engine owns one UDP socket for all targets. We create it ourselves (pysnmp would open one
lazily) so that we can ask for a large ``SO_RCVBUF`` (:data:`RECEIVE_BUFFER_BYTES`; the kernel caps it
at ``net.core.rmem_max``, 208 KiB by default on Linux: raise that sysctl for hundreds of devices in
flight) and see every datagram before pysnmp does. :attr:`SnmpEngine.receive_buffer` says what the
kernel granted.

Buggy unsigned integers: a device that encodes a large Counter32 (or Gauge32, TimeTicks, Counter64) as
a negative BER integer breaks pyasn1's range check and pysnmp drops the whole reply. For SNMP v1/v2c
our socket rewrites such values to the unsigned number the device meant (two's complement) before
pysnmp decodes the datagram: cheap, because a byte-pattern pre-check skips nearly every datagram. For
SNMPv3 the bytes are authenticated (and usually encrypted), so this cannot be done: such replies are
lost and the request ends as a timeout whose message mentions undecodable replies.

Cancellation: a request cancelled by the caller (``asyncio.timeout`` around a poll) leaves pysnmp's
pending-request entry behind until its own timeout expires; the callback then finds the future
cancelled and does nothing, and a late answer is matched by request-id and dropped. The next request
on the same target is unaffected (tested). pysnmp offers no way to withdraw a request, so a cancelled
one is still retransmitted until its timeout x tries is over (:attr:`SnmpEngine.idle` tells when all
such requests are gone).

Shared SNMPv3 user names: pysnmp keeps one USM user entry per user name (and engine ID), so two devices
that share a user name but not its passwords or protocols would overwrite each other's keys, and
overlapping polls fail with wrongDigest. When the engine sees such a user name, each target using it
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
import re
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pysnmp_config
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import errind, rfc1902, rfc1905

from agent.snmp_ber import GET, GET_BULK, GET_NEXT, VERSIONS, Response, encode_request
from agent.snmp_ber import tlv as _tlv
from agent.snmp_community import CommunityTransport, RequestTimeout
from agent.varbind import NUMERIC_KINDS, OID, SnmpValue, oid_text

log = logging.getLogger("hatang.agent.snmp")

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_REPETITIONS = 10
_GROW_AFTER = 50  # successful bulk responses before max-repetitions is raised again after a silent drop
_ABSENT = frozenset({"no_such_object", "no_such_instance"})


class SnmpError(Exception):
    """An SNMP request failed; ``reason`` says why in one word (see the module doc)."""

    reason: ClassVar[str] = "snmp_error"


class SnmpTimeout(SnmpError):
    """No usable answer in time (also what a wrong community or a wrong v3 privacy password looks like)."""

    reason: ClassVar[str] = "timeout"


class SnmpAuthError(SnmpError):
    """The device rejected our credentials or our access (SNMPv3 user, password, security level)."""

    reason: ClassVar[str] = "auth"


class SnmpAddressError(SnmpError):
    """The device's address cannot be resolved or used."""

    reason: ClassVar[str] = "address"


class SnmpWrongOid(SnmpError):
    """The response does not answer the request: other OIDs, another order or number of varbinds."""

    reason: ClassVar[str] = "wrong_oid"


class SnmpWalkError(SnmpError):
    """A walk was abandoned (the base of the three classes below)."""


class SnmpNotIncreasing(SnmpWalkError):
    """A walk got an OID not greater than the one before it: the agent loops or goes backwards."""

    reason: ClassVar[str] = "not_increasing"


class SnmpTooManyRows(SnmpWalkError):
    """A walk went past its row cap."""

    reason: ClassVar[str] = "too_many_rows"


class SnmpWalkTooLong(SnmpWalkError):
    """A walk went past its time cap."""

    reason: ClassVar[str] = "walk_time"


ERROR_REASONS = tuple(dict.fromkeys(cls.reason for cls in (
    SnmpError, SnmpTimeout, SnmpAuthError, SnmpAddressError, SnmpWrongOid, SnmpNotIncreasing,
    SnmpTooManyRows, SnmpWalkTooLong)))


@dataclass(frozen=True, slots=True)
class Credentials:
    version: str  # "1", "2c" or "3"
    community: str = "public"
    username: str = ""
    auth_protocol: str | None = None  # MD5 SHA SHA224 SHA256 SHA384 SHA512
    auth_password: str = ""
    priv_protocol: str | None = None  # DES AES AES192 AES256 (+ AES128 = AES, AES192C AES256C)
    priv_password: str = ""
    context: str = ""

    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if not self.auth_protocol:
            return "noAuthNoPriv"
        return "authPriv" if self.priv_protocol else "authNoPriv"


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


_convert = convert  # the old private name


def _auth_data(creds: Credentials, engine_id: bytes | None = None) -> Any:
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


# --------------------------------------------------------------------------------------------------
# the socket: receive buffer, datagram counts, repair of negative unsigned integers (v1/v2c)

_APP_UNSIGNED = {0x41: 32, 0x42: 32, 0x43: 32, 0x46: 64}  # Counter32 Gauge32 TimeTicks Counter64
_CONSTRUCTED = frozenset({0x30, *range(0xA0, 0xA9)})  # SEQUENCE and the v1/v2c PDUs
# A negative (high bit set) content byte right after an unsigned application tag and a short length. A
# correct encoding of a value >= 2**31 starts with 0x00, so this only matches buggy values, or by chance
# bytes inside strings or OIDs (then the exact rewrite below finds nothing to change).
_SUSPECT = re.compile(rb"[\x41\x42\x43\x46][\x01-\x08][\x80-\xff]")
_V1_V2C_HEAD = re.compile(rb"\x30(?:[\x00-\x7f]|\x81.|\x82..|\x83...)\x02\x01[\x00\x01]", re.DOTALL)


def _tlv_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    if pos + 2 > end:
        raise ValueError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4 or pos + n > end:
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise ValueError("truncated")
    return tag, pos, pos + length


def _rewrite(data: bytes, start: int, end: int) -> tuple[bytes, bool]:
    out: list[bytes] = []
    changed = False
    pos = start
    while pos < end:
        tag, content_start, content_end = _tlv_header(data, pos, end)
        if tag in _CONSTRUCTED:
            inner, inner_changed = _rewrite(data, content_start, content_end)
            if inner_changed:
                out.append(_tlv(tag, inner))
                changed = True
            else:
                out.append(data[pos:content_end])
        elif tag in _APP_UNSIGNED and content_end > content_start and data[content_start] & 0x80:
            bits = _APP_UNSIGNED[tag]
            number = int.from_bytes(data[content_start:content_end], "big", signed=True) % (1 << bits)
            out.append(_tlv(tag, number.to_bytes(number.bit_length() // 8 + 1, "big")))
            changed = True
        else:
            out.append(data[pos:content_end])
        pos = content_end
    return b"".join(out), changed


def repair_unsigned(datagram: bytes) -> bytes:
    """An SNMP v1/v2c datagram with negative Counter32/Gauge32/TimeTicks/Counter64 values rewritten as
    the unsigned numbers they stand for (two's complement); any other datagram unchanged."""
    if not _SUSPECT.search(datagram) or not _V1_V2C_HEAD.match(datagram):
        return datagram
    try:
        fixed, changed = _rewrite(datagram, 0, len(datagram))
    except ValueError:
        return datagram  # malformed: pysnmp will drop it and count it
    return fixed if changed else datagram


def _int_tlv(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def discovery_request(msg_id: int) -> bytes:
    """An SNMPv3 engine-ID discovery probe (RFC 3414 4): reportable, noAuthNoPriv, empty USM fields."""
    header = _tlv(0x30, _int_tlv(msg_id) + _int_tlv(65507) + _tlv(0x04, b"\x04") + _int_tlv(3))
    empty = _tlv(0x04, b"")
    usm = _tlv(0x04, _tlv(0x30, empty + _int_tlv(0) + _int_tlv(0) + empty + empty + empty))
    pdu = _tlv(0xA0, _int_tlv(msg_id) + _int_tlv(0) + _int_tlv(0) + _tlv(0x30, b""))
    return _tlv(0x30, _int_tlv(3) + header + usm + _tlv(0x30, empty + empty + pdu))


def engine_id_of(reply: bytes) -> bytes | None:
    """msgAuthoritativeEngineID of an SNMPv3 message (the Report answering a discovery), else None."""
    try:
        tag, start, end = _tlv_header(reply, 0, len(reply))
        version_tag, v_start, v_end = _tlv_header(reply, start, end)
        if tag != 0x30 or version_tag != 0x02 or reply[v_start:v_end] != b"\x03":
            return None
        _, _, header_end = _tlv_header(reply, v_end, end)
        params_tag, p_start, p_end = _tlv_header(reply, header_end, end)
        usm_tag, u_start, u_end = _tlv_header(reply, p_start, p_end)
        id_tag, i_start, i_end = _tlv_header(reply, u_start, u_end)
    except ValueError:
        return None
    if (params_tag, usm_tag, id_tag) != (0x04, 0x30, 0x04) or i_end == i_start:
        return None
    return reply[i_start:i_end]


class _Discovery(asyncio.DatagramProtocol):
    def __init__(self, reply: asyncio.Future[bytes]) -> None:
        self.reply = reply

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reply.done() and engine_id_of(data) is not None:
            self.reply.set_result(data)


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


# --------------------------------------------------------------------------------------------------
# engine and targets


class SnmpEngine:
    """One pysnmp engine (and one UDP socket) for the whole process."""

    def __init__(self, *, receive_buffer: int = RECEIVE_BUFFER_BYTES, fast_path: bool = True) -> None:
        self._engine = hlapi.SnmpEngine()
        self._wanted_buffer = receive_buffer
        self.fast_path = fast_path  # v1/v2c through agent.snmp_community instead of pysnmp
        self._transport: _Transport | None = None
        self._community: CommunityTransport | None = None
        self._transport_lock = asyncio.Lock()
        self.receive_buffer: int | None = None  # what the kernel granted (Linux reports twice the ask)
        self._v3_keys: dict[str, set[tuple[Any, ...]]] = {}  # user name -> distinct credential sets

    async def _ensure_transport(self) -> _Transport:
        async with self._transport_lock:
            if self._transport is None:
                self._transport = await self._open_transport()
            return self._transport

    async def _ensure_community(self) -> CommunityTransport:
        async with self._transport_lock:
            if self._community is None:
                community = CommunityTransport()
                await community.open(self._wanted_buffer)
                self._community = community
                self.receive_buffer = community.receive_buffer
            return self._community

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
        pysnmp_config.add_transport(self._engine, udp.DOMAIN_NAME, transport)
        log.debug("SNMP socket %s, SO_RCVBUF %s bytes", sock.getsockname(), self.receive_buffer)
        return transport

    async def target(
        self,
        host: str,
        port: int,
        creds: Credentials,
        *,
        timeout: float,
        retries: int,
        max_repetitions: int = DEFAULT_MAX_REPETITIONS,
        max_walk_time: float | None = None,
    ) -> SnmpTarget:
        """A target for one device. Raises :class:`SnmpError` for an unresolvable address or bad
        credentials (unknown protocol names)."""
        auth = _auth_data(creds)
        if creds.version == "3":
            self._v3_keys.setdefault(creds.username, set()).add(
                (creds.auth_protocol, creds.auth_password, creds.priv_protocol, creds.priv_password))
        if self.fast_path and creds.version in VERSIONS:
            community = await self._ensure_community()
            address = await _resolve(host, port)
            return SnmpTarget(self._engine, None, creds, auth=auth, host=host, port=port,
                              counter=community.received, max_repetitions=max_repetitions,
                              max_walk_time=max_walk_time, fast=community, address=address,
                              timeout=timeout, retries=retries)
        transport = await self._ensure_transport()
        try:
            udp_target = await hlapi.UdpTransportTarget.create((host, port), timeout=timeout, retries=retries)
        except PySnmpError as exc:
            raise SnmpAddressError(f"cannot use address {host}:{port}: {exc}") from None
        return SnmpTarget(self._engine, udp_target, creds, auth=auth, host=host, port=port,
                          counter=transport.received, max_repetitions=max_repetitions,
                          max_walk_time=max_walk_time, shared_user=self._user_is_shared)

    def _user_is_shared(self, username: str) -> bool:
        """True when targets use ``username`` with different passwords or protocols."""
        return len(self._v3_keys.get(username, ())) > 1

    @property
    def idle(self) -> bool:
        """True when pysnmp has no request in flight, counting requests whose caller was cancelled (pysnmp
        keeps retransmitting those until their own timeout x tries is over, then drops them)."""
        dispatcher = self._engine.transport_dispatcher
        community_idle = self._community is None or self._community.idle
        return community_idle and (dispatcher is None or not dispatcher.jobs_are_pending())

    @property
    def repaired_datagrams(self) -> int:
        """How many datagrams had negative unsigned integers rewritten (or, on the fast path, read as
        unsigned)."""
        return ((self._transport.repaired if self._transport is not None else 0)
                + (self._community.repaired if self._community is not None else 0))

    def close(self) -> None:
        dispatcher = self._engine.transport_dispatcher
        if dispatcher is not None:
            dispatcher.close_dispatcher()
        self._transport = None
        if self._community is not None:
            self._community.close()
            self._community = None


async def _resolve(host: str, port: int) -> tuple[str, int]:
    """The IPv4 address datagrams of ``host`` come from (like pysnmp's UdpTransportTarget)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=socket.AF_INET,
                                                             type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise SnmpAddressError(f"cannot use address {host}:{port}: {exc}") from None
    if not infos:
        raise SnmpAddressError(f"cannot use address {host}:{port}: no IPv4 address")
    address = infos[0][4]
    return str(address[0]), int(address[1])


_Response = tuple[Any, Any, Any, Any]


class SnmpTarget:
    """One device with its credentials. Not safe for concurrent use: one request in flight at a time."""

    def __init__(
        self,
        engine: Any,
        transport: Any,
        creds: Credentials,
        *,
        auth: Any = None,
        host: str | None = None,
        port: int | None = None,
        counter: Counter[tuple[str, int]] | None = None,
        max_repetitions: int = DEFAULT_MAX_REPETITIONS,
        max_walk_time: float | None = None,
        shared_user: Callable[[str], bool] | None = None,
        fast: CommunityTransport | None = None,
        address: tuple[str, int] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        self._engine = engine
        self._transport = transport
        self._creds = creds
        self._auth = auth if auth is not None else _auth_data(creds)
        self._context = hlapi.ContextData(contextName=creds.context) if creds.context else hlapi.ContextData()
        resolved: tuple[Any, Any] = (address or getattr(transport, "transport_address", None)
                                     or (host, port))
        self.host = host if host is not None else str(resolved[0])
        self.port = port if port is not None else int(resolved[1])
        self._address = (str(resolved[0]), int(resolved[1] or 0))  # datagrams arrive from this address
        self._received = counter if counter is not None else Counter()
        self._timeout = float(timeout if timeout is not None else getattr(transport, "timeout", None) or 0)
        self._tries = int(retries if retries is not None else getattr(transport, "retries", None) or 0) + 1
        # the fast path (v1/v2c without pysnmp): see agent/snmp_community.py
        self._fast = fast
        self._fast_version = VERSIONS.get(creds.version, 1)
        self._fast_community = creds.community.encode()
        self.max_repetitions = max(1, max_repetitions)
        self._reps_ceiling = self.max_repetitions  # lowered for good by tooBig
        self._good_bulks = 0
        self.max_walk_time = max_walk_time
        self.answered = False  # has this device ever sent us a usable response?
        self._shared_user = shared_user
        self.engine_id: bytes | None = None  # pinned SNMPv3 engine ID (only for a shared user name)

    # ---------------------------------------------------------------- requests and errors

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _timeout_error(self, datagrams: int) -> SnmpTimeout:
        creds = self._creds
        if creds.version == "3":
            causes = "device down, wrong address/port"
            if creds.priv_protocol:
                causes += (f", or wrong privacy password or protocol ({creds.priv_protocol}; net-snmp "
                           "and most devices drop a request they cannot decrypt without answering)")
        else:
            causes = ("device down, wrong address/port, or wrong community (SNMP v1/v2c devices do not "
                      "answer a wrong community)")
        message = (f"no answer from {self._where()} within {self._timeout:g} s x {self._tries} "
                   f"{'try' if self._tries == 1 else 'tries'}: {causes}")
        if datagrams:
            message += (f"; {datagrams} datagram(s) did arrive from the device but could not be decoded or "
                        "matched to the request (malformed reply; with SNMPv3 a Counter32 encoded as a "
                        "negative integer also makes the reply undecodable)")
        return SnmpTimeout(message)

    def _indication_error(self, indication: Any) -> SnmpError:
        creds = self._creds
        user = f"SNMPv3 user {creds.username!r}"
        where = self._where()
        if isinstance(indication, errind.UnknownUserName):
            return SnmpAuthError(f"{where} does not know {user} (unknownUserName): check the user name, "
                                 "and that the device has this user (net-snmp: createUser + rouser)")
        if isinstance(indication, errind.WrongDigest):
            return SnmpAuthError(f"{where} rejected the authentication of {user} (wrongDigest): wrong "
                                 f"authentication password or protocol (configured: {creds.auth_protocol})")
        if isinstance(indication, errind.DecryptionError):
            return SnmpAuthError(f"{where}: decryption failed for {user} (decryptionError): wrong privacy "
                                 f"password or protocol (configured: {creds.priv_protocol})")
        if isinstance(indication, errind.UnsupportedSecurityLevel):
            return SnmpAuthError(
                f"{where} does not support security level {creds.security_level()} for {user} "
                f"(unsupportedSecLevel): the user has no {'privacy' if creds.priv_protocol else 'auth'} "
                f"key on the device, or the device does not support privacy protocol {creds.priv_protocol}")
        if isinstance(indication, errind.UnsupportedPrivProtocol | errind.UnsupportedAuthProtocol |
                      errind.NoEncryption | errind.EncryptionError):
            return SnmpAuthError(f"unsupported priv protocol or auth protocol for {user} on this agent "
                                 f"({indication}): privacy needs the Python package 'cryptography'")
        if isinstance(indication, errind.NotInTimeWindow):
            return SnmpAuthError(f"{where}: {user} is not in the device's time window (notInTimeWindow): "
                                 "the device's engine boots/time went backwards; retry, or check for a "
                                 "duplicate SNMP engine ID")
        if isinstance(indication, errind.UnknownEngineID):
            return SnmpError(f"{where}: unknown SNMP engine ID during SNMPv3 discovery ({indication})")
        return SnmpError(f"{where}: {indication}")

    def _check(self, indication: Any, status: Any, index: Any, datagrams: int = 0,
               varbinds: Sequence[Any] = ()) -> None:
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                raise self._timeout_error(datagrams)
            if self.engine_id is not None:  # the device may have a new engine ID: discover it again
                self.engine_id = None
                self._auth = _auth_data(self._creds)
            raise self._indication_error(indication)
        if status and int(status) != 0:
            position = int(index)
            names = [tuple(v[0]) for v in varbinds]
            raise self._status_error(status.prettyPrint(), position, names)

    def _status_error(self, name: str, position: int, names: Sequence[OID]) -> SnmpError:
        """The error for a response whose error-status is not noError."""
        oid = ""
        if 0 < position <= len(names):
            oid = f" ({oid_text(names[position - 1])})"
        if name in ("authorizationError", "noAccess"):
            return SnmpAuthError(
                f"{self._where()} refused access ({name}) at varbind {position}{oid}: the community or "
                f"user may read nothing here (net-snmp: rouser/rocommunity and its view; for SNMPv3 the "
                f"user may need a higher security level than {self._creds.security_level()})")
        return SnmpError(f"{self._where()} reported {name} at varbind {position}{oid}")

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
        raise self._timeout_error(0)

    async def _pin_engine_id(self) -> None:
        """pysnmp keeps one USM entry per user name: when several devices share a user name with
        different keys, give this device's user its own entry, keyed by the device's engine ID."""
        if (self.engine_id is None and self._creds.version == "3" and self._shared_user is not None
                and self._shared_user(self._creds.username)):
            self.engine_id = await self._discover_engine_id()
            self._auth = _auth_data(self._creds, self.engine_id)
            log.debug("%s: SNMPv3 user %r pinned to engine ID %s", self._where(), self._creds.username,
                      self.engine_id.hex())

    async def _request(self, call: Awaitable[Any]) -> tuple[_Response, int]:
        """Run one pysnmp command; return its result and how many datagrams arrived meanwhile."""
        before = self._received[self._address]
        try:
            result: _Response = await call
        except PySnmpError as exc:
            raise SnmpError(f"{self._where()}: {exc}") from None
        datagrams = self._received[self._address] - before
        if not result[0]:
            self.answered = True
        return result, datagrams

    async def _fast_request(self, pdu: int, oids: Sequence[OID], max_repetitions: int = 0) -> Response:
        """One v1/v2c request on the fast path; raises :class:`SnmpTimeout`."""
        fast = self._fast
        assert fast is not None
        request_id = fast.request_id()
        try:
            datagram = encode_request(self._fast_version, self._fast_community, pdu, request_id, tuple(oids),
                                      0, max_repetitions)
        except ValueError as exc:  # an OID that BER cannot carry (one arc, 1.40.x): like pysnmp's error
            raise SnmpError(f"{self._where()}: {exc}") from None
        before = self._received[self._address]
        try:
            response = await fast.request(self._address, self._fast_community, request_id, datagram,
                                          self._timeout, self._tries, version=self._fast_version)
        except RequestTimeout:
            raise self._timeout_error(self._received[self._address] - before) from None
        self.answered = True
        return response

    def _fast_status_error(self, response: Response) -> SnmpError:
        return self._status_error(response.error_name, response.error_index,
                                  [oid for oid, _ in response.varbinds])

    # checks of a response against its request, shared by the pysnmp and the fast path

    def _check_get_names(self, asked: Sequence[OID], received: Sequence[OID]) -> None:
        """A GET response must carry exactly the OIDs asked, in the same positions."""
        if len(received) == len(asked) and all(a == r for a, r in zip(asked, received, strict=True)):
            return
        at = next((i for i, (a, r) in enumerate(zip(asked, received, strict=False)) if a != r),
                  min(len(asked), len(received)))
        wanted = oid_text(asked[at]) if at < len(asked) else "nothing"
        got = oid_text(received[at]) if at < len(received) else "nothing"
        count = ""
        if len(received) != len(asked):
            count = f" and {len(received)} varbind(s) for {len(asked)} OID(s) asked"
        raise SnmpWrongOid(
            f"{self._where()} answered a GET with the wrong object: asked {wanted}, received {got} at "
            f"varbind {at + 1}{count}; the device answered a different object than asked (buggy agent)")

    def _check_next_count(self, oid: OID, count: int, bulk: bool) -> None:
        """A GETNEXT for one OID must get exactly one varbind back, a GETBULK at least one."""
        if count == 1 or (bulk and count > 1):
            return
        request = "GETBULK" if bulk else "GETNEXT"
        expected = "at least one" if bulk else "exactly one"
        raise SnmpWrongOid(f"{self._where()} answered a {request} for {oid_text(oid)} with {count} "
                           f"varbinds instead of {expected} (buggy agent)")

    def _check_empty(self, indication: Any, oid: OID, bulk: bool) -> None:
        """pysnmp reports a GETNEXT/GETBULK response without varbinds as emptyResponse."""
        if isinstance(indication, errind.EmptyResponse):
            self._check_next_count(oid, 0, bulk)

    async def _fast_get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        wanted = list(oids)
        found: dict[OID, SnmpValue] = {}
        while wanted:
            response = await self._fast_request(GET, wanted)
            status, index = response.error_status, response.error_index
            if status == 2 and self._creds.version == "1" and 0 < index <= len(wanted):
                wanted.pop(index - 1)  # v1 noSuchName fails the whole request: drop and retry
                continue
            if status:
                raise self._fast_status_error(response)
            self._check_get_names(wanted, [oid for oid, _ in response.varbinds])
            found = dict(response.varbinds)
            break
        missing = SnmpValue("no_such_object", None)
        return [(o, found.get(o, missing)) for o in oids]

    async def _fast_next(self, oid: OID) -> list[tuple[OID, SnmpValue]]:
        if self._creds.version == "1":
            response = await self._fast_request(GET_NEXT, (oid,))
            if response.error_status == 2:  # noSuchName: end of the MIB view
                return []
            if response.error_status:
                raise self._fast_status_error(response)
            self._check_next_count(oid, len(response.varbinds), bulk=False)
            return response.varbinds
        retried_timeout = False
        while True:
            reps = self.max_repetitions
            try:
                response = await self._fast_request(GET_BULK, (oid,), reps)
            except SnmpTimeout:
                if reps > 1 and self.answered and not retried_timeout:
                    retried_timeout = True
                    self._silent_drop(reps)
                    continue
                raise
            if response.error_status == 1 and reps > 1:  # tooBig
                self._too_big(reps)
                continue
            if response.error_status:
                raise self._fast_status_error(response)
            self._check_next_count(oid, len(response.varbinds), bulk=True)
            self._good_bulk()
            return response.varbinds

    # ---------------------------------------------------------------- GET

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        """GET the given OIDs. Missing objects come back as ``no_such_*`` values, also on SNMPv1.

        Raises :class:`SnmpWrongOid` when the response does not carry exactly the OIDs asked, in order.
        """
        if self._fast is not None:
            return await self._fast_get(oids)
        await self._pin_engine_id()
        wanted = list(oids)
        while wanted:
            request = [hlapi.ObjectType(hlapi.ObjectIdentity(oid_text(o))) for o in wanted]
            (ind, status, index, varbinds), datagrams = await self._request(hlapi.get_cmd(
                self._engine, self._auth, self._transport, self._context, *request, lookupMib=False))
            if (not ind and status and int(status) == 2 and self._creds.version == "1"
                    and 0 < int(index) <= len(wanted)):
                wanted.pop(int(index) - 1)  # v1 noSuchName fails the whole request: drop and retry
                continue
            self._check(ind, status, index, datagrams, varbinds)
            pairs = [(tuple(name), convert(value)) for name, value in varbinds]
            self._check_get_names(wanted, [name for name, _ in pairs])
            found = dict(pairs)
            return [(o, found.get(o, SnmpValue("no_such_object", None))) for o in oids]
        return [(o, SnmpValue("no_such_object", None)) for o in oids]

    # ---------------------------------------------------------------- walk

    async def _next_v1(self, oid: OID, request: Any) -> list[tuple[OID, SnmpValue]]:
        (ind, status, index, varbinds), datagrams = await self._request(hlapi.next_cmd(
            self._engine, self._auth, self._transport, self._context, request, lookupMib=False))
        if not ind and status and int(status) == 2:  # noSuchName: end of the MIB view
            return []
        self._check_empty(ind, oid, bulk=False)
        self._check(ind, status, index, datagrams, varbinds)
        self._check_next_count(oid, len(varbinds), bulk=False)
        return [(tuple(name), convert(value)) for name, value in varbinds]

    async def _next_bulk(self, oid: OID, request: Any) -> list[tuple[OID, SnmpValue]]:
        retried_timeout = False
        while True:
            reps = self.max_repetitions
            (ind, status, index, varbinds), datagrams = await self._request(hlapi.bulk_cmd(
                self._engine, self._auth, self._transport, self._context, 0, reps, request,
                lookupMib=False))
            if not ind and status and int(status) == 1 and reps > 1:  # tooBig: the device says so
                self._too_big(reps)
                continue
            if (isinstance(ind, errind.RequestTimedOut) and reps > 1 and self.answered
                    and not retried_timeout):
                retried_timeout = True
                self._silent_drop(reps)
                continue
            self._check_empty(ind, oid, bulk=True)
            self._check(ind, status, index, datagrams, varbinds)
            self._check_next_count(oid, len(varbinds), bulk=True)
            self._good_bulk()
            return [(tuple(name), convert(value)) for name, value in varbinds]

    # max-repetitions adaptation, shared by the pysnmp and the fast path

    def _too_big(self, reps: int) -> None:
        self.max_repetitions = self._reps_ceiling = max(1, reps // 2)
        self._good_bulks = 0
        log.debug("%s: tooBig, max-repetitions now %d", self._where(), self.max_repetitions)

    def _silent_drop(self, reps: int) -> None:
        """A device that answered before may drop responses too large for it: retry once with one
        repetition, then grow back slowly, never again to the size that got no answer."""
        self.max_repetitions = 1
        self._reps_ceiling = max(1, min(self._reps_ceiling, reps // 2))
        self._good_bulks = 0
        log.debug("%s: bulk timeout, max-repetitions now %d", self._where(), self.max_repetitions)

    def _good_bulk(self) -> None:
        self._good_bulks += 1
        if self._good_bulks >= _GROW_AFTER and self.max_repetitions < self._reps_ceiling:
            self.max_repetitions = min(self._reps_ceiling, self.max_repetitions * 2)
            self._good_bulks = 0

    async def _next_rows(self, oid: OID) -> list[tuple[OID, SnmpValue]]:
        """The rows after ``oid`` (one GETNEXT or GETBULK); empty only at SNMPv1's noSuchName."""
        if self._fast is not None:
            return await self._fast_next(oid)
        await self._pin_engine_id()
        request = hlapi.ObjectType(hlapi.ObjectIdentity(oid_text(oid)))
        if self._creds.version == "1":
            return await self._next_v1(oid, request)
        return await self._next_bulk(oid, request)

    async def walk(
        self, root: OID, *, max_rows: int = 100_000, max_time: float | None = None
    ) -> list[tuple[OID, SnmpValue]]:
        """All (oid, value) pairs strictly inside the subtree ``root``, in order.

        Ends at the first OID outside the subtree, at ``endOfMibView``, at v1 ``noSuchName``, at an
        SNMPv1 agent repeating its last row (an OID equal to the previous one after at least one row), and
        at a ``noSuch*`` value that repeats the requested OID. Raises :class:`SnmpNotIncreasing` for any
        other OID not greater than the one before it (the requested OID echoed back, an OID repeated or
        lower, also within one GETBULK response), :class:`SnmpWrongOid` for a response without the one
        varbind a GETNEXT asks for (or any, to a GETBULK), :class:`SnmpTooManyRows` for more than
        ``max_rows`` rows, and :class:`SnmpWalkTooLong` when the walk takes longer than ``max_time``
        seconds (default: the target's ``max_walk_time``; None: no cap of its own, the caller's deadline
        applies).
        """
        limit = max_time if max_time is not None else self.max_walk_time
        rows: list[tuple[OID, SnmpValue]] = []
        if limit is None:
            await self._walk_into(root, max_rows, rows)
            return rows
        try:
            async with asyncio.timeout(limit):
                await self._walk_into(root, max_rows, rows)
        except TimeoutError:
            raise SnmpWalkTooLong(f"walk of {oid_text(root)} on {self._where()} took longer than {limit:g} s "
                                  f"({len(rows)} rows so far); walk abandoned") from None
        return rows

    async def _walk_into(self, root: OID, max_rows: int, rows: list[tuple[OID, SnmpValue]]) -> None:
        cursor = root
        depth = len(root)
        v1 = self._creds.version == "1"
        while True:
            batch = await self._next_rows(cursor)
            if not batch:
                return  # SNMPv1 noSuchName: the end of the MIB view
            asked = cursor
            for oid, value in batch:
                if value.kind == "end_of_mib_view":  # carries the requested OID, not a greater one
                    return
                if oid <= cursor:
                    if oid == cursor and ((v1 and rows) or value.kind in _ABSENT):
                        log.debug("%s repeated %s while walking %s: taken as the end", self._where(),
                                  oid_text(oid), oid_text(root))
                        return
                    raise self._not_increasing(root, asked, cursor, oid)
                if oid[:depth] != root:
                    return  # past the subtree: the rest of a GETBULK response is not ours to judge
                if len(rows) >= max_rows:
                    raise SnmpTooManyRows(f"more than {max_rows} rows under {oid_text(root)} on "
                                          f"{self._where()}; walk abandoned")
                rows.append((oid, value))
                cursor = oid

    def _not_increasing(self, root: OID, asked: OID, previous: OID, oid: OID) -> SnmpNotIncreasing:
        if previous == asked:
            where = f"in answer to a request for the OID after {oid_text(asked)}"
        else:
            where = f"after {oid_text(previous)} in the same GETBULK response"
        what = "the same OID again: the agent loops" if oid == previous else "it went backwards"
        return SnmpNotIncreasing(
            f"OID not increasing: {self._where()} returned OID {oid_text(oid)} {where} while walking "
            f"{oid_text(root)} ({what}): OIDs must increase (buggy agent); walk abandoned")

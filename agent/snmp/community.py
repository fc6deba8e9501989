"""SNMP v1/v2c on our own UDP socket: the agent's fast path (no pysnmp in the hot loop).

:class:`CommunitySession` is the :class:`agent.snmp.session.Session` of one v1/v2c device over the
shared :class:`CommunityTransport`.

One :class:`CommunityTransport` (one socket) serves every v1/v2c device of the process. A request is
sent, retransmitted with the same request-id after each timeout (like net-snmp, so a late answer to an
earlier try still counts), and completed by the first well-formed Response-PDU from the device's address
with that request-id, community and SNMP version (pysnmp's message processing drops a v1 answer to a v2c
request and the reverse; so do we). Everything else is dropped: malformed datagrams (another PDU type
included) and answers that match nothing are counted per sender, so a timeout can say that the device
did answer but with something unusable. Whether the answer's varbinds fit the request is checked by
:class:`agent.snmp.target.SnmpTarget`. Encoding and decoding are in :mod:`agent.snmp.ber` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from agent.snmp.ber import (
    GET,
    GET_BULK,
    GET_NEXT,
    VERSIONS,
    BerError,
    Response,
    decode_response,
    encode_request,
)
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpAddressError, SnmpError, timeout_error
from agent.snmp.values import OID

log = logging.getLogger("hatang.agent.snmp")

Address = tuple[str, int]


class RequestTimeout(Exception):
    """No usable response within timeout x tries."""


class CommunityTransport(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, tuple[Address, bytes, int | None, asyncio.Future[Response]]] = {}
        self._next_id = int.from_bytes(os.urandom(3), "big")
        self.received: Counter[Address] = Counter()  # datagrams per sender
        self.malformed = 0
        self.repaired = 0  # responses with a negative unsigned integer read as unsigned
        self.receive_buffer: int | None = None

    # ---------------------------------------------------------------- socket

    async def open(self, receive_buffer: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            except OSError as exc:  # pragma: no cover - platform without the option
                log.debug("cannot set SO_RCVBUF: %s", exc)
            self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender: Address = (str(addr[0]), int(addr[1]))
        self.received[sender] += 1
        try:
            response = decode_response(data)
        except BerError as exc:
            self.malformed += 1
            log.debug("dropped malformed datagram from %s:%s: %s", sender[0], sender[1], exc)
            return
        entry = self._pending.get(response.request_id)
        if entry is None:
            return  # a late or duplicate answer
        address, community, version, future = entry
        if (address != sender or community != response.community
                or (version is not None and version != response.version) or future.done()):
            return
        if response.repaired:
            self.repaired += 1
        future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        log.debug("SNMP socket error: %s", exc)  # ICMP port unreachable etc.: the request times out

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for _, _, _, future in self._pending.values():
            if not future.done():  # not cancel(): a CancelledError in a caller nobody cancelled
                future.set_exception(RequestTimeout("socket closed"))
        self._pending.clear()

    @property
    def idle(self) -> bool:
        return not self._pending

    # ---------------------------------------------------------------- requests

    def request_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        return self._next_id

    async def request(self, address: Address, community: bytes, request_id: int, datagram: bytes,
                      timeout: float, tries: int, *, version: int | None = None) -> Response:
        """Send ``datagram`` (which carries ``request_id``) up to ``tries`` times; the response or
        :class:`RequestTimeout`. ``version`` (0 = v1, 1 = v2c; None: any) is the SNMP version an answer
        must have. Cancelling the caller withdraws the request at once."""
        if self._transport is None:
            raise RequestTimeout("socket closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self._pending[request_id] = (address, community, version, future)
        try:
            for _ in range(max(1, tries)):
                transport = self._transport
                if transport is None:  # closed while we waited
                    raise RequestTimeout("socket closed")
                try:
                    transport.sendto(datagram, address)
                except OSError as exc:
                    log.debug("cannot send to %s:%s: %s", address[0], address[1], exc)
                try:
                    # not asyncio.wait_for: on 3.11 it swallows the caller's cancellation when the
                    # answer arrives in the same loop iteration, and a fast device always does that
                    async with asyncio.timeout(timeout):
                        return await asyncio.shield(future)
                except TimeoutError:
                    continue
            raise RequestTimeout(f"no answer from {address[0]}:{address[1]}")
        finally:
            self._pending.pop(request_id, None)
            if not future.done():
                future.cancel()


async def resolve(host: str, port: int) -> Address:
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


class CommunitySession:
    """One v1/v2c device on the shared :class:`CommunityTransport` (a :class:`agent.snmp.session.Session`)."""

    def __init__(self, transport: CommunityTransport, creds: Credentials, host: str, port: int,
                 address: Address, *, timeout: float, retries: int) -> None:
        self.creds = creds
        self.host = host
        self.port = port
        self._transport = transport
        self._address = address
        self._version = VERSIONS[creds.version]
        self._community = creds.community.encode()
        self._timeout = timeout
        self._tries = retries + 1

    async def get(self, oids: Sequence[OID]) -> Response:
        return await self._request(GET, oids, 0)

    async def get_next(self, oid: OID) -> Response:
        return await self._request(GET_NEXT, (oid,), 0)

    async def get_bulk(self, oid: OID, max_repetitions: int) -> Response:
        return await self._request(GET_BULK, (oid,), max_repetitions)

    async def _request(self, pdu: int, oids: Sequence[OID], max_repetitions: int) -> Response:
        transport = self._transport
        request_id = transport.request_id()
        try:
            datagram = encode_request(self._version, self._community, pdu, request_id, tuple(oids), 0,
                                      max_repetitions)
        except ValueError as exc:  # an OID that BER cannot carry (one arc, 1.40.x): like pysnmp's error
            raise SnmpError(f"{self.host}:{self.port}: {exc}") from None
        received = transport.received
        before = received[self._address]
        try:
            return await transport.request(self._address, self._community, request_id, datagram,
                                           self._timeout, self._tries, version=self._version)
        except RequestTimeout:
            raise timeout_error(f"{self.host}:{self.port}", self.creds, self._timeout, self._tries,
                                received[self._address] - before) from None

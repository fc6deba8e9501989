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
import socket
from collections.abc import Sequence
from typing import Any

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
from agent.snmp.udp_requests import Address, RequestTimeout, UdpRequests
from agent.snmp.values import OID

log = logging.getLogger("hatang.agent.snmp")


class CommunityTransport(UdpRequests[Response, Response]):
    """The one socket of every v1/v2c device (agent/snmp/udp_requests.py): an answer is a Response-PDU
    with the request's request-id, community and SNMP version."""

    def __init__(self) -> None:
        super().__init__()
        self.repaired = 0  # responses with a negative unsigned integer read as unsigned

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender = self.sender(addr)
        try:
            response = decode_response(data)
        except BerError as exc:
            self.dropped_malformed(sender, exc)
            return
        self.deliver(response.request_id, sender, response)

    def request_id(self) -> int:
        return self.next_id()

    async def request(self, address: Address, community: bytes, request_id: int, datagram: bytes,
                      timeout: float, tries: int, *, version: int | None = None) -> Response:
        """Send ``datagram`` (which carries ``request_id``) up to ``tries`` times; the response or
        :class:`RequestTimeout`. ``version`` (0 = v1, 1 = v2c; None: any) is the SNMP version an answer
        must have. Cancelling the caller withdraws the request at once."""

        def accept(response: Response) -> Response | None:
            if response.community != community or (version is not None and version != response.version):
                return None
            if response.repaired:
                self.repaired += 1
            return response

        return await self.send_request(address, request_id, datagram, accept, timeout, tries)


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

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Response:
        return await self._request(GET_BULK, oids, max_repetitions)

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

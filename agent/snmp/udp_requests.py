"""One UDP socket for many SNMP requests in flight: ids, retransmission, cancellation. The base of the
v1/v2c transport (:class:`agent.snmp.community.CommunityTransport`) and the SNMPv3 one
(:class:`agent.snmp.v3_session.V3Transport`), which differ only in how a datagram is decoded and what
makes it the answer to a request.

A request is sent, retransmitted with the same id (and the same bytes) after each timeout, like net-snmp,
so that a late answer to an earlier try still counts; it completes with the first datagram from the
request's address, carrying its id, that the request's ``accept`` takes. Everything else is dropped:
malformed datagrams and answers that match nothing are counted per sender, so a timeout can say that
the device did answer, but with something unusable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

log = logging.getLogger("hatang.agent.snmp")

Address = tuple[str, int]
D = TypeVar("D")  # a decoded datagram
A = TypeVar("A")  # what a request returns


class RequestTimeout(Exception):
    """No usable response within timeout x tries."""


class UdpRequests(asyncio.DatagramProtocol, Generic[D, A]):
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, tuple[Address, Callable[[D], A | None], asyncio.Future[A]]] = {}
        self._next_id = int.from_bytes(os.urandom(3), "big")
        self.received: Counter[Address] = Counter()  # datagrams per sender
        self.malformed = 0
        self.unusable = 0  # well-formed datagrams with a pending id that the request did not accept
        self.receive_buffer: int | None = None

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
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        log.debug("SNMP socket error: %s", exc)  # ICMP port unreachable etc.: the request times out

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for _, _, future in self._pending.values():
            if not future.done():  # not cancel(): a CancelledError in a caller nobody cancelled
                future.set_exception(RequestTimeout("socket closed"))
        self._pending.clear()

    @property
    def idle(self) -> bool:
        return not self._pending

    def next_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        return self._next_id

    def sender(self, addr: Any) -> Address:
        """Count a datagram from ``addr`` and name its sender."""
        sender: Address = (str(addr[0]), int(addr[1]))
        self.received[sender] += 1
        return sender

    def dropped_malformed(self, sender: Address, error: Exception) -> None:
        self.malformed += 1
        log.debug("dropped malformed datagram from %s:%s: %s", sender[0], sender[1], error)

    def deliver(self, request_id: int, sender: Address, decoded: D) -> None:
        """A decoded datagram carrying ``request_id`` came from ``sender``: the answer of that request
        if it is pending, from its address, and accepted."""
        entry = self._pending.get(request_id)
        if entry is None:
            return  # a late or duplicate answer
        address, accept, future = entry
        if address != sender or future.done():
            return
        answer = accept(decoded)
        if answer is None:
            self.unusable += 1
            return
        future.set_result(answer)

    async def send_request(self, address: Address, request_id: int, datagram: bytes,
                           accept: Callable[[D], A | None], timeout: float, tries: int) -> A:
        """Send ``datagram`` (which carries ``request_id``) up to ``tries`` times; the first answer that
        ``accept`` takes, or :class:`RequestTimeout`. Cancelling the caller withdraws the request."""
        if self._transport is None:
            raise RequestTimeout("socket closed")
        future: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (address, accept, future)
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


__all__ = ["Address", "RequestTimeout", "UdpRequests"]

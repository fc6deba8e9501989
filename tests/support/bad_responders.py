"""Misbehaving SNMP v1/v2c responders for tests: asyncio UDP servers on 127.0.0.1 built on hatang.sim.ber.

:func:`serve` binds a free loopback port and answers every datagram with a *handler*: a function from the
decoded request (:class:`hatang.sim.ber.Message`) to the bytes to send back, or None for silence.
Datagrams that do not decode (SNMPv3, junk) are counted and get no answer. Every request is recorded.

Handlers:

* :class:`TableDevice` a well-behaved device over a table of rows (GET, GETNEXT, GETBULK), with switches
  for the misbehaviour: tooBig above a max-repetitions threshold, silently dropping large responses,
  repeating the last row at the end of the MIB (a v1 quirk), looping OIDs after some rows (the same
  OID again, or one row back: last arc minus one; ``loop_after=0, loop_mode="same"`` echoes the requested
  OID from the first request on), holding requests to answer them later (cancellation tests), answers
  with the wrong SNMP version, PDU type or request-id, and a ``rewrite`` of every answer's varbinds:
  :func:`get_other_oid`, :func:`get_reordered`, :func:`get_extra`, :func:`get_missing` (GET answered with
  other objects), :func:`bulk_swapped`, :func:`bulk_repeated` (OIDs that go backwards or repeat inside
  one GETBULK response), :func:`no_varbinds` (GETNEXT/GETBULK answered with none).
* :func:`silent` never answers; :func:`garbage` answers junk bytes.
* :class:`Column` a virtual table of N rows under one column (50,000 rows cost no memory).

Rows are ``(OID, hatang.sim.ber.Value)``; build buggy values directly, e.g. ``Value(COUNTER32, -5)`` for a
device that sends a large Counter32 as a negative integer (the ber helpers would refuse it).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self, cast

from hatang.sim import ber
from hatang.sim.ber import OID, Message, Value, VarBind

TOO_BIG, NO_SUCH_NAME = 1, 2
LOOPBACK = "127.0.0.1"

Handler = Callable[[Message], bytes | None]
Rewrite = Callable[[Message, list[VarBind]], list[VarBind]]  # (request, answer varbinds) -> varbinds sent


def reply(request: Message, varbinds: Sequence[VarBind], status: int = 0, index: int = 0, *,
          version: int | None = None, pdu: int = ber.RESPONSE, request_id_offset: int = 0) -> bytes:
    """The encoded Response to ``request`` (same version, community and request-id unless told)."""
    return ber.encode_message_parts(
        request.version if version is None else version, request.community, pdu,
        (request.pdu.request_id + request_id_offset) & 0x7FFFFFFF, status, index,
        [ber.encode_varbind(o, v) for o, v in varbinds],
    )


def _only(tag: int, change: Callable[[list[VarBind]], list[VarBind]]) -> Rewrite:
    return lambda request, varbinds: change(varbinds) if request.pdu.tag == tag else varbinds


def get_other_oid(position: int = 0, other: OID | None = None) -> Rewrite:
    """GET answered with another object at ``position`` (default: the asked OID with its last arc + 1)."""

    def change(varbinds: list[VarBind]) -> list[VarBind]:
        out = list(varbinds)
        oid, value = out[position]
        out[position] = (other if other is not None else (*oid[:-1], oid[-1] + 1), value)
        return out

    return _only(ber.GET_REQUEST, change)


def get_reordered() -> Rewrite:
    """GET answered with the right objects in reverse order."""
    return _only(ber.GET_REQUEST, lambda varbinds: varbinds[::-1])


def get_extra() -> Rewrite:
    """GET answered with one varbind more than asked (the next OID after the last one)."""
    return _only(ber.GET_REQUEST,
                 lambda vbs: [*vbs, ((*vbs[-1][0][:-1], vbs[-1][0][-1] + 1), ber.integer(0))])


def get_missing() -> Rewrite:
    """GET answered without its last varbind."""
    return _only(ber.GET_REQUEST, lambda varbinds: varbinds[:-1])


def bulk_swapped(position: int = 1) -> Rewrite:
    """GETBULK answered with varbinds ``position - 1`` and ``position`` swapped: the OIDs go backwards
    inside the response."""

    def change(varbinds: list[VarBind]) -> list[VarBind]:
        out = list(varbinds)
        if len(out) > position:
            out[position - 1], out[position] = out[position], out[position - 1]
        return out

    return _only(ber.GET_BULK_REQUEST, change)


def bulk_repeated(position: int = 1) -> Rewrite:
    """GETBULK answered with varbind ``position`` carrying the OID of the one before it."""

    def change(varbinds: list[VarBind]) -> list[VarBind]:
        out = list(varbinds)
        if len(out) > position:
            out[position] = (out[position - 1][0], out[position][1])
        return out

    return _only(ber.GET_BULK_REQUEST, change)


def no_varbinds() -> Rewrite:
    """GETNEXT and GETBULK answered with noError and no varbinds at all."""
    return lambda request, varbinds: [] if request.pdu.tag != ber.GET_REQUEST else varbinds


class Rows(Protocol):
    """An ordered set of rows: exact lookup and the first row after an OID."""

    def get(self, oid: OID) -> Value | None: ...

    def next_after(self, oid: OID) -> tuple[OID, Value] | None: ...


class Table:
    """Rows held in a sorted list."""

    def __init__(self, rows: Iterable[tuple[OID, Value]]) -> None:
        self._rows = sorted(rows)
        self._oids = [o for o, _ in self._rows]
        self._values = dict(self._rows)

    def get(self, oid: OID) -> Value | None:
        return self._values.get(oid)

    def next_after(self, oid: OID) -> tuple[OID, Value] | None:
        i = bisect.bisect_right(self._oids, oid)
        return self._rows[i] if i < len(self._rows) else None

    @property
    def last(self) -> tuple[OID, Value]:
        return self._rows[-1]


@dataclass(frozen=True)
class Column:
    """A virtual column ``root.1 .. root.n`` with Integer values equal to the index."""

    root: OID
    n: int

    def get(self, oid: OID) -> Value | None:
        if len(oid) == len(self.root) + 1 and oid[:-1] == self.root and 1 <= oid[-1] <= self.n:
            return ber.integer(oid[-1])
        return None

    def next_after(self, oid: OID) -> tuple[OID, Value] | None:
        depth = len(self.root)
        if oid < self.root:
            index = 1
        elif oid[:depth] == self.root:
            index = oid[depth] + 1 if len(oid) > depth else 1
        else:
            return None
        return ((*self.root, index), ber.integer(index)) if index <= self.n else None


@dataclass
class TableDevice:
    """A device answering from ``rows``, plus optional misbehaviour (see the module doc)."""

    rows: Rows
    too_big_above: int | None = None  # GETBULK asking for more repetitions gets tooBig
    drop_above: int | None = None  # GETBULK asking for more repetitions gets no answer at all
    repeat_last: bool = False  # past the end: answer the last row again (instead of endOfMibView)
    loop_after: int | None = None  # after this many rows answered by GETNEXT/GETBULK ...
    loop_mode: Literal["same", "lower"] = "same"  # ... repeat the requested OID, or go one row back
    max_varbinds: int = 1000
    hold_after: int | None = None  # after this many requests, keep new ones in `held`; release() answers
    rewrite: Rewrite | None = None  # applied to the varbinds of every answer without an error-status
    answer_version: int | None = None  # answer with this SNMP version (None: the request's)
    answer_pdu: int = ber.RESPONSE  # answer with this PDU type
    request_id_offset: int = 0  # answer with the request-id plus this
    bulk_repetitions: list[int] = field(default_factory=list)  # max-repetitions of each GETBULK seen
    too_big_sent: int = 0
    dropped: int = 0
    rows_sent: int = 0
    held: list[tuple[Message, Callable[[bytes], None]]] = field(default_factory=list)

    def __call__(self, request: Message) -> bytes | None:
        pdu = request.pdu
        v1 = request.version == ber.VERSION_1
        if pdu.tag == ber.GET_REQUEST:
            return self._get(request, v1)
        if pdu.tag == ber.GET_NEXT_REQUEST:
            out: list[VarBind] = []
            for i, (o, _) in enumerate(pdu.varbinds):
                entry = self._next(o)
                if entry is None:
                    if v1:
                        return self._reply(request, pdu.varbinds, NO_SUCH_NAME, i + 1)
                    entry = (o, ber.END_OF_MIB_VIEW_VALUE)
                out.append(entry)
            return self._reply(request, out)
        if pdu.tag == ber.GET_BULK_REQUEST and not v1:
            return self._bulk(request)
        return None

    def _reply(self, request: Message, varbinds: Sequence[VarBind], status: int = 0, index: int = 0) -> bytes:
        if self.rewrite is not None and not status:
            varbinds = self.rewrite(request, list(varbinds))
        return reply(request, varbinds, status, index, version=self.answer_version, pdu=self.answer_pdu,
                     request_id_offset=self.request_id_offset)

    def _get(self, request: Message, v1: bool) -> bytes:
        out: list[VarBind] = []
        for i, (o, _) in enumerate(request.pdu.varbinds):
            value = self.rows.get(o)
            if value is None:
                if v1:
                    return self._reply(request, request.pdu.varbinds, NO_SUCH_NAME, i + 1)
                value = ber.NO_SUCH_OBJECT_VALUE
            out.append((o, value))
        return self._reply(request, out)

    def _next(self, o: OID) -> tuple[OID, Value] | None:
        if self.loop_after is not None and self.rows_sent >= self.loop_after:
            if self.loop_mode == "same":
                value = self.rows.get(o)
                return (o, value if value is not None else ber.integer(0))
            if o[-1] > 0:  # one row back in the same column
                return ((*o[:-1], o[-1] - 1), ber.integer(0))
            return self.rows.next_after((0, 0))
        entry = self.rows.next_after(o)
        if entry is None and self.repeat_last:
            value = self.rows.get(o)
            return (o, value) if value is not None else None
        if entry is not None:
            self.rows_sent += 1
        return entry

    def _bulk(self, request: Message) -> bytes | None:
        pdu = request.pdu
        reps = pdu.max_repetitions
        self.bulk_repetitions.append(reps)
        if self.too_big_above is not None and reps > self.too_big_above:
            self.too_big_sent += 1
            return self._reply(request, [], TOO_BIG, 0)
        if self.drop_above is not None and reps > self.drop_above:
            self.dropped += 1
            return None
        cursors = [o for o, _ in pdu.varbinds[pdu.non_repeaters:]]
        out: list[VarBind] = []
        for _ in range(min(reps, self.max_varbinds)):
            for j, o in enumerate(cursors):
                entry = self._next(o) or (o, ber.END_OF_MIB_VIEW_VALUE)
                out.append(entry)
                cursors[j] = entry[0]
            if all(v.tag == ber.END_OF_MIB_VIEW for _, v in out[-len(cursors):]):
                break
        return self._reply(request, out)


def silent() -> Handler:
    """Never answers (a dead device, or a wrong community)."""
    return lambda request: None


def garbage(payload: bytes = b"\x30\x82\xff\xff\x02\x01\x01 this is not BER \x00\xff") -> Handler:
    """Answers every request with junk bytes."""
    return lambda request: payload


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: BadResponder) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.datagrams += 1
        try:
            request = ber.decode_message(data)
        except ber.BerError:
            self.owner.undecodable += 1
            return
        self.owner.requests.append(request)

        def send(answer: bytes) -> None:
            if self.owner.transport is not None and not self.owner.transport.is_closing():
                self.owner.transport.sendto(answer, addr)

        handler = self.owner.handler
        if (isinstance(handler, TableDevice) and handler.hold_after is not None
                and len(self.owner.requests) > handler.hold_after):
            handler.held.append((request, send))
            return
        answer = handler(request)
        if answer is not None:
            send(answer)


class BadResponder:
    """A running responder: ``host``/``port``, the requests it decoded, counters; close() stops it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.host = LOOPBACK
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.requests: list[Message] = []
        self.datagrams = 0
        self.undecodable = 0

    def release(self) -> int:
        """Stop holding; answer (late) every request a :class:`TableDevice` kept; return how many."""
        device = self.handler
        assert isinstance(device, TableDevice)
        device.hold_after = None
        held, device.held = device.held, []
        for request, send in held:
            answer = device(request)
            if answer is not None:
                send(answer)
        return len(held)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()


async def serve(handler: Handler) -> BadResponder:
    """Start a responder on a free UDP port of 127.0.0.1 (use as ``async with await serve(h) as r``)."""
    responder = BadResponder(handler)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(responder), local_addr=(LOOPBACK, 0))
    responder.port = int(transport.get_extra_info("sockname")[1])
    return responder

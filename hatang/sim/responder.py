"""Asyncio UDP SNMP v1/v2c responder serving simulated devices, one UDP socket per device.

Answers GET, GETNEXT and GETBULK (v2c only) like net-snmp does: v2c returns noSuchObject/noSuchInstance/
endOfMibView values, v1 fails the request with noSuchName and hides Counter64 objects (RFC 2576). A wrong
community gets no answer; malformed datagrams are counted and dropped. Responses stay below the UDP
datagram limit: GETBULK is truncated, an oversized GET/GETNEXT gets tooBig.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self, cast

from hatang.sim.ber import (
    COUNTER64,
    END_OF_MIB_VIEW_VALUE,
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    NO_SUCH_INSTANCE_VALUE,
    NO_SUCH_OBJECT_VALUE,
    RESPONSE,
    SET_REQUEST,
    VERSION_1,
    BerError,
    Message,
    VarBind,
    decode_message,
    encode_message_parts,
    encode_varbind,
)
from hatang.sim.device import SimulatedDevice

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65507
DEFAULT_MAX_VARBINDS = 1000
TOO_BIG, NO_SUCH_NAME, NOT_WRITABLE = 1, 2, 17
_HEADER_ALLOWANCE = 48  # message, PDU and varbind-list headers plus the three PDU integers


@dataclass
class ResponderStats:
    requests: int = 0  # well-formed, right community
    responses: int = 0
    bad_community: int = 0
    malformed: int = 0
    unsupported: int = 0  # PDUs we do not answer (GETBULK in v1, Response, Trap, ...)
    errors: int = 0  # internal errors while answering (a bug; logged)


class Endpoint(NamedTuple):
    name: str
    host: str
    port: int


_Result = tuple[int, int, list[bytes]]  # error-status, error-index, encoded varbinds


def _echo(varbinds: Sequence[VarBind]) -> list[bytes]:
    return [encode_varbind(o, v) for o, v in varbinds]


def _get(device: SimulatedDevice, vbs: Sequence[VarBind], t: float, v1: bool) -> _Result:
    out: list[bytes] = []
    for i, (o, _) in enumerate(vbs):
        v = device.get(o, t)
        if v is None or (v1 and v.tag == COUNTER64):
            if v1:
                return NO_SUCH_NAME, i + 1, _echo(vbs)
            v = NO_SUCH_INSTANCE_VALUE if len(o) > 1 and device.has_prefix(o[:-1]) else NO_SUCH_OBJECT_VALUE
        out.append(encode_varbind(o, v))
    return 0, 0, out


def _get_next(device: SimulatedDevice, vbs: Sequence[VarBind], t: float, v1: bool) -> _Result:
    out: list[bytes] = []
    for i, (o, _) in enumerate(vbs):
        pos = device.index_after(o)
        entry = device.entry(pos, t)
        while v1 and entry is not None and entry[1].tag == COUNTER64:
            pos += 1
            entry = device.entry(pos, t)
        if entry is None:
            if v1:
                return NO_SUCH_NAME, i + 1, _echo(vbs)
            out.append(encode_varbind(o, END_OF_MIB_VIEW_VALUE))
        else:
            out.append(encode_varbind(*entry))
    return 0, 0, out


def _get_bulk(device: SimulatedDevice, request: Message, t: float, max_varbinds: int, budget: int) -> _Result:
    pdu = request.pdu
    vbs = pdu.varbinds
    n = min(max(pdu.non_repeaters, 0), len(vbs))
    _, _, out = _get_next(device, vbs[:n], t, False)
    size = sum(map(len, out))
    if size > budget:
        return TOO_BIG, 0, []
    names = [o for o, _ in vbs[n:]]
    positions = [device.index_after(o) for o in names]
    for _ in range(min(max(pdu.max_repetitions, 0), max_varbinds)):
        all_ended = True
        for j, pos in enumerate(positions):
            entry = device.entry(pos, t)
            if entry is None:
                enc = encode_varbind(names[j], END_OF_MIB_VIEW_VALUE)
            else:
                all_ended = False
                positions[j] = pos + 1
                names[j] = entry[0]
                enc = encode_varbind(*entry)
            if len(out) >= max_varbinds or size + len(enc) > budget:
                return 0, 0, out
            out.append(enc)
            size += len(enc)
        if all_ended:
            break
    return 0, 0, out


def answer(device: SimulatedDevice, request: Message, *, max_varbinds: int = DEFAULT_MAX_VARBINDS,
           max_size: int = MAX_DATAGRAM) -> bytes | None:
    """The encoded response to a decoded request (community already checked), or None: no answer."""
    pdu = request.pdu
    v1 = request.version == VERSION_1
    t = device.now()
    budget = max_size - _HEADER_ALLOWANCE - len(request.community)
    if pdu.tag == GET_REQUEST:
        status, index, out = _get(device, pdu.varbinds, t, v1)
    elif pdu.tag == GET_NEXT_REQUEST:
        status, index, out = _get_next(device, pdu.varbinds, t, v1)
    elif pdu.tag == GET_BULK_REQUEST and not v1:
        status, index, out = _get_bulk(device, request, t, max_varbinds, budget)
    elif pdu.tag == SET_REQUEST:
        status, index, out = (NO_SUCH_NAME if v1 else NOT_WRITABLE), 1, _echo(pdu.varbinds)
    else:
        return None
    if sum(map(len, out)) > budget:
        status, index, out = TOO_BIG, 0, []
    return encode_message_parts(request.version, request.community, RESPONSE, pdu.request_id, status, index,
                                out)


class _DeviceProtocol(asyncio.DatagramProtocol):
    def __init__(self, device: SimulatedDevice, community: bytes, max_varbinds: int) -> None:
        self.device = device
        self.community = community
        self.max_varbinds = max_varbinds
        self.stats = ResponderStats()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            request = decode_message(data)
        except BerError:
            self.stats.malformed += 1
            return
        if request.community != self.community:
            self.stats.bad_community += 1
            return
        self.stats.requests += 1
        try:
            response = answer(self.device, request, max_varbinds=self.max_varbinds)
        except Exception:  # a buggy value provider must not stop the simulator
            self.stats.errors += 1
            log.exception("simulated device %s failed to answer", self.device.name)
            return
        if response is None:
            self.stats.unsupported += 1
            return
        if self.transport is not None:
            self.transport.sendto(response, addr)
            self.stats.responses += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("simulated device %s: socket error %s", self.device.name, exc)


class SimulatorHandle:
    """Running responders: ``endpoints`` lists (device name, host, port); close() stops them all."""

    def __init__(self, devices: Sequence[SimulatedDevice], endpoints: Sequence[Endpoint],
                 protocols: Sequence[_DeviceProtocol]) -> None:
        self.devices = list(devices)
        self.endpoints = list(endpoints)
        self._protocols = list(protocols)

    def stats(self, index: int = 0) -> ResponderStats:
        """Counters of the responder for ``devices[index]``."""
        return self._protocols[index].stats

    def close(self) -> None:
        for p in self._protocols:
            if p.transport is not None:
                p.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()


async def serve_devices(devices: Sequence[SimulatedDevice], host: str = "127.0.0.1",
                        community: str = "public", *,
                        max_varbinds: int = DEFAULT_MAX_VARBINDS) -> SimulatorHandle:
    """Bind one UDP socket per device on a free port of ``host`` and serve it until ``close()``."""
    loop = asyncio.get_running_loop()
    protocols: list[_DeviceProtocol] = []
    endpoints: list[Endpoint] = []
    try:
        for device in devices:
            factory = functools.partial(_DeviceProtocol, device, community.encode(), max_varbinds)
            transport, protocol = await loop.create_datagram_endpoint(factory, local_addr=(host, 0))
            protocols.append(protocol)
            endpoints.append(Endpoint(device.name, host, transport.get_extra_info("sockname")[1]))
    except BaseException:
        SimulatorHandle(devices, endpoints, protocols).close()
        raise
    return SimulatorHandle(devices, endpoints, protocols)

"""agent.snmp.community (the fast path's UDP transport and session) against small responders on 127.0.0.1.

What completes a request: the first well-formed Response from the device's address with our request-id,
community and (when the request names it) SNMP version; answers with another request-id, another
community, another version, another PDU type, from another address (port or IP) are ignored; malformed
datagrams are counted; a late answer to an earlier try counts (retransmissions keep the request-id); a
timeout after every try raises; cancelling the caller withdraws the request at once (no more
retransmissions, the engine idle), also when the answer arrives in the same loop iteration; closing the
transport ends requests in flight with RequestTimeout, not a stray CancelledError.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.snmp.ber import GET, encode_request
from agent.snmp.community import Address, CommunityTransport, RequestTimeout
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpTimeout
from agent.snmp.values import OID, SnmpValue
from hatang.sim import ber
from hatang.sim.ber import Message, Value
from tests.support.bad_responders import LOOPBACK, BadResponder, Table, TableDevice, garbage, serve, silent
from tests.support.services import unavailable
from tests.support.waiting import async_wait_until

SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)
COMMUNITY = b"public"
DEADLINE = 10.0  # every test runs under it: a hang fails instead of blocking the suite


@pytest.fixture
async def transport() -> AsyncIterator[CommunityTransport]:
    community = CommunityTransport()
    await community.open(1 << 20)
    try:
        yield community
    finally:
        community.close()


def holding_device() -> TableDevice:
    """A device that keeps every request: the test sends the answers itself (``held[i][1]``)."""
    return TableDevice(Table([(SYS_NAME, ber.octets("device"))]), hold_after=0)


def agent_port(transport: CommunityTransport) -> int:
    assert transport._transport is not None
    return int(transport._transport.get_extra_info("sockname")[1])


def address(responder: BadResponder) -> Address:
    return (responder.host, responder.port)


def start(transport: CommunityTransport, responder: BadResponder, *, timeout: float = 5.0, tries: int = 1,
          community: bytes = COMMUNITY, version: int | None = None) -> tuple[int, asyncio.Task[Any]]:
    request_id = transport.request_id()
    datagram = encode_request(1 if version is None else version, community, GET, request_id, [SYS_NAME])
    task = asyncio.create_task(transport.request(address(responder), community, request_id, datagram,
                                                 timeout, tries, version=version))
    return request_id, task


def answer(request: Message, text: bytes = b"device", *, request_id: int | None = None,
           community: bytes | None = None, pdu: int = ber.RESPONSE, value: Value | None = None,
           version: int | None = None) -> bytes:
    return ber.encode_message_parts(
        request.version if version is None else version,
        request.community if community is None else community, pdu,
        request.pdu.request_id if request_id is None else request_id, 0, 0,
        [ber.encode_varbind(SYS_NAME, ber.octets(text) if value is None else value)])


async def first_held(device: TableDevice, count: int = 1) -> None:
    await async_wait_until(lambda: len(device.held) >= count, 5.0, message=f"{count} request(s) to arrive")


async def test_only_the_matching_answer_completes_the_request(transport: CommunityTransport) -> None:
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        request_id, task = start(transport, responder)
        await first_held(device)
        request, send = device.held[0]
        assert request.pdu.request_id == request_id and request.community == COMMUNITY
        send(answer(request, b"other request-id", request_id=(request_id + 1) & 0x7FFFFFFF))
        send(answer(request, b"other community", community=b"private"))
        send(answer(request, b"not a response", pdu=ber.GET_REQUEST))  # malformed for a response decoder
        send(b"\x30\x03\x02\x01")  # truncated junk
        send(answer(request, b"device"))
        response = await task
        assert response.request_id == request_id
        assert response.varbinds == [(SYS_NAME, SnmpValue("octets", b"device"))]
        assert transport.received[address(responder)] == 5
        assert transport.malformed == 2
        assert transport.idle


@pytest.mark.parametrize("version", [0, 1], ids=["v1", "v2c"])
async def test_an_answer_in_another_snmp_version_is_ignored(transport: CommunityTransport,
                                                            version: int) -> None:
    """pysnmp's message processing drops a v1 answer to a v2c request (and the reverse): so do we."""
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        request_id, task = start(transport, responder, version=version)
        await first_held(device)
        request, send = device.held[0]
        assert request.version == version
        send(answer(request, b"other version", version=1 - version))
        send(answer(request, b"report", pdu=ber.REPORT))  # not a Response-PDU: malformed here
        await async_wait_until(lambda: transport.received[address(responder)] == 2, 5.0,
                               message="the two wrong answers to arrive")
        await asyncio.sleep(0.05)
        assert not task.done()
        send(answer(request, b"device"))
        response = await task
        assert (response.request_id, response.version) == (request_id, version)
        assert response.varbinds == [(SYS_NAME, SnmpValue("octets", b"device"))]
        assert transport.malformed == 1
        assert transport.idle


@pytest.mark.parametrize("impostor_host", ["127.0.0.1", "127.0.0.2"])
async def test_an_answer_from_another_address_is_ignored(transport: CommunityTransport,
                                                         impostor_host: str) -> None:
    """Another port on the device's IP, or the device's port on another IP: not the device."""
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        _, task = start(transport, responder)
        await first_held(device)
        request, send = device.held[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as impostor:
            try:
                impostor.bind((impostor_host, 0 if impostor_host == LOOPBACK else responder.port))
            except OSError as exc:  # pragma: no cover - a loopback without 127.0.0.0/8
                unavailable(f"cannot bind {impostor_host}: {exc}")
            impostor.sendto(answer(request, b"impostor"), (LOOPBACK, agent_port(transport)))
            sender = impostor.getsockname()
            await async_wait_until(lambda: transport.received[sender] == 1, 5.0,
                                   message="the impostor's answer to arrive")
        await asyncio.sleep(0.05)
        assert not task.done()
        send(answer(request, b"device"))
        response = await task
        assert response.varbinds == [(SYS_NAME, SnmpValue("octets", b"device"))]
        assert transport.malformed == 0


async def test_a_late_answer_to_an_earlier_try_is_accepted(
    transport: CommunityTransport, loop_errors: list[dict[str, Any]]
) -> None:
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        request_id, task = start(transport, responder, timeout=0.5, tries=3)
        await first_held(device, 2)  # the first try timed out and was sent again ...
        first, send_first = device.held[0]
        second, send_second = device.held[1]
        assert first.pdu.request_id == second.pdu.request_id == request_id  # ... with the same request-id
        send_first(answer(first, b"first try"))  # answered late, during the second try
        response = await task
        assert response.varbinds == [(SYS_NAME, SnmpValue("octets", b"first try"))]
        assert len(device.held) == 2  # no third try
        assert transport.idle
        send_second(answer(second, b"second try"))  # a duplicate now: nothing is waiting for it
        await async_wait_until(lambda: transport.received[address(responder)] == 2, 5.0,
                               message="the duplicate answer to arrive")
        assert transport.idle and transport.malformed == 0
    assert loop_errors == []


async def test_a_timeout_raises_after_every_try(transport: CommunityTransport) -> None:
    async with asyncio.timeout(DEADLINE), await serve(silent()) as responder:
        request_id, task = start(transport, responder, timeout=0.1, tries=3)
        with pytest.raises(RequestTimeout, match=r"no answer from 127\.0\.0\.1"):
            await task
        assert [r.pdu.request_id for r in responder.requests] == [request_id] * 3
        assert transport.idle
        _, task = start(transport, responder, timeout=0.1, tries=0)  # at least one try
        with pytest.raises(RequestTimeout):
            await task
        assert len(responder.requests) == 4


async def test_malformed_answers_are_counted_and_end_in_a_timeout(transport: CommunityTransport) -> None:
    async with asyncio.timeout(DEADLINE), await serve(garbage()) as responder:
        _, task = start(transport, responder, timeout=0.2, tries=2)
        with pytest.raises(RequestTimeout):
            await task
        assert transport.malformed == 2
        assert transport.received[address(responder)] == 2
        assert transport.idle


async def test_the_target_says_datagrams_arrived_but_were_unusable() -> None:
    engine = SnmpEngine(fast_path=True)
    try:
        async with asyncio.timeout(DEADLINE), await serve(garbage()) as responder:
            target = await engine.target(responder.host, responder.port, Credentials("2c", "public"),
                                         timeout=0.2, retries=1)
            with pytest.raises(SnmpTimeout, match=r"2 datagram\(s\) did arrive from the device"):
                await target.get([SYS_NAME])
    finally:
        engine.close()


async def test_cancelling_the_caller_withdraws_the_request(
    transport: CommunityTransport, loop_errors: list[dict[str, Any]]
) -> None:
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        _, task = start(transport, responder, timeout=0.2, tries=5)
        await first_held(device)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert transport.idle
        await asyncio.sleep(0.5)  # two more timeouts' worth: no retransmission of a withdrawn request
        assert len(device.held) == 1
        request, send = device.held[0]
        send(answer(request))  # the late answer finds nothing waiting and is dropped quietly
        await async_wait_until(lambda: transport.received[address(responder)] == 1, 5.0,
                               message="the late answer to arrive")
        assert transport.idle
    assert loop_errors == []


async def test_cancellation_wins_over_an_answer_in_the_same_loop_iteration(
    transport: CommunityTransport, loop_errors: list[dict[str, Any]]
) -> None:
    """asyncio.wait_for on Python 3.11 would return the answer and swallow the cancellation."""
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        _, task = start(transport, responder)
        await first_held(device)
        request, _ = device.held[0]
        transport.datagram_received(answer(request), address(responder))  # the answer is in ...
        task.cancel()  # ... and the caller's deadline fires before the task runs again
        with pytest.raises(asyncio.CancelledError):
            await task
        assert transport.idle
    assert loop_errors == []


async def test_a_cancelled_poll_leaves_the_engine_idle(loop_errors: list[dict[str, Any]]) -> None:
    engine = SnmpEngine(fast_path=True)
    device = holding_device()
    try:
        async with asyncio.timeout(DEADLINE), await serve(device) as responder:
            target = await engine.target(responder.host, responder.port, Credentials("2c", "public"),
                                         timeout=5.0, retries=3)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):  # the poller's deadline
                    await target.get([SYS_NAME])
            assert engine.idle  # at once: pysnmp would keep the request until 5 s x 4 tries are over
            device.hold_after = None  # the device comes back
            assert await target.get([SYS_NAME]) == [(SYS_NAME, SnmpValue("octets", b"device"))]
            assert engine.idle
    finally:
        engine.close()
    assert loop_errors == []


async def test_closing_ends_requests_in_flight_with_a_timeout(transport: CommunityTransport) -> None:
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        _, task = start(transport, responder, timeout=5.0, tries=2)
        await first_held(device)
        transport.close()
        with pytest.raises(RequestTimeout, match="socket closed"):
            await task  # not CancelledError: nobody cancelled the caller
        assert transport.idle
        _, task = start(transport, responder)
        with pytest.raises(RequestTimeout, match="socket closed"):
            await task


async def test_unsolicited_answers_are_ignored_and_negative_unsigned_values_counted(
    transport: CommunityTransport,
) -> None:
    device = holding_device()
    async with asyncio.timeout(DEADLINE), await serve(device) as responder:
        request_id, task = start(transport, responder)
        await first_held(device)
        request, send = device.held[0]
        send(answer(request, request_id=(request_id + 7) & 0x7FFFFFFF))  # nothing pending with that id
        send(answer(request, value=Value(ber.COUNTER32, -5)))  # a buggy device's Counter32
        response = await task
        assert response.varbinds == [(SYS_NAME, SnmpValue("counter32", 2**32 - 5))]
        assert (transport.repaired, transport.malformed) == (1, 0)
        assert transport.received[address(responder)] == 2


def test_request_ids_stay_within_31_bits() -> None:
    community = CommunityTransport()
    community._next_id = 0x7FFFFFFE
    assert [community.request_id() for _ in range(3)] == [0x7FFFFFFF, 0, 1]

"""agent.snmp (SnmpEngine, SnmpTarget) against misbehaving SNMP responders (tests/support/bad_responders.py):
looping OIDs, silence, garbage, a huge table, tooBig, silently dropped large responses, noSuch*/endOfMibView
values, v1 quirks, negative counters, and a walk cancelled half-way.

No external programs are needed; every test runs under ``asyncio.timeout`` so a hang fails instead of
blocking the suite.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.poller import DevicePoller
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpNotIncreasing, SnmpTimeout, SnmpTooManyRows, SnmpWalkError, SnmpWalkTooLong
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue
from hatang.sim import ber
from hatang.sim.ber import Value
from tests.support.bad_responders import BadResponder, Column, Table, TableDevice, garbage, serve, silent
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

V2C = Credentials(version="2c", community="public")
V1 = Credentials(version="1", community="public")
TIMEOUT = 0.3  # per try; every target here gets 1 retry -> 2 tries
TEST_DEADLINE = 20.0

ENTERPRISE: OID = (1, 3, 6, 1, 4, 1, 99999)
COL: OID = (*ENTERPRISE, 1, 1)  # a column of the test table
NEXT_COL: OID = (*ENTERPRISE, 1, 2)
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def column_rows(root: OID, n: int, value: Any = ber.integer) -> list[tuple[OID, Value]]:
    return [((*root, i), value(i)) for i in range(1, n + 1)]


def small_table(n: int = 30) -> Table:
    """Two columns, so a walk of the first must stop at the second."""
    return Table(column_rows(COL, n) + column_rows(NEXT_COL, 3))


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngine]:
    eng = SnmpEngine()
    try:
        yield eng
    finally:
        eng.close()


async def target_for(engine: SnmpEngine, responder: BadResponder, creds: Credentials = V2C,
                     **kwargs: Any) -> SnmpTarget:
    return await engine.target(responder.host, responder.port, creds, timeout=TIMEOUT, retries=1, **kwargs)


async def test_engine_socket_gets_a_larger_receive_buffer(engine: SnmpEngine) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(small_table(3))) as responder:
        assert engine.receive_buffer is None  # the socket is opened with the first target
        target = await target_for(engine, responder)
        assert len(await target.walk(COL)) == 3
    assert engine.receive_buffer is not None and engine.receive_buffer > default


async def test_walk_stays_in_subtree_and_in_order(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(small_table(30))) as responder:
        target = await target_for(engine, responder)
        rows = await target.walk(COL)
    assert [oid for oid, _ in rows] == [(*COL, i) for i in range(1, 31)]
    assert [v for _, v in rows] == [SnmpValue("integer", i) for i in range(1, 31)]


async def test_same_oid_again_is_not_increasing(engine: SnmpEngine) -> None:
    """v2c: the same OID again is a loop (net-snmp: "OID not increasing"), not the end of the walk."""
    device = TableDevice(small_table(30), loop_after=12, loop_mode="same")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        with pytest.raises(SnmpNotIncreasing, match=r"^OID not increasing: .* returned OID "
                                                     r"1\.3\.6\.1\.4\.1\.99999\.1\.1\.12 after "
                                                     r"1\.3\.6\.1\.4\.1\.99999\.1\.1\.12 ") as caught:
            await target.walk(COL)
    assert caught.value.reason == "not_increasing"


async def test_v1_same_oid_again_ends_the_walk_cleanly(engine: SnmpEngine) -> None:
    """v1: the same OID again after increasing rows is the repeat-the-last-row quirk: the end."""
    device = TableDevice(small_table(30), loop_after=12, loop_mode="same")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V1)
        rows = await target.walk(COL)
    assert [oid for oid, _ in rows] == [(*COL, i) for i in range(1, 13)]


async def test_lower_oid_raises_walk_error(engine: SnmpEngine) -> None:
    device = TableDevice(small_table(30), loop_after=12, loop_mode="lower")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        started = time.monotonic()
        with pytest.raises(SnmpWalkError, match=r"OIDs must increase") as caught:
            await target.walk(COL)
        assert time.monotonic() - started < 2 * TIMEOUT
    assert f"after {'.'.join(map(str, COL))}.12" in str(caught.value)
    assert isinstance(caught.value, SnmpNotIncreasing)


async def test_v1_repeated_last_row_ends_the_walk(engine: SnmpEngine) -> None:
    """A v1 agent that answers GETNEXT past its last row with that last row again."""
    device = TableDevice(Table(column_rows(COL, 5)), repeat_last=True)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V1)
        rows = await target.walk(COL)
        assert [oid for oid, _ in rows] == [(*COL, i) for i in range(1, 6)]
        assert all(r.pdu.tag == ber.GET_NEXT_REQUEST for r in responder.requests)


async def test_v1_no_such_name_ends_walk_and_is_dropped_from_get(engine: SnmpEngine) -> None:
    device = TableDevice(Table(column_rows(COL, 5)))
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V1)
        rows = await target.walk(COL)  # the last GETNEXT gets noSuchName: the end, not an error
        values = await target.get([(*COL, 2), (*COL, 99), (*COL, 4)])
    assert len(rows) == 5
    assert values == [((*COL, 2), SnmpValue("integer", 2)), ((*COL, 99), SnmpValue("no_such_object", None)),
                      ((*COL, 4), SnmpValue("integer", 4))]


async def test_silent_device_times_out_with_a_clear_message(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(silent()) as responder:
        target = await target_for(engine, responder)
        started = time.monotonic()
        with pytest.raises(SnmpTimeout) as caught:
            await target.get([SYS_UPTIME])
        elapsed = time.monotonic() - started
        assert len(responder.requests) == 2  # one retry
    assert 2 * TIMEOUT * 0.9 <= elapsed < 2 * TIMEOUT + 1.0
    message = str(caught.value)
    assert f"no answer from 127.0.0.1:{responder.port} within 0.3 s x 2 tries" in message
    assert "wrong community (SNMP v1/v2c devices do not answer a wrong community)" in message
    assert "could not be decoded" not in message


async def test_silent_device_walk_times_out_once(engine: SnmpEngine) -> None:
    """A bulk timeout on a device that never answered is not retried with smaller requests."""
    async with asyncio.timeout(TEST_DEADLINE), await serve(silent()) as responder:
        target = await target_for(engine, responder)
        with pytest.raises(SnmpTimeout):
            await target.walk(COL)
        assert len(responder.requests) == 2
        assert target.max_repetitions == 10


async def test_garbage_answers_time_out_and_say_so(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(garbage()) as responder:
        target = await target_for(engine, responder)
        with pytest.raises(SnmpTimeout, match=r"2 datagram\(s\) did arrive from the device but could not be "
                                              r"decoded"):
            await target.get([SYS_UPTIME])


async def test_huge_table_hits_the_row_cap(engine: SnmpEngine) -> None:
    device = TableDevice(Column(COL, 50_000))
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        with pytest.raises(SnmpTooManyRows, match=r"more than 1000 rows under 1\.3\.6\.1\.4\.1\.99999\.1\.1"):
            await target.walk(COL, max_rows=1000)
        assert device.rows_sent < 1100  # it stopped asking


async def test_huge_table_hits_the_time_cap(engine: SnmpEngine) -> None:
    device = TableDevice(Column(COL, 50_000))
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        started = time.monotonic()
        # 50,000 rows are 5,000 round trips: far more than 10 ms even on the fast path
        with pytest.raises(SnmpWalkTooLong, match=r"took longer than 0\.01 s \(\d+ rows so far\)"):
            await target.walk(COL, max_time=0.01)
        assert time.monotonic() - started < 1.5
        # the target-wide default applies when the call gives none
        capped = await target_for(engine, responder, max_walk_time=0.02)
        with pytest.raises(SnmpWalkTooLong, match=r"took longer than 0\.02 s"):
            await capped.walk(COL)


async def test_too_big_lowers_max_repetitions(engine: SnmpEngine) -> None:
    device = TableDevice(small_table(30), too_big_above=3)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        rows = await target.walk(COL)
        assert [oid for oid, _ in rows] == [(*COL, i) for i in range(1, 31)]
        assert target.max_repetitions <= 3
        assert device.bulk_repetitions[:3] == [10, 5, 2]
        sent = device.too_big_sent
        assert sent == 2
        again = await target.walk(COL)  # remembered per target: no more tooBig
        assert again == rows
        assert device.too_big_sent == sent


async def test_silently_dropped_large_responses_lower_max_repetitions(engine: SnmpEngine) -> None:
    device = TableDevice(small_table(30), drop_above=4)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        assert (await target.get([(*COL, 1)]))[0][1] == SnmpValue("integer", 1)  # it answers small ones
        rows = await target.walk(COL)
        assert [oid for oid, _ in rows] == [(*COL, i) for i in range(1, 31)]
        assert target.max_repetitions <= 4
        assert device.dropped >= 2


async def test_absent_values_are_values(engine: SnmpEngine) -> None:
    rows = [
        ((*COL, 1), ber.integer(1)),
        ((*COL, 2), ber.NO_SUCH_INSTANCE_VALUE),  # a buggy agent puts these inside a table
        ((*COL, 3), ber.NO_SUCH_OBJECT_VALUE),
        ((*COL, 4), ber.integer(4)),
    ]
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(Table(rows))) as responder:
        target = await target_for(engine, responder)
        walked = await target.walk(COL)  # then endOfMibView: the end of the walk, not an error
        got = await target.get([(*COL, 1), (*COL, 2), (*COL, 99), SYS_NAME])
    assert walked == [((*COL, 1), SnmpValue("integer", 1)), ((*COL, 2), SnmpValue("no_such_instance", None)),
                      ((*COL, 3), SnmpValue("no_such_object", None)), ((*COL, 4), SnmpValue("integer", 4))]
    assert [v.kind for _, v in got] == ["integer", "no_such_instance", "no_such_object", "no_such_object"]


async def test_end_of_mib_view_mid_batch_ends_the_walk(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(Table(column_rows(COL, 3)))) as r:
        target = await target_for(engine, r)
        assert len(await target.walk(COL)) == 3
        assert len(await target.walk(ENTERPRISE)) == 3


async def test_negative_unsigned_integers_are_repaired(engine: SnmpEngine) -> None:
    """A device sending a large Counter32 as a negative integer: pysnmp alone drops the whole reply."""
    rows = [
        ((*COL, 1), Value(ber.COUNTER32, -5)),
        ((*COL, 2), Value(ber.COUNTER64, -(2**63))),
        ((*COL, 3), Value(ber.GAUGE32, -1)),
        ((*COL, 4), Value(ber.TIMETICKS, -2)),
        ((*COL, 5), ber.counter32(2**32 - 1)),  # a correct encoding stays as it is
        ((*COL, 6), ber.integer(-7)),  # Integer32 may be negative: not touched
    ]
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(Table(rows))) as responder:
        target = await target_for(engine, responder)
        got = await target.get([(*COL, i) for i in range(1, 7)])
        walked = await target.walk(COL)
    expected = [SnmpValue("counter32", 2**32 - 5), SnmpValue("counter64", 2**63),
                SnmpValue("gauge32", 2**32 - 1), SnmpValue("timeticks", 2**32 - 2),
                SnmpValue("counter32", 2**32 - 1), SnmpValue("integer", -7)]
    assert [v for _, v in got] == expected
    assert [v for _, v in walked] == expected
    assert engine.repaired_datagrams == 2


async def test_cancelled_walk_leaves_the_target_usable(
    engine: SnmpEngine, loop_errors: list[dict[str, Any]]
) -> None:
    """A walk cancelled half-way (the poller's deadline), then the late answer to the cancelled request
    arrives: the next request to the same device must still work and nothing may complain."""
    device = TableDevice(small_table(30), hold_after=1)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder)
        walk = asyncio.create_task(target.walk(COL))
        await async_wait_until(lambda: device.held, 5.0, message="the second walk request to be held")
        walk.cancel()
        with pytest.raises(asyncio.CancelledError):
            await walk
        assert responder.release() == 1  # the late answer to the cancelled request
        got = await target.get([(*COL, 7)])
        assert got == [((*COL, 7), SnmpValue("integer", 7))]
        rows = await target.walk(COL)
        assert len(rows) == 30
        # the late answer finished pysnmp's pending request for the cancelled walk
        await async_wait_until(lambda: engine.idle, 5.0, message="pysnmp to have no request pending")
        assert await target.get([(*COL, 8)]) == [((*COL, 8), SnmpValue("integer", 8))]
    assert loop_errors == []


async def test_deadline_cancel_of_a_silent_device_then_it_comes_back(
    engine: SnmpEngine, loop_errors: list[dict[str, Any]]
) -> None:
    device = TableDevice(small_table(5), hold_after=0)  # holds everything: looks dead
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await engine.target(responder.host, responder.port, V2C, timeout=5.0, retries=3)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await target.walk(COL)
        device.hold_after = None
        device.held.clear()
        assert len(await target.walk(COL)) == 5
    assert loop_errors == []


# ------------------------------------------------------------------------------------------- poller


def system_rows(name: str) -> list[tuple[OID, Value]]:
    return [
        (SYS_DESCR, ber.octets("test responder")),
        (SYS_OBJECT_ID, ber.oid(ENTERPRISE)),
        (SYS_UPTIME, ber.timeticks(12_345)),
        (SYS_NAME, ber.octets(name)),
    ]


IF_DESCR: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_OPER: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_NAME: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_HC_IN: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)


def interface_rows() -> list[tuple[OID, Value]]:
    return [
        ((*IF_DESCR, 1), ber.octets("eth0")),
        ((*IF_OPER, 1), ber.integer(1)),
        ((*IF_NAME, 1), ber.octets("eth0")),
        ((*IF_HC_IN, 1), ber.counter64(2**64 - 1)),
    ]


async def test_poller_keeps_other_profiles_and_devices(engine: SnmpEngine) -> None:
    """A looping interfaces table costs that profile only; a dead device does not delay a good one."""
    profiles = load_profiles(None)
    chosen = [profiles["interfaces"], profiles["system"]]
    good = TableDevice(Table(system_rows("good") + interface_rows()))
    looping = TableDevice(Table(system_rows("looping") + interface_rows()), loop_after=1, loop_mode="lower")
    async with asyncio.timeout(TEST_DEADLINE), await serve(good) as r_good, \
            await serve(looping) as r_loop, await serve(silent()) as r_dead:
        pollers = []
        for name, responder in (("good", r_good), ("looping", r_loop), ("dead", r_dead)):
            # the dead device takes 2 x 1 s to give up: long enough to see whether it delays the others
            timeout = 1.0 if name == "dead" else TIMEOUT
            target = await engine.target(responder.host, responder.port, V2C, timeout=timeout, retries=1)
            pollers.append(DevicePoller(name, target, chosen, deadline=10.0, timeout_errors=(SnmpTimeout,),
                                        snmp_errors=(SnmpWalkError, SnmpTimeout)))
        started = time.monotonic()
        outcomes = await asyncio.gather(*(p.poll() for p in pollers))
        elapsed = time.monotonic() - started
    good_out, loop_out, dead_out = outcomes
    assert good_out.up and good_out.errors == ()
    assert good_out.duration < 1.5  # not delayed by the dead device polled at the same time (>= 2 s)
    names = {f.name for f in good_out.families}
    assert {"hatang_device_info", "hatang_interface_in_bytes_total"} <= names
    assert loop_out.up
    assert [e.profile for e in loop_out.errors] == ["interfaces"]
    assert "OIDs must increase" in loop_out.errors[0].error
    assert "hatang_device_info" in {f.name for f in loop_out.families}  # the next profile still ran
    assert not dead_out.up
    assert [e.profile for e in dead_out.errors] == ["interfaces"]  # not asked for the rest
    assert "no answer from 127.0.0.1" in dead_out.errors[0].error
    assert 1.8 <= elapsed < 2.0 + 1.5

"""Broken devices must not look healthy (issue #10): agent.snmp against responders whose answers do not fit
the request, on both backends (the fast v1/v2c path and the pysnmp path that SNMPv3 uses, forced for
v1/v2c with ``SnmpEngine(fast_path=False)``) and both community versions.

* GET answered with another OID, the right OIDs in another order, one varbind more or less:
  :class:`SnmpWrongOid` (reason ``wrong_oid``), checked against the request actually sent (after SNMPv1's
  noSuchName drop-and-retry).
* a walk that gets the requested OID echoed back, the same OID again, or a lower one (also inside one
  GETBULK response, also outside the subtree): :class:`SnmpNotIncreasing` (``not_increasing``), while an
  SNMPv1 agent repeating its last row after increasing rows still ends the walk cleanly.
* GETNEXT/GETBULK answered without varbinds: :class:`SnmpWrongOid`.
* answers with another SNMP version, PDU type or request-id are not answers: a timeout that says
  datagrams did arrive.
* every error's ``reason``, and what the poller reports for such a device.

Every test runs under ``asyncio.timeout`` so a hang (an agent that loops) fails instead of blocking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.poller import DevicePoller
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import (
    ERROR_REASONS,
    SnmpAddressError,
    SnmpAuthError,
    SnmpError,
    SnmpNotIncreasing,
    SnmpTimeout,
    SnmpTooManyRows,
    SnmpWalkError,
    SnmpWalkTooLong,
    SnmpWrongOid,
)
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue, oid_text
from hatang.sim import ber
from hatang.sim.ber import Value
from tests.support.bad_responders import (
    BadResponder,
    Column,
    Table,
    TableDevice,
    bulk_repeated,
    bulk_swapped,
    get_extra,
    get_missing,
    get_other_oid,
    get_reordered,
    no_varbinds,
    serve,
)

pytestmark = pytest.mark.integration

V1 = Credentials(version="1", community="public")
V2C = Credentials(version="2c", community="public")
VERSIONS = pytest.mark.parametrize("creds", [V1, V2C], ids=["v1", "v2c"])
TIMEOUT = 0.3  # per try; every target here gets 1 retry -> 2 tries
TEST_DEADLINE = 20.0

ENTERPRISE: OID = (1, 3, 6, 1, 4, 1, 99999)
COL: OID = (*ENTERPRISE, 1, 1)
NEXT_COL: OID = (*ENTERPRISE, 1, 2)
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def row(i: int) -> OID:
    return (*COL, i)


def table(n: int = 30) -> Table:
    """Two columns, so a walk of the first must stop at the second."""
    return Table([(row(i), ber.integer(i)) for i in range(1, n + 1)]
                 + [((*NEXT_COL, i), ber.integer(i)) for i in range(1, 4)])


@pytest.fixture(params=["fast", "pysnmp"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[SnmpEngine]:
    eng = SnmpEngine(fast_path=request.param == "fast")
    try:
        yield eng
    finally:
        eng.close()


async def target_for(engine: SnmpEngine, responder: BadResponder, creds: Credentials,
                     **kwargs: Any) -> SnmpTarget:
    return await engine.target(responder.host, responder.port, creds, timeout=TIMEOUT, retries=1, **kwargs)


async def get_error(device: TableDevice, engine: SnmpEngine, creds: Credentials,
                    oids: list[OID]) -> SnmpError:
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, creds)
        with pytest.raises(SnmpError) as caught:
            await target.get(oids)
    return caught.value


async def walk_error(device: TableDevice, engine: SnmpEngine, creds: Credentials,
                     root: OID = COL) -> SnmpError:
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, creds)
        with pytest.raises(SnmpError) as caught:
            await target.walk(root)
    return caught.value


# ------------------------------------------------------------------------------------------------ GET


@VERSIONS
async def test_get_answered_with_another_oid_is_wrong_oid(engine: SnmpEngine, creds: Credentials) -> None:
    error = await get_error(TableDevice(table(), rewrite=get_other_oid(1)), engine, creds,
                            [row(1), row(2), row(3)])
    assert isinstance(error, SnmpWrongOid)
    assert error.reason == "wrong_oid"
    message = str(error)
    assert f"asked {oid_text(row(2))}, received {oid_text(row(3))} at varbind 2" in message
    assert "the device answered a different object than asked (buggy agent)" in message


@VERSIONS
async def test_get_answered_with_an_unrelated_oid(engine: SnmpEngine, creds: Credentials) -> None:
    """The classic: asked for sysUpTime.0, got sysDescr.0 back (a value of another type and meaning)."""
    device = TableDevice(Table([(SYS_UPTIME, ber.timeticks(5)), (SYS_DESCR, ber.octets("x"))]),
                         rewrite=get_other_oid(0, SYS_DESCR))
    error = await get_error(device, engine, creds, [SYS_UPTIME])
    assert isinstance(error, SnmpWrongOid)
    assert f"asked {oid_text(SYS_UPTIME)}, received {oid_text(SYS_DESCR)}" in str(error)


@VERSIONS
async def test_get_answered_in_another_order_is_wrong_oid(engine: SnmpEngine, creds: Credentials) -> None:
    """The right objects, reordered: positions must match too (a reordering agent is not trusted)."""
    error = await get_error(TableDevice(table(), rewrite=get_reordered()), engine, creds,
                            [row(1), row(2), row(3)])
    assert isinstance(error, SnmpWrongOid)
    assert f"asked {oid_text(row(1))}, received {oid_text(row(3))} at varbind 1" in str(error)


@VERSIONS
async def test_get_answered_with_more_varbinds_than_asked(engine: SnmpEngine, creds: Credentials) -> None:
    error = await get_error(TableDevice(table(), rewrite=get_extra()), engine, creds, [row(1), row(2)])
    assert isinstance(error, SnmpWrongOid)
    message = str(error)
    assert f"asked nothing, received {oid_text(row(3))} at varbind 3" in message
    assert "3 varbind(s) for 2 OID(s) asked" in message


@VERSIONS
async def test_get_answered_with_fewer_varbinds_than_asked(engine: SnmpEngine, creds: Credentials) -> None:
    error = await get_error(TableDevice(table(), rewrite=get_missing()), engine, creds, [row(1), row(2)])
    assert isinstance(error, SnmpWrongOid)
    assert f"asked {oid_text(row(2))}, received nothing at varbind 2" in str(error)
    assert "1 varbind(s) for 2 OID(s) asked" in str(error)


async def test_v1_get_is_checked_against_the_request_actually_sent(engine: SnmpEngine) -> None:
    """After noSuchName drops row 99, the retry asks for rows 2 and 4: a correct answer to it passes,
    and a wrong one is named by what the retry asked at that position."""
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(table())) as responder:
        target = await target_for(engine, responder, V1)
        assert await target.get([row(2), (*COL, 99), row(4)]) == [
            (row(2), SnmpValue("integer", 2)), ((*COL, 99), SnmpValue("no_such_object", None)),
            (row(4), SnmpValue("integer", 4))]
    error = await get_error(TableDevice(table(), rewrite=get_other_oid(1)), engine, V1,
                            [row(2), (*COL, 99), row(4)])
    assert isinstance(error, SnmpWrongOid)
    assert f"asked {oid_text(row(4))}, received {oid_text(row(5))} at varbind 2" in str(error)


@VERSIONS
async def test_correct_get_with_absent_objects_still_passes(engine: SnmpEngine, creds: Credentials) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(table())) as responder:
        target = await target_for(engine, responder, creds)
        got = await target.get([row(1), SYS_NAME, row(1), row(3)])  # the same OID twice is fine too
    assert [(oid, v.kind) for oid, v in got] == [(row(1), "integer"), (SYS_NAME, "no_such_object"),
                                                 (row(1), "integer"), (row(3), "integer")]


# ----------------------------------------------------------------------------------------------- walk


@VERSIONS
async def test_echo_of_the_requested_oid_is_not_increasing(engine: SnmpEngine, creds: Credentials) -> None:
    """GETNEXT/GETBULK answered with the OID that was asked for: before, a clean empty walk."""
    error = await walk_error(TableDevice(table(), loop_after=0, loop_mode="same"), engine, creds)
    assert isinstance(error, SnmpNotIncreasing)
    assert isinstance(error, SnmpWalkError)  # existing `except SnmpWalkError` clauses still catch it
    assert error.reason == "not_increasing"
    message = str(error)
    assert message.startswith("OID not increasing:")
    assert (f"returned OID {oid_text(COL)} in answer to a request for the OID after {oid_text(COL)} "
            f"while walking {oid_text(COL)} (the same OID again: the agent loops)") in message


@VERSIONS
async def test_echo_of_a_row_in_the_table_is_not_increasing(engine: SnmpEngine, creds: Credentials) -> None:
    """Walking a table whose first request already hits an instance: row 1 echoed on the next request
    is the same OID again (v1: that is the last-row quirk, so only v2c fails)."""
    device = TableDevice(table(), loop_after=1, loop_mode="same")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, creds)
        if creds.version == "1":
            assert [oid for oid, _ in await target.walk(COL)] == [row(1)]
            return
        with pytest.raises(SnmpNotIncreasing, match=r"returned OID 1\.3\.6\.1\.4\.1\.99999\.1\.1\.1 after "
                                                     r"1\.3\.6\.1\.4\.1\.99999\.1\.1\.1 in the same GETBULK"):
            await target.walk(COL)


async def test_v2c_same_oid_again_after_rows_is_not_increasing(engine: SnmpEngine) -> None:
    """The device repeats row 12 inside the second GETBULK response: v2c has no repeat-the-last-row
    quirk, so this is a loop, not the end."""
    error = await walk_error(TableDevice(table(), loop_after=12, loop_mode="same"), engine, V2C)
    assert isinstance(error, SnmpNotIncreasing)
    assert f"returned OID {oid_text(row(12))} after {oid_text(row(12))} in the same GETBULK response" in str(
        error)


@VERSIONS
async def test_lower_oid_outside_the_subtree_is_not_increasing(engine: SnmpEngine,
                                                               creds: Credentials) -> None:
    """Asked for the OID after 1.3.6.1.4.1.99999.1.1, answered 1.3.6.1.4.1.99999.1.0: lower, and outside
    the subtree; before, that ended the walk cleanly with no rows."""
    error = await walk_error(TableDevice(table(), loop_after=0, loop_mode="lower"), engine, creds)
    assert isinstance(error, SnmpNotIncreasing)
    lower = (*ENTERPRISE, 1, 0)
    assert f"returned OID {oid_text(lower)} in answer to a request for the OID after" in str(error)
    assert "(it went backwards)" in str(error)


@pytest.mark.parametrize(("rewrite", "after"), [(bulk_swapped(3), 4), (bulk_repeated(3), 3)],
                         ids=["backwards", "repeated"])
async def test_oids_not_increasing_inside_one_bulk_response(engine: SnmpEngine, rewrite: Any,
                                                            after: int) -> None:
    """Row 3 after row 4, or row 3 twice, inside the first GETBULK response."""
    error = await walk_error(TableDevice(table(), rewrite=rewrite), engine, V2C)
    assert isinstance(error, SnmpNotIncreasing)
    assert (f"returned OID {oid_text(row(3))} after {oid_text(row(after))} in the same GETBULK "
            f"response while walking {oid_text(COL)}") in str(error)


async def test_bulk_response_past_the_subtree_may_do_anything_after_the_end(engine: SnmpEngine) -> None:
    """What follows the first OID past the subtree is not looked at (the walk ends there)."""
    device = TableDevice(table(3), rewrite=bulk_swapped(5))  # the next column's rows 2, 3 swapped
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V2C)
        assert [oid for oid, _ in await target.walk(COL)] == [row(1), row(2), row(3)]


@pytest.mark.parametrize("rows", [1, 5, 25])
async def test_v1_repeating_its_last_row_still_ends_the_walk(engine: SnmpEngine, rows: int) -> None:
    """The real SNMPv1 quirk: past the end of the MIB, GETNEXT is answered with the last row again."""
    device = TableDevice(Table([(row(i), ber.integer(i)) for i in range(1, rows + 1)]), repeat_last=True)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V1)
        walked = await target.walk(COL)
        assert walked == [(row(i), SnmpValue("integer", i)) for i in range(1, rows + 1)]
        assert all(r.pdu.tag == ber.GET_NEXT_REQUEST for r in responder.requests)
        assert len(responder.requests) == rows + 1


async def test_v1_repeated_row_in_the_middle_ends_the_walk_like_the_quirk(engine: SnmpEngine) -> None:
    """A v1 repeat cannot be told apart from the end-of-MIB quirk: the walk ends with what it has."""
    device = TableDevice(table(), loop_after=12, loop_mode="same")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V1)
        assert [oid for oid, _ in await target.walk(COL)] == [row(i) for i in range(1, 13)]


async def test_no_such_value_echoing_the_requested_oid_ends_the_walk(engine: SnmpEngine) -> None:
    """An exception value on the requested OID means "nothing here", as net-snmp reads it (v2c only:
    SNMPv1 has no exception values, a v1 agent answers noSuchName instead)."""
    device = TableDevice(Table([(COL, ber.NO_SUCH_OBJECT_VALUE)]), loop_after=0, loop_mode="same")
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V2C)
        assert await target.walk(COL) == []


@VERSIONS
async def test_next_answered_without_varbinds_is_wrong_oid(engine: SnmpEngine, creds: Credentials) -> None:
    """Before: the fast path took it as the end of the walk (no rows, no error)."""
    error = await walk_error(TableDevice(table(), rewrite=no_varbinds()), engine, creds)
    assert isinstance(error, SnmpWrongOid)
    request = "GETNEXT" if creds.version == "1" else "GETBULK"
    expected = "exactly one" if creds.version == "1" else "at least one"
    assert f"answered a {request} for {oid_text(COL)} with 0 varbinds instead of {expected}" in str(error)


async def test_v1_next_answered_with_two_varbinds_is_wrong_oid(engine: SnmpEngine) -> None:
    def two(request: ber.Message, varbinds: list[ber.VarBind]) -> list[ber.VarBind]:
        return [*varbinds, ((*NEXT_COL, 1), ber.integer(1))] if request.pdu.tag == ber.GET_NEXT_REQUEST \
            else varbinds

    error = await walk_error(TableDevice(table(), rewrite=two), engine, V1)
    assert isinstance(error, SnmpWrongOid)
    assert "with 2 varbinds instead of exactly one" in str(error)


@VERSIONS
async def test_correct_walks_still_pass(engine: SnmpEngine, creds: Credentials) -> None:
    """Ends past the subtree (next column), at endOfMibView / noSuchName, with absent values inside."""
    rows = [(row(1), ber.integer(1)), (row(2), ber.NO_SUCH_INSTANCE_VALUE if creds.version == "2c"
                                        else ber.integer(2)), (row(3), ber.integer(3))]
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(table(30))) as r1, \
            await serve(TableDevice(Table(rows))) as r2:
        target = await target_for(engine, r1, creds)
        assert [oid for oid, _ in await target.walk(COL)] == [row(i) for i in range(1, 31)]
        assert len(await target.walk(ENTERPRISE)) == 33
        assert [oid for oid, _ in await (await target_for(engine, r2, creds)).walk(COL)] == [
            row(1), row(2), row(3)]


# ------------------------------------------------------------------- answers that are not answers


@pytest.mark.parametrize(("creds", "change"), [
    (V1, {"answer_version": ber.VERSION_2C}), (V2C, {"answer_version": ber.VERSION_1}),
    (V1, {"request_id_offset": 1}), (V2C, {"request_id_offset": 1}),
    (V1, {"answer_pdu": ber.GET_REQUEST}), (V2C, {"answer_pdu": ber.GET_REQUEST}),
    (V1, {"answer_pdu": ber.REPORT}), (V2C, {"answer_pdu": ber.REPORT}),
], ids=["v1-as-v2c", "v2c-as-v1", "v1-request-id", "v2c-request-id", "v1-get-pdu", "v2c-get-pdu",
        "v1-report-pdu", "v2c-report-pdu"])
async def test_answers_that_do_not_match_the_request_time_out(engine: SnmpEngine, creds: Credentials,
                                                              change: dict[str, Any]) -> None:
    """Another SNMP version, another request-id, another PDU type: dropped (before, the fast path took a
    v1 answer to a v2c request and the reverse); the timeout says that datagrams did arrive. One known
    difference (agent/snmp/ber.py): pysnmp takes a v2c Report-PDU as the response."""
    device = TableDevice(table(), **change)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, creds)
        if not engine.fast_path and creds.version == "2c" and change.get("answer_pdu") == ber.REPORT:
            assert await target.get([row(1)]) == [(row(1), SnmpValue("integer", 1))]
            return
        with pytest.raises(SnmpTimeout, match=r"2 datagram\(s\) did arrive from the device") as caught:
            await target.get([row(1)])
        assert caught.value.reason == "timeout"


# ----------------------------------------------------------------------------------------- reasons


def test_every_error_class_has_its_reason() -> None:
    reasons = {SnmpError: "snmp_error", SnmpTimeout: "timeout", SnmpAuthError: "auth",
               SnmpAddressError: "address", SnmpWrongOid: "wrong_oid", SnmpNotIncreasing: "not_increasing",
               SnmpTooManyRows: "too_many_rows", SnmpWalkTooLong: "walk_time"}
    for cls, reason in reasons.items():
        assert cls.reason == reason
        assert cls("message").reason == reason
        assert issubclass(cls, SnmpError)
    for cls in (SnmpNotIncreasing, SnmpTooManyRows, SnmpWalkTooLong):
        assert issubclass(cls, SnmpWalkError)
    assert not issubclass(SnmpWalkTooLong, SnmpTimeout)  # a slow walk is not a device that is down
    assert set(ERROR_REASONS) == set(reasons.values())
    # and each reason is one the poller counts (wire.messages.ERROR_REASONS, docs/metrics.md)
    assert set(ERROR_REASONS) <= {"timeout", "auth", "address", "wrong_oid", "not_increasing",
                                       "too_many_rows", "walk_time", "snmp_error"}


async def test_row_and_time_caps_have_their_reasons(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(Column(COL, 50_000))) as responder:
        target = await target_for(engine, responder, V2C)
        with pytest.raises(SnmpTooManyRows) as rows:
            await target.walk(COL, max_rows=100)
        with pytest.raises(SnmpWalkTooLong) as slow:
            await target.walk(COL, max_time=0.01)
    assert rows.value.reason == "too_many_rows"
    assert "more than 100 rows under" in str(rows.value)
    assert slow.value.reason == "walk_time"
    assert "took longer than 0.01 s" in str(slow.value)


async def test_unusable_address_has_reason_address(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE):
        with pytest.raises(SnmpAddressError, match=r"cannot use address no-such-host\.invalid:161") as caught:
            await engine.target("no-such-host.invalid", 161, V2C, timeout=TIMEOUT, retries=0)
    assert caught.value.reason == "address"


async def test_an_oid_ber_cannot_carry_is_snmp_error(engine: SnmpEngine) -> None:
    async with asyncio.timeout(TEST_DEADLINE), await serve(TableDevice(table())) as responder:
        target = await target_for(engine, responder, V2C)
        with pytest.raises(SnmpError) as caught:
            await target.get([(1, 40, 1)])
    assert caught.value.reason == "snmp_error"


# ------------------------------------------------------------------------------------------ poller


def system_rows() -> list[tuple[OID, Value]]:
    return [(SYS_DESCR, ber.octets("test responder")), (SYS_OBJECT_ID, ber.oid(ENTERPRISE)),
            (SYS_UPTIME, ber.timeticks(12_345)), (SYS_NAME, ber.octets("broken"))]


IF_DESCR: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_OPER: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_NAME: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)


def interface_rows() -> list[tuple[OID, Value]]:
    return [((*IF_DESCR, 1), ber.octets("eth0")), ((*IF_OPER, 1), ber.integer(1)),
            ((*IF_NAME, 1), ber.octets("eth0"))]


@pytest.mark.parametrize(("device", "profile", "reason"), [
    (TableDevice(Table(system_rows()), rewrite=get_other_oid(0, (*ENTERPRISE, 7))), "system", "wrong_oid"),
    (TableDevice(Table(system_rows() + interface_rows()), loop_after=0, loop_mode="same"), "interfaces",
     "not_increasing"),
], ids=["get-other-oid", "walk-echo"])
async def test_poller_reports_a_broken_device_with_its_reason(engine: SnmpEngine, device: TableDevice,
                                                              profile: str, reason: str) -> None:
    """The issue's symptom: such a device was "UP (answered)", "errors: none", 0 samples."""
    profiles = load_profiles(None)
    async with asyncio.timeout(TEST_DEADLINE), await serve(device) as responder:
        target = await target_for(engine, responder, V2C)
        poller = DevicePoller("broken", target, [profiles[profile]], deadline=10.0,
                              timeout_errors=(SnmpTimeout, SnmpAuthError), snmp_errors=(SnmpError,))
        outcome = await poller.poll()
    assert outcome.errors, "a broken device must not poll without errors"
    error = outcome.errors[0]
    assert error.profile == profile
    assert getattr(error, "reason", reason) == reason
    assert ("different object than asked" if reason == "wrong_oid" else "OID not increasing") in error.error

"""Tests of SnmpTarget.walk_columns (agent/snmp/target.py): several subtrees walked side by side, one
GETBULK carrying the next OID of each, over tests/unit/test_snmp_target.py's fake Session (its device
answers a GETBULK of several OIDs repetition by repetition, as RFC 3416 orders it)."""

from __future__ import annotations

import logging
import random

import pytest

from agent.snmp.errors import SnmpError, SnmpNotIncreasing, SnmpTooManyRows
from agent.snmp.row_order import row_order_problem
from agent.snmp.target import COLUMN_FACTOR, SnmpTarget
from agent.snmp.values import OID, SnmpValue
from tests.unit.test_snmp_target import END, VB, FakeSession, Req, Resp, Rewrite, column

TABLE: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)
COLUMNS: list[OID] = [(*TABLE, c) for c in (2, 3, 5, 10, 16)]
AFTER: OID = (1, 3, 6, 1, 2, 1, 2, 3, 0)  # past the table: what ends each column's walk


def table(rows: int, columns: list[OID] = COLUMNS) -> list[VB]:
    return [*(vb for c in columns for vb in column(c, rows)), (AFTER, SnmpValue("integer", 1))]


def bulks(session: FakeSession) -> list[Req]:
    return [r for r in session.requests if r.kind == "bulk"]


async def one_by_one(rows: list[VB], roots: list[OID], version: str = "2c") -> list[list[VB]]:
    target = SnmpTarget(FakeSession(rows, version=version))
    return [await target.walk(root) for root in roots]


@pytest.mark.parametrize("rows", [0, 1, 7, 16, 17, 100])
async def test_columns_side_by_side_give_the_rows_of_walking_each(rows: int) -> None:  # [device]
    device = table(rows)
    session = FakeSession(device)
    got = await SnmpTarget(session).walk_columns(COLUMNS)
    assert got == await one_by_one(device, COLUMNS)
    assert got == [column(c, rows) for c in COLUMNS]


async def test_a_table_costs_about_columns_times_fewer_requests() -> None:  # [device]
    session = FakeSession(table(100))
    await SnmpTarget(session).walk_columns(COLUMNS)
    budget = 10 * COLUMN_FACTOR  # max-repetitions 10 by default
    reps = budget // len(COLUMNS)
    # 100 rows, `reps` rows per request, and one more request that sees every column end
    assert len(bulks(session)) == 100 // reps + 1
    assert all(r.oids and len(r.oids) == len(COLUMNS) and r.reps == reps for r in bulks(session))
    single = FakeSession(table(100))
    for root in COLUMNS:
        await SnmpTarget(single).walk(root)
    assert len(bulks(single)) >= 4 * len(bulks(session))


async def test_a_column_that_ends_is_not_asked_again() -> None:  # [device]
    short, long = (*TABLE, 2), (*TABLE, 3)
    device = sorted([*column(short, 2), *column(long, 40), (AFTER, SnmpValue("integer", 1))])
    session = FakeSession(device)
    got = await SnmpTarget(session).walk_columns([short, long])
    assert got == [column(short, 2), column(long, 40)]
    first, *rest = bulks(session)
    assert first.oids == (short, long)
    assert rest and all(r.oids == ((*long, r.oids[0][-1]),) for r in rest)


async def test_each_column_continues_from_its_own_last_row() -> None:  # [device]
    session = FakeSession(table(60))
    await SnmpTarget(session).walk_columns(COLUMNS[:2])
    second = bulks(session)[1]
    reps = bulks(session)[0].reps
    assert second.oids == ((*COLUMNS[0], reps), (*COLUMNS[1], reps))


async def test_a_truncated_response_is_continued_where_each_column_stopped() -> None:  # [device]
    # The device answers fewer varbinds than asked (RFC 3416 lets it, to fit its message size): the
    # last repetition is partial, and the columns it left out are asked from where they were.
    def truncate(req: Req, reply: Resp) -> Resp:
        return Resp(reply.varbinds[:7]) if len(req.oids) == 3 else reply

    session = FakeSession(table(30), rewrite=truncate)
    got = await SnmpTarget(session).walk_columns(COLUMNS[:3])
    assert got == [column(c, 30) for c in COLUMNS[:3]]
    second = bulks(session)[1]
    assert second.oids == ((*COLUMNS[0], 3), (*COLUMNS[1], 2), (*COLUMNS[2], 2))


async def test_a_column_going_backwards_raises_and_names_it() -> None:  # [device]
    def backwards(req: Req, reply: Resp) -> Resp:
        varbinds = list(reply.varbinds)
        varbinds[3] = (COLUMNS[1], SnmpValue("integer", 0))  # column 1, repetition 2: its root again
        return Resp(varbinds)

    session = FakeSession(table(20), rewrite=backwards)
    with pytest.raises(SnmpNotIncreasing, match=r"while walking 1\.3\.6\.1\.2\.1\.2\.2\.1\.3 .*went "
                                                r"backwards"):
        await SnmpTarget(session).walk_columns(COLUMNS[:2])


async def test_what_follows_a_finished_column_is_not_judged() -> None:  # [device]
    # Column 2 is empty: its varbinds are the next column's rows, then anything (even going backwards).
    short, empty, long = (*TABLE, 2), (*TABLE, 4), (*TABLE, 5)
    device = sorted([*column(short, 3), *column(long, 3), (AFTER, SnmpValue("integer", 1))])

    def noise(req: Req, reply: Resp) -> Resp:
        n = len(req.oids)
        return Resp([(short, END) if k % n == 1 and k > n else vb for k, vb in enumerate(reply.varbinds)])

    session = FakeSession(device, rewrite=noise)
    assert await SnmpTarget(session).walk_columns([short, empty, long]) == [column(short, 3), [],
                                                                            column(long, 3)]


async def test_too_big_halves_the_request_then_asks_one_column_at_a_time() -> None:  # [script]
    too_big = Resp([], 1, 0, "tooBig")
    session = FakeSession(table(5), script=[too_big, too_big, too_big, too_big])
    target = SnmpTarget(session, max_repetitions=8)
    got = await target.walk_columns(COLUMNS)
    assert got == [column(c, 5) for c in COLUMNS]
    sizes = [len(r.oids) * r.reps for r in bulks(session)]
    budgets = [reps * COLUMN_FACTOR for reps in (8, 4, 2, 1)]  # max-repetitions halved by each tooBig
    assert sizes[:4] == [budget // len(COLUMNS) * len(COLUMNS) for budget in budgets]
    # even one row of the five columns was too big: from then on one OID, one row per request
    assert all(len(r.oids) == 1 and r.reps == 1 for r in bulks(session)[4:])
    assert target.max_repetitions == 1
    assert len(bulks(session)) == 4 + len(COLUMNS) * 6  # 5 rows and the end, for each column


async def test_too_big_for_one_row_of_one_column_is_an_error() -> None:  # [script]
    too_big = Resp([], 1, 0, "tooBig")
    session = FakeSession(table(5), script=[too_big] * 5)
    with pytest.raises(SnmpError, match="reported tooBig"):
        await SnmpTarget(session, max_repetitions=8).walk_columns(COLUMNS)
    assert len(bulks(session)) == 5


async def test_max_rows_holds_for_each_column() -> None:  # [device]
    with pytest.raises(SnmpTooManyRows, match=r"more than 20 rows under 1\.3\.6\.1\.2\.1\.2\.2\.1\.3"):
        await SnmpTarget(FakeSession(sorted([*column(COLUMNS[0], 5), *column(COLUMNS[1], 21)]))
                         ).walk_columns(COLUMNS[:2], max_rows=20)
    assert await SnmpTarget(FakeSession(table(20))).walk_columns(COLUMNS, max_rows=20) == [
        column(c, 20) for c in COLUMNS]


async def test_snmpv1_walks_the_columns_one_after_the_other() -> None:  # [device] v1
    device = table(4, COLUMNS[:2])
    session = FakeSession(device, version="1")
    got = await SnmpTarget(session).walk_columns(COLUMNS[:2])
    assert got == await one_by_one(device, COLUMNS[:2], "1") == [column(c, 4) for c in COLUMNS[:2]]
    assert all(r.kind == "next" and len(r.oids) == 1 for r in session.requests)


async def test_a_silent_drop_retries_with_one_varbind_as_a_single_walk_does() -> None:  # [device]
    # A device that drops responses of more than 3 rows: after one timeout, one OID and one row; from
    # then on the columns share max-repetitions (grown back after 50 good responses, up to half the 10
    # that got no answer) instead of asking 8 times as many varbinds.
    session = FakeSession(table(30), timeout_above=3)
    target = SnmpTarget(session)
    target.answered = True  # it answered before (the GET of the poll)
    assert await target.walk_columns(COLUMNS) == [column(c, 30) for c in COLUMNS]
    first, second, *rest = bulks(session)
    assert first.reps > 3 and (len(second.oids), second.reps) == (1, 1)
    assert all(len(r.oids) * r.reps <= 5 for r in rest) and len(rest) > 100


def column_major(device: list[VB]) -> Rewrite:
    """A device that answers a GETBULK of several OIDs column by column instead of row by row."""
    def rewrite(req: Req, reply: Resp) -> Resp:
        if req.kind != "bulk" or len(req.oids) == 1:
            return reply
        varbinds: list[VB] = []
        for cursor in req.oids:
            after = [vb for vb in device if vb[0] > cursor][:req.reps]
            varbinds.extend(after + [(cursor, END)] * (req.reps - len(after)))
        return Resp(varbinds)
    return rewrite


@pytest.mark.parametrize("order", [COLUMNS, COLUMNS[::-1]])
async def test_a_device_answering_column_by_column_is_walked_one_column_at_a_time(
        order: list[OID], caplog: pytest.LogCaptureFixture) -> None:  # [device]
    device = table(12)
    session = FakeSession(device, rewrite=column_major(device))
    target = SnmpTarget(session)
    with caplog.at_level(logging.INFO, "hatang.agent.snmp"):
        assert await target.walk_columns(order) == [column(c, 12) for c in order]
    assert "answers a GETBULK of several OIDs out of order" in caplog.text
    session.requests.clear()
    assert await target.walk_columns(order) == [column(c, 12) for c in order]  # no second try needed
    assert all(len(r.oids) == 1 for r in session.requests)


async def test_a_column_broken_on_its_own_still_fails_and_several_columns_stay_on() -> None:  # [device]
    broken = COLUMNS[2]

    def echo(req: Req, reply: Resp) -> Resp:  # the device echoes the root of one column
        return Resp([(broken, SnmpValue("integer", 0)) if oid[:len(broken)] == broken else (oid, value)
                     for oid, value in reply.varbinds])

    session = FakeSession(table(5), rewrite=echo)
    target = SnmpTarget(session)
    with pytest.raises(SnmpNotIncreasing, match=r"while walking 1\.3\.6\.1\.2\.1\.2\.2\.1\.5 "):
        await target.walk_columns(COLUMNS)
    session.requests.clear()
    assert await target.walk_columns(COLUMNS[:2]) == [column(c, 5) for c in COLUMNS[:2]]
    assert len(bulks(session)[0].oids) == 2


def first_oid_only(device: list[VB]) -> Rewrite:
    """A device that follows only the first OID of a GETBULK of several."""
    def rewrite(req: Req, reply: Resp) -> Resp:
        if req.kind != "bulk" or len(req.oids) == 1:
            return reply
        after = [vb for vb in device if vb[0] > req.oids[0]][:req.reps * len(req.oids)]
        return Resp(after or [(req.oids[0], END)])
    return rewrite


@pytest.mark.parametrize("misbehaving", [column_major, first_oid_only])
async def test_leading_empty_columns_of_a_misbehaving_device_lose_no_rows(misbehaving: object) -> None:
    # Without the row-order check, the varbinds of the empty columns (really the third column's rows)
    # would end those columns and be thrown away: two thirds of the third column lost, no error.
    cols = COLUMNS[:3]
    device = sorted([*column(cols[2], 12), (AFTER, SnmpValue("integer", 1))])
    assert callable(misbehaving)
    target = SnmpTarget(FakeSession(device, rewrite=misbehaving(device)))
    assert await target.walk_columns(cols) == [[], [], column(cols[2], 12)]


def test_a_row_by_row_answer_passes_the_order_check() -> None:
    device = sorted([*column(COLUMNS[1], 3), *column(COLUMNS[3], 1), (AFTER, SnmpValue("integer", 1))])
    session = FakeSession(device)
    asked = (COLUMNS[0], COLUMNS[1], COLUMNS[3], AFTER)
    reply = session._device(Req("bulk", asked, 4))
    assert row_order_problem(asked, reply.varbinds) is None
    wrong = list(reply.varbinds)
    wrong[1], wrong[5] = wrong[5], wrong[1]
    assert row_order_problem(asked, wrong) is not None


@pytest.mark.parametrize("seed", range(6))
async def test_side_by_side_equals_one_by_one_on_random_tables_and_devices(seed: int) -> None:
    # Random tables (columns of 0-9 rows, sparse), random subsets of columns, max-repetitions 1-9, and
    # devices that answer as RFC 3416 says, cut responses short, answer column by column or follow only
    # the first OID: the rows are always those of walking each column alone.
    rng = random.Random(seed)
    modes = ("rfc", "truncate", "column_major", "first_only")
    for case in range(60):
        roots = [(*TABLE, c) for c in sorted(rng.sample(range(1, 12), rng.randint(2, 6)))]
        device = sorted([*(((*root, i), SnmpValue("integer", i)) for root in roots
                           for i in sorted(rng.sample(range(1, 40), rng.randint(0, 9)))),
                         *([(AFTER, SnmpValue("integer", 1))] if rng.random() < 0.7 else [])])
        mode = modes[case % len(modes)]
        rewrite: Rewrite | None = {
            "rfc": None, "column_major": column_major(device), "first_only": first_oid_only(device),
            "truncate": lambda req, reply: Resp(reply.varbinds[:max(1, len(reply.varbinds) - 3)]),
        }[mode]
        asked = rng.sample(roots, len(roots))
        target = SnmpTarget(FakeSession(device, rewrite=rewrite), max_repetitions=rng.randint(1, 9))
        got = await target.walk_columns(asked)
        assert got == await one_by_one(device, asked), (seed, case, mode)

"""Tests of SnmpTarget (agent/snmp/target.py) over a fake Session: no sockets, no pysnmp requests.

``FakeSession`` plays its ``script`` first (one step per request: a ``Resp`` is returned, an ``SnmpError``
raised, an ``asyncio.Event`` awaited (never set: a device that hangs), ``None`` lets the device answer);
then the *device* answers: a sorted list of (OID, value) rows served like a real agent (GET, GETNEXT,
GETBULK; endOfMibView at the end, v1 noSuchName), with fault hooks (``too_big_above``, ``timeout_above``,
``rewrite``). Each test says "[script]" or "[device]" for the one it leans on.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from agent.snmp.community import CommunitySession
from agent.snmp.credentials import Credentials
from agent.snmp.errors import (
    SnmpAuthError,
    SnmpError,
    SnmpNotIncreasing,
    SnmpTimeout,
    SnmpTooManyRows,
    SnmpWalkTooLong,
    SnmpWrongOid,
)
from agent.snmp.pysnmp_session import PysnmpSession
from agent.snmp.session import Session
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue, oid_text

VB = tuple[OID, SnmpValue]

SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_DESCR: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_TYPE: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 3)
MISSING: OID = (1, 3, 6, 1, 2, 1, 1, 4, 0)
NULL = SnmpValue("null", None)
END = SnmpValue("end_of_mib_view", None)
NO_SUCH_OBJECT = SnmpValue("no_such_object", None)
WHERE = "192.0.2.7:161"


@dataclass(frozen=True)
class Resp:
    """A device's response (an agent.snmp.session.Reply)."""

    varbinds: list[VB] = field(default_factory=list)
    error_status: int = 0
    error_index: int = 0
    error_name: str = "noError"


@dataclass(frozen=True)
class Req:
    kind: str  # "get", "next" or "bulk"
    oids: tuple[OID, ...]
    reps: int = 0


Step = Resp | SnmpError | asyncio.Event | None
Rewrite = Callable[[Req, Resp], Resp]


class FakeSession:
    """A Session: the script first, then the device (see the module doc). Records every request."""

    def __init__(self, rows: Sequence[VB] = (), *, version: str = "2c", script: Sequence[Step] = (),
                 too_big_above: int | None = None, timeout_above: int | None = None,
                 rewrite: Rewrite | None = None) -> None:
        self.creds = Credentials(version=version)
        self.host = "192.0.2.7"
        self.port = 161
        self.rows = sorted(rows, key=lambda row: row[0])
        self.script = list(script)
        self.too_big_above = too_big_above
        self.timeout_above = timeout_above
        self.rewrite = rewrite
        self.requests: list[Req] = []

    async def get(self, oids: Sequence[OID]) -> Resp:
        return await self._answer(Req("get", tuple(oids)))

    async def get_next(self, oid: OID) -> Resp:
        return await self._answer(Req("next", (oid,)))

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Resp:
        return await self._answer(Req("bulk", tuple(oids), max_repetitions))

    @property
    def reps(self) -> list[int]:
        return [r.reps for r in self.requests if r.kind == "bulk"]

    async def _answer(self, req: Req) -> Resp:
        self.requests.append(req)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, asyncio.Event):
                await step.wait()
            elif isinstance(step, SnmpError):
                raise step
            elif step is not None:
                return step
        if req.kind == "bulk" and self.timeout_above is not None and req.reps > self.timeout_above:
            raise SnmpTimeout(f"no answer from {WHERE} (bulk of {req.reps})")
        if req.kind == "bulk" and self.too_big_above is not None and req.reps > self.too_big_above:
            return Resp(error_status=1, error_name="tooBig")
        reply = self._device(req)
        return self.rewrite(req, reply) if self.rewrite else reply

    def _device(self, req: Req) -> Resp:
        v1 = self.creds.version == "1"
        if req.kind == "get":
            table = dict(self.rows)
            for i, oid in enumerate(req.oids, 1):
                if oid not in table and v1:
                    return Resp([(o, NULL) for o in req.oids], 2, i, "noSuchName")
            return Resp([(o, table.get(o, NO_SUCH_OBJECT)) for o in req.oids])
        varbinds: list[VB] = []
        cursors = list(req.oids)
        for _ in range(req.reps if req.kind == "bulk" else 1):  # repetition by repetition (RFC 3416)
            ended = 0
            for j, cursor in enumerate(cursors):
                row = next(((o, v) for o, v in self.rows if o > cursor), None)
                if row is None:
                    if v1:
                        return Resp([(cursor, NULL)], 2, 1, "noSuchName")
                    varbinds.append((cursor, END))
                    ended += 1
                    continue
                varbinds.append(row)
                cursors[j] = row[0]
            if ended == len(cursors):
                break
        return Resp(varbinds)


def column(root: OID, n: int) -> list[VB]:
    return [((*root, i), SnmpValue("integer", i)) for i in range(1, n + 1)]


def mib(n: int = 3) -> list[VB]:
    """Two scalars, ``n`` rows of IF_DESCR, then two of IF_TYPE (outside the IF_DESCR subtree)."""
    return [(SYS_DESCR, SnmpValue("octets", b"Linux")), (SYS_NAME, SnmpValue("octets", b"sw1")),
            *column(IF_DESCR, n), *column(IF_TYPE, 2)]


def bulk(oid: OID, reps: int) -> Req:
    return Req("bulk", (oid,), reps)


def nxt(oid: OID) -> Req:
    return Req("next", (oid,))


def on_request(number: int, change: Callable[[Req, Resp], Resp]) -> Rewrite:
    """A rewrite hook that changes only the ``number``-th walk request's response (1-based)."""
    seen: list[Req] = []

    def rewrite(req: Req, reply: Resp) -> Resp:
        seen.append(req)
        return change(req, reply) if len(seen) == number else reply
    return rewrite


# --- GET ----------------------------------------------------------------------------------------


async def test_get_returns_values_in_request_order() -> None:  # [device]
    session = FakeSession(mib())
    target = SnmpTarget(session)
    assert await target.get([SYS_NAME, SYS_DESCR]) == [
        (SYS_NAME, SnmpValue("octets", b"sw1")), (SYS_DESCR, SnmpValue("octets", b"Linux"))]
    assert session.requests == [Req("get", (SYS_NAME, SYS_DESCR))]


async def test_get_missing_object_is_no_such_object() -> None:  # [device] v2c
    target = SnmpTarget(FakeSession(mib()))
    assert await target.get([MISSING, SYS_NAME]) == [(MISSING, NO_SUCH_OBJECT),
                                                    (SYS_NAME, SnmpValue("octets", b"sw1"))]


async def test_get_v1_no_such_name_drops_that_oid_and_retries() -> None:  # [device] v1
    session = FakeSession(mib(), version="1")
    target = SnmpTarget(session)
    assert await target.get([SYS_DESCR, MISSING, SYS_NAME]) == [
        (SYS_DESCR, SnmpValue("octets", b"Linux")), (MISSING, NO_SUCH_OBJECT),
        (SYS_NAME, SnmpValue("octets", b"sw1"))]
    assert session.requests == [Req("get", (SYS_DESCR, MISSING, SYS_NAME)), Req("get", (SYS_DESCR, SYS_NAME))]


async def test_get_v1_all_missing_sends_one_request_per_missing_oid() -> None:  # [device] v1
    session = FakeSession(mib(), version="1")
    assert await SnmpTarget(session).get([MISSING]) == [(MISSING, NO_SUCH_OBJECT)]
    assert session.requests == [Req("get", (MISSING,))]


@pytest.mark.parametrize(("version", "index"), [("2c", 1), ("1", 0), ("1", 3)])
async def test_get_no_such_name_not_retried_on_v2c_or_bad_index(version: str, index: int) -> None:  # [script]
    session = FakeSession(version=version, script=[Resp([(MISSING, NULL), (SYS_NAME, NULL)], 2, index,
                                                        "noSuchName")])
    with pytest.raises(SnmpError, match=f"^{WHERE} reported noSuchName at varbind {index}") as info:
        await SnmpTarget(session).get([MISSING, SYS_NAME])
    assert type(info.value) is SnmpError
    assert len(session.requests) == 1


@pytest.mark.parametrize(("change", "asked", "received", "count"), [
    (lambda r: [(SYS_NAME, r[0][1]), r[1]], SYS_DESCR, SYS_NAME, ""),  # another OID
    (lambda r: [r[1], r[0]], SYS_DESCR, SYS_NAME, ""),  # another order
    (lambda r: r[:1], SYS_NAME, "nothing", " and 1 varbind(s) for 2 OID(s) asked"),  # fewer varbinds
])
async def test_get_wrong_oids_raise_wrong_oid(change: Callable[[list[VB]], list[VB]], asked: OID,
                                              received: OID | str, count: str) -> None:  # [device]
    session = FakeSession(mib(), rewrite=lambda req, reply: Resp(change(reply.varbinds)))
    got = received if isinstance(received, str) else oid_text(received)
    with pytest.raises(SnmpWrongOid, match=re.escape(f"asked {oid_text(asked)}, received {got} at varbind")
                       + r".*" + re.escape(f"{count}; the device answered")):
        await SnmpTarget(session).get([SYS_DESCR, SYS_NAME])


@pytest.mark.parametrize(("status", "name"), [(16, "authorizationError"), (6, "noAccess")])
async def test_get_access_refused_raises_auth_error(status: int, name: str) -> None:  # [script]
    session = FakeSession(script=[Resp([(SYS_NAME, NULL)], status, 1, name)])
    with pytest.raises(SnmpAuthError, match=re.escape(f"{WHERE} refused access ({name}) at varbind 1 "
                                                      f"({oid_text(SYS_NAME)})")):
        await SnmpTarget(session).get([SYS_NAME])


async def test_get_gen_err_names_the_varbind() -> None:  # [script]
    session = FakeSession(script=[Resp([(SYS_DESCR, NULL), (SYS_NAME, NULL)], 5, 2, "genErr")])
    with pytest.raises(SnmpError) as info:
        await SnmpTarget(session).get([SYS_DESCR, SYS_NAME])
    assert type(info.value) is SnmpError
    assert str(info.value) == f"{WHERE} reported genErr at varbind 2 ({oid_text(SYS_NAME)})"


# --- walk, SNMPv2c --------------------------------------------------------------------------------


async def test_walk_stops_at_first_oid_outside_and_ignores_rest_of_response() -> None:  # [device]
    # After the subtree the response goes backwards: not looked at, so no error.
    session = FakeSession(mib(3), rewrite=lambda req, reply: Resp([*reply.varbinds, (SYS_DESCR, NULL)]))
    assert await SnmpTarget(session).walk(IF_DESCR) == column(IF_DESCR, 3)
    assert session.requests == [bulk(IF_DESCR, 10)]


async def test_walk_continues_from_the_last_oid_of_each_response() -> None:  # [device]
    session = FakeSession(mib(25))
    assert await SnmpTarget(session).walk(IF_DESCR) == column(IF_DESCR, 25)
    assert session.requests == [bulk(IF_DESCR, 10), bulk((*IF_DESCR, 10), 10), bulk((*IF_DESCR, 20), 10)]


async def test_walk_ends_at_end_of_mib_view() -> None:  # [device]
    session = FakeSession(column(IF_DESCR, 3))
    assert await SnmpTarget(session, max_repetitions=2).walk(IF_DESCR) == column(IF_DESCR, 3)
    assert session.requests == [bulk(IF_DESCR, 2), bulk((*IF_DESCR, 2), 2)]


async def test_walk_row_cap() -> None:  # [device]
    assert len(await SnmpTarget(FakeSession(mib(25))).walk(IF_DESCR, max_rows=25)) == 25
    with pytest.raises(SnmpTooManyRows, match=re.escape(f"more than 24 rows under {oid_text(IF_DESCR)} on "
                                                        f"{WHERE}")):
        await SnmpTarget(FakeSession(mib(25))).walk(IF_DESCR, max_rows=24)


def _echo(req: Req, reply: Resp) -> Resp:
    return Resp([(req.oids[0], SnmpValue("integer", 7)), *reply.varbinds])


def _backwards(req: Req, reply: Resp) -> Resp:
    return Resp([((*IF_DESCR, 1), SnmpValue("integer", 1))])


def _repeat_in_response(req: Req, reply: Resp) -> Resp:
    return Resp([reply.varbinds[0], reply.varbinds[1], reply.varbinds[1]])


@pytest.mark.parametrize(("rewrite", "bad", "place", "what"), [
    (_echo, (*IF_DESCR, 10), f"in answer to a request for the OID after {oid_text(IF_DESCR)}.10", "loops"),
    (_backwards, (*IF_DESCR, 1), f"in answer to a request for the OID after {oid_text(IF_DESCR)}.10",
     "it went backwards"),
    (_repeat_in_response, (*IF_DESCR, 12), f"after {oid_text(IF_DESCR)}.12 in the same GETBULK response",
     "loops"),
])
async def test_walk_oid_not_increasing(rewrite: Rewrite, bad: OID, place: str, what: str) -> None:  # [device]
    session = FakeSession(mib(25), rewrite=on_request(2, rewrite))
    with pytest.raises(SnmpNotIncreasing, match=re.escape(f"returned OID {oid_text(bad)} {place} while "
                                                          f"walking {oid_text(IF_DESCR)}") + f".*{what}"):
        await SnmpTarget(session).walk(IF_DESCR)
    assert len(session.requests) == 2


async def test_walk_root_echoed_with_a_value_raises() -> None:  # [script]
    session = FakeSession(script=[Resp([(IF_DESCR, SnmpValue("integer", 1))])])
    with pytest.raises(SnmpNotIncreasing, match="the same OID again: the agent loops"):
        await SnmpTarget(session).walk(IF_DESCR)


@pytest.mark.parametrize("kind", ["no_such_object", "no_such_instance"])
@pytest.mark.parametrize(("number", "rows"), [(1, 0), (2, 10)])
async def test_walk_no_such_repeating_requested_oid_ends_cleanly(kind: str, number: int,
                                                                 rows: int) -> None:  # [device]
    session = FakeSession(mib(25), rewrite=on_request(number, lambda req, reply: Resp(
        [(req.oids[0], SnmpValue(kind, None))])))
    assert await SnmpTarget(session).walk(IF_DESCR) == column(IF_DESCR, rows)
    assert len(session.requests) == number


async def test_walk_no_such_with_increasing_oid_is_a_value() -> None:  # [device]
    rows = [((*IF_DESCR, 1), SnmpValue("no_such_instance", None)), ((*IF_DESCR, 2), SnmpValue("integer", 2))]
    assert await SnmpTarget(FakeSession(rows)).walk(IF_DESCR) == rows


async def test_walk_bulk_with_zero_varbinds_raises_wrong_oid() -> None:  # [device]
    session = FakeSession(mib(), rewrite=lambda req, reply: Resp([]))
    with pytest.raises(SnmpWrongOid, match=re.escape(f"{WHERE} answered a GETBULK for {oid_text(IF_DESCR)} "
                                                     "with 0 varbinds instead of at least one")):
        await SnmpTarget(session).walk(IF_DESCR)


# --- walk, SNMPv1 ---------------------------------------------------------------------------------


async def test_walk_v1_uses_get_next_and_ends_at_no_such_name() -> None:  # [device] v1
    session = FakeSession(column(IF_DESCR, 3), version="1")
    assert await SnmpTarget(session).walk(IF_DESCR) == column(IF_DESCR, 3)
    assert session.requests == [nxt(IF_DESCR), *(nxt((*IF_DESCR, i)) for i in (1, 2, 3))]


async def test_walk_v1_last_row_repeated_ends_cleanly() -> None:  # [device] v1
    rows = column(IF_DESCR, 3)
    session = FakeSession(rows, version="1", rewrite=lambda req, reply: Resp([rows[-1]])
                          if req.oids[0] == rows[-1][0] else reply)
    assert await SnmpTarget(session).walk(IF_DESCR) == rows
    assert [r.kind for r in session.requests] == ["next"] * 4


async def test_walk_v1_repeated_oid_as_first_answer_raises() -> None:  # [script] v1
    session = FakeSession(version="1", script=[Resp([(IF_DESCR, SnmpValue("integer", 1))])])
    root = oid_text(IF_DESCR)
    with pytest.raises(SnmpNotIncreasing, match=re.escape(
            f"returned OID {root} in answer to a request for the OID after {root} while walking {root}")):
        await SnmpTarget(session).walk(IF_DESCR)


async def test_walk_v1_get_next_with_two_varbinds_raises_wrong_oid() -> None:  # [device] v1
    session = FakeSession(mib(), version="1", rewrite=lambda req, reply: Resp(reply.varbinds * 2))
    with pytest.raises(SnmpWrongOid, match=re.escape(f"a GETNEXT for {oid_text(IF_DESCR)} with 2 varbinds "
                                                     "instead of exactly one")):
        await SnmpTarget(session).walk(IF_DESCR)


# --- max-repetitions adaptation -------------------------------------------------------------------


async def test_too_big_halves_max_repetitions_for_good() -> None:  # [device]
    session = FakeSession(mib(150), too_big_above=3)
    target = SnmpTarget(session)
    assert await target.walk(IF_DESCR) == column(IF_DESCR, 150)
    assert session.reps[:4] == [10, 5, 2, 2]
    assert set(session.reps[2:]) == {2} and len(session.reps) == 2 + 76  # > 50 good: no growth
    assert target.max_repetitions == 2
    session.requests.clear()
    await target.walk(IF_TYPE)
    assert session.reps == [2, 2]


async def test_too_big_at_one_repetition_raises() -> None:  # [script]
    session = FakeSession(script=[Resp(error_status=1, error_name="tooBig")])
    with pytest.raises(SnmpError, match=f"^{WHERE} reported tooBig at varbind 0$"):
        await SnmpTarget(session, max_repetitions=1).walk(IF_DESCR)


async def test_bulk_timeout_after_an_answer_retries_with_one_then_grows_to_half() -> None:  # [device]
    session = FakeSession(column(IF_DESCR, 400) + column(IF_TYPE, 1), timeout_above=5)
    target = SnmpTarget(session)
    await target.get([(*IF_DESCR, 1)])
    assert await target.walk(IF_DESCR) == column(IF_DESCR, 400)
    assert session.reps[:152] == [10] + [1] * 50 + [2] * 50 + [4] * 50 + [5]
    assert set(session.reps[151:]) == {5}  # never above half of 10, the size that got no answer
    assert session.requests[1:3] == [bulk(IF_DESCR, 10), bulk(IF_DESCR, 1)]  # the same step, retried


async def test_bulk_timeout_before_any_answer_is_raised_at_once() -> None:  # [device]
    session = FakeSession(mib(), timeout_above=0)
    target = SnmpTarget(session)
    with pytest.raises(SnmpTimeout, match="bulk of 10"):
        await target.walk(IF_DESCR)
    assert session.requests == [bulk(IF_DESCR, 10)]
    assert target.answered is False


async def test_second_timeout_in_the_same_step_is_raised() -> None:  # [script] then [device]
    timeout = SnmpTimeout("second timeout")
    session = FakeSession(mib(25), script=[None, SnmpTimeout("first"), timeout])
    target = SnmpTarget(session)
    with pytest.raises(SnmpTimeout) as info:
        await target.walk(IF_DESCR)
    assert info.value is timeout
    assert session.requests == [bulk(IF_DESCR, 10), bulk((*IF_DESCR, 10), 10), bulk((*IF_DESCR, 10), 1)]


async def test_timeout_at_one_repetition_is_not_retried() -> None:  # [script]
    session = FakeSession(mib(25), script=[None, SnmpTimeout("gone")])
    with pytest.raises(SnmpTimeout, match="gone"):
        await SnmpTarget(session, max_repetitions=1).walk(IF_DESCR)
    assert session.requests == [bulk(IF_DESCR, 1), bulk((*IF_DESCR, 1), 1)]


# --- walk time cap --------------------------------------------------------------------------------


@pytest.mark.parametrize("on_target", [False, True])
async def test_walk_time_cap(on_target: bool) -> None:  # [script]: the 2nd request hangs
    session = FakeSession(mib(25), script=[None, asyncio.Event()])
    target = SnmpTarget(session, max_walk_time=0.05 if on_target else None)
    started = time.monotonic()
    with pytest.raises(SnmpWalkTooLong, match=re.escape(
            f"walk of {oid_text(IF_DESCR)} on {WHERE} took longer than 0.05 s (10 rows so far)")):
        await asyncio.wait_for(target.walk(IF_DESCR, max_time=None if on_target else 0.05), 5)
    assert time.monotonic() - started < 2.0
    assert len(session.requests) == 2


# --- answered -------------------------------------------------------------------------------------


async def test_answered_flips_after_the_first_reply_only() -> None:  # [script] then [device]
    target = SnmpTarget(FakeSession(mib(), script=[SnmpTimeout("no answer")]))
    assert target.answered is False
    with pytest.raises(SnmpTimeout, match="no answer"):
        await target.get([SYS_NAME])
    assert target.answered is False
    assert await target.get([SYS_NAME]) == [(SYS_NAME, SnmpValue("octets", b"sw1"))]
    assert target.answered is True


# --- the Session protocol, checked at run time ----------------------------------------------------


def _set_in_init(cls: type) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(vars(cls)["__init__"])))
    return {t.attr for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}


@pytest.mark.parametrize("cls", [CommunitySession, PysnmpSession, FakeSession])
def test_sessions_have_the_protocol_members(cls: type) -> None:
    methods = [n for n, v in vars(Session).items() if inspect.iscoroutinefunction(v)]
    attributes = [n for n, v in vars(Session).items() if isinstance(v, property)]
    assert methods == ["get", "get_next", "get_bulk"] and attributes == ["creds", "host", "port"]
    for name in methods:
        method = getattr(cls, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method).parameters.keys() == inspect.signature(
            getattr(Session, name)).parameters.keys(), name
    assert set(attributes) <= _set_in_init(cls)

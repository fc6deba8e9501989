"""One device's ``get`` and ``walk`` over any :class:`agent.snmp.session.Session`, written once.

Broken answers are errors, never data, whichever session carried them: every GET response must carry,
position by position, exactly the OIDs of the request that was sent (after SNMPv1's noSuchName
drop-and-retry); a walk's OIDs must increase strictly, from the requested OID on and within each
GETBULK response. Otherwise a device that answers with the wrong objects, or echoes the OID it was
asked for, would look healthy with no data.

Walks are our own loop on GETBULK (GETNEXT for v1): they stay inside the requested subtree (a GETBULK
response may run past it: the walk ends there, and what follows in that response is not looked at), raise
:class:`SnmpNotIncreasing` on an OID that is not greater than the one before it (also the requested OID
echoed back), except that an SNMPv1 walk ends cleanly on the last row repeated after at least one row (v1
agents do that at the end of the MIB) and any walk ends on an exception value (``noSuch*``) that repeats
the requested OID (net-snmp ends there too), cap rows and (optionally) time, treat ``endOfMibView`` as
the end and ``noSuch*`` with increasing OIDs as values, halve max-repetitions on tooBig, and on a
timeout of a bulk request to a device that answered before, retry once with max-repetitions 1 (devices
that silently drop large responses; it then grows back by doubling after every 50 good responses, up to
half the size that got no answer). A device that dies mid-walk therefore costs one extra timeout.

:meth:`SnmpTarget.walk_columns` walks several subtrees (a table's columns) side by side: each GETBULK
carries the next OID of every subtree not yet finished, with about ``COLUMN_FACTOR`` x max-repetitions
varbinds in all; each subtree is judged as above on its own varbinds (the i-th varbind of a response
belongs to the (i mod n)-th OID asked, RFC 3416). A tooBig at one repetition makes the target ask one
OID per GETBULK from then on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
from collections.abc import Sequence

from agent.snmp.errors import (
    SnmpNotIncreasing,
    SnmpTimeout,
    SnmpTooManyRows,
    SnmpWalkTooLong,
    not_increasing,
    status_error,
    wrong_get_names,
    wrong_next_count,
)
from agent.snmp.row_order import NO_SUCH_KINDS, row_order_problem, rows_plainly_increase
from agent.snmp.session import Reply, Session
from agent.snmp.values import OID, SnmpValue, oid_text, oids_text

log = logging.getLogger("hatang.agent.snmp")

DEFAULT_MAX_REPETITIONS = 10
# A GETBULK of several subtrees asks for about this many times max-repetitions varbinds in all (the
# device answers them in one datagram: 80 varbinds of a table are about 2-3 kB).
COLUMN_FACTOR = 8
_GROW_AFTER = 50  # successful bulk responses before max-repetitions is raised again after a silent drop
_ENDS = NO_SUCH_KINDS | {"end_of_mib_view"}  # values that may end a subtree's walk
_NO_SUCH_OBJECT = SnmpValue("no_such_object", None)
_TOO_BIG, _NO_SUCH_NAME = 1, 2


class SnmpTarget:
    """One device with its credentials. Not safe for concurrent use: one request in flight at a time."""

    def __init__(self, session: Session, *, max_repetitions: int = DEFAULT_MAX_REPETITIONS,
                 max_walk_time: float | None = None) -> None:
        self.session = session
        self.host = session.host
        self.port = session.port
        self._v1 = session.creds.version == "1"
        self.max_repetitions = max(1, max_repetitions)
        self._reps_ceiling = self.max_repetitions  # lowered for good by tooBig
        self._good_bulks = 0
        self._several = True  # several OIDs per GETBULK (False for good after tooBig for one row of them)
        self._column_factor = COLUMN_FACTOR  # varbinds of several OIDs per GETBULK: max-repetitions x this
        self.max_walk_time = max_walk_time
        self.answered = False  # has this device ever answered (any response, even an error)?

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _status_error(self, reply: Reply) -> Exception:
        return status_error(self._where(), self.session.creds, reply.error_name, reply.error_index,
                            [oid for oid, _ in reply.varbinds])

    # ---------------------------------------------------------------- GET

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        """GET the given OIDs. Missing objects come back as ``no_such_*`` values, also on SNMPv1.

        Raises :class:`SnmpWrongOid` when the response does not carry exactly the OIDs asked, in order.
        """
        wanted = list(oids)
        found: dict[OID, SnmpValue] = {}
        while wanted:
            reply = await self.session.get(wanted)
            self.answered = True
            status, index = reply.error_status, reply.error_index
            if status == _NO_SUCH_NAME and self._v1 and 0 < index <= len(wanted):
                wanted.pop(index - 1)  # v1 noSuchName fails the whole request: drop and retry
                continue
            if status:
                raise self._status_error(reply)
            error = wrong_get_names(self._where(), wanted, [oid for oid, _ in reply.varbinds])
            if error is not None:
                raise error
            found = dict(reply.varbinds)
            break
        return [(o, found.get(o, _NO_SUCH_OBJECT)) for o in oids]

    # ---------------------------------------------------------------- GETNEXT

    async def get_next(self, oid: OID) -> tuple[OID, SnmpValue] | None:
        """One GETNEXT: the first object after ``oid``, or None at the end of the MIB view (endOfMibView,
        SNMPv1 noSuchName, or a ``noSuch*`` value repeating ``oid`` as net-snmp sends). Probing whether a
        device has anything under a subtree costs this one request (agent/profile_selection.py).

        Raises :class:`SnmpWrongOid` for a response without exactly one varbind and
        :class:`SnmpNotIncreasing` for an OID not greater than ``oid``.
        """
        reply = await self.session.get_next(oid)
        self.answered = True
        if self._v1 and reply.error_status == _NO_SUCH_NAME:
            return None
        if reply.error_status:
            raise self._status_error(reply)
        self._check_count(oid, reply, bulk=False)
        [(found, value)] = reply.varbinds
        if value.kind == "end_of_mib_view" or (found == oid and value.kind in NO_SUCH_KINDS):
            return None
        if found <= oid:
            raise not_increasing(self._where(), oid, oid, oid, found)
        return found, value

    # ---------------------------------------------------------------- one step of a walk

    async def _next_rows(self, oids: Sequence[OID]) -> tuple[int, list[tuple[OID, SnmpValue]]]:
        """The rows after the first ``n`` of ``oids`` (one GETNEXT, or one GETBULK of ``n`` OIDs): ``n`` and
        the varbinds, repetition by repetition (RFC 3416: the i-th varbind belongs to ``oids[i % n]``).
        The varbinds are empty only at SNMPv1's noSuchName (v1 asks one OID at a time).

        A GETBULK asks for ``max_repetitions`` rows of one OID, or about ``COLUMN_FACTOR`` times as many
        varbinds spread over several OIDs; tooBig and silent drops shrink both (see the module doc).
        """
        if self._v1:
            oid = oids[0]
            reply = await self.session.get_next(oid)
            self.answered = True
            if reply.error_status == _NO_SUCH_NAME:  # noSuchName: end of the MIB view
                return 1, []
            if reply.error_status:
                raise self._status_error(reply)
            self._check_count(oid, reply, bulk=False)
            return 1, reply.varbinds
        single = len(oids) == 1 or not self._several
        while True:
            reps = self.max_repetitions
            budget = reps if single else reps * self._column_factor
            n = 1 if single else min(len(oids), budget)
            asked = oids[:n]
            try:
                reply = await self.session.get_bulk(asked, max(1, budget // n))
            except SnmpTimeout:
                if budget > 1 and self.answered:  # once: _silent_drop asks for one varbind
                    self._silent_drop(reps)
                    continue
                raise
            self.answered = True
            if reply.error_status == _TOO_BIG and reps > 1:  # tooBig: the device says so
                self._too_big(reps)
                continue
            if reply.error_status == _TOO_BIG and n > 1:  # even one row of these: one column at a time
                single, self._several = True, False
                continue
            if reply.error_status:
                raise self._status_error(reply)
            self._check_count(asked[0], reply, bulk=True)
            self._good_bulk()
            return n, reply.varbinds

    def _check_count(self, oid: OID, reply: Reply, bulk: bool) -> None:
        error = wrong_next_count(self._where(), oid, len(reply.varbinds), bulk)
        if error is not None:
            raise error

    # ---------------------------------------------------------------- max-repetitions adaptation

    def _too_big(self, reps: int) -> None:
        self.max_repetitions = self._reps_ceiling = max(1, reps // 2)
        self._good_bulks = 0
        log.debug("%s: tooBig, max-repetitions now %d", self._where(), self.max_repetitions)

    def _silent_drop(self, reps: int) -> None:
        """A device that answered before may drop responses too large for it: retry once with one
        repetition, then grow back slowly, never again to the size that got no answer."""
        self.max_repetitions = 1
        self._column_factor = 1  # several OIDs share the max-repetitions from then on
        self._reps_ceiling = max(1, min(self._reps_ceiling, reps // 2))
        self._good_bulks = 0
        log.debug("%s: bulk timeout, max-repetitions now %d", self._where(), self.max_repetitions)

    def _good_bulk(self) -> None:
        self._good_bulks += 1
        if self._good_bulks >= _GROW_AFTER and self.max_repetitions < self._reps_ceiling:
            self.max_repetitions = min(self._reps_ceiling, self.max_repetitions * 2)
            self._good_bulks = 0

    # ---------------------------------------------------------------- walk

    async def walk(
        self, root: OID, *, max_rows: int = 100_000, max_time: float | None = None
    ) -> list[tuple[OID, SnmpValue]]:
        """All (oid, value) pairs strictly inside the subtree ``root``, in order.

        Ends at the first OID outside the subtree, at ``endOfMibView``, at v1 ``noSuchName``, at an
        SNMPv1 agent repeating its last row (an OID equal to the previous one after at least one row), and
        at a ``noSuch*`` value that repeats the requested OID. Raises :class:`SnmpNotIncreasing` for any
        other OID not greater than the one before it (the requested OID echoed back, an OID repeated or
        lower, also within one GETBULK response), :class:`SnmpWrongOid` for a response without the one
        varbind a GETNEXT asks for (or any, to a GETBULK), :class:`SnmpTooManyRows` for more than
        ``max_rows`` rows, and :class:`SnmpWalkTooLong` when the walk takes longer than ``max_time``
        seconds (default: the target's ``max_walk_time``; None: no cap of its own, the caller's deadline
        applies).
        """
        [rows] = await self.walk_columns((root,), max_rows=max_rows, max_time=max_time)
        return rows

    async def walk_columns(
        self, roots: Sequence[OID], *, max_rows: int = 100_000, max_time: float | None = None
    ) -> list[list[tuple[OID, SnmpValue]]]:
        """:meth:`walk` of each subtree in ``roots``, side by side: one GETBULK carries the next OID of
        every subtree not yet finished (the columns of a table are read row by row, as net-snmp's
        ``snmptable`` does), so a table of ``c`` columns costs about ``c`` times fewer requests than
        walking its columns one by one. SNMPv1 walks them one by one (GETNEXT). Each subtree is judged as
        :meth:`walk` judges it; ``max_rows`` is per subtree, ``max_time`` for them all. The rows of
        ``roots[i]`` are the i-th list.
        """
        limit = max_time if max_time is not None else self.max_walk_time
        walks = [_Walk(root) for root in sorted(set(roots))]  # in OID order: see _walk_all
        if limit is None:
            await self._walk_all(walks, max_rows)
        else:
            try:
                async with asyncio.timeout(limit):
                    await self._walk_all(walks, max_rows)
            except TimeoutError:
                what, rows = oids_text([w.root for w in walks]), sum(len(w.rows) for w in walks)
                raise SnmpWalkTooLong(f"walk of {what} on {self._where()} took longer than {limit:g} s "
                                      f"({rows} rows so far); walk abandoned") from None
        found = {w.root: w.rows for w in walks}
        return [found[root] for root in roots]

    async def _walk_all(self, walks: list[_Walk], max_rows: int) -> None:
        """Walk the subtrees. A GETBULK of several OIDs answered otherwise than RFC 3416 says (column by
        column, or only the first OID followed: see :func:`agent.snmp.row_order.row_order_problem`), or
        with an OID that does not increase in some subtree, makes the walk start again one subtree at a
        time; if that works, the device is asked one OID per GETBULK from then on, and if it fails too,
        its error is the one raised (a subtree broken on its own)."""
        several = len(walks) > 1 and self._several and not self._v1
        try:
            await self._walk_into(walks, max_rows)
        except SnmpNotIncreasing as exc:
            if not several:
                raise
            self._several = False
            for w in walks:
                w.restart()
            try:
                await self._walk_into(walks, max_rows)
            except BaseException:
                self._several = True  # not shown to be the order's fault: several OIDs again next time
                raise
            log.info("%s answers a GETBULK of several OIDs out of order (%s); asking one OID per GETBULK",
                     self._where(), exc)

    async def _walk_into(self, walks: list[_Walk], max_rows: int) -> None:
        v1 = self._v1
        where = self._where()
        # SNMPv1 has no GETBULK: its subtrees are walked one after the other
        groups = [[w] for w in walks] if v1 else [walks]
        # no subtree inside another (a table's columns): varbinds each inside its own subtree are then in
        # RFC 3416's row order as well (see _take_plain_rows)
        apart = all(b.root[:a.depth] != a.root for a, b in itertools.pairwise(walks))
        for group in groups:
            active = [w for w in group if not w.done]
            while active:
                cursors = [w.cursor for w in active]
                n, batch = await self._next_rows(cursors)
                if not batch:  # SNMPv1 noSuchName: the end of the MIB view
                    active[0].done = True
                for w in active[:n]:
                    w.asked = w.cursor
                oids = list(map(_oid_of, batch))
                plain = _ENDS.isdisjoint(map(_kind_of, map(_value_of, batch)))  # nothing ends a walk
                if plain and apart and _take_plain_rows(active[:n], batch, oids, max_rows):
                    active = [w for w in active if not w.done]
                    continue
                if n > 1 and not (plain and rows_plainly_increase(cursors[:n], oids)):
                    problem = row_order_problem(cursors[:n], batch)
                    if problem is not None:
                        raise _NotRowByRow(f"{where} answered a GETBULK of {n} OIDs out of RFC 3416's "
                                           f"order: {problem}")
                if plain and not apart and _take_plain_rows(active[:n], batch, oids, max_rows):
                    active = [w for w in active if not w.done]
                    continue
                for k, (oid, value) in enumerate(batch):
                    w = active[k % n]
                    if w.done:
                        continue  # past its subtree: the rest is not ours to judge
                    cursor = w.cursor
                    if value.kind == "end_of_mib_view":  # carries the requested OID, not a greater one
                        w.done = True
                        continue
                    if oid <= cursor:
                        if oid == cursor and ((v1 and w.rows) or value.kind in NO_SUCH_KINDS):
                            log.debug("%s repeated %s while walking %s: taken as the end", where,
                                      oid_text(oid), oid_text(w.root))
                            w.done = True
                            continue
                        raise not_increasing(where, w.root, w.asked, cursor, oid)
                    if oid[:w.depth] != w.root:
                        w.done = True  # past the subtree: the rest of a GETBULK response is not ours
                        continue
                    if len(w.rows) >= max_rows:
                        raise SnmpTooManyRows(f"more than {max_rows} rows under {oid_text(w.root)} on "
                                              f"{where}; walk abandoned")
                    w.rows.append((oid, value))
                    w.cursor = oid
                active = [w for w in active if not w.done]


class _NotRowByRow(SnmpNotIncreasing):
    """A GETBULK of several OIDs answered otherwise than row by row (never raised to the caller)."""


_oid_of, _value_of, _kind_of = operator.itemgetter(0), operator.itemgetter(1), operator.attrgetter("kind")


def _take_plain_rows(walks: list[_Walk], batch: list[tuple[OID, SnmpValue]], oids: list[OID],
                     max_rows: int) -> bool:
    """Take a response's varbinds (``oids``: their OIDs; no value ending a walk) into ``walks`` (the i-th
    varbind is the (i mod n)-th walk's) when each walk's OIDs increase from its cursor on and stay inside
    its subtree, and no walk passes ``max_rows``: the usual case, in which :meth:`SnmpTarget._walk_into`'s
    varbind-by-varbind loop would take them all. Otherwise take nothing and return False: that loop
    decides.

    Where no subtree lies inside another, such a response is in RFC 3416's row order too (what
    :func:`agent.snmp.row_order.row_order_problem` checks): the walks and their cursors are in OID order,
    so in each row a varbind inside the i-th subtree is below the (i+1)-th subtree, and so below both
    its right-hand neighbour and the OID that neighbour follows."""
    n = len(walks)
    taken: list[tuple[_Walk, list[tuple[OID, SnmpValue]], OID]] = []
    for i, w in enumerate(walks):
        mine = oids[i::n]
        if not mine:
            continue
        if not (all(map(operator.lt, itertools.chain((w.cursor,), mine), mine)) and mine[-1] < w.end
                and len(w.rows) + len(mine) <= max_rows):
            return False
        taken.append((w, batch[i::n], mine[-1]))
    for w, rows, last in taken:
        w.rows.extend(rows)
        w.cursor = last
    return True


class _Walk:
    """One subtree being walked: its rows so far, where the next request starts, whether it ended."""

    __slots__ = ("asked", "cursor", "depth", "done", "end", "root", "rows")

    def __init__(self, root: OID) -> None:
        self.root = root
        self.depth = len(root)
        # the OID after the whole subtree: those strictly between root and end are the subtree's
        self.end = (*root[:-1], root[-1] + 1)
        self.restart()

    def restart(self) -> None:
        self.cursor = self.root  # the last OID taken (the root before the first)
        self.asked = self.root  # the OID the latest request asked after
        self.done = False
        self.rows: list[tuple[OID, SnmpValue]] = []

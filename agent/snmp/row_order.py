"""Whether a response to a GETBULK of several OIDs is answered row by row, as RFC 3416 says. Pure.

:meth:`agent.snmp.target.SnmpTarget.walk_columns` asks for the next OID of several columns in one
GETBULK; a device that answers otherwise (column by column, or following only the first OID asked)
would make it lose rows. :func:`row_order_problem` says what is wrong with an answer;
:func:`rows_plainly_increase` recognises the usual answer quickly, at C speed, where there is nothing
to say.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

from agent.snmp.values import OID, SnmpValue, oid_text

NO_SUCH_KINDS = frozenset({"no_such_object", "no_such_instance"})  # values.ABSENT_KINDS: all absences


def row_order_problem(asked: Sequence[OID], varbinds: list[tuple[OID, SnmpValue]]) -> str | None:
    """Why a response to a GETBULK of ``asked`` cannot be RFC 3416's, or None.

    Row by row, each varbind is the successor (the next OID the device has) of the one above it in its
    column, the first row of the OIDs asked. Successors keep the order of what they follow, and every
    OID between one and its successor has that same successor. So, the columns taken in the order of
    the OIDs they follow, a row must not decrease, and two neighbours must be equal where the second
    follows an OID before the first's successor. A device that answers column by column, or follows
    only the first OID asked, breaks this even where each column's own OIDs increase: checking each
    column alone would take the next column's rows for the end of an empty one, and lose them.
    """
    n = len(asked)
    above = list(asked)
    for start in range(0, len(varbinds), n):
        row = varbinds[start:start + n]
        # None: nothing follows (endOfMibView, or a noSuch* value repeating the OID asked)
        found = [None if value.kind == "end_of_mib_view" or (value.kind in NO_SUCH_KINDS and oid == before)
                 else oid for (oid, value), before in zip(row, above, strict=False)]
        order = sorted(range(len(row)), key=above.__getitem__)
        for i, j in itertools.pairwise(order):
            first, second = found[i], found[j]
            if first is None and second is not None:
                return f"something follows {oid_text(above[j])} but nothing follows {oid_text(above[i])}"
            if first is not None and (second is None or second != first) and above[j] < first:
                return (f"{oid_text(above[i])} and {oid_text(above[j])} are followed by "
                        f"{oid_text(first)} and {'nothing' if second is None else oid_text(second)}")
            if first is not None and second is not None and second < first:
                return (f"{oid_text(above[j])} is followed by {oid_text(second)}, before what follows "
                        f"{oid_text(above[i])} ({oid_text(first)})")
        above[:len(row)] = [oid for oid, _ in row]
    return None


def rows_plainly_increase(asked: Sequence[OID], oids: list[OID]) -> bool:
    """The usual answer to a GETBULK of several OIDs, checked quickly (no value ending a walk): OIDs asked
    in increasing order, and in each row the OIDs increase and none passes the OID above its right-hand
    neighbour. :func:`row_order_problem` finds nothing wrong with that; anything else takes its full
    check."""
    if not all(map(operator.lt, asked, asked[1:])):
        return False
    n = len(asked)
    above = asked
    for start in range(0, len(oids), n):
        row = oids[start:start + n]
        if not (all(map(operator.lt, row, row[1:])) and all(map(operator.ge, above[1:len(row)], row))):
            return False
        above = row
    return True

"""Label lookups by a part of a table's row index (pure, no I/O).

Some MIBs name a row's labels in another table indexed by only part of this one's index: LLDP-MIB
``lldpRemTable`` rows are indexed ``timeMark.localPortNum.remIndex`` and the local port's name is in
``lldpLocPortTable``, indexed by ``localPortNum`` alone; CISCO-CDP-MIB ``cdpCacheTable`` rows are indexed
``ifIndex.deviceIndex`` and the local interface's name is ``ifName.ifIndex``. A profile label says which
arcs of the row index make the other table's index (``index_arcs: [2]``, 1-based, in order);
:mod:`agent.mapping` looks the label's column up with :func:`sub_index`.
"""

from __future__ import annotations

from collections.abc import Sequence


def sub_index(index: str, arcs: Sequence[int]) -> str | None:
    """The arcs (1-based positions) of a dotted row index, joined in the order given; None when the index
    is shorter than an arc asks for (the row has no such part: no label value).

    >>> sub_index("1169175.24.1", [2])
    '24'
    >>> sub_index("10101.3", [1])
    '10101'
    """
    parts = index.split(".")
    if any(arc > len(parts) for arc in arcs):
        return None
    return ".".join(parts[arc - 1] for arc in arcs)

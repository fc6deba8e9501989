"""Numbers as Vietnamese writes them: a dot between thousands, a decimal comma (``44.640``, ``99,95``).
A leaf shared by what operators read: the collector's status pages, the agent's page, the availability
report. Standard library only."""

from __future__ import annotations


def vi_decimal(value: float, digits: int) -> str:
    """``1.234,5`` for ``vi_decimal(1234.5, 1)``."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def vi_int(value: int) -> str:
    """``44.640`` for ``vi_int(44640)``."""
    return f"{value:,}".replace(",", ".")

"""A mixin for fake SNMP readers in unit tests: ``walk_columns`` as one ``walk`` per root, in order, so a
fake that scripts or counts walks sees the same calls it saw before columns were read side by side."""

from __future__ import annotations

from collections.abc import Sequence

from agent.snmp.values import OID, SnmpValue


class SequentialWalks:
    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        raise NotImplementedError

    async def walk_columns(self, roots: Sequence[OID], *, max_rows: int = 100_000
                           ) -> list[list[tuple[OID, SnmpValue]]]:
        return [await self.walk(root, max_rows=max_rows) for root in roots]

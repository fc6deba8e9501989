"""Duplicate and gap detection over (agent, boot id, sequence). Pure, bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_MISSING_TRACKED = 100_000  # holes remembered per boot (a hole beyond this is only counted)
MAX_BOOTS_TRACKED = 4  # boots remembered per agent (replays of an earlier boot may still arrive)


@dataclass
class _Boot:
    highest: int = 0
    missing: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Verdict:
    new: bool  # False: a duplicate, drop it
    gap: int  # sequence numbers newly found missing before this one


class SequenceTracker:
    def __init__(self) -> None:
        self._agents: dict[str, OrderedDict[str, _Boot]] = {}

    def see(self, agent: str, boot_id: str, seq: int) -> Verdict:
        boots = self._agents.setdefault(agent, OrderedDict())
        boot = boots.get(boot_id)
        if boot is None:
            boot = boots[boot_id] = _Boot()
            while len(boots) > MAX_BOOTS_TRACKED:
                boots.popitem(last=False)
        if seq > boot.highest:
            gap = seq - boot.highest - 1
            room = MAX_MISSING_TRACKED - len(boot.missing)
            if gap and room > 0:
                boot.missing.update(range(max(boot.highest + 1, seq - room), seq))
            boot.highest = seq
            return Verdict(True, gap)
        if seq in boot.missing:
            boot.missing.discard(seq)
            return Verdict(True, 0)
        return Verdict(False, 0)

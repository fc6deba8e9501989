"""Duplicate and gap detection over (agent, boot id, sequence). Pure, bounded memory.

Per boot we keep the highest sequence seen and the *holes* below it as half-open ranges, so a replayed
batch that fills a hole is accepted once and a second copy is a duplicate. After a collector restart
everything below the first sequence seen is one hole (unknown, not counted as a gap), so an agent's
replay of older batches is still accepted.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_HOLES_TRACKED = 10_000  # ranges remembered per boot; beyond that the oldest hole is forgotten
MAX_BOOTS_TRACKED = 4  # boots remembered per agent (replays of an earlier boot may still arrive)
MAX_GAP = 1_000_000  # a bigger jump is not a gap but a broken or hostile sender: not counted


@dataclass
class _Boot:
    highest: int
    starts: list[int] = field(default_factory=list)  # hole i is [starts[i], ends[i])
    ends: list[int] = field(default_factory=list)

    def add_hole(self, start: int, end: int) -> None:
        if start >= end:
            return
        self.starts.append(start)
        self.ends.append(end)
        if len(self.starts) > MAX_HOLES_TRACKED:
            del self.starts[0], self.ends[0]

    def fill(self, seq: int) -> bool:
        """Remove ``seq`` from the holes; False if it was not missing (a duplicate)."""
        i = bisect.bisect_right(self.starts, seq) - 1
        if i < 0 or seq >= self.ends[i]:
            return False
        start, end = self.starts[i], self.ends[i]
        del self.starts[i], self.ends[i]
        if seq + 1 < end:
            self.starts.insert(i, seq + 1)
            self.ends.insert(i, end)
        if start < seq:
            self.starts.insert(i, start)
            self.ends.insert(i, seq)
        return True


@dataclass(frozen=True, slots=True)
class Verdict:
    new: bool  # False: a duplicate, drop it
    gap: int  # sequence numbers newly found missing before this one


RECENT_TRACKED = 1024  # sequences remembered per agent when gaps are not tracked (a shared group)


class SequenceTracker:
    """With ``track_gaps`` False (a collector in a shared group sees only its share of each agent's
    messages, so the others' would all look like gaps) only the agent's last sequences are remembered,
    to drop redelivered copies; nothing is a gap."""

    def __init__(self, *, track_gaps: bool = True) -> None:
        self.track_gaps = track_gaps
        self._agents: dict[str, OrderedDict[str, _Boot]] = {}
        self._recent: dict[str, OrderedDict[tuple[str, int], None]] = {}

    def _see_recent(self, agent: str, boot_id: str, seq: int) -> Verdict:
        recent = self._recent.setdefault(agent, OrderedDict())
        key = (boot_id, seq)
        if key in recent:
            return Verdict(False, 0)
        recent[key] = None
        if len(recent) > RECENT_TRACKED:
            recent.popitem(last=False)
        return Verdict(True, 0)

    def see(self, agent: str, boot_id: str, seq: int) -> Verdict:
        if not self.track_gaps:
            return self._see_recent(agent, boot_id, seq)
        boots = self._agents.setdefault(agent, OrderedDict())
        boot = boots.get(boot_id)
        if boot is None:
            boot = boots[boot_id] = _Boot(highest=seq)
            boot.add_hole(1, seq)  # unknown past: accept it if it arrives, but do not call it a gap
            while len(boots) > MAX_BOOTS_TRACKED:
                boots.popitem(last=False)  # least recently used
            return Verdict(True, 0)
        boots.move_to_end(boot_id)
        if seq > boot.highest:
            gap = seq - boot.highest - 1
            boot.add_hole(boot.highest + 1, seq)
            boot.highest = seq
            return Verdict(True, gap if gap <= MAX_GAP else 0)
        return Verdict(boot.fill(seq), 0)

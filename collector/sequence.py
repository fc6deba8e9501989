"""Duplicate, gap and loss detection over (agent, boot id, sequence). Pure, bounded memory.

Per boot we keep the highest sequence seen and the *holes* below it as half-open ranges, so a replayed
batch that fills a hole is accepted once and a second copy is a duplicate. After a collector restart
everything below the first sequence seen is one hole (unknown, neither a gap nor a loss), so an agent's
replay of older batches is still accepted.

A *gap* (a sequence number missing when a later one arrives) is usually no loss: after an outage the
agent sends its live polls first and its backlog afterwards, oldest first, so every outage opens gaps
that the replay fills minutes or hours later. A missing number is counted as **lost** only when

- the agent's replay has passed it: a batch that fills a hole arrived with a higher sequence (of the same
  boot, or of a later boot: the backlog drains boot by boot, oldest first), and the number is still
  missing ``PASS_GRACE`` seconds later (the disk queue drops its *oldest* messages when full, exactly
  what a replay passes); or
- it has been missing for ``GAP_WINDOW`` seconds while the agent replayed nothing for as long (lost on
  the way: e.g. a broker queue that overflowed while the collector was away).

A number counted as lost that arrives after all is still accepted (the loss counter does not go back).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_HOLES_TRACKED = 10_000  # ranges remembered per boot; beyond that the oldest hole is forgotten
MAX_BOOTS_TRACKED = 4  # boots remembered per agent (replays of an earlier boot may still arrive)
MAX_GAP = 1_000_000  # a bigger jump is not a gap but a broken or hostile sender: not counted
PASS_GRACE = 60.0  # seconds a number passed by the agent's replay may still arrive before it counts as lost
MAX_WAITING = MAX_HOLES_TRACKED * MAX_BOOTS_TRACKED  # gaps per agent waiting to be settled
GAP_WINDOW = 600.0  # seconds a number may stay missing, while the agent replays nothing, before it is lost


@dataclass(slots=True, eq=False)
class _Gap:
    """The numbers ``[start, end)`` found missing at once (one jump of the sequence). ``known`` False:
    the unknown past of a boot first seen after a collector restart (never a gap nor a loss)."""

    start: int
    end: int
    created: float
    known: bool = True
    counted: bool = False  # counted as lost (or forgotten): no longer missing
    passed: float | None = None  # when the agent's replay passed it


@dataclass
class _Boot:
    highest: int
    order: int = 0  # when the boot was first seen (its backlog drains before later boots')
    starts: list[int] = field(default_factory=list)  # hole i is [starts[i], ends[i])
    ends: list[int] = field(default_factory=list)
    gaps: list[_Gap] = field(default_factory=list)  # in order of start (each jump lies above the last)
    gap_starts: list[int] = field(default_factory=list)
    passed_upto: int = 0  # gaps starting below this were marked as passed

    def add_hole(self, start: int, end: int) -> int:
        """Add ``[start, end)``; return how many missing numbers were forgotten to stay bounded."""
        if start >= end:
            return 0
        self.starts.append(start)
        self.ends.append(end)
        forgotten = 0
        if len(self.starts) > MAX_HOLES_TRACKED:
            old = self._gap_of(self.starts[0])
            if old is not None and old.known and not old.counted:
                forgotten = self.ends[0] - self.starts[0]
            del self.starts[0], self.ends[0]
        return forgotten

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

    def _gap_of(self, seq: int) -> _Gap | None:
        i = bisect.bisect_right(self.gap_starts, seq) - 1
        if i >= 0 and seq < self.gaps[i].end:
            return self.gaps[i]
        return None

    def open_in(self, gap: _Gap) -> int:
        """How many numbers of ``gap`` are still missing."""
        i = max(bisect.bisect_right(self.starts, gap.start) - 1, 0)
        missing = 0
        while i < len(self.starts) and self.starts[i] < gap.end:
            missing += max(0, min(self.ends[i], gap.end) - max(self.starts[i], gap.start))
            i += 1
        return missing


@dataclass(frozen=True, slots=True)
class Verdict:
    new: bool  # False: a duplicate, drop it
    gap: int  # sequence numbers newly found missing before this one (they may still arrive)
    lost: int = 0  # sequence numbers of this agent newly counted as lost (see the module doc)


RECENT_TRACKED = 1024  # sequences remembered per agent when gaps are not tracked (a shared group)


class SequenceTracker:
    """With ``track_gaps`` False (a collector in a shared group sees only its share of each agent's
    messages, so the others' would all look like gaps) only the agent's last sequences are remembered,
    to drop redelivered copies; nothing is a gap or lost.

    ``missing`` is how many numbers are missing now and may still arrive (gaps neither filled nor lost).
    """

    def __init__(self, *, track_gaps: bool = True) -> None:
        self.track_gaps = track_gaps
        self.missing = 0
        self._agents: dict[str, OrderedDict[str, _Boot]] = {}
        self._recent: dict[str, OrderedDict[tuple[str, int], None]] = {}
        self._last_fill: dict[str, float] = {}  # agent -> when a replayed batch last filled a hole
        # agent -> gaps in the order they were passed / created, waiting to be counted as lost
        self._passed: dict[str, deque[tuple[_Boot, _Gap]]] = {}
        self._aging: dict[str, deque[tuple[_Boot, _Gap]]] = {}
        self._boots_seen = 0
        self._forgotten = 0  # missing numbers forgotten to stay bounded, not yet reported

    def _see_recent(self, agent: str, boot_id: str, seq: int) -> Verdict:
        recent = self._recent.setdefault(agent, OrderedDict())
        key = (boot_id, seq)
        if key in recent:
            return Verdict(False, 0)
        recent[key] = None
        if len(recent) > RECENT_TRACKED:
            recent.popitem(last=False)
        return Verdict(True, 0)

    def highest(self, agent: str, boot_id: str) -> int | None:
        """The highest sequence seen of this boot (None: boot unknown or gaps not tracked)."""
        boots = self._agents.get(agent)
        boot = boots.get(boot_id) if boots is not None else None
        return boot.highest if boot is not None else None

    def see(self, agent: str, boot_id: str, seq: int, now: float = 0.0) -> Verdict:
        if not self.track_gaps:
            return self._see_recent(agent, boot_id, seq)
        boots = self._agents.setdefault(agent, OrderedDict())
        boot = boots.get(boot_id)
        if boot is None:
            self._boots_seen += 1
            boot = boots[boot_id] = _Boot(highest=seq, order=self._boots_seen)
            if seq > 1:  # unknown past: accept it if it arrives, but do not call it a gap
                boot.add_hole(1, seq)
                self._add_gap(boot, _Gap(1, seq, now, known=False))
            while len(boots) > MAX_BOOTS_TRACKED:
                _, old = boots.popitem(last=False)  # least recently used: its holes are forgotten
                self._forget(old)
            return Verdict(True, 0, self._count_lost(agent, now))
        boots.move_to_end(boot_id)
        if seq > boot.highest:
            gap = seq - boot.highest - 1
            if gap > 0:
                record = _Gap(boot.highest + 1, seq, now, known=gap <= MAX_GAP)
                self._add_gap(boot, record)
                forgotten = boot.add_hole(boot.highest + 1, seq)
                self.missing -= forgotten
                self._forgotten += forgotten  # they would be taken for duplicates now: lost
                if record.known:
                    self.missing += gap
                    self._aging.setdefault(agent, deque()).append((boot, record))
            boot.highest = seq
            return Verdict(True, gap if gap <= MAX_GAP else 0, self._count_lost(agent, now))
        if not boot.fill(seq):
            return Verdict(False, 0)
        filled = boot._gap_of(seq)
        if filled is not None and filled.known and not filled.counted:
            self.missing -= 1
        self._last_fill[agent] = now
        self._pass(agent, boots, boot, seq, now)
        return Verdict(True, 0, self._count_lost(agent, now))

    def _add_gap(self, boot: _Boot, record: _Gap) -> None:
        boot.gaps.append(record)
        boot.gap_starts.append(record.start)
        if len(boot.gaps) > MAX_HOLES_TRACKED:
            old = boot.gaps[0]
            if old.known and not old.counted:
                old.counted = True
                still = boot.open_in(old)
                self.missing -= still
                self._forgotten += still
            del boot.gaps[0], boot.gap_starts[0]

    def _pass(self, agent: str, boots: OrderedDict[str, _Boot], boot: _Boot, seq: int, now: float) -> None:
        """A replayed batch filled ``seq``: the agent's oldest-first replay is past everything below it,
        and past every boot whose first message came before this boot's (they drain first)."""
        passed = self._passed.setdefault(agent, deque())
        for other in boots.values():
            if other.order < boot.order and other.passed_upto <= other.highest:
                self._mark_passed(agent, other, other.highest + 1, now, passed)
        if seq > boot.passed_upto:
            self._mark_passed(agent, boot, seq, now, passed)

    def _mark_passed(self, agent: str, boot: _Boot, below: int, now: float,
                     passed: deque[tuple[_Boot, _Gap]]) -> None:
        i = max(bisect.bisect_right(boot.gap_starts, boot.passed_upto) - 1, 0)
        while i < len(boot.gaps) and boot.gaps[i].start < below:
            record = boot.gaps[i]
            if record.passed is None and record.known and not record.counted:
                if record.end > below:  # only its part below the replayed number was passed
                    rest = _Gap(below, record.end, record.created)
                    record.end = below
                    boot.gaps.insert(i + 1, rest)
                    boot.gap_starts.insert(i + 1, below)
                    self._aging.setdefault(agent, deque()).append((boot, rest))
                record.passed = now
                passed.append((boot, record))
            i += 1
        boot.passed_upto = max(boot.passed_upto, below)

    def _count_lost(self, agent: str, now: float) -> int:
        lost, self._forgotten = self._forgotten, 0
        passed = self._passed.get(agent)
        while passed and passed[0][1].passed is not None and now - passed[0][1].passed >= PASS_GRACE:
            boot, record = passed.popleft()
            lost += self._settle(boot, record)
        aging = self._aging.get(agent)
        if aging and now - self._last_fill.get(agent, float("-inf")) >= GAP_WINDOW:
            while aging and now - aging[0][1].created >= GAP_WINDOW:
                boot, record = aging.popleft()
                lost += self._settle(boot, record)
        while aging and (aging[0][1].counted or len(aging) > MAX_WAITING):
            boot, record = aging.popleft()  # settled by the other rule, or too many waiting
            lost += self._settle(boot, record)
        return lost

    def _settle(self, boot: _Boot, record: _Gap) -> int:
        if record.counted:
            return 0
        record.counted = True
        still = boot.open_in(record)
        self.missing -= still
        return still

    def _forget(self, boot: _Boot) -> None:
        for record in boot.gaps:
            if record.known and not record.counted:
                record.counted = True
                self.missing -= boot.open_in(record)

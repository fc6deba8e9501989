"""Agent clocks measured against the collector's, and poll times corrected by them. Pure: no I/O.

An agent stamps every poll with its own clock. If that clock is off (no NTP, a dead RTC battery, a
manual change), its polls would look late (remote-written, never served) or come from the future. The
collector therefore estimates, per agent, **offset = agent clock - collector clock** from messages that
are sent the moment they are made:

- a birth (``status`` online) delivered as published, not as the retained copy: sent at connect;
- a ``self`` message newer than any seen of its boot (older ones are its replayed backlog);
- a poll on ``data/`` (the agent sends a poll there only within one interval of taking it, so it may
  have waited that long): it may raise the estimate, or set a small one, never say "behind".

Each such message gives ``ts - arrival = offset - delay`` with ``delay >= 0`` (poll duration, queueing,
network): a lower bound of the offset. The estimate is the highest recent bound (the least delayed
message, as NTP's minimum-delay filter). It moves up at once (a message can arrive early only if the
clock went forward) and down (the clock went back) when a birth says so, or when self messages stay
below it by more than their possible delay for ``STEP_CONFIRM`` seconds with a stable value (a burst of
queued messages after a reconnect rises quickly instead, and is not taken for a clock step). An agent
seen first without a birth (a collector restart) is taken to be behind only when two self messages
agree.

Offsets within ``threshold`` (default 10 s) are network delay and noise: such an agent's timestamps are
used as sent. Beyond it the agent's poll times are corrected by its offset (with hysteresis: correction
stops below half the threshold), and the change is logged once each way.

**Which clock is right.** The collector's, normally. When at least two agents have an estimate and more
than half of them agree (within the threshold) that the collector's clock is off, theirs is used: the
*reference* time is the collector's clock plus their common offset, and only agents that disagree with
the reference are corrected. One agent alone never outvotes the collector.

**Buffered data stamped before a clock step.** Corrections are remembered per agent boot and sequence
range (segments). A replayed poll takes the correction in force when it was made: the segment that
holds its sequence number, or, between two segments with different corrections (the step happened
while nothing was seen), the one that places it between them in time; never a time in the future.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 10.0  # seconds: smaller offsets are network delay, not a wrong clock
STEP_CONFIRM = 30.0  # seconds live messages must stay below the estimate before it is lowered
DELAY_SLACK = 5.0  # seconds of network and broker delay on top of what the agent itself may take
MAX_SEGMENTS = 32  # corrections remembered per agent
MIN_VOTERS = 2  # agents needed before their common offset can outvote the collector's clock

log = logging.getLogger("hatang.collector.clock")


class ClockSource(enum.Enum):
    BIRTH = "birth"  # a birth delivered as published: sent at connect
    SELF = "self"  # a self message newer than any seen of its boot: stamped and sent at once
    LIVE = "live"  # a poll on data/: sent within its interval (but it may have waited that long)
    OLD = "old"  # retained, replayed or otherwise possibly old: a lower bound only


@dataclass(slots=True)
class _Segment:
    boot: str
    lo: int  # first and last sequence number seen with this correction
    hi: int
    t_lo: float  # their corrected times
    t_hi: float
    correction: float


@dataclass
class AgentClock:
    estimate: float | None = None  # agent clock minus collector clock, seconds
    correcting: bool = False  # its timestamps are corrected (it disagrees with the reference)
    first_low: tuple[float, float] | None = None  # (arrival, sample): a large negative first bound
    step_since: float | None = None  # live bounds below the estimate since then (a step back?)
    step_first: float = 0.0
    step_best: float = -math.inf
    step_count: int = 0
    segments: list[_Segment] = field(default_factory=list)
    restored: bool = False  # the estimate comes from the state file: the first live bound replaces it

    def _end_step(self) -> None:
        self.step_since, self.step_count, self.step_best = None, 0, -math.inf


class Clocks:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.agents: dict[str, AgentClock] = {}
        self.reference = 0.0  # reference time minus the collector's clock (0: the collector is right)
        self.reference_voters = 0

    # --- measuring ------------------------------------------------------------------------------

    def observe(self, agent: str, sample: float, now: float, source: ClockSource, bound: float = 0.0,
                confirmed: bool = True) -> bool:
        """One bound ``sample = message time - arrival time`` (seconds) from ``agent``. ``bound``: how
        long the message may legitimately have waited (its interval for a live poll); ``confirmed``
        False while the collector may be receiving a burst of queued messages (after a reconnect, or
        with a backlog). Returns whether the estimate changed by more than a second."""
        if not math.isfinite(sample):
            return False
        state = self.agents.setdefault(agent, AgentClock())
        before = state.estimate
        if state.restored and confirmed and source is not ClockSource.OLD:
            state.restored = False
            if before is not None and abs(sample - before) > self.threshold:
                state.estimate = None  # the clock changed while the collector was away: measure anew
        estimate = state.estimate
        # A poll may have waited its whole interval, and a test or a backlog may show old polls on data/:
        # polls raise the estimate (nothing arrives early) and set it when it is small, but only births and
        # self messages (stamped and sent at once) may say that an agent is behind, or went back.
        precise = confirmed and source in (ClockSource.BIRTH, ClockSource.SELF)
        if estimate is None:
            if sample > self.threshold:
                state.estimate = sample  # the agent is ahead at least this much, whatever the delay
            elif confirmed and (source is ClockSource.BIRTH or (
                    source in (ClockSource.LIVE, ClockSource.SELF) and sample >= -self.threshold)):
                state.estimate = sample
            elif precise:
                if state.first_low is not None and now - state.first_low[0] <= 4 * STEP_CONFIRM:
                    state.estimate = max(sample, state.first_low[1])  # two self messages agree
                else:
                    state.first_low = (now, sample)  # one delayed message is not enough
        elif sample > estimate:
            if source is not ClockSource.OLD:  # an old message may predate a step back: never raise on it
                state.estimate = sample
                state._end_step()
        elif sample >= estimate - bound - DELAY_SLACK - self.threshold:
            if precise:
                state._end_step()  # consistent with the estimate
        elif confirmed and source is ClockSource.BIRTH:
            state.estimate = sample  # a fresh birth far below: the clock went back
            state._end_step()
        elif precise:
            if state.step_since is None or sample > state.step_first + self.threshold:
                # a new run, or the run rises (queued messages getting fresher): start again
                state.step_since, state.step_first, state.step_best, state.step_count = now, sample, sample, 1
            else:
                state.step_best = max(state.step_best, sample)
                state.step_count += 1
                if state.step_count >= 2 and now - state.step_since >= STEP_CONFIRM:
                    state.estimate = state.step_best
                    state._end_step()
        after = state.estimate
        return after is not None and (before is None or abs(after - before) > 1.0)

    def restore(self, agent: str, estimate: float) -> None:
        """An estimate saved before a restart: used until live messages say otherwise."""
        if math.isfinite(estimate):
            state = self.agents.setdefault(agent, AgentClock())
            state.estimate, state.restored = estimate, True

    def estimate(self, agent: str) -> float | None:
        state = self.agents.get(agent)
        return state.estimate if state is not None else None

    # --- which clock is right -------------------------------------------------------------------

    def update_reference(self, voters: Iterable[str]) -> None:
        """Recompute the reference from the estimates of ``voters`` (the agents online), then which
        agents are corrected. Logs once when the collector's own clock is judged off, once when not."""
        estimates = sorted(e for e in (self.estimate(a) for a in voters) if e is not None)
        reference = 0.0
        voted = 0
        if len(estimates) >= MIN_VOTERS:
            middle = _median(estimates)
            agree = [e for e in estimates if abs(e - middle) <= self.threshold]
            limit = self.threshold / 2 if self.reference else self.threshold  # hysteresis
            if 2 * len(agree) > len(estimates) and abs(middle) > limit:
                reference, voted = _median(agree), len(agree)
        if (reference != 0.0) != (self.reference != 0.0):
            if reference:
                log.warning("the collector's clock is %+.0f s off the time %d of %d agents agree on: using "
                            "theirs for live/late decisions and timestamps; fix NTP on the collector",
                            -reference, voted, len(estimates))
            else:
                log.warning("the collector's clock agrees with its agents again")
        self.reference, self.reference_voters = reference, voted
        for agent in self.agents:
            self.refresh(agent)

    def refresh(self, agent: str) -> None:
        state = self.agents[agent]
        if state.estimate is None:
            return
        off = state.estimate - self.reference
        if not state.correcting and abs(off) > self.threshold:
            state.correcting = True
            log.warning("agent %s: its clock is %.0f s %s (measured from its messages); correcting its "
                        "timestamps; fix NTP on the agent", agent, abs(off),
                        "ahead" if off > 0 else "behind")
        elif state.correcting and abs(off) < self.threshold / 2:
            state.correcting = False
            log.warning("agent %s: its clock agrees again (offset %+.1f s); timestamps used as sent",
                        agent, off)

    def correction(self, agent: str) -> float:
        """Seconds to subtract from the agent's timestamps to get reference time (0: used as sent)."""
        state = self.agents.get(agent)
        if state is None or not state.correcting or state.estimate is None:
            return 0.0
        return state.estimate - self.reference

    # --- placing ----------------------------------------------------------------------------------

    def place(self, agent: str, boot: str, seq: int | None, ts: float, now_ref: float, live: bool) -> float:
        """The reference time of a message stamped ``ts`` by ``agent``: corrected by the correction in
        force when it was made. ``live``: it was just made (it extends the current segment)."""
        state = self.agents.get(agent)
        current = self.correction(agent)
        if state is None:
            return ts
        if live:
            if seq is not None:
                _record(state, boot, seq, ts - current, current)
            return ts - current
        if current == 0.0 and all(s.correction == 0.0 for s in state.segments):
            return ts  # the usual case: this agent's clock has never needed a correction
        lower, upper = -math.inf, now_ref
        candidates: list[float] = []
        if seq is not None:
            mine = [s for s in state.segments if s.boot == boot]
            inside = [s for s in mine if s.lo <= seq <= s.hi]
            if inside:
                candidates.append(inside[-1].correction)
            else:
                before = [s for s in mine if s.hi < seq]
                after = [s for s in mine if s.lo > seq]
                if before:
                    lower = before[-1].t_hi
                    candidates.append(before[-1].correction)
                if after:
                    upper = min(upper, after[0].t_lo)
                    candidates.append(after[0].correction)
        candidates += [current, *(s.correction for s in reversed(state.segments)), 0.0]
        slack = self.threshold
        seen: set[float] = set()
        for correction in candidates:
            if correction in seen:
                continue
            seen.add(correction)
            if lower - slack <= ts - correction <= upper + slack:
                return ts - correction
        first = candidates[0]
        return ts - first if ts - first <= now_ref + slack else now_ref  # never in the future


def _record(state: AgentClock, boot: str, seq: int, t: float, correction: float) -> None:
    last = state.segments[-1] if state.segments else None
    if last is not None and last.boot == boot and last.correction == correction and seq >= last.lo:
        if seq > last.hi:
            last.hi, last.t_hi = seq, t
        return
    if last is not None and last.boot == boot and correction != last.correction and abs(
            correction - last.correction) <= 1.0 and seq >= last.lo:
        # the estimate moved by jitter only: one segment, the newest correction
        last.correction = correction
        if seq > last.hi:
            last.hi, last.t_hi = seq, t
        return
    state.segments.append(_Segment(boot, seq, seq, t, t, correction))
    if len(state.segments) > MAX_SEGMENTS:
        del state.segments[0]


def _median(values: list[float]) -> float:
    n = len(values)
    middle = n // 2
    return values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2

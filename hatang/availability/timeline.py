"""Minute states of one subject over a report period, and what the report counts from them. Pure: no I/O.

The grid (docs/operations.md, "Availability"). A report period is ``[start, end)`` with both ends on a
whole minute. Minute ``i`` is ``[start + 60 i, start + 60 (i + 1))``; its state is the value of the
subject's expression (:mod:`hatang.availability.definitions`) at the instant that ENDS the minute,
``start + 60 (i + 1)``, so a range query from ``start + 60`` to ``end`` with a 60 s step gives exactly
one value per minute:

- a value ``>= 1`` is **up**; any other value (0, 0.5, NaN) is **down**; no value is **unknown** (no
  data: the subject was not seen within the look-back);
- when two series of one subject (the same identity labels, e.g. an office whose site labels changed
  during the period) both have a value for a minute, up wins;
- **maintenance** overrides all three: a minute is in maintenance when a window that covers the subject
  contains the minute's first second (``window.start <= minute start < window.end``), so a window
  from 03:10:20 covers the minute 03:11 but not 03:10, and one ending at 03:15:00 does not cover 03:15.

The four totals (up, down, unknown, maintenance, in minutes) always sum to the period's minutes.
``unknown_as`` says how unknown minutes count (default ``down``):

====================  ===============================  ===============================  ===========
``unknown_as``        availability numerator           availability denominator         downtime
====================  ===============================  ===============================  ===========
``down``              up                               period − maintenance             down + unknown
``up``                up + unknown                     period − maintenance             down
``excluded``          up                               period − maintenance − unknown   down
====================  ===============================  ===============================  ===========

A denominator of 0 (all maintenance, or all unknown and excluded) has no availability (``None``).

An **incident** is a maximal run of minutes counted as down (down, and unknown when ``unknown_as`` is
``down``); any other minute, maintenance included, ends it. It starts at its first minute's start and
ends at its last minute's end.

A subject's minutes are one ``bytearray`` (one byte per minute: 44,640 bytes for 31 days), so a month of
a whole province stays small, and counting and finding runs are done by C code (``count``, ``re``).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from hatang.availability.definitions import SITE_LABELS, STEP_SECONDS
from hatang.availability.windows import MaintenanceWindow

UnknownAs = Literal["down", "up", "excluded"]
UNKNOWN_AS: tuple[UnknownAs, ...] = ("down", "up", "excluded")

# One byte per minute. UNKNOWN is 0 so a fresh bytearray is "no data".
UNKNOWN = 0
UP = 1
DOWN = 2
MAINTENANCE = 3

_DOWN_RUNS = re.compile(rb"\x02+")
_DOWN_OR_UNKNOWN_RUNS = re.compile(rb"[\x00\x02]+")


class PeriodError(ValueError):
    """A report period that cannot be used; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """``[start, end)``, both aware and on a whole minute (of Unix time), start before end."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, moment in (("start", self.start), ("end", self.end)):
            if moment.tzinfo is None:
                raise PeriodError(f"the period's {name} {moment} has no time zone")
            if moment.timestamp() % STEP_SECONDS:
                raise PeriodError(f"the period's {name} {moment.isoformat()} is not on a whole minute")
        if self.end <= self.start:
            raise PeriodError(f"the period ends ({self.end.isoformat()}) before it starts "
                              f"({self.start.isoformat()})")

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        return int(self.end.timestamp())

    @property
    def minutes(self) -> int:
        return (self.end_ts - self.start_ts) // STEP_SECONDS

    def minute_start(self, index: int) -> datetime:
        """The start of minute ``index`` (``index == minutes`` gives the period's end), in the start's
        zone. Computed on Unix time: adding to an aware datetime is wall-clock arithmetic, an hour off
        across a daylight-saving change."""
        moment = datetime.fromtimestamp(self.start_ts + STEP_SECONDS * index, UTC)
        return moment.astimezone(self.start.tzinfo)

    def minutes_within(self, start: datetime, end: datetime) -> tuple[int, int]:
        """``(first, stop)``: the minutes whose first second lies in ``[start, end)``, clipped to the
        period (``first == stop`` when none)."""
        def first_at_or_after(moment: datetime) -> int:
            offset = (moment.timestamp() - self.start_ts) / STEP_SECONDS  # Unix time, as above
            return min(max(math.ceil(offset), 0), self.minutes)

        first, stop = first_at_or_after(start), first_at_or_after(end)
        return first, max(first, stop)


def state_of(value: str | float) -> int:
    """UP for a value >= 1, DOWN for any other value (0, 0.5, NaN; Prometheus sends values as text)."""
    if value == "1":
        return UP
    if value == "0":
        return DOWN
    try:
        return UP if float(value) >= 1 else DOWN
    except ValueError:
        return DOWN


def fold(states: bytearray, period: ReportPeriod, points: Iterable[Sequence[float | str]]) -> None:
    """Write ``[timestamp, value]`` points (as a range query returns them: the value at the instant that
    ends a minute) into ``states``. Up wins over down for a minute that already has a value; points
    off the grid or outside the period are ignored."""
    base = period.start_ts + STEP_SECONDS
    size = len(states)
    for timestamp, value in points:
        offset = float(timestamp) - base
        index = int(offset) // STEP_SECONDS
        if offset % STEP_SECONDS or not 0 <= index < size:
            continue
        if value == "1":
            states[index] = UP
        elif states[index] != UP:
            states[index] = state_of(value)


def overlay_maintenance(
    states: bytearray, period: ReportPeriod, windows: Iterable[MaintenanceWindow]
) -> None:
    """Mark the minutes of ``windows`` (already chosen as covering the subject) as MAINTENANCE."""
    for window in windows:
        first, stop = period.minutes_within(window.start, window.end)
        if stop > first:
            states[first:stop] = bytes((MAINTENANCE,)) * (stop - first)


@dataclass(frozen=True, slots=True)
class Totals:
    """Minutes in each state; they sum to the period's minutes."""

    up: int = 0
    down: int = 0
    unknown: int = 0
    maintenance: int = 0

    @classmethod
    def of(cls, states: bytes | bytearray) -> Totals:
        return cls(states.count(UP), states.count(DOWN), states.count(UNKNOWN), states.count(MAINTENANCE))

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.up + other.up, self.down + other.down, self.unknown + other.unknown,
                      self.maintenance + other.maintenance)

    @property
    def minutes(self) -> int:
        return self.up + self.down + self.unknown + self.maintenance

    def ratio(self, unknown_as: UnknownAs) -> tuple[int, int] | None:
        """``(numerator, denominator)`` of the availability in minutes, or None when the denominator is 0."""
        numerator = self.up + (self.unknown if unknown_as == "up" else 0)
        denominator = self.minutes - self.maintenance - (self.unknown if unknown_as == "excluded" else 0)
        return (numerator, denominator) if denominator > 0 else None

    def availability(self, unknown_as: UnknownAs) -> float | None:
        """Availability in percent, or None when there is nothing to count (denominator 0)."""
        ratio = self.ratio(unknown_as)
        return None if ratio is None else 100.0 * ratio[0] / ratio[1]

    def downtime(self, unknown_as: UnknownAs) -> int:
        """Minutes counted as down."""
        return self.down + (self.unknown if unknown_as == "down" else 0)


def percent_floor(ratio: tuple[int, int] | None, decimals: int) -> str | None:
    """``ratio`` in percent with ``decimals`` digits, rounded DOWN (exact integer arithmetic), so that
    "100.00" only ever means no minute counted as down; None stays None. Dot as decimal separator."""
    if ratio is None:
        return None
    numerator, denominator = ratio
    scaled = numerator * 100 * 10**decimals // denominator
    whole, fraction = divmod(scaled, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}" if decimals else str(whole)


@dataclass(frozen=True, slots=True, order=True)
class Incident:
    """Minutes ``[first, stop)`` of the period counted as down, in a row."""

    first: int
    stop: int

    @property
    def minutes(self) -> int:
        return self.stop - self.first

    def start(self, period: ReportPeriod) -> datetime:
        return period.minute_start(self.first)

    def end(self, period: ReportPeriod) -> datetime:
        return period.minute_start(self.stop)


def incidents(states: bytes | bytearray, unknown_as: UnknownAs) -> list[Incident]:
    """Every incident, in time order."""
    pattern = _DOWN_OR_UNKNOWN_RUNS if unknown_as == "down" else _DOWN_RUNS
    return [Incident(m.start(), m.end()) for m in pattern.finditer(states)]


def longest_first(found: Iterable[Incident], count: int) -> list[Incident]:
    """The ``count`` longest incidents, longest first (the earlier first among equals)."""
    return heapq.nsmallest(count, found, key=lambda i: (-i.minutes, i.first))


@dataclass(frozen=True, slots=True)
class SubjectSummary:
    """What the report shows of one subject: its totals, how many incidents, and the longest ones."""

    totals: Totals
    incident_count: int
    longest: tuple[Incident, ...]  # longest first, at most the ``keep`` asked for


def summarize(states: bytes | bytearray, unknown_as: UnknownAs, keep: int) -> SubjectSummary:
    found = incidents(states, unknown_as)
    return SubjectSummary(Totals.of(states), len(found), tuple(longest_first(found, max(keep, 1))))


@dataclass(slots=True)
class SeriesTimeline:
    """One subject's minutes, with the labels of the (last) series folded into it."""

    identity: tuple[str, ...]
    labels: dict[str, str]
    states: bytearray

    @property
    def site(self) -> dict[str, str]:
        return {k: self.labels[k] for k in SITE_LABELS if self.labels.get(k)}


@dataclass
class TimelineSet:
    """The timelines of every subject of one kind, keyed by the kind's identity labels, filled chunk by
    chunk from range-query results."""

    period: ReportPeriod
    identity: tuple[str, ...]
    timelines: dict[tuple[str, ...], SeriesTimeline] = field(default_factory=dict)

    def add(self, labels: Mapping[str, str], points: Iterable[Sequence[float | str]]) -> None:
        key = tuple(labels.get(name, "") for name in self.identity)
        timeline = self.timelines.get(key)
        if timeline is None:
            timeline = self.timelines[key] = SeriesTimeline(key, dict(labels), bytearray(self.period.minutes))
        else:
            timeline.labels = dict(labels)
        fold(timeline.states, self.period, points)

"""A short, bounded history of interface traffic counters for the status pages (collector/status_pages.py).

The store tells :meth:`TrafficHistory.observe` of every live poll (``Store.on_live_poll``). From the poll's
pre-rendered exposition blocks it takes, per interface (``if_index``), the values of
``hatang_interface_in_bytes_total`` and ``hatang_interface_out_bytes_total`` with one compiled bytes
regular expression and ``array('d', map(float, ...))`` (no label parsing, no decoding, no Python loop per
interface: about 40 us for a 48-port switch), and keeps the last ``points`` polls of each device, each as
two columns of doubles and the tuple of their if_index keys, which every poll of a device shares while its
interfaces stay the same. Memory is therefore about ``16 * points`` bytes per interface plus a little per
poll (benchmarks/status_page.py measures it), independent of the pages served; no other metric is kept.

The history forgets a device when the store no longer has it (checked at most every ``PRUNE_EVERY``
seconds, through the ``alive`` callable) and when it has sent no counters for ``points`` of its
intervals; an interface is gone once no kept poll has it. A device's polls keep at most
``MAX_INTERFACES`` counters each.

Rates (:func:`counter_rates`) are bit/s between consecutive polls: none (``None``) across a counter that
went back (device restart, 32-bit wrap), across a gap longer than ``GAP_INTERVALS`` poll intervals,
above a ceiling (the interface's speed, with slack: a counter that jumped, e.g. a 32-bit counter replaced
by its 64-bit one), or where either poll lacks the interface. Never a negative or an absurd figure.
"""

from __future__ import annotations

import math
import re
import time
from array import array
from collections import deque
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from collector.view import DeviceView

IN_BYTES = "hatang_interface_in_bytes_total"
OUT_BYTES = "hatang_interface_out_bytes_total"
HISTORY_POINTS = 30  # polls kept per device: 30 min at the usual 60 s interval, 5 min in the demo
MAX_INTERFACES = 4096  # per device
PRUNE_EVERY = 60.0  # seconds between checks for devices the store no longer has
GAP_INTERVALS = 3.5  # no rate across a gap longer than this many poll intervals
SPEED_SLACK = 1.5  # no rate above this many times the interface's speed
NAN = math.nan

# One sample line of a counter block: its if_index label and its value. Label values are escaped in the
# text format: a '"' inside a value is always '\"', so 'if_index="' followed by digits and '"' is the
# label itself (a value ending in 'if_index=' is followed by its closing quote and then ',' or '}', never
# a digit; and no other label of the interface series ends in 'if_index'). Starting with that literal
# lets the regex engine search for it at C speed (3x faster than a character class first). The greedy
# [^\n]* backtracks to the last '} ' of the line, which follows the label set even when a label value
# contains '} ' (values cannot contain a newline: it is escaped too).
_COUNTER_LINE = re.compile(rb'if_index="(\d{1,20})"[^\n]*\} (\S+)(?: -?\d+)?$', re.M)


def parse_counters(block: bytes | None) -> dict[bytes, float]:
    """if_index -> counter value of the sample lines of one exposition block (finite values only)."""
    if not block:
        return {}
    out: dict[bytes, float] = {}
    for index, raw in _COUNTER_LINE.findall(block):
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            out[index] = value
    return out


def counter_rates(times: Sequence[float], counters: Sequence[float], *, ceiling: float | None = None,
                  max_gap: float | None = None) -> list[float | None]:
    """Bit/s between consecutive points (one fewer than the points): ``counters`` are byte counters
    (NaN: absent). None across a counter reset or wrap, a gap over ``max_gap`` seconds, a rate over
    ``ceiling`` bit/s, or a missing value."""
    rates: list[float | None] = []
    for i in range(1, min(len(times), len(counters))):
        dt = times[i] - times[i - 1]
        previous, current = counters[i - 1], counters[i]
        if (dt <= 0 or math.isnan(previous) or math.isnan(current) or current < previous
                or (max_gap is not None and dt > max_gap)):
            rates.append(None)
            continue
        rate = (current - previous) * 8.0 / dt
        rates.append(None if not math.isfinite(rate) or (ceiling is not None and rate > ceiling) else rate)
    return rates


Keys = tuple[bytes, ...]  # if_index of each counter, in the block's order


def _column(block: bytes | None, previous: Keys) -> tuple[Keys, array[float]]:
    """The if_index keys and counter values of one block; ``previous`` keys are reused when equal (the
    usual case: one tuple shared by every kept poll of a device)."""
    pairs = _COUNTER_LINE.findall(block) if block else []
    if not pairs:
        return (), array("d")
    del pairs[MAX_INTERFACES:]
    keys, raw = zip(*pairs, strict=True)
    try:
        values = array("d", list(map(float, raw)))  # from a list: no spare room
    except ValueError:  # not a number (cannot pass ingest): that value is unknown, not the whole poll
        values = array("d", (_number(v) for v in raw))
    return (previous if keys == previous else keys), values


def _number(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return NAN


@dataclass(slots=True)
class _Poll:
    """One kept poll of a device: its time and its in/out byte counters, columnar."""

    ts: float
    in_keys: Keys
    in_values: array[float]
    out_keys: Keys
    out_values: array[float]


@dataclass(slots=True)
class _Track:
    """The kept polls of one device, oldest first."""

    interval: float
    seen: float  # history clock when it last had counters
    polls: deque[_Poll]


def _positions(keys: Keys, cache: dict[int, dict[bytes, int]]) -> dict[bytes, int]:
    found = cache.get(id(keys))
    if found is None:
        found = cache[id(keys)] = {key: i for i, key in enumerate(keys)}
    return found


@dataclass(frozen=True, slots=True)
class InterfaceTraffic:
    """Rates of one interface over the kept polls, bit/s (None where unknown); the newest last."""

    in_bps: list[float | None]
    out_bps: list[float | None]

    @property
    def current_in(self) -> float | None:
        return self.in_bps[-1] if self.in_bps else None

    @property
    def current_out(self) -> float | None:
        return self.out_bps[-1] if self.out_bps else None


class TrafficHistory:
    """Per device, the interface byte counters of its last ``points`` live polls (see the module doc)."""

    def __init__(self, points: int = HISTORY_POINTS,
                 alive: Callable[[], Container[tuple[str, str]]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if points < 2:
            raise ValueError("a history needs at least 2 points to give a rate")
        self.points = points
        self._alive = alive
        self._clock = clock
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._pruned_at = clock()

    def __len__(self) -> int:
        return len(self._tracks)

    def interfaces(self) -> int:
        """Interfaces in the newest kept poll of each device."""
        return sum(len(set(t.polls[-1].in_keys) | set(t.polls[-1].out_keys)) for t in self._tracks.values())

    def observe(self, state: DeviceView) -> None:
        """A live poll was stored: keep its interface counters (SNMP devices only)."""
        now = self._clock()
        if now - self._pruned_at >= PRUNE_EVERY:
            self.prune()
        if state.is_self or state.kind != "device":
            return
        key = (state.agent, state.device)
        track = self._tracks.get(key)
        last = track.polls[-1] if track is not None else None
        if last is not None and state.ts <= last.ts:
            return  # not newer than what is kept
        in_keys, ins = _column(state.blocks.get(IN_BYTES), last.in_keys if last is not None else ())
        out_keys, outs = _column(state.blocks.get(OUT_BYTES), last.out_keys if last is not None else ())
        if not in_keys and not out_keys:  # down, or no interfaces profile: nothing to add
            return
        if out_keys == in_keys:
            out_keys = in_keys
        if track is None:
            track = self._tracks[key] = _Track(state.interval, now, deque(maxlen=self.points))
        track.interval, track.seen = state.interval, now
        track.polls.append(_Poll(state.ts, in_keys, ins, out_keys, outs))

    def prune(self) -> None:
        """Forget devices the store no longer has, and devices without counters for ``points`` intervals."""
        now = self._pruned_at = self._clock()
        alive = self._alive() if self._alive is not None else None
        for key, track in list(self._tracks.items()):
            if (alive is not None and key not in alive) or now - track.seen > self.points * track.interval:
                del self._tracks[key]

    def forget(self, agent: str, device: str) -> None:
        self._tracks.pop((agent, device), None)

    def newest(self, agent: str, device: str) -> float | None:
        """Poll time of the newest kept poll of a device."""
        track = self._tracks.get((agent, device))
        return track.polls[-1].ts if track is not None and track.polls else None

    def traffic(self, agent: str, device: str, ceilings: Mapping[str, float] | None = None,
                only: Container[str] | None = None) -> dict[str, InterfaceTraffic]:
        """if_index -> the rates of each interface of a device over the kept polls (interfaces of any kept
        poll, the newest poll's first; ``only`` these if given). ``ceilings``: if_index -> the interface's
        speed in bit/s (rates above it, with slack, are counter jumps: None)."""
        track = self._tracks.get((agent, device))
        if track is None:
            return {}
        polls = list(track.polls)
        times = [p.ts for p in polls]
        cache: dict[int, dict[bytes, int]] = {}
        columns = [(_positions(p.in_keys, cache), p.in_values, _positions(p.out_keys, cache), p.out_values)
                   for p in polls]
        indexes = dict.fromkeys(k for p in reversed(polls) for keys in (p.in_keys, p.out_keys) for k in keys)
        max_gap = GAP_INTERVALS * track.interval
        out: dict[str, InterfaceTraffic] = {}
        for raw in indexes:
            index = raw.decode("ascii")
            if only is not None and index not in only:
                continue
            speed = ceilings.get(index) if ceilings is not None else None
            ceiling = speed * SPEED_SLACK if speed else None
            ins = [values[at[raw]] if raw in at else NAN for at, values, _, _ in columns]
            outs = [values[at[raw]] if raw in at else NAN for _, _, at, values in columns]
            out[index] = InterfaceTraffic(counter_rates(times, ins, ceiling=ceiling, max_gap=max_gap),
                                          counter_rates(times, outs, ceiling=ceiling, max_gap=max_gap))
        return out

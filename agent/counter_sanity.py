"""Counter sanity: interface counters that jumped by more than the interface's speed allows (pure; no I/O).

A device bug (a 64-bit counter that leaps by 2^32 or more, a LAG whose summed counter drops when a member
leaves, a row that flips between its 64-bit and 32-bit counter) makes Prometheus' ``rate()`` draw a
spike of petabits. Per device, :class:`CounterSanity` remembers each interface's last byte and packet
counters (:data:`CHECKED`) with the poll that read them and the interface's speed
(``hatang_interface_speed_bytes`` of the same poll: ``ifHighSpeed`` x 125000, else ``ifSpeed`` / 8), and
at the next poll compares the increase with what the speed allows.

- The increase is the one Prometheus computes between the two samples: ``new - old``, or ``new`` when the
  counter went back (a reset or a 32-bit wrap, which ``rate()`` also takes as a restart from 0). For a
  real reset or wrap ``new`` is at most what the interface passed since, so it is within the speed and
  never counted: a reboot or a Counter32 wrap at full speed is not a jump. A counter that went back but
  still reads more than the speed allows draws the same spike in Prometheus and is counted.
- The allowance is ``TOLERANCE`` x speed x elapsed + ``SLACK_BYTES`` (packets: with the speed divided by
  ``MIN_PACKET_BYTES``, the smallest IPv4 packet), where elapsed runs from the start of the poll that read
  the old value to the end of the poll that read the new one: an upper bound of the time between the two
  readings, so a slow poll does not make a false jump. The speed is the larger of the two polls' speeds
  (a link renegotiated from 100 Mb/s to 1 Gb/s counted at both). No check when neither poll knows a
  speed (0, absent, or ``ifSpeed`` saturated at 2^32-1 without ``ifHighSpeed``), on a software loopback
  (ifType 24, whose nominal speed says nothing of its traffic), at an interface's first sample since
  the agent started or since its labels changed (a new series for Prometheus too), or after the device
  rebooted (:meth:`CounterSanity.forget`).
- An interface is a label set of these families (one series in Prometheus). A poll without any checked
  family (device down, table cut by the deadline) leaves the memory as it was, so the next poll compares
  with the last values read.

Each poll returns ``hatang_interface_counter_jumps_total``: one sample per interface present in the
poll, the number of its polls since the agent started in which at least one of its checked counters
jumped (0 until then, so ``increase()`` sees the first one), and the jumps to log: an interface's first
jump, then again only after ``quiet_seconds`` (a day) without one. The jumped samples themselves are
published unchanged (see docs/metrics.md): the device's counter stays a counter for Prometheus, and the
dashboards' traffic panels clamp to the interface's speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wire.messages import Family, Labels, Sample

__all__ = ["CHECKED", "COUNTER_JUMPS_METRIC", "SPEED_METRIC", "CheckResult", "CounterSanity", "Jump",
           "describe_interface", "jump_family", "log_message"]

COUNTER_JUMPS_METRIC = "hatang_interface_counter_jumps_total"
SPEED_METRIC = "hatang_interface_speed_bytes"
MIN_PACKET_BYTES = 20.0  # the smallest IPv4 packet: an upper bound of packets per second at a speed
# checked counter family -> bytes per counted unit at the most (bytes: 1; packets: MIN_PACKET_BYTES)
CHECKED: Mapping[str, float] = {
    "hatang_interface_in_bytes_total": 1.0,
    "hatang_interface_out_bytes_total": 1.0,
    "hatang_interface_in_unicast_packets_total": MIN_PACKET_BYTES,
    "hatang_interface_in_multicast_packets_total": MIN_PACKET_BYTES,
    "hatang_interface_in_broadcast_packets_total": MIN_PACKET_BYTES,
    "hatang_interface_out_unicast_packets_total": MIN_PACKET_BYTES,
    "hatang_interface_out_multicast_packets_total": MIN_PACKET_BYTES,
    "hatang_interface_out_broadcast_packets_total": MIN_PACKET_BYTES,
}
TOLERANCE = 1.5  # times the speed: counters that include framing, clock and timing differences
SLACK_BYTES = 1_000_000.0  # plus this many bytes (packets: / MIN_PACKET_BYTES), for very slow links
QUIET_SECONDS = 86_400.0  # an interface's jump is logged again after this long without one
SATURATED_IF_SPEED = (2**32 - 1) / 8  # ifSpeed at its maximum, in bytes/s: "faster than this", unknown
LOOPBACK_TYPE = "24"  # IANAifType softwareLoopback
MAX_REMEMBERED = 10_000  # interfaces with jumps kept (counts, last jump); beyond, they start again
HELP = ("Polls of this interface in which a byte or packet counter grew by more than the interface's speed "
        "allows since the previous poll (a device bug or an unnoticed reset), since the agent started; "
        "the samples themselves are published unchanged (docs/metrics.md).")


@dataclass(frozen=True, slots=True)
class Jump:
    """One counter's increase beyond what the interface's speed allows."""

    metric: str
    previous: float
    value: float
    increase: float  # as Prometheus counts it: value - previous, or value when the counter went back
    elapsed: float  # seconds (upper bound) between the two readings
    speed: float  # bytes per second used for the check
    limit: float  # the largest increase allowed

    def describe(self) -> str:
        unit = CHECKED.get(self.metric, 1.0)
        rate = self.increase / self.elapsed if self.elapsed > 0 else float("inf")
        back = (" (the counter went back: taken as a restart from 0, as Prometheus does)"
                if self.value < self.previous else "")
        implied = f"{_si(rate * 8)}b/s" if unit == 1.0 else f"{_si(rate)} packets/s"
        speed = f"{_si(self.speed * 8)}b/s"
        return (f"{self.metric} went from {self.previous:.0f} to {self.value:.0f}{back}, an increase of "
                f"{self.increase:.0f} in {self.elapsed:.0f} s ({implied}) on a speed of {speed}")


@dataclass(frozen=True, slots=True)
class CheckResult:
    family: Family | None  # hatang_interface_counter_jumps_total; None when the poll had no checked counter
    to_log: tuple[tuple[Labels, tuple[Jump, ...]], ...] = ()  # interfaces whose jumps are to be logged now


@dataclass(slots=True)
class _Seen:
    values: dict[str, float]  # checked family -> value
    started: float  # monotonic start of the poll that read them
    speed: float | None  # bytes/s; None when unknown


@dataclass
class CounterSanity:
    """One device's memory of its interfaces' counters (see the module's docstring)."""

    tolerance: float = TOLERANCE
    quiet_seconds: float = QUIET_SECONDS
    _seen: dict[Labels, _Seen] = field(default_factory=dict)
    _counts: dict[Labels, int] = field(default_factory=dict)  # interfaces that jumped -> polls with jumps
    _last_jump: dict[Labels, float] = field(default_factory=dict)  # their last jump (monotonic)

    def forget(self) -> None:
        """The device restarted: its counters start again; the next poll is a first sample."""
        self._seen.clear()

    @property
    def counts(self) -> dict[Labels, int]:
        """Polls with jumps per interface (label set), for interfaces that had one."""
        return dict(self._counts)

    def check(self, families: Iterable[Family], *, started: float, finished: float) -> CheckResult:
        """Compare a poll's counters (read between monotonic ``started`` and ``finished``) with the
        previous poll's; remember them for the next one."""
        current: dict[Labels, _Seen] = {}
        speeds: dict[Labels, float] = {}
        for family in families:
            if family.name == SPEED_METRIC:
                speeds.update((s.labels, float(s.value)) for s in family.samples)
            elif family.name in CHECKED:
                for labels, value in family.samples:
                    seen = current.get(labels)
                    if seen is None:
                        seen = current[labels] = _Seen({}, started, None)
                    seen.values[family.name] = value
        if not current:
            return CheckResult(None)
        to_log: list[tuple[Labels, tuple[Jump, ...]]] = []
        for labels, seen in current.items():
            seen.speed = _usable(speeds.get(labels))
            previous = self._seen.get(labels)
            if previous is None or ("if_type", LOOPBACK_TYPE) in labels:  # label names are unique
                continue
            jumps = self._jumps(previous, seen, finished)
            if jumps and self._note(labels, finished):
                to_log.append((labels, jumps))
        self._seen = current
        return CheckResult(jump_family((labels, self._counts.get(labels, 0)) for labels in current),
                           tuple(to_log))

    def _jumps(self, previous: _Seen, seen: _Seen, finished: float) -> tuple[Jump, ...]:
        known = [s for s in (previous.speed, seen.speed) if s is not None]
        if not known:
            return ()
        speed = max(known)
        elapsed = max(0.0, finished - previous.started)
        allowed = self.tolerance * speed * elapsed + SLACK_BYTES  # bytes
        jumps = []
        for metric, value in seen.values.items():
            old = previous.values.get(metric)
            if old is None:
                continue
            increase = value - old if value >= old else value
            limit = allowed / CHECKED[metric]
            if increase > limit:
                jumps.append(Jump(metric, old, value, increase, elapsed, speed, limit))
        return tuple(jumps)

    def _note(self, labels: Labels, now: float) -> bool:
        """Count a poll with jumps; True when it is to be logged (first, or after a quiet period)."""
        if len(self._counts) >= MAX_REMEMBERED and labels not in self._counts:
            self._counts.clear()
            self._last_jump.clear()
        self._counts[labels] = self._counts.get(labels, 0) + 1
        last = self._last_jump.get(labels)
        self._last_jump[labels] = now
        return last is None or now - last >= self.quiet_seconds


def _usable(speed: float | None) -> float | None:
    """A speed to check against (bytes/s), or None: unknown, 0, or ifSpeed saturated."""
    if speed is None or not speed > 0 or abs(speed - SATURATED_IF_SPEED) < 0.5:
        return None
    return speed


def jump_family(counts: Iterable[tuple[Labels, int]]) -> Family | None:
    samples = tuple(Sample(labels, count) for labels, count in counts)
    return Family(COUNTER_JUMPS_METRIC, "counter", HELP, samples) if samples else None


def describe_interface(labels: Labels) -> str:
    """``Gi0/1 (if_index 1)`` from an interface's labels, for a log line."""
    found = dict(labels)
    name = found.get("if_name") or found.get("if_descr") or ""
    index = found.get("if_index")
    where = f"if_index {index}" if index is not None else ", ".join(f"{k}={v}" for k, v in labels)
    return f"{name} ({where})" if name else where


def log_message(device: str, labels: Labels, jumps: Iterable[Jump], quiet_seconds: float = QUIET_SECONDS
                ) -> str:
    """The one warning line for an interface's jump (its first, or the first after a quiet period)."""
    what = "; ".join(jump.describe() for jump in jumps)
    return (f"device {device} interface {describe_interface(labels)}: a counter grew by more than the "
            f"interface's speed allows (a device bug or an unnoticed reset): {what}; published unchanged and "
            f"counted in {COUNTER_JUMPS_METRIC}; logged again for this interface only after "
            f"{quiet_seconds / 3600:g} h without a jump")


def _si(value: float) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g} "

"""Pure arithmetic for reboot detection from sysUpTime (TimeTicks: 1/100 s, wraps at 2^32, ~497 days).

A reboot is sysUpTime going back, or reading less than the time elapsed since the previous reading (the
device restarted between two polls, even if it has since passed the old value). The 497-day wrap also
makes sysUpTime go back; it is not a reboot when the previous reading plus the elapsed time matches the
new reading plus one wrap. Elapsed time is measured on the agent's monotonic clock, so an NTP step of
the agent's wall clock is not mistaken for a reboot. The boot time (unix seconds) stays fixed from poll
to poll; it moves only on a reboot or when the device's clock has drifted from ours by more than the
tolerance (then it is re-anchored, without counting a reboot).
"""

from __future__ import annotations

from dataclasses import dataclass

WRAP_SECONDS = 2**32 / 100  # TimeTicks wrap: 42,949,672.96 s (497.1 days)
MIN_TOLERANCE = 10.0  # seconds: request latency, retries, and the poll's own duration
DRIFT = 1e-3  # relative: the device's tick rate vs our monotonic clock over long gaps (1000 ppm)
BACKSTEP_SLACK = 1.0  # seconds: a reading this much below the previous one is "going back"
FUTURE_SLACK = 300.0  # seconds: a TimeTicks stamp read a little after the uptime it is compared with


@dataclass(frozen=True, slots=True)
class UptimeState:
    uptime: float  # sysUpTime (seconds) at the last reading, as read (wraps)
    mono: float  # the agent's monotonic clock at that reading
    epoch: float  # unix time at which sysUpTime last read 0 (boot time + wraps x WRAP_SECONDS)
    boot_time: float  # unix time of the last (re)start of the device's SNMP agent
    reboots: int = 0  # reboots seen since this agent process started
    wraps: int = 0  # wraps seen since the boot


def observe(previous: UptimeState | None, uptime: float, *, wall: float, mono: float
            ) -> tuple[UptimeState, bool]:
    """The state after a new reading of ``uptime`` seconds taken at ``wall``/``mono``; True on reboot."""
    estimate = wall - uptime
    if previous is None:
        return UptimeState(uptime, mono, estimate, estimate), False
    elapsed = max(0.0, mono - previous.mono)
    tolerance = max(MIN_TOLERANCE, elapsed * DRIFT)
    went_back = uptime < previous.uptime - BACKSTEP_SLACK
    restarted = uptime + tolerance < elapsed
    if went_back or restarted:
        if abs(uptime + WRAP_SECONDS - (previous.uptime + elapsed)) <= tolerance:
            epoch = previous.epoch + WRAP_SECONDS
            shift = estimate - epoch if abs(estimate - epoch) > tolerance else 0.0
            return UptimeState(uptime, mono, epoch + shift, previous.boot_time + shift, previous.reboots,
                               previous.wraps + 1), False
        return UptimeState(uptime, mono, estimate, estimate, previous.reboots + 1), True
    shift = estimate - previous.epoch if abs(estimate - previous.epoch) > MIN_TOLERANCE else 0.0
    return UptimeState(uptime, mono, previous.epoch + shift, previous.boot_time + shift, previous.reboots,
                       previous.wraps), False


@dataclass(frozen=True, slots=True)
class Epoch:
    """What the mapping needs to turn a TimeTicks stamp (e.g. ifLastChange) into unix time."""

    start: float  # unix time at which sysUpTime last read 0
    uptime: float  # sysUpTime (seconds) when ``start`` was computed
    boot_time: float

    @classmethod
    def of(cls, state: UptimeState) -> Epoch:
        return cls(state.epoch, state.uptime, state.boot_time)


def stamp_to_unix(seconds: float, epoch: Epoch) -> float | None:
    """Unix time of the moment sysUpTime read ``seconds``; None if that cannot be placed.

    A stamp above the current uptime was taken before the last wrap (if the device has been up that
    long as far as we know); a stamp that would fall before the boot is unplaceable.
    """
    if seconds <= epoch.uptime + FUTURE_SLACK:
        return epoch.start + seconds
    earlier = epoch.start - WRAP_SECONDS + seconds
    return earlier if earlier >= epoch.boot_time - MIN_TOLERANCE else None

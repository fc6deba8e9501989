"""Counter sanity (agent/counter_sanity.py): interface counters that grew by more than the interface's
speed allows are counted per interface and logged once; wraps of 32-bit counters at full speed, reboots,
renegotiated speeds, unknown speeds and first samples are not jumps (issue #17)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from agent.counter_sanity import (
    CHECKED,
    COUNTER_JUMPS_METRIC,
    MIN_PACKET_BYTES,
    QUIET_SECONDS,
    SATURATED_IF_SPEED,
    SLACK_BYTES,
    TOLERANCE,
    CheckResult,
    CounterSanity,
    log_message,
)
from agent.profiles import Profile, load_profiles, parse_oid
from agent.snmp.values import SnmpValue
from tests.unit.test_poller_cache import IFX, Clocks, FakeDevice, families, make
from wire.messages import Family, Labels, Sample

IN, OUT = "hatang_interface_in_bytes_total", "hatang_interface_out_bytes_total"
IN_UCAST = "hatang_interface_in_unicast_packets_total"
SPEED = "hatang_interface_speed_bytes"
GIGABIT = 125_000_000.0  # bytes/s
IF_HIGH_SPEED = parse_oid("1.3.6.1.2.1.31.1.1.1.15")
INTERVAL = 60.0


def port(index: int = 1, *, name: str | None = None, if_type: int = 6, alias: str = "") -> Labels:
    return tuple(sorted({"if_index": str(index), "if_name": name or f"Gi0/{index}", "if_alias": alias,
                         "if_descr": f"GigabitEthernet0/{index}", "if_type": str(if_type)}.items()))


GI1, GI2 = port(1), port(2)


def poll(counters: dict[str, dict[Labels, float]], speeds: dict[Labels, float] | None = None) -> list[Family]:
    """A poll's families: counters by family and interface, and the interfaces' speeds (bytes/s)."""
    out = [Family(name, "counter", "", tuple(Sample(labels, value) for labels, value in rows.items()))
           for name, rows in counters.items()]
    if speeds:
        out.append(Family(SPEED, "gauge", "", tuple(Sample(labels, bps) for labels, bps in speeds.items())))
    return out


class Polls:
    """Drives a CounterSanity poll after poll: each poll starts ``interval`` after the previous one and
    lasts ``duration`` seconds (monotonic)."""

    def __init__(self, sanity: CounterSanity | None = None, duration: float = 0.5) -> None:
        self.sanity = sanity or CounterSanity()
        self.now = 1000.0
        self.duration = duration

    def run(self, families: Sequence[Family], after: float = INTERVAL) -> CheckResult:
        self.now += after
        return self.sanity.check(families, started=self.now, finished=self.now + self.duration)

    def bytes_in(self, value: float, speed: float | None = GIGABIT, labels: Labels = GI1,
                 after: float = INTERVAL) -> CheckResult:
        return self.run(poll({IN: {labels: value}}, None if speed is None else {labels: speed}), after)


def counts(result: CheckResult) -> dict[Labels, float]:
    assert result.family is not None
    assert result.family.name == COUNTER_JUMPS_METRIC and result.family.type == "counter"
    return {s.labels: s.value for s in result.family.samples}


# --- what counts --------------------------------------------------------------------------------------


def test_first_sample_is_not_checked_and_every_interface_starts_at_zero() -> None:
    polls = Polls()
    result = polls.run(poll({IN: {GI1: 10**18, GI2: 5}, OUT: {GI1: 7}}, {GI1: GIGABIT, GI2: GIGABIT}))
    assert counts(result) == {GI1: 0, GI2: 0}  # present from the first poll, so increase() sees the first
    assert result.to_log == ()


def test_a_jump_beyond_the_speed_is_counted_once_and_later_growth_from_there_is_normal() -> None:
    polls = Polls()
    polls.bytes_in(10**12)
    normal = polls.bytes_in(10**12 + GIGABIT * INTERVAL)  # the whole minute at line rate
    assert counts(normal) == {GI1: 0} and normal.to_log == ()
    jumped = polls.bytes_in(10**12 + 2**50)  # a petabyte in a minute on a gigabit port
    assert counts(jumped) == {GI1: 1}
    [(labels, [jump])] = jumped.to_log
    assert labels == GI1 and jump.metric == IN
    assert jump.increase == 2**50 - GIGABIT * INTERVAL
    assert jump.speed == GIGABIT
    assert jump.elapsed == INTERVAL + polls.duration  # from the old poll's start to the new poll's end
    after = polls.bytes_in(10**12 + 2**50 + 1000)
    assert counts(after) == {GI1: 1} and after.to_log == ()  # still published, at 1


def test_the_limit_is_the_tolerance_times_the_speed_over_the_elapsed_time_plus_slack() -> None:
    elapsed = INTERVAL + 0.5
    limit = TOLERANCE * GIGABIT * elapsed + SLACK_BYTES
    polls = Polls()
    polls.bytes_in(0)
    assert counts(polls.bytes_in(limit)) == {GI1: 0}
    assert counts(polls.bytes_in(limit + limit + 1)) == {GI1: 1}


def test_a_slow_poll_is_not_a_jump() -> None:
    """The read of poll 2 may come up to a poll's duration after its start: the window is poll 1's start
    to poll 2's end, an upper bound of the time between the two readings."""
    polls = Polls(duration=40.0)
    polls.bytes_in(0)
    assert counts(polls.bytes_in(GIGABIT * (INTERVAL + 40.0) * 1.4)) == {GI1: 0}


@pytest.mark.parametrize("bits_per_second", [10e6, 100e6, 1e9, 10e9, 40e9])
@pytest.mark.parametrize("interval", [10.0, 60.0, 300.0, 3600.0])
def test_32_bit_counters_wrapping_at_full_speed_are_never_jumps(bits_per_second: float,
                                                                interval: float) -> None:
    speed = bits_per_second / 8
    polls = Polls(duration=0.0)
    total = 2**32 - 12_345.0  # just below the wrap
    for _ in range(30):
        result = polls.bytes_in(total % 2**32, speed, after=interval)
        assert counts(result) == {GI1: 0}, (total, result.to_log)
        total += speed * interval  # line rate the whole interval: the counter wraps, maybe many times


@pytest.mark.parametrize("bits_per_second", [10e6, 1e9, 100e9])
def test_64_bit_counters_and_packets_of_minimum_size_at_full_speed_are_not_jumps(
        bits_per_second: float) -> None:
    speed = bits_per_second / 8
    polls = Polls(duration=0.0)
    octets, packets = 2.0**62, 2.0**40
    for _ in range(10):
        result = polls.run(poll({IN: {GI1: octets}, IN_UCAST: {GI1: packets}}, {GI1: speed}))
        assert counts(result) == {GI1: 0}, result.to_log
        octets += speed * INTERVAL
        packets += speed * INTERVAL / 64  # minimum Ethernet frames at line rate


def test_a_packet_counter_jump_is_counted() -> None:
    polls = Polls()
    polls.run(poll({IN_UCAST: {GI1: 1000}}, {GI1: GIGABIT}))
    result = polls.run(poll({IN_UCAST: {GI1: 1000 + 2**40}}, {GI1: GIGABIT}))
    assert counts(result) == {GI1: 1}
    [(_, [jump])] = result.to_log
    limit = (TOLERANCE * GIGABIT * (INTERVAL + 0.5) + SLACK_BYTES) / MIN_PACKET_BYTES
    assert jump.limit == pytest.approx(limit)
    assert set(CHECKED) >= {IN, OUT, IN_UCAST}


def test_a_reboot_resets_counters_without_a_jump() -> None:
    """After a restart the counters read what passed since: within the speed, with or without forget()."""
    polls = Polls()
    polls.bytes_in(2**60)
    assert counts(polls.bytes_in(GIGABIT * 30)) == {GI1: 0}  # rebooted 30 s ago, busy since
    polls = Polls()
    polls.bytes_in(2**60)
    polls.sanity.forget()  # the poller's reboot detection: the next poll is a first sample
    assert counts(polls.bytes_in(2**61)) == {GI1: 0}
    assert counts(polls.bytes_in(2**61 + 2**50)) == {GI1: 1}  # and then checked again


def test_a_counter_that_goes_back_but_stays_high_is_a_jump() -> None:
    """A LAG losing a member, a row flipping from its 64-bit counter to the 32-bit one: Prometheus takes the
    drop as a reset and counts the whole new value, a spike; so does the agent."""
    polls = Polls()
    polls.bytes_in(2**50)
    result = polls.bytes_in(2**50 - 10**9)
    assert counts(result) == {GI1: 1}
    [(_, [jump])] = result.to_log
    assert jump.increase == 2**50 - 10**9
    assert "went back" in jump.describe()


def test_a_renegotiated_speed_uses_the_larger_of_the_two_polls() -> None:
    polls = Polls(duration=0.0)
    polls.bytes_in(0, speed=GIGABIT / 10)  # 100 Mb/s
    assert counts(polls.bytes_in(GIGABIT * INTERVAL, speed=GIGABIT)) == {GI1: 0}  # now 1 Gb/s, used at once
    assert counts(polls.bytes_in(2 * GIGABIT * INTERVAL, speed=GIGABIT / 10)) == {GI1: 0}  # and back
    # at 100 Mb/s in both polls, a gigabit's worth is a jump
    assert counts(polls.bytes_in(3 * GIGABIT * INTERVAL, speed=GIGABIT / 10)) == {GI1: 1}


@pytest.mark.parametrize("speed", [None, 0.0, SATURATED_IF_SPEED])
def test_no_check_without_a_usable_speed(speed: float | None) -> None:
    polls = Polls()
    polls.bytes_in(0, speed)
    result = polls.bytes_in(2**60, speed)
    assert counts(result) == {GI1: 0} and result.to_log == ()


def test_a_speed_known_in_one_of_the_two_polls_is_used() -> None:
    polls = Polls()
    polls.bytes_in(0, GIGABIT)
    assert counts(polls.bytes_in(2**60, None)) == {GI1: 1}  # the speed column was missing this time
    polls.bytes_in(2**60, 0.0)
    assert counts(polls.bytes_in(2**61, GIGABIT)) == {GI1: 2}


def test_software_loopbacks_are_not_checked() -> None:
    lo = port(1, name="lo", if_type=24)
    polls = Polls()
    polls.bytes_in(0, 1_250_000, labels=lo)  # net-snmp says 10 Mb/s; local traffic is far faster
    result = polls.bytes_in(10**12, 1_250_000, labels=lo)
    assert counts(result) == {lo: 0} and result.to_log == ()


def test_new_labels_are_a_new_series_with_a_first_sample() -> None:
    polls = Polls()
    polls.bytes_in(0)
    renamed = port(1, alias="Uplink - TSLCD")
    result = polls.bytes_in(2**60, labels=renamed)
    assert counts(result) == {renamed: 0}


def test_a_poll_without_interface_counters_keeps_the_memory() -> None:
    polls = Polls(duration=0.0)
    polls.bytes_in(0)
    down = polls.run([])  # device down, or the table cut by the deadline
    assert down == CheckResult(None)
    # compared with the last values read, over the whole gap: two minutes at line rate is fine
    assert counts(polls.bytes_in(GIGABIT * 2 * INTERVAL)) == {GI1: 0}
    polls.run([Family("hatang_device_uptime_seconds", "gauge", "", (Sample((), 5.0),))])
    assert counts(polls.bytes_in(GIGABIT * 2 * INTERVAL + 2**50)) == {GI1: 1}


def test_several_counters_jumping_in_one_poll_count_one_and_log_one_line() -> None:
    polls = Polls()
    speeds = {GI1: GIGABIT, GI2: GIGABIT}
    polls.run(poll({IN: {GI1: 0, GI2: 0}, OUT: {GI1: 0, GI2: 0}}, speeds))
    result = polls.run(poll({IN: {GI1: 2**55, GI2: 10}, OUT: {GI1: 2**56, GI2: 10}}, speeds))
    assert counts(result) == {GI1: 1, GI2: 0}
    [(labels, jumps)] = result.to_log
    assert labels == GI1 and [j.metric for j in jumps] == [IN, OUT]


def test_logged_once_per_interface_until_it_behaved_for_a_day() -> None:
    polls = Polls(duration=0.0)
    total = 0.0
    logged = []
    polls.bytes_in(total)
    for _ in range(5):  # a jump every poll: logged at the first only
        total += 2**50
        logged.append(len(polls.bytes_in(total).to_log))
    assert logged == [1, 0, 0, 0, 0]
    assert counts(polls.bytes_in(total + 1)) == {GI1: 5}
    # quiet for a day (polled all along, at normal traffic), then a jump: logged again
    polls.bytes_in(total + 2, after=QUIET_SECONDS - 2 * INTERVAL)
    total += 2**60
    assert len(polls.bytes_in(total).to_log) == 1
    # a jump within a day of the last one is not
    total += 2**60
    assert polls.bytes_in(total, after=QUIET_SECONDS - 1).to_log == ()
    # other interfaces are logged on their own
    polls.bytes_in(0, labels=GI2)
    assert len(polls.bytes_in(2**60, labels=GI2).to_log) == 1


def test_the_log_line_names_the_device_interface_rate_and_speed() -> None:
    polls = Polls(duration=0.0)
    polls.bytes_in(10**9)
    [(labels, jumps)] = polls.bytes_in(10**9 + 10**15).to_log
    line = log_message("sw-xa-dai-dinh", labels, jumps)
    assert line.startswith("device sw-xa-dai-dinh interface Gi0/1 (if_index 1): ")
    assert ("hatang_interface_in_bytes_total went from 1000000000 to 1000001000000000, an increase of "
            "1000000000000000 in 60 s (133 Tb/s) on a speed of 1 Gb/s") in line
    assert COUNTER_JUMPS_METRIC in line and "24 h" in line


# --- in the poller ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


def set_counter(device: FakeDevice, port_index: int, value: int) -> None:
    device.columns[IFX["hc_in"]][port_index] = SnmpValue("counter64", value)


async def test_the_poller_publishes_the_jump_counter_logs_once_and_skips_a_reboot(
        profiles: dict[str, Profile], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hatang.agent.poller")
    device = FakeDevice(Clocks())
    device.columns[IF_HIGH_SPEED] = {1: SnmpValue("gauge32", 1000), 2: SnmpValue("gauge32", 1000)}
    poller = make(device, profiles)

    async def jumps_after(seconds: float, port1: int, *, reboot: bool = False) -> dict[str, float]:
        device.advance(seconds)
        if reboot:
            device.uptime = 5.0
        set_counter(device, 1, port1)
        outcome = await poller.poll()
        assert COUNTER_JUMPS_METRIC not in families(outcome.families)  # the agent's own: published only
        published = families(outcome.published)
        assert published[IN].samples[0].value == port1  # the device's value, unchanged
        return {dict(s.labels)["if_index"]: s.value for s in published[COUNTER_JUMPS_METRIC].samples}

    assert await jumps_after(0, 2**40) == {"1": 0, "2": 0}
    assert await jumps_after(INTERVAL, 2**40 + 10**9) == {"1": 0, "2": 0}
    # the device restarted: sysUpTime back to 5 s, the counter is not compared with the old one
    assert await jumps_after(INTERVAL, 2**62, reboot=True) == {"1": 0, "2": 0}
    assert await jumps_after(INTERVAL, 2**62 + 2**50) == {"1": 1, "2": 0}
    assert await jumps_after(INTERVAL, 2**62 + 2**51) == {"1": 2, "2": 0}
    lines = [r.getMessage() for r in caplog.records if COUNTER_JUMPS_METRIC in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("device sw interface Gi0/1 (if_index 1): ")
    assert all(r.levelno == logging.WARNING for r in caplog.records if COUNTER_JUMPS_METRIC in r.getMessage())

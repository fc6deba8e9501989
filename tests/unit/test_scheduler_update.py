"""Scheduler.update (agent/scheduler.py): devices added, replaced and removed while the scheduler runs;
the devices it does not touch keep their loop, without a missed or an extra poll.

Run in virtual time, so that "no poll missed" can be checked exactly: an event loop whose clock
(``loop.time()`` and the scheduler's ``time.monotonic()``) jumps to the next timer whenever nothing is
ready, instead of waiting. Polls are fakes that take a set time. A test's scenario is a script of
virtual instants; a loop where nothing can ever happen again fails at once, and a loop spinning without
advancing its clock fails after a real deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import pytest

import agent.scheduler as scheduler_module
from agent.poller import DevicePoller, PollOutcome
from agent.scheduler import ScheduledDevice, Scheduler

T = TypeVar("T")
START = 1000.0
REAL_DEADLINE = 10.0  # seconds of real time a scenario may take


class VirtualClock:
    def __init__(self) -> None:
        self.now = START

    def monotonic(self) -> float:
        return self.now


class _AdvancingSelector(selectors.SelectSelector):
    """Never waits: when nothing is ready, the clock jumps by the timeout the loop asked for."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.real_deadline = time.monotonic() + REAL_DEADLINE

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if time.monotonic() > self.real_deadline:
            raise RuntimeError(f"the scenario ran {REAL_DEADLINE} s of real time: a loop spins")
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("every task waits on something that can never happen")
        self.clock.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_AdvancingSelector(clock))
        self._clock = clock

    def time(self) -> float:
        return self._clock.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    clock = VirtualClock()
    monkeypatch.setattr(scheduler_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def run_virtual(clock: VirtualClock, scenario: Callable[[], Awaitable[T]]) -> T:
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


class FakePoller:
    """A device poll that takes ``duration`` seconds; records when each poll started and ended, and how
    many were cancelled. ``in_flight``: shared by the pollers of one test, to see the concurrency."""

    def __init__(self, clock: VirtualClock, name: str, duration: float = 1.0,
                 in_flight: list[int] | None = None) -> None:
        self.clock = clock
        self.name = name
        self.duration = duration
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cancelled = 0
        self.in_flight = in_flight if in_flight is not None else [0, 0]  # [now, peak]

    async def poll(self) -> PollOutcome:
        self.starts.append(self.clock.now)
        self.in_flight[0] += 1
        self.in_flight[1] = max(self.in_flight)
        try:
            await asyncio.sleep(self.duration)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight[0] -= 1
        self.ends.append(self.clock.now)
        return PollOutcome(ts=self.clock.now, up=True, duration=self.duration, errors=(), families=())


def scheduled(poller: FakePoller, interval: float) -> ScheduledDevice:
    return ScheduledDevice(cast(DevicePoller, poller), interval)


class Results:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.items: list[tuple[float, str, float]] = []  # (when, device, interval)

    def __call__(self, device: str, interval: float, outcome: PollOutcome) -> None:
        self.items.append((self.clock.now, device, interval))

    def of(self, device: str) -> list[tuple[float, float]]:
        return [(when, interval) for when, name, interval in self.items if name == device]


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(clock: VirtualClock, instant: float) -> None:
    """Let virtual time run to ``instant`` (START + seconds)."""
    assert instant >= clock.now
    await asyncio.sleep(instant - clock.now)


def poll_loops(name: str) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"poll:{name}" and not t.done()]


def every(first: float, interval: float, last: float) -> list[float]:
    """The instants of a fixed schedule from ``first`` up to ``last`` (START + seconds)."""
    count = int((last - first) // interval) + 1
    return [START + first + i * interval for i in range(count)]


def make_scheduler(devices: Sequence[ScheduledDevice], results: Results,
                   max_concurrent: int = 8) -> Scheduler:
    return Scheduler(devices, max_concurrent=max_concurrent, on_result=results, max_start_jitter=0.0)


# ---------------------------------------------------------------------------------------------- tests


def test_an_unchanged_device_keeps_its_loop_without_a_missed_or_extra_poll(clock: VirtualClock) -> None:
    steady = FakePoller(clock, "steady")
    other = FakePoller(clock, "other")
    results = Results(clock)
    scheduler = make_scheduler([scheduled(steady, 10.0), scheduled(other, 10.0)], results)

    async def scenario() -> tuple[asyncio.Task[Any], list[asyncio.Task[Any]]]:
        async with running(scheduler):
            await until(clock, START + 25)
            (before,) = poll_loops("steady")
            # the same device again (a new object), another one gone, a new one: steady is not touched
            scheduler.update([scheduled(steady, 10.0), scheduled(FakePoller(clock, "new"), 60.0)])
            await until(clock, START + 95.5)
            return before, poll_loops("steady")

    before, after = run_virtual(clock, scenario)

    assert after == [before]  # the same task: its loop went on
    assert steady.starts == every(0, 10, 95)  # 1000, 1010, ... 1090: none missed, none added
    assert [when for when, _ in results.of("steady")] == [t + 1 for t in every(0, 10, 95)]


def test_a_device_not_named_in_replace_keeps_its_poller(clock: VirtualClock) -> None:
    first = FakePoller(clock, "router")
    second = FakePoller(clock, "router")
    scheduler = make_scheduler([scheduled(first, 10.0)], Results(clock))

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 15)
            scheduler.update([scheduled(second, 5.0)])
            await until(clock, START + 45.5)

    run_virtual(clock, scenario)
    assert first.starts == every(0, 10, 45)
    assert second.starts == []
    assert scheduler.devices["router"].interval == 10.0


def test_a_new_device_starts_polling_at_once_on_its_own_schedule(clock: VirtualClock) -> None:
    steady = FakePoller(clock, "steady")
    added = FakePoller(clock, "added")
    results = Results(clock)
    scheduler = make_scheduler([scheduled(steady, 10.0)], results)

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 22)
            assert poll_loops("added") == []
            scheduler.update([scheduled(steady, 10.0), scheduled(added, 7.0)])
            await until(clock, START + 60)

    run_virtual(clock, scenario)
    assert added.starts == every(22, 7, 60)  # at once (no start jitter here), then every 7 s
    assert {interval for _, interval in results.of("added")} == {7.0}
    assert steady.starts == every(0, 10, 60)
    assert set(scheduler.devices) == {"steady", "added"}


def test_a_removed_device_stops_and_its_poll_in_flight_is_cancelled(clock: VirtualClock) -> None:
    steady = FakePoller(clock, "steady")
    slow = FakePoller(clock, "slow", duration=5.0)
    results = Results(clock)
    scheduler = make_scheduler([scheduled(steady, 10.0), scheduled(slow, 10.0)], results)

    async def scenario() -> list[asyncio.Task[Any]]:
        async with running(scheduler):
            await until(clock, START + 22)  # slow's third poll runs from 1020 to 1025
            scheduler.update([scheduled(steady, 10.0)])
            await until(clock, START + 80)
            return poll_loops("slow")

    assert run_virtual(clock, scenario) == []
    assert slow.starts == every(0, 10, 20)
    assert slow.cancelled == 1
    assert slow.ends == [START + 5, START + 15]
    assert [when for when, _ in results.of("slow")] == slow.ends  # the cancelled poll reports nothing
    assert steady.starts == every(0, 10, 80)
    assert set(scheduler.devices) == {"steady"}


def test_a_replaced_device_polls_with_its_new_poller_only(clock: VirtualClock) -> None:
    old = FakePoller(clock, "ups", duration=3.0)
    new = FakePoller(clock, "ups", duration=3.0)
    results = Results(clock)
    scheduler = make_scheduler([scheduled(old, 10.0)], results)

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 21)  # old's third poll in flight (1020-1023)
            (before,) = poll_loops("ups")
            scheduler.update([scheduled(new, 5.0)], replace={"ups"})
            await until(clock, START + 50)
            (after,) = poll_loops("ups")  # one loop, not two
            assert after is not before

    run_virtual(clock, scenario)
    assert old.starts == every(0, 10, 20)
    assert old.cancelled == 1
    assert new.starts == every(21, 5, 50)
    assert results.of("ups") == [(START + 3, 10.0), (START + 13, 10.0),
                                 *[(t + 3, 5.0) for t in every(21, 5, 47)]]
    assert scheduler.devices["ups"].interval == 5.0


def test_a_new_concurrency_limit_applies_to_the_polls_that_start_after_the_update(
    clock: VirtualClock,
) -> None:
    in_flight = [0, 0]
    first = FakePoller(clock, "a", duration=3.0, in_flight=in_flight)
    second = FakePoller(clock, "b", duration=3.0, in_flight=in_flight)
    devices = [scheduled(first, 10.0), scheduled(second, 10.0)]
    scheduler = make_scheduler(devices, Results(clock), max_concurrent=2)

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 5)
            assert in_flight[1] == 2  # both at once under the old limit
            in_flight[1] = 0
            scheduler.update(devices, max_concurrent=1)
            await until(clock, START + 19)

    run_virtual(clock, scenario)
    assert in_flight[1] == 1
    assert sorted(first.starts[1:] + second.starts[1:]) == [START + 10, START + 13]  # one waited its turn


def test_devices_added_to_a_scheduler_without_any_are_polled(clock: VirtualClock) -> None:
    added = FakePoller(clock, "added")
    scheduler = make_scheduler([], Results(clock))

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 30)
            scheduler.update([scheduled(added, 10.0)])
            await until(clock, START + 50)

    run_virtual(clock, scenario)
    assert added.starts == every(30, 10, 50)


def test_an_update_before_the_scheduler_runs_takes_effect_when_it_starts(clock: VirtualClock) -> None:
    dropped = FakePoller(clock, "dropped")
    added = FakePoller(clock, "added")
    scheduler = make_scheduler([scheduled(dropped, 10.0)], Results(clock))
    scheduler.update([scheduled(added, 10.0)])

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 20)

    run_virtual(clock, scenario)
    assert (dropped.starts, added.starts) == ([], every(0, 10, 20))


def test_poll_now_reaches_an_added_device_and_ignores_a_removed_one(clock: VirtualClock) -> None:
    gone = FakePoller(clock, "gone")
    added = FakePoller(clock, "added")
    scheduler = make_scheduler([scheduled(gone, 100.0)], Results(clock))

    async def scenario() -> None:
        async with running(scheduler):
            await until(clock, START + 10)
            scheduler.update([scheduled(added, 100.0)])
            await until(clock, START + 20)
            scheduler.poll_now("added")
            scheduler.poll_now("gone")
            await until(clock, START + 30)

    run_virtual(clock, scenario)
    assert added.starts == [START + 10, START + 20]  # its first poll, then the one asked for
    assert gone.starts == [START]

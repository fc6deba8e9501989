"""Tests of DevicePoller (with a fake SnmpReader) and of the Scheduler's extra polls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from agent.poller import DevicePoller, PollOutcome, SnmpReader
from agent.profiles import Profile, load_profiles, parse_oid
from agent.scheduler import ScheduledDevice, Scheduler
from agent.snmp.values import OID, SnmpValue
from tests.support.sequential_walks import SequentialWalks
from wire.messages import Family

COUNTER64_MAX = 2**64 - 1

SYS_DESCR = parse_oid("1.3.6.1.2.1.1.1.0")
SYS_OBJECT_ID = parse_oid("1.3.6.1.2.1.1.2.0")
SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")
IF_DESCR = parse_oid("1.3.6.1.2.1.2.2.1.2")
IF_IN_OCTETS = parse_oid("1.3.6.1.2.1.2.2.1.10")
IF_OPER = parse_oid("1.3.6.1.2.1.2.2.1.8")
IF_NAME = parse_oid("1.3.6.1.2.1.31.1.1.1.1")
IF_HC_IN = parse_oid("1.3.6.1.2.1.31.1.1.1.6")


class FakeSnmpError(Exception):
    """Stands for agent.snmp.errors.SnmpError: the device answered with an error."""


class FakeTimeout(FakeSnmpError):
    """Stands for agent.snmp.errors.SnmpTimeout (a subclass of SnmpError): the device does not answer."""


def column(root: OID, rows: dict[int, SnmpValue]) -> list[tuple[OID, SnmpValue]]:
    return [((*root, index), value) for index, value in rows.items()]


def standard_device() -> tuple[dict[OID, SnmpValue], dict[OID, list[tuple[OID, SnmpValue]]]]:
    scalars = {
        SYS_UPTIME: SnmpValue("timeticks", 8_640_000),
        SYS_NAME: SnmpValue("octets", "Trạm Đại Đình".encode()),
        SYS_DESCR: SnmpValue("octets", b"Linux 6.1"),
        SYS_OBJECT_ID: SnmpValue("oid", "1.3.6.1.4.1.8072.3.2.10"),
    }
    walks = {
        IF_NAME: column(IF_NAME, {1: SnmpValue("octets", b"lo"), 2: SnmpValue("octets", b"eth0")}),
        IF_DESCR: column(IF_DESCR, {1: SnmpValue("octets", b"lo"), 2: SnmpValue("octets", b"eth0")}),
        IF_HC_IN: column(IF_HC_IN, {1: SnmpValue("counter64", 5), 2: SnmpValue("counter64", COUNTER64_MAX)}),
        IF_IN_OCTETS: column(IF_IN_OCTETS, {1: SnmpValue("counter32", 5), 2: SnmpValue("counter32", 7)}),
        IF_OPER: column(IF_OPER, {1: SnmpValue("integer", 1), 2: SnmpValue("integer", 2)}),
    }
    return scalars, walks


class FakeReader(SequentialWalks):
    """Canned answers; optional errors per call kind; records every request."""

    def __init__(
        self,
        scalars: dict[OID, SnmpValue] | None = None,
        walks: dict[OID, list[tuple[OID, SnmpValue]]] | None = None,
        *,
        get_error: Exception | None = None,
        walk_error: Exception | None = None,
    ) -> None:
        default_scalars, default_walks = standard_device()
        self.scalars = default_scalars if scalars is None else scalars
        self.walks = default_walks if walks is None else walks
        self.get_error = get_error
        self.walk_error = walk_error
        self.gets: list[list[OID]] = []
        self.walked: list[OID] = []

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        self.gets.append(list(oids))
        if self.get_error is not None:
            raise self.get_error
        return [(oid, self.scalars.get(oid, SnmpValue("no_such_object", None))) for oid in oids]

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        self.walked.append(root)
        if self.walk_error is not None:
            raise self.walk_error
        return list(self.walks.get(root, []))[:max_rows]


class HangingReader(FakeReader):
    """Answers GETs; a walk waits for an event that is never set (a device that stops mid-poll)."""

    def __init__(self) -> None:
        super().__init__()
        self.never = asyncio.Event()
        self.walk_started = asyncio.Event()

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        self.walked.append(root)
        self.walk_started.set()
        await self.never.wait()
        return []


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


def make_poller(reader: SnmpReader, profiles: dict[str, Profile], *, deadline: float = 30.0,
                names: Sequence[str] = ("system", "interfaces"), name: str = "core-switch") -> DevicePoller:
    return DevicePoller(name, reader, [profiles[n] for n in names], deadline=deadline,
                        timeout_errors=(FakeTimeout,), snmp_errors=(FakeSnmpError,))


def families_by_name(outcome: PollOutcome) -> dict[str, Family]:
    return {f.name: f for f in outcome.families}


# --- DevicePoller ----------------------------------------------------------------------------------


async def test_poll_maps_every_profile(profiles: dict[str, Profile]) -> None:
    reader = FakeReader()
    outcome = await make_poller(reader, profiles).poll()
    assert outcome.up is True
    assert outcome.errors == ()
    families = families_by_name(outcome)
    assert families["hatang_device_uptime_seconds"].samples[0].value == pytest.approx(86400.0)
    assert dict(families["hatang_device_info"].samples[0].labels)["sys_name"] == "Trạm Đại Đình"
    in_bytes = families["hatang_interface_in_bytes_total"].samples
    assert {dict(s.labels)["if_index"]: s.value for s in in_bytes} == {"1": 5, "2": COUNTER64_MAX}
    oper = families["hatang_interface_oper_status"].samples
    assert {dict(s.labels)["if_name"] for s in oper} == {"lo", "eth0"}
    assert outcome.duration >= 0
    assert outcome.ts > 1_600_000_000


async def test_poll_reads_scalars_with_one_get_per_profile(profiles: dict[str, Profile]) -> None:
    reader = FakeReader()
    await make_poller(reader, profiles).poll()
    assert reader.gets == [[SYS_UPTIME, SYS_NAME, SYS_DESCR, SYS_OBJECT_ID]]


async def test_poll_walks_32_bit_fallback_only_when_hc_column_is_empty(profiles: dict[str, Profile]) -> None:
    reader = FakeReader()
    await make_poller(reader, profiles, names=["interfaces"]).poll()
    assert IF_HC_IN in reader.walked
    assert IF_IN_OCTETS not in reader.walked

    _, walks = standard_device()
    del walks[IF_HC_IN]
    reader = FakeReader(walks=walks)
    outcome = await make_poller(reader, profiles, names=["interfaces"]).poll()
    assert IF_IN_OCTETS in reader.walked
    in_bytes = families_by_name(outcome)["hatang_interface_in_bytes_total"]
    assert sorted(s.value for s in in_bytes.samples) == [5, 7]


async def test_timeout_marks_device_down_and_skips_remaining_profiles(profiles: dict[str, Profile]) -> None:
    reader = FakeReader(get_error=FakeTimeout("no response (timeout)"))
    outcome = await make_poller(reader, profiles).poll()
    assert outcome.up is False
    assert [(e.profile, e.error) for e in outcome.errors] == [("system", "no response (timeout)")]
    assert outcome.families == ()
    assert len(reader.gets) == 1
    assert reader.walked == []  # interfaces was not asked


async def test_timeout_in_a_walk_stops_the_poll_but_keeps_earlier_profiles(
    profiles: dict[str, Profile],
) -> None:
    reader = FakeReader(walk_error=FakeTimeout("timeout"))
    outcome = await make_poller(reader, profiles, names=["system", "interfaces", "system"]).poll()
    assert outcome.up is True  # the GET of the first profile was answered
    assert [e.profile for e in outcome.errors] == ["interfaces"]
    assert len(reader.walked) == 1
    assert len(reader.gets) == 1  # the third profile was not asked
    assert "hatang_device_uptime_seconds" in families_by_name(outcome)


async def test_error_in_one_profile_is_recorded_and_others_still_publish(
    profiles: dict[str, Profile],
) -> None:
    reader = FakeReader(get_error=FakeSnmpError("device reported tooBig at varbind 0"))
    outcome = await make_poller(reader, profiles).poll()
    assert outcome.up is True  # the walks of 'interfaces' were answered
    assert [(e.profile, e.error) for e in outcome.errors] == [
        ("system", "device reported tooBig at varbind 0")]
    families = families_by_name(outcome)
    assert "hatang_interface_in_bytes_total" in families
    assert "hatang_device_uptime_seconds" not in families


async def test_error_without_message_is_recorded_by_its_type_name(profiles: dict[str, Profile]) -> None:
    reader = FakeReader(walk_error=FakeSnmpError())
    outcome = await make_poller(reader, profiles).poll()
    assert [(e.profile, e.error) for e in outcome.errors] == [("interfaces", "FakeSnmpError")]
    assert "hatang_device_info" in families_by_name(outcome)


async def test_device_that_answers_with_errors_only_is_not_up(profiles: dict[str, Profile]) -> None:
    reader = FakeReader(get_error=FakeSnmpError("authorizationError"), walk_error=FakeSnmpError("x"))
    outcome = await make_poller(reader, profiles).poll()
    assert outcome.up is False
    assert [e.profile for e in outcome.errors] == ["system", "interfaces"]


async def test_deadline_ends_a_hanging_poll_with_an_error(profiles: dict[str, Profile]) -> None:
    reader = HangingReader()
    async with asyncio.timeout(10):
        outcome = await make_poller(reader, profiles, deadline=0.2).poll()
    assert reader.walk_started.is_set()
    [error] = outcome.errors
    assert (error.profile, error.reason) == ("*", "deadline")
    assert error.error.startswith("poll deadline of 0.2s exceeded while reading profile interfaces, table "
                                  "interfaces (columns 1.3.6.1.2.1.31.1.1.1.6, ")
    assert outcome.up is True  # the GET was answered before the walk hung
    assert "hatang_device_uptime_seconds" in families_by_name(outcome)  # the finished profile is kept
    assert "hatang_interface_in_bytes_total" not in families_by_name(outcome)
    assert outcome.duration >= 0.19  # asyncio may fire a timer up to one clock tick early


async def test_deadline_on_a_device_that_never_answers_reports_down(profiles: dict[str, Profile]) -> None:
    reader = HangingReader()
    async with asyncio.timeout(10):
        outcome = await make_poller(reader, profiles, deadline=0.2, names=["interfaces"]).poll()
    assert outcome.up is False
    assert outcome.families == ()
    assert outcome.errors[0].profile == "*"


async def test_state_transitions_are_logged_once(profiles: dict[str, Profile],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.poller")
    reader = FakeReader(get_error=FakeTimeout("no response"))
    poller = make_poller(reader, profiles)

    await poller.poll()
    await poller.poll()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "core-switch" in warnings[0].getMessage()
    assert "no response" in warnings[0].getMessage()

    caplog.clear()
    reader.get_error = None
    await poller.poll()
    await poller.poll()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "device core-switch is answering")]

    caplog.clear()
    reader.get_error = FakeTimeout("no response")
    await poller.poll()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


async def test_first_successful_poll_logs_answering_once(profiles: dict[str, Profile],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.poller")
    poller = make_poller(FakeReader(), profiles)
    for _ in range(3):
        await poller.poll()
    assert [r.getMessage() for r in caplog.records] == ["device core-switch is answering"]


# --- Scheduler -------------------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.items: list[tuple[str, float, PollOutcome]] = []
        self.changed = asyncio.Event()

    def __call__(self, device: str, interval: float, outcome: PollOutcome) -> None:
        self.items.append((device, interval, outcome))
        self.changed.set()

    def count(self, device: str) -> int:
        return sum(1 for name, _, _ in self.items if name == device)

    async def wait_for(self, device: str, count: int) -> None:
        while self.count(device) < count:
            self.changed.clear()
            await self.changed.wait()


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_poll_now_triggers_an_extra_poll_without_waiting_the_interval(
    profiles: dict[str, Profile],
) -> None:
    results = Results()
    poller = make_poller(FakeReader(), profiles, name="core-switch")
    scheduler = Scheduler([ScheduledDevice(poller, 3600.0)], max_concurrent=4, on_result=results,
                          max_start_jitter=0.0)
    async with running(scheduler), asyncio.timeout(5):
        await results.wait_for("core-switch", 1)
        scheduler.poll_now("core-switch")
        await results.wait_for("core-switch", 2)
        assert results.count("core-switch") == 2
    assert [(name, interval) for name, interval, _ in results.items] == [("core-switch", 3600.0)] * 2
    assert all(outcome.up for _, _, outcome in results.items)


async def test_poll_now_of_an_unknown_device_is_ignored(profiles: dict[str, Profile]) -> None:
    results = Results()
    scheduler = Scheduler([ScheduledDevice(make_poller(FakeReader(), profiles), 3600.0)], max_concurrent=1,
                          on_result=results, max_start_jitter=0.0)
    scheduler.poll_now("no-such-device")
    async with running(scheduler), asyncio.timeout(5):
        await results.wait_for("core-switch", 1)


async def test_a_hanging_device_does_not_delay_the_others(profiles: dict[str, Profile]) -> None:
    results = Results()
    hanging = HangingReader()
    stuck = make_poller(hanging, profiles, name="dead-ups", deadline=3600.0)
    healthy = make_poller(FakeReader(), profiles, name="core-switch")
    scheduler = Scheduler([ScheduledDevice(stuck, 3600.0), ScheduledDevice(healthy, 3600.0)],
                          max_concurrent=4, on_result=results, max_start_jitter=0.0)
    async with running(scheduler), asyncio.timeout(5):
        await results.wait_for("core-switch", 1)
        scheduler.poll_now("core-switch")
        await results.wait_for("core-switch", 2)
        await hanging.walk_started.wait()
    assert results.count("dead-ups") == 0

"""The uplink's reconnect back-off, in fake time: jittered exponential steps capped low, reset only after a
connection that stayed up, so a flapping broker does not keep the agent away while it is up and a broker
that drops every connection at once is not hammered. (The policy itself, hatang.broker.Backoff, is
tested in test_broker.py.)

The scenarios drive ``Uplink.run`` itself against a fake broker on a fake clock (no sockets, no real
waiting): ``asyncio.sleep`` as seen by agent/uplink.py advances the fake clock, and the driver moves time
to the next wake-up or broker transition.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

import agent.uplink as uplink_module
from agent.mqtt_client import PubAck
from agent.queue import DiskQueue
from agent.uplink import DEFAULT_MAX_BACKOFF, DEFAULT_STABLE_AFTER, Uplink, UplinkSettings
from hatang.broker import Backoff

# ---------------------------------------------------------------------------------------------- policy


def test_the_uplink_backs_off_from_1_s_up_to_15_s(tmp_path: Path) -> None:
    """The agent's steps (docs/architecture.md): 1 s doubling to 15 s, each wait jittered between half and
    all of its step. (The reset after 10 s up: the scenarios below.)"""
    queue = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)
    uplink = Uplink(UplinkSettings("mqtt://127.0.0.1:1", "c"), "xa-a", queue, birth=lambda: b"{}", will=b"{}")
    delays = [uplink._backoff.delay() for _ in range(8)]
    queue.close()
    steps = [1, 2, 4, 8, 15, 15, 15, 15]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, steps, strict=True)), delays
    assert (DEFAULT_MAX_BACKOFF, DEFAULT_STABLE_AFTER) == (15.0, 10.0)


# ---------------------------------------------------------------------------------------------- harness


class FakeTime:
    """A clock and the sleepers waiting on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if delay <= 0:
            await asyncio.sleep(0)
            return result
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + delay, future))
        await future
        return result

    def wake(self) -> None:
        for entry in [e for e in self.sleepers if e[0] <= self.now]:
            self.sleepers.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)


class FakeBroker:
    """Up during ``windows`` ([(start, end)] in fake seconds). ``drop_after_birth``: accepts a connection
    and its birth message, then drops it. ``refuse``: answers every PUBLISH with reason code 0x87."""

    def __init__(self, clock: FakeTime, windows: list[tuple[float, float]], *, drop_after_birth: bool = False,
                 drop_after_connack: bool = False) -> None:
        self.clock = clock
        self.windows = windows
        self.drop_after_birth = drop_after_birth
        self.drop_after_connack = drop_after_connack
        self.refuse = False
        self.attempts: list[float] = []
        self.sessions: list[list[float]] = []  # [birth accepted at, ended at (or inf)]
        self.current: FakeConnection | None = None
        self.accepted: list[tuple[str, bytes]] = []

    def up(self, at: float | None = None) -> bool:
        t = self.clock.now if at is None else at
        return any(start <= t < end for start, end in self.windows)

    def transitions(self) -> list[float]:
        return sorted({t for window in self.windows for t in window})


class FakeConnection:
    """Both client interfaces: aiomqtt's ``publish`` (the uplink before reason codes) and
    ``publish_acked``/``lost``."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.dropped = False
        self.births = 0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> FakeConnection:
        self.broker.attempts.append(self.broker.clock.now)
        if not self.broker.up() or self.broker.drop_after_connack:
            raise aiomqtt.MqttError("[code:7] The connection was lost.")
        self.broker.current = self
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()

    def drop(self) -> None:
        if not self.dropped:
            self.dropped = True
            if self.broker.sessions and self.broker.sessions[-1][1] == float("inf"):
                self.broker.sessions[-1][1] = self.broker.clock.now
            if not self.lost.done():
                self.lost.set_exception(aiomqtt.MqttError("[code:7] The connection was lost."))
                self.lost.exception()
        if self.broker.current is self:
            self.broker.current = None

    def _answer(self, topic: str, payload: bytes) -> int:
        if self.dropped or not self.broker.up():
            self.drop()
            raise aiomqtt.MqttError("[code:4] The client is not currently connected.")
        if topic.endswith("/status") and self.births == 0:
            self.births += 1
            if not self.broker.refuse:
                self.broker.sessions.append([self.broker.clock.now, float("inf")])
            if self.broker.drop_after_birth:
                self.dropped = True  # the next publish fails
                self.broker.sessions[-1][1] = self.broker.clock.now
            return 0x87 if self.broker.refuse else 0
        if self.broker.refuse:
            return 0x87
        self.broker.accepted.append((topic, payload))
        return 0

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **_: Any) -> None:
        self._answer(topic, payload)

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> Any:
        code = self._answer(topic, payload)
        return PubAck(code, "Not authorized" if code else "Success")


class Scenario:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: list[tuple[float, float]],
                 **broker_options: bool) -> None:
        self.clock = FakeTime()
        self.broker = FakeBroker(self.clock, windows, **broker_options)
        fake_asyncio = types.SimpleNamespace(**{n: getattr(asyncio, n) for n in dir(asyncio)
                                                if not n.startswith("__")})
        fake_asyncio.sleep = self.clock.sleep
        monkeypatch.setattr(uplink_module, "asyncio", fake_asyncio)
        self.queue = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)
        settings = UplinkSettings("mqtt://127.0.0.1:1", "c", protocol="5")
        self.uplink = Uplink(settings, "xa-a", self.queue, birth=lambda: b"{}", will=b"{}")
        # its clock and jitter are bound when it is made; the longest waits
        self.uplink._backoff = Backoff(cap=DEFAULT_MAX_BACKOFF, stable_after=DEFAULT_STABLE_AFTER,
                                       clock=lambda: self.clock.now, jitter=lambda low, high: high)
        monkeypatch.setattr(self.uplink, "_make_client", lambda *a, **k: FakeConnection(self.broker))

    def add_message(self) -> None:
        self.queue.append("sw", b'{"n": 1}', live_for=1e9)
        self.uplink.notify()

    async def run_until(self, end: float, on_down: Callable[[], None] | None = None) -> None:
        task = asyncio.create_task(self.uplink.run())
        transitions = self.broker.transitions()
        try:
            while True:
                for _ in range(100):  # let the uplink run until it waits (fake sleep or idle drain)
                    await asyncio.sleep(0)
                assert not task.done(), task
                times = [t for t, _ in self.clock.sleepers] + [t for t in transitions if t > self.clock.now]
                upcoming = min(times, default=end)
                if upcoming >= end:
                    break
                self.clock.now = upcoming
                if upcoming in transitions and not self.broker.up() and self.broker.current is not None:
                    self.broker.current.drop()  # the broker went away: connection reset
                    (on_down or self.add_message)()  # a poll arrives, as one would (an old uplink
                    #                                   notices a dead connection only when it sends)
                self.clock.wake()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.queue.close()


# ---------------------------------------------------------------------------------------------- scenarios


async def test_a_flapping_broker_gets_the_agent_back_within_the_cap_of_each_time_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up 30 s, then down 70 s and up 25 s, three times (the field report: an agent offline for 92 s while
    the broker was up for half of that)."""
    windows = [(0.0, 30.0), (100.0, 125.0), (195.0, 220.0), (290.0, 315.0)]
    scenario = Scenario(tmp_path, monkeypatch, windows)
    await scenario.run_until(330.0)
    starts = [start for start, _ in scenario.broker.sessions]
    lags = []
    for up_from, up_to in windows:
        first = min((s for s in starts if up_from <= s < up_to), default=up_to)
        lags.append(first - up_from)
    assert lags[0] == 0
    assert all(lag <= 15 for lag in lags), f"seconds offline after the broker came back, per window: {lags}"


async def test_a_broker_that_drops_every_connection_after_the_birth_is_not_hammered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = Scenario(tmp_path, monkeypatch, [(0.0, 1e9)], drop_after_birth=True)
    scenario.add_message()  # so that an uplink that only notices a dead connection when sending sends
    await scenario.run_until(120.0)
    assert len(scenario.broker.sessions) >= 5  # it keeps trying
    assert len(scenario.broker.attempts) <= 15, (
        f"{len(scenario.broker.attempts)} connections in 120 s to a broker that drops each at once")


async def test_a_broker_that_drops_every_connection_after_connack_is_not_hammered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = Scenario(tmp_path, monkeypatch, [(0.0, 1e9)], drop_after_connack=True)
    await scenario.run_until(120.0)
    assert 5 <= len(scenario.broker.attempts) <= 15


async def test_a_stable_connection_that_ends_is_retried_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After hours of stable connection, a broker restart should not cost the agent its old long steps."""
    windows = [(0.0, 20.0), (25.0, 3600.0), (3600.5, 4000.0)]
    scenario = Scenario(tmp_path, monkeypatch, windows)
    await scenario.run_until(3700.0)
    starts = [start for start, _ in scenario.broker.sessions]
    assert starts[0] == 0
    assert any(3600.5 <= s <= 3601.5 for s in starts), starts


async def test_a_refusing_broker_keeps_the_messages_counts_and_logs_once_per_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """MQTT 5 PUBACK 0x87 (a username the ACL does not allow): nothing leaves the queue, every refusal is
    counted, one log line for the whole episode however often the uplink reconnects; when the broker
    accepts again, the queue drains and that is logged once."""
    caplog.set_level(logging.DEBUG, logger="hatang.agent.uplink")
    scenario = Scenario(tmp_path, monkeypatch, [(0.0, 1e9)])
    scenario.broker.refuse = True
    for _ in range(3):
        scenario.queue.append("sw", b'{"n": 1}', live_for=1e9)
    task_end = 120.0
    await scenario.run_until(task_end)
    refused_attempts = len(scenario.broker.attempts)
    assert refused_attempts >= 3
    assert scenario.queue.stats().depth == 3, "refused messages must stay queued"
    rejected = getattr(scenario.uplink, "rejected", {})
    assert rejected.get("not_authorized", 0) == refused_attempts  # the birth of each connection
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "refuses" in lines[0].getMessage() and "mqtt.username" in lines[0].getMessage()


async def test_after_a_refusal_episode_accepted_messages_drain_and_that_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.uplink")
    scenario = Scenario(tmp_path, monkeypatch, [(0.0, 1e9)])
    scenario.broker.refuse = True
    scenario.queue.append("sw", b'{"n": 1}', live_for=1e9)
    queue = scenario.queue
    original_close = queue.close
    queue.close = lambda: None  # type: ignore[method-assign]  # keep it open for the second part
    await scenario.run_until(40.0)
    scenario.broker.refuse = False
    scenario.clock.now = 40.0
    await scenario.run_until(100.0)
    assert [p for _, p in scenario.broker.accepted] == [b'{"n": 1}']
    messages = [r.getMessage() for r in caplog.records]
    assert sum("refuses" in m for m in messages) == 1, messages
    original_close()

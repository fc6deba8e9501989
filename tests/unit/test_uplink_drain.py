"""The uplink's drain order: live data first, then the backlog oldest-first at a bounded rate, acked
only after the broker accepted each message; refused messages stay queued; accepted ones are kept for the
redelivery window. A fake MQTT connection; the queue is the real SQLite one."""

from __future__ import annotations

import asyncio
import json
from inspect import signature
from pathlib import Path
from typing import Any

import pytest

from agent.mqtt_client import PubAck
from agent.queue import DiskQueue
from agent.uplink import PublishRejected, ReplayPacer, Uplink, UplinkSettings

NOW = 1_795_550_000.0
SUCCESS = PubAck(0, "Success")


class FakeConnection:
    """Answers every PUBLISH with ``answer(topic, payload)`` (default: accepted); fails after ``fail_after``
    publishes as a lost connection would."""

    def __init__(self, fail_after: int | None = None, answer: Any = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.fail_after = fail_after
        self.answer = answer or (lambda topic, payload: SUCCESS)
        self.enough = asyncio.Event()
        self.want = 0
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> PubAck:
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise ConnectionError("broker went away")
        self.published.append((topic, payload))
        if len(self.published) >= self.want:
            self.enough.set()
        ack: PubAck = self.answer(topic, payload)
        return ack

    async def publish(self, topic: str, payload: bytes, qos: int = 0, **_: Any) -> None:
        """aiomqtt's publish, as an uplink without reason codes calls it."""
        await self.publish_acked(topic, payload)


def _queue(tmp_path: Path, clock: list[float]) -> DiskQueue:
    return DiskQueue(tmp_path, max_bytes=1 << 20, max_age=86400, clock=lambda: clock[0])


def _uplink(queue: DiskQueue, rate: float = 1000.0, redeliver_window: float = 0.0) -> Uplink:
    supported = "redeliver_window" in signature(Uplink).parameters
    window = {"redeliver_window": redeliver_window} if supported else {}
    return Uplink(UplinkSettings("mqtt://127.0.0.1:1", "c"), "xa-a", queue, birth=lambda: b"{}", will=b"{}",
                  replay_rate=rate, **window)


async def _drain_until(uplink: Uplink, client: FakeConnection, count: int) -> None:
    """Drain until ``count`` messages were published and the uplink settled them (acknowledged in the
    queue, or the drain ended on a refusal or a lost connection): it publishes a batch pipelined and
    settles it when every PUBACK is in."""
    client.want = count
    task = asyncio.create_task(uplink._drain(client))
    try:
        async with asyncio.timeout(5):
            await client.enough.wait()
            while not task.done() and uplink.published < count:
                await asyncio.sleep(0)  # a condition with the deadline above, not a delay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_live_messages_go_before_the_backlog_which_drains_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [NOW - 3600]
    queue = _queue(tmp_path, clock)
    for i in range(5):  # polled an hour ago, during an outage
        queue.append("sw", json.dumps({"n": f"old{i}"}).encode(), live_for=60)
        clock[0] += 60
    clock[0] = NOW
    queue.append("sw", b'{"n": "live"}', live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW + 1)
    client = FakeConnection()
    await _drain_until(_uplink(queue), client, 6)
    topics = [t for t, _ in client.published]
    names = [json.loads(p)["n"] for _, p in client.published]
    assert names == ["live", "old0", "old1", "old2", "old3", "old4"]
    assert topics[0] == "hatang/v1/agents/xa-a/data/sw"
    assert set(topics[1:]) == {"hatang/v1/agents/xa-a/replay/sw"}
    assert queue.stats().depth == 0


async def test_a_failed_publish_leaves_the_message_in_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [NOW]
    queue = _queue(tmp_path, clock)
    for i in range(3):
        queue.append("sw", json.dumps({"n": i}).encode(), live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW)
    client = FakeConnection(fail_after=1)
    with pytest.raises(ConnectionError):
        await _uplink(queue)._drain(client)
    assert [json.loads(m.payload)["n"] for m in queue.peek(10)] == [1, 2]  # only the acked one left


@pytest.mark.parametrize("code", [0x87, 0x80, 0x97, 0x99])
async def test_a_refused_message_stays_queued_and_stops_the_drain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """MQTT 5 PUBACK reason codes >= 0x80 (not authorized, unspecified error, quota exceeded, payload
    format invalid): the broker did not take the message."""
    clock = [NOW]
    queue = _queue(tmp_path, clock)
    for i in range(3):
        queue.append("sw", json.dumps({"n": i}).encode(), live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW)
    refused = PubAck(code, "Not authorized" if code == 0x87 else "Some failure")
    client = FakeConnection(
        answer=lambda topic, payload: refused if json.loads(payload)["n"] == 1 else SUCCESS)
    uplink = _uplink(queue)
    with pytest.raises(PublishRejected) as caught:
        async with asyncio.timeout(5):
            await uplink._drain(client)
    assert caught.value.ack == refused
    assert [json.loads(m.payload)["n"] for m in queue.peek(10)] == [1, 2]  # 0 accepted; 1 refused; 2 waits
    assert uplink.published == 1


async def test_no_matching_subscribers_counts_as_accepted(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """0x10 is below 0x80: Mosquitto's answer while no collector is subscribed."""
    clock = [NOW]
    queue = _queue(tmp_path, clock)
    queue.append("sw", b'{"n": 0}', live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW)
    client = FakeConnection(answer=lambda topic, payload: PubAck(0x10, "No matching subscribers"))
    await _drain_until(_uplink(queue), client, 1)
    await asyncio.sleep(0)
    assert queue.stats().depth == 0


def test_pubacks_are_labelled_by_their_reason_names() -> None:
    assert PubAck(0x87, "Not authorized").reason == "not_authorized"
    assert PubAck(0x97, "Quota exceeded").reason == "quota_exceeded"
    assert not PubAck(0x87, "Not authorized").accepted
    assert PubAck(0x10, "No matching subscribers").accepted


async def test_accepted_messages_are_kept_for_the_redelivery_window_then_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker may lose what it acknowledged since its last save: accepted messages are kept (not
    returned by the peeks) and become pending again when the connection ends."""
    clock = [NOW]
    queue = _queue(tmp_path, clock)
    for i in range(4):
        queue.append("sw", json.dumps({"n": i}).encode(), live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW)
    uplink = _uplink(queue, redeliver_window=90)
    await _drain_until(uplink, FakeConnection(), 4)
    await asyncio.sleep(0)
    assert queue.stats().depth == 0 and queue.peek(10) == []
    assert queue.stats().delivered_kept == 4
    uplink._requeue()  # what run() does when a connection ends
    assert [json.loads(m.payload)["n"] for m in queue.peek(10)] == [0, 1, 2, 3]
    assert uplink.redelivered == 4


async def test_without_a_window_accepted_messages_are_deleted(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [NOW]
    queue = _queue(tmp_path, clock)
    queue.append("sw", b'{"n": 0}', live_for=60)
    monkeypatch.setattr("agent.uplink.time.time", lambda: NOW)
    uplink = _uplink(queue, redeliver_window=0)
    await _drain_until(uplink, FakeConnection(), 1)
    await asyncio.sleep(0)
    assert queue.stats().delivered_kept == 0
    assert queue.requeue_delivered() == 0


async def test_an_idle_drain_notices_a_lost_connection_at_once(tmp_path: Path) -> None:
    queue = _queue(tmp_path, [NOW])
    client = FakeConnection()
    task = asyncio.create_task(_uplink(queue)._drain(client))
    await asyncio.sleep(0.01)
    assert not task.done()  # nothing to send: waiting
    client.lost.set_exception(ConnectionResetError("reset by peer"))
    async with asyncio.timeout(2):
        with pytest.raises(Exception, match="connection lost"):
            await task


def test_replay_pacer_allows_rate_per_second_in_bursts_of_one_second() -> None:
    now = [0.0]
    pacer = ReplayPacer(10.0, clock=lambda: now[0])
    assert pacer.available() == 10
    pacer.spend(10)
    assert pacer.available() == 0
    assert pacer.wait_time() == pytest.approx(0.1)
    now[0] += 0.5
    assert pacer.available() == 5
    now[0] += 100
    assert pacer.available() == 10  # no credit piles up beyond one second

"""The uplink's drain order: live data first, then the backlog oldest-first at a bounded rate, acked
only after the broker accepted each message. A fake MQTT client; the queue is the real SQLite one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.queue import DiskQueue
from agent.uplink import BrokerSettings, ReplayPacer, Uplink

NOW = 1_795_550_000.0


class FakeClient:
    def __init__(self, fail_after: int | None = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.fail_after = fail_after
        self.enough = asyncio.Event()
        self.want = 0

    async def publish(self, topic: str, payload: bytes, qos: int = 0, **_: Any) -> None:
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise ConnectionError("broker went away")
        self.published.append((topic, payload))
        if len(self.published) >= self.want:
            self.enough.set()


def _queue(tmp_path: Path, clock: list[float]) -> DiskQueue:
    return DiskQueue(tmp_path, max_bytes=1 << 20, max_age=86400, clock=lambda: clock[0])


def _uplink(queue: DiskQueue, rate: float = 1000.0) -> Uplink:
    return Uplink(BrokerSettings("mqtt://127.0.0.1:1", "c"), "xa-a", queue, birth=lambda: b"{}", will=b"{}",
                  replay_rate=rate)


async def _drain_until(uplink: Uplink, client: FakeClient, count: int) -> None:
    client.want = count
    task = asyncio.create_task(uplink._drain(client))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(5):
            await client.enough.wait()
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
    client = FakeClient()
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
    client = FakeClient(fail_after=1)
    with pytest.raises(ConnectionError):
        await _uplink(queue)._drain(client)  # type: ignore[arg-type]
    assert [json.loads(m.payload)["n"] for m in queue.peek(10)] == [1, 2]  # only the acked one left


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

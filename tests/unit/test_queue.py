"""Tests of the agent's on-disk queue (SQLite): order, persistence, bounds and crash survival."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.queue import DiskQueue, QueueStats

MIB = 1024 * 1024
DAY = 86400.0


class FakeClock:
    def __init__(self, now: float = 1_795_550_700.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DiskQueue]:
    q = DiskQueue(tmp_path / "buffer", max_bytes=MIB, max_age=7 * DAY, clock=clock)
    yield q
    q.close()


def payloads(q: DiskQueue) -> list[bytes]:
    return [m.payload for m in q.peek(1_000)]


def test_new_queue_is_empty(queue: DiskQueue) -> None:
    assert queue.peek(10) == []
    assert queue.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=0)


def test_queue_creates_its_directory(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "lib" / "hatang" / "buffer"
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
    try:
        assert q.path == directory / "queue.sqlite3"
        assert q.path.exists()
    finally:
        q.close()


def test_peek_returns_messages_oldest_first_without_removing_them(queue: DiskQueue, clock: FakeClock) -> None:
    for i in range(5):
        queue.append(f"sw{i}", f"payload-{i}".encode())
        clock.now += 1
    first = queue.peek(3)
    assert [m.payload for m in first] == [b"payload-0", b"payload-1", b"payload-2"]
    assert [m.device for m in first] == ["sw0", "sw1", "sw2"]
    assert [m.created for m in first] == [1_795_550_700.0, 1_795_550_701.0, 1_795_550_702.0]
    assert first[0].id < first[1].id < first[2].id
    assert queue.peek(3) == first  # peeking again gives the same messages
    assert len(queue.peek(100)) == 5


def test_ack_removes_exactly_the_acknowledged_messages(queue: DiskQueue) -> None:
    for i in range(4):
        queue.append("core-switch", b"x" * (i + 1))
    messages = queue.peek(10)
    queue.ack([messages[0].id, messages[2].id])
    assert payloads(queue) == [b"xx", b"xxxx"]
    stats = queue.stats()
    assert (stats.depth, stats.bytes) == (2, 6)
    queue.ack([messages[1].id, messages[3].id])
    assert queue.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=0)


def test_appending_after_ack_keeps_fifo_order(queue: DiskQueue) -> None:
    queue.append("a", b"1")
    queue.append("a", b"2")
    queue.ack([queue.peek(1)[0].id])
    queue.append("a", b"3")
    assert payloads(queue) == [b"2", b"3"]


def test_ack_of_unknown_or_repeated_ids_is_harmless(queue: DiskQueue) -> None:
    queue.append("sw1", b"abc")
    queue.append("sw1", b"defg")
    [first, _] = queue.peek(10)
    queue.ack([])
    queue.ack([999_999, -1, 0])
    assert queue.stats().depth == 2
    queue.ack([first.id, first.id])
    queue.ack([first.id])
    stats = queue.stats()
    assert (stats.depth, stats.bytes) == (1, 4)
    assert payloads(queue) == [b"defg"]


def test_payload_bytes_and_vietnamese_device_names_are_kept_exactly(queue: DiskQueue) -> None:
    payload = bytes(range(256)) + "Đường truyền số liệu chuyên dùng".encode()
    queue.append("ups.Đại-Đình", payload)
    [message] = queue.peek(1)
    assert message.payload == payload
    assert message.device == "ups.Đại-Đình"
    assert queue.stats().bytes == len(payload)


def test_stats_report_depth_bytes_and_oldest(queue: DiskQueue, clock: FakeClock) -> None:
    queue.append("a", b"12345")
    clock.now += 60
    queue.append("b", b"123")
    assert queue.stats() == QueueStats(depth=2, bytes=8, oldest=1_795_550_700.0, dropped=0)
    queue.ack([queue.peek(1)[0].id])
    assert queue.stats().oldest == 1_795_550_760.0


def test_queue_survives_close_and_reopen(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "buffer"
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)
    q.append("sw1", b"a" * 600_000)
    q.append("sw1", b"b" * 300_000)
    q.append("sw2", b"c" * 300_000)  # over 1 MiB: drops the oldest
    clock.now += 1
    q.append("sw2", b"d" * 10)
    q.ack([q.peek(1)[0].id])
    before = q.stats()
    assert before.dropped == 1
    q.close()

    reopened = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)
    try:
        assert reopened.stats() == before
        assert reopened.stats() == QueueStats(depth=2, bytes=300_010, oldest=1_795_550_700.0, dropped=1)
        assert payloads(reopened) == [b"c" * 300_000, b"d" * 10]
        reopened.append("sw3", b"e")
        assert [m.device for m in reopened.peek(10)] == ["sw2", "sw2", "sw3"]
    finally:
        reopened.close()


def test_ids_keep_growing_after_reopen(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY)
    q.append("a", b"1")
    old_id = q.peek(1)[0].id
    q.ack([old_id])
    q.close()
    q = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY)
    try:
        q.append("a", b"2")
        assert q.peek(1)[0].id > old_id  # an id is never reused, so a late ack cannot hit a new message
    finally:
        q.close()


def test_max_bytes_drops_the_oldest_messages_first_and_counts_them(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, max_bytes=1000, max_age=DAY)
    try:
        for i in range(10):
            q.append("sw1", bytes([i]) * 300)
        stats = q.stats()
        assert stats.bytes <= 1000
        assert stats.depth == 3
        assert stats.dropped == 7
        assert [m.payload[0] for m in q.peek(10)] == [7, 8, 9]
    finally:
        q.close()


def test_max_bytes_keeps_the_newest_message_even_if_it_alone_is_too_big(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, max_bytes=100, max_age=DAY)
    try:
        q.append("sw1", b"small")
        q.append("sw1", b"B" * 500)
        assert payloads(q) == [b"B" * 500]
        assert q.stats() == QueueStats(depth=1, bytes=500, oldest=q.peek(1)[0].created, dropped=1)
    finally:
        q.close()


def test_max_age_drops_old_messages_with_a_fake_clock(tmp_path: Path, clock: FakeClock) -> None:
    start = clock.now
    q = DiskQueue(tmp_path, max_bytes=MIB, max_age=3600, clock=clock)
    try:
        q.append("sw1", b"t0")
        clock.now = start + 1800
        q.append("sw1", b"t1800")
        clock.now = start + 3600  # exactly max_age old: still kept
        q.append("sw1", b"t3600")
        assert payloads(q) == [b"t0", b"t1800", b"t3600"]
        clock.now = start + 3600.5
        q.append("sw1", b"t3600.5")
        assert payloads(q) == [b"t1800", b"t3600", b"t3600.5"]
        assert q.stats().dropped == 1
        clock.now = start + 3 * 3600
        q.append("sw1", b"late")
        assert payloads(q) == [b"late"]
        stats = q.stats()
        assert (stats.depth, stats.bytes, stats.dropped, stats.oldest) == (1, 4, 4, start + 3 * 3600)
    finally:
        q.close()


def test_dropped_counter_accumulates_across_reopens(tmp_path: Path, clock: FakeClock) -> None:
    for round_ in range(3):
        q = DiskQueue(tmp_path, max_bytes=100, max_age=DAY, clock=clock)
        q.append("sw1", b"x" * 80)
        q.append("sw1", b"y" * 80)
        assert q.stats().dropped == round_ + 1
        q.ack([m.id for m in q.peek(10)])
        q.close()
    q = DiskQueue(tmp_path, max_bytes=100, max_age=DAY, clock=clock)
    try:
        assert q.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=3)
    finally:
        q.close()


def test_messages_survive_a_crash_without_close(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "buffer"
    crashed = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)
    crashed.append("core-switch", b'{"seq":1}')
    crashed.append("ups", b'{"seq":2}')
    # like after kill -9: the first process never closed its connection; a new one opens the same files
    recovered = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)
    try:
        assert [(m.device, m.payload) for m in recovered.peek(10)] == [
            ("core-switch", b'{"seq":1}'), ("ups", b'{"seq":2}')]
        assert recovered.stats() == QueueStats(depth=2, bytes=18, oldest=clock.now, dropped=0)
        recovered.ack([recovered.peek(1)[0].id])
        recovered.append("ups", b'{"seq":3}')
        assert payloads(recovered) == [b'{"seq":2}', b'{"seq":3}']
    finally:
        recovered.close()
        crashed.close()


def test_appended_message_is_committed_before_append_returns(tmp_path: Path) -> None:
    writer = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY)
    reader = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY)
    try:
        for i in range(3):
            writer.append("sw1", str(i).encode())
            assert len(reader.peek(10)) == i + 1
    finally:
        reader.close()
        writer.close()

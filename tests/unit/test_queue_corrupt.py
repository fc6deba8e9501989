"""A corrupt or truncated queue file (a power cut on a cheap disk) is moved aside, with one log line saying
where; the queue starts empty and counts it; the agent keeps running. Real files, corrupted by hand."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from agent.queue import DiskQueue, QueueStats

MIB = 1024 * 1024
DAY = 86400.0
PAGE = 4096
LOGGER = "hatang.agent.queue"


class FakeClock:
    def __init__(self, now: float = 1_795_550_700.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _queue_with(directory: Path, payloads: list[bytes]) -> None:
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY)
    for payload in payloads:
        q.append("sw", payload)
    assert q.stats().depth == len(payloads)
    q.close()  # checkpointed into queue.sqlite3, the WAL deleted


def _aside(directory: Path) -> list[str]:
    """The corrupt databases moved aside (without their -wal and -shm)."""
    return sorted(p.name for p in directory.glob("queue.sqlite3.corrupt-*") if not p.name.endswith("-shm")
                  and not p.name.endswith("-wal"))


def _messages(directory: Path, clock: FakeClock | None = None) -> list[bytes]:
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY, clock=clock or FakeClock())
    try:
        return [m.payload for m in q.peek(1000)]
    finally:
        q.close()


def _check_moved_aside(directory: Path, caplog: pytest.LogCaptureFixture, original: bytes) -> None:
    [aside] = _aside(directory)
    assert aside == "queue.sqlite3.corrupt-20261124T200500Z"  # the (fake) time it was found
    assert (directory / aside).read_bytes() == original  # kept as it was, for a post-mortem
    [line] = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert str(directory / aside) in line.getMessage()
    assert "starting with an empty queue" in line.getMessage()


@pytest.mark.parametrize("damage", ["header", "truncated", "cut-at-100-bytes"])
def test_a_corrupt_queue_file_is_moved_aside_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    directory = tmp_path / "buffer"
    _queue_with(directory, [bytes([i]) * 3000 for i in range(200)])
    path = directory / "queue.sqlite3"
    data = path.read_bytes()
    if damage == "header":
        data = b"\0" * 100 + data[100:]  # "file is not a database"
    elif damage == "truncated":
        data = data[: len(data) // 2]  # "database disk image is malformed"
    else:
        data = data[:100]
    path.write_bytes(data)
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY, clock=clock)  # no traceback: starts empty
    try:
        assert q.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=0, corrupt_files=1)
        assert q.append("sw", b"after")
        assert [m.payload for m in q.peek(10)] == [b"after"]
    finally:
        q.close()
    _check_moved_aside(directory, caplog, data)
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY, clock=clock)
    try:
        assert q.stats().corrupt_files == 1  # persisted in the new database
        assert [m.payload for m in q.peek(10)] == [b"after"]
    finally:
        q.close()


def test_a_corrupt_wal_and_shm_go_aside_with_their_database(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    directory.mkdir()
    (directory / "queue.sqlite3").write_bytes(b"this is not a database" * 300)
    (directory / "queue.sqlite3-wal").write_bytes(b"nor a WAL" * 100)
    (directory / "queue.sqlite3-shm").write_bytes(bytes(32768))
    assert _messages(directory) == []
    stamp = "queue.sqlite3.corrupt-20261124T200500Z"
    moved = {p.name for p in directory.glob("queue.sqlite3.corrupt-*")}
    assert moved == {stamp, f"{stamp}-wal", f"{stamp}-shm"}


def _corrupt_overflow_page(path: Path, fill: int) -> None:
    """Point the overflow chain of the payload made of ``fill`` bytes past the end of the file: the row
    itself reads fine (opening counts rows and payload lengths) until the payload is read."""
    data = bytearray(path.read_bytes())
    for offset in range(0, len(data), PAGE):
        if data[offset + 4:offset + PAGE] == bytes([fill]) * (PAGE - 4):
            data[offset:offset + 4] = b"\xff\xff\xff\xf0"
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no overflow page found")


def test_corruption_found_while_running_is_moved_aside_and_the_queue_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "buffer"
    _queue_with(directory, [bytes([65 + i]) * 65536 for i in range(5)])
    _corrupt_overflow_page(directory / "queue.sqlite3", ord("B"))
    original = (directory / "queue.sqlite3").read_bytes()
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = FakeClock()
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY, clock=clock)
    try:
        assert q.stats().depth == 5  # opened: the damage is not seen yet
        q._counters["dropped"] = 2  # as if its bounds had dropped two messages since it opened
        assert q.peek(10) == []  # reading the payloads finds it: moved aside, empty
        assert q.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=2, corrupt_files=1)
        assert "5 queued message(s) lost" in caplog.text
        assert q.append("sw", b"after")
        q.ack([q.peek(1)[0].id])
        assert q.append("sw", b"next")
        assert [m.payload for m in q.peek(10)] == [b"next"]
    finally:
        q.close()
    _check_moved_aside(directory, caplog, original)
    counters = dict(sqlite3.connect(directory / "queue.sqlite3").execute("SELECT name, value FROM counters"))
    assert counters == {"corrupt_files": 1, "dropped": 2}  # the drops before it go on in the new database


@pytest.mark.parametrize("operation", ["append", "ack", "peek_live", "peek_backlog", "stats"])
def test_every_operation_survives_corruption_found_while_running(tmp_path: Path, operation: str) -> None:
    directory = tmp_path / "buffer"
    _queue_with(directory, [bytes([65 + i]) * 65536 for i in range(3)])
    _corrupt_overflow_page(directory / "queue.sqlite3", ord("A"))
    clock = FakeClock()
    q = DiskQueue(directory, max_bytes=64 * MIB, max_age=DAY, clock=clock)
    try:
        if operation == "append":  # an append reads no payload (the bound is not reached); a peek does
            q.append("sw", b"new")
            assert q.peek(10) == []
        elif operation == "ack":
            q.ack([1])
            assert q.peek(10) == []
        elif operation == "peek_live":
            assert q.peek_live(clock.now - 10, 10) == []
        elif operation == "peek_backlog":
            assert q.peek_backlog(4e9, 10) == []  # all of them are backlog by then
        else:
            assert q.stats().oldest is not None  # the oldest payload (A) is not read: fine
            q.peek(10)
        assert q.stats().corrupt_files == 1
        assert q.append("sw", b"works")
        assert [m.payload for m in q.peek(10)][-1] == b"works"
    finally:
        q.close()


def test_only_the_newest_three_corrupt_files_are_kept(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    clock = FakeClock()
    for i in range(5):
        directory.mkdir(exist_ok=True)
        (directory / "queue.sqlite3").write_bytes(b"garbage!" * 512)
        clock.now += 3600
        assert _messages(directory, clock) == []
        assert len(_aside(directory)) == min(i + 1, 3)
    assert _aside(directory) == ["queue.sqlite3.corrupt-20261124T230500Z",
                                 "queue.sqlite3.corrupt-20261125T000500Z",
                                 "queue.sqlite3.corrupt-20261125T010500Z"]

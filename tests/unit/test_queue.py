"""Tests of the agent's on-disk queue (SQLite): order, persistence, bounds, crash survival, the lock on its
directory, delivered messages kept for the broker, earlier versions' files, file modes, and writes that
fail (injected here). A real full filesystem: test_queue_disk_full.py; real corrupt files:
test_queue_corrupt.py; two processes on one directory: test_queue_lock.py."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.queue import EPISODE_QUIET_SECONDS, DiskQueue, QueueLocked, QueueStats

REPO = Path(__file__).resolve().parents[2]

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


def _pages_in_use(path: Path) -> int:
    """Bytes of the database's pages in use (not on its free list), read beside the open queue."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    return int((pages - free) * size)


def test_max_bytes_bounds_the_database_on_disk_and_drops_the_oldest_first(tmp_path: Path) -> None:
    """The bound is on the database's pages, SQLite's own overhead included (a 10 kB payload takes three
    4 kB pages), not on the payload bytes alone: max_bytes is what the database may take on disk."""
    q = DiskQueue(tmp_path, max_bytes=256 * 1024, max_age=DAY)
    try:
        for i in range(60):
            q.append("sw1", struct.pack(">I", i) + bytes(10_000))
            assert _pages_in_use(q.path) <= 256 * 1024
        stats = q.stats()
        kept = [struct.unpack(">I", m.payload[:4])[0] for m in q.peek(100)]
        assert kept == list(range(60 - len(kept), 60))  # the newest, in order
        assert stats.dropped == 60 - len(kept) > 0
        assert stats.depth == len(kept) and stats.bytes == len(kept) * 10_004
    finally:
        q.close()
    assert q.path.stat().st_size <= 256 * 1024 + 4096  # checkpointed at close: the file itself


def test_max_bytes_keeps_the_newest_message_even_if_it_alone_is_too_big(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, max_bytes=64 * 1024, max_age=DAY)
    try:
        q.append("sw1", b"small")
        q.append("sw1", b"B" * 200_000)
        assert payloads(q) == [b"B" * 200_000]
        assert q.stats() == QueueStats(depth=1, bytes=200_000, oldest=q.peek(1)[0].created, dropped=1)
        q.append("sw1", b"after")
        assert payloads(q) == [b"after"]
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
        q = DiskQueue(tmp_path, max_bytes=64 * 1024, max_age=DAY, clock=clock)
        q.append("sw1", b"x" * 24_000)
        q.append("sw1", b"y" * 24_000)
        assert q.stats().dropped == round_ + 1
        q.ack([m.id for m in q.peek(10)])
        q.close()
    q = DiskQueue(tmp_path, max_bytes=64 * 1024, max_age=DAY, clock=clock)
    try:
        assert q.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=3)
    finally:
        q.close()


_CRASHING_WRITER = """
import os, signal, sys
from pathlib import Path
from agent.queue import DiskQueue
q = DiskQueue(Path(sys.argv[1]), max_bytes=1 << 20, max_age=86400)
q.append("core-switch", b'{"seq":1}')
q.append("ups", b'{"seq":2}')
os.kill(os.getpid(), signal.SIGKILL)  # no close: like a power cut for what was committed
"""


def test_messages_survive_a_kill_9_without_close(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "buffer"
    writer = subprocess.run([sys.executable, "-c", _CRASHING_WRITER, str(directory)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False)
    assert writer.returncode == -signal.SIGKILL
    recovered = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)  # its lock died with it
    try:
        assert [(m.device, m.payload) for m in recovered.peek(10)] == [
            ("core-switch", b'{"seq":1}'), ("ups", b'{"seq":2}')]
        stats = recovered.stats()
        assert (stats.depth, stats.bytes, stats.dropped) == (2, 18, 0)
        recovered.ack([recovered.peek(1)[0].id])
        recovered.append("ups", b'{"seq":3}')
        assert payloads(recovered) == [b'{"seq":2}', b'{"seq":3}']
    finally:
        recovered.close()


def test_appended_message_is_committed_before_append_returns(tmp_path: Path) -> None:
    writer = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY)
    reader = sqlite3.connect(f"file:{writer.path}?mode=ro", uri=True)  # another connection, as after a crash
    try:
        for i in range(3):
            writer.append("sw1", str(i).encode())
            assert reader.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == i + 1
    finally:
        reader.close()
        writer.close()


# ---------------------------------------------------------------------------------------------------
# Two queues on one directory (two agents with the same buffer.path)


def test_a_second_queue_on_the_same_directory_raises_queue_locked(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    first = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
    try:
        with pytest.raises(QueueLocked) as raised:
            DiskQueue(directory, max_bytes=MIB, max_age=DAY)
        message = str(raised.value)
        assert str(directory) in message
        assert f"another hatang agent (pid {os.getpid()})" in message
        assert "buffer.path" in message
        assert raised.value.directory == directory and raised.value.pid == os.getpid()
        first.append("sw1", b"still mine")  # the first queue is untouched
        assert payloads(first) == [b"still mine"]
    finally:
        first.close()
    second = DiskQueue(directory, max_bytes=MIB, max_age=DAY)  # the lock goes with close()
    try:
        assert payloads(second) == [b"still mine"]
    finally:
        second.close()


# ---------------------------------------------------------------------------------------------------
# Delivered messages kept for a broker that may lose them (ack keep_for, requeue_delivered)


def test_ack_with_keep_for_hides_messages_from_the_peeks_but_keeps_their_bytes(
    queue: DiskQueue, clock: FakeClock
) -> None:
    for i in range(4):
        queue.append("sw", f"m{i}".encode(), live_for=60)
    ids = [m.id for m in queue.peek(10)]
    queue.ack(ids[:2], keep_for=30)
    now = clock.now
    assert payloads(queue) == [b"m2", b"m3"]
    assert [m.payload for m in queue.peek_live(now, 10)] == [b"m2", b"m3"]
    assert queue.peek_backlog(now + 120, 10) == queue.peek(10)
    stats = queue.stats()
    assert (stats.depth, stats.delivered_kept, stats.bytes) == (2, 2, 8)  # kept bytes still count
    assert stats.oldest == queue.peek(1)[0].created
    queue.ack(ids[:2], keep_for=30)  # acknowledged again: nothing changes
    assert queue.stats() == stats


def test_requeue_delivered_makes_kept_messages_pending_again_in_id_order(
    queue: DiskQueue, clock: FakeClock
) -> None:
    for i in range(5):
        queue.append("sw", f"m{i}".encode(), live_for=2 * (i + 1))  # m0 live until start + 2
        clock.now += 1
    before = {m.id: m for m in queue.peek(10)}
    ids = list(before)
    queue.ack([ids[3]], keep_for=60)
    queue.ack([ids[0], ids[1]], keep_for=60)
    queue.ack([ids[4]])  # deleted: not kept
    assert payloads(queue) == [b"m2"]
    assert queue.requeue_delivered() == 3
    again = queue.peek(10)
    assert [m.id for m in again] == [ids[0], ids[1], ids[2], ids[3]]
    assert all(m == before[m.id] for m in again)  # live_until (and everything else) unchanged
    assert [m.id for m in queue.peek_live(clock.now, 10)] == [ids[1], ids[2], ids[3]]
    assert [m.id for m in queue.peek_backlog(clock.now, 10)] == [ids[0]]
    stats = queue.stats()
    assert (stats.depth, stats.delivered_kept) == (4, 0)
    assert queue.requeue_delivered() == 0


def test_kept_messages_expire_lazily_on_append_and_ack(queue: DiskQueue, clock: FakeClock) -> None:
    for _ in range(3):
        queue.append("sw", b"x" * 100)
    ids = [m.id for m in queue.peek(10)]
    queue.ack(ids[:1], keep_for=30)
    clock.now += 20
    queue.ack(ids[1:2], keep_for=30)  # until now + 30: expires 20 s after the first
    assert (queue.stats().delivered_kept, queue.stats().bytes) == (2, 300)
    clock.now += 10.5  # the first expired, nothing written yet: still there
    assert (queue.stats().delivered_kept, queue.stats().bytes) == (2, 300)
    queue.append("sw", b"y")  # deleted on the next write
    assert (queue.stats().delivered_kept, queue.stats().bytes) == (1, 201)
    clock.now += 30
    queue.ack([])  # an ack writes too (even an empty one is harmless)
    queue.ack([queue.peek(1)[0].id])
    assert (queue.stats().delivered_kept, queue.stats().bytes) == (0, 1)
    assert queue.requeue_delivered() == 0  # expired ones are not sent again


def test_requeue_leaves_expired_messages_out(queue: DiskQueue, clock: FakeClock) -> None:
    queue.append("sw", b"a")
    queue.append("sw", b"b")
    [a, b] = queue.peek(10)
    queue.ack([a.id], keep_for=5)
    queue.ack([b.id], keep_for=50)
    clock.now += 10
    assert queue.requeue_delivered() == 1
    assert payloads(queue) == [b"b"]
    assert queue.stats().bytes == 1


def test_the_bound_drops_kept_delivered_messages_first_without_counting_them(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, max_bytes=256 * 1024, max_age=DAY)
    try:
        for i in range(12):
            q.append("sw", struct.pack(">I", i) + bytes(10_000))
        ids = [m.id for m in q.peek(100)]
        q.ack(ids[4:8], keep_for=600)  # delivered in the middle of the queue
        for i in range(12, 24):  # 2.5 pages each: 24 take more than 256 KiB
            q.append("sw", struct.pack(">I", i) + bytes(10_000))
        stats = q.stats()
        assert stats.delivered_kept < 4  # the kept ones went first ...
        assert stats.dropped == 0  # ... without counting as dropped
        pending = [struct.unpack(">I", m.payload[:4])[0] for m in q.peek(100)]
        assert pending == [0, 1, 2, 3, *range(8, 24)]  # no pending message was dropped
    finally:
        q.close()


def test_kept_delivered_messages_survive_a_reopen(tmp_path: Path, clock: FakeClock) -> None:
    q = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY, clock=clock)
    for i in range(3):
        q.append("sw", f"m{i}".encode())
    q.ack([m.id for m in q.peek(2)], keep_for=60)
    q.close()
    q = DiskQueue(tmp_path, max_bytes=MIB, max_age=DAY, clock=clock)
    try:
        stats = q.stats()
        assert (stats.depth, stats.delivered_kept, stats.bytes) == (1, 2, 6)
        assert payloads(q) == [b"m2"]
        assert q.requeue_delivered() == 2
        assert payloads(q) == [b"m0", b"m1", b"m2"]
    finally:
        q.close()


def test_a_kept_message_acknowledged_without_keep_for_is_deleted(queue: DiskQueue) -> None:
    queue.append("sw", b"abc")
    [m] = queue.peek(1)
    queue.ack([m.id], keep_for=60)
    queue.ack([m.id])
    assert queue.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=0)
    assert queue.requeue_delivered() == 0


# ---------------------------------------------------------------------------------------------------
# Queue files of earlier versions

_SCHEMA_0_2 = """
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
    live_until REAL NOT NULL, device TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE INDEX messages_live_until ON messages (live_until);
"""  # what hatang wrote before the delivered table (git show 64d14e1:agent/queue.py)


def _old_queue(directory: Path, schema: str, rows: list[tuple[object, ...]], columns: str) -> None:
    directory.mkdir(mode=0o755)
    db = sqlite3.connect(directory / "queue.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    db.executemany(f"INSERT INTO messages ({columns}) VALUES ({','.join('?' * len(rows[0]))})", rows)
    db.execute("INSERT INTO counters VALUES ('dropped', 7)")
    db.close()
    os.chmod(directory / "queue.sqlite3", 0o644)


def test_a_queue_file_of_the_previous_version_opens_with_its_messages(
    tmp_path: Path, clock: FakeClock
) -> None:
    now = clock.now
    directory = tmp_path / "buffer"
    _old_queue(directory, _SCHEMA_0_2, [(now, now + 60, "sw", b"p1"), (now, now + 60, "sw", b"p2")],
               "created, live_until, device, payload")
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY, clock=clock)
    try:
        assert payloads(q) == [b"p1", b"p2"]
        assert q.stats() == QueueStats(depth=2, bytes=4, oldest=now, dropped=7)
        q.ack([q.peek(1)[0].id], keep_for=60)
        assert payloads(q) == [b"p2"] and q.stats().delivered_kept == 1
        assert q.requeue_delivered() == 1
        assert payloads(q) == [b"p1", b"p2"]
    finally:
        q.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700  # an earlier hatang created it 0755
    assert stat.S_IMODE((directory / "queue.sqlite3").stat().st_mode) == 0o600


def test_a_queue_file_of_hatang_0_1_without_live_until_still_opens(tmp_path: Path, clock: FakeClock) -> None:
    schema = ("CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, "
              "device TEXT NOT NULL, payload BLOB NOT NULL);"
              "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);")
    _old_queue(tmp_path / "buffer", schema, [(clock.now, "sw", b"old")], "created, device, payload")
    q = DiskQueue(tmp_path / "buffer", max_bytes=MIB, max_age=DAY, clock=clock)
    try:
        assert [m.live_until for m in q.peek(10)] == [0.0]  # backlog
        assert [m.payload for m in q.peek_backlog(clock.now, 10)] == [b"old"]
        q.ack([q.peek(1)[0].id], keep_for=60)
        assert q.stats().delivered_kept == 1
    finally:
        q.close()


# ---------------------------------------------------------------------------------------------------
# File permissions: polls include device names and interface descriptions


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_buffer_directory_is_0700_and_queue_files_are_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, under which files would be 0644 and directories 0755
    try:
        directory = tmp_path / "var" / "lib" / "hatang" / "buffer"
        q = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
        try:
            q.append("sw", "ifAlias: Phòng Tài chính".encode())
            files = sorted(p.name for p in directory.iterdir())
            assert {"queue.sqlite3", "queue.sqlite3-wal", "queue.sqlite3-shm", "queue.lock"} <= set(files)
            assert _mode(directory) == 0o700
            assert {name: _mode(directory / name) for name in files} == dict.fromkeys(files, 0o600)
        finally:
            q.close()
    finally:
        os.umask(old_umask)


def test_an_existing_open_buffer_directory_with_only_queue_files_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "buffer"
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
    q.append("sw", b"x")
    q.close()
    os.chmod(directory, 0o755)  # as hatang before this change left it
    for path in directory.iterdir():
        os.chmod(path, 0o644)
    caplog.set_level(logging.INFO, logger="hatang.agent.queue")
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
    try:
        assert _mode(directory) == 0o700
        assert all(_mode(p) == 0o600 for p in directory.iterdir())
        assert "was accessible to other users" in caplog.text
    finally:
        q.close()


def test_a_shared_open_directory_is_left_alone_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    (directory / "someone-elses.txt").write_text("not ours")
    caplog.set_level(logging.WARNING, logger="hatang.agent.queue")
    q = DiskQueue(directory, max_bytes=MIB, max_age=DAY)
    try:
        assert _mode(directory) == 0o755
        assert [r.getMessage() for r in caplog.records if "accessible to other users" in r.getMessage()]
        assert "chmod 700" in caplog.text
        assert _mode(q.path) == 0o600
    finally:
        q.close()


# ---------------------------------------------------------------------------------------------------
# Writes that fail (a full disk, an I/O error): injected here; a real full disk in test_queue_disk_full.py


class FailingWrites:
    """Wraps the queue's SQLite connection: while ``full`` is set, every statement that writes fails as
    on a full disk (reads, checkpoints, BEGIN, ROLLBACK pass)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False
        self.failures = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql.lstrip().upper().startswith(("INSERT", "DELETE", "UPDATE", "ALTER", "CREATE")):
            self.failures += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __enter__(self) -> sqlite3.Connection:
        return self._db.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._db.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.fixture
def failing(queue: DiskQueue) -> FailingWrites:
    wrapper = FailingWrites(queue._db)  # type: ignore[arg-type]
    queue._db = wrapper  # type: ignore[assignment]
    return wrapper


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _pass_quiet_period(queue: DiskQueue) -> None:
    """As if the last failed write was EPISODE_QUIET_SECONDS ago (instead of waiting for it)."""
    queue._last_failure -= EPISODE_QUIET_SECONDS


def test_append_that_cannot_be_written_returns_false_counts_and_logs_once_per_episode(
    queue: DiskQueue, failing: FailingWrites, caplog: pytest.LogCaptureFixture, tmp_path: Path,
    clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="hatang.agent.queue")
    queue.append("sw", b"before")
    failing.full = True
    assert [queue.append("sw", f"lost{i}".encode()) for i in range(5)] == [False] * 5
    assert failing.failures >= 5
    assert queue.stats().dropped_full == 5 and queue.stats().dropped == 0
    assert payloads(queue) == [b"before"]
    assert len(_lines(caplog, "cannot write to the disk queue")) == 1  # not one per message
    assert "database or disk is full" in caplog.text
    failing.full = False
    assert queue.append("sw", b"after")
    assert _lines(caplog, "works again") == []  # not before appends worked for a while
    _pass_quiet_period(queue)
    assert queue.append("sw", b"after quiet")
    [recovered] = _lines(caplog, "works again")
    assert "5 new message(s) were dropped" in recovered
    failing.full = True
    assert not queue.append("sw", b"lost again")
    assert len(_lines(caplog, "cannot write to the disk queue")) == 2  # a new episode
    failing.full = False
    assert queue.append("sw", b"last")
    queue.close()
    reopened = DiskQueue(tmp_path / "buffer", max_bytes=MIB, max_age=7 * DAY, clock=clock)
    try:  # persisted with the first write that worked
        assert reopened.stats().dropped_full == 6
        assert payloads(reopened) == [b"before", b"after", b"after quiet", b"last"]
    finally:
        reopened.close()


def test_near_full_appends_that_fail_now_and_then_log_one_episode(
    queue: DiskQueue, failing: FailingWrites, caplog: pytest.LogCaptureFixture
) -> None:
    """Near full, small messages fit where large ones do not: one episode, not a line pair per flip."""
    caplog.set_level(logging.INFO, logger="hatang.agent.queue")
    for i in range(20):
        failing.full = i % 2 == 0
        assert queue.append("sw", b"x") == (i % 2 == 1)
    assert len(_lines(caplog, "cannot write to the disk queue")) == 1
    assert _lines(caplog, "works again") == []
    assert queue.stats().dropped_full == 10
    _pass_quiet_period(queue)
    assert queue.append("sw", b"x")
    [line] = _lines(caplog, "works again")
    assert "10 new message(s) were dropped" in line


def test_acks_that_cannot_be_written_are_not_sent_again_and_are_deleted_later(
    queue: DiskQueue, failing: FailingWrites, tmp_path: Path, clock: FakeClock
) -> None:
    for i in range(4):
        queue.append("sw", f"m{i}".encode())
    failing.full = True
    sent = []
    while batch := queue.peek(10):  # what the uplink does: send, then ack each
        for message in batch:
            sent.append(message.payload)
            queue.ack([message.id])
    assert sent == [b"m0", b"m1", b"m2", b"m3"]  # each once: acknowledged ids are remembered
    assert queue.stats().depth == 0 and queue.peek_live(clock.now, 10) == []
    assert queue.peek_backlog(clock.now + 600, 10) == []
    assert not (tmp_path / "buffer" / "queue.reserve").exists()  # released to make room
    failing.full = False
    assert queue.append("sw", b"m4")  # the next write deletes them
    assert payloads(queue) == [b"m4"]
    queue.close()
    reopened = DiskQueue(tmp_path / "buffer", max_bytes=MIB, max_age=7 * DAY, clock=clock)
    try:
        assert payloads(reopened) == [b"m4"]  # really deleted, not only hidden
        assert (tmp_path / "buffer" / "queue.reserve").exists()  # back with the space
    finally:
        reopened.close()


def test_acks_made_while_the_disk_is_full_delete_instead_of_keeping(
    queue: DiskQueue, failing: FailingWrites, clock: FakeClock
) -> None:
    """Until an append works again the disk counts as full: acknowledged messages are not kept for the
    broker (they would take space new messages need)."""
    queue.append("sw", b"a")
    queue.append("sw", b"b")
    failing.full = True
    assert not queue.append("sw", b"lost")
    queue.ack([queue.peek(1)[0].id], keep_for=60)
    assert payloads(queue) == [b"b"] and queue.stats().depth == 1
    failing.full = False
    queue.ack([queue.peek(1)[0].id], keep_for=60)
    assert queue.stats() == QueueStats(depth=0, bytes=0, oldest=None, dropped=0, dropped_full=1)
    _pass_quiet_period(queue)
    assert queue.append("sw", b"c")  # the episode ends: kept again from now on
    queue.ack([queue.peek(1)[0].id], keep_for=60)
    assert queue.stats().delivered_kept == 1


def test_requeue_that_cannot_be_written_still_requeues(queue: DiskQueue, failing: FailingWrites) -> None:
    for i in range(3):
        queue.append("sw", f"m{i}".encode())
    queue.ack([m.id for m in queue.peek(2)], keep_for=60)
    failing.full = True
    assert queue.requeue_delivered() == 2
    assert payloads(queue) == [b"m0", b"m1", b"m2"]
    assert queue.stats().depth == 3
    failing.full = False
    assert queue.append("sw", b"m3")
    assert payloads(queue) == [b"m0", b"m1", b"m2", b"m3"]
    assert queue.stats().delivered_kept == 0


def test_kept_delivered_messages_give_way_to_new_ones_when_the_database_cannot_grow(
    queue: DiskQueue,
) -> None:
    """A full disk is a bound too: delivered messages kept for the broker are the first to go."""
    for i in range(40):
        queue.append("sw", bytes([i]) * 3000)
    queue.ack([m.id for m in queue.peek(30)], keep_for=600)
    assert queue._db is not None
    pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
    queue._db.execute(f"PRAGMA max_page_count={pages}")  # SQLITE_FULL as soon as the file would grow
    for i in range(40, 60):
        assert queue.append("sw", bytes([i]) * 3000)
    stats = queue.stats()
    assert stats.dropped == 0 and stats.dropped_full == 0
    assert stats.delivered_kept < 30
    assert [m.payload[0] for m in queue.peek(100)] == list(range(30, 60))

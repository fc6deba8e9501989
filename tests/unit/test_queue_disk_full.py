"""The disk queue on a real small filesystem (tmpfs) that fills up: it never raises, drains by itself when
the broker is back, survives a restart on the full disk, and its directory stays within max_bytes plus a
fixed overhead.

Mounting a tmpfs needs root (CI runs as root); without it these tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.queue import EPISODE_QUIET_SECONDS, RESERVE_BYTES, WAL_CHECKPOINT_PAGES, DiskQueue, QueuedMessage
from tests.support.services import require_binary, unavailable

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
DAY = 86400.0
LOGGER = "hatang.agent.queue"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_fs("2m")`` mounts a tmpfs of that size and returns its directory; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            unavailable("mounting a tmpfs (a small filesystem to fill up) needs root")
        point = tmp_path / f"fs-{len(mounted)}"
        point.mkdir()
        command = [require_binary("mount", "mount"), "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            unavailable(f"cannot mount a {size} tmpfs on {point}: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        umount = require_binary("umount", "mount")
        if subprocess.run([umount, str(point)], capture_output=True, timeout=30, check=False).returncode:
            subprocess.run([umount, "-l", str(point)], capture_output=True, timeout=30, check=False)


def _message(index: int, size: int = 3000) -> bytes:
    return struct.pack(">I", index) + os.urandom(size)


def _index(message: QueuedMessage) -> int:
    return int(struct.unpack(">I", message.payload[:4])[0])


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _fill(queue: DiskQueue, start: int, failures_wanted: int = 20) -> tuple[list[int], int]:
    """Append until ``failures_wanted`` appends were refused; returns (stored indexes, failures)."""
    stored: list[int] = []
    failures = 0
    index = start
    while failures < failures_wanted:
        assert index - start < 20_000, "the filesystem never filled up"
        if queue.append("sw", _message(index)) is False:
            failures += 1
        else:
            stored.append(index)
        index += 1
    return stored, failures


def _drain(queue: DiskQueue, keep_for: float, *, new_every: int = 0, start: int = 0,
           ) -> tuple[list[int], list[int], int]:
    """What the uplink does when the broker is back: peek, send, ack each; with ``new_every`` a new poll is
    appended after that many acks while the old backlog lasts. Returns (sent, newly stored, failures)."""
    backlog = queue.stats().depth
    sent: list[int] = []
    stored: list[int] = []
    failures = 0
    index = start
    for _ in range(100_000):
        batch = queue.peek(10)
        if not batch:
            break
        for message in batch:
            sent.append(_index(message))
            queue.ack([message.id], keep_for=keep_for)
            if new_every and len(sent) % new_every == 0 and len(sent) < backlog:
                if queue.append("sw", _message(index)):
                    stored.append(index)
                else:
                    failures += 1
                index += 1
    return sent, stored, failures


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in directory.iterdir())


@pytest.mark.parametrize("keep_for", [0.0, 120.0])
def test_a_filling_filesystem_never_stops_the_queue_and_it_drains_by_itself(
    small_fs: Callable[[str], Path], caplog: pytest.LogCaptureFixture, keep_for: float
) -> None:
    """max_bytes far beyond a 2 MiB filesystem: appends start failing (False, counted, one log line), and
    when the broker is back everything stored goes out exactly once while new polls keep coming."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    directory = small_fs("2m") / "buffer"
    queue = DiskQueue(directory, max_bytes=256 * MIB, max_age=DAY)
    try:
        stored, failures = _fill(queue, 0)
        assert len(stored) > 50
        stats = queue.stats()
        assert (stats.depth, stats.dropped_full, stats.dropped) == (len(stored), failures, 0)
        assert len(_lines(caplog, "cannot write to the disk queue")) == 1  # once, not per message

        sent, stored_later, failed_later = _drain(queue, keep_for, new_every=3, start=len(stored) + failures)
        assert len(stored_later) > 10  # new polls were stored while it drained
        everything = stored + stored_later
        assert sorted(sent) == everything  # each stored message out exactly once ...
        attempts = len(stored) + failures + len(stored_later) + failed_later
        stats = queue.stats()
        assert attempts == len(sent) + stats.dropped_full  # ... and in = out + dropped
        assert stats.depth == 0 and stats.dropped == 0
        queue._last_failure -= EPISODE_QUIET_SECONDS  # as if appends had worked for a while
        assert queue.append("sw", _message(attempts))  # and it keeps working
        assert len(_lines(caplog, "works again")) == 1
        assert (directory / "queue.reserve").stat().st_size == RESERVE_BYTES  # ready for the next time
        assert len(_lines(caplog, "cannot write to the disk queue")) == 1
    finally:
        queue.close()


@pytest.mark.parametrize("keep_for", [0.0, 120.0])
def test_the_queue_drains_when_another_program_fills_the_disk(
    small_fs: Callable[[str], Path], caplog: pytest.LogCaptureFixture, keep_for: float
) -> None:
    """The database cannot even delete rows on a full disk (the WAL must grow first): the reserve file is
    released to make room, and comes back when the space does."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    fs = small_fs("4m")
    queue = DiskQueue(fs / "buffer", max_bytes=256 * MIB, max_age=DAY)
    try:
        for i in range(300):
            queue.append("sw", _message(i))
        assert queue.stats().depth == 300
        ballast = os.open(fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError):
                for _ in range(10_000):
                    os.write(ballast, bytes(4096))
        finally:
            os.close(ballast)
        assert os.statvfs(fs).f_bavail == 0
        assert [queue.append("sw", _message(300 + i)) for i in range(5)] == [False] * 5

        sent, _, _ = _drain(queue, keep_for)
        assert sent == list(range(300))  # in order, each once
        assert queue.stats().depth == 0 and queue.stats().dropped_full == 5
        assert _lines(caplog, "released the 1048576-byte reserve")

        os.unlink(fs / "ballast")
        assert queue.append("sw", _message(305))
        assert (fs / "buffer" / "queue.reserve").stat().st_size == RESERVE_BYTES
        assert _lines(caplog, "reserve is in place again")
    finally:
        queue.close()


_FILL_AND_DIE = """
import json, os, signal, struct, sys
from pathlib import Path
from agent.queue import DiskQueue
q = DiskQueue(Path(sys.argv[1]), max_bytes=256 << 20, max_age=86400)
stored, failures, i = [], 0, 0
while failures < 5:
    if q.append("sw", struct.pack(">I", i) + os.urandom(3000)) is False:
        failures += 1
    else:
        stored.append(i)
    i += 1
print(json.dumps(stored), flush=True)
if sys.argv[2] == "close":
    q.close()
else:
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("end", ["close", "kill"])
def test_an_agent_restarted_on_a_full_disk_opens_its_queue_and_drains_it(
    small_fs: Callable[[str], Path], end: str
) -> None:
    """The agent filled the disk and stopped (cleanly, or killed): the next start opens the queue, its
    first append (its self-metrics) does not raise, and the queue drains."""
    directory = small_fs("2m") / "buffer"
    child = subprocess.run([sys.executable, "-c", _FILL_AND_DIE, str(directory), end], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == (0 if end == "close" else -signal.SIGKILL), child.stderr
    stored = json.loads(child.stdout)
    assert len(stored) > 50

    queue = DiskQueue(directory, max_bytes=256 * MIB, max_age=DAY)
    try:
        assert queue.stats().depth == len(stored)
        first = queue.append("self", _message(10_000))  # may be refused (the disk is full), never raises
        sent, _, _ = _drain(queue, 120.0)
        assert sorted(sent) == sorted(stored + ([10_000] if first else []))
        assert queue.stats().depth == 0
        assert queue.append("self", _message(10_001))
    finally:
        queue.close()


def _peak_disk_use(directory: Path, max_bytes: int, sizes: list[int], rounds: int) -> tuple[int, int]:
    """Fill the queue to 2.5x max_bytes (broker down), then drain while appending (broker back), ``rounds``
    times; returns (peak bytes of the buffer directory, sampled after every operation, largest WAL)."""
    queue = DiskQueue(directory, max_bytes=max_bytes, max_age=DAY)
    peak = wal = 0
    index = 0
    average = sum(sizes) / len(sizes)
    try:
        for round_ in range(rounds):
            for _ in range(int(2.5 * max_bytes / average)):
                queue.append("sw", _message(index, sizes[index % len(sizes)]))
                index += 1
                if round_ % 2:
                    for message in queue.peek(1):
                        queue.ack([message.id])
                peak = max(peak, _dir_bytes(directory))
                wal_file = directory / "queue.sqlite3-wal"
                wal = max(wal, wal_file.stat().st_blocks * 512 if wal_file.exists() else 0)
            assert queue.stats().dropped > 0 or round_ % 2  # the bound was reached
    finally:
        queue.close()
    return peak, wal


def _overhead(largest: int) -> int:
    """The documented bound on what the buffer directory takes beyond max_bytes: the reserve, the WAL
    (checkpointed every WAL_CHECKPOINT_PAGES pages, plus the transaction that stores the largest message
    and drops what it replaces), the WAL index and the lock file."""
    return RESERVE_BYTES + WAL_CHECKPOINT_PAGES * (4096 + 24) + 2 * largest + 128 * 1024


def test_disk_use_is_max_bytes_plus_a_fixed_overhead(small_fs: Callable[[str], Path]) -> None:
    """Measured on a real filesystem (st_blocks) after every append and ack, with polls of 2 kB to 250 kB.
    Before: the WAL alone grew to ~4 MiB beyond max_bytes (SQLite's default checkpoint at 1000 pages),
    and the database file itself beyond max_bytes by SQLite's per-row overhead."""
    max_bytes = 4 * MIB
    sizes = [2_000, 30_000, 2_000, 30_000, 250_000]
    peak, wal = _peak_disk_use(small_fs("32m") / "buffer", max_bytes, sizes, rounds=4)
    print(f"\nmax_bytes {max_bytes / MIB:.2f} MiB: peak {peak / MIB:.2f} MiB "
          f"(+{(peak - max_bytes) / MIB:.2f} MiB), largest WAL {wal / 1024:.0f} KiB")
    assert peak <= max_bytes + _overhead(max(sizes)), (peak - max_bytes) / MIB


@pytest.mark.soak
def test_disk_use_stays_bounded_with_a_large_buffer_and_large_polls(small_fs: Callable[[str], Path]) -> None:
    max_bytes = 64 * MIB
    sizes = [2_000, 30_000, 250_000, 2_000, 1_000_000]
    peak, wal = _peak_disk_use(small_fs("160m") / "buffer", max_bytes, sizes, rounds=4)
    print(f"\nmax_bytes {max_bytes / MIB:.2f} MiB: peak {peak / MIB:.2f} MiB "
          f"(+{(peak - max_bytes) / MIB:.2f} MiB), largest WAL {wal / 1024:.0f} KiB")
    assert peak <= max_bytes + _overhead(max(sizes)), (peak - max_bytes) / MIB

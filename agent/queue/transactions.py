"""The disk queue's writes: one SQLite transaction each, with the queue's bookkeeping in memory.

:class:`QueueTransactions` holds the open database and what the queue keeps in memory beside it (row
and byte counts, delivered messages kept, acknowledgements and a requeue not yet written, the
counters). :meth:`QueueTransactions._write` runs a change together with that pending bookkeeping in
one transaction and, when the transaction fails, puts everything in memory back as it was. The bounds
(bytes, age) and the room check for a full disk are applied inside these transactions. Opening the
database and what to do when a write fails are in agent/queue/recovery.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from agent.queue.database import COUNTERS, PAGE_SIZE, CannotWrite, is_write_failure
from agent.queue.files import DB_NAME, free_space

T = TypeVar("T")

HEADROOM_BYTES = 64 * 1024  # the database grows only if this much stays free after a checkpoint


class QueueTransactions:
    """The open database, the bookkeeping kept in memory beside it, and the writes (one transaction
    each). Without a database (``_db`` None) a write raises ``CannotWrite``."""

    def __init__(self, directory: Path, *, max_bytes: int, max_age: float,
                 clock: Callable[[], float]) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._page_size = PAGE_SIZE
        self._incremental = False  # auto_vacuum=INCREMENTAL: free pages can go back to the filesystem
        self._rows = 0  # rows in `messages` (pending, delivered-kept, acknowledged-but-not-deleted)
        self._bytes = 0  # their payload bytes
        self._kept = 0  # rows in `delivered` (not counting those requeued in memory)
        self._next_expiry: float | None = None  # earliest `until` in `delivered`
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._persisted = dict.fromkeys(COUNTERS, 0)
        self._unacked: dict[int, float] = {}  # acknowledged, not yet written: id -> keep until (0: delete)
        self._requeue_pending = False  # requeue_delivered() not yet written: `delivered` is ignored

    def _write(self, body: Callable[[], T], *, pressure: bool = False) -> T:
        """Run ``body`` and the pending bookkeeping (acks not yet written, a requeue, expired delivered
        messages, counters) in one transaction. Under ``pressure`` (the disk is full) acknowledged
        messages are deleted instead of kept. On a write failure everything in memory is as before and
        ``CannotWrite`` is raised; corruption propagates as ``sqlite3.DatabaseError``."""
        db = self._db
        if db is None:
            raise CannotWrite("no database")
        saved = (self._rows, self._bytes, self._kept, self._next_expiry, dict(self._counters),
                 dict(self._persisted), dict(self._unacked), self._requeue_pending)
        try:
            db.execute("BEGIN IMMEDIATE")
            if self._requeue_pending:
                db.execute("DELETE FROM delivered")
                self._requeue_pending = False
            self._apply_acks(self._clock(), pressure)
            result = body()
            self._expire(self._clock())
            for name in COUNTERS:
                if self._counters[name] != self._persisted[name]:
                    db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                               "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                               (name, self._counters[name]))
                    self._persisted[name] = self._counters[name]
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            (self._rows, self._bytes, self._kept, self._next_expiry, self._counters, self._persisted,
             self._unacked, self._requeue_pending) = saved
            if is_write_failure(exc):
                raise CannotWrite(str(exc) or type(exc).__name__) from exc
            raise
        return result

    def _apply_acks(self, now: float, pressure: bool) -> None:
        """Inside a transaction: delete, or mark delivered, the acknowledged messages in ``_unacked``."""
        assert self._db is not None
        acks = list(self._unacked.items())
        self._unacked.clear()
        for message_id, until in acks:
            if until > now and not pressure:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO delivered (id, until) SELECT id, ? FROM messages WHERE id = ?",
                    (until, message_id))
                if cur.rowcount == 1:
                    self._kept += 1
                    if self._next_expiry is None or until < self._next_expiry:
                        self._next_expiry = until
            else:
                self._delete_ids([message_id])

    def _delete_ids(self, ids: Iterable[int]) -> list[int]:
        """Inside a transaction: delete these messages; returns those that were pending (not delivered,
        not acknowledged), i.e. the ones a bound drops."""
        assert self._db is not None
        pending = []
        for message_id in ids:
            row = self._db.execute("DELETE FROM messages WHERE id = ? RETURNING LENGTH(payload)",
                                   (message_id,)).fetchone()
            if row is None:
                continue
            self._rows -= 1
            self._bytes -= int(row[0])
            delivered = self._kept and self._db.execute("DELETE FROM delivered WHERE id = ?",
                                                        (message_id,)).rowcount
            if delivered:
                self._kept -= 1
            elif self._unacked.pop(message_id, None) is None:
                pending.append(message_id)
        return pending

    def _expire(self, now: float) -> None:
        """Inside a transaction: delete delivered messages kept past their time."""
        if self._next_expiry is None or self._next_expiry >= now or self._requeue_pending:
            return
        assert self._db is not None
        expired = [r[0] for r in self._db.execute("SELECT id FROM delivered WHERE until < ?", (now,))]
        self._delete_ids(expired)
        self._db.execute("DELETE FROM delivered WHERE until < ?", (now,))  # any left without a message
        row = self._db.execute("SELECT MIN(until) FROM delivered").fetchone()
        self._next_expiry = None if row[0] is None else float(row[0])

    def _evict_delivered(self, want: int) -> None:
        """Inside a transaction, on a full disk: delete the oldest delivered messages kept for the broker
        until ``want`` bytes of database pages are free (they give way to new messages; not dropped)."""
        assert self._db is not None
        start = self._used_bytes()
        while self._kept and start - self._used_bytes() < want:
            row = self._db.execute("SELECT id FROM delivered ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self._delete_ids([int(row[0])])

    def _check_room(self, incoming: int) -> None:
        """Inside a transaction, before inserting ``incoming`` bytes that make the database file grow:
        refuse, as a full disk would, unless the filesystem has room for this insert in the WAL and for
        the checkpoint that copies every page the WAL adds beyond the end of the file into it. A WAL
        whose checkpoint cannot grow the file can never be started again: then nothing, not even a
        delete, can be written until space is freed."""
        assert self._db is not None
        page = self._page_size
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        grow = max(0, incoming - free * page)
        pending = max(0, pages * page - os.stat(self.path).st_size)  # in the WAL, past the file's end
        if grow == 0 and pending == 0:
            return  # fits in the file: only the WAL needs room, and SQLite says if it has none
        need = pending + grow + incoming + HEADROOM_BYTES
        available = self._free_space()
        if available < need:
            raise OSError(errno.ENOSPC, f"no room for the queue database to grow: {available} bytes free "
                                        f"on its filesystem, {need} needed")

    def _used_bytes(self) -> int:
        assert self._db is not None
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _enforce_bounds(self, now: float, incoming: int, keep: int) -> None:
        """Inside a transaction: drop messages older than max_age, then the oldest until the database
        uses at most max_bytes with ``incoming`` more bytes; delivered messages go first (not counted as
        dropped). At least ``keep`` messages stay."""
        assert self._db is not None
        dropped = 0
        oldest = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        if oldest is not None and oldest[0] < now - self._max_age:  # rare: only then scan for old rows
            old = [r[0] for r in self._db.execute("SELECT id FROM messages WHERE created < ?",
                                                  (now - self._max_age,))]
            dropped += len(self._delete_ids(old))
        excess = self._used_bytes() + incoming - self._max_bytes
        while excess > 0 and self._rows > keep:
            freed = 0
            while freed < excess and self._rows > keep:
                row = None
                if self._kept and not self._requeue_pending:
                    row = self._db.execute("SELECT id FROM delivered ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    row = self._db.execute("SELECT id FROM messages ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    break
                before = self._bytes
                dropped += len(self._delete_ids([int(row[0])]))
                freed += max(before - self._bytes, 1)
            excess = self._used_bytes() + incoming - self._max_bytes
        self._counters["dropped"] += dropped


    def _pending_ids(self, ids: list[int]) -> set[int]:
        assert self._db is not None
        found: set[int] = set()
        delivered = "" if self._requeue_pending else " AND id NOT IN (SELECT id FROM delivered)"
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._db.execute(
                f"SELECT id FROM messages WHERE id IN ({marks}){delivered}", chunk))
        return found

    def _checkpoint(self) -> int | None:
        """Copy the WAL into the database so that the next write starts the WAL again from its beginning
        (in the space the WAL file already has). Returns the number of WAL frames, None on failure."""
        if self._db is None:
            return None
        try:
            busy, frames, _ = self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.OperationalError:
            return None
        return None if busy else int(frames)

    def _free_space(self) -> int:
        return free_space(self.directory)

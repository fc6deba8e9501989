"""The disk queue itself: :class:`DiskQueue`, what the rest of the agent uses (see agent/queue/__init__.py
for what it guarantees). Its layers below: agent/queue/recovery.py (opening, a corrupt file, a full
disk), agent/queue/transactions.py (one transaction per write), agent/queue/database.py (SQLite) and
agent/queue/files.py (the buffer directory).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.queue.database import (
    COUNTERS,
    MESSAGE_COLUMNS,
    PEEK,
    CannotWrite,
    estimate_pages,
    is_corrupt,
    is_write_failure,
)
from agent.queue.files import RESERVE_BYTES, lock_directory, private_directory
from agent.queue.records import QueuedMessage, QueueStats
from agent.queue.recovery import QueueRecovery


class DiskQueue(QueueRecovery):
    """The agent's durable queue of messages for the broker (see agent/queue/__init__.py)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        directory = Path(directory)
        private_directory(directory)
        lock_fd = lock_directory(directory)
        super().__init__(directory, max_bytes=max_bytes, max_age=max_age, clock=clock,
                         reserve_bytes=reserve_bytes)
        self._lock_fd: int | None = lock_fd
        try:
            self._open(strict=True)
            self._restore_reserve()
        except BaseException:
            self.close()
            raise

    def append(self, device: str, payload: bytes, *, live_for: float = 60.0) -> bool:
        """Store a message durably; it counts as live for ``live_for`` seconds. Returns False (and
        counts the message in ``dropped_full``) when it cannot be written: full disk, I/O error."""
        return self.append_many(device, (payload,), live_for=live_for)

    def append_many(self, device: str, payloads: Sequence[bytes], *, live_for: float = 60.0) -> bool:
        """:meth:`append` for several messages of one channel in one transaction (one fsync: a trap
        storm), in order. All or none: False (each counted in ``dropped_full``) when they cannot be
        written."""
        if not payloads:
            return True
        now = self._clock()
        incoming = sum(estimate_pages(len(p), self._page_size) for p in payloads) * self._page_size
        pressure = self._failing_since is not None  # the disk is full: kept delivered messages give way

        def insert() -> None:
            assert self._db is not None
            if pressure:
                self._evict_delivered(incoming)
            self._enforce_bounds(now, incoming, 0)
            self._check_room(incoming)
            for payload in payloads:
                self._db.execute(
                    "INSERT INTO messages (created, live_until, device, payload) VALUES (?, ?, ?, ?)",
                    (now, now + live_for, device, payload),
                )
            self._rows += len(payloads)
            self._bytes += sum(len(p) for p in payloads)
            self._enforce_bounds(now, 0, len(payloads))

        retried = recovered = False
        while True:
            try:
                self._write(insert, pressure=pressure)
                break
            except CannotWrite as exc:
                if not retried:
                    # The WAL may hold frames not yet checkpointed (up to WAL_CHECKPOINT_PAGES): after a
                    # checkpoint the insert starts the WAL again in the space it has. Delivered messages
                    # kept for the broker give way. Not the reserve: that is for deleting.
                    retried = pressure = True
                    self._checkpoint()
                    continue
                if self._unacked or self._requeue_pending:  # deletes may fit where an insert does not
                    with contextlib.suppress(CannotWrite, sqlite3.DatabaseError):
                        self._write(lambda: None, pressure=True)
                self._note_failure(exc.__cause__ or exc)
                self._counters["dropped_full"] += len(payloads)
                return False
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc) or recovered:
                    raise
                recovered = True
                self._recover(exc)
        self._note_success()
        if self._reserve_missing:
            self._restore_reserve()
        return True

    def ack(self, message_ids: list[int], keep_for: float = 0.0) -> None:
        """The broker acknowledged these messages: delete them, or with ``keep_for`` > 0 keep them,
        marked delivered, for that many seconds (for a broker that may lose what it acknowledged; see
        ``requeue_delivered``). Never raises for a full disk: what cannot be written is remembered in
        memory (and not returned by the peeks) and written by a later ack or append."""
        if not message_ids and not self._unacked and not self._requeue_pending:
            return
        now = self._clock()
        until = now + keep_for if keep_for > 0 else 0.0
        ids = list(dict.fromkeys(message_ids))
        try:
            pending = self._pending_ids(ids) if ids and self._db is not None else set()
            for message_id in ids:
                if message_id in pending:
                    self._unacked[message_id] = until
            # delivered messages acknowledged again for deletion: deleted if the disk allows (else they
            # expire later); unknown ids are harmless
            again = [i for i in ids if i not in pending] if until == 0.0 else []

            def delete_again() -> None:
                self._delete_ids(again)

            pressure = self._failing_since is not None  # the disk is full: delete, do not keep
            stage = 0
            while True:
                try:
                    self._write(delete_again, pressure=pressure)
                    break
                except CannotWrite as exc:
                    # A checkpoint lets the WAL start again in the space it has, and deleting frees
                    # pages where keeping takes them; if that is not enough (the checkpoint must grow
                    # the database file), the reserve makes room.
                    if stage == 0:
                        stage, pressure = 1, True
                        self._checkpoint()
                        continue
                    if stage == 1 and self._release_reserve():
                        stage = 2
                        self._checkpoint()
                        continue
                    self._note_failure(exc.__cause__ or exc)
                    return
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            self._recover(exc)
            return
        if self._reserve_missing:
            self._restore_reserve()


    def requeue_delivered(self) -> int:
        """Every delivered message still kept becomes pending again (the broker lost them): returned by
        the peeks again, in id order, with its live_until unchanged. Returns how many."""
        count = 0

        def requeue() -> None:
            nonlocal count
            assert self._db is not None
            self._expire(self._clock())  # those kept past their time are deleted, not sent again
            count = self._db.execute("DELETE FROM delivered").rowcount
            self._kept = 0
            self._next_expiry = None

        try:
            self._write(requeue)
            return count
        except CannotWrite as exc:
            self._note_failure(exc.__cause__ or exc)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            self._recover(exc)
            return 0
        # cannot write: requeue in memory (the peeks ignore `delivered`); written by the next write
        count = self._kept
        self._kept = 0
        self._next_expiry = None
        self._requeue_pending = True
        return count

    def _select(self, sql: str, args: tuple[float | int, ...], limit: int,
                columns: str = MESSAGE_COLUMNS) -> list[tuple[Any, ...]]:
        """``sql`` selects ``{columns}`` of messages in id order; returns up to ``limit`` rows, skipping
        delivered messages and those acknowledged but not yet deleted. A corrupt database found here is
        moved aside (the answer is then empty); a read error is logged and answers empty."""
        for attempt in range(2):
            if self._db is None:
                return []
            try:
                return self._select_once(sql, args, limit, columns)
            except sqlite3.DatabaseError as exc:
                if is_corrupt(exc) and not attempt:
                    self._recover(exc)
                    continue
                if not is_write_failure(exc):
                    raise
                self._note_failure(exc)
                return []
        return []

    def _select_once(self, sql: str, args: tuple[float | int, ...], limit: int,
                     columns: str) -> list[tuple[Any, ...]]:
        assert self._db is not None
        delivered = "" if self._requeue_pending else " AND id NOT IN (SELECT id FROM delivered)"
        if not self._unacked:
            return list(self._db.execute(sql.format(columns=columns, delivered=delivered), (*args, limit)))
        ids = [r[0] for r in self._db.execute(sql.format(columns="id", delivered=delivered),
                                              (*args, limit + len(self._unacked)))
               if r[0] not in self._unacked][:limit]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return list(self._db.execute(f"SELECT {columns} FROM messages WHERE id IN ({marks}) ORDER BY id",
                                     ids))

    def _messages(self, sql: str, args: tuple[float | int, ...], limit: int) -> list[QueuedMessage]:
        return [QueuedMessage(int(r[0]), float(r[1]), float(r[2]), str(r[3]), bytes(r[4]))
                for r in self._select(sql, args, limit)]

    def peek(self, limit: int) -> list[QueuedMessage]:
        """The oldest ``limit`` messages waiting to be sent, without removing them."""
        return self._messages(PEEK, (), limit)

    def peek_live(self, now: float, limit: int) -> list[QueuedMessage]:
        """Messages still live at ``now``, oldest first."""
        # INDEXED BY: without it SQLite scans the whole table in id order (slow with a big backlog)
        return self._messages("SELECT {columns} FROM messages INDEXED BY messages_live_until "
                              "WHERE live_until >= ?{delivered} ORDER BY id LIMIT ?", (now,), limit)

    def peek_backlog(self, now: float, limit: int) -> list[QueuedMessage]:
        """Messages no longer live at ``now`` (left behind by an outage), oldest first."""
        return self._messages("SELECT {columns} FROM messages WHERE live_until < ?{delivered} ORDER BY id "
                              "LIMIT ?", (now,), limit)

    def stats(self) -> QueueStats:
        found = self._select(PEEK, (), 1, columns="id, created")  # the oldest waiting to be sent
        return QueueStats(
            depth=self._rows - self._kept - len(self._unacked), bytes=self._bytes,
            oldest=float(found[0][1]) if found else None,
            dropped=self._counters["dropped"], dropped_full=self._counters["dropped_full"],
            corrupt_files=self._counters["corrupt_files"], delivered_kept=self._kept,
        )

    def close(self) -> None:
        if self._db is not None:
            if any(self._counters[name] != self._persisted[name] for name in COUNTERS):
                # counted since the last write that worked (e.g. polls dropped on a full disk): keep them
                with contextlib.suppress(CannotWrite, sqlite3.Error, OSError):
                    self._write(lambda: None, pressure=True)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

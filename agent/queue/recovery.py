"""Opening the disk queue's database, and carrying on when the disk fails it.

:class:`QueueRecovery` adds to the transactions (agent/queue/transactions.py) what keeps the queue
running on a bad disk:

* a corrupt database (a power cut on a cheap disk) is moved aside, at start-up or when found later,
  and the queue starts again empty, counting it (``corrupt_files``);
* on a full disk the reserve file is deleted so that acknowledged messages can still be deleted, and
  made again when space returns (free database pages given back to the filesystem for it);
* without a database (it cannot be opened) every write tries to open it again;
* one log line when writing starts to fail, one when appends have worked again for
  ``EPISODE_QUIET_SECONDS``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from agent.queue.database import (
    AUTO_VACUUM_INCREMENTAL,
    COUNTERS,
    CannotWrite,
    is_corrupt,
    is_space_error,
    prepare,
)
from agent.queue.files import (
    RESERVE_NAME,
    move_corrupt_aside,
    private_file,
    prune_corrupt,
    write_reserve,
)
from agent.queue.transactions import QueueTransactions

log = logging.getLogger("hatang.agent.queue")

T = TypeVar("T")

# A write-failure episode ends (one log line) at the first append that works this long after the last
# failure: near full, small messages fit where large ones do not, and that must not log every minute.
EPISODE_QUIET_SECONDS = 30.0


class QueueRecovery(QueueTransactions):
    """Opening the database, a corrupt one set aside, the reserve, and write-failure episodes."""

    def __init__(self, directory: Path, *, max_bytes: int, max_age: float, clock: Callable[[], float],
                 reserve_bytes: int) -> None:
        super().__init__(directory, max_bytes=max_bytes, max_age=max_age, clock=clock)
        self._reserve_path = directory / RESERVE_NAME
        self._reserve_bytes = reserve_bytes
        self._failing_since: float | None = None  # a write failure episode: when it started
        self._last_failure = 0.0  # time.monotonic() of the last failed write
        self._failing_dropped = 0  # dropped_full when it started
        self._reserve_missing = False

    def _write(self, body: Callable[[], T], *, pressure: bool = False) -> T:
        """As :meth:`QueueTransactions._write`; without a database, first try to open it again."""
        if self._db is None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._open()
        return super()._write(body, pressure=pressure)

    # ------------------------------------------------------------------------------------------------
    # opening, corruption

    def _open(self, *, strict: bool = False) -> None:
        """Open the database; a corrupt one is moved aside and replaced by an empty one. A full disk (or
        an I/O error) releases the reserve and tries again, then leaves the queue without a database
        (every append dropped and counted; each write tries to open it again). Other errors (a path
        that cannot be created, permissions) raise when ``strict`` (at start-up)."""
        error: BaseException | None = None
        set_aside = released = False
        while True:
            try:
                self._connect()
                return
            except (sqlite3.Error, OSError) as exc:
                if is_corrupt(exc) and not set_aside:
                    set_aside = True
                    self._set_aside(exc)
                    continue  # once more, on an empty database
                if strict and not is_space_error(exc):
                    raise
                error = exc
            if released or not self._release_reserve():
                break
            released = True
        assert error is not None
        if self._db is not None:  # left by a database still corrupt after being replaced
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._note_failure(error)

    def _connect(self) -> None:
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                private_file(Path(f"{self.path}{suffix}"))
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            contents = prepare(db)
        except BaseException as exc:
            if is_corrupt(exc):
                self._db = db  # closed by _set_aside once the files are moved (SQLite may delete them)
            else:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            raise
        self._db = db
        self._page_size = contents.page_size
        self._incremental = contents.incremental
        self._rows, self._bytes = contents.rows, contents.bytes
        self._kept, self._next_expiry = contents.kept, contents.next_expiry
        self._unacked.clear()
        self._requeue_pending = False
        for name in COUNTERS:
            # counted in memory since (a corrupt database moved aside, writes that failed) and not yet
            # persisted are added to what the database holds
            unsaved = self._counters[name] - self._persisted[name]
            self._persisted[name] = contents.counters[name]
            self._counters[name] = self._persisted[name] + unsaved
        for suffix in ("-wal", "-shm"):  # created by SQLite with the database file's mode: 0600
            with contextlib.suppress(FileNotFoundError):
                private_file(Path(f"{self.path}{suffix}"))
        if not self._incremental and self._rows == 0:
            self._vacuum()  # an empty queue of an earlier hatang: make it able to shrink
        if self._counters != self._persisted:
            with contextlib.suppress(sqlite3.Error, CannotWrite):
                self._write(lambda: None)  # persist counters carried over (e.g. corrupt_files)

    def _vacuum(self) -> None:
        """Rewrite an empty database with auto_vacuum=INCREMENTAL (best effort)."""
        assert self._db is not None
        try:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
            vacuum = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])
            self._incremental = vacuum == AUTO_VACUUM_INCREMENTAL
        except sqlite3.OperationalError as exc:
            log.debug("buffer %s: VACUUM failed: %s", self.directory, exc)

    def _set_aside(self, exc: BaseException) -> None:
        """The database is corrupt: move it (with its WAL) aside, to start again with an empty one."""
        target = move_corrupt_aside(self.path, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock())))
        if self._db is not None:  # after the move: closing a connection can delete its WAL
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._counters["corrupt_files"] += 1
        self._persisted = dict.fromkeys(COUNTERS, 0)  # the counts go on in the new database
        lost = self._rows
        self._rows = self._bytes = self._kept = 0
        self._next_expiry = None
        self._unacked.clear()
        self._requeue_pending = False
        log.error("buffer %s: the queue database is corrupt (%s); moved it to %s and starting with an "
                  "empty queue (%s). It can be inspected with: sqlite3 %s .recover",
                  self.directory, exc, target,
                  f"{lost} queued message(s) lost" if lost else "the messages in it are lost", target)
        prune_corrupt(self.directory)

    def _recover(self, exc: BaseException) -> None:
        """A corrupt database found while running: set it aside and open an empty one."""
        try:
            self._set_aside(exc)
            self._open()
        except (sqlite3.Error, OSError) as error:  # cannot even move it: run without a database
            self._db = None
            self._note_failure(error)

    # ------------------------------------------------------------------------------------------------
    # the reserve

    def _release_reserve(self) -> bool:
        try:
            os.unlink(self._reserve_path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.debug("buffer %s: cannot delete the reserve: %s", self.directory, exc)
            return False
        self._reserve_missing = True
        log.warning("buffer %s: the disk is full; released the %d-byte reserve so that delivered "
                    "messages can be deleted", self.directory, self._reserve_bytes)
        return True

    def _restore_reserve(self) -> None:
        """Create the reserve file if it is missing and there is room for it, giving free database pages
        back to the filesystem first when that is what it takes."""
        if self._reserve_bytes <= 0:
            return
        try:
            if self._reserve_path.stat().st_size >= self._reserve_bytes:
                private_file(self._reserve_path)
                self._reserve_missing = False
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        margin = 4 * self._page_size
        try:
            if self._free_space() < self._reserve_bytes + margin and self._kept:
                # delivered messages kept for the broker give way to the reserve
                want = self._reserve_bytes + margin - self._free_space()
                with contextlib.suppress(CannotWrite, sqlite3.DatabaseError):
                    self._write(lambda: self._evict_delivered(want), pressure=True)
            if self._free_space() < self._reserve_bytes + margin:
                self._shrink(self._reserve_bytes + margin - self._free_space())
            if self._free_space() < self._reserve_bytes + margin:
                self._reserve_missing = True
                return
        except OSError:
            return
        try:
            write_reserve(self._reserve_path, self._reserve_bytes)
        except OSError as exc:
            self._reserve_missing = True
            log.debug("buffer %s: cannot create the reserve yet: %s", self.directory, exc)
            return
        if self._reserve_missing:
            log.info("buffer %s: disk space is back; the %d-byte reserve is in place again", self.directory,
                     self._reserve_bytes)
        self._reserve_missing = False

    def _shrink(self, want: int) -> None:
        """Give up to ``want`` bytes of free database pages back to the filesystem."""
        if self._db is None or not self._incremental:
            return
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        pages = math.ceil(want / self._page_size)
        if free < pages:  # not enough to make room for the reserve: not worth moving pages now
            return
        try:
            self._db.execute(f"PRAGMA incremental_vacuum({pages})").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()  # cuts the database file
        except sqlite3.OperationalError as exc:
            log.debug("buffer %s: incremental vacuum failed: %s", self.directory, exc)

    # ------------------------------------------------------------------------------------------------
    # write-failure episodes

    def _note_failure(self, exc: BaseException) -> None:
        self._last_failure = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._last_failure
            self._failing_dropped = self._counters["dropped_full"]
            log.warning("buffer %s: cannot write to the disk queue (%s): new messages are dropped and "
                        "counted (dropped_full) until it can; free disk space on its filesystem or lower "
                        "buffer.max_bytes", self.directory, exc)

    def _note_success(self) -> None:
        if (self._failing_since is not None and not self._unacked and not self._requeue_pending
                and time.monotonic() - self._last_failure >= EPISODE_QUIET_SECONDS):
            log.info("buffer %s: writing to the disk queue works again after %.0f s; %d new message(s) "
                     "were dropped meanwhile", self.directory, time.monotonic() - self._failing_since,
                     self._counters["dropped_full"] - self._failing_dropped)
            self._failing_since = None

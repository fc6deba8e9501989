"""The agent's on-disk queue: every poll result is written here first, whether the uplink is up or down.

SQLite in WAL mode with ``synchronous=FULL``: a message appended is on disk (fsync'd) before
``append`` returns, so it survives ``kill -9`` and a power cut. A message leaves the queue only through
``ack`` after the broker acknowledged it (with ``keep_for``, it is kept, hidden, for that long first:
``requeue_delivered`` makes such messages pending again when the broker lost them). The queue is bounded
by bytes and by age; when full it drops the oldest messages first (delivered ones kept for the broker
before any pending one) and counts them.

Each message has a ``live_until`` time (poll time + one interval): until then it is *live* and is sent
first; after that it is *backlog*, drained oldest-first behind the live data (see agent/uplink.py).

Disk use: the database's pages in use never exceed ``max_bytes`` (SQLite's own overhead included; the
newest message is kept even if it alone is larger), the WAL is checkpointed every
``WAL_CHECKPOINT_PAGES`` pages and cut back to ``WAL_LIMIT_BYTES`` after a checkpoint, and the buffer
directory (mode 0700; files 0600) holds besides the database (``queue.sqlite3``, ``-wal``, ``-shm``):

* ``queue.lock``: locked (``flock``) for the life of the queue, with the owner's pid in it. A second
  queue on the same directory (another agent with the same ``buffer.path``) raises ``QueueLocked``.
* ``queue.reserve`` (``reserve_bytes``): deleted when the disk is full and acknowledged messages cannot
  be deleted (SQLite needs free space to delete rows: the WAL grows first, and its checkpoint may have to
  grow the database file); made again when space returns, the database giving free pages back to the
  filesystem for it (auto_vacuum=INCREMENTAL).
* ``queue.sqlite3.corrupt-<UTC time>``: a corrupt database (a power cut on a cheap disk) moved aside, at
  start-up or when found later; the queue starts empty and counts it. The newest ``KEEP_CORRUPT`` stay.

A full disk (or any other write error) never raises. ``append`` returns False and counts the message in
``dropped_full``; the database grows only while the filesystem keeps room to checkpoint what it wrote
(else it could never write again, not even a delete); delivered messages kept for the broker give way
first. ``ack`` remembers in memory the ids it could not write (the peeks do not return them again) and
writes them with the next write that works. One log line when writing starts to fail, one when appends
have worked again for ``EPISODE_QUIET_SECONDS``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("hatang.agent.queue")

T = TypeVar("T")

DB_NAME = "queue.sqlite3"
LOCK_NAME = "queue.lock"
RESERVE_NAME = "queue.reserve"
CORRUPT_MARK = ".corrupt-"  # queue.sqlite3.corrupt-20260509T073525Z (+ -wal, -shm)
KEEP_CORRUPT = 3  # corrupt databases kept for a post-mortem (they take disk space)

PAGE_SIZE = 4096  # SQLite's default; new databases are created with it
WAL_CHECKPOINT_PAGES = 64  # checkpoint when the WAL holds this many pages (SQLite's default: 1000, ~4 MiB)
WAL_LIMIT_BYTES = 512 * 1024  # after a checkpoint the WAL file is cut back to this size
RESERVE_BYTES = 1024 * 1024  # deleted to make room for deleting acknowledged rows on a full disk
HEADROOM_BYTES = 64 * 1024  # the database grows only if this much stays free after a checkpoint
# A write-failure episode ends (one log line) at the first append that works this long after the last
# failure: near full, small messages fit where large ones do not, and that must not log every minute.
EPISODE_QUIET_SECONDS = 30.0

_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26
_AUTO_VACUUM_INCREMENTAL = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    live_until REAL NOT NULL,
    device TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS delivered (id INTEGER PRIMARY KEY, until REAL NOT NULL);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_live_until ON messages (live_until);
CREATE INDEX IF NOT EXISTS delivered_until ON delivered (until);
"""
# `delivered` is a table of its own rather than a column added to `messages` by ALTER TABLE: such a column
# sits after the payload, where SQLite reaches it through the payload's overflow pages for every delivered
# row a peek skips (1.24 against 0.96 ms per peek past 1,500 delivered 30 kB rows, SQLite's cache cold),
# and requeue_delivered is one DELETE. A queue file of an earlier version gets the table when opened.

_COUNTERS = ("dropped", "dropped_full", "corrupt_files")
_PEEK = "SELECT {columns} FROM messages WHERE 1{delivered} ORDER BY id LIMIT ?"
_MESSAGE = "id, created, live_until, device, payload"


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    created: float
    live_until: float
    device: str  # a device name, or a channel name such as "self" (see agent/service.py)
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int  # messages waiting to be sent (not delivered)
    bytes: int  # payload bytes in the database, delivered messages still kept included
    oldest: float | None  # created time of the oldest message waiting to be sent
    dropped: int  # messages dropped by the bounds, over the queue's life
    dropped_full: int = 0  # messages not stored because the disk was full or failed (over the queue's life)
    corrupt_files: int = 0  # corrupt databases moved aside (persisted in the database that replaced them)
    delivered_kept: int = 0  # delivered messages kept for a broker that may lose them (ack keep_for)


class QueueLocked(Exception):
    """Another process (another hatang agent) holds the buffer directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        owner = f"another hatang agent (pid {pid})" if pid is not None else "another hatang agent"
        super().__init__(
            f"the buffer directory {directory} is in use by {owner}: it holds the lock "
            f"{directory / LOCK_NAME}. Two agents cannot share a buffer (their messages would go out "
            f"under each other's agent id): give each agent its own buffer.path, or stop the other agent"
        )


class _CannotWrite(Exception):
    """Internal: a write failed for want of space (or another I/O error) and was rolled back."""


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and _code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _is_write_failure(exc: BaseException) -> bool:
    """A failed write that must not stop the agent: a full disk, an I/O error, any OperationalError."""
    return isinstance(exc, (sqlite3.OperationalError, OSError)) and not _is_corrupt(exc)


def _is_space_error(exc: BaseException) -> bool:
    """A full disk or an I/O error (as opposed to a wrong path or permissions)."""
    if isinstance(exc, sqlite3.OperationalError):
        return _code(exc) in (_SQLITE_FULL, _SQLITE_IOERR)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def _estimate_pages(payload_len: int, page_size: int) -> int:
    """Pages a new row of this payload takes: a cell on a leaf page or the payload in overflow pages."""
    return max(1, math.ceil((payload_len + 64) / (page_size - 4)))


def _is_own_file(name: str) -> bool:
    return (name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME,
                     RESERVE_NAME, f"{RESERVE_NAME}.tmp")
            or name.startswith(DB_NAME + CORRUPT_MARK))


def _private_directory(directory: Path) -> None:
    """Create the buffer directory 0700, or check an existing one: tighten it to 0700 if it holds only
    queue files (an earlier hatang created it 0755), else warn if other users can enter it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    else:
        return
    st = directory.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if st.st_uid == os.geteuid() and all(_is_own_file(name) for name in os.listdir(directory)):
        os.chmod(directory, mode & 0o700)
        log.info("buffer directory %s was accessible to other users (mode %o): now %o", directory, mode,
                 mode & 0o700)
        return
    log.warning("buffer directory %s is accessible to other users (mode %o): the queued polls in it "
                "include device names and interface descriptions; chmod 700 it, or give buffer.path a "
                "directory of the agent's own", directory, mode)


def _private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, else take away group/other access."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    else:
        os.close(fd)


def _lock_directory(directory: Path) -> int:
    """Lock the directory for this process's lifetime (flock on queue.lock, with our pid in it)."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise QueueLocked(directory, pid) from None
        raise
    with contextlib.suppress(OSError):  # the pid is for the error message only (the disk may be full)
        os.fchmod(fd, 0o600)
        data = f"{os.getpid()}\n".encode()
        os.pwrite(fd, data.ljust(16), 0)  # overwrite in place: no new block needed on a full disk
    return fd


class DiskQueue:
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
        _private_directory(directory)
        self.directory = directory
        self.path = directory / DB_NAME
        self._reserve_path = directory / RESERVE_NAME
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._clock = clock
        self._reserve_bytes = reserve_bytes
        self._lock_fd: int | None = _lock_directory(directory)
        self._db: sqlite3.Connection | None = None
        self._page_size = PAGE_SIZE
        self._incremental = False  # auto_vacuum=INCREMENTAL: free pages can go back to the filesystem
        self._rows = 0  # rows in `messages` (pending, delivered-kept, acknowledged-but-not-deleted)
        self._bytes = 0  # their payload bytes
        self._kept = 0  # rows in `delivered` (not counting those requeued in memory)
        self._next_expiry: float | None = None  # earliest `until` in `delivered`
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._persisted = dict.fromkeys(_COUNTERS, 0)
        self._unacked: dict[int, float] = {}  # acknowledged, not yet written: id -> keep until (0: delete)
        self._requeue_pending = False  # requeue_delivered() not yet written: `delivered` is ignored
        self._failing_since: float | None = None  # a write failure episode: when it started
        self._last_failure = 0.0  # time.monotonic() of the last failed write
        self._failing_dropped = 0  # dropped_full when it started
        self._reserve_missing = False
        try:
            self._open(strict=True)
            self._restore_reserve()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------
    # opening, corruption, the reserve

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
                if _is_corrupt(exc) and not set_aside:
                    set_aside = True
                    self._set_aside(exc)
                    continue  # once more, on an empty database
                if strict and not _is_space_error(exc):
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
        _private_file(self.path)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                _private_file(Path(f"{self.path}{suffix}"))
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            new = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            if new:
                db.execute(f"PRAGMA page_size={PAGE_SIZE}")
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            db.execute("PRAGMA temp_store=MEMORY")  # sorting for peek_live: no temp files
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            if not {"messages", "counters", "delivered", "messages_live_until", "delivered_until"} <= tables:
                # a new database, or one written by an earlier hatang (no writes otherwise: a full disk)
                db.executescript(_SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
                if "live_until" not in columns:  # a queue of hatang 0.1.0, before live-first draining
                    db.execute("ALTER TABLE messages ADD COLUMN live_until REAL NOT NULL DEFAULT 0")
                db.executescript(_INDEXES)
            self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            vacuum = int(db.execute("PRAGMA auto_vacuum").fetchone()[0])
            size, rows = db.execute(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages").fetchone()
            kept, expiry = db.execute(
                "SELECT COUNT(*), MIN(until) FROM delivered WHERE id IN (SELECT id FROM messages)").fetchone()
            found = dict(db.execute("SELECT name, value FROM counters").fetchall())
        except BaseException as exc:
            if _is_corrupt(exc):
                self._db = db  # closed by _set_aside once the files are moved (SQLite may delete them)
            else:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            raise
        self._db = db
        self._incremental = vacuum == _AUTO_VACUUM_INCREMENTAL
        self._rows, self._bytes = int(rows), int(size)
        self._kept, self._next_expiry = int(kept), None if expiry is None else float(expiry)
        self._unacked.clear()
        self._requeue_pending = False
        for name in _COUNTERS:
            # counted in memory since (a corrupt database moved aside, writes that failed) and not yet
            # persisted are added to what the database holds
            unsaved = self._counters[name] - self._persisted[name]
            self._persisted[name] = int(found.get(name, 0))
            self._counters[name] = self._persisted[name] + unsaved
        for suffix in ("-wal", "-shm"):  # created by SQLite with the database file's mode: 0600
            with contextlib.suppress(FileNotFoundError):
                _private_file(Path(f"{self.path}{suffix}"))
        if not self._incremental and self._rows == 0:
            self._vacuum()  # an empty queue of an earlier hatang: make it able to shrink
        if self._counters != self._persisted:
            with contextlib.suppress(sqlite3.Error, _CannotWrite):
                self._write(lambda: None)  # persist counters carried over (e.g. corrupt_files)

    def _vacuum(self) -> None:
        """Rewrite an empty database with auto_vacuum=INCREMENTAL (best effort)."""
        assert self._db is not None
        try:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
            vacuum = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])
            self._incremental = vacuum == _AUTO_VACUUM_INCREMENTAL
        except sqlite3.OperationalError as exc:
            log.debug("buffer %s: VACUUM failed: %s", self.directory, exc)

    def _set_aside(self, exc: BaseException) -> None:
        """The database is corrupt: move it (with its WAL) aside, to start again with an empty one."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = self.path.with_name(f"{DB_NAME}{CORRUPT_MARK}{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{DB_NAME}{CORRUPT_MARK}{stamp}.{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{target}{suffix}")
        if self._db is not None:  # after the move: closing a connection can delete its WAL
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._counters["corrupt_files"] += 1
        self._persisted = dict.fromkeys(_COUNTERS, 0)  # the counts go on in the new database
        lost = self._rows
        self._rows = self._bytes = self._kept = 0
        self._next_expiry = None
        self._unacked.clear()
        self._requeue_pending = False
        log.error("buffer %s: the queue database is corrupt (%s); moved it to %s and starting with an "
                  "empty queue (%s). It can be inspected with: sqlite3 %s .recover",
                  self.directory, exc, target,
                  f"{lost} queued message(s) lost" if lost else "the messages in it are lost", target)
        sets = sorted({p.name.removesuffix("-wal").removesuffix("-shm")
                       for p in self.directory.glob(f"{DB_NAME}{CORRUPT_MARK}*")})
        for old in sets[:-KEEP_CORRUPT]:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / f"{old}{suffix}")

    def _recover(self, exc: BaseException) -> None:
        """A corrupt database found while running: set it aside and open an empty one."""
        try:
            self._set_aside(exc)
            self._open()
        except (sqlite3.Error, OSError) as error:  # cannot even move it: run without a database
            self._db = None
            self._note_failure(error)

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

    def _free_space(self) -> int:
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

    def _restore_reserve(self) -> None:
        """Create the reserve file if it is missing and there is room for it, giving free database pages
        back to the filesystem first when that is what it takes."""
        if self._reserve_bytes <= 0:
            return
        try:
            if self._reserve_path.stat().st_size >= self._reserve_bytes:
                _private_file(self._reserve_path)
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
                with contextlib.suppress(_CannotWrite, sqlite3.DatabaseError):
                    self._write(lambda: self._evict_delivered(want), pressure=True)
            if self._free_space() < self._reserve_bytes + margin:
                self._shrink(self._reserve_bytes + margin - self._free_space())
            if self._free_space() < self._reserve_bytes + margin:
                self._reserve_missing = True
                return
        except OSError:
            return
        tmp = self._reserve_path.with_name(RESERVE_NAME + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self._reserve_bytes)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
                    chunk = os.urandom(64 * 1024)  # not zeros: a compressing filesystem would keep none
                    for offset in range(0, self._reserve_bytes, len(chunk)):
                        os.pwrite(fd, chunk[: self._reserve_bytes - offset], offset)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._reserve_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
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

    # ------------------------------------------------------------------------------------------------
    # transactions

    def _write(self, body: Callable[[], T], *, pressure: bool = False) -> T:
        """Run ``body`` and the pending bookkeeping (acks not yet written, a requeue, expired delivered
        messages, counters) in one transaction. Under ``pressure`` (the disk is full) acknowledged
        messages are deleted instead of kept. On a write failure everything in memory is as before and
        ``_CannotWrite`` is raised; corruption propagates as ``sqlite3.DatabaseError``."""
        db = self._db
        if db is None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._open()
            db = self._db
            if db is None:
                raise _CannotWrite("no database")
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
            for name in _COUNTERS:
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
            if _is_write_failure(exc):
                raise _CannotWrite(str(exc) or type(exc).__name__) from exc
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

    # ------------------------------------------------------------------------------------------------
    # the API

    def append(self, device: str, payload: bytes, *, live_for: float = 60.0) -> bool:
        """Store a message durably; it counts as live for ``live_for`` seconds. Returns False (and
        counts the message in ``dropped_full``) when it cannot be written: full disk, I/O error."""
        now = self._clock()
        incoming = _estimate_pages(len(payload), self._page_size) * self._page_size
        pressure = self._failing_since is not None  # the disk is full: kept delivered messages give way

        def insert() -> None:
            assert self._db is not None
            if pressure:
                self._evict_delivered(incoming)
            self._enforce_bounds(now, incoming, 0)
            self._check_room(incoming)
            self._db.execute(
                "INSERT INTO messages (created, live_until, device, payload) VALUES (?, ?, ?, ?)",
                (now, now + live_for, device, payload),
            )
            self._rows += 1
            self._bytes += len(payload)
            self._enforce_bounds(now, 0, 1)

        retried = recovered = False
        while True:
            try:
                self._write(insert, pressure=pressure)
                break
            except _CannotWrite as exc:
                if not retried:
                    # The WAL may hold frames not yet checkpointed (up to WAL_CHECKPOINT_PAGES): after a
                    # checkpoint the insert starts the WAL again in the space it has. Delivered messages
                    # kept for the broker give way. Not the reserve: that is for deleting.
                    retried = pressure = True
                    self._checkpoint()
                    continue
                if self._unacked or self._requeue_pending:  # deletes may fit where an insert does not
                    with contextlib.suppress(_CannotWrite, sqlite3.DatabaseError):
                        self._write(lambda: None, pressure=True)
                self._note_failure(exc.__cause__ or exc)
                self._counters["dropped_full"] += 1
                return False
            except sqlite3.DatabaseError as exc:
                if not _is_corrupt(exc) or recovered:
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
                except _CannotWrite as exc:
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
            if not _is_corrupt(exc):
                raise
            self._recover(exc)
            return
        if self._reserve_missing:
            self._restore_reserve()

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
        except _CannotWrite as exc:
            self._note_failure(exc.__cause__ or exc)
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
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
                columns: str = _MESSAGE) -> list[tuple[Any, ...]]:
        """``sql`` selects ``{columns}`` of messages in id order; returns up to ``limit`` rows, skipping
        delivered messages and those acknowledged but not yet deleted. A corrupt database found here is
        moved aside (the answer is then empty); a read error is logged and answers empty."""
        for attempt in range(2):
            if self._db is None:
                return []
            try:
                return self._select_once(sql, args, limit, columns)
            except sqlite3.DatabaseError as exc:
                if _is_corrupt(exc) and not attempt:
                    self._recover(exc)
                    continue
                if not _is_write_failure(exc):
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
        return self._messages(_PEEK, (), limit)

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
        found = self._select(_PEEK, (), 1, columns="id, created")  # the oldest waiting to be sent
        return QueueStats(
            depth=self._rows - self._kept - len(self._unacked), bytes=self._bytes,
            oldest=float(found[0][1]) if found else None,
            dropped=self._counters["dropped"], dropped_full=self._counters["dropped_full"],
            corrupt_files=self._counters["corrupt_files"], delivered_kept=self._kept,
        )

    def close(self) -> None:
        if self._db is not None:
            if any(self._counters[name] != self._persisted[name] for name in _COUNTERS):
                # counted since the last write that worked (e.g. polls dropped on a full disk): keep them
                with contextlib.suppress(_CannotWrite, sqlite3.Error, OSError):
                    self._write(lambda: None, pressure=True)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

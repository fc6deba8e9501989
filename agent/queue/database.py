"""The disk queue's SQLite database: its schema, how a connection is set up, and what its errors mean.

SQLite in WAL mode with ``synchronous=FULL``; new databases get ``PAGE_SIZE`` pages and
``auto_vacuum=INCREMENTAL`` (free pages can go back to the filesystem); the WAL is checkpointed every
``WAL_CHECKPOINT_PAGES`` pages and cut back to ``WAL_LIMIT_BYTES`` after a checkpoint. A queue file of
an earlier hatang is brought up to the current schema when opened. What the queue does with the
database is in agent/queue/transactions.py.
"""

from __future__ import annotations

import errno
import math
import sqlite3
from dataclasses import dataclass

PAGE_SIZE = 4096  # SQLite's default; new databases are created with it
WAL_CHECKPOINT_PAGES = 64  # checkpoint when the WAL holds this many pages (SQLite's default: 1000, ~4 MiB)
WAL_LIMIT_BYTES = 512 * 1024  # after a checkpoint the WAL file is cut back to this size
AUTO_VACUUM_INCREMENTAL = 2

_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26

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

COUNTERS = ("dropped", "dropped_full", "corrupt_files")  # rows of the `counters` table
PEEK = "SELECT {columns} FROM messages WHERE 1{delivered} ORDER BY id LIMIT ?"
MESSAGE_COLUMNS = "id, created, live_until, device, payload"


class CannotWrite(Exception):
    """Internal: a write failed for want of space (or another I/O error) and was rolled back."""


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and _code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def is_write_failure(exc: BaseException) -> bool:
    """A failed write that must not stop the agent: a full disk, an I/O error, any OperationalError."""
    return isinstance(exc, (sqlite3.OperationalError, OSError)) and not is_corrupt(exc)


def is_space_error(exc: BaseException) -> bool:
    """A full disk or an I/O error (as opposed to a wrong path or permissions)."""
    if isinstance(exc, sqlite3.OperationalError):
        return _code(exc) in (_SQLITE_FULL, _SQLITE_IOERR)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def estimate_pages(payload_len: int, page_size: int) -> int:
    """Pages a new row of this payload takes: a cell on a leaf page or the payload in overflow pages."""
    return max(1, math.ceil((payload_len + 64) / (page_size - 4)))


@dataclass(frozen=True, slots=True)
class DatabaseContents:
    """What an opened database holds, read once when it is opened."""

    page_size: int
    incremental: bool  # auto_vacuum=INCREMENTAL: free pages can go back to the filesystem
    rows: int  # rows in `messages`
    bytes: int  # their payload bytes
    kept: int  # rows in `delivered` that have a message
    next_expiry: float | None  # earliest `until` of those
    counters: dict[str, int]  # the `counters` table


def prepare(db: sqlite3.Connection) -> DatabaseContents:
    """Set up a new connection (pragmas; the schema created, or brought up to date, if needed) and read
    what the database holds. Raises ``sqlite3.DatabaseError`` (see :func:`is_corrupt`) as SQLite does."""
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
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    vacuum = int(db.execute("PRAGMA auto_vacuum").fetchone()[0])
    size, rows = db.execute(
        "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages").fetchone()
    kept, expiry = db.execute(
        "SELECT COUNT(*), MIN(until) FROM delivered WHERE id IN (SELECT id FROM messages)").fetchone()
    found = dict(db.execute("SELECT name, value FROM counters").fetchall())
    return DatabaseContents(
        page_size=page_size, incremental=vacuum == AUTO_VACUUM_INCREMENTAL, rows=int(rows), bytes=int(size),
        kept=int(kept), next_expiry=None if expiry is None else float(expiry),
        counters={name: int(found.get(name, 0)) for name in COUNTERS},
    )

"""The agent's on-disk queue: every poll result is written here first, whether the uplink is up or down.

SQLite in WAL mode with ``synchronous=FULL``: a message appended is on disk (fsync'd) before
``append`` returns, so it survives ``kill -9`` and a power cut. A message leaves the queue only through
``ack`` after the broker acknowledged it. The queue is bounded by bytes and by age; when full it drops
the oldest messages first and counts them.

Each message has a ``live_until`` time (poll time + one interval): until then it is *live* and is sent
first; after that it is *backlog*, drained oldest-first behind the live data (see agent/uplink.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    live_until REAL NOT NULL,
    device TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    created: float
    live_until: float
    device: str  # a device name, or a channel name such as "self" (see agent/service.py)
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    bytes: int
    oldest: float | None  # created time of the oldest message
    dropped: int  # messages dropped by the bounds, over the queue's life


class DiskQueue:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "queue.sqlite3"
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if "live_until" not in columns:  # a queue written by hatang 0.1.0 before live-first draining
            self._db.execute("ALTER TABLE messages ADD COLUMN live_until REAL NOT NULL DEFAULT 0")
        self._db.execute("CREATE INDEX IF NOT EXISTS messages_live_until ON messages (live_until)")
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM messages").fetchone()
        self._bytes, self._depth = int(row[0]), int(row[1])
        found = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        self._dropped = int(found[0]) if found else 0

    def append(self, device: str, payload: bytes, *, live_for: float = 60.0) -> None:
        """Store a message durably; it counts as live for ``live_for`` seconds."""
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO messages (created, live_until, device, payload) VALUES (?, ?, ?, ?)",
                (now, now + live_for, device, payload),
            )
            self._bytes += len(payload)
            self._depth += 1
            self._enforce_bounds(now)

    def _enforce_bounds(self, now: float) -> None:
        dropped = 0
        oldest = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        if oldest is not None and oldest[0] < now - self._max_age:  # rare: only then scan for old rows
            cur = self._db.execute("DELETE FROM messages WHERE created < ? RETURNING LENGTH(payload)",
                                   (now - self._max_age,))
            for (size,) in cur.fetchall():
                self._bytes -= int(size)
                dropped += 1
        while self._bytes > self._max_bytes and self._depth - dropped > 1:
            row = self._db.execute(
                "DELETE FROM messages WHERE id = (SELECT MIN(id) FROM messages) RETURNING LENGTH(payload)"
            ).fetchone()
            if row is None:
                break
            self._bytes -= int(row[0])
            dropped += 1
        if dropped:
            self._depth -= dropped
            self._dropped += dropped
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (self._dropped,),
            )

    def _select(self, where: str, args: tuple[float | int, ...]) -> list[QueuedMessage]:
        rows = self._db.execute(
            f"SELECT id, created, live_until, device, payload FROM messages {where}", args
        ).fetchall()
        return [QueuedMessage(int(r[0]), float(r[1]), float(r[2]), str(r[3]), bytes(r[4])) for r in rows]

    def peek(self, limit: int) -> list[QueuedMessage]:
        """The oldest ``limit`` messages, without removing them."""
        return self._select("ORDER BY id LIMIT ?", (limit,))

    def peek_live(self, now: float, limit: int) -> list[QueuedMessage]:
        """Messages still live at ``now``, oldest first."""
        # INDEXED BY: without it SQLite scans the whole table in id order (slow with a big backlog)
        return self._select("INDEXED BY messages_live_until WHERE live_until >= ? ORDER BY id LIMIT ?",
                            (now, limit))

    def peek_backlog(self, now: float, limit: int) -> list[QueuedMessage]:
        """Messages no longer live at ``now`` (left behind by an outage), oldest first."""
        return self._select("WHERE live_until < ? ORDER BY id LIMIT ?", (now, limit))

    def ack(self, message_ids: list[int]) -> None:
        """Remove messages the broker has acknowledged."""
        if not message_ids:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for message_id in message_ids:
                row = self._db.execute(
                    "DELETE FROM messages WHERE id = ? RETURNING LENGTH(payload)", (message_id,)
                ).fetchone()
                if row is not None:
                    self._bytes -= int(row[0])
                    self._depth -= 1

    def stats(self) -> QueueStats:
        row = self._db.execute("SELECT created FROM messages ORDER BY id LIMIT 1").fetchone()
        return QueueStats(self._depth, self._bytes, row[0] if row else None, self._dropped)

    def close(self) -> None:
        self._db.close()

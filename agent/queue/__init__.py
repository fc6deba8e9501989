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

This package, from the top: ``disk_queue.py`` (:class:`DiskQueue`, the API: append, ack, the peeks,
requeue_delivered, stats), ``recovery.py`` (opening the database, a corrupt file moved aside, the
reserve, write-failure episodes), ``transactions.py`` (one transaction per write, the bounds and the
room check, the bookkeeping kept in memory), ``database.py`` (SQLite: schema, pragmas, what an error
means), ``files.py`` (the buffer directory: permissions, the lock, the reserve and corrupt files) and
``records.py`` (:class:`QueuedMessage`, :class:`QueueStats`). Each imports only the ones after it;
this file only re-exports, and no module of the package imports it.
"""

from agent.queue.database import PAGE_SIZE, WAL_CHECKPOINT_PAGES, WAL_LIMIT_BYTES
from agent.queue.disk_queue import DiskQueue
from agent.queue.files import (
    CORRUPT_MARK,
    DB_NAME,
    KEEP_CORRUPT,
    LOCK_NAME,
    RESERVE_BYTES,
    RESERVE_NAME,
    QueueLocked,
)
from agent.queue.records import QueuedMessage, QueueStats
from agent.queue.recovery import EPISODE_QUIET_SECONDS
from agent.queue.transactions import HEADROOM_BYTES

__all__ = [
    "CORRUPT_MARK",
    "DB_NAME",
    "EPISODE_QUIET_SECONDS",
    "HEADROOM_BYTES",
    "KEEP_CORRUPT",
    "LOCK_NAME",
    "PAGE_SIZE",
    "RESERVE_BYTES",
    "RESERVE_NAME",
    "WAL_CHECKPOINT_PAGES",
    "WAL_LIMIT_BYTES",
    "DiskQueue",
    "QueueLocked",
    "QueueStats",
    "QueuedMessage",
]

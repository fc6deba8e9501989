"""What the disk queue hands out: a queued message, and the queue's numbers."""

from __future__ import annotations

from dataclasses import dataclass


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

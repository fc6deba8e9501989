"""Everything the agent queues goes through here, in sequence order: polls one by one, and traps in
batches, so that a trap storm (a flapping core link makes every access switch send linkDown/linkUp) costs
one disk transaction per batch instead of one per trap (benchmarks/trap_storm.py).

A trap waits at most ``TRAP_BATCH_SECONDS`` (or until ``TRAP_BATCH_MAX`` are waiting) before it is
written with the others; anything else appended meanwhile writes the waiting traps first, so the queue
keeps the order of the sequence numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.queue import DiskQueue
from wire.codec import DEFAULT_LIMITS
from wire.messages import PollBatch

log = logging.getLogger("hatang.agent")

TRAP_BATCH_SECONDS = 0.005
TRAP_BATCH_MAX = 500


class QueueWriter:
    def __init__(self, queue: DiskQueue, notify: Callable[[], None]) -> None:
        self._queue = queue
        self._notify = notify  # the uplink: something new to send
        self._batch: list[bytes] = []
        self._batch_channel = ""
        self._batch_live_for = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def append(self, channel: str, payload: bytes, live_for: float) -> None:
        """Into the disk queue now (after the traps waiting). A queue that cannot write (disk full) loses
        the message; it logs that once per episode and counts it (``dropped_full``), and the collector
        sees the sequence gap."""
        self.flush()
        if self._queue.append(channel, payload, live_for=live_for):
            self._notify()

    def append_batched(self, channel: str, payload: bytes, live_for: float) -> None:
        """Into the disk queue within TRAP_BATCH_SECONDS, together with the others arriving meanwhile."""
        if self._batch and channel != self._batch_channel:
            self.flush()
        self._batch.append(payload)
        self._batch_channel, self._batch_live_for = channel, live_for
        if len(self._batch) >= TRAP_BATCH_MAX:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(TRAP_BATCH_SECONDS, self.flush)
            except RuntimeError:  # no loop (a unit test calling on_trap): at once
                self.flush()

    def flush(self) -> None:
        """Write the waiting traps now (also at a stop, before the goodbye)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if batch and self._queue.append_many(self._batch_channel, batch, live_for=self._batch_live_for):
            self._notify()


__all__ = ["TRAP_BATCH_MAX", "TRAP_BATCH_SECONDS", "QueueWriter"]


class OversizedPolls:
    """Warns, once per device, of a poll over the collector's default limits: rejected there unless they
    were raised (it is still sent: the centre may have raised them)."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def check(self, device: str, payload: bytes, batch: PollBatch) -> None:
        samples = sum(len(f.samples) for f in batch.families)
        if ((len(payload) <= DEFAULT_LIMITS.max_payload_bytes and samples <= DEFAULT_LIMITS.max_samples)
                or device in self.devices):
            return
        self.devices.add(device)
        log.warning("a poll of device %s has %d samples in %d bytes, more than a collector accepts by "
                    "default (%d samples, %d bytes): raise limits.max_samples_per_message and "
                    "max_payload_bytes on the collectors, or poll fewer profiles on this device",
                    device, samples, len(payload), DEFAULT_LIMITS.max_samples,
                    DEFAULT_LIMITS.max_payload_bytes)

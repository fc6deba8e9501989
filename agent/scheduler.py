"""Run every device's poll loop: jittered start, fixed interval, a global concurrency limit.

Each device has its own task, so a slow or dead device never delays the others; a device's polls never
overlap (one request in flight per device).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.poller import DevicePoller, PollOutcome


@dataclass(frozen=True, slots=True)
class ScheduledDevice:
    poller: DevicePoller
    interval: float


class Scheduler:
    def __init__(
        self,
        devices: Sequence[ScheduledDevice],
        *,
        max_concurrent: int,
        on_result: Callable[[str, float, PollOutcome], None],
        max_start_jitter: float = 10.0,
    ) -> None:
        self._devices = list(devices)
        self._limit = asyncio.Semaphore(max_concurrent)
        self._on_result = on_result  # (device name, interval, outcome)
        self._max_start_jitter = max_start_jitter
        self._poll_now = {d.poller.name: asyncio.Event() for d in self._devices}

    def poll_now(self, device: str) -> None:
        """Ask for an immediate extra poll of one device (after a trap, say)."""
        event = self._poll_now.get(device)
        if event is not None:
            event.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for device in self._devices:
                group.create_task(self._loop(device), name=f"poll:{device.poller.name}")

    async def _wait(self, device: ScheduledDevice, until: float) -> None:
        event = self._poll_now[device.poller.name]
        try:
            async with asyncio.timeout(max(0.0, until - time.monotonic())):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    async def _loop(self, device: ScheduledDevice) -> None:
        interval = device.interval
        next_at = time.monotonic() + random.uniform(0, min(interval, self._max_start_jitter))
        while True:
            await self._wait(device, next_at)
            async with self._limit:
                outcome = await device.poller.poll()
            self._on_result(device.poller.name, interval, outcome)
            now = time.monotonic()
            if now >= next_at:  # a scheduled poll, not an extra one: move to the next slot
                next_at += interval
                if next_at < now:  # the poll overran: keep the phase, skip the missed slots
                    next_at += ((now - next_at) // interval + 1) * interval

"""Run every device's poll loop: jittered start, fixed interval, a global concurrency limit.

Each device has its own task, so a slow or dead device never delays the others; a device's polls never
overlap (one request in flight per device). :meth:`Scheduler.update` adds, replaces and removes devices
while it runs (a configuration from the centre): the loops of the devices it does not touch go on as
they were, without a missed or an extra poll.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Collection, Sequence
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
        self._devices = {d.poller.name: d for d in devices}
        self._limit = asyncio.Semaphore(max_concurrent)
        self._on_result = on_result  # (device name, interval, outcome)
        self._max_start_jitter = max_start_jitter
        self._poll_now = {name: asyncio.Event() for name in self._devices}
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def devices(self) -> dict[str, ScheduledDevice]:
        return dict(self._devices)

    def update(self, devices: Sequence[ScheduledDevice], replace: Collection[str] = (), *,
               max_concurrent: int | None = None) -> None:
        """Poll ``devices`` from now on: a device not in it stops (its poll in flight is cancelled), a
        new one starts (with the usual start jitter), one named in ``replace`` starts again with its new
        poller; the others go on untouched. ``max_concurrent``: a new global limit (polls in flight keep
        their place under the old one)."""
        if max_concurrent is not None:
            self._limit = asyncio.Semaphore(max_concurrent)
        wanted = {d.poller.name: d for d in devices}
        for name in [n for n in self._devices if n not in wanted or n in replace]:
            del self._devices[name]
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
        for name, device in wanted.items():
            if name not in self._devices:
                self._devices[name] = device
                self._poll_now.setdefault(name, asyncio.Event())
                self._start(device)
        for name in [n for n in self._poll_now if n not in wanted]:
            del self._poll_now[name]

    def _start(self, device: ScheduledDevice) -> None:
        if self._group is not None:
            task = self._group.create_task(self._loop(device), name=f"poll:{device.poller.name}")
            self._tasks[device.poller.name] = task
            task.add_done_callback(functools.partial(self._forget, device.poller.name))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]

    def poll_now(self, device: str) -> None:
        """Ask for an immediate extra poll of one device (after a trap, say)."""
        event = self._poll_now.get(device)
        if event is not None:
            event.set()

    async def run(self) -> None:
        """Poll until cancelled (with no device too: :meth:`update` may add some)."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for device in self._devices.values():
                self._start(device)
            await asyncio.Event().wait()

    async def _wait(self, device: ScheduledDevice, until: float) -> None:
        event = self._poll_now.setdefault(device.poller.name, asyncio.Event())
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

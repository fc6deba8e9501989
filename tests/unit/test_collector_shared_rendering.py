"""/metrics renders once for many scrapers and keeps few renderings alive (collector/http.py)."""

from __future__ import annotations

import asyncio

import pytest

from collector.http import MAX_AGE, MAX_GENERATIONS, MIN_SHARE, SharedRendering


class Rig:
    def __init__(self) -> None:
        self.now = 0.0
        self.version = 0
        self.renders = 0
        self.shared = SharedRendering(self.render, lambda: self.version, clock=lambda: self.now)

    def render(self) -> bytes:
        self.renders += 1
        return b"page %d" % self.renders


def test_concurrent_scrapers_share_one_rendering() -> None:
    rig = Rig()
    bodies = {id(rig.shared.current().body) for _ in range(50)}
    assert rig.renders == 1 and len(bodies) == 1


def test_a_change_renders_again_after_the_short_window_only() -> None:
    rig = Rig()
    first = rig.shared.current()
    rig.version += 1
    assert rig.shared.current() is first  # within MIN_SHARE: shared even though the store changed
    rig.now += MIN_SHARE
    assert rig.shared.current() is not first
    assert rig.renders == 2


def test_without_a_change_a_rendering_is_reused_until_max_age() -> None:
    rig = Rig()
    first = rig.shared.current()
    rig.now += MAX_AGE - 0.01
    assert rig.shared.current() is first
    rig.now += 0.01
    assert rig.shared.current() is not first


@pytest.mark.asyncio
async def test_at_most_max_generations_are_alive_the_oldest_readers_are_cut() -> None:
    rig = Rig()
    readers: list[asyncio.Task[None]] = []
    for _ in range(MAX_GENERATIONS + 2):
        rendering = rig.shared.current()
        task = asyncio.create_task(asyncio.sleep(3600))  # a slow reader still sending this rendering
        rendering.readers.add(task)
        readers.append(task)
        rig.version += 1
        rig.now += MAX_AGE
    await asyncio.sleep(0)
    alive = [t for t in readers if not t.cancelled()]
    assert len(alive) <= MAX_GENERATIONS
    assert readers[0].cancelled() and readers[1].cancelled()
    assert len(rig.shared._alive) <= MAX_GENERATIONS
    for task in readers:
        task.cancel()

"""Poll one device: every profile under one deadline; report up/down on transitions only.

Per device the poller keeps two kinds of state between polls:

- label cache: the slow columns of each table (labels such as ifName/ifAlias/hrStorageDescr, and helper
  columns such as hrStorageAllocationUnits or a sensor's scale) are walked on their own, longer cadence
  (every ``label_refresh_polls`` polls or ``label_refresh_seconds``, whichever comes first), and at once
  when the set of row indices changes or a reboot is detected; regular polls walk only metric columns.
- uptime: the last sysUpTime reading of a profile with an ``uptime:`` block, for boot time and reboot
  detection (pure arithmetic in :mod:`agent.uptime`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent import mapping
from agent.profiles import Profile, TableSpec, UptimeSpec
from agent.uptime import Epoch, UptimeState, observe
from agent.varbind import OID, SnmpValue
from wire.messages import Family, ProfileError

log = logging.getLogger("hatang.agent.poller")
GET_CHUNK = 16  # OIDs per GET when reading single fallback cells


class SnmpReader(Protocol):
    """What the poller needs from an SNMP client (agent.snmp.SnmpTarget, or a fake in unit tests)."""

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]: ...

    async def walk(self, root: OID, *, max_rows: int = ...) -> list[tuple[OID, SnmpValue]]: ...


class DeviceNotAnswering(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PollOutcome:
    ts: float  # unix time the poll started
    up: bool
    duration: float
    errors: tuple[ProfileError, ...]
    families: tuple[Family, ...]


@dataclass
class _LabelCache:
    slow: dict[OID, dict[str, SnmpValue]]  # slow column -> {row index: value}
    indices: frozenset[str]  # metric row indices when the slow columns were read
    read_at: float  # monotonic time of that read
    polls: int = 0  # polls that reused it since


@dataclass
class _Progress:
    answered: bool = False
    families: list[Family] = field(default_factory=list)
    errors: list[ProfileError] = field(default_factory=list)


class DevicePoller:
    def __init__(
        self,
        name: str,
        reader: SnmpReader,
        profiles: Sequence[Profile],
        *,
        deadline: float,
        timeout_errors: tuple[type[Exception], ...] = (),
        snmp_errors: tuple[type[Exception], ...] = (Exception,),
        max_rows: int = 100_000,
        label_refresh_polls: int = 10,
        label_refresh_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if label_refresh_polls < 1 or label_refresh_seconds < 0:
            raise ValueError("label_refresh_polls must be >= 1 and label_refresh_seconds >= 0")
        self.name = name
        self._reader = reader
        self._profiles = list(profiles)
        self._deadline = deadline
        self._timeout_errors = timeout_errors  # errors that mean "the device does not answer at all"
        self._snmp_errors = snmp_errors
        self._max_rows = max_rows
        self._refresh_polls = label_refresh_polls
        self._refresh_seconds = label_refresh_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._was_up: bool | None = None
        self._caches: dict[tuple[int, int], _LabelCache] = {}  # (profile, table) position -> cache
        self._plans: dict[tuple[int, int], mapping.TablePlan] = {}
        self._uptime: UptimeState | None = None

    @property
    def uptime_state(self) -> UptimeState | None:
        """The last uptime reading with the derived boot time and reboot count (None before one)."""
        return self._uptime

    async def poll(self) -> PollOutcome:
        started, t0 = self._clock(), self._monotonic()
        progress = _Progress()
        try:
            async with asyncio.timeout(self._deadline):
                for position, profile in enumerate(self._profiles):
                    try:
                        progress.families.extend(await self._poll_profile(position, profile, progress))
                    except DeviceNotAnswering as exc:
                        progress.errors.append(ProfileError(profile.name, str(exc)))
                        break
                    except self._snmp_errors as exc:
                        progress.errors.append(ProfileError(profile.name, str(exc) or type(exc).__name__))
        except TimeoutError:
            progress.errors.append(ProfileError("*", f"poll deadline of {self._deadline:g}s exceeded"))
        self._log_transition(progress)
        return PollOutcome(started, progress.answered, self._monotonic() - t0,
                           tuple(progress.errors), tuple(progress.families))

    async def _get(self, oids: Sequence[OID], progress: _Progress) -> dict[OID, SnmpValue]:
        try:
            result = await self._reader.get(oids)
        except self._timeout_errors as exc:
            raise DeviceNotAnswering(str(exc)) from exc
        progress.answered = True
        return dict(result)

    async def _walk(self, column: OID, progress: _Progress) -> dict[str, SnmpValue]:
        try:
            result = await self._reader.walk(column, max_rows=self._max_rows)
        except self._timeout_errors as exc:
            raise DeviceNotAnswering(str(exc)) from exc
        progress.answered = True
        return mapping.rows_by_index(column, result)

    async def _poll_profile(self, position: int, profile: Profile, progress: _Progress) -> list[Family]:
        families: list[Family] = []
        oids = profile.scalar_oids()
        if oids:
            wall0, mono0 = self._clock(), self._monotonic()
            values = await self._get(oids, progress)
            wall, mono = (wall0 + self._clock()) / 2, (mono0 + self._monotonic()) / 2
            if profile.uptime is not None:
                families.extend(self._observe_uptime(profile.uptime, values, wall, mono))
            families.extend(mapping.map_scalars(profile, values, epoch=self._epoch()))
        for number, table in enumerate(profile.tables):
            families.extend(await self._poll_table((position, number), table, progress))
        return mapping.merge_families(families)

    def _epoch(self) -> Epoch | None:
        return None if self._uptime is None else Epoch.of(self._uptime)

    def _observe_uptime(self, spec: UptimeSpec, values: dict[OID, SnmpValue], wall: float, mono: float
                        ) -> list[Family]:
        seconds = mapping.uptime_seconds(spec, values)
        if seconds is None:
            return []
        self._uptime, rebooted = observe(self._uptime, seconds, wall=wall, mono=mono)
        if rebooted:
            log.info("device %s restarted (sysUpTime went back to %.0f s); refreshing labels", self.name,
                     seconds)
            self._caches.clear()  # ifIndex and friends may have been renumbered
        return mapping.map_uptime(spec, self._uptime)

    def _cache_is_fresh(self, cache: _LabelCache, indices: frozenset[str]) -> bool:
        return (cache.indices == indices and cache.polls + 1 < self._refresh_polls
                and self._monotonic() - cache.read_at < self._refresh_seconds)

    async def _read_fallbacks(self, plan: mapping.TablePlan, columns: dict[OID, dict[str, SnmpValue]],
                              progress: _Progress) -> None:
        """Fallback columns (e.g. 32-bit counters under HC ones): walked where the primary column is empty;
        where it only lacks some rows that other columns have, just those cells are read with GETs."""
        rows = {index for column, _ in plan.metric_columns for index in columns[column]}
        cells: list[tuple[OID, str]] = []
        for column, fallback in plan.metric_columns:
            if fallback is None:
                continue
            if not columns[column]:
                columns[fallback] = await self._walk(fallback, progress)
            else:
                cells.extend((fallback, index) for index in sorted(rows - columns[column].keys()))
        for start in range(0, len(cells), GET_CHUNK):
            chunk = cells[start:start + GET_CHUNK]
            oids = [(*fallback, *map(int, index.split("."))) for fallback, index in chunk]
            values = await self._get(oids, progress)
            for (fallback, index), oid in zip(chunk, oids, strict=True):
                if oid in values:
                    columns.setdefault(fallback, {})[index] = values[oid]

    async def _poll_table(self, key: tuple[int, int], table: TableSpec, progress: _Progress) -> list[Family]:
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = mapping.table_plan(table)
        columns: dict[OID, dict[str, SnmpValue]] = {}
        for column in (*(c for c, _ in plan.metric_columns), *plan.filter_columns):
            columns[column] = await self._walk(column, progress)
        await self._read_fallbacks(plan, columns, progress)
        indices = mapping.row_indices(table, columns)
        cache = self._caches.get(key)
        if cache is not None and self._cache_is_fresh(cache, indices):
            cache.polls += 1
        else:
            read_at = self._monotonic()
            slow = {}
            if indices:  # an absent table needs no labels
                for column in plan.slow_columns:
                    slow[column] = await self._walk(column, progress)
            cache = self._caches[key] = _LabelCache(slow, indices, read_at)
        return mapping.map_table(table, {**cache.slow, **columns}, epoch=self._epoch())

    def _log_transition(self, progress: _Progress) -> None:
        if progress.answered == self._was_up:
            return
        if progress.answered:
            log.info("device %s is answering", self.name)
        else:
            reason = progress.errors[0].error if progress.errors else "no answer"
            log.warning("device %s is not answering: %s", self.name, reason)
        self._was_up = progress.answered

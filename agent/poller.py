"""Poll one device: every profile under one deadline; report up/down on transitions only.

Per device the poller keeps two kinds of state between polls:

- label cache: the slow columns of each table (labels such as ifName/ifAlias, helpers such as a sensor's
  scale), with the row label sets made of them, are walked every ``label_refresh_polls`` polls or
  ``label_refresh_seconds`` (whichever first), and at once when the row indices change or a reboot is
  seen; regular polls walk only metric columns.
- uptime: the last sysUpTime reading of a profile with an ``uptime:`` block, for boot time and reboot
  detection (pure arithmetic in :mod:`agent.uptime`).
- counter sanity: each interface's last byte and packet counters and speed, to count (in
  ``hatang_interface_counter_jumps_total``, published with each poll) and log once the counters that
  grew by more than the interface's speed allows (pure logic in :mod:`agent.counter_sanity`).
- problem counts: every problem a poll reports, by reason (:data:`wire.messages.ERROR_REASONS`), published
  with each poll as ``hatang_device_poll_errors_total{reason}``; (metric, column) pairs already logged.

A device with ``profiles: auto`` has a ``selection`` (agent/profile_selection.py): before its first
poll's reads, and after a poll saw its sysObjectID change, the poller identifies the device and polls
the profiles chosen for it; a device that does not answer identification is down and is identified at
its next poll. ``PollOutcome.profiles`` names the profiles a poll used.

What a poll reports besides its samples (``PollOutcome.errors``, each with a reason): a profile that
failed (the SNMP error's reason: timeout, auth, wrong_oid, not_increasing, ...), a profile that returned
nothing although the device answered (empty_profile: it probably lacks that MIB), values that could not
be used (bad_value: a type that is not a number, a reading outside the MIB's range), and a poll that ran
out of time (deadline), which still publishes every table it completed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent import mapping
from agent.counter_sanity import CounterSanity, log_message
from agent.critical import compile_patterns, critical_family
from agent.profiles import POLL_ERRORS_METRIC, Profile, TableSpec, UptimeSpec
from agent.snmp.values import OID, SnmpValue, oids_text
from agent.uptime import Epoch, UptimeState, observe
from wire.messages import ERROR_REASONS, Family, Labels, ProfileError, Sample

log = logging.getLogger("hatang.agent.poller")
GET_CHUNK = 16  # OIDs per GET when reading single fallback cells


class SnmpReader(Protocol):
    """What the poller needs from an SNMP client (agent.snmp.target.SnmpTarget, or a fake in unit tests)."""

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]: ...

    async def walk(self, root: OID, *, max_rows: int = ...) -> list[tuple[OID, SnmpValue]]: ...

    # walk of each root, side by side (several columns of a table per request); the i-th list is roots[i]'s
    async def walk_columns(self, roots: Sequence[OID], *, max_rows: int = ...
                           ) -> list[list[tuple[OID, SnmpValue]]]: ...

    # one GETNEXT; None at the end of the MIB view (used only to identify a device with profiles: auto)
    async def get_next(self, oid: OID) -> tuple[OID, SnmpValue] | None: ...


class ProfileSelection(Protocol):
    """A device's profiles chosen by the device itself (``profiles: auto``): agent.profile_selection's
    AutoProfiles, or a fake in unit tests."""

    @property
    def stale(self) -> bool: ...  # identify before reading: never identified, or the sysObjectID changed

    def profiles(self) -> list[Profile]: ...  # the chosen profiles, in poll order

    async def identify(self, reader: SnmpReader) -> bool: ...  # True when the choice changed

    def observe(self, values: Mapping[OID, SnmpValue]) -> None: ...  # a poll's GET result


class DeviceNotAnswering(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


BAD_VALUES_SHOWN = 3  # unusable values described in a poll's error; the rest are counted


@dataclass(frozen=True, slots=True)
class PollOutcome:
    ts: float  # unix time the poll started
    up: bool
    duration: float
    errors: tuple[ProfileError, ...]
    families: tuple[Family, ...]
    problems: tuple[tuple[str, int], ...] = ()  # the poller's problem counts by reason, after this poll
    profiles: tuple[str, ...] = ()  # the profiles polled, in order (auto: () until the device is identified)
    counter_jumps: Family | None = None  # hatang_interface_counter_jumps_total (agent.counter_sanity)

    @property
    def published(self) -> tuple[Family, ...]:
        """What a poll batch carries: the families, hatang_interface_counter_jumps_total when the poll read
        interface counters, then hatang_device_poll_errors_total."""
        jumps = (self.counter_jumps,) if self.counter_jumps is not None else ()
        return self.families + jumps + ((problem_family(self.problems),) if self.problems else ())


def problem_family(problems: Sequence[tuple[str, int]]) -> Family:
    return Family(POLL_ERRORS_METRIC, "counter",
                  "Problems reported by this device's polls since the agent started, by reason "
                  "(docs/metrics.md): timeout, auth, wrong_oid, not_increasing, empty_profile, bad_value, "
                  "deadline, ...",
                  tuple(Sample((("reason", reason),), count) for reason, count in problems))


@dataclass
class _LabelCache:
    slow: dict[OID, dict[str, SnmpValue]]  # slow column -> {row index: value}
    indices: frozenset[str]  # metric row indices when the slow columns were read
    read_at: float  # monotonic time of that read
    polls: int = 0  # polls that reused it since
    row_labels: dict[str, Labels] = field(default_factory=dict)  # each row's label set (map_table)


@dataclass
class _Progress:
    answered: bool = False
    families: list[Family] = field(default_factory=list)  # of completed scalars and tables
    errors: list[ProfileError] = field(default_factory=list)
    doing: str = "the first request"  # what is being read now, for the deadline message


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
        deadline_hint: str = "",
        critical_interfaces: Sequence[str] = (),
        selection: ProfileSelection | None = None,
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
        self._deadline_hint = deadline_hint  # appended to the deadline error (e.g. "use v2c")
        self._problems = dict.fromkeys(ERROR_REASONS, 0)  # since the agent started, by reason
        self._bad_logged: set[tuple[str, OID]] = set()  # (metric, OID) whose unusable value was logged
        self._critical = compile_patterns(critical_interfaces)  # hatang_interface_critical (agent.critical)
        self._critical_known: dict[Labels, bool] = {}  # its verdicts per interface label set, kept
        self._selection = selection  # profiles: auto (then `profiles` is ignored until identified)
        self._sanity = CounterSanity()  # interface counters that jumped beyond the speed
        if selection is not None:
            self._profiles = selection.profiles()

    @property
    def uptime_state(self) -> UptimeState | None:
        """The last uptime reading with the derived boot time and reboot count (None before one)."""
        return self._uptime

    @property
    def problem_counts(self) -> dict[str, int]:
        """Problems reported since the agent started, by reason (hatang_device_poll_errors_total)."""
        return dict(self._problems)

    @property
    def selection(self) -> ProfileSelection | None:
        """The automatic choice of profiles of a device with ``profiles: auto``; None for a listed set."""
        return self._selection

    async def poll(self) -> PollOutcome:
        started, t0 = self._clock(), self._monotonic()
        progress = _Progress()
        try:
            async with asyncio.timeout(self._deadline):
                if await self._select_profiles(progress):
                    await self._poll_profiles(progress)
        except TimeoutError:
            progress.errors.append(ProfileError(
                "*", f"poll deadline of {self._deadline:g}s exceeded while reading {progress.doing}; "
                     "published what completed (whole tables)" + self._deadline_hint, "deadline"))
        self._log_transition(progress)
        for error in progress.errors:
            if error.reason != "bad_value":  # counted per value, in _note_bad
                self._problems[error.reason] = self._problems.get(error.reason, 0) + 1
        families = mapping.merge_families(progress.families)
        critical = critical_family(families, self._critical, self._critical_known)
        if critical is not None:
            families.append(critical)
        finished = self._monotonic()
        sanity = self._sanity.check(families, started=t0, finished=finished)
        for labels, jumps in sanity.to_log:
            log.warning("%s", log_message(self.name, labels, jumps, self._sanity.quiet_seconds))
        return PollOutcome(started, progress.answered, finished - t0, tuple(progress.errors),
                           tuple(families), tuple(self._problems.items()),
                           tuple(p.name for p in self._profiles), sanity.family)

    async def _select_profiles(self, progress: _Progress) -> bool:
        """``profiles: auto``: identify the device when it is new or its sysObjectID changed. False when
        that failed (the error is the poll's, for the whole poll): nothing else is read this time."""
        selection = self._selection
        if selection is None or not selection.stale:
            return True
        progress.doing = "the device's identity (sysObjectID, sysDescr, the tables it answers)"
        try:
            changed = await selection.identify(self._reader)
        except self._timeout_errors as exc:
            progress.errors.append(ProfileError("*", str(exc), getattr(exc, "reason", "timeout")))
            return False
        except self._snmp_errors as exc:
            progress.errors.append(ProfileError("*", str(exc) or type(exc).__name__,
                                                getattr(exc, "reason", "snmp_error")))
            return False
        progress.answered = True
        if changed:  # caches and plans are kept by profile position
            self._profiles = selection.profiles()
            self._caches.clear()
            self._plans.clear()
        return True

    async def _poll_profiles(self, progress: _Progress) -> None:
        for position, profile in enumerate(self._profiles):
            before = len(progress.families)
            try:
                await self._poll_profile(position, profile, progress)
            except DeviceNotAnswering as exc:
                progress.errors.append(ProfileError(profile.name, str(exc), exc.reason))
                break
            except self._snmp_errors as exc:
                progress.errors.append(ProfileError(profile.name, str(exc) or type(exc).__name__,
                                                    getattr(exc, "reason", "snmp_error")))
                continue
            if len(progress.families) == before:
                progress.errors.append(_empty(profile))

    def _note_bad(self, profile: Profile, bad: list[mapping.BadValue], progress: _Progress) -> None:
        """Unusable values: one error per profile and poll (a few described, all counted), logged once
        per device, metric and column."""
        if not bad:
            return
        self._problems["bad_value"] += len(bad)
        for item in bad:
            if (item.metric, item.oid) not in self._bad_logged:
                self._bad_logged.add((item.metric, item.oid))
                log.warning("device %s sent a value that cannot be used: %s (logged once per column)",
                            self.name, item.describe())
        shown = "; ".join(item.describe() for item in bad[:BAD_VALUES_SHOWN])
        more = f"; and {len(bad) - BAD_VALUES_SHOWN} more" if len(bad) > BAD_VALUES_SHOWN else ""
        progress.errors.append(ProfileError(
            profile.name, f"{len(bad)} value(s) could not be used and were left out: {shown}{more}",
            "bad_value"))

    async def _get(self, oids: Sequence[OID], progress: _Progress) -> dict[OID, SnmpValue]:
        try:
            result = await self._reader.get(oids)
        except self._timeout_errors as exc:
            raise DeviceNotAnswering(str(exc), getattr(exc, "reason", "timeout")) from exc
        progress.answered = True
        return dict(result)

    async def _walk_columns(self, columns: Sequence[OID], progress: _Progress
                            ) -> dict[OID, dict[str, SnmpValue]]:
        """The columns' rows by index, the columns read side by side (a few requests for a whole table)."""
        try:
            result = await self._reader.walk_columns(columns, max_rows=self._max_rows)
        except self._timeout_errors as exc:
            raise DeviceNotAnswering(str(exc), getattr(exc, "reason", "timeout")) from exc
        progress.answered = True
        return {column: mapping.rows_by_index(column, rows)
                for column, rows in zip(columns, result, strict=True)}

    async def _poll_profile(self, position: int, profile: Profile, progress: _Progress) -> None:
        """Read a profile; its scalars, then each table, join ``progress.families`` as they complete."""
        bad: list[mapping.BadValue] = []
        try:
            oids = profile.scalar_oids()
            if oids:
                progress.doing = f"profile {profile.name} (scalars)"
                wall0, mono0 = self._clock(), self._monotonic()
                values = await self._get(oids, progress)
                wall, mono = (wall0 + self._clock()) / 2, (mono0 + self._monotonic()) / 2
                if self._selection is not None:
                    self._selection.observe(values)  # another sysObjectID: identify again next poll
                if profile.uptime is not None:
                    progress.families.extend(self._observe_uptime(profile.uptime, values, wall, mono))
                progress.families.extend(mapping.map_scalars(profile, values, epoch=self._epoch(), bad=bad))
            for number, table in enumerate(profile.tables):
                progress.families.extend(await self._poll_table((position, number), profile, table,
                                                                progress, bad))
        finally:
            self._note_bad(profile, bad, progress)

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
            self._sanity.forget()  # its counters started again: not compared with the old ones
        return mapping.map_uptime(spec, self._uptime)

    def _cache_is_fresh(self, cache: _LabelCache, indices: frozenset[str]) -> bool:
        return (cache.indices == indices and cache.polls + 1 < self._refresh_polls
                and self._monotonic() - cache.read_at < self._refresh_seconds)

    async def _read_fallbacks(self, plan: mapping.TablePlan, columns: dict[OID, dict[str, SnmpValue]],
                              progress: _Progress) -> None:
        """Fallback columns (e.g. 32-bit counters under HC ones): walked where the primary column is empty;
        where it only lacks some rows that other columns have (or reads 0 in them, for fallbacks used
        ``when_primary_zero``), just those cells are read with GETs."""
        rows = {index for column, _ in plan.metric_columns for index in columns[column]}
        cells: list[tuple[OID, str]] = []
        for column, fallback in plan.metric_columns:
            if fallback is None:
                continue
            if not columns[column]:
                columns.update(await self._walk_columns((fallback,), progress))
                continue
            wanted = rows - columns[column].keys()
            if column in plan.zero_fallbacks:
                wanted |= {index for index, value in columns[column].items() if mapping.numeric(value) == 0}
            cells.extend((fallback, index) for index in sorted(wanted))
        for start in range(0, len(cells), GET_CHUNK):
            chunk = cells[start:start + GET_CHUNK]
            oids = [(*fallback, *map(int, index.split("."))) for fallback, index in chunk]
            values = await self._get(oids, progress)
            for (fallback, index), oid in zip(chunk, oids, strict=True):
                if oid in values:
                    columns.setdefault(fallback, {})[index] = values[oid]

    async def _poll_table(self, key: tuple[int, int], profile: Profile, table: TableSpec, progress: _Progress,
                          bad: list[mapping.BadValue]) -> list[Family]:
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = mapping.table_plan(table)
        where = f"profile {profile.name}, table {table.name}"
        walked = plan.walked_columns
        progress.doing = f"{where} (column{'s' if len(walked) > 1 else ''} {oids_text(walked)})"
        columns = await self._walk_columns(walked, progress)
        progress.doing = f"{where} (fallback and label columns)"
        await self._read_fallbacks(plan, columns, progress)
        indices = mapping.row_indices(table, columns)
        cache = self._caches.get(key)
        if cache is not None and self._cache_is_fresh(cache, indices):
            cache.polls += 1
        else:
            read_at = self._monotonic()
            slow = {}
            if indices and plan.slow_columns:  # an absent table needs no labels
                slow = await self._walk_columns(plan.slow_columns, progress)
            cache = self._caches[key] = _LabelCache(slow, indices, read_at)
        return mapping.map_table(table, {**cache.slow, **columns}, epoch=self._epoch(), bad=bad,
                                 row_labels=cache.row_labels if plan.steady_labels else None)

    def _log_transition(self, progress: _Progress) -> None:
        """Log up<->down changes only; the reason of a down is the first error."""
        if progress.answered == self._was_up:
            return
        if progress.answered:
            log.info("device %s is answering", self.name)
        else:
            reason = progress.errors[0].error if progress.errors else "no answer"
            log.warning("device %s is not answering: %s", self.name, reason)
        self._was_up = progress.answered


def _empty(profile: Profile) -> ProfileError:
    about = f" ({profile.description})" if profile.description else ""
    return ProfileError(profile.name, f"returned no data although the device answered: it probably does not "
                        f"implement the MIB(s) of profile {profile.name}{about}; remove the profile from "
                        "this device if so", "empty_profile")

"""Poll one device: every profile under one deadline; report up/down on transitions only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent import mapping
from agent.profiles import Profile
from agent.varbind import OID, SnmpValue
from wire.messages import Family, ProfileError

log = logging.getLogger("hatang.agent.poller")


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
    ) -> None:
        self.name = name
        self._reader = reader
        self._profiles = list(profiles)
        self._deadline = deadline
        self._timeout_errors = timeout_errors  # errors that mean "the device does not answer at all"
        self._snmp_errors = snmp_errors
        self._max_rows = max_rows
        self._was_up: bool | None = None

    async def poll(self) -> PollOutcome:
        started, t0 = time.time(), time.monotonic()
        progress = _Progress()
        try:
            async with asyncio.timeout(self._deadline):
                for profile in self._profiles:
                    try:
                        progress.families.extend(await self._poll_profile(profile, progress))
                    except DeviceNotAnswering as exc:
                        progress.errors.append(ProfileError(profile.name, str(exc)))
                        break
                    except self._snmp_errors as exc:
                        progress.errors.append(ProfileError(profile.name, str(exc) or type(exc).__name__))
        except TimeoutError:
            progress.errors.append(ProfileError("*", f"poll deadline of {self._deadline:g}s exceeded"))
        self._log_transition(progress)
        return PollOutcome(started, progress.answered, time.monotonic() - t0,
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

    async def _poll_profile(self, profile: Profile, progress: _Progress) -> list[Family]:
        families: list[Family] = []
        oids = profile.scalar_oids()
        if oids:
            families.extend(mapping.map_scalars(profile, await self._get(oids, progress)))
        for table in profile.tables:
            columns: dict[OID, dict[str, SnmpValue]] = {}
            for column, fallback in mapping.table_columns(table):
                columns[column] = await self._walk(column, progress)
                if fallback is not None and not columns[column]:
                    columns[fallback] = await self._walk(fallback, progress)
            families.extend(mapping.map_table(table, columns))
        return families

    def _log_transition(self, progress: _Progress) -> None:
        if progress.answered == self._was_up:
            return
        if progress.answered:
            log.info("device %s is answering", self.name)
        else:
            reason = progress.errors[0].error if progress.errors else "no answer"
            log.warning("device %s is not answering: %s", self.name, reason)
        self._was_up = progress.answered

"""Planned-maintenance windows and the dates people type: the model shared by ``hatang maintenance`` and
``hatang report``. Pure: no I/O (the file is :mod:`hatang.availability.maintenance_file`).

A window covers one office (``site``: the agent id, as the inventory and the ``agent`` label name it) or
one device or link of it (``device``: the device or probe name). Its time is the half-open interval
``[start, end)`` in aware datetimes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"
# Vietnam has kept UTC+7 without daylight saving since 1975: the fallback where no tz database exists.
_FIXED = {DEFAULT_ZONE: timezone(timedelta(hours=7), "ICT")}


class TimeFormatError(ValueError):
    """A date or time a person typed that cannot be read; ``str()`` says what is accepted."""


def zone(name: str = DEFAULT_ZONE) -> tzinfo:
    """The named time zone (the tz database), or UTC+7 for Asia/Ho_Chi_Minh on a system without one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if name in _FIXED:
            return _FIXED[name]
        raise TimeFormatError(f"unknown time zone {name!r} (e.g. Asia/Ho_Chi_Minh, UTC)") from exc


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ACCEPTED = ("YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', YYYY-MM-DDTHH:MM[:SS] or either with a UTC offset "
            "(+07:00, Z)")


def parse_time(text: str, tz: tzinfo, *, end_of_day: bool = False) -> datetime:
    """A date or date-time as typed. Without an offset it is read in ``tz``. A bare date is the start of
    that day, or with ``end_of_day`` the start of the next one (so ``--to 2026-11-30`` includes the 30th).
    """
    value = text.strip()
    if _DATE.fullmatch(value):
        day = date.fromisoformat(value)
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), tz)
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError as exc:
        raise TimeFormatError(f"cannot read the time {text!r}: use {ACCEPTED}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def format_time(moment: datetime, tz: tzinfo) -> str:
    """``2026-11-03 08:15`` in ``tz`` (seconds only when they are not zero)."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: str  # short, unique in its file: what `hatang maintenance remove` takes
    site: str  # the office's agent id
    start: datetime  # aware
    end: datetime  # aware, after start
    reason: str
    device: str | None = None  # None: the whole office (its connection, devices and links)
    created_by: str = ""
    created_at: datetime | None = None
    silence_id: str | None = None  # the Alertmanager silence created with it, if any

    def covers(self, agent: str, device: str | None) -> bool:
        """Whether the window applies to this office (``device`` None) or to this device/link of it."""
        if agent != self.site:
            return False
        return self.device is None or self.device == device

    def overlap_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end)`` inside the window."""
        return max(0.0, (min(end, self.end) - max(start, self.start)).total_seconds())

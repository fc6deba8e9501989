"""``hatang maintenance add|list|remove``: planned-maintenance windows and their Alertmanager silences.

A window is kept in the maintenance file (:mod:`hatang.availability.maintenance_file`, default
``/var/lib/hatang/maintenance.yaml``), which ``hatang report`` reads to leave maintenance out of
availability; with an Alertmanager URL, ``add`` also creates the matching silence
(:mod:`hatang.availability.silences`) and ``remove`` expires it. ``add`` creates the silence first and
writes the file second; when the file cannot be written the silence is expired again, so no silence is
left without its window. Exit codes: 0 done, 1 operational failure (Alertmanager, or the file could not be
written), 2 usage or file-content error (file untouched).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from hatang.availability.maintenance_file import (
    MaintenanceFile,
    label_value_problem,
    read_maintenance_file,
    update,
)
from hatang.availability.silences import AlertmanagerClient, AlertmanagerError
from hatang.availability.windows import (
    DEFAULT_ZONE,
    MaintenanceWindow,
    TimeFormatError,
    format_time,
    parse_time,
    zone,
)
from hatang.config_errors import ConfigError
from wire.topics import is_agent_id, is_device_name

DEFAULT_FILE = Path("/var/lib/hatang/maintenance.yaml")
FILE_VARIABLE = "HATANG_MAINTENANCE_FILE"
URL_VARIABLE = "HATANG_ALERTMANAGER_URL"
MAX_DAYS = 31
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
WHOLE_OFFICE = "(cả văn phòng)"
STATES = {"upcoming": "sắp tới", "active": "đang diễn ra", "over": "đã kết thúc"}
_PROG = "hatang maintenance"


class _UsageError(Exception):
    """A command line that cannot be carried out as given (exit 2)."""


@dataclass(frozen=True, slots=True)
class _Settings:
    path: Path
    tz: tzinfo
    tz_name: str
    client: AlertmanagerClient | None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``maintenance`` with its subcommands ``add``, ``list`` and ``remove`` to ``hatang``."""
    parser = sub.add_parser("maintenance", help="planned-maintenance windows and their Alertmanager silences",
                            description="Planned-maintenance windows: kept in the maintenance file (which "
                                        "`hatang report` leaves out of availability) and silenced in "
                                        "Alertmanager. Exit codes: 0 done, 1 Alertmanager or file write "
                                        "failed, 2 bad options or maintenance file.")
    commands = parser.add_subparsers(dest="maintenance_command", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--file", help=f"the maintenance file (default: ${FILE_VARIABLE}, else "
                                      f"{DEFAULT_FILE})")
    where.add_argument("--tz", default=DEFAULT_ZONE,
                       help="time zone of times given without an offset, and of the times shown "
                            "(default %(default)s)")
    am = argparse.ArgumentParser(add_help=False)
    am.add_argument("--alertmanager", metavar="URL",
                    help=f"Alertmanager to create/expire the silence in, e.g. http://127.0.0.1:9093 "
                         f"(default: ${URL_VARIABLE}; without either no silence is made)")

    p = commands.add_parser("add", parents=[where, am], help="record a window (and create its silence)")
    p.add_argument("--site", required=True, help="the office: its agent id (the `agent` label)")
    p.add_argument("--device", help="only this device or link probe (the `device` label); default: the "
                                    "whole office")
    p.add_argument("--from", dest="start", required=True, metavar="TIME",
                   help="start: YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset")
    p.add_argument("--to", dest="end", required=True, metavar="TIME",
                   help="end (excluded); a bare date means the end of that day")
    p.add_argument("--reason", required=True, help="why (shown in Alertmanager and the report)")
    p.add_argument("--created-by", metavar="NAME", help="who plans it (default: your login name)")
    p.add_argument("--long", action="store_true", help=f"allow a window longer than {MAX_DAYS} days")
    p.add_argument("--past", action="store_true",
                   help="allow a window that is already over (maintenance done but not recorded in time; "
                        "no silence is made; created_at shows when it was recorded)")
    p.set_defaults(func=_cmd_add)

    p = commands.add_parser("list", parents=[where], help="show current and upcoming windows")
    p.add_argument("--all", action="store_true", help="also windows that are over")
    p.add_argument("--format", choices=("text", "json"), default="text", help="default %(default)s")
    p.set_defaults(func=_cmd_list)

    p = commands.add_parser("remove", parents=[where, am], help="delete a window (and expire its silence)")
    p.add_argument("id", help="the window's id, as `list` shows it (e.g. bt12)")
    p.set_defaults(func=_cmd_remove)


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except (_UsageError, TimeFormatError) as exc:
            print(f"{_PROG}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ConfigError as exc:
            print(f"{_PROG}: the maintenance file cannot be used (nothing changed):\n{exc}", file=sys.stderr)
            return EXIT_USAGE
        except AlertmanagerError as exc:
            print(f"{_PROG}: Alertmanager: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:  # only the maintenance file and its lock raise it (Alertmanager: above)
            print(f"{_PROG}: maintenance file: {exc} (the file is as it was)", file=sys.stderr)
            return EXIT_FAILED

    return run


def _settings(args: argparse.Namespace, *, writing: bool) -> _Settings:
    path = Path(args.file or os.environ.get(FILE_VARIABLE) or DEFAULT_FILE)
    if writing and not path.parent.is_dir():
        raise _UsageError(f"the directory {path.parent} does not exist: create it (install -d "
                          f"{path.parent}) or give another file with --file or ${FILE_VARIABLE}")
    url = getattr(args, "alertmanager", None)
    url = (url if url is not None else os.environ.get(URL_VARIABLE, "")).strip()
    try:
        client = AlertmanagerClient(url) if url else None
    except AlertmanagerError as exc:
        raise _UsageError(str(exc)) from None
    return _Settings(path, zone(args.tz), args.tz, client)


def _note(message: str) -> None:
    print(f"{_PROG}: {message}", file=sys.stderr)


def _check_name(option: str, value: str, valid: Callable[[str], bool], rule: str) -> None:
    problem = label_value_problem(value)
    if problem is not None:
        raise _UsageError(f"{option} {value!r} {problem}")
    if not valid(value):
        _note(f"warning: {option} {value!r} is not a name hatang gives ({rule}): the silence and the "
              "report match the label exactly, check the spelling")


def _check_text(option: str, value: str) -> str:
    problem = label_value_problem(value)
    if problem is not None:
        raise _UsageError(f"{option} {problem}")
    return value.strip()


def _login_name() -> str:
    """Who runs the command: the operator behind ``sudo`` rather than root."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:  # no LOGNAME/USER and no passwd entry (a bare container)
        return "unknown"


def _where(window: MaintenanceWindow) -> str:
    return f"{window.site}, {window.device or WHOLE_OFFICE}"


def _span(window: MaintenanceWindow, tz: tzinfo) -> str:
    return f"{format_time(window.start, tz)} → {format_time(window.end, tz)}"


def _overlaps(a: MaintenanceWindow, b: MaintenanceWindow) -> bool:
    same_subject = a.site == b.site and (a.device is None or b.device is None or a.device == b.device)
    return same_subject and a.start < b.end and b.start < a.end


# --- add ---------------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    settings = _settings(args, writing=True)
    start = parse_time(args.start, settings.tz)
    end = parse_time(args.end, settings.tz, end_of_day=True)
    now = datetime.now(UTC)
    if end <= start:
        raise _UsageError(f"--to ({format_time(end, settings.tz)}) must be after --from "
                          f"({format_time(start, settings.tz)})")
    over = end <= now
    if over and not args.past:
        raise _UsageError(f"the window is already over (it ends {format_time(end, settings.tz)}, now is "
                          f"{format_time(now, settings.tz)} {settings.tz_name}): check --to, or pass --past "
                          "to record maintenance that was done but not recorded in time")
    if end - start > timedelta(days=MAX_DAYS) and not args.long:
        raise _UsageError(f"the window is {(end - start) / timedelta(days=1):.1f} days long, more than "
                          f"{MAX_DAYS}: check --from/--to, or pass --long if it is meant")
    _check_name("--site", args.site, is_agent_id, "lower-case letters, digits, '-' and '_'")
    if args.device is not None:
        _check_name("--device", args.device, is_device_name, "letters, digits, '.', '-' and '_'")
    reason = _check_text("--reason", args.reason)
    created_by = _check_text("--created-by", args.created_by or _login_name())
    created_at = now.astimezone(settings.tz).replace(microsecond=0)
    draft = MaintenanceWindow(id="", site=args.site, start=start, end=end, reason=reason, device=args.device,
                              created_by=created_by, created_at=created_at)
    added: list[MaintenanceWindow] = []

    def change(current: MaintenanceFile) -> MaintenanceFile:
        window = dataclasses.replace(draft, id=current.next_id())
        for other in current.windows:
            if _overlaps(window, other):
                _note(f"note: overlaps {other.id} ({_where(other)}, {_span(other, settings.tz)}); both are "
                      "kept")
        if settings.client is not None and not over:
            window = dataclasses.replace(window, silence_id=settings.client.create_window_silence(window))
        added.append(window)
        return current.with_window(window)

    try:
        update(settings.path, change)
    except BaseException:
        if added and added[0].silence_id is not None and settings.client is not None:
            _expire_after_failure(settings.client, added[0].silence_id)
        raise
    window = added[0]
    print(f"added {window.id}: {_where(window)}, {_span(window, settings.tz)} ({settings.tz_name}), "
          f"to {settings.path}")
    if over:
        _note("note: recorded after the fact (--past): no silence; the report leaves this time out of "
              f"availability, and the file says it was recorded at {format_time(created_at, settings.tz)}")
    elif settings.client is not None:
        print(f"silence {window.silence_id} created in {settings.client.base_url}")
        if start < now:
            _note("note: the window started in the past; Alertmanager silences from now on")
    else:
        _note(f"no Alertmanager given (--alertmanager or ${URL_VARIABLE}): no silence created, alerts "
              "during the window are still sent")
    return EXIT_OK


def _expire_after_failure(client: AlertmanagerClient, silence_id: str) -> None:
    try:
        client.expire_silence(silence_id)
        _note(f"the file was not written: silence {silence_id} expired again")
    except AlertmanagerError as exc:
        _note(f"the file was not written, and silence {silence_id} could not be expired ({exc}): expire "
              f"it by hand (amtool silence expire {silence_id})")


# --- list --------------------------------------------------------------------------------------------


def state_of(window: MaintenanceWindow, now: datetime) -> str:
    """``upcoming``, ``active`` or ``over`` at ``now``."""
    return "upcoming" if now < window.start else "active" if now < window.end else "over"


def _list(args: argparse.Namespace) -> int:
    settings = _settings(args, writing=False)
    content = read_maintenance_file(settings.path)
    now = datetime.now(UTC)
    shown = sorted((w for w in content.windows if args.all or w.end > now), key=lambda w: (w.start, w.id))
    if args.format == "json":
        print(json.dumps([_as_json(w, now, settings.tz) for w in shown], ensure_ascii=False, indent=2))
        return EXIT_OK
    hidden = len(content.windows) - len(shown)
    if shown:
        print(f"Giờ / times: {settings.tz_name}")
        print(render_table(shown, now, settings.tz))
    else:
        print(f"không có đợt bảo trì nào / no maintenance windows in {settings.path}")
    if hidden:
        print(f"({hidden} window(s) already over not shown; --all shows them)")
    return EXIT_OK


def _as_json(window: MaintenanceWindow, now: datetime, tz: tzinfo) -> dict[str, str | None]:
    return {"id": window.id, "site": window.site, "device": window.device,
            "from": window.start.astimezone(tz).isoformat(), "to": window.end.astimezone(tz).isoformat(),
            "reason": window.reason, "created_by": window.created_by or None,
            "created_at": window.created_at.astimezone(tz).isoformat() if window.created_at else None,
            "silence_id": window.silence_id, "state": state_of(window, now)}


HEADINGS = ("ID", "VĂN PHÒNG/SITE", "THIẾT BỊ/DEVICE", "TỪ/FROM", "ĐẾN/TO", "TRẠNG THÁI/STATE",
            "SILENCE", "LÝ DO/REASON")


def render_table(windows: Sequence[MaintenanceWindow], now: datetime, tz: tzinfo) -> str:
    """The windows as aligned columns (the reason last, as long as it is)."""
    rows = [HEADINGS] + [
        (w.id, w.site, w.device or WHOLE_OFFICE, format_time(w.start, tz), format_time(w.end, tz),
         f"{STATES[state_of(w, now)]}/{state_of(w, now)}", w.silence_id or "-", w.reason) for w in windows]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(HEADINGS) - 1)]
    lines = []
    for row in rows:
        cells = [cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _width(text: str) -> int:
    """Columns on a terminal: combining marks (Vietnamese typed decomposed) take none."""
    return sum(0 if unicodedata.combining(c) else 1 for c in text)


# --- remove ------------------------------------------------------------------------------------------


def _remove(args: argparse.Namespace) -> int:
    settings = _settings(args, writing=True)
    removed: list[MaintenanceWindow] = []

    def change(current: MaintenanceFile) -> MaintenanceFile:
        window = current.find(args.id)
        if window is None:
            known = ", ".join(w.id for w in current.windows)
            raise _UsageError(f"no window {args.id!r} in {settings.path}; "
                              + (f"its ids: {known}" if known else "it has no windows"))
        if window.silence_id is not None and settings.client is not None:
            if settings.client.expire_silence(window.silence_id):
                print(f"silence {window.silence_id} expired")
            else:
                _note(f"silence {window.silence_id} was already expired or is unknown to Alertmanager")
        removed.append(window)
        return current.without(window.id)

    update(settings.path, change)
    window = removed[0]
    now = datetime.now(UTC)
    print(f"removed {window.id}: {_where(window)}, {_span(window, settings.tz)} ({settings.tz_name})")
    if window.silence_id is not None and settings.client is None and window.end > now:
        _note(f"warning: no Alertmanager given (--alertmanager or ${URL_VARIABLE}): silence "
              f"{window.silence_id} stays until it ends ({format_time(window.end, settings.tz)}); expire it "
              f"with: amtool silence expire {window.silence_id}")
    if window.end <= now:
        _note(f"note: {window.id} was over; its time counts in availability reports again")
    return EXIT_OK


_cmd_add = _guarded(_add)
_cmd_list = _guarded(_list)
_cmd_remove = _guarded(_remove)

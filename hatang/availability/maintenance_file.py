"""The planned-maintenance file: the windows ``hatang maintenance`` records and ``hatang report`` leaves
out of availability (docs/operations.md). One small YAML file the centre backs up::

    version: 1
    ids_issued: 3          # ids bt1..bt3 have been given out; a removed id is never given again
    windows:
      - id: "bt3"
        site: "xa-thuong-lam"                  # the office's agent id (the `agent` label)
        device: "core-switch"                  # optional: one device or probe (the `device` label)
        from: "2026-11-03T08:00:00+07:00"      # ISO 8601 with offset; the window is [from, to)
        to: "2026-11-03T12:00:00+07:00"
        reason: "Thay switch lõi"
        created_by: "an"                       # optional
        created_at: "2026-11-01T09:12:44+07:00"  # optional
        silence_id: "7b0c..."                  # optional: the Alertmanager silence made with it

Ids are ``bt`` (bảo trì, maintenance) and a number: ``bt1``, ``bt2``... ``ids_issued`` remembers the
highest number given out so that a removed window's id is never reused. A hand-written window may use
any id of letters, digits, ``_``, ``.`` and ``-`` unique in the file.

Reading is strict: an unknown key, a time without an offset or a window that ends before it starts is a
:class:`~hatang.config_errors.ConfigError` naming the key path (``windows[2].to``). Writing is atomic
(a temporary file in the same directory, fsync, rename): a crash leaves the old file or the new one.
Read-modify-write holds an exclusive ``flock`` on ``<file>.lock`` beside it (:func:`update`), so two
``hatang maintenance add`` in two shells both land. The YAML is emitted here as JSON-quoted strings
(valid YAML), so this module needs no YAML writer.
"""

from __future__ import annotations

import dataclasses
import difflib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hatang.availability.windows import MaintenanceWindow
from hatang.config_errors import ConfigError
from hatang.yaml_loading import parse_yaml

FORMAT_VERSION = 1
ID_PREFIX = "bt"
_NUMBERED_ID = re.compile(rf"{ID_PREFIX}([1-9][0-9]{{0,8}})")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
HEADER = (
    "# Planned-maintenance windows of hatang: written by `hatang maintenance add|remove`, read by\n"
    "# `hatang report` (maintenance is left out of availability). Back this file up with the centre's\n"
    "# configuration. Prefer the command to editing by hand: it keeps the Alertmanager silences in step.\n"
)
_TOP_KEYS = ("version", "ids_issued", "windows")
_REQUIRED = ("id", "site", "from", "to", "reason")
_OPTIONAL = ("device", "created_by", "created_at", "silence_id")


@dataclass(frozen=True, slots=True)
class MaintenanceFile:
    """The whole file: its windows in file order and how many numbered ids have been given out."""

    windows: tuple[MaintenanceWindow, ...] = ()
    ids_issued: int = 0

    def next_id(self) -> str:
        """A new id, never used in this file before (``bt`` + one more than any number issued)."""
        return f"{ID_PREFIX}{_highest_number(self.windows, self.ids_issued) + 1}"

    def with_window(self, window: MaintenanceWindow) -> MaintenanceFile:
        return MaintenanceFile((*self.windows, window), _highest_number((window,), self.ids_issued))

    def without(self, window_id: str) -> MaintenanceFile:
        return dataclasses.replace(self, windows=tuple(w for w in self.windows if w.id != window_id))

    def find(self, window_id: str) -> MaintenanceWindow | None:
        return next((w for w in self.windows if w.id == window_id), None)


def _highest_number(windows: Sequence[MaintenanceWindow], issued: int) -> int:
    numbers = [int(m.group(1)) for w in windows if (m := _NUMBERED_ID.fullmatch(w.id))]
    return max([issued, *numbers])


def label_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a label value to match on (empty, control characters, not UTF-8), or None."""
    if not value.strip():
        return "must not be empty"
    if _CONTROL.search(value):
        return "must not contain control characters (tabs, line breaks...)"
    return _utf8_problem(value)


def _utf8_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    return None


# --- reading -----------------------------------------------------------------------------------------


def load_windows(path: Path) -> list[MaintenanceWindow]:
    """The windows in ``path``, in file order; a missing file has none. A bad file: :class:`ConfigError`."""
    return list(read_maintenance_file(path).windows)


def read_maintenance_file(path: Path) -> MaintenanceFile:
    """The whole file (windows and the id counter); missing file: empty. A bad file: ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return MaintenanceFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc}")]) from None
    return _parse(parse_yaml(text, path), path)


def _parse(data: Any, path: Path) -> MaintenanceFile:
    if data is None:
        return MaintenanceFile()
    if not isinstance(data, dict):
        raise ConfigError(path, [("", "the file must be a YAML mapping with 'version: 1' and 'windows:'")])
    problems = _unknown_keys(data, _TOP_KEYS, "")
    version = data.get("version")
    if "version" not in data:
        problems.append(("version", "required key is missing; add 'version: 1'"))
    elif version != FORMAT_VERSION or isinstance(version, bool):
        problems.append(("version", f"unsupported version {version!r}: this hatang reads version "
                                    f"{FORMAT_VERSION} (was the file written by a newer hatang?)"))
    issued = data.get("ids_issued", 0)
    if isinstance(issued, bool) or not isinstance(issued, int) or issued < 0:
        problems.append(("ids_issued", "must be a whole number >= 0 (how many bt ids were given out)"))
        issued = 0
    raw = data.get("windows")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        problems.append(("windows", "must be a list of windows ('- id: ...' entries), or [] for none"))
        raw = []
    windows: list[MaintenanceWindow] = []
    first_use: dict[str, int] = {}
    for index, entry in enumerate(raw):
        window = _parse_window(entry, f"windows[{index}]", problems)
        if window is None:
            continue
        earlier = first_use.setdefault(window.id, index)
        if earlier != index:
            problems.append((f"windows[{index}].id", f"id {window.id!r} is also used by windows[{earlier}]: "
                                                     "give each window its own id"))
        windows.append(window)
    if problems:
        raise ConfigError(path, problems)
    return MaintenanceFile(tuple(windows), issued)


def _unknown_keys(entry: Mapping[Any, Any], known: Sequence[str], where: str) -> list[tuple[str, str]]:
    problems = []
    for key in entry:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling"
            problems.append((f"{where}.{key}" if where else str(key),
                             f"unknown key; {fix} (known keys: {', '.join(known)})"))
    return problems


def _parse_window(entry: Any, where: str, problems: list[tuple[str, str]]) -> MaintenanceWindow | None:
    if not isinstance(entry, dict):
        problems.append((where, "must be a mapping with id, site, from, to and reason"))
        return None
    before = len(problems)
    problems += _unknown_keys(entry, (*_REQUIRED, *_OPTIONAL), where)
    problems += [(f"{where}.{key}", "required key is missing; add it")
                 for key in _REQUIRED if key not in entry]
    window_id = _text(entry, "id", where, problems)
    if window_id is not None and not ID_PATTERN.fullmatch(window_id):
        problems.append((f"{where}.id", f"{window_id!r} is not an id: use letters, digits, '_', '.' and "
                                        "'-' (at most 32), like bt12"))
    site = _text(entry, "site", where, problems, label=True)
    device = _text(entry, "device", where, problems, label=True, optional=True)
    start = _time(entry, "from", where, problems)
    end = _time(entry, "to", where, problems)
    reason = _text(entry, "reason", where, problems)
    created_by = _text(entry, "created_by", where, problems, optional=True)
    created_at = _time(entry, "created_at", where, problems, optional=True)
    silence_id = _text(entry, "silence_id", where, problems, optional=True)
    if start is not None and end is not None and end <= start:
        problems.append((f"{where}.to", f"must be after 'from' ({start.isoformat()}): a window ends after "
                                        "it starts"))
    if len(problems) > before:
        return None
    assert window_id is not None and site is not None and start is not None and end is not None
    return MaintenanceWindow(id=window_id, site=site, start=start, end=end, reason=reason or "",
                             device=device, created_by=created_by or "", created_at=created_at,
                             silence_id=silence_id)


def _text(entry: Mapping[str, Any], key: str, where: str, problems: list[tuple[str, str]], *,
          label: bool = False, optional: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if key in entry and not optional:
            problems.append((f"{where}.{key}", "must not be empty"))
        return None
    if not isinstance(value, str):
        problems.append((f"{where}.{key}", f"must be text, not {value!r}: put it in double quotes"))
        return None
    problem = label_value_problem(value) if label else _utf8_problem(value)
    if problem is not None:
        problems.append((f"{where}.{key}", problem))
        return None
    return value


def _time(entry: Mapping[str, Any], key: str, where: str, problems: list[tuple[str, str]], *,
          optional: bool = False) -> datetime | None:
    value = entry.get(key)
    example = "e.g. \"2026-11-03T08:00:00+07:00\""
    if value is None:
        if key in entry and not optional:
            problems.append((f"{where}.{key}", f"must be a time with its UTC offset, {example}"))
        return None
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if moment is None:
        problems.append((f"{where}.{key}", f"cannot read '{value!s}' as a time: write a date and time in "
                                           f"ISO 8601 with the UTC offset, {example}"))
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        problems.append((f"{where}.{key}", f"{value!s} has no UTC offset: add one, {example}"))
        return None
    return moment


# --- writing -----------------------------------------------------------------------------------------


def save_windows(path: Path, windows: Sequence[MaintenanceWindow]) -> None:
    """Write ``windows`` to ``path`` atomically. The id counter is kept: the higher of the one already in
    the file (when it can be read) and the highest ``bt`` id given. Callers doing read-modify-write hold
    :func:`file_lock` (or use :func:`update`)."""
    try:
        issued = read_maintenance_file(path).ids_issued
    except ConfigError:
        issued = 0
    write_maintenance_file(path, MaintenanceFile(tuple(windows), _highest_number(windows, issued)))


def write_maintenance_file(path: Path, content: MaintenanceFile) -> None:
    """Atomic replace: temporary file in the same directory, fsync, rename, fsync of the directory. The
    file keeps the permissions of the one it replaces (0644 for a new one: the report may run as
    another user). A failure leaves the old file as it was and no temporary file behind."""
    text = render(content)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Best effort: the file is already replaced, and a caller that undoes its
    other work when the write fails (``hatang maintenance add`` expires the silence) must not do so now;
    some file systems refuse fsync on a directory (EINVAL)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def render(content: MaintenanceFile) -> str:
    """The file's text: the header comment, then YAML whose strings are JSON-quoted."""
    lines = [HEADER.rstrip("\n"), f"version: {FORMAT_VERSION}",
             f"ids_issued: {_highest_number(content.windows, content.ids_issued)}"]
    if not content.windows:
        lines.append("windows: []")
    else:
        lines.append("windows:")
    for window in content.windows:
        fields: list[tuple[str, str | None]] = [
            ("id", window.id), ("site", window.site), ("device", window.device),
            ("from", window.start.isoformat()), ("to", window.end.isoformat()), ("reason", window.reason),
            ("created_by", window.created_by or None),
            ("created_at", window.created_at.isoformat() if window.created_at else None),
            ("silence_id", window.silence_id)]
        present = [(key, value) for key, value in fields if value is not None]
        for i, (key, value) in enumerate(present):
            lines.append(f"{'  - ' if i == 0 else '    '}{key}: {yaml_string(value)}")
    return "\n".join(lines) + "\n"


# Characters a YAML double-quoted scalar may not hold as they are (non-printable in YAML 1.1, or line
# breaks that YAML would fold): written as \uXXXX escapes, which YAML and JSON read alike.
_YAML_UNSAFE = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]")


def yaml_string(text: str) -> str:
    """``text`` as a double-quoted scalar valid in both JSON and YAML (Vietnamese kept readable)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: "".join(f"\\u{ord(c):04x}" for c in m.group(0)), quoted)


# --- locking -----------------------------------------------------------------------------------------


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` (created beside the file) for a read-modify-write."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def update(path: Path, change: Callable[[MaintenanceFile], MaintenanceFile]) -> MaintenanceFile:
    """Under :func:`file_lock`: read the file, apply ``change``, write the result; return it. When
    ``change`` raises, nothing is written."""
    with file_lock(path):
        content = change(read_maintenance_file(path))
        write_maintenance_file(path, content)
        return content

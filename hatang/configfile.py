"""Loading YAML config files into strict pydantic models with errors a person can act on.

Every error names the file, the key path (``devices[2].snmp.community``) and what to do. Shared by
the agent and the collector configs (and profiles, inventories); imports neither.

Besides the model, this module checks what a model cannot see but a service needs at start:

- YAML: a key given twice in one mapping is an error (YAML would keep the last one silently).
- Numbers: ``.nan``, ``.inf`` and ``-.inf`` are errors in every float field of every model loaded here
  (:data:`FiniteFloat` for new fields; :func:`validate` also catches models that do not use it).
- Ports: :data:`Port`, :func:`check_port`, :data:`MqttUrl` (1-65535).
- Files: :func:`check_files` makes sure every ``*_file`` key names a readable, non-empty file, and warns
  when a secret file (passwords, communities, private keys) is readable by group or others.
- Directories: :func:`writable_directory_problem` (e.g. the agent's buffer).

Warnings (:class:`ConfigWarning`) do not stop anything: ``hatang check`` prints them on stderr and the
services log them at start.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import tempfile
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, AllowInfNan, BaseModel, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is the message to print, one problem per line."""

    def __init__(self, path: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = [f"{self.path}: {key}: {msg}" if key else f"{self.path}: {msg}" for key, msg in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A config that works but probably not as meant (or not safely). ``str()`` is the line to print."""

    path: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message}" if self.key else f"{self.path}: {self.message}"


# --- shared field types ------------------------------------------------------------------------------

FiniteFloat = Annotated[float, AllowInfNan(False)]
"""A float that is a number: ``.nan``, ``.inf`` and ``-.inf`` are rejected before any range check."""

PORT_RANGE = "1-65535"


def check_port(port: int, hint: str = "") -> int:
    """``port`` if it is a usable TCP/UDP port, else a validation error saying which range (and ``hint``)."""
    if not 1 <= port <= 65535:
        raise PydanticCustomError("port", "port {port} is out of range: use {range}{hint}",
                                  {"port": port, "range": PORT_RANGE, "hint": f" ({hint})" if hint else ""})
    return port


Port = Annotated[int, AfterValidator(check_port)]
"""A TCP or UDP port number (1-65535)."""


def _url_port(value: str) -> str:
    rest = value.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if sep and host and port.isdigit():
        check_port(int(port), "1883 is MQTT, 8883 MQTT over TLS")
    return value


MqttUrl = Annotated[str, StringConstraints(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$"), AfterValidator(_url_port)]
"""``mqtt://host[:port]`` or ``mqtts://host[:port]`` with a port in 1-65535."""


def listen_port(value: str, hint: str = "") -> str:
    """Validator for ``HOST:PORT`` / ``[IPv6]:PORT`` listen addresses: the port must be 1-65535."""
    check_port(int(value.rpartition(":")[2]), hint)
    return value


# --- YAML --------------------------------------------------------------------------------------------


def key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a key given twice in one mapping is an error (not a silent replace)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [("", "file not found; pass the right path with -c/--config")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc}")]) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load(text)`` that rejects duplicated mapping keys, with errors naming ``path``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicated_keys(loader, node, (), set()))
        if duplicates:
            raise ConfigError(path, duplicates)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [("", f"invalid YAML: {where}{problem}")]) from None
    finally:
        loader.dispose()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicated_keys(loader: yaml.SafeLoader, node: yaml.Node, loc: tuple[int | str, ...],
                     seen: set[int]) -> Iterator[tuple[str, str]]:
    """(key path, message) for every key given twice in one mapping, anywhere under ``node``."""
    if id(node) in seen:  # an alias of a node already walked (or a recursive one)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicated_keys(loader, item, (*loc, i), seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[Any, tuple[int, int]] = {}  # key -> (line, column) where it was first given
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: explicit keys override merged ones by design
                continue
            here_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            earlier = None
            if isinstance(key_node, yaml.ScalarNode):  # scalar keys are hashable; 1 and 1.0 are one key
                earlier = first.setdefault(loader.construct_object(key_node), here_at)
                earlier = None if earlier == here_at else earlier
                key = str(key_node.value)  # as written
            else:  # a complex key (rare; the constructor may refuse it): not compared
                key = "?"
            here = (*loc, key)
            if earlier is not None:
                yield (key_path(here), (
                    f"key given twice ({_positions(earlier, here_at)}): YAML would silently keep only "
                    f"the second; merge the two into one '{key}:' or delete one"))
            yield from _duplicated_keys(loader, value_node, here, seen)


def _positions(first: tuple[int, int], second: tuple[int, int]) -> str:
    if first[0] != second[0]:
        return f"line {first[0]} and line {second[0]}"
    return f"line {first[0]}, columns {first[1]} and {second[1]}"


# --- validation --------------------------------------------------------------------------------------


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (walks field annotations)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field is not None else None
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


_NUMBER_CHECKS = {"finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
                  "multiple_of"}


def _non_finite(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        try:
            return not math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _yaml_number(value: Any) -> str:
    if isinstance(value, float):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return repr(value)


def _finite_hint(root: type[BaseModel], loc: Sequence[int | str], value: Any) -> str:
    parent = _model_at(root, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent is not None and loc else None
    default = field.default if field is not None else None
    example = (f"such as the default {default:g}" if isinstance(default, int | float)
               and not isinstance(default, bool) else "such as 60")
    return (f"must be a finite number, not {_yaml_number(value)} (.nan, .inf and -.inf are not "
            f"allowed): give a plain number {example}, or remove the key for the default")


def _hint(root: type[BaseModel], error: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling"
        known = f" (known keys: {', '.join(allowed)})" if allowed else ""
        return f"unknown key; {fix}{known}"
    if kind == "missing":
        return "required key is missing; add it"
    if kind in _NUMBER_CHECKS and _non_finite(error.get("input")):
        return _finite_hint(root, loc, error.get("input"))
    return str(error["msg"])


def _clean_loc(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    # pydantic adds tags such as 'function-after[...]' for validators; they mean nothing to a user.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _floats(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[tuple[int | str, ...], float]]:
    """Every float inside a validated model (fields, lists, tuples, dict values) with its location."""
    if isinstance(value, float):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _floats(getattr(value, name), (*loc, name))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _floats(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, (*loc, str(key)))


def validate(model: type[M], data: Any, path: Path) -> M:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [("", "the file must contain a YAML mapping (key: value lines)")])
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            problems.append((key_path(loc), _hint(model, {**err, "loc": loc})))
        # .nan/.inf that the model let through would only be reported once these errors are fixed: now.
        reported = {key for key, _ in problems}
        problems += [(key_path(loc), _finite_hint(model, loc, value)) for loc, value in _floats(data, ())
                     if not math.isfinite(value) and key_path(loc) not in reported]
        raise ConfigError(path, problems) from None
    # Fields not declared FiniteFloat (and without a bound that already refused it): no .nan/.inf either.
    problems = [(key_path(loc), _finite_hint(model, loc, value))
                for loc, value in _floats(result, ()) if not math.isfinite(value)]
    if problems:
        raise ConfigError(path, problems)
    return result


def load(model: type[M], path: Path) -> M:
    return validate(model, load_yaml(path), path)


def read_secret(path: Path, config_path: Path, key: str) -> str:
    """Read a password/community from a file (first line, stripped), with a config-style error."""
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise ConfigError(config_path, [(key, f"cannot read secret file {path}: {exc}")]) from None


# --- files and directories a config names ------------------------------------------------------------

FileRole = Literal["secret", "secret_lines", "input", "output"]

# How a ``*_file`` key is checked, by its name. Any other ``*_file`` key is an input file: it must exist,
# be readable and not empty. A new key that hatang writes (not reads) must be added to OUTPUT_FILE_KEYS.
SECRET_FILE_SUFFIXES = ("password_file", "community_file", "key_file", "token_file")  # secret: first line
SECRET_LINES_FILE_KEYS = ("communities_file",)  # one secret per line
OUTPUT_FILE_KEYS = ("state_file",)  # written by hatang: may not exist yet


def file_role(key: str) -> FileRole | None:
    """How the file named by a config key ``key`` is checked (None: not a ``*_file`` key)."""
    if not key.endswith("_file"):
        return None
    if key in OUTPUT_FILE_KEYS:
        return "output"
    if key in SECRET_LINES_FILE_KEYS:
        return "secret_lines"
    if key.endswith(SECRET_FILE_SUFFIXES):
        return "secret"
    return "input"


def _file_fields(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[tuple[int | str, ...], FileRole,
                                                                         Path]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            role = file_role(name)
            if role is not None and isinstance(item, Path):
                yield (*loc, name), role, item
            else:
                yield from _file_fields(item, (*loc, name))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _file_fields(item, (*loc, i))


def _readers(mode: int) -> str:
    who = [name for bit, name in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "every user")) if mode & bit]
    return " and ".join(who)


def check_file(path: Path, role: FileRole) -> tuple[str | None, str | None]:
    """(error, warning) about a file a config names; both None when it is fine. ``path`` is absolute."""
    if role == "output":
        return None, None
    shown = str(path)
    try:
        if path.is_symlink():
            shown = f"{path} (a symlink to {os.path.realpath(path)})"
        info = path.stat()  # follows symlinks: the mode that matters is the target's
    except FileNotFoundError:
        what = {"secret": " with the secret on its first line (chmod 600)",
                "secret_lines": " with one community per line (chmod 600)"}.get(role, "")
        return (f"file not found: {shown}; create it{what} or correct the path (relative paths are "
                "relative to the config file's directory)"), None
    except OSError as exc:
        return f"cannot read {shown}: {exc.strerror or exc}; check the path and its directories", None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return f"{shown} is {kind}; give the path of a file", None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return (f"cannot read {shown}: {exc.strerror or exc}; make it readable by the user hatang runs as "
                f"(chown that user, chmod 600) and run hatang check as that user"), None
    if role in ("secret", "secret_lines"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"{shown} is not UTF-8 text; write the secret as UTF-8 text", None
        lines = text.splitlines()
        if role == "secret" and not (lines and lines[0].strip()):
            return f"{shown} is empty (hatang uses its first line): write the secret on the first line", None
        if role == "secret_lines" and not any(line.strip() for line in lines):
            return f"{shown} is empty: write one community per line", None
    elif not data:
        return f"{shown} is empty; give the path of the right file", None
    warning = None
    if role in ("secret", "secret_lines") and info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        target = os.path.realpath(path)
        warning = (f"secret file {shown} is readable by {_readers(info.st_mode)} "
                   f"(mode {stat.S_IMODE(info.st_mode):04o}): run chmod 600 {target} (owned by the user "
                   "hatang runs as)")
    return None, warning


def check_files(config: BaseModel, config_path: Path) -> list[ConfigWarning]:
    """Check every ``*_file`` key of a loaded config (paths already resolved): raise :class:`ConfigError`
    naming each unusable file, return a warning for each secret file others can read."""
    problems: list[tuple[str, str]] = []
    warnings: list[ConfigWarning] = []
    for loc, role, path in _file_fields(config, ()):
        error, warning = check_file(path, role)
        if error is not None:
            problems.append((key_path(loc), error))
        if warning is not None:
            warnings.append(ConfigWarning(str(config_path), key_path(loc), warning))
    if problems:
        raise ConfigError(config_path, problems)
    return warnings


def writable_directory_problem(directory: Path, key: str = "", what: str = "") -> str | None:
    """Why hatang could not create ``directory`` or write in it (None: it can), for config key ``key``
    (``what``: what the directory is for). Leaves nothing behind: a missing directory is not created,
    only a temporary one in its nearest existing parent, removed at once."""
    named = f"{directory} ({what})" if what else str(directory)
    other = f"set {key} to another directory" if key else "choose another directory"
    existing = directory
    while True:
        try:
            info = existing.stat()
            break
        except (FileNotFoundError, NotADirectoryError):
            if existing.parent == existing:
                return f"cannot create {named}: no part of the path exists; {other}"
            existing = existing.parent
        except OSError as exc:
            return (f"cannot create or open {named}: cannot look into {existing} ({exc.strerror or exc}); "
                    f"{other}")
    if not stat.S_ISDIR(info.st_mode):
        if existing == directory:
            return f"{named} is a file, not a directory: remove or rename that file, or {other}"
        return (f"cannot create {named}: {existing} is a file, not a directory; remove or rename that file, "
                f"or {other}")
    try:
        if existing == directory:
            fd, name = tempfile.mkstemp(prefix=".hatang-check-", dir=directory)
            os.close(fd)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".hatang-check-", dir=existing))
    except OSError as exc:
        action = f"write in {named}" if existing == directory else (
            f"create {named}: cannot create a directory in {existing}")
        return (f"cannot {action} ({exc.strerror or exc}); make it writable by the user hatang runs as "
                f"(chown), or {other}")
    return None

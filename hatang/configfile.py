"""Loading YAML config files into strict models (pydantic models, or dataclasses whose rules pydantic reads:
:mod:`hatang.config_types`) with errors a person can act on.

Every error names the file, the key path (``devices[2].snmp.community``) and what to do. Shared by
the agent and the collector configs (and profiles, inventories); imports neither.

This module loads and validates (turning pydantic's errors into those messages) and walks a loaded
config for the files it names; it re-exports the rest, so that ``from hatang.configfile import X`` is
the one import for the agent, the collector and the profiles:

- Errors and warnings: :class:`ConfigError`, :class:`ConfigWarning` (:mod:`hatang.config_errors`).
- YAML: a key given twice in one mapping is an error, YAML would keep the last one silently
  (:func:`load_yaml`, :mod:`hatang.yaml_loading`).
- Numbers: ``.nan``, ``.inf`` and ``-.inf`` are errors in every float field of every model loaded here
  (:data:`FiniteFloat` for new fields, :mod:`hatang.config_types`; :func:`validate` also catches models
  that do not use it).
- Ports: :data:`Port`, :func:`check_port`, :data:`MqttUrl` (1-65535; :mod:`hatang.config_types`).
- Files: :func:`check_files` makes sure every ``*_file`` key names a readable, non-empty file, and warns
  when a secret file (passwords, communities, private keys) is readable by group or others (each file
  is checked by :func:`hatang.config_paths.check_file`).
- Directories: :func:`writable_directory_problem` (e.g. the agent's buffer; :mod:`hatang.config_paths`).

Warnings (:class:`ConfigWarning`) do not stop anything: ``hatang check`` prints them on stderr and the
services log them at start.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from hatang.config_errors import ConfigError, ConfigWarning, key_path
from hatang.config_paths import (
    OUTPUT_FILE_KEYS,
    SECRET_FILE_SUFFIXES,
    SECRET_LINES_FILE_KEYS,
    FileRole,
    check_file,
    file_role,
    read_secret,
    writable_directory_problem,
)
from hatang.config_types import PORT_RANGE, FiniteFloat, MqttUrl, Port, check_port, listen_port
from hatang.yaml_loading import load_yaml, parse_yaml

__all__ = [
    "OUTPUT_FILE_KEYS",
    "PORT_RANGE",
    "SECRET_FILE_SUFFIXES",
    "SECRET_LINES_FILE_KEYS",
    "ConfigError",
    "ConfigWarning",
    "FileRole",
    "FiniteFloat",
    "MqttUrl",
    "Port",
    "check_file",
    "check_files",
    "check_port",
    "file_role",
    "key_path",
    "listen_port",
    "load",
    "load_yaml",
    "parse_yaml",
    "read_secret",
    "validate",
    "writable_directory_problem",
]

M = TypeVar("M")

# --- validation --------------------------------------------------------------------------------------
# A config model is a pydantic model (the collector's) or a plain dataclass whose fields carry their rules
# in Annotated metadata (the agent's and the profiles', hatang.config_types): both are read alike here.


def is_model(value: Any) -> bool:
    """A model class: a pydantic model or a dataclass."""
    return isinstance(value, type) and (issubclass(value, BaseModel) or dataclasses.is_dataclass(value))


@functools.cache
def model_fields(model: type) -> dict[str, tuple[Any, Any]]:
    """Field name -> (annotation without its rules, default or None) of a model class, in order."""
    if issubclass(model, BaseModel):
        return {name: (field.annotation, field.default) for name, field in model.model_fields.items()}
    hints = typing.get_type_hints(model)
    return {field.name: (hints[field.name], None if field.default is dataclasses.MISSING else field.default)
            for field in dataclasses.fields(model)}  # type: ignore[arg-type]  # is_model: a dataclass


def _field_names(value: Any) -> Iterator[str]:
    """The fields of a model instance (a pydantic model or a dataclass), none for anything else."""
    if isinstance(value, BaseModel) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        yield from model_fields(type(value))


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _model_at(root: type, loc: Sequence[int | str]) -> type | None:
    """The model class that holds the key at ``loc`` (walks field annotations)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif is_model(current):
            field = model_fields(current).get(part)
            current = field[0] if field is not None else None
        else:
            return None
    current = _unwrap(current)
    return current if is_model(current) else None


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


def _finite_hint(root: type, loc: Sequence[int | str], value: Any) -> str:
    parent = _model_at(root, loc[:-1]) if loc else None
    field = model_fields(parent).get(str(loc[-1])) if parent is not None and loc else None
    default = field[1] if field is not None else None
    example = (f"such as the default {default:g}" if isinstance(default, int | float)
               and not isinstance(default, bool) else "such as 60")
    return (f"must be a finite number, not {_yaml_number(value)} (.nan, .inf and -.inf are not "
            f"allowed): give a plain number {example}, or remove the key for the default")


# an unknown key, and a section that is not a mapping: in a pydantic model, in a dataclass
_UNKNOWN_KEY = {"extra_forbidden", "unexpected_keyword_argument"}
_NOT_A_SECTION = {"model_type", "dataclass_type"}


def _hint(root: type, error: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind in _UNKNOWN_KEY:
        parent = _model_at(root, loc[:-1])
        allowed = sorted(model_fields(parent)) if parent is not None else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling"
        known = f" (known keys: {', '.join(allowed)})" if allowed else ""
        return f"unknown key; {fix}{known}"
    if kind == "missing":
        return "required key is missing; add it"
    if kind in _NOT_A_SECTION:
        return "Input should be a valid dictionary: a section of key: value lines"
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
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _floats(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, (*loc, str(key)))
    else:
        for name in _field_names(value):
            yield from _floats(getattr(value, name), (*loc, name))


def validate(model: type[M], data: Any, path: Path = Path("<data>")) -> M:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [("", "the file must contain a YAML mapping (key: value lines)")])
    try:
        result: M = (model.model_validate(data) if issubclass(model, BaseModel)
                     else _adapter(typing.cast(Any, model)).validate_python(data))
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


# --- files a config names ----------------------------------------------------------------------------


def _file_fields(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[tuple[int | str, ...], FileRole,
                                                                         Path]]:
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _file_fields(item, (*loc, i))
        return
    for name in _field_names(value):
        item = getattr(value, name)
        role = file_role(name)
        if role is not None and isinstance(item, Path):
            yield (*loc, name), role, item
        else:
            yield from _file_fields(item, (*loc, name))


def check_files(config: object, config_path: Path) -> list[ConfigWarning]:
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

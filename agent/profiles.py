"""SNMP profiles: which OIDs to read and how they become metrics. Profiles are YAML data files.

Built-in profiles live in ``agent/profiles/*.yaml`` (package data); a user directory may add more or
override one by name. The format is documented in docs/profiles.md.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatang import configfile

BUILTIN_DIR = Path(__file__).with_name("profiles")
_OID = re.compile(r"[0-2](\.\d+)+")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

OID = tuple[int, ...]


def parse_oid(text: str) -> OID:
    return tuple(int(p) for p in text.strip(".").split("."))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_oid(value: str) -> str:
    value = value.strip().lstrip(".")
    if _OID.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0")
    return value


def _check_metric_name(value: str) -> str:
    if _METRIC.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a valid Prometheus metric name")
    return value


def _check_label_names(value: dict[str, str]) -> dict[str, str]:
    for name, oid in value.items():
        if _LABEL.fullmatch(name) is None:
            raise ValueError(f"{name!r} is not a valid Prometheus label name")
        _check_oid(oid)
    return {name: _check_oid(oid) for name, oid in value.items()}


class Source(_Strict):
    """Where a value comes from: an OID and a multiplier."""

    oid: str
    scale: float = 1.0

    _v_oid = field_validator("oid")(_check_oid)

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


class MetricSpec(_Strict):
    name: str
    type: Literal["gauge", "counter", "info"]
    help: str
    oid: str | None = None  # not used by type 'info'
    scale: float = 1.0
    fallback: Source | None = None  # read where `oid` is absent (e.g. 32-bit counters under HC ones)
    labels: dict[str, str] = Field(default_factory=dict)  # info metrics: label name -> OID

    _v_name = field_validator("name")(_check_metric_name)
    _v_labels = field_validator("labels")(_check_label_names)

    @field_validator("oid")
    @classmethod
    def _v_oid(cls, value: str | None) -> str | None:
        return None if value is None else _check_oid(value)

    @cached_property
    def source(self) -> Source | None:
        return None if self.oid is None else Source(oid=self.oid, scale=self.scale)


class TableSpec(_Strict):
    """A conceptual table: metric columns and label columns share one row index."""

    name: str
    index_label: str
    labels: dict[str, str] = Field(default_factory=dict)  # label name -> column OID
    metrics: list[MetricSpec]

    _v_labels = field_validator("labels")(_check_label_names)


class Profile(_Strict):
    name: str
    description: str = ""
    scalars: list[MetricSpec] = Field(default_factory=list)
    tables: list[TableSpec] = Field(default_factory=list)

    def scalar_oids(self) -> list[OID]:
        """Every OID this profile GETs."""
        oids: list[OID] = []
        for m in self.scalars:
            if m.source is not None:
                oids.append(m.source.parsed)
            if m.fallback is not None:
                oids.append(m.fallback.parsed)
            oids.extend(parse_oid(o) for o in m.labels.values())
        return list(dict.fromkeys(oids))


class ProfileError(Exception):
    pass


def _load_file(path: Path) -> Profile:
    profile = configfile.load(Profile, path)
    if profile.name != path.stem:
        raise configfile.ConfigError(path, [("name", f"must equal the file name '{path.stem}'")])
    for i, scalar in enumerate(profile.scalars):
        if scalar.type != "info" and scalar.oid is None:
            raise configfile.ConfigError(path, [(f"scalars[{i}].oid", "required for gauge and counter")])
    for t, table in enumerate(profile.tables):
        for i, metric in enumerate(table.metrics):
            if metric.type == "info" or metric.oid is None:
                raise configfile.ConfigError(
                    path, [(f"tables[{t}].metrics[{i}]", "table metrics need an oid and type gauge/counter")]
                )
    return profile


def load_profiles(user_dir: Path | None = None) -> dict[str, Profile]:
    """Built-in profiles, then the user's (a user profile with a built-in's name replaces it)."""
    found: dict[str, Profile] = {}
    dirs = [BUILTIN_DIR] + ([user_dir] if user_dir is not None else [])
    for directory in dirs:
        if not directory.is_dir():
            raise configfile.ConfigError(directory, [("", "profile directory not found")])
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = _load_file(path)
    return found

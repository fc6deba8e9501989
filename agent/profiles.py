"""SNMP profiles: which OIDs to read and how they become metrics. Profiles are YAML data files.

Built-in profiles live in ``agent/profiles/*.yaml`` (package data); a user directory may add more or
override one by name. The format is documented in docs/profiles.md.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatang import configfile
from wire.names import LABEL_NAME, METRIC_NAME, RESERVED_LABELS, RESERVED_METRIC_PREFIXES, RESERVED_METRICS

BUILTIN_DIR = Path(__file__).with_name("profiles")
_OID = re.compile(r"[0-2](\.\d+)+")

OID = tuple[int, ...]
POLL_ERRORS_METRIC = "hatang_device_poll_errors_total"  # the poller's own family (docs/metrics.md)
AGENT_METRICS = frozenset({POLL_ERRORS_METRIC})  # families the agent adds to every poll: not for profiles


def parse_oid(text: str) -> OID:
    return tuple(int(p) for p in text.strip(".").split("."))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_oid(value: str) -> str:
    value = value.strip().lstrip(".")
    if _OID.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0")
    return value


def _check_optional_oid(value: str | None) -> str | None:
    return None if value is None else _check_oid(value)


def _check_metric_name(value: str) -> str:
    if METRIC_NAME.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a valid Prometheus metric name")
    if value in RESERVED_METRICS or value.startswith(RESERVED_METRIC_PREFIXES):
        raise ValueError(f"{value!r} is reserved for the collector; choose another name")
    if value in AGENT_METRICS:
        raise ValueError(f"{value!r} is published by the agent itself; choose another name")
    return value


def _check_label_name(name: str) -> str:
    if LABEL_NAME.fullmatch(name) is None or name.startswith("__"):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    if name in RESERVED_LABELS:
        raise ValueError(f"label {name!r} is set by the collector; choose another name")
    return name


def _labels_before(value: Any) -> Any:
    """Label maps: check the names; a plain OID string is short for ``{oid: ...}``."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for name, spec in value.items():
        _check_label_name(str(name))
        out[name] = {"oid": spec} if isinstance(spec, str) else spec
    return out


def _values_before(value: Any) -> Any:
    """One value or a list; ints and strings compare as text (``5`` matches an INTEGER 5)."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in items]


class Source(_Strict):
    """Where a value comes from: an OID and a multiplier."""

    oid: str
    scale: float = 1.0  # a scale of 1/n (0.1, 0.01) divides by n: decimal values stay exact
    # fallbacks only: also used where the primary reads 0 (ifHighSpeed 0 on sub-interfaces and slow
    # links, beside a real ifSpeed); a 0 from both stays 0
    when_primary_zero: bool = False

    _v_oid = field_validator("oid")(_check_oid)

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


class ValidRange(_Strict):
    """The raw readings a MIB allows (before scale); a reading outside is unusable: counted and logged."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    def admits(self, number: float) -> bool:
        return (self.min is None or number >= self.min) and (self.max is None or number <= self.max)

    def describe(self) -> str:
        low = "" if self.min is None else f"{self.min:g}"
        high = "" if self.max is None else f"{self.max:g}"
        return f"{low}..{high}"


class LabelSpec(_Strict):
    """A label read from an OID (scalars) or a column (tables), written ``name: OID`` when plain."""

    oid: str
    last_arc: bool = False  # an OBJECT IDENTIFIER value keeps only its last arc (1.3.6.1.2.1.25.2.1.4 -> 4)
    map: dict[str, str] = Field(default_factory=dict)  # rendered value -> label text; others unchanged

    _v_oid = field_validator("oid")(_check_oid)

    @field_validator("map", mode="before")
    @classmethod
    def _v_map(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


class Condition(_Strict):
    """Keep a row (or scalar) only where the value at ``oid`` is one of ``any_of`` / none of ``none_of``."""

    oid: str
    any_of: list[str] | None = None  # the value must be present and one of these
    none_of: list[str] | None = None  # an absent value passes

    _v_oid = field_validator("oid")(_check_oid)
    _v_values = field_validator("any_of", "none_of", mode="before")(_values_before)

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        if (self.any_of is None) == (self.none_of is None):
            raise ValueError("give exactly one of any_of or none_of")
        return self

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


class ScaleFrom(_Strict):
    """Per-row decimal scaling read from the device (ENTITY-SENSOR-MIB and CISCO-ENTITY-SENSOR-MIB)."""

    si_prefix: str | None = None  # value 1 (yocto) .. 9 (units) .. 17 (yotta): x 10^(3*(v-9))
    precision: str | None = None  # value p: x 10^-p

    _v_oids = field_validator("si_prefix", "precision")(_check_optional_oid)

    @model_validator(mode="after")
    def _some_column(self) -> Self:
        if self.si_prefix is None and self.precision is None:
            raise ValueError("give si_prefix, precision or both")
        return self

    def oids(self) -> list[OID]:
        return [parse_oid(o) for o in (self.si_prefix, self.precision) if o is not None]


class MetricSpec(_Strict):
    name: str
    type: Literal["gauge", "counter", "info"]
    help: str
    oid: str | None = None  # not used by type 'info'
    scale: float = 1.0
    fallback: Source | None = None  # read where `oid` is absent (e.g. 32-bit counters under HC ones)
    labels: dict[str, LabelSpec] = Field(default_factory=dict)  # info metrics: label name -> OID
    const_labels: dict[str, str] = Field(default_factory=dict)  # fixed labels, e.g. {mode: user}
    multiply_by: str | None = None  # x the number at this OID (tables: this column, same row)
    scale_from: ScaleFrom | None = None
    filter: list[Condition] = Field(default_factory=list)  # all must hold, else no sample
    equals: list[int] | None = None  # 1 if the raw value is one of these, else 0
    as_timestamp: bool = False  # the value is a sysUpTime reading (seconds): publish it as unix time
    unknown: list[float] = Field(default_factory=list)  # raw readings that mean "unknown": no sample
    valid: ValidRange | None = None  # raw readings the MIB allows; others are unusable (counted, logged)
    as_unsigned: bool = False  # a negative Integer32 is an overflowed unsigned value: add 2^32

    @field_validator("unknown", mode="before")
    @classmethod
    def _v_unknown(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, list) else [value]

    _v_name = field_validator("name")(_check_metric_name)
    _v_labels = field_validator("labels", mode="before")(_labels_before)
    _v_oids = field_validator("oid", "multiply_by")(_check_optional_oid)

    @field_validator("const_labels")
    @classmethod
    def _v_const_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _check_label_name(name)
        return value

    @field_validator("equals", mode="before")
    @classmethod
    def _v_equals(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, list) else [value]

    @cached_property
    def source(self) -> Source | None:
        return None if self.oid is None else Source(oid=self.oid, scale=self.scale)

    def helper_oids(self) -> list[OID]:
        """OIDs (columns) read besides the value: multiply_by, scale_from, filter."""
        oids = [parse_oid(self.multiply_by)] if self.multiply_by else []
        if self.scale_from is not None:
            oids.extend(self.scale_from.oids())
        oids.extend(c.parsed for c in self.filter)
        return oids


class TableSpec(_Strict):
    """A conceptual table: metric columns and label columns share one row index."""

    name: str
    index_label: str
    labels: dict[str, LabelSpec] = Field(default_factory=dict)  # label name -> column
    metrics: list[MetricSpec]

    _v_index_label = field_validator("index_label")(_check_label_name)
    _v_labels = field_validator("labels", mode="before")(_labels_before)

    @model_validator(mode="after")
    def _index_label_is_not_a_column_label(self) -> Self:
        if self.index_label in self.labels:
            raise ValueError(f"label {self.index_label!r} is both index_label and a column label")
        return self


class NamedMetric(_Strict):
    name: str
    help: str

    _v_name = field_validator("name")(_check_metric_name)


class UptimeSpec(_Strict):
    """Reboot detection from a TimeTicks uptime (1/100 s, wraps at 2^32): boot time and reboot count."""

    oid: str
    boot_time: NamedMetric
    reboots: NamedMetric | None = None

    _v_oid = field_validator("oid")(_check_oid)

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


class Profile(_Strict):
    name: str
    description: str = ""
    scalars: list[MetricSpec] = Field(default_factory=list)
    tables: list[TableSpec] = Field(default_factory=list)
    uptime: UptimeSpec | None = None

    def scalar_oids(self) -> list[OID]:
        """Every OID this profile GETs."""
        oids: list[OID] = []
        for m in self.scalars:
            if m.source is not None:
                oids.append(m.source.parsed)
            if m.fallback is not None:
                oids.append(m.fallback.parsed)
            oids.extend(label.parsed for label in m.labels.values())
            oids.extend(m.helper_oids())
        if self.uptime is not None:
            oids.append(self.uptime.parsed)
        return list(dict.fromkeys(oids))


class UnknownProfileError(Exception):
    """A profile name that no profile file has (``hatang profiles NAME``, agent/profile_catalog.py)."""


def _check_semantics(profile: Profile) -> list[tuple[str, str]]:
    """Rules that span fields: returned as (key path, problem) pairs."""
    problems: list[tuple[str, str]] = []
    types: dict[str, tuple[str, str]] = {}  # metric name -> (type, where first seen)

    def same_type(name: str, mtype: str, where: str) -> None:
        seen = types.setdefault(name, (mtype, where))
        if seen[0] != mtype:
            problems.append((where, f"metric {name!r} is a {mtype} here but a {seen[0]} at {seen[1]}"))

    for i, scalar in enumerate(profile.scalars):
        where = f"scalars[{i}]"
        if scalar.type != "info" and scalar.oid is None:
            problems.append((f"{where}.oid", "required for gauge and counter"))
        same_type(scalar.name, "gauge" if scalar.type == "info" else scalar.type, where)
    for t, table in enumerate(profile.tables):
        for i, metric in enumerate(table.metrics):
            where = f"tables[{t}].metrics[{i}]"
            if metric.type == "info" or metric.oid is None:
                problems.append((where, "table metrics need an oid and type gauge/counter"))
                continue
            if metric.labels:
                problems.append((f"{where}.labels", "table metrics take their labels from the table's "
                                 "labels; use const_labels for fixed ones"))
            clash = {table.index_label, *table.labels} & set(metric.const_labels)
            if clash:
                problems.append((f"{where}.const_labels", f"{sorted(clash)} already label the table's rows"))
            same_type(metric.name, metric.type, where)
    if profile.uptime is not None:
        same_type(profile.uptime.boot_time.name, "gauge", "uptime.boot_time")
        if profile.uptime.reboots is not None:
            same_type(profile.uptime.reboots.name, "counter", "uptime.reboots")
    return problems


def _load_file(path: Path) -> Profile:
    profile = configfile.load(Profile, path)
    if profile.name != path.stem:
        raise configfile.ConfigError(path, [("name", f"must equal the file name '{path.stem}'")])
    problems = _check_semantics(profile)
    if problems:
        raise configfile.ConfigError(path, problems)
    return profile


def load_profile_files(user_dir: Path | None = None) -> dict[str, tuple[Profile, Path]]:
    """Each profile with the file it came from; a user profile with a built-in's name replaces it."""
    found: dict[str, tuple[Profile, Path]] = {}
    dirs = [BUILTIN_DIR] + ([user_dir] if user_dir is not None else [])
    for directory in dirs:
        if not directory.is_dir():
            raise configfile.ConfigError(directory, [("", "profile directory not found")])
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = (_load_file(path), path)
    return found


def load_profiles(user_dir: Path | None = None) -> dict[str, Profile]:
    """Built-in profiles, then the user's (a user profile with a built-in's name replaces it)."""
    return {name: profile for name, (profile, _) in load_profile_files(user_dir).items()}

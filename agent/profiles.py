"""SNMP profiles: which OIDs to read and how they become metrics. Profiles are YAML data files.

Built-in profiles live in ``agent/profiles/*.yaml`` (package data); a user directory may add more or
override one by name. The format is documented in docs/profiles.md.

A profile may ``extends`` others: loading resolves that (after user profiles replaced built-ins by name),
so every :class:`Profile` returned by :func:`load_profiles` is merged and polls exactly its own OIDs
(:meth:`Profile.scalar_oids`, its tables). ``match`` says which devices ``profiles: auto`` gives it
(agent/profile_selection.py).

The models are frozen dataclasses; their rules are ``Annotated`` metadata (:mod:`hatang.config_types`)
and ``__post_init__`` checks, applied by pydantic when a profile file is validated (:mod:`hatang.configfile`,
imported by :func:`load_profile_files` only). The running agent receives its profiles checked by a child
process (agent/checked_config.py) and never imports pydantic.

Why this module is long: it is the profile format, one tree of strict models whose rules span fields and
files (a metric's type across a profile, ``extends`` across profiles); split, the format would be read in
several places and the loader would import them all back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from agent.counter_sanity import COUNTER_JUMPS_METRIC
from hatang.config_errors import ConfigError
from hatang.config_types import After, Before
from wire.names import LABEL_NAME, METRIC_NAME, RESERVED_LABELS, RESERVED_METRIC_PREFIXES, RESERVED_METRICS

BUILTIN_DIR = Path(__file__).with_name("profiles")
_OID = re.compile(r"[0-2](\.\d+)+")

OID = tuple[int, ...]
POLL_ERRORS_METRIC = "hatang_device_poll_errors_total"  # the poller's own family (docs/metrics.md)
# families the agent adds to polls itself (the poller, agent/counter_sanity.py): not for profiles
AGENT_METRICS = frozenset({POLL_ERRORS_METRIC, COUNTER_JUMPS_METRIC})


def parse_oid(text: str) -> OID:
    return tuple(int(p) for p in text.strip(".").split("."))


# Every profile model is a frozen dataclass in which unknown keys are errors (hatang.config_types explains
# how pydantic reads the rules; this module does not import it).
_STRICT = {"extra": "forbid"}


def _check_oid(value: str) -> str:
    value = value.strip().lstrip(".")
    if _OID.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0")
    return value


NumericOid = Annotated[str, After(_check_oid)]


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


def _check_label_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        _check_label_name(name)
    return value


def _values_before(value: Any) -> Any:
    """One value or a list; ints and strings compare as text (``5`` matches an INTEGER 5)."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in items]


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a value comes from: an OID and a multiplier."""

    __pydantic_config__ = _STRICT
    oid: NumericOid
    scale: float = 1.0  # a scale of 1/n (0.1, 0.01) divides by n: decimal values stay exact
    # fallbacks only: also used where the primary reads 0 (ifHighSpeed 0 on sub-interfaces and slow
    # links, beside a real ifSpeed); a 0 from both stays 0
    when_primary_zero: bool = False

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


@dataclass(frozen=True, kw_only=True)
class ValidRange:
    """The raw readings a MIB allows (before scale); a reading outside is unusable: counted and logged."""

    __pydantic_config__ = _STRICT
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")

    def admits(self, number: float) -> bool:
        return (self.min is None or number >= self.min) and (self.max is None or number <= self.max)

    def describe(self) -> str:
        low = "" if self.min is None else f"{self.min:g}"
        high = "" if self.max is None else f"{self.max:g}"
        return f"{low}..{high}"


def _index_arcs(value: list[int]) -> list[int]:
    if any(arc < 1 for arc in value):
        raise ValueError("arcs are 1-based positions in the row index: 1, 2, ...")
    return value


def _texts(value: Any) -> Any:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    """A label read from an OID (scalars) or a column (tables), written ``name: OID`` when plain."""

    __pydantic_config__ = _STRICT
    oid: NumericOid
    last_arc: bool = False  # an OBJECT IDENTIFIER value keeps only its last arc (1.3.6.1.2.1.25.2.1.4 -> 4)
    # rendered value -> label text; others unchanged
    map: Annotated[dict[str, str], Before(_texts)] = field(default_factory=dict)
    # the row's value is at these arcs (1-based) of the row index, not the whole index (agent/index_parts.py)
    index_arcs: Annotated[list[int], After(_index_arcs)] = field(default_factory=list)
    # the row's value is in `oid` at the row whose index is this column's value, same row (tables only):
    # cpmCPUTotalPhysicalIndex -> entPhysicalName. A value of 0, none, or no text there: the row index
    via: NumericOid | None = None

    def __post_init__(self) -> None:
        if self.via is not None and self.index_arcs:
            raise ValueError("give via or index_arcs, not both")

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)

    @cached_property
    def via_parsed(self) -> OID | None:
        return None if self.via is None else parse_oid(self.via)


def _check_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


RegularExpression = Annotated[str, After(_check_pattern)]
_Values = Annotated[list[str] | None, Before(_values_before)]


@dataclass(frozen=True, kw_only=True)
class Condition:
    """Keep a row (or scalar) only where the value at ``oid`` is one of ``any_of`` / none of ``none_of`` /
    has text in which the regular expression ``matches`` is found."""

    __pydantic_config__ = _STRICT
    oid: NumericOid
    any_of: _Values = None  # the value must be present and one of these
    none_of: _Values = None  # an absent value passes
    matches: RegularExpression | None = None  # the value must be present and its text contain a match

    def __post_init__(self) -> None:
        if sum(test is not None for test in (self.any_of, self.none_of, self.matches)) != 1:
            raise ValueError("give exactly one of any_of, none_of or matches")

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return None if self.matches is None else re.compile(self.matches)


@dataclass(frozen=True, kw_only=True)
class ScaleFrom:
    """Per-row decimal scaling read from the device (ENTITY-SENSOR-MIB and CISCO-ENTITY-SENSOR-MIB)."""

    __pydantic_config__ = _STRICT
    si_prefix: NumericOid | None = None  # value 1 (yocto) .. 9 (units) .. 17 (yotta): x 10^(3*(v-9))
    precision: NumericOid | None = None  # value p: x 10^-p

    def __post_init__(self) -> None:
        if self.si_prefix is None and self.precision is None:
            raise ValueError("give si_prefix, precision or both")

    def oids(self) -> list[OID]:
        return [parse_oid(o) for o in (self.si_prefix, self.precision) if o is not None]


def _listed(value: Any) -> Any:
    return value if value is None or isinstance(value, list) else [value]


MetricName = Annotated[str, After(_check_metric_name)]
LabelName = Annotated[str, After(_check_label_name)]
# label name -> OID (tables: column); a plain OID string is short for {oid: ...}
LabelSpecs = Annotated[dict[str, LabelSpec], Before(_labels_before)]


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    __pydantic_config__ = _STRICT
    name: MetricName
    type: Literal["gauge", "counter", "info"]
    help: str
    oid: NumericOid | None = None  # not used by type 'info'
    scale: float = 1.0
    fallback: Source | None = None  # read where `oid` is absent (e.g. 32-bit counters under HC ones)
    labels: LabelSpecs = field(default_factory=dict)  # info metrics: label name -> OID
    # fixed labels, e.g. {mode: user}
    const_labels: Annotated[dict[str, str], After(_check_label_names)] = field(default_factory=dict)
    multiply_by: NumericOid | None = None  # x the number at this OID (tables: this column, same row)
    add: NumericOid | None = None  # + the number at this OID (same row), before scale: used + free = total
    scale_from: ScaleFrom | None = None
    filter: list[Condition] = field(default_factory=list)  # all must hold, else no sample
    equals: Annotated[list[int] | None, Before(_listed)] = None  # 1 if the raw value is one of these, else 0
    as_timestamp: bool = False  # the value is a sysUpTime reading (seconds): publish it as unix time
    # raw readings that mean "unknown": no sample
    unknown: Annotated[list[float], Before(_listed)] = field(default_factory=list)
    valid: ValidRange | None = None  # raw readings the MIB allows; others are unusable (counted, logged)
    as_unsigned: bool = False  # a negative Integer32 is an overflowed unsigned value: add 2^32

    def __post_init__(self) -> None:
        if self.add is not None and self.equals is not None:
            raise ValueError("add sums two readings and equals makes a yes/no value of one: give one of them")

    @cached_property
    def source(self) -> Source | None:
        return None if self.oid is None else Source(oid=self.oid, scale=self.scale)

    @cached_property
    def plain(self) -> Source | None:
        """The source, when the value is its number scaled and nothing else applies (no fallback, filter,
        equals, add, multiply_by, scale_from, as_timestamp, unknown, valid or as_unsigned): the mapping's
        short path (agent/transforms.py metric_value)."""
        if (self.fallback is not None or self.filter or self.equals is not None or self.add is not None
                or self.multiply_by is not None or self.scale_from is not None or self.as_timestamp
                or self.unknown or self.valid is not None or self.as_unsigned):
            return None
        return self.source

    @cached_property
    def direct(self) -> Direct | None:
        """The source, when a number there is the value (scaled) once the MIB's ``valid`` range admits it:
        no filter, equals, add, multiply_by, scale_from, as_timestamp, unknown or as_unsigned. A fallback
        is read only where the source has no number (or reads 0, for ``when_primary_zero``). The table
        mapping's short path (agent/mapping.py map_table); anything else there takes the full path."""
        if (self.source is None or self.filter or self.equals is not None or self.add is not None
                or self.multiply_by is not None or self.scale_from is not None or self.as_timestamp
                or self.unknown or self.as_unsigned):
            return None
        zero = self.fallback is not None and self.fallback.when_primary_zero
        return Direct(self.source, self.valid, zero_falls_back=zero)

    def helper_oids(self) -> list[OID]:
        """OIDs (columns) read besides the value: multiply_by, add, scale_from, filter."""
        oids = [parse_oid(self.multiply_by)] if self.multiply_by else []
        if self.add:
            oids.append(parse_oid(self.add))
        if self.scale_from is not None:
            oids.extend(self.scale_from.oids())
        oids.extend(c.parsed for c in self.filter)
        return oids


@dataclass(frozen=True, slots=True)
class Direct:
    """A metric whose value is its source's number, scaled (:attr:`MetricSpec.direct`)."""

    source: Source
    valid: ValidRange | None
    zero_falls_back: bool  # a 0 there is not the value yet: the fallback may give another (when_primary_zero)


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """A conceptual table: metric columns and label columns share one row index."""

    __pydantic_config__ = _STRICT
    name: str
    index_label: LabelName
    labels: LabelSpecs = field(default_factory=dict)  # label name -> column
    metrics: list[MetricSpec]

    def __post_init__(self) -> None:
        if self.index_label in self.labels:
            raise ValueError(f"label {self.index_label!r} is both index_label and a column label")


@dataclass(frozen=True, kw_only=True)
class NamedMetric:
    __pydantic_config__ = _STRICT
    name: MetricName
    help: str


@dataclass(frozen=True, kw_only=True)
class UptimeSpec:
    """Reboot detection from a TimeTicks uptime (1/100 s, wraps at 2^32): boot time and reboot count."""

    __pydantic_config__ = _STRICT
    oid: NumericOid
    boot_time: NamedMetric
    reboots: NamedMetric | None = None

    @cached_property
    def parsed(self) -> OID:
        return parse_oid(self.oid)


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _prefixes(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("give at least one sysObjectID prefix, or leave the key out")
    return [_check_oid(v) for v in value]


def _oids(value: list[str]) -> list[str]:
    return [_check_oid(v) for v in value]


Subtrees = Annotated[list[str], After(_oids), Before(_one_or_list)]


@dataclass(frozen=True, kw_only=True)
class Match:
    """Which devices ``profiles: auto`` gives the profile (docs/profiles.md, "Automatic selection").

    Identity: a sysObjectID under one of ``sys_object_id`` (whole arcs), or a sysDescr in which the regular
    expression ``sys_descr`` is found; with neither key every device qualifies. Then every ``answers``
    subtree must hold at least one object on the device, and one ``answers_any`` subtree at least (when
    given: a vendor's alternative tables, one per model or software generation).
    """

    __pydantic_config__ = _STRICT
    # sysObjectID prefixes, numeric
    sys_object_id: Annotated[list[str] | None, After(_prefixes), Before(_one_or_list)] = None
    sys_descr: RegularExpression | None = None  # regular expression searched in sysDescr
    answers: Subtrees = field(default_factory=list)  # subtrees the device must answer (all of them)
    # subtrees of which the device must answer at least one (alternative tables; empty: no such test)
    answers_any: Subtrees = field(default_factory=list)

    @cached_property
    def prefixes(self) -> list[OID]:
        return [parse_oid(o) for o in self.sys_object_id or []]

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return None if self.sys_descr is None else re.compile(self.sys_descr)

    @cached_property
    def answer_oids(self) -> list[OID]:
        return [parse_oid(o) for o in self.answers]

    @cached_property
    def any_answer_oids(self) -> list[OID]:
        return [parse_oid(o) for o in self.answers_any]

    def answered(self, answered: Set[OID]) -> bool:
        """The ``answers`` half: every ``answers`` subtree and, if given, one ``answers_any`` subtree is in
        ``answered`` (the subtrees in which the device has an object)."""
        return (all(oid in answered for oid in self.answer_oids)
                and (not self.any_answer_oids or any(oid in answered for oid in self.any_answer_oids)))


def _unique_bases(value: list[str]) -> list[str]:
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} listed twice")
    return value


@dataclass(frozen=True, kw_only=True)
class Profile:
    __pydantic_config__ = _STRICT
    name: str
    description: str = ""
    # profiles whose scalars, tables and uptime this one includes (same-named metrics and tables defined
    # here replace theirs); resolved at load, see load_profile_files
    extends: Annotated[list[str], After(_unique_bases), Before(_one_or_list)] = field(default_factory=list)
    match: Match | None = None  # None: never chosen by `profiles: auto`, only by name
    scalars: list[MetricSpec] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
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


AUTO = "auto"  # devices[].profiles: choose by the device (agent/profile_selection.py); no profile's name


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
        problems.extend((f"{where}.labels.{name}", "via and index_arcs look labels up in table rows: "
                         "use them in a table's labels") for name, label in scalar.labels.items()
                        if label.via is not None or label.index_arcs)
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
    from hatang import configfile  # pydantic: only where a file is validated

    profile = configfile.load(Profile, path)
    if profile.name != path.stem:
        raise ConfigError(path, [("name", f"must equal the file name '{path.stem}'")])
    if profile.name == AUTO:
        raise ConfigError(path, [("name", f"'{AUTO}' is reserved (devices[].profiles: {AUTO} "
                                                     "chooses profiles by the device); rename the file")])
    problems = _check_semantics(profile)
    if problems:
        raise ConfigError(path, problems)
    return profile


def _metric_names(profile: Profile) -> set[str]:
    names = {m.name for m in profile.scalars} | {m.name for t in profile.tables for m in t.metrics}
    if profile.uptime is not None:
        names.add(profile.uptime.boot_time.name)
        if profile.uptime.reboots is not None:
            names.add(profile.uptime.reboots.name)
    return names


def _merge(profile: Profile, bases: list[Profile]) -> tuple[Profile, list[tuple[str, str]]]:
    """``profile`` with its (already merged) bases included: their scalars, tables and uptime first, less
    every metric whose name ``profile`` defines and every table whose name it defines."""
    own_metrics, own_tables = _metric_names(profile), {t.name for t in profile.tables}
    scalars: list[MetricSpec] = []
    tables: dict[str, tuple[TableSpec, str]] = {}  # name -> (table, base it came from)
    uptime: tuple[UptimeSpec, str] | None = None
    problems: list[tuple[str, str]] = []
    for base in bases:
        scalars += [m for m in base.scalars if m.name not in own_metrics and m not in scalars]
        for table in base.tables:
            metrics = [m for m in table.metrics if m.name not in own_metrics]
            if table.name in own_tables or not metrics:
                continue
            kept = (table if len(metrics) == len(table.metrics)
                    else replace(table, metrics=metrics))
            seen = tables.setdefault(table.name, (kept, base.name))
            if seen[0] != kept:
                problems.append(("extends", f"profiles {seen[1]} and {base.name} both have a table named "
                                            f"{table.name!r}: define a table of that name here"))
        if base.uptime is not None and profile.uptime is None:
            if uptime is not None and uptime[0] != base.uptime:
                problems.append(("extends", f"profiles {uptime[1]} and {base.name} both have an uptime "
                                            "block: give one here"))
            uptime = uptime or (base.uptime, base.name)
    merged = replace(profile, scalars=scalars + profile.scalars,
                     tables=[t for t, _ in tables.values()] + profile.tables,
                     uptime=profile.uptime if uptime is None else uptime[0])
    problems += [(f"{key} (with the profiles it extends)", problem)
                 for key, problem in _check_semantics(merged)]
    return merged, problems


def _resolve_extends(found: dict[str, tuple[Profile, Path]]) -> dict[str, tuple[Profile, Path]]:
    """Every profile merged with the profiles it extends (transitively); unknown bases and cycles are
    errors naming the file and key."""
    merged: dict[str, Profile] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Profile:
        done = merged.get(name)
        if done is not None:
            return done
        profile, path = found[name]
        bases = []
        for i, base in enumerate(profile.extends):
            if base not in found:
                raise ConfigError(path, [(f"extends[{i}]", f"unknown profile {base!r}; known: "
                                                                      f"{', '.join(sorted(found))}")])
            if base in (*chain, name):
                loop = chain[chain.index(base):] if base in chain else ()
                cycle = " -> ".join((*loop, name, base))
                raise ConfigError(path, [(f"extends[{i}]", f"profiles extend each other in a "
                                                                      f"cycle: {cycle}")])
            bases.append(resolve(base, (*chain, name)))
        result, problems = _merge(profile, bases) if bases else (profile, [])
        if problems:
            raise ConfigError(path, problems)
        merged[name] = result
        return result

    return {name: (resolve(name, ()), path) for name, (_, path) in found.items()}


def load_profile_files(user_dir: Path | None = None) -> dict[str, tuple[Profile, Path]]:
    """Each profile (merged with the profiles it extends) with the file it came from; a user profile with a
    built-in's name replaces it, also as the base of the profiles that extend it."""
    found: dict[str, tuple[Profile, Path]] = {}
    dirs = [BUILTIN_DIR] + ([user_dir] if user_dir is not None else [])
    for directory in dirs:
        if not directory.is_dir():
            raise ConfigError(directory, [("", "profile directory not found")])
        for path in sorted(directory.glob("*.yaml")):
            found[path.stem] = (_load_file(path), path)
    return _resolve_extends(found)


def extended_by(profiles: Mapping[str, Profile], name: str) -> set[str]:
    """The profiles ``name`` extends, directly or through others (names not in ``profiles`` skipped)."""
    out: set[str] = set()
    todo = list(profiles[name].extends) if name in profiles else []
    while todo:
        base = todo.pop()
        if base not in out and base in profiles:
            out.add(base)
            todo.extend(profiles[base].extends)
    return out


def load_profiles(user_dir: Path | None = None) -> dict[str, Profile]:
    """Built-in profiles, then the user's (a user profile with a built-in's name replaces it)."""
    return {name: profile for name, (profile, _) in load_profile_files(user_dir).items()}

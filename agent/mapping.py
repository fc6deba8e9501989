"""Pure mapping from SNMP values to metric families. No I/O; the only place that interprets SNMP types.

Input: a profile and what was read for it (scalars by OID; table columns by column OID, each a mapping
of row index -> value). Output: :class:`wire.Family` objects ready to publish. Per-value steps (numbers,
label text, filters, device scaling) are in :mod:`agent.transforms`; uptime arithmetic in
:mod:`agent.uptime`.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.index_parts import sub_index
from agent.profiles import LabelSpec, MetricSpec, Profile, TableSpec, UptimeSpec, parse_oid
from agent.snmp.values import ABSENT_KINDS, OID, SnmpValue, oid_text
from agent.transforms import MAX_LABEL_CHARS, direct_number, label_text, label_value, metric_value, numeric
from agent.uptime import Epoch, UptimeState
from wire.messages import Family, Labels, MetricType, Sample

__all__ = [
    "MAX_LABEL_CHARS", "BadValue", "Column", "TablePlan", "label_text", "map_scalars", "map_table",
    "map_uptime", "merge_families", "numeric", "row_indices", "rows_by_index", "table_columns",
    "table_plan", "uptime_seconds",
]

Column = Mapping[str, SnmpValue]  # row index ("1", "3.1.2") -> value
_INDEX = re.compile(r"\d+(\.\d+)*")  # a row index, as a `via` column's value must read


@dataclass(frozen=True, slots=True)
class BadValue:
    """A value the device sent that could not be used (wrong type, outside the MIB's range)."""

    metric: str
    oid: OID  # the scalar's OID, or the table column's
    index: str  # the row index ("" for scalars)
    problem: str

    def describe(self) -> str:
        where = oid_text(self.oid) + (f".{self.index}" if self.index else "")
        return f"{self.metric} from {where}: {self.problem}"


def _metric_type(spec: MetricSpec) -> MetricType:
    return "counter" if spec.type == "counter" else "gauge"


def _with_const(labels: Iterable[tuple[str, str]], spec: MetricSpec) -> Labels:
    return tuple(sorted((*labels, *spec.const_labels.items())))


def merge_families(families: Iterable[Family]) -> list[Family]:
    """One family per metric name, in first-seen order (specs sharing a name differ by const_labels)."""
    merged: dict[str, Family] = {}
    for family in families:
        seen = merged.get(family.name)
        merged[family.name] = family if seen is None else Family(
            seen.name, seen.type, seen.help, seen.samples + family.samples)
    return list(merged.values())


def map_scalars(profile: Profile, values: Mapping[OID, SnmpValue], *, epoch: Epoch | None = None,
                bad: list[BadValue] | None = None) -> list[Family]:
    """The profile's scalar families; unusable values are appended to ``bad`` when given."""
    report = None if bad is None else functools.partial(_report_cell, bad, "")
    families: list[Family] = []
    for spec in profile.scalars:
        if spec.type == "info":
            pairs = [(name, label_value(label, values.get(label.parsed)))
                     for name, label in spec.labels.items()]
            if any(v for _, v in pairs):
                families.append(Family(spec.name, "gauge", spec.help, (Sample(_with_const(pairs, spec), 1),)))
            continue
        number = metric_value(spec, values.get, epoch, report)
        if number is not None:
            families.append(Family(spec.name, _metric_type(spec), spec.help,
                                   (Sample(_with_const((), spec), number),)))
    return merge_families(families)


def uptime_seconds(spec: UptimeSpec, values: Mapping[OID, SnmpValue]) -> float | None:
    """The uptime reading in seconds (TimeTicks / 100), or None if absent."""
    return numeric(values.get(spec.parsed), 0.01)


def map_uptime(spec: UptimeSpec, state: UptimeState) -> list[Family]:
    families = [Family(spec.boot_time.name, "gauge", spec.boot_time.help,
                       (Sample((), round(state.boot_time, 3)),))]
    if spec.reboots is not None:
        families.append(Family(spec.reboots.name, "counter", spec.reboots.help, (Sample((), state.reboots),)))
    return families


@dataclass(frozen=True, slots=True)
class TablePlan:
    """What to walk for a table: metric and filter columns every poll, slow (label-like) ones less often."""

    metric_columns: tuple[tuple[OID, OID | None], ...]  # (value column, fallback column or None)
    filter_columns: tuple[OID, ...]  # other columns read every poll: filters (not slow) and `add` columns
    slow_columns: tuple[OID, ...]  # labels (and their `via` columns), multiply_by and scale_from columns
    zero_fallbacks: frozenset[OID] = frozenset()  # value columns whose fallback is also read where they are 0
    # every label column (and `via` column) is a slow one: a row's labels change only when those are read
    # again, so the poller keeps them with the slow columns (map_table's ``row_labels``)
    steady_labels: bool = False

    @property
    def walked_columns(self) -> tuple[OID, ...]:
        """The columns read every poll (value and filter columns), each once."""
        return tuple(dict.fromkeys((*(column for column, _ in self.metric_columns), *self.filter_columns)))


def table_plan(table: TableSpec) -> TablePlan:
    metric: dict[tuple[OID, OID | None], None] = {}
    for spec in table.metrics:
        if spec.source is not None:
            metric[(spec.source.parsed, spec.fallback.parsed if spec.fallback else None)] = None
    values = {column for column, _ in metric} | {fb for _, fb in metric if fb is not None}
    # summands change like values: read every poll, even where they also label the rows
    addends = dict.fromkeys(parse_oid(spec.add) for spec in table.metrics if spec.add is not None)
    slow: dict[OID, None] = {}
    for label in table.labels.values():
        slow[label.parsed] = None
        if label.via_parsed is not None:
            slow[label.via_parsed] = None
    for spec in table.metrics:
        slow.update(dict.fromkeys(_slow_helpers(spec)))
    filters = dict.fromkeys(c.parsed for spec in table.metrics for c in spec.filter)
    every = [c for c in addends if c not in values]
    every += [c for c in filters if c not in slow and c not in values and c not in addends]
    zero = frozenset(spec.source.parsed for spec in table.metrics if spec.source is not None
                     and spec.fallback is not None and spec.fallback.when_primary_zero)
    slow_columns = tuple(c for c in slow if c not in values and c not in addends)
    label_columns = {c for label in table.labels.values() for c in (label.parsed, label.via_parsed)
                     if c is not None}
    return TablePlan(tuple(metric), tuple(every), slow_columns, zero,
                     steady_labels=label_columns <= set(slow_columns))


def _slow_helpers(spec: MetricSpec) -> list[OID]:
    oids = [] if spec.multiply_by is None else [parse_oid(spec.multiply_by)]
    if spec.scale_from is not None:
        oids.extend(spec.scale_from.oids())
    return oids


def table_columns(table: TableSpec) -> list[tuple[OID, OID | None]]:
    """(column, fallback column) pairs to walk; label and helper columns have no fallback."""
    plan = table_plan(table)
    others = ((c, None) for c in (*plan.filter_columns, *plan.slow_columns))
    return list(dict.fromkeys([*plan.metric_columns, *others]))


def row_indices(table: TableSpec, columns: Mapping[OID, Column]) -> frozenset[str]:
    """Row indices that have a value in some metric column (or its fallback)."""
    return frozenset(_indices(table, columns))


def _indices(table: TableSpec, columns: Mapping[OID, Column]) -> dict[str, None]:
    indices: dict[str, None] = {}
    for spec in table.metrics:
        for src in (spec.source, spec.fallback):
            if src is not None:
                indices.update(dict.fromkeys(columns.get(src.parsed, {})))
    return indices


def map_table(table: TableSpec, columns: Mapping[OID, Column], *, epoch: Epoch | None = None,
              bad: list[BadValue] | None = None, row_labels: dict[str, Labels] | None = None) -> list[Family]:
    """One family per metric; one sample per row index that has a value (or fallback value).
    Unusable values are appended to ``bad`` when given. ``row_labels``, when given, keeps each row's
    label set from one call to the next: for a caller that passes the same label columns again
    (:attr:`TablePlan.steady_labels`) and a new dict when it reads them again."""
    specs = table.metrics
    samples: list[list[Sample]] = [[] for _ in specs]
    bad_by_metric: list[list[BadValue]] = [[] for _ in specs]  # reported metric by metric, each in row order
    empty: Column = {}
    # a metric whose value is a column's number (most of them) is read from that column directly
    shortcuts = [None if spec.direct is None else (columns.get(spec.direct.source.parsed, empty), spec.direct)
                 for spec in specs]
    work = list(zip(specs, samples, bad_by_metric, shortcuts, strict=True))
    cell: list[BadValue] = []  # what one metric reported in one row
    for index in _indices(table, columns):  # row by row: one getter and one label set per row
        labels = None if row_labels is None else row_labels.get(index)
        if labels is None:
            pairs = [(table.index_label, index)]
            pairs.extend((name, _row_label(columns, label, index)) for name, label in table.labels.items())
            labels = tuple(sorted(pairs))
            if row_labels is not None:
                row_labels[index] = labels
        report = None if bad is None else functools.partial(_report_cell, cell, index)

        def get(column: OID, index: str = index) -> SnmpValue | None:
            return columns.get(column, empty).get(index)

        for spec, out, reported, shortcut in work:
            if shortcut is not None:
                value = shortcut[0].get(index)
                number = None if value is None else direct_number(shortcut[1], value)
                if number is not None:
                    out.append(Sample(_with_const(labels, spec) if spec.const_labels else labels, number))
                    continue
            number = metric_value(spec, get, epoch, report)
            if cell:
                reported.extend(cell)
                cell.clear()
            if number is not None:
                out.append(Sample(_with_const(labels, spec) if spec.const_labels else labels, number))
    if bad is not None:
        bad.extend(itertools.chain.from_iterable(bad_by_metric))
    return merge_families(Family(spec.name, _metric_type(spec), spec.help, tuple(out))
                          for spec, out in zip(specs, samples, strict=True) if out)


def _row_label(columns: Mapping[OID, Column], label: LabelSpec, index: str) -> str:
    """A label's text for a row: its column at the row's index; at the part of it that ``index_arcs``
    names (lldpLocPortTable by lldpRemTable's localPortNum; :mod:`agent.index_parts`); or, with ``via``, at
    the row the ``via`` column of this row points to (entPhysicalName of cpmCPUTotalPhysicalIndex), the
    row index where that column reads 0 or nothing, or the row it points to has no text."""
    if label.via_parsed is not None:
        return _label_via(columns, label, label.via_parsed, index)
    key = sub_index(index, label.index_arcs) if label.index_arcs else index
    return label_value(label, None if key is None else columns.get(label.parsed, {}).get(key))


def _label_via(columns: Mapping[OID, Column], label: LabelSpec, via: OID, index: str) -> str:
    pointer = columns.get(via, {}).get(index)
    key = None if pointer is None or pointer.kind in ABSENT_KINDS else label_text(pointer)
    if not key or key == "0" or not _INDEX.fullmatch(key):
        return index
    return label_value(label, columns.get(label.parsed, {}).get(key)) or index


def _report_cell(bad: list[BadValue], index: str, metric: str, oid: OID, problem: str) -> None:
    bad.append(BadValue(metric, oid, index, problem))


def rows_by_index(column: OID, varbinds: list[tuple[OID, SnmpValue]]) -> dict[str, SnmpValue]:
    """Walk result of one column -> {row index: value}."""
    depth = len(column)
    oids = list(map(_first_item, varbinds))
    if set(map(len, oids)) <= {depth + 1}:  # one-arc indices (ifIndex...): the usual case, at C speed
        return dict(zip(map(str, map(operator.itemgetter(depth), oids)), map(_second_item, varbinds),
                        strict=True))
    return {str(oid[depth]) if len(oid) == depth + 1 else ".".join(map(str, oid[depth:])): value
            for oid, value in varbinds}


_first_item, _second_item = operator.itemgetter(0), operator.itemgetter(1)

"""Pure mapping from SNMP values to metric families. No I/O; the only place that interprets SNMP types.

Input: a profile and what was read for it (scalars by OID; table columns by column OID, each a mapping
of row index -> value). Output: :class:`wire.Family` objects ready to publish.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping

from agent.profiles import MetricSpec, Profile, TableSpec, parse_oid
from agent.varbind import NUMERIC_KINDS, OID, SnmpValue
from wire.messages import Family, Labels, MetricType, Sample

Column = Mapping[str, SnmpValue]  # row index ("1", "3.1.2") -> value
MAX_LABEL_CHARS = 256


def numeric(value: SnmpValue | None, scale: float = 1.0) -> float | None:
    """The number a value stands for, scaled; None where the value is absent or not a number."""
    if value is None:
        return None
    if value.kind in NUMERIC_KINDS and isinstance(value.value, int):
        # Keep ints unscaled so Counter64 values travel exactly; float64 holds 2**53 exactly.
        return value.value if scale == 1.0 else value.value * scale
    if value.kind in ("octets", "opaque") and isinstance(value.value, bytes):
        try:
            number = float(value.value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
        return number * scale if math.isfinite(number) else None
    return None


def _is_printable(text: str) -> bool:
    return all(ch in "\t\n\r" or unicodedata.category(ch)[0] != "C" for ch in text)


def label_text(value: SnmpValue | None) -> str:
    """Render a value as a label: UTF-8 text (Vietnamese included), hex for binary, never an error."""
    if value is None or value.value is None:
        return ""
    raw = value.value
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str):
        return raw[:MAX_LABEL_CHARS]
    raw = raw.rstrip(b"\x00")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        if text.count("\ufffd") * 2 > len(text):  # mostly undecodable: binary, show as hex
            return ":".join(f"{b:02x}" for b in raw)[:MAX_LABEL_CHARS]
    if not _is_printable(text):
        if sum(1 for ch in text if unicodedata.category(ch)[0] == "C") * 2 > len(text):
            return ":".join(f"{b:02x}" for b in raw)[:MAX_LABEL_CHARS]
        text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())[:MAX_LABEL_CHARS]


def _metric_type(spec: MetricSpec) -> MetricType:
    return "counter" if spec.type == "counter" else "gauge"


def map_scalars(profile: Profile, values: Mapping[OID, SnmpValue]) -> list[Family]:
    families: list[Family] = []
    for spec in profile.scalars:
        if spec.type == "info":
            labels = tuple(sorted((name, label_text(values.get(parse_oid(oid)))) for name, oid
                                  in spec.labels.items()))
            if any(v for _, v in labels):
                families.append(Family(spec.name, "gauge", spec.help, (Sample(labels, 1),)))
            continue
        number = _read(spec, values.get)
        if number is not None:
            families.append(Family(spec.name, _metric_type(spec), spec.help, (Sample((), number),)))
    return families


def _read(spec: MetricSpec, get: Callable[[OID], SnmpValue | None]) -> float | None:
    """The spec's value from its OID, else from its fallback OID."""
    for src in (spec.source, spec.fallback):
        if src is not None:
            number = numeric(get(src.parsed), src.scale)
            if number is not None:
                return number
    return None


def table_columns(table: TableSpec) -> list[tuple[OID, OID | None]]:
    """(column, fallback column) pairs to walk; label columns have no fallback."""
    pairs: list[tuple[OID, OID | None]] = []
    for spec in table.metrics:
        if spec.source is not None:
            pairs.append((spec.source.parsed, spec.fallback.parsed if spec.fallback else None))
    pairs.extend((parse_oid(oid), None) for oid in table.labels.values())
    return list(dict.fromkeys(pairs))


def map_table(table: TableSpec, columns: Mapping[OID, Column]) -> list[Family]:
    """One family per metric; one sample per row index that has a value (or fallback value)."""
    indices: dict[str, None] = {}
    for spec in table.metrics:
        for src in (spec.source, spec.fallback):
            if src is not None:
                indices.update(dict.fromkeys(columns.get(src.parsed, {})))
    row_labels: dict[str, Labels] = {}
    for index in indices:
        pairs = [(table.index_label, index)]
        pairs.extend((name, label_text(columns.get(parse_oid(oid), {}).get(index)))
                     for name, oid in table.labels.items())
        row_labels[index] = tuple(sorted(pairs))

    families: list[Family] = []
    for spec in table.metrics:
        samples = []
        for index in indices:
            number = _read(spec, lambda column: columns.get(column, {}).get(index))  # noqa: B023
            if number is not None:
                samples.append(Sample(row_labels[index], number))
        if samples:
            families.append(Family(spec.name, _metric_type(spec), spec.help, tuple(samples)))
    return families


def rows_by_index(column: OID, varbinds: list[tuple[OID, SnmpValue]]) -> dict[str, SnmpValue]:
    """Walk result of one column -> {row index: value}."""
    depth = len(column)
    return {".".join(map(str, oid[depth:])): value for oid, value in varbinds}

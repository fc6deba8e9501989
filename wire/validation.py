"""Checks of decoded JSON values against the wire contract: the building blocks of the decoders.

:class:`DecodeError` (with its machine-readable ``reason``), the size :class:`Limits`, and one check per
kind of field (strings, numbers, timestamps, sequence numbers, label sets, a metric family's name, type
and help). :mod:`wire.codec` decodes whole payloads with them; the collector's fast path
(collector/ingest.py) uses the same ones so that both take exactly the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from wire.messages import ConfigRejection, Labels, MetricType
from wire.names import (
    LABEL_NAME,
    METRIC_NAME,
    METRIC_TYPES,
    RESERVED_LABELS,
    RESERVED_METRIC_PREFIXES,
    RESERVED_METRICS,
)


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # json | version | schema | too_large | too_many_samples | identity
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    # One poll of the largest real device seen (a Ruijie M18000 wireless controller, 3,271 interfaces:
    # 52,340 samples, 0.93 MB in the compact form) fits with room to spare.
    max_payload_bytes: int = 4 << 20
    max_samples: int = 200_000
    max_label_length: int = 1024
    max_labels: int = 64  # labels per sample


DEFAULT_LIMITS = Limits()

# Integers travel exactly (Counter64 up to 2**64 - 1); anything wider cannot be a sample value and
# would not parse as a Prometheus float once rendered.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1
MAX_ABS_FLOAT = 1e300
# Sane unix times (2001-09-09 .. 2286-11-20) in seconds.
MIN_TS, MAX_TS = 1e9, 1e10
MAX_SEQ = 2**63 - 1


def fail(reason: str, detail: str) -> NoReturn:
    raise DecodeError(reason, detail)


def string_field(doc: Mapping[str, Any], key: str, limits: Limits) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        fail("schema", f"{key} must be a string")
    if len(value) > limits.max_label_length:
        fail("schema", f"{key} longer than {limits.max_label_length}")
    return check_text(value, key)


def optional_string_field(doc: Mapping[str, Any], key: str, limits: Limits) -> str | None:
    return None if doc.get(key) is None else string_field(doc, key, limits)


def check_text(value: str, where: str) -> str:
    """Reject lone surrogates (JSON escapes like \\ud800): they cannot be written out as UTF-8 again."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            fail("schema", f"{where}: string is not valid Unicode")
    return value


def number_field(doc: Mapping[str, Any], key: str, low: float | None = None,
                 high: float | None = None) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail("schema", f"{key} must be a number")
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_ABS_FLOAT):
        fail("schema", f"{key} must be finite and at most {MAX_ABS_FLOAT:g} in size")
    if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
        fail("schema", f"{key} is outside the 64-bit range")
    if (low is not None and value < low) or (high is not None and value > high):
        fail("schema", f"{key} must be within [{low:g}, {high:g}]")
    return value


def timestamp_field(doc: Mapping[str, Any], key: str = "ts") -> float:
    return number_field(doc, key, MIN_TS, MAX_TS)


def seq_field(doc: Mapping[str, Any]) -> int:
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        fail("schema", "seq must be an integer from 1 to 2**63 - 1")
    return seq


def bool_field(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        fail("schema", f"{key} must be true or false")
    return value


def list_field(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        fail("schema", f"{key} must be a list")
    return value


def profile_map_field(doc: Mapping[str, Any], key: str, limits: Limits,
                      is_name: Callable[[str], bool]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """An optional object of device name -> list of profile names (a status's ``profiles``), sorted."""
    raw = doc.get(key, {})
    if not isinstance(raw, dict):
        fail("schema", f"{key} must be an object")
    out = []
    for device, names in raw.items():
        if not is_name(device):
            fail("schema", f"{key}: {device[:64]!r} is not a device name")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            fail("schema", f"{key}.{device} must be a list of strings")
        for name in names:
            if len(name) > limits.max_label_length:
                fail("schema", f"{key}.{device}: a name longer than {limits.max_label_length}")
            check_text(name, key)
        out.append((device, tuple(names)))
    return tuple(sorted(out))


def validate_labels(value: Any, where: str, limits: Limits, *,
                    allowed: frozenset[str] | None = None) -> Labels:
    """Sample labels (``allowed`` None: any name but the reserved ones) or site labels (only ``allowed``)."""
    if not isinstance(value, dict):
        fail("schema", f"{where} must be an object of strings")
    if len(value) > limits.max_labels:
        fail("schema", f"{where}: more than {limits.max_labels} labels")
    items: list[tuple[str, str]] = []
    for name, label_value in value.items():
        if not isinstance(label_value, str) or LABEL_NAME.fullmatch(name) is None or name.startswith("__"):
            fail("schema", f"{where}: bad label {name!r}")
        if allowed is None and name in RESERVED_LABELS:
            fail("schema", f"{where}: label {name!r} is set by the collector")
        if allowed is not None and name not in allowed:
            fail("schema", f"{where}: label {name!r} is not one of {sorted(allowed)}")
        check_text(label_value, f"{where}.{name}")
        if len(label_value) > limits.max_label_length or len(name) > limits.max_label_length:
            fail("schema", f"{where}: label {name[:64]!r} too long")
        items.append((name, label_value))
    items.sort()
    return tuple(items)


def validate_label_sets(raw: Any, limits: Limits) -> tuple[Labels, ...]:
    """The ``label_sets`` of a compact poll, each validated like a sample's labels."""
    if not isinstance(raw, list):
        fail("schema", "label_sets must be a list")
    return tuple(validate_labels(item, f"label_sets[{i}]", limits) for i, item in enumerate(raw))


def validate_family_head(raw: dict[str, Any], where: str, limits: Limits) -> tuple[str, MetricType, str]:
    """A family's name, type and help (cut to ``max_label_length``), validated."""
    name = string_field(raw, "name", limits)
    if METRIC_NAME.fullmatch(name) is None:
        fail("schema", f"{where}: bad metric name {name[:64]!r}")
    if name in RESERVED_METRICS or name.startswith(RESERVED_METRIC_PREFIXES):
        fail("schema", f"{where}: metric name {name!r} is reserved for the collector")
    mtype = raw.get("type")
    if not isinstance(mtype, str) or mtype not in METRIC_TYPES:
        fail("schema", f"{where}: type must be one of {sorted(METRIC_TYPES)}")
    help_text = raw.get("help", "")
    if not isinstance(help_text, str):
        fail("schema", f"{where}: help must be a string")
    check_text(help_text, f"{where}.help")
    metric_type: MetricType = "counter" if mtype == "counter" else "gauge"
    return name, metric_type, help_text[: limits.max_label_length]


def family_size(raw: Any) -> int:
    """Samples a raw family claims (verbose or compact), before validation; 0 when malformed."""
    if not isinstance(raw, dict):
        return 0
    entries = raw.get("values") if "values" in raw else raw.get("samples")
    return len(entries) if isinstance(entries, list) else 0


def config_rejection_field(doc: Mapping[str, Any], key: str, limits: Limits) -> ConfigRejection | None:
    """The optional ``config_rejected`` object of a birth; ``null`` or absent: None."""
    raw = doc.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        fail("schema", "config_rejected must be an object")
    revision = raw.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or not 0 <= revision < 2**63:
        fail("schema", "config_rejected.revision must be a non-negative integer")
    reason, error = raw.get("reason"), raw.get("error", "")
    if not isinstance(reason, str) or not isinstance(error, str):
        fail("schema", "config_rejected.reason and .error must be strings")
    return ConfigRejection(revision=revision, reason=check_text(reason[:32], "config_rejected"),
                           error=check_text(error[: limits.max_label_length], "config_rejected"),
                           ts=timestamp_field(raw))

"""Pure per-value steps of the mapping: value conversion, label rendering, filters, scaling.

Split from :mod:`agent.mapping` (which walks profiles and builds families) to keep both small. No I/O.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable

from agent.profiles import Condition, LabelSpec, MetricSpec, ScaleFrom, parse_oid
from agent.uptime import Epoch, stamp_to_unix
from agent.varbind import NUMERIC_KINDS, OID, SnmpValue

Getter = Callable[[OID], SnmpValue | None]  # the value at an OID (scalars) or column (this row)
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


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) == "Cc"


def _hex(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)[:MAX_LABEL_CHARS]


def label_text(value: SnmpValue | None) -> str:
    """Render a value as a label: UTF-8 text (Vietnamese included), hex for binary, never an error.

    Trailing NUL padding is dropped. A value in which at least a third of the characters are undecodable
    bytes or control characters is binary (a MAC address, a serial in raw bytes) and shown as hex
    ``00:1a:2b:...``; otherwise invalid bytes become U+FFFD and control characters spaces.
    """
    if value is None or value.value is None:
        return ""
    raw = value.value
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str):
        return raw[:MAX_LABEL_CHARS]
    stripped = raw.rstrip(b"\x00")
    if not stripped:
        return ""
    text = stripped.decode("utf-8", errors="replace")
    bad = sum(1 for ch in text if ch == "\ufffd" or _is_control(ch))
    if bad and bad * 3 >= len(text):
        return _hex(raw)
    if bad:
        text = "".join(" " if _is_control(ch) else ch for ch in text)
    return " ".join(text.split())[:MAX_LABEL_CHARS]


def _rendered(value: SnmpValue | None) -> str | None:
    """A value as comparable text (INTEGER 5 -> "5", an OID -> its dotted form); None if absent."""
    if value is None or value.value is None:
        return None
    return label_text(value)


def label_value(spec: LabelSpec, value: SnmpValue | None) -> str:
    text = label_text(value)
    if spec.last_arc and value is not None and value.kind == "oid":
        text = text.rsplit(".", 1)[-1]
    return spec.map.get(text, text)


def passes(conditions: list[Condition], get: Getter) -> bool:
    for condition in conditions:
        text = _rendered(get(condition.parsed))
        if condition.any_of is not None and (text is None or text not in condition.any_of):
            return False
        if condition.none_of is not None and text is not None and text in condition.none_of:
            return False
    return True


def _power_of_ten(number: float, exponent: int) -> float:
    """number x 10^exponent, correctly rounded for int readings (a float unless the exponent is 0)."""
    if exponent == 0:
        return number
    factor: int = 10 ** abs(exponent)
    return float(number * factor) if exponent > 0 else number / factor


def scale_by_device(number: float, spec: ScaleFrom, get: Getter) -> float | None:
    """ENTITY-SENSOR-MIB style: x 10^(3*(si_prefix-9)) x 10^-precision; absent columns count as 9 and 0."""
    exponent = 0
    if spec.si_prefix is not None:
        prefix = numeric(get(parse_oid(spec.si_prefix)))
        prefix = 9 if prefix is None else prefix
        if prefix != int(prefix) or not 1 <= prefix <= 17:
            return None
        exponent += 3 * (int(prefix) - 9)
    if spec.precision is not None:
        precision = numeric(get(parse_oid(spec.precision)))
        precision = 0 if precision is None else precision
        if precision != int(precision) or not -8 <= precision <= 9:
            return None
        exponent -= int(precision)
    return _power_of_ten(number, exponent)


def _first(spec: MetricSpec, get: Getter) -> tuple[SnmpValue | None, float]:
    """The raw value of the spec's OID, else of its fallback, with the matching scale."""
    for src in (spec.source, spec.fallback):
        if src is not None:
            value = get(src.parsed)
            if numeric(value) is not None:
                return value, src.scale
    return None, 1.0


def metric_value(spec: MetricSpec, get: Getter, epoch: Epoch | None = None) -> float | None:
    """One sample's value, or None (absent, filtered out, or not computable)."""
    if spec.filter and not passes(spec.filter, get):
        return None
    raw, scale = _first(spec, get)
    if spec.equals is not None:
        number = numeric(raw)
        return None if number is None else (1 if number in spec.equals else 0)
    number = numeric(raw, scale)
    if number is None:
        return None
    if spec.multiply_by is not None:
        factor = numeric(get(parse_oid(spec.multiply_by)))
        if factor is None:
            return None
        number *= factor
    if spec.scale_from is not None:
        scaled = scale_by_device(number, spec.scale_from, get)
        if scaled is None:
            return None
        number = scaled
    if spec.as_timestamp:
        if epoch is None:
            return None
        stamp = stamp_to_unix(number, epoch)
        if stamp is None:
            return None
        number = round(stamp, 3)
    return number if math.isfinite(number) else None

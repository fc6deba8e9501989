"""Pure per-value steps of the mapping: value conversion, label rendering, filters, scaling.

Split from :mod:`agent.mapping` (which walks profiles and builds families) to keep both small. No I/O.
"""

from __future__ import annotations

import math
import struct
import unicodedata
from collections.abc import Callable

from agent.profiles import Condition, Direct, LabelSpec, MetricSpec, ScaleFrom, Source, parse_oid
from agent.snmp.values import ABSENT_KINDS, NUMERIC_KINDS, OID, SnmpValue
from agent.uptime import Epoch, stamp_to_unix

Getter = Callable[[OID], SnmpValue | None]  # the value at an OID (scalars) or column (this row)
MAX_LABEL_CHARS = 256
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_KIND_NAMES = {"octets": "OCTET STRING", "opaque": "Opaque", "oid": "OBJECT IDENTIFIER",
               "ipaddress": "IpAddress"}


def _opaque_number(raw: bytes) -> float | None:
    """net-snmp's Opaque-wrapped application types (draft-perkins-opaque): a BER TLV with tag 0x9f 0x7N
    inside the Opaque: float (0x78, 4 octets IEEE 754), double (0x79, 8 octets), counter64 (0x76),
    integer64 (0x7a) and unsigned64 (0x7b). None for anything else."""
    if len(raw) < 3 or raw[0] != 0x9F or raw[2] != len(raw) - 3:
        return None
    tag, body = raw[1], raw[3:]
    if tag == 0x78 and len(body) == 4:
        return float(struct.unpack(">f", body)[0])
    if tag == 0x79 and len(body) == 8:
        return float(struct.unpack(">d", body)[0])
    if tag in (0x76, 0x7B) and 1 <= len(body) <= 9:
        return int.from_bytes(body, "big")
    if tag == 0x7A and 1 <= len(body) <= 8:
        return int.from_bytes(body, "big", signed=True)
    return None


def _text_number(raw: bytes) -> float | None:
    """A number written as text in an OCTET STRING (UCD-SNMP-MIB laLoad "0.46"), else None."""
    try:
        return float(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


def raw_number(value: SnmpValue | None) -> float | None:
    """The number a value stands for, unscaled; None where it is absent or not a number."""
    if value is None:
        return None
    if value.kind in NUMERIC_KINDS and isinstance(value.value, int):
        if value.kind == "integer" and not _INT32_MIN <= value.value <= _INT32_MAX:
            return None  # an INTEGER no SNMP agent may send (the fast path reads it as sent)
        return value.value
    if isinstance(value.value, bytes):
        if value.kind == "opaque":
            number = _opaque_number(value.value)
            if number is None:
                number = _text_number(value.value)
        elif value.kind == "octets":
            number = _text_number(value.value)
        else:
            return None
        return number if number is not None and math.isfinite(number) else None
    return None


def direct_number(direct: Direct, value: SnmpValue) -> float | None:
    """The short path of :func:`metric_value` for a metric with a :attr:`MetricSpec.direct` source whose
    value there is a number (:func:`raw_number`) the MIB admits: that number scaled. None where the full
    path must decide: anything absent or unusable (the full path reports those), a reading outside
    ``valid``, a 0 that lets the fallback speak."""
    number = raw_number(value)
    if number is None:
        return None
    valid = direct.valid
    if (number == 0 and direct.zero_falls_back) or (valid is not None and not valid.admits(number)):
        return None
    scale = direct.source.scale
    if scale == 1.0:
        return number
    scaled = apply_scale(number, scale)
    return scaled if math.isfinite(scaled) else None


def unusable(value: SnmpValue | None) -> str | None:
    """Why a value that is present cannot be read as a number (for the log and the poll's errors); None
    when it is absent (noSuch*, endOfMibView, not returned) or usable."""
    if value is None or value.kind in ABSENT_KINDS or raw_number(value) is not None:
        return None
    kind = _KIND_NAMES.get(value.kind, value.kind)
    if isinstance(value.value, int):
        return f"INTEGER {value.value} outside the Integer32 range (-2147483648..2147483647)"
    if isinstance(value.value, bytes):
        shown = value.value[:24].hex(":") if value.kind == "opaque" else repr(label_text(value)[:24])
        return f"{kind} {shown} where a number is expected"
    return f"{kind} {label_text(value)[:40]!r} where a number is expected"


def apply_scale(number: float, scale: float) -> float:
    """number x scale; a scale of 1/n (0.1, 0.01, 0.125) divides by n, so that decimal scaling gives the
    shortest exact value (390315276 x 0.01 is 3903152.7600000002, / 100 is 3903152.76)."""
    if scale == 1.0:
        return number  # ints stay ints: Counter64 values travel exactly
    if 0 < abs(scale) < 1:
        divisor = round(1 / scale)
        if divisor and abs(1 / divisor - scale) <= 1e-15 * abs(scale):
            return number / divisor
    return number * scale


def numeric(value: SnmpValue | None, scale: float = 1.0) -> float | None:
    """The number a value stands for, scaled; None where the value is absent or not a number."""
    number = raw_number(value)
    return None if number is None else apply_scale(number, scale)


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
    if text.isprintable() and "\ufffd" not in text:  # the usual case: no control character, nothing invalid
        return " ".join(text.split())[:MAX_LABEL_CHARS]
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
        if condition.pattern is not None and (text is None or condition.pattern.search(text) is None):
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


Report = Callable[[str, OID, str], None]  # (metric name, OID or column, problem): an unusable value


def _first(spec: MetricSpec, get: Getter, report: Report | None) -> tuple[float | None, Source | None]:
    """The raw number of the spec's OID, else of its fallback, with the source it came from.

    The fallback is read where the primary value is absent or unusable, and where the primary reads 0
    if the fallback says ``when_primary_zero`` (ifHighSpeed 0 beside a real ifSpeed). A present value
    that is not a number is reported when no source gives a number."""
    primary = spec.source
    if spec.fallback is None and primary is not None:  # the usual case, without the loop below
        number = _number(spec, primary, get, report)
        return (None, None) if number is None else (number, primary)
    found: tuple[float, Source] | None = None
    bad: tuple[OID, str] | None = None
    for source in (spec.source, spec.fallback):
        if source is None:
            continue
        value = get(source.parsed)
        number = raw_number(value)
        if number is None:
            problem = unusable(value)
            if problem is not None and bad is None:
                bad = (source.parsed, problem)
            continue
        if found is None or (number != 0 and found[0] == 0):
            found = (number, source)
        if number != 0 or spec.fallback is None or not spec.fallback.when_primary_zero:
            break
    if found is None:
        if bad is not None and report is not None:
            report(spec.name, *bad)
        return None, None
    return found


def _number(spec: MetricSpec, source: Source, get: Getter, report: Report | None) -> float | None:
    """The raw number at ``source``; an unusable value there is reported."""
    value = get(source.parsed)
    number = raw_number(value)
    if number is None and report is not None:
        problem = unusable(value)
        if problem is not None:
            report(spec.name, source.parsed, problem)
    return number


def checked_raw(spec: MetricSpec, number: float, oid: OID, report: Report | None) -> float | None:
    """The profile's rules for the raw reading: ``as_unsigned`` (an Integer32 that overflowed), the
    documented ``unknown`` values (absent, not an error) and the ``valid`` range (outside: reported)."""
    if spec.as_unsigned and number < 0 and number == int(number) and number >= -(2**31):
        number = int(number) + 2**32
    if spec.unknown and number in spec.unknown:
        return None
    valid = spec.valid
    if valid is not None and not valid.admits(number):
        if report is not None:
            report(spec.name, oid, f"{_shown(number)} outside {valid.describe()} allowed by the MIB")
        return None
    return number


def _shown(number: float) -> str:
    return str(int(number)) if number == int(number) else repr(number)


def metric_value(spec: MetricSpec, get: Getter, epoch: Epoch | None = None,
                 report: Report | None = None) -> float | None:
    """One sample's value, or None (absent, filtered out, unknown, unusable or not computable).

    Unusable values (a type that is not a number, a reading outside the profile's ``valid`` range)
    are passed to ``report`` as (metric, OID, problem); absent and ``unknown`` ones are not."""
    plain = spec.plain
    if plain is not None:  # a column's number scaled, nothing else: most table metrics
        raw = _number(spec, plain, get, report)
        if raw is None:
            return None
        number = apply_scale(raw, plain.scale)
        return number if math.isfinite(number) else None
    if spec.filter and not passes(spec.filter, get):
        return None
    raw, source = _first(spec, get, report)
    if raw is None or source is None:
        return None
    raw = checked_raw(spec, raw, source.parsed, report)
    if raw is None:
        return None
    if spec.equals is not None:
        return 1 if raw in spec.equals else 0
    if spec.add is not None:
        addend = numeric(get(parse_oid(spec.add)))
        if addend is None:
            return None
        raw += addend
    number = apply_scale(raw, source.scale)
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

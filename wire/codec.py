"""JSON codec for the wire messages, with strict validation on decode.

Every payload is a JSON object with ``"v": WIRE_VERSION`` and ``"type"``. Decoding ignores unknown
fields (so optional fields can be added without bumping the version) and raises :class:`DecodeError`
with a short machine-readable ``reason`` for anything else; the collector counts rejects by reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from wire.messages import (
    AgentStatus,
    Family,
    Labels,
    MetricType,
    PollBatch,
    ProfileError,
    Sample,
    TrapMessage,
)
from wire.topics import WIRE_VERSION, is_agent_id, is_device_name

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_TYPES: frozenset[str] = frozenset({"gauge", "counter"})
BATCH_KINDS: frozenset[str] = frozenset({"device", "probe"})
MAX_TRAP_VARBINDS = 64
# Site labels an agent may claim (the collector puts them on every series of the agent).
SITE_LABELS = frozenset({"province", "district", "commune"})
# Labels the collector sets itself; a sample may not carry them.
RESERVED_LABELS = frozenset({"agent", "device", "job", "instance"}) | SITE_LABELS
# Series the collector computes itself; an agent's metric family may not use these names or prefixes.
RESERVED_METRICS = frozenset({
    "hatang_agent_up", "hatang_agent_last_seen_timestamp_seconds", "hatang_device_up",
    "hatang_device_last_poll_timestamp_seconds", "hatang_device_poll_duration_seconds",
    "hatang_device_poll_errors", "hatang_site_info", "hatang_trap_received_total",
    "hatang_trap_last_timestamp_seconds", "hatang_agent_clock_offset_seconds",
})
RESERVED_METRIC_PREFIXES = ("hatang_collector_", "process_", "python_")


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


def _error_json(error: ProfileError) -> dict[str, str]:
    doc = {"profile": error.profile, "error": error.error}
    if error.reason:  # optional field: omitted when empty, as agents before it sent
        doc["reason"] = error.reason
    return doc


def _labels_json(labels: Labels) -> dict[str, str]:
    return dict(labels)


def encode_batch(batch: PollBatch, *, compact: bool = True) -> bytes:
    """The poll as JSON: compact (label sets listed once, families as index and value lists; what the
    agent sends) or verbose (every sample an object with its labels; also accepted, easier to write by
    hand). See docs/wire.md."""
    doc: dict[str, Any] = {
        "v": WIRE_VERSION,
        "type": "poll",
        "agent": batch.agent,
        "boot": batch.boot_id,
        "seq": batch.seq,
        "ts": batch.ts,
        "device": batch.device,
        "interval": batch.interval,
        "up": batch.up,
        "duration": batch.duration,
        "site": _labels_json(batch.site),
        "kind": batch.kind,
        "errors": [_error_json(e) for e in batch.errors],
    }
    if compact:
        # each distinct label set once; a family lists indexes into it and the values, in order
        index: dict[Labels, int] = {}
        for f in batch.families:
            for s in f.samples:
                index.setdefault(s.labels, len(index))
        doc["label_sets"] = [_labels_json(labels) for labels in index]
        doc["metrics"] = [
            {"name": f.name, "type": f.type, "help": f.help,
             "series": [index[s.labels] for s in f.samples], "values": [s.value for s in f.samples]}
            for f in batch.families
        ]
    else:
        doc["metrics"] = [
            {"name": f.name, "type": f.type, "help": f.help,
             "samples": [{"labels": _labels_json(s.labels), "value": s.value} for s in f.samples]}
            for f in batch.families
        ]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def encode_trap(trap: TrapMessage) -> bytes:
    doc = {
        "v": WIRE_VERSION,
        "type": "trap",
        "agent": trap.agent,
        "boot": trap.boot_id,
        "seq": trap.seq,
        "ts": trap.ts,
        "device": trap.device,
        "source": trap.source,
        "version": trap.version,
        "trap_oid": trap.trap_oid,
        "trap_name": trap.trap_name,
        "if_index": trap.if_index,
        "uptime": trap.uptime,
        "varbinds": [list(v) for v in trap.varbinds],
        "site": _labels_json(trap.site),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def encode_status(status: AgentStatus) -> bytes:
    doc = {
        "v": WIRE_VERSION,
        "type": "status",
        "agent": status.agent,
        "boot": status.boot_id,
        "online": status.online,
        "ts": status.ts,
        "version": status.version,
        "site": _labels_json(status.site),
        "devices": list(status.devices),
        "config_version": status.config_version,
        "buffer": dict(status.buffer),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --- decoding -----------------------------------------------------------------------------------


def _fail(reason: str, detail: str) -> NoReturn:
    raise DecodeError(reason, detail)


def _reject_constant(name: str) -> NoReturn:
    _fail("schema", f"non-finite number {name}")


def _load(payload: bytes, limits: Limits, expected_type: str) -> dict[str, Any]:
    if len(payload) > limits.max_payload_bytes:
        _fail("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        text = payload.decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant)
    except DecodeError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        _fail("json", str(exc)[:200])
    if not isinstance(doc, dict):
        _fail("schema", "payload is not a JSON object")
    version = doc.get("v")
    if isinstance(version, bool) or version != WIRE_VERSION:
        _fail("version", f"wire version {doc.get('v')!r}, this side speaks {WIRE_VERSION}")
    if doc.get("type") != expected_type:
        _fail("schema", f"type {doc.get('type')!r}, expected {expected_type!r}")
    return doc


def _str(doc: Mapping[str, Any], key: str, limits: Limits) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        _fail("schema", f"{key} must be a string")
    if len(value) > limits.max_label_length:
        _fail("schema", f"{key} longer than {limits.max_label_length}")
    return check_text(value, key)


def check_text(value: str, where: str) -> str:
    """Reject lone surrogates (JSON escapes like \\ud800): they cannot be written out as UTF-8 again."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            _fail("schema", f"{where}: string is not valid Unicode")
    return value


# Integers travel exactly (Counter64 up to 2**64 - 1); anything wider cannot be a sample value and
# would not parse as a Prometheus float once rendered.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1
MAX_ABS_FLOAT = 1e300
# Sane unix times (2001-09-09 .. 2286-11-20) in seconds.
MIN_TS, MAX_TS = 1e9, 1e10


def _number(doc: Mapping[str, Any], key: str, low: float | None = None, high: float | None = None) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail("schema", f"{key} must be a number")
    if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_ABS_FLOAT):
        _fail("schema", f"{key} must be finite and at most {MAX_ABS_FLOAT:g} in size")
    if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
        _fail("schema", f"{key} is outside the 64-bit range")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail("schema", f"{key} must be within [{low:g}, {high:g}]")
    return value


def _timestamp(doc: Mapping[str, Any], key: str = "ts") -> float:
    return _number(doc, key, MIN_TS, MAX_TS)


def _bool(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        _fail("schema", f"{key} must be true or false")
    return value


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        _fail("schema", f"{key} must be a list")
    return value


def validate_labels(value: Any, where: str, limits: Limits, *,
                    allowed: frozenset[str] | None = None) -> Labels:
    """Sample labels (``allowed`` None: any name but the reserved ones) or site labels (only ``allowed``)."""
    if not isinstance(value, dict):
        _fail("schema", f"{where} must be an object of strings")
    if len(value) > limits.max_labels:
        _fail("schema", f"{where}: more than {limits.max_labels} labels")
    items: list[tuple[str, str]] = []
    for name, label_value in value.items():
        if not isinstance(label_value, str) or LABEL_NAME.fullmatch(name) is None or name.startswith("__"):
            _fail("schema", f"{where}: bad label {name!r}")
        if allowed is None and name in RESERVED_LABELS:
            _fail("schema", f"{where}: label {name!r} is set by the collector")
        if allowed is not None and name not in allowed:
            _fail("schema", f"{where}: label {name!r} is not one of {sorted(allowed)}")
        check_text(label_value, f"{where}.{name}")
        if len(label_value) > limits.max_label_length or len(name) > limits.max_label_length:
            _fail("schema", f"{where}: label {name[:64]!r} too long")
        items.append((name, label_value))
    items.sort()
    return tuple(items)


def validate_family_head(raw: dict[str, Any], where: str, limits: Limits) -> tuple[str, MetricType, str]:
    """A family's name, type and help (cut to ``max_label_length``), validated."""
    name = _str(raw, "name", limits)
    if METRIC_NAME.fullmatch(name) is None:
        _fail("schema", f"{where}: bad metric name {name[:64]!r}")
    if name in RESERVED_METRICS or name.startswith(RESERVED_METRIC_PREFIXES):
        _fail("schema", f"{where}: metric name {name!r} is reserved for the collector")
    mtype = raw.get("type")
    if not isinstance(mtype, str) or mtype not in METRIC_TYPES:
        _fail("schema", f"{where}: type must be one of {sorted(METRIC_TYPES)}")
    help_text = raw.get("help", "")
    if not isinstance(help_text, str):
        _fail("schema", f"{where}: help must be a string")
    check_text(help_text, f"{where}.help")
    metric_type: MetricType = "counter" if mtype == "counter" else "gauge"
    return name, metric_type, help_text[: limits.max_label_length]


def _family(raw: Any, index: int, limits: Limits, label_sets: Sequence[Labels]) -> Family:
    where = f"metrics[{index}]"
    if not isinstance(raw, dict):
        _fail("schema", f"{where} must be an object")
    name, mtype, help_text = validate_family_head(raw, where, limits)
    entries = (_compact_entries(raw, where, label_sets) if "values" in raw
               else _verbose_entries(raw, where, limits))
    samples = []
    seen: set[Labels] = set()
    for labels, value, at in entries:
        if labels in seen:  # two samples of one series would make the exposition invalid
            _fail("schema", f"{at}: repeats the labels of another sample")
        seen.add(labels)
        samples.append(Sample(labels, _number({"value": value}, "value")))
    return Family(name, mtype, help_text, tuple(samples))


def _verbose_entries(raw: dict[str, Any], where: str, limits: Limits) -> Iterator[tuple[Labels, Any, str]]:
    """(labels, raw value, position) of each ``samples`` object, validated one at a time."""
    for j, raw_sample in enumerate(_list(raw, "samples")):
        if not isinstance(raw_sample, dict):
            _fail("schema", f"{where}.samples[{j}] must be an object")
        at = f"{where}.samples[{j}]"
        labels = validate_labels(raw_sample.get("labels", {}), f"{at}.labels", limits)
        yield labels, raw_sample.get("value"), at


def _compact_entries(raw: dict[str, Any], where: str, label_sets: Sequence[Labels]
                     ) -> Iterator[tuple[Labels, Any, str]]:
    """(labels, raw value, position) of each entry of ``series`` and ``values``."""
    if "samples" in raw:
        _fail("schema", f"{where}: has both samples and values")
    series, values = raw.get("series"), raw.get("values")
    if not isinstance(series, list) or not isinstance(values, list) or len(series) != len(values):
        _fail("schema", f"{where}: series and values must be lists of the same length")
    for j, (ref, value) in enumerate(zip(series, values, strict=True)):
        if type(ref) is not int or not 0 <= ref < len(label_sets):
            _fail("schema", f"{where}.series[{j}] must index label_sets")
        yield label_sets[ref], value, f"{where}.series[{j}]"


def family_size(raw: Any) -> int:
    """Samples a raw family claims (verbose or compact), before validation; 0 when malformed."""
    if not isinstance(raw, dict):
        return 0
    entries = raw.get("values") if "values" in raw else raw.get("samples")
    return len(entries) if isinstance(entries, list) else 0


def validate_label_sets(raw: Any, limits: Limits) -> tuple[Labels, ...]:
    """The ``label_sets`` of a compact poll, each validated like a sample's labels."""
    if not isinstance(raw, list):
        _fail("schema", "label_sets must be a list")
    return tuple(validate_labels(item, f"label_sets[{i}]", limits) for i, item in enumerate(raw))


def load_batch(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[PollBatch, list[Any], list[Any]]:
    """A poll payload's envelope, validated, with ``families=()``, and its raw ``metrics`` and
    ``label_sets`` lists (not yet validated: :func:`decode_families`, or the collector's fast path
    collector/ingest.py)."""
    doc = _load(payload, limits, "poll")
    agent = _str(doc, "agent", limits)
    device = _str(doc, "device", limits)
    if not is_agent_id(agent) or not is_device_name(device):
        _fail("schema", "bad agent id or device name")
    seq = _seq(doc)
    raw_metrics = _list(doc, "metrics")
    raw_label_sets = doc.get("label_sets", [])
    total = sum(map(family_size, raw_metrics))
    sets = len(raw_label_sets) if isinstance(raw_label_sets, list) else 0
    if total > limits.max_samples or len(raw_metrics) > limits.max_samples or sets > limits.max_samples:
        _fail("too_many_samples", f"{total} samples in {len(raw_metrics)} families > {limits.max_samples}")
    if not isinstance(raw_label_sets, list):
        _fail("schema", "label_sets must be a list")
    errors = []
    for i, raw_error in enumerate(_list(doc, "errors")):
        if not isinstance(raw_error, dict):
            _fail("schema", f"errors[{i}] must be an object")
        reason = _optional_str(raw_error, "reason", limits) or ""
        errors.append(ProfileError(_str(raw_error, "profile", limits), _str(raw_error, "error", limits),
                                   reason))
    kind = doc.get("kind", "device")
    if not isinstance(kind, str) or kind not in BATCH_KINDS:
        _fail("schema", f"kind must be one of {sorted(BATCH_KINDS)}")
    batch = PollBatch(
        kind=kind,
        agent=agent,
        boot_id=_str(doc, "boot", limits),
        seq=seq,
        ts=_timestamp(doc),
        device=device,
        interval=_number(doc, "interval", 0.001, 1e6),
        up=_bool(doc, "up"),
        duration=_number(doc, "duration", 0, 1e6),
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
        errors=tuple(errors),
    )
    return batch, raw_metrics, raw_label_sets


def decode_families(raw_metrics: list[Any], limits: Limits = DEFAULT_LIMITS,
                    raw_label_sets: list[Any] | None = None) -> tuple[Family, ...]:
    label_sets = validate_label_sets(raw_label_sets or [], limits)
    families = tuple(_family(raw, i, limits, label_sets) for i, raw in enumerate(raw_metrics))
    if len({f.name for f in families}) != len(families):
        _fail("schema", "a metric name appears twice in one poll")
    return families


def decode_batch(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> PollBatch:
    batch, raw_metrics, raw_label_sets = load_batch(payload, limits)
    return replace(batch, families=decode_families(raw_metrics, limits, raw_label_sets))


MAX_SEQ = 2**63 - 1


def _seq(doc: dict[str, Any]) -> int:
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        _fail("schema", "seq must be an integer from 1 to 2**63 - 1")
    return seq


def _optional_str(doc: dict[str, Any], key: str, limits: Limits) -> str | None:
    return None if doc.get(key) is None else _str(doc, key, limits)


def decode_trap(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> TrapMessage:
    doc = _load(payload, limits, "trap")
    agent = _str(doc, "agent", limits)
    device = _str(doc, "device", limits)
    if not is_agent_id(agent) or not (device == "unknown" or is_device_name(device)):
        _fail("schema", "bad agent id or device name")
    raw_varbinds = _list(doc, "varbinds")
    if len(raw_varbinds) > MAX_TRAP_VARBINDS:
        _fail("too_many_samples", f"{len(raw_varbinds)} varbinds > {MAX_TRAP_VARBINDS}")
    varbinds = []
    for i, raw in enumerate(raw_varbinds):
        if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(x, str) for x in raw)):
            _fail("schema", f"varbinds[{i}] must be [oid, kind, value] strings")
        varbinds.append((check_text(raw[0][:256], "varbinds"), check_text(raw[1][:32], "varbinds"),
                         check_text(raw[2][: limits.max_label_length], "varbinds")))
    uptime = None if doc.get("uptime") is None else _number(doc, "uptime")
    return TrapMessage(
        agent=agent,
        boot_id=_str(doc, "boot", limits),
        seq=_seq(doc),
        ts=_timestamp(doc),
        device=device,
        source=_str(doc, "source", limits),
        version=_str(doc, "version", limits),
        trap_oid=_str(doc, "trap_oid", limits),
        trap_name=_str(doc, "trap_name", limits),
        if_index=_optional_str(doc, "if_index", limits),
        uptime=uptime,
        varbinds=tuple(varbinds),
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
    )


def decode_status(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentStatus:
    doc = _load(payload, limits, "status")
    agent = _str(doc, "agent", limits)
    if not is_agent_id(agent):
        _fail("schema", "bad agent id")
    devices = _list(doc, "devices")
    if not all(isinstance(d, str) for d in devices):
        _fail("schema", "devices must be a list of strings")
    for d in devices:
        check_text(d, "devices")
    version = doc.get("version", "")
    config_version = doc.get("config_version", "")
    if not isinstance(version, str) or not isinstance(config_version, str):
        _fail("schema", "version and config_version must be strings")
    check_text(version, "version")
    check_text(config_version, "config_version")
    raw_buffer = doc.get("buffer", {})
    if not isinstance(raw_buffer, dict):
        _fail("schema", "buffer must be an object")
    buffer = tuple(sorted((check_text(str(k)[:32], "buffer"), _number(raw_buffer, k)) for k in raw_buffer
                          if raw_buffer[k] is not None))[:16]
    return AgentStatus(
        agent=agent,
        boot_id=_str(doc, "boot", limits),
        online=_bool(doc, "online"),
        ts=_timestamp(doc),
        version=version[:64],
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
        devices=tuple(devices),
        config_version=config_version[:64],
        buffer=buffer,
    )

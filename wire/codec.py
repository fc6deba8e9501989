"""JSON codec for the wire messages, with strict validation on decode.

Every payload is a JSON object with ``"v": WIRE_VERSION`` and ``"type"``. Decoding ignores unknown
fields (so optional fields can be added without bumping the version) and raises :class:`DecodeError`
with a short machine-readable ``reason`` for anything else; the collector counts rejects by reason.

The field checks are in :mod:`wire.validation` and the name rules in :mod:`wire.names`; the names of
both that the agent and the collector use are importable from here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from wire.messages import (
    AgentStatus,
    Family,
    Labels,
    PollBatch,
    ProfileError,
    Sample,
    TrapMessage,
)
from wire.names import (
    LABEL_NAME,
    METRIC_NAME,
    METRIC_TYPES,
    RESERVED_LABELS,
    RESERVED_METRIC_PREFIXES,
    RESERVED_METRICS,
    SITE_LABELS,
)
from wire.topics import WIRE_VERSION, is_agent_id, is_device_name
from wire.validation import (
    DEFAULT_LIMITS,
    MAX_ABS_FLOAT,
    MAX_INT,
    MAX_SEQ,
    MAX_TS,
    MIN_INT,
    MIN_TS,
    DecodeError,
    Limits,
    bool_field,
    check_text,
    config_rejection_field,
    fail,
    family_size,
    list_field,
    number_field,
    optional_string_field,
    profile_map_field,
    seq_field,
    string_field,
    timestamp_field,
    validate_family_head,
    validate_label_sets,
    validate_labels,
)

__all__ = [
    "BATCH_KINDS",
    "DEFAULT_LIMITS",
    "LABEL_NAME",
    "MAX_ABS_FLOAT",
    "MAX_INT",
    "MAX_SEQ",
    "MAX_TRAP_VARBINDS",
    "MAX_TS",
    "METRIC_NAME",
    "METRIC_TYPES",
    "MIN_INT",
    "MIN_TS",
    "RESERVED_LABELS",
    "RESERVED_METRICS",
    "RESERVED_METRIC_PREFIXES",
    "SITE_LABELS",
    "DecodeError",
    "Limits",
    "check_text",
    "decode_batch",
    "decode_families",
    "decode_status",
    "decode_trap",
    "encode_batch",
    "encode_status",
    "encode_trap",
    "family_size",
    "load_batch",
    "validate_family_head",
    "validate_label_sets",
    "validate_labels",
]

BATCH_KINDS: frozenset[str] = frozenset({"device", "probe"})
MAX_TRAP_VARBINDS = 64


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
        position = index.setdefault
        metrics = [
            {"name": f.name, "type": f.type, "help": f.help,
             "series": [position(labels, len(index)) for labels, _ in f.samples],
             "values": [value for _, value in f.samples]}
            for f in batch.families
        ]
        doc["label_sets"] = [_labels_json(labels) for labels in index]
        doc["metrics"] = metrics
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
    doc: dict[str, Any] = {
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
    if status.profiles:  # optional: left out when empty, as agents before it sent
        doc["profiles"] = {device: list(names) for device, names in status.profiles}
    if status.config_rejected is not None:  # optional, likewise
        rejected = status.config_rejected
        doc["config_rejected"] = {"revision": rejected.revision, "reason": rejected.reason,
                                  "error": rejected.error, "ts": rejected.ts}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --- decoding -----------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    fail("schema", f"non-finite number {name}")


def _load(payload: bytes, limits: Limits, expected_type: str) -> dict[str, Any]:
    if len(payload) > limits.max_payload_bytes:
        fail("too_large", f"{len(payload)} bytes > {limits.max_payload_bytes}")
    try:
        text = payload.decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant)
    except DecodeError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        fail("json", str(exc)[:200])
    if not isinstance(doc, dict):
        fail("schema", "payload is not a JSON object")
    version = doc.get("v")
    if isinstance(version, bool) or version != WIRE_VERSION:
        fail("version", f"wire version {doc.get('v')!r}, this side speaks {WIRE_VERSION}")
    if doc.get("type") != expected_type:
        fail("schema", f"type {doc.get('type')!r}, expected {expected_type!r}")
    return doc


def _family(raw: Any, index: int, limits: Limits, label_sets: Sequence[Labels]) -> Family:
    where = f"metrics[{index}]"
    if not isinstance(raw, dict):
        fail("schema", f"{where} must be an object")
    name, mtype, help_text = validate_family_head(raw, where, limits)
    entries = (_compact_entries(raw, where, label_sets) if "values" in raw
               else _verbose_entries(raw, where, limits))
    samples = []
    seen: set[Labels] = set()
    for labels, value, at in entries:
        if labels in seen:  # two samples of one series would make the exposition invalid
            fail("schema", f"{at}: repeats the labels of another sample")
        seen.add(labels)
        samples.append(Sample(labels, number_field({"value": value}, "value")))
    return Family(name, mtype, help_text, tuple(samples))


def _verbose_entries(raw: dict[str, Any], where: str, limits: Limits) -> Iterator[tuple[Labels, Any, str]]:
    """(labels, raw value, position) of each ``samples`` object, validated one at a time."""
    for j, raw_sample in enumerate(list_field(raw, "samples")):
        if not isinstance(raw_sample, dict):
            fail("schema", f"{where}.samples[{j}] must be an object")
        at = f"{where}.samples[{j}]"
        labels = validate_labels(raw_sample.get("labels", {}), f"{at}.labels", limits)
        yield labels, raw_sample.get("value"), at


def _compact_entries(raw: dict[str, Any], where: str, label_sets: Sequence[Labels]
                     ) -> Iterator[tuple[Labels, Any, str]]:
    """(labels, raw value, position) of each entry of ``series`` and ``values``."""
    if "samples" in raw:
        fail("schema", f"{where}: has both samples and values")
    series, values = raw.get("series"), raw.get("values")
    if not isinstance(series, list) or not isinstance(values, list) or len(series) != len(values):
        fail("schema", f"{where}: series and values must be lists of the same length")
    for j, (ref, value) in enumerate(zip(series, values, strict=True)):
        if type(ref) is not int or not 0 <= ref < len(label_sets):
            fail("schema", f"{where}.series[{j}] must index label_sets")
        yield label_sets[ref], value, f"{where}.series[{j}]"


def load_batch(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[PollBatch, list[Any], list[Any]]:
    """A poll payload's envelope, validated, with ``families=()``, and its raw ``metrics`` and
    ``label_sets`` lists (not yet validated: :func:`decode_families`, or the collector's fast path
    collector/ingest.py)."""
    doc = _load(payload, limits, "poll")
    agent = string_field(doc, "agent", limits)
    device = string_field(doc, "device", limits)
    if not is_agent_id(agent) or not is_device_name(device):
        fail("schema", "bad agent id or device name")
    seq = seq_field(doc)
    raw_metrics = list_field(doc, "metrics")
    raw_label_sets = doc.get("label_sets", [])
    total = sum(map(family_size, raw_metrics))
    sets = len(raw_label_sets) if isinstance(raw_label_sets, list) else 0
    if total > limits.max_samples or len(raw_metrics) > limits.max_samples or sets > limits.max_samples:
        fail("too_many_samples", f"{total} samples in {len(raw_metrics)} families > {limits.max_samples}")
    if not isinstance(raw_label_sets, list):
        fail("schema", "label_sets must be a list")
    errors = []
    for i, raw_error in enumerate(list_field(doc, "errors")):
        if not isinstance(raw_error, dict):
            fail("schema", f"errors[{i}] must be an object")
        reason = optional_string_field(raw_error, "reason", limits) or ""
        errors.append(ProfileError(string_field(raw_error, "profile", limits),
                                   string_field(raw_error, "error", limits), reason))
    kind = doc.get("kind", "device")
    if not isinstance(kind, str) or kind not in BATCH_KINDS:
        fail("schema", f"kind must be one of {sorted(BATCH_KINDS)}")
    batch = PollBatch(
        kind=kind,
        agent=agent,
        boot_id=string_field(doc, "boot", limits),
        seq=seq,
        ts=timestamp_field(doc),
        device=device,
        interval=number_field(doc, "interval", 0.001, 1e6),
        up=bool_field(doc, "up"),
        duration=number_field(doc, "duration", 0, 1e6),
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
        errors=tuple(errors),
    )
    return batch, raw_metrics, raw_label_sets


def decode_families(raw_metrics: list[Any], limits: Limits = DEFAULT_LIMITS,
                    raw_label_sets: list[Any] | None = None) -> tuple[Family, ...]:
    label_sets = validate_label_sets(raw_label_sets or [], limits)
    families = tuple(_family(raw, i, limits, label_sets) for i, raw in enumerate(raw_metrics))
    if len({f.name for f in families}) != len(families):
        fail("schema", "a metric name appears twice in one poll")
    return families


def decode_batch(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> PollBatch:
    batch, raw_metrics, raw_label_sets = load_batch(payload, limits)
    return replace(batch, families=decode_families(raw_metrics, limits, raw_label_sets))


def decode_trap(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> TrapMessage:
    doc = _load(payload, limits, "trap")
    agent = string_field(doc, "agent", limits)
    device = string_field(doc, "device", limits)
    if not is_agent_id(agent) or not (device == "unknown" or is_device_name(device)):
        fail("schema", "bad agent id or device name")
    raw_varbinds = list_field(doc, "varbinds")
    if len(raw_varbinds) > MAX_TRAP_VARBINDS:
        fail("too_many_samples", f"{len(raw_varbinds)} varbinds > {MAX_TRAP_VARBINDS}")
    varbinds = []
    for i, raw in enumerate(raw_varbinds):
        if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(x, str) for x in raw)):
            fail("schema", f"varbinds[{i}] must be [oid, kind, value] strings")
        varbinds.append((check_text(raw[0][:256], "varbinds"), check_text(raw[1][:32], "varbinds"),
                         check_text(raw[2][: limits.max_label_length], "varbinds")))
    uptime = None if doc.get("uptime") is None else number_field(doc, "uptime")
    return TrapMessage(
        agent=agent,
        boot_id=string_field(doc, "boot", limits),
        seq=seq_field(doc),
        ts=timestamp_field(doc),
        device=device,
        source=string_field(doc, "source", limits),
        version=string_field(doc, "version", limits),
        trap_oid=string_field(doc, "trap_oid", limits),
        trap_name=string_field(doc, "trap_name", limits),
        if_index=optional_string_field(doc, "if_index", limits),
        uptime=uptime,
        varbinds=tuple(varbinds),
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
    )


def decode_status(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentStatus:
    doc = _load(payload, limits, "status")
    agent = string_field(doc, "agent", limits)
    if not is_agent_id(agent):
        fail("schema", "bad agent id")
    devices = list_field(doc, "devices")
    if not all(isinstance(d, str) for d in devices):
        fail("schema", "devices must be a list of strings")
    for d in devices:
        check_text(d, "devices")
    version = doc.get("version", "")
    config_version = doc.get("config_version", "")
    if not isinstance(version, str) or not isinstance(config_version, str):
        fail("schema", "version and config_version must be strings")
    check_text(version, "version")
    check_text(config_version, "config_version")
    raw_buffer = doc.get("buffer", {})
    if not isinstance(raw_buffer, dict):
        fail("schema", "buffer must be an object")
    buffer = tuple(sorted((check_text(str(k)[:32], "buffer"), number_field(raw_buffer, k))
                          for k in raw_buffer if raw_buffer[k] is not None))[:16]
    return AgentStatus(
        agent=agent,
        boot_id=string_field(doc, "boot", limits),
        online=bool_field(doc, "online"),
        ts=timestamp_field(doc),
        version=version[:64],
        site=validate_labels(doc.get("site", {}), "site", limits, allowed=SITE_LABELS),
        devices=tuple(devices),
        config_version=config_version[:64],
        buffer=buffer,
        profiles=profile_map_field(doc, "profiles", limits, is_device_name),
        config_rejected=config_rejection_field(doc, "config_rejected", limits),
    )


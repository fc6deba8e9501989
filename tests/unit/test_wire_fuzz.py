"""Property tests of the wire decoders against arbitrary and near-valid JSON (hypothesis).

Contract under test (docs/wire.md, "Payloads" and "Limits and rejects"): ``decode_batch``,
``decode_status`` and ``decode_trap`` either return their dataclass or raise ``DecodeError`` whose
``reason`` is one of the documented ones; whatever they accept is safe to hand on: every string encodes
to UTF-8, metric and label names match Prometheus' regexes (and avoid the reserved ones), numbers are
finite float64 values, and the collector's pre-rendered exposition lines parse as Prometheus text.

The deterministic tests at the end pin the concrete bugs these properties (and longer runs of them)
found: some are fixed since, the ``seq`` ones are not.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from collector.exposition import render
from collector.selfmetrics import REJECT_REASONS, CollectorMetrics
from collector.store import Store
from hatang.textformat import header, render_lines
from wire.codec import (
    DEFAULT_LIMITS,
    RESERVED_LABELS,
    RESERVED_METRIC_PREFIXES,
    RESERVED_METRICS,
    SITE_LABELS,
    DecodeError,
    Limits,
    decode_batch,
    decode_status,
    decode_trap,
    encode_batch,
    encode_status,
    encode_trap,
)
from wire.messages import AgentStatus, Family, PollBatch, ProfileError, Sample, TrapMessage
from wire.topics import AGENT_ID_PATTERN, DEVICE_NAME_PATTERN, data_topic

# The decoders' documented reasons ("identity" is the store's: it needs the topic).
DECODE_REASONS = frozenset({"json", "version", "schema", "too_large", "too_many_samples"})
# Prometheus' own name rules (https://prometheus.io/docs/concepts/data_model/), written out independently
# of wire.codec so that a loosened codec regex is caught.
PROM_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.ASCII)
PROM_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)

NOW = 1_795_550_709.0  # a fixed "current" time for the store (payloads must not depend on the clock)
# Sized for < 15 s for the whole file on a busy 2-core machine; the regressions at the end pin what the
# properties found, so a smaller budget does not lose them.
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
# Any code point, lone surrogates included (they survive json.dumps as \udXXX escapes).
wild_text = st.text(alphabet=st.characters(codec=None) | SURROGATES, max_size=24)
# What a well-behaved agent may send: any valid Unicode (newlines, quotes, backslashes, Vietnamese...).
clean_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=24)

huge_ints = st.sampled_from([2**53 + 1, 2**64 - 1, 2**64, 2**200, 2**1023, 2**1024, 2**1100, -(2**1100),
                             10**400, -(10**308) * 10])
hostile_numbers = (
    st.integers()
    | huge_ints
    | st.floats()  # NaN and +-Infinity included: json.dumps writes them as bare literals
    | st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.0, 1.7976931348623157e308])
)
hostile_scalars = st.none() | st.booleans() | hostile_numbers | wild_text
hostile_json = st.recursive(
    hostile_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(wild_text, children, max_size=4),
    max_leaves=8,
)

agent_ids = st.from_regex(AGENT_ID_PATTERN, fullmatch=True)
device_names = st.from_regex(DEVICE_NAME_PATTERN, fullmatch=True)
metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True).filter(
    lambda n: n not in RESERVED_METRICS and not n.startswith(RESERVED_METRIC_PREFIXES)
)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n not in RESERVED_LABELS and not n.startswith("__")
)
# Values a well-behaved agent sends: Counter64 up to 2**64 - 1 exactly, gauges as floats; times and
# intervals in plausible ranges (the decoders may bound them).
sample_values = (
    st.integers(min_value=-(2**53), max_value=2**64 - 1)
    | st.floats(min_value=-1e18, max_value=1e18, allow_nan=False, allow_infinity=False)
)
timestamps = st.floats(min_value=1.6e9, max_value=4e9) | st.integers(1_600_000_000, 4_000_000_000)
intervals = st.floats(min_value=1, max_value=86_400) | st.integers(1, 86_400)
durations = st.floats(min_value=0, max_value=600)
sites = st.dictionaries(st.sampled_from(sorted(SITE_LABELS)), clean_text, max_size=3).map(
    lambda d: tuple(sorted(d.items()))
)
label_sets = st.dictionaries(label_names, clean_text, max_size=3).map(lambda d: tuple(sorted(d.items())))


@st.composite
def valid_batches(draw: st.DrawFn) -> PollBatch:
    families = []
    for name in draw(st.lists(metric_names, unique=True, max_size=3)):  # one family per name
        samples = tuple(Sample(labels, draw(sample_values))  # one sample per label set
                        for labels in draw(st.lists(label_sets, unique=True, max_size=3)))
        families.append(Family(name, draw(st.sampled_from(["gauge", "counter"])), draw(clean_text), samples))
    errors = tuple(ProfileError(draw(clean_text), draw(clean_text)) for _ in range(draw(st.integers(0, 2))))
    return PollBatch(
        agent=draw(agent_ids), boot_id=draw(clean_text), seq=draw(st.integers(1, 2**63 - 1)),
        ts=draw(timestamps), device=draw(device_names), interval=draw(intervals),
        up=draw(st.booleans()), duration=draw(durations), site=draw(sites),
        errors=errors, families=tuple(families), kind=draw(st.sampled_from(["device", "probe"])),
    )


@st.composite
def valid_statuses(draw: st.DrawFn) -> AgentStatus:
    return AgentStatus(
        agent=draw(agent_ids), boot_id=draw(clean_text), online=draw(st.booleans()), ts=draw(timestamps),
        version=draw(clean_text), site=draw(sites), devices=tuple(draw(st.lists(device_names, max_size=3))),
        config_version=draw(clean_text),
        buffer=tuple(sorted(draw(st.dictionaries(st.sampled_from(["depth", "bytes", "dropped", "oldest_ts"]),
                                                 sample_values, max_size=4)).items())),
    )


@st.composite
def valid_traps(draw: st.DrawFn) -> TrapMessage:
    return TrapMessage(
        agent=draw(agent_ids), boot_id=draw(clean_text), seq=draw(st.integers(1, 2**63 - 1)),
        ts=draw(timestamps), device=draw(device_names | st.just("unknown")), source=draw(clean_text),
        version=draw(st.sampled_from(["1", "2c", "3"])), trap_oid=draw(clean_text),
        trap_name=draw(clean_text), if_index=draw(st.none() | clean_text),
        uptime=draw(st.none() | durations),
        varbinds=tuple(draw(st.lists(st.tuples(clean_text, clean_text, clean_text), max_size=4))),
        site=draw(sites),
    )


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location inside a JSON document (dict keys and list indexes), depth first."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[Any], encode: Callable[[Any], bytes]) -> bytes:
    """A valid encoded message with one field replaced, removed or added, re-serialised (NaN literals and
    lone-surrogate escapes included), sometimes byte-mangled afterwards."""
    doc = json.loads(encode(draw(valid)))
    paths = list(_paths(doc))
    path = draw(st.sampled_from(paths)) if paths else ()
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    if path and action == "replace":
        parent[path[-1]] = draw(hostile_json)
    elif path and action == "delete":
        del parent[path[-1]]
    else:
        target = parent[path[-1]] if path else doc
        if isinstance(target, dict):
            target[draw(wild_text)] = draw(hostile_json)
        elif isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(hostile_json))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True)
    payload = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate becomes invalid UTF-8
    mangle = draw(st.sampled_from(["none", "none", "none", "none", "truncate", "byte"]))
    if mangle == "truncate" and payload:
        payload = payload[: draw(st.integers(0, len(payload) - 1))]
    elif mangle == "byte" and payload:
        i = draw(st.integers(0, len(payload) - 1))
        payload = payload[:i] + bytes([draw(st.integers(0, 255))]) + payload[i + 1 :]
    return payload


def _dumps_any(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


FIELDS = {
    "poll": ["agent", "boot", "seq", "ts", "device", "interval", "up", "duration", "site", "errors", "kind",
             "metrics"],
    "status": ["agent", "boot", "online", "ts", "version", "site", "devices", "config_version", "buffer"],
    "trap": ["agent", "boot", "seq", "ts", "device", "source", "version", "trap_oid", "trap_name", "if_index",
             "uptime", "varbinds", "site"],
}


def envelope(kind: str) -> st.SearchStrategy[bytes]:
    """Documents with the right ``v``/``type`` (mostly) and the message's own field names holding random
    JSON, so decoding gets past the envelope checks and into the field validation."""
    fields = st.dictionaries(st.sampled_from(FIELDS[kind]) | wild_text, hostile_json, max_size=6)
    version = st.just(1) | hostile_scalars
    return st.tuples(fields, version).map(lambda t: _dumps_any({**t[0], "v": t[1], "type": kind}))


random_payloads = hostile_json.map(_dumps_any) | st.binary(max_size=64)

limits_strategy = st.builds(
    Limits,
    max_payload_bytes=st.sampled_from([1024, 4096, DEFAULT_LIMITS.max_payload_bytes]),
    max_samples=st.integers(1, 8) | st.just(DEFAULT_LIMITS.max_samples),
    max_label_length=st.sampled_from([16, 64, DEFAULT_LIMITS.max_label_length]),
)

# --- checks -------------------------------------------------------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    """Every leaf (str, number, bool, None) of a decoded dataclass."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def _is_finite_float64(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float64 (2**1024 and up): Prometheus would see +-Inf
        return False


def _check_label_names(labels: tuple[tuple[str, str], ...], *, site: bool) -> None:
    for name, _ in labels:
        assert PROM_LABEL_NAME.fullmatch(name), name
        assert not name.startswith("__"), name
        if site:
            assert name in SITE_LABELS, name
        else:
            assert name not in RESERVED_LABELS, name


def check_accepted(result: Any) -> None:
    for leaf in _walk(result):
        if isinstance(leaf, str):
            leaf.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate
        elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
            assert _is_finite_float64(leaf), f"non-finite or out-of-float64 number accepted: {leaf!r:.80}"
    _check_label_names(result.site, site=True)
    if isinstance(result, PollBatch):
        for family in result.families:
            assert PROM_METRIC_NAME.fullmatch(family.name), family.name
            assert family.name not in RESERVED_METRICS
            assert not family.name.startswith(RESERVED_METRIC_PREFIXES)
            assert family.type in ("gauge", "counter")
            for sample in family.samples:
                _check_label_names(sample.labels, site=False)
        check_renders(result)


def check_renders(batch: PollBatch) -> None:
    """The store's pre-rendered lines (stamped with the poll time, as the store does) under the
    exposition's HELP/TYPE header parse back exactly."""
    base = (("agent", batch.agent), ("device", batch.device), *batch.site)
    ts_ms = round(batch.ts * 1000)
    for family in batch.families:
        lines = render_lines(family, base, ts_ms)
        text = header(family.name, family.type, family.help) + "".join(line + "\n" for line in lines)
        parsed = list(text_string_to_metric_families(text))
        samples = [s for f in parsed for s in f.samples]
        assert len(samples) == len(family.samples), text
        for got, sent in zip(samples, family.samples, strict=True):
            assert got.labels == dict((*base, *sent.labels)), text
            assert float(got.value) == float(sent.value), text
            assert got.timestamp == ts_ms / 1000, text


def check_decode(decode: Callable[[bytes, Limits], Any], expected: type, payload: bytes,
                 limits: Limits = DEFAULT_LIMITS) -> None:
    try:
        result = decode(payload, limits)
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS, exc.reason
        return
    # Anything else propagating (TypeError, OverflowError...) fails the test: the collector only
    # catches DecodeError, so it would take the subscriber, and the collector, down.
    assert type(result) is expected
    check_accepted(result)


DECODERS = [
    pytest.param(decode_batch, PollBatch, "poll", id="poll"),
    pytest.param(decode_status, AgentStatus, "status", id="status"),
    pytest.param(decode_trap, TrapMessage, "trap", id="trap"),
]

# --- properties ------------------------------------------------------------------------------------------


@FUZZ
@given(payload=random_payloads)
@pytest.mark.parametrize(("decode", "expected", "kind"), DECODERS)
def test_arbitrary_json_is_decoded_or_rejected_by_a_documented_reason(
    decode: Callable[[bytes, Limits], Any], expected: type, kind: str, payload: bytes
) -> None:
    check_decode(decode, expected, payload)


@settings(FUZZ, max_examples=35)
@given(data=st.data())
@pytest.mark.parametrize(("decode", "expected", "kind"), DECODERS)
def test_documents_with_the_right_envelope_are_decoded_or_rejected_by_a_documented_reason(
    decode: Callable[[bytes, Limits], Any], expected: type, kind: str, data: st.DataObject
) -> None:
    check_decode(decode, expected, data.draw(envelope(kind)))


@FUZZ
@given(payload=mutated(valid_batches(), encode_batch), limits=limits_strategy)
def test_a_batch_with_one_field_mutated_is_decoded_safely_or_rejected(payload: bytes, limits: Limits) -> None:
    check_decode(decode_batch, PollBatch, payload, limits)


@FUZZ
@given(payload=mutated(valid_statuses(), encode_status), limits=limits_strategy)
def test_a_status_with_one_field_mutated_is_decoded_safely_or_rejected(
    payload: bytes, limits: Limits
) -> None:
    check_decode(decode_status, AgentStatus, payload, limits)


@FUZZ
@given(payload=mutated(valid_traps(), encode_trap), limits=limits_strategy)
def test_a_trap_with_one_field_mutated_is_decoded_safely_or_rejected(payload: bytes, limits: Limits) -> None:
    check_decode(decode_trap, TrapMessage, payload, limits)


@FUZZ
@given(batch=valid_batches())
def test_every_valid_batch_round_trips_and_renders_parseable_exposition(batch: PollBatch) -> None:
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    check_accepted(decoded)


@FUZZ
@given(status=valid_statuses(), trap=valid_traps())
def test_every_valid_status_and_trap_round_trips(status: AgentStatus, trap: TrapMessage) -> None:
    assert decode_status(encode_status(status)) == status
    assert decode_trap(encode_trap(trap)) == trap


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_the_store_never_raises_on_a_mutated_message_and_its_scrape_parses(data: st.DataObject) -> None:
    """The collector calls Store.ingest straight from the MQTT loop: an exception there ends the
    subscriber task. Whatever arrives, ingest must return a verdict, and /metrics must stay parseable."""
    now = NOW
    batch = data.draw(valid_batches())
    batch = dataclasses.replace(batch, ts=now, interval=60)
    doc = json.loads(encode_batch(batch, compact=data.draw(st.booleans())))
    payload = data.draw(mutated(st.just(doc), lambda d: json.dumps(d).encode()))
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: now)
    verdict = store.ingest(data_topic(batch.agent, batch.device), payload)
    assert verdict in ("accepted", "late", "duplicate") or verdict.startswith("rejected:"), verdict
    if verdict.startswith("rejected:"):
        assert verdict.removeprefix("rejected:") in REJECT_REASONS
    list(text_string_to_metric_families(render(store, now)))


def test_every_name_the_collector_renders_itself_is_reserved() -> None:
    """An agent family with the name of a series the collector renders (liveness, traps) would give
    /metrics a second HELP/TYPE for that name, which strict parsers (expfmt, promtool) refuse."""
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: NOW)
    assert store.ingest(data_topic("xa-a", "sw"), json.dumps(_batch_doc()).encode()) == "accepted"
    trap = TrapMessage(agent="xa-a", boot_id="t", seq=1, ts=NOW, device="sw", source="192.0.2.1",
                       version="2c", trap_oid="1.3.6.1.6.3.1.1.5.3", trap_name="linkDown")
    assert store.ingest("hatang/v1/agents/xa-a/events", encode_trap(trap)) == "accepted"
    text = render(store, NOW)
    own = {s.name for f in text_string_to_metric_families(text) for s in f.samples} - {"hatang_test"}
    assert {"hatang_agent_up", "hatang_device_up", "hatang_trap_received_total"} <= own, own
    for name in own:
        assert name in RESERVED_METRICS or name.startswith(RESERVED_METRIC_PREFIXES), name


# --- regressions: concrete inputs that broke the contract -------------------------------------------------

def _batch_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1, "type": "poll", "agent": "xa-a", "boot": "b1", "seq": 1, "ts": NOW, "device": "sw",
        "interval": 60, "up": True, "duration": 0.1, "site": {"province": "Vĩnh Phúc"},
        "metrics": [{"name": "hatang_test", "type": "gauge", "help": "h",
                     "samples": [{"labels": {"if_index": "1"}, "value": 1}]}],
    }
    doc.update(overrides)
    return doc


def _reason(decode: Callable[[bytes], Any], doc: Any) -> str:
    with pytest.raises(DecodeError) as info:
        decode(json.dumps(doc).encode())
    return info.value.reason


@pytest.mark.parametrize("value", [[], {}, ["device"], {"device": 1}], ids=repr)
def test_unhashable_kind_is_a_schema_reject_not_a_type_error(value: Any) -> None:
    # Regression (found by the properties above, fixed in d1efa0d): `kind not in BATCH_KINDS` raised
    # TypeError (unhashable) for a list or object, which escaped Store.ingest and killed the collector.
    assert _reason(decode_batch, _batch_doc(kind=value)) == "schema"


@pytest.mark.parametrize("value", [[], {}, ["gauge"]], ids=repr)
def test_unhashable_metric_type_is_a_schema_reject_not_a_type_error(value: Any) -> None:
    # Regression (fixed in d1efa0d): `mtype not in METRIC_TYPES` raised TypeError for a list or object.
    doc = _batch_doc()
    doc["metrics"][0]["type"] = value
    assert _reason(decode_batch, doc) == "schema"


@pytest.mark.parametrize(
    ("field", "value"),
    [("ts", 2**1100), ("interval", 10**400), ("duration", -(2**1024)), ("value", 2**1024),
     ("value", 10**309)],
)
def test_integers_beyond_float64_are_rejected_like_infinity(field: str, value: int) -> None:
    # Regression (fixed in d1efa0d): JSON integers were accepted at any size. 2**1024 and up is +-Inf
    # as a float64 (what Prometheus stores) and the store's `now - batch.ts` raised OverflowError.
    doc = _batch_doc()
    if field == "value":
        doc["metrics"][0]["samples"][0]["value"] = value
    else:
        doc[field] = value
    assert _reason(decode_batch, doc) == "schema"


def test_counter64_max_is_still_accepted_exactly() -> None:
    doc = _batch_doc()
    doc["metrics"][0]["samples"] = [{"labels": {"i": "1"}, "value": 2**64 - 1},
                                    {"labels": {"i": "2"}, "value": 0}]
    batch = decode_batch(json.dumps(doc).encode())
    assert [s.value for s in batch.families[0].samples] == [2**64 - 1, 0]


def test_a_status_buffer_key_with_a_lone_surrogate_is_rejected() -> None:
    # Regression (fixed in d1efa0d): buffer keys were truncated (`str(k)[:32]`) but not checked, so
    # "\ud800" reached AgentStatus.buffer and could not be written out as UTF-8.
    doc = {"v": 1, "type": "status", "agent": "xa-a", "boot": "b", "online": True, "ts": NOW,
           "buffer": {"\ud800": 1}}
    payload = json.dumps(doc).encode()  # ensure_ascii: the surrogate travels as the escape \ud800
    try:
        status = decode_status(payload)
    except DecodeError as exc:
        assert exc.reason == "schema"
        return
    for key, _ in status.buffer:
        key.encode("utf-8")


@pytest.mark.parametrize(
    "doc",
    [
        _batch_doc(kind=[]),
        _batch_doc(ts=2**1100),
        _batch_doc(interval=10**400),
    ],
    ids=["unhashable-kind", "huge-int-ts", "huge-int-interval"],
)
def test_store_ingest_counts_a_reject_instead_of_raising(doc: dict[str, Any]) -> None:
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: NOW)
    payload = json.dumps(copy.deepcopy(doc)).encode()
    assert store.ingest(data_topic("xa-a", "sw"), payload) == "rejected:schema"



@pytest.mark.parametrize("seq", [2**64, 2**200, 2**1100], ids=lambda s: f"2**{s.bit_length() - 1}")
@pytest.mark.parametrize("kind", ["poll", "trap"])
def test_seq_beyond_64_bits_is_a_schema_reject(kind: str, seq: int) -> None:
    # Was a bug (wire/validation.py seq_field accepted any positive int). A real agent numbers batches from
    # 1 in SQLite (signed 64-bit); a huge seq only serves to break the collector (see the next test).
    if kind == "poll":
        assert _reason(decode_batch, _batch_doc(seq=seq)) == "schema"
    else:
        trap = TrapMessage(agent="xa-a", boot_id="t", seq=1, ts=NOW, device="sw", source="192.0.2.1",
                           version="2c", trap_oid="1.3.6.1.6.3.1.1.5.3", trap_name="linkDown")
        doc = {**json.loads(encode_trap(trap)), "seq": seq}
        assert _reason(decode_trap, doc) == "schema"


def test_a_huge_seq_jump_is_rejected_by_the_store_instead_of_raising() -> None:
    # BUG: after seq 1, seq 2**1100 of the same boot is a gap of 2**1100 - 2; Store._ingest_batch calls
    # CollectorMetrics.gap -> prometheus_client Counter.inc, whose float += int raises OverflowError out
    # of Store.ingest and kills the collector (tests/e2e/test_hostile_payloads.py shows it end to end).
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: NOW)
    topic = data_topic("xa-a", "sw")
    assert store.ingest(topic, json.dumps(_batch_doc(seq=1)).encode()) == "accepted"
    assert store.ingest(topic, json.dumps(_batch_doc(seq=2**1100)).encode()) == "rejected:schema"

"""The collector's fast ingest path (collector/ingest.py) against the reference decoder and renderer.

``render_families`` must take exactly the decisions of :func:`wire.codec.decode_families` (reject iff
the reference rejects, with the same reason) and, when it accepts, produce for every family exactly the
text of :func:`hatang.textformat.render_lines` with the poll time, for both forms of a family
(verbose: ``samples`` objects; compact: ``series`` indexes into the poll's ``label_sets`` and
``values``). Its label cache (kept per device from poll to poll) and its shortcuts for a family that
lists the same label sets as the family before are optimisations only: every payload is checked with a
cold cache, with the cache its own first run left behind, and with a cache warmed by a different valid
payload (for a broken payload: its valid original, so the fast path finds every label set known).

Differential properties on generated payloads (valid ones, and valid ones with one to three mutations
from each invalid class), a round trip through the real Store and /metrics, and one explicit example
per invalid class; the last tests pin a bug these properties found.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector.exposition import render
from collector.ingest import LabelCache, render_families
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from hatang.textformat import format_labels, header, render_lines
from tests.unit.test_wire_fuzz import clean_text, sites
from wire.codec import (
    DEFAULT_LIMITS,
    RESERVED_LABELS,
    RESERVED_METRIC_PREFIXES,
    RESERVED_METRICS,
    DecodeError,
    Limits,
    decode_families,
    encode_batch,
    family_size,
    validate_labels,
)
from wire.messages import Family, Labels, PollBatch, Sample
from wire.topics import data_topic, self_topic

NOW = 1_795_550_709.0
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------------


def _names(first: str, rest: str, max_size: int) -> st.SearchStrategy[str]:
    """Names from a first character and a tail (much cheaper to draw than from_regex and filter)."""
    return st.builds(str.__add__, st.sampled_from(first), st.text(alphabet=rest, max_size=max_size))


label_names = _names("abzAZ_", "abzAZ09_", 20).filter(
    lambda n: n not in RESERVED_LABELS and not n.startswith("__"))
metric_names = _names("abzAZ_:", "abzAZ09_:", 30).filter(
    lambda n: n not in RESERVED_METRICS and not n.startswith(RESERVED_METRIC_PREFIXES))
agent_ids = _names("a0", "az09_-", 12)
device_names = _names("aZ0", "aZ09_.-", 12)

# Label values that stress the escaping: quotes, backslashes, newlines, Vietnamese, separators.
TRICKY_TEXT = [
    "", "Vĩnh Phúc", "Đường truyền số liệu chuyên dùng", "Tam Đảo", 'a"b', "a\\b", "a\nb", "\\n", '\\"',
    "\\", '"', "\n", "Gi0/1", 'x,y="z"', "}", "{", "=", ",", " ", "\t", "\r\n", "🙂", "\u2028", "\x00",
    "\\\\\"\n", "ă\\\"",
]
label_values = st.sampled_from(TRICKY_TEXT) | clean_text
# A few fixed names so that label sets of different families collide (cache hits) as real tables do.
sample_label_names = st.sampled_from(["if_index", "if_name", "if_alias", "a", "b", "_x", "Z9"]) | label_names
label_set = st.dictionaries(sample_label_names, label_values, max_size=4).map(
    lambda d: tuple(sorted(d.items())))
help_texts = (st.sampled_from(["", "Bytes received.", "Số byte nhận\nqua cổng \\ \"x\""])
              | st.text(max_size=40))
EXTREME_VALUES: list[int | float] = [
    0, 1, -1, 2**64 - 1, 2**64 - 2, -(2**63), 2**63, 2**53 + 1, -0.0, 0.0, 1e300, -1e300, 5e-324, -5e-324,
    1e-300, 2.2250738585072014e-308, 0.1, 1.5, 123456789.125, 1e16, 1e22, 9007199254740993.0,
]
values = (
    st.sampled_from(EXTREME_VALUES)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
)
family_names = st.sampled_from(["ifHCInOctets", "a", "a_b", "x:y", "_", "hatang_if_in"]) | metric_names
# Whatever the limits, what the generators below call valid stays valid (names <= 31, values <= 24
# characters, at most 4 labels), except help (truncated, not rejected) and the strings the mutations add.
LIMITS = [DEFAULT_LIMITS, Limits(max_label_length=32, max_labels=5)]
limits_strategy = st.sampled_from(LIMITS)


@dataclasses.dataclass
class Payload:
    """The ``metrics`` and ``label_sets`` of a poll as JSON decodes them (label_sets None: absent)."""

    metrics: list[Any]
    label_sets: Any = None


def _shuffled(draw: st.DrawFn, labels: Labels) -> dict[str, str]:
    """A label set as sent: keys in the sorted order or in a random one."""
    return dict(draw(st.permutations(labels)) if draw(st.booleans()) else labels)


def _sample(draw: st.DrawFn, labels: Labels, value: int | float) -> dict[str, Any]:
    """A verbose sample: labels in a random key order, or no labels key for no labels."""
    if not labels and draw(st.integers(0, 3)) == 0:
        return {"value": value}
    sample: dict[str, Any] = {"labels": _shuffled(draw, labels), "value": value}
    if draw(st.integers(0, 9)) == 0:  # key order and unknown keys do not matter
        sample = {"extra": [1, {"x": None}], "value": value, "labels": sample["labels"]}
    return sample


def _labels_of(sample: dict[str, Any]) -> Labels:
    return tuple(sorted(sample.get("labels", {}).items()))


@st.composite
def valid_metrics(draw: st.DrawFn, min_size: int = 0) -> list[dict[str, Any]]:
    """A valid verbose ``metrics`` list. Families draw their label sets from a few shared tables, mostly
    the whole table in its order (so consecutive families repeat the identical label list: the shortcut),
    sometimes a reordered subset of it."""
    tables = draw(st.lists(st.lists(label_set, unique=True, max_size=5), min_size=1, max_size=3))
    metrics: list[dict[str, Any]] = []
    for name in draw(st.lists(family_names, unique=True, min_size=min_size, max_size=6)):
        table = draw(st.sampled_from(tables))
        if draw(st.integers(0, 3)) == 0:
            table = draw(st.permutations(table))[: draw(st.integers(0, len(table)))]
        samples = [_sample(draw, labels, draw(values)) for labels in table]
        family: dict[str, Any] = {"name": name, "type": draw(st.sampled_from(["gauge", "counter"]))}
        if draw(st.integers(0, 4)):
            family["help"] = draw(help_texts)
        keep: bool = bool(samples) or draw(st.booleans())
        if keep:
            family["samples"] = samples
        if draw(st.integers(0, 9)) == 0:
            family["unit"] = "bytes"
        metrics.append(family)
    return metrics


def _compact(draw: st.DrawFn, metrics: list[dict[str, Any]], everything: bool) -> list[dict[str, str]]:
    """Turn all (or some) families of a valid verbose list into the compact form, in place; return the
    label sets. These come in a random order, with unused ones and maybe a second copy of a used one
    (then a family may index either copy)."""
    chosen = [f for f in metrics if everything or draw(st.booleans())]
    used = list(dict.fromkeys(_labels_of(s) for f in chosen for s in f.get("samples", [])))
    listed = draw(st.permutations(used + draw(st.lists(label_set, max_size=2))))
    where: dict[Labels, list[int]] = {}
    for i, labels in enumerate(listed):
        where.setdefault(labels, []).append(i)
    for family in chosen:
        samples = family.pop("samples", [])
        family["series"] = [draw(st.sampled_from(where[_labels_of(s)])) for s in samples]
        family["values"] = [s["value"] for s in samples]
    return [_shuffled(draw, labels) for labels in listed]


@st.composite
def valid_payloads(draw: st.DrawFn, min_size: int = 0) -> Payload:
    metrics = draw(valid_metrics(min_size))
    form = draw(st.sampled_from(["verbose", "compact", "compact", "mixed"]))
    if form == "verbose":
        extra = [_shuffled(draw, labels) for labels in draw(st.lists(label_set, max_size=2))]
        return Payload(metrics, draw(st.sampled_from([None, [], extra])))
    return Payload(metrics, _compact(draw, metrics, everything=form == "compact"))


# --- mutations: each turns a valid payload into (usually) an invalid one of its class --------------------

Mutation = Callable[[st.DrawFn, Payload, Limits], None]


def _family(draw: st.DrawFn, p: Payload, compact: bool | None = None) -> dict[str, Any]:
    """A family object of the payload (of the given form), added when there is none."""
    families = [f for f in p.metrics
                if isinstance(f, dict) and (compact is None or ("values" in f) == compact)]
    if families:
        family: dict[str, Any] = draw(st.sampled_from(families))
        return family
    if compact:
        if not isinstance(p.label_sets, list):
            p.label_sets = []
        p.label_sets.append({"added": "c"})
        added = {"name": "m_added_compact", "type": "gauge", "series": [len(p.label_sets) - 1], "values": [1]}
    else:
        added = {"name": "m_added", "type": "gauge", "samples": []}
    p.metrics.append(added)
    return added


def _samples(draw: st.DrawFn, p: Payload) -> list[Any]:
    family = _family(draw, p, compact=False)
    samples = family.get("samples")
    if not isinstance(samples, list):
        samples = family["samples"] = []
    return samples


def _sample_at(draw: st.DrawFn, p: Payload) -> tuple[list[Any], int]:
    samples = _samples(draw, p)
    if not samples:
        samples.append({"labels": {"added": "1"}, "value": 1})
    return samples, draw(st.integers(0, len(samples) - 1))


def _sample_dict(draw: st.DrawFn, p: Payload) -> dict[str, Any]:
    samples, j = _sample_at(draw, p)
    if not isinstance(samples[j], dict):
        samples[j] = {"labels": {}, "value": 1}
    sample: dict[str, Any] = samples[j]
    return sample


def _labels_dict(draw: st.DrawFn, p: Payload) -> dict[str, Any]:
    """The labels of a verbose sample, or (when the payload lists label sets) one of those."""
    listed = [d for d in p.label_sets if isinstance(d, dict)] if isinstance(p.label_sets, list) else []
    in_list: bool = bool(listed) and draw(st.booleans())
    if in_list:
        labels: dict[str, Any] = draw(st.sampled_from(listed))
        return labels
    sample = _sample_dict(draw, p)
    if not isinstance(sample.get("labels"), dict):
        sample["labels"] = {}
    labels = sample["labels"]
    return labels


def _compact_entry(draw: st.DrawFn, p: Payload) -> tuple[dict[str, Any], int]:
    """A compact family with at least one entry, and the index of one of its entries."""
    family = _family(draw, p, compact=True)
    for key in ("series", "values"):
        if not isinstance(family.get(key), list):
            family[key] = []
    if not family["values"] or len(family["series"]) != len(family["values"]):
        if not isinstance(p.label_sets, list):
            p.label_sets = []
        p.label_sets.append({"added": str(len(p.label_sets))})
        family["series"].append(len(p.label_sets) - 1)
        family["values"].append(1)
    return family, draw(st.integers(0, min(len(family["series"]), len(family["values"])) - 1))


def _set_value(choices: list[Any]) -> Mutation:
    """A bad value in a verbose sample or in a compact family."""
    def mutate(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
        if draw(st.booleans()):
            _sample_dict(draw, p)["value"] = draw(st.sampled_from(choices))
        else:
            family, j = _compact_entry(draw, p)
            family["values"][j] = draw(st.sampled_from(choices))
    return mutate


def _missing_value(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    _sample_dict(draw, p).pop("value", None)


def _missing_labels(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    # valid on its own (no labels), a duplicate when the family has another sample without labels
    samples = _samples(draw, p)
    for _ in range(draw(st.integers(1, 2))):
        pick: bool = bool(samples) and draw(st.booleans())
        if pick:
            j = draw(st.integers(0, len(samples) - 1))
            if isinstance(samples[j], dict):
                samples[j].pop("labels", None)
        else:
            samples.insert(draw(st.integers(0, len(samples))), {"value": draw(values)})


NON_OBJECTS: list[Any] = [None, [], "x", 1, 1.5, True, [{"labels": {}, "value": 1}], ["labels", "value"]]


def _non_dict_sample(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    samples, j = _sample_at(draw, p)
    samples[j] = draw(st.sampled_from(NON_OBJECTS))


def _non_dict_labels(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    bad = draw(st.sampled_from([*NON_OBJECTS, [["a", "b"]], "a=b"]))
    in_list: bool = isinstance(p.label_sets, list) and bool(p.label_sets) and draw(st.booleans())
    if in_list:
        p.label_sets[draw(st.integers(0, len(p.label_sets) - 1))] = bad
    else:
        _sample_dict(draw, p)["labels"] = bad


def _label_value_type(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    labels = _labels_dict(draw, p)
    existing: bool = bool(labels) and draw(st.booleans())
    name = draw(st.sampled_from(sorted(labels))) if existing else "bad"
    labels[name] = draw(st.sampled_from([["x"], [], {"a": "b"}, 1, 0, None, True, False, 1.5, float("nan")]))


def _label_name(names: st.SearchStrategy[str]) -> Mutation:
    def mutate(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
        labels = _labels_dict(draw, p)
        labels[draw(names)] = draw(label_values)
        if draw(st.booleans()):  # not always last in the dict
            items = list(labels.items())
            labels.clear()
            labels.update(reversed(items))
    return mutate


BAD_LABEL_NAMES = ["1a", "a-b", "", "__x", "__name__", "é", "a b", "a.b", "a\n", "ａ", "a\ud800"]


def _too_many_labels(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    labels = _labels_dict(draw, p)
    labels.clear()
    labels.update({f"l{i}": str(i) for i in range(limits.max_labels + draw(st.integers(0, 1)))})


def _too_long(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    size = limits.max_label_length + draw(st.sampled_from([0, 1, 1, 2]))  # exactly the limit is valid
    labels = _labels_dict(draw, p)
    if draw(st.booleans()):
        labels["long"] = draw(st.sampled_from(["x", "ă", '"', "\\"])) * size
    else:
        labels["l" * size] = "v"


def _surrogate(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    text = draw(st.sampled_from(["\ud800", "a\udfff", "\udbff\n"]))
    where = draw(st.sampled_from(["label", "help", "name"]))
    if where == "label":
        _labels_dict(draw, p)["s"] = text
    else:
        _family(draw, p)[where] = text


def _duplicate_labels(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    """A second sample with the labels of another one of its family, maybe in another key order."""
    samples = _samples(draw, p)
    dicts = [s for s in samples if isinstance(s, dict) and isinstance(s.get("labels", {}), dict)]
    labels: dict[str, Any] = dict(draw(st.sampled_from(dicts)).get("labels", {})) if dicts else {"d": "1"}
    if not dicts:
        samples.append({"labels": dict(labels), "value": 1})
    items = list(labels.items())
    twin = dict(draw(st.permutations(items))) if draw(st.booleans()) else dict(reversed(items))
    samples.insert(draw(st.integers(0, len(samples))), {"labels": twin, "value": draw(values)})


def _duplicate_series(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    """A compact family indexes one label set twice, or two listed copies of one label set."""
    family, j = _compact_entry(draw, p)
    ref = family["series"][j]
    # an earlier mutation may have replaced label_sets by a non-list: then only the index is repeated
    if (draw(st.booleans()) and type(ref) is int and isinstance(p.label_sets, list)
            and 0 <= ref < len(p.label_sets)):
        listed = p.label_sets[ref]
        twin = dict(reversed(list(listed.items()))) if isinstance(listed, dict) else listed
        p.label_sets.insert(len(p.label_sets), twin)
        ref = len(p.label_sets) - 1
    at = draw(st.integers(0, len(family["series"])))
    family["series"].insert(at, ref)
    family["values"].insert(at, draw(values))


BAD_REFS: list[Any] = [-1, 10**400, -(10**400), True, False, 0.0, 1.0, "0", None, [0]]


def _series_index(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    family, j = _compact_entry(draw, p)
    # an earlier mutation may have replaced label_sets by a non-list (then any index is out of range)
    sets = len(p.label_sets) if isinstance(p.label_sets, list) else 0
    family["series"][j] = draw(st.sampled_from([sets, sets + 7, *BAD_REFS]))


def _series_shape(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    family, j = _compact_entry(draw, p)
    change = draw(st.sampled_from(["short_values", "long_series", "series_type", "values_type",
                                   "no_series", "no_values", "samples_too", "empty_samples_too"]))
    if change == "short_values":
        del family["values"][j]
    elif change == "long_series":
        family["series"].append(family["series"][j])
    elif change in ("series_type", "values_type"):
        family[change.removesuffix("_type")] = draw(st.sampled_from([None, {}, "0", 0, (), {"0": 1}]))
    elif change in ("no_series", "no_values"):  # without values it is a verbose family (no samples)
        del family[change.removeprefix("no_")]
    else:
        family["samples"] = [] if change == "empty_samples_too" else [{"labels": {}, "value": 1}]


def _label_sets_type(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    # an empty non-list ({}, "", 0, False) reads as no label sets: valid unless a family indexes them
    p.label_sets = draw(st.sampled_from([{"a": "1"}, "x", 1, True, 1.5, {}, "", 0, False, None]))


def _duplicate_family(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    family = _family(draw, p)
    if draw(st.booleans()):
        twin = copy.deepcopy(family)
        twin["type"] = draw(st.sampled_from(["gauge", "counter"]))
    else:
        twin = {"name": family.get("name"), "type": "gauge", "samples": [{"value": 1}]}
    p.metrics.insert(draw(st.integers(0, len(p.metrics))), twin)


def _non_dict_family(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    p.metrics.insert(draw(st.integers(0, len(p.metrics))), draw(st.sampled_from(NON_OBJECTS)))


def _family_field(draw: st.DrawFn, p: Payload, limits: Limits) -> None:
    family = _family(draw, p)
    fields: list[tuple[str, list[Any]]] = [
        ("name", [None, 1, "", "1abc", "a-b", "a b", "é", "hatang_device_up", "hatang_collector_x",
                  "process_cpu", "python_gc", ["a"], "m" * (limits.max_label_length + 1),
                  "m" * limits.max_label_length]),
        ("type", [None, "histogram", "Gauge", "untyped", ["gauge"], {}, 1, True]),
        ("help", [None, 1, ["x"], {}, False, "h" * (limits.max_label_length + 5)]),
        ("samples", [None, {}, "x", 1, {"labels": {}, "value": 1}]),
    ]
    key, choices = draw(st.sampled_from(fields))
    if draw(st.integers(0, 5)) == 0:
        family.pop(key, None)
    else:
        family[key] = draw(st.sampled_from(choices))


MUTATIONS: dict[str, Mutation] = {
    "bool_value": _set_value([True, False]),
    "non_finite": _set_value([float("nan"), float("inf"), float("-inf"), -float("nan")]),
    "float_too_big": _set_value([1e301, -1e301, 1.7976931348623157e308, 1.0000000000000002e300]),
    "int_out_of_range": _set_value([2**64, -(2**63) - 1, 2**65, 10**400, -(10**400), 2**1024, 2**1100]),
    "value_type": _set_value(["1", "", None, [], [1], {}, {"v": 1}]),
    "missing_value": _missing_value,
    "missing_labels": _missing_labels,
    "non_dict_sample": _non_dict_sample,
    "non_dict_labels": _non_dict_labels,
    "label_value_type": _label_value_type,
    "reserved_label": _label_name(st.sampled_from(sorted(RESERVED_LABELS))),
    "bad_label_name": _label_name(st.sampled_from(BAD_LABEL_NAMES)),
    "too_many_labels": _too_many_labels,
    "too_long": _too_long,
    "surrogate": _surrogate,
    "duplicate_labels": _duplicate_labels,
    "duplicate_series": _duplicate_series,
    "series_index": _series_index,
    "series_shape": _series_shape,
    "label_sets_type": _label_sets_type,
    "duplicate_family": _duplicate_family,
    "non_dict_family": _non_dict_family,
    "family_field": _family_field,
}


@st.composite
def broken_payloads(draw: st.DrawFn, limits: Limits, kind: str | None = None) -> tuple[Payload, Payload]:
    """(a valid payload, the same with one to three mutations, or with the one of class ``kind``)."""
    original = draw(valid_payloads(min_size=1))
    payload = copy.deepcopy(original)
    kinds = [kind] if kind else draw(st.permutations(sorted(MUTATIONS)))[: draw(st.integers(1, 3))]
    for name in kinds:
        MUTATIONS[name](draw, payload, limits)
        event(f"mutation {name}")  # --hypothesis-show-statistics
    return original, payload


@st.composite
def bases(draw: st.DrawFn) -> Labels:
    """The collector's labels of a device (or of the agent itself: no device label)."""
    device: Labels = (("device", draw(device_names)),) if draw(st.integers(0, 3)) else ()
    base: Labels = (("agent", draw(agent_ids)), *device, *draw(sites))
    return base


stamps = st.integers(min_value=1_000_000_000_000, max_value=10_000_000_000_000)

# --- the check ----------------------------------------------------------------------------------------

Outcome = str | tuple[dict[str, str], dict[str, tuple[str, str]]]  # reject reason, or (blocks, meta)


def reference(p: Payload, base: Labels, ts_ms: int, limits: Limits) -> Outcome:
    try:
        families = decode_families(p.metrics, limits, p.label_sets)
    except DecodeError as exc:
        return exc.reason
    blocks = {f.name: "".join(line + "\n" for line in render_lines(f, base, ts_ms)) for f in families}
    return ({name: block for name, block in blocks.items() if block},
            {f.name: (f.type, f.help) for f in families})


def fast(p: Payload, base: Labels, ts_ms: int, limits: Limits, cache: LabelCache) -> Outcome:
    # Anything but DecodeError escaping (TypeError, OverflowError...) fails the test: Store.ingest only
    # turns DecodeError into a reject; anything else ends the subscriber.
    try:
        out = render_families(p.metrics, format_labels(base)[1:-1], ts_ms, limits, cache, p.label_sets)
    except DecodeError as exc:
        return exc.reason
    assert out.samples == sum(map(family_size, p.metrics))
    return out.blocks, out.meta


def check_cache(cache: LabelCache, limits: Limits) -> None:
    """Every cached fragment is that of a valid label set (a rejected payload may leave some behind)."""
    for key, fragment in cache.items():
        labels = validate_labels(dict(key), "cache", limits)
        assert fragment == format_labels(labels)[1:-1], (key, fragment)


def check_same(p: Payload, base: Labels, ts_ms: int, limits: Limits, warm: Payload) -> Outcome:
    """The fast path's verdict and text equal the reference's: with a cold cache, with the cache its
    first run left (twice: the second run finds every label set of the first known), and with a cache
    warmed by the valid payload ``warm``. Returns the reference outcome."""
    snapshot = repr(p)  # repr: NaN != NaN
    expected = reference(p, base, ts_ms, limits)
    cache: LabelCache = {}
    assert fast(p, base, ts_ms, limits, cache) == expected, "cold cache"
    assert fast(p, base, ts_ms, limits, cache) == expected, "own warm cache"
    check_cache(cache, limits)
    warmed: LabelCache = {}
    assert not isinstance(fast(warm, base, ts_ms - 1, limits, warmed), str)
    assert fast(p, base, ts_ms, limits, warmed) == expected, "cache warmed by another payload"
    assert fast(p, base, ts_ms, limits, warmed) == expected, "cache warmed by both"
    check_cache(warmed, limits)
    assert repr(p) == snapshot, "render_families changed its input"
    return expected


def _record(expected: Outcome) -> None:
    event(f"reference: {expected if isinstance(expected, str) else 'accepted'}")


# --- properties --------------------------------------------------------------------------------------


@PROPERTY
@given(p=valid_payloads(), warm=valid_payloads(), base=bases(), ts_ms=stamps, limits=limits_strategy)
def test_valid_payloads_render_exactly_like_the_reference(
    p: Payload, warm: Payload, base: Labels, ts_ms: int, limits: Limits
) -> None:
    expected = check_same(p, base, ts_ms, limits, warm)
    assert not isinstance(expected, str), f"the generator made an invalid payload: {expected}"


@settings(PROPERTY, max_examples=300)
@given(data=st.data(), base=bases(), ts_ms=stamps, limits=limits_strategy)
def test_broken_payloads_are_rejected_exactly_like_the_reference(
    data: st.DataObject, base: Labels, ts_ms: int, limits: Limits
) -> None:
    original, p = data.draw(broken_payloads(limits))
    _record(check_same(p, base, ts_ms, limits, original))


@settings(PROPERTY, max_examples=20)
@given(data=st.data(), base=bases(), ts_ms=stamps, limits=limits_strategy)
@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_each_class_of_breakage_is_decided_like_the_reference(
    kind: str, data: st.DataObject, base: Labels, ts_ms: int, limits: Limits
) -> None:
    original, p = data.draw(broken_payloads(limits, kind))
    _record(check_same(p, base, ts_ms, limits, original))


@PROPERTY
@given(data=st.data(), base=bases(), ts_ms=stamps, limits=limits_strategy, compact=st.booleans(),
       fault=st.sampled_from(["value", "duplicate", "duplicate_reordered", "none"]))
def test_a_broken_family_after_families_sharing_one_label_list(
    data: st.DataObject, base: Labels, ts_ms: int, limits: Limits, compact: bool, fault: str
) -> None:
    """Families 0..k-1 list the identical label sets (k-1 of them take the shortcut); family k has the same
    list with one bad value, or with one label set repeated (maybe in another key order), or is valid."""
    table = data.draw(st.lists(label_set, unique=True, min_size=1, max_size=5))
    names = data.draw(st.lists(family_names, unique=True, min_size=2, max_size=5))
    p = Payload([{"name": n, "type": "gauge", "samples": [{"labels": dict(labels), "value": data.draw(values)}
                                                        for labels in table]}
                 for n in names])
    if compact:
        p.label_sets = [dict(labels) for labels in table]
        for family in p.metrics:
            family["values"] = [s["value"] for s in family.pop("samples")]
            family["series"] = list(range(len(table)))
    original = copy.deepcopy(p)
    last = p.metrics[-1]
    j = data.draw(st.integers(0, len(table) - 1))
    if fault == "value":
        bad = data.draw(st.sampled_from(
            [True, float("nan"), float("inf"), 1e301, 2**64, -(2**63) - 1, 10**400, None, "1"]))
        (last["values"] if compact else last["samples"][j])[j if compact else "value"] = bad
    elif fault.startswith("duplicate"):
        items = list(table[j])
        twin = dict(reversed(items)) if fault == "duplicate_reordered" else dict(items)
        at = data.draw(st.integers(0, len(table)))
        if compact:  # the same index again, or an index of a second copy of the label set
            p.label_sets.append(twin)
            last["series"].insert(at, len(table) if fault == "duplicate_reordered" else j)
            last["values"].insert(at, 0.5)
        else:
            last["samples"].insert(at, {"labels": twin, "value": 0.5})
    expected = check_same(p, base, ts_ms, limits, original)
    _record(expected)
    assert isinstance(expected, str) == (fault != "none"), expected


# --- through the store -----------------------------------------------------------------------------------


def _families(raw: list[dict[str, Any]]) -> tuple[Family, ...]:
    return tuple(Family(f["name"], f["type"], f.get("help", ""),
                        tuple(Sample(_labels_of(s), s["value"]) for s in f.get("samples", [])))
                 for f in raw)


def _verbose(batch: PollBatch) -> bytes:
    """The poll with every sample an object with its labels, whatever form encode_batch writes."""
    doc = json.loads(encode_batch(batch))
    doc.pop("label_sets", None)
    doc["metrics"] = [{"name": f.name, "type": f.type, "help": f.help,
                       "samples": [{"labels": dict(s.labels), "value": s.value} for s in f.samples]}
                      for f in batch.families]
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()


def _sections(text: str) -> dict[str, list[str]]:
    """The lines of a /metrics text under each HELP line (label values cannot hold a raw newline)."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (piece + "\n" for piece in text.split("\n")[:-1]):  # not splitlines(): "\r" is raw
        if line.startswith("# HELP "):
            current = sections.setdefault(line.split(" ")[2], [])
        elif not line.startswith("# TYPE "):
            current.append(line)
    return sections


@settings(PROPERTY, max_examples=300)
@given(first=valid_metrics(), second_values=st.lists(values, min_size=64, max_size=64),
       agent=agent_ids, device=device_names, site=sites, own=st.booleans(), verbose=st.booleans())
def test_the_store_serves_exactly_the_reference_lines(
    first: list[dict[str, Any]], second_values: list[int | float], agent: str, device: str, site: Labels,
    own: bool, verbose: bool
) -> None:
    """Through JSON (encode_batch's compact form, or every sample an object), Store.ingest (the fast
    path) and /metrics; then a second poll of the same device with new values, which finds its label
    sets in the device's cache."""
    clock = [NOW]
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: clock[0])
    topic = self_topic(agent) if own else data_topic(agent, device)
    base: Labels = (("agent", agent), *(() if own else (("device", device),)), *site)
    families = _families(first)
    for seq in (1, 2):
        if seq == 2:  # new values, same label sets
            fresh = iter(second_values)
            families = tuple(dataclasses.replace(f, samples=tuple(
                s._replace(value=next(fresh)) for s in f.samples)) for f in families)
        ts = clock[0] = NOW + seq
        batch = PollBatch(agent=agent, boot_id="b1", seq=seq, ts=ts, device=device, interval=60.0,
                          up=True, duration=0.1, site=site, families=families)
        assert store.ingest(topic, _verbose(batch) if verbose else encode_batch(batch)) == "accepted"
        text = render(store, ts)
        sections = _sections(text)
        ts_ms = round(ts * 1000)
        for family in families:
            assert header(family.name, family.type, family.help) in text
            expected = [line + "\n" for line in render_lines(family, base, ts_ms)]
            assert sections[family.name] == expected, family.name


# --- one example per invalid class --------------------------------------------------------------------


def _one(value: Any = 1, labels: Any = None, **family: Any) -> list[Any]:
    sample: dict[str, Any] = {"labels": {"if_index": "1"} if labels is None else labels, "value": value}
    return [{"name": "m", "type": "gauge", "help": "h", "samples": [sample], **family}]


def _two(*samples: dict[str, Any]) -> list[Any]:
    return [{"name": "m", "type": "counter", "samples": list(samples)}]


def _cf(series: Any, values: Any, name: str = "c", **extra: Any) -> dict[str, Any]:
    """A compact family."""
    return {"name": name, "type": "gauge", "series": series, "values": values, **extra}


SMALL = Limits(max_label_length=8, max_labels=2)
DL = DEFAULT_LIMITS
SETS = [{"i": "1"}, {"i": "2"}]
INVALID: list[tuple[str, Payload, Limits]] = [
    ("bool-true", Payload(_one(True)), DL),
    ("bool-false", Payload(_one(False)), DL),
    ("nan", Payload(_one(float("nan"))), DL),
    ("inf", Payload(_one(float("inf"))), DL),
    ("-inf", Payload(_one(float("-inf"))), DL),
    ("float-1e301", Payload(_one(1e301)), DL),
    ("int-2**64", Payload(_one(2**64)), DL),
    ("int-below-min", Payload(_one(-(2**63) - 1)), DL),
    ("int-10**400", Payload(_one(10**400)), DL),
    ("value-str", Payload(_one("1")), DL),
    ("value-null", Payload(_one(None)), DL),
    ("value-list", Payload(_one([1])), DL),
    ("missing-value", Payload([{"name": "m", "type": "gauge", "samples": [{"labels": {}}]}]), DL),
    ("sample-null", Payload([{"name": "m", "type": "gauge", "samples": [None]}]), DL),
    ("sample-list", Payload([{"name": "m", "type": "gauge", "samples": [[{"labels": {}, "value": 1}]]}]),
     DL),
    ("sample-str", Payload([{"name": "m", "type": "gauge", "samples": ["x"]}]), DL),
    ("labels-null", Payload(_two({"labels": None, "value": 1})), DL),
    ("labels-list", Payload(_one(labels=[["a", "b"]])), DL),
    ("labels-str", Payload(_one(labels="a=b")), DL),
    ("label-value-list", Payload(_one(labels={"a": ["x"]})), DL),
    ("label-value-int", Payload(_one(labels={"a": 1})), DL),
    ("label-value-null", Payload(_one(labels={"a": None})), DL),
    ("label-value-object", Payload(_one(labels={"a": {"b": "c"}})), DL),
    *[(f"reserved-{name}", Payload(_one(labels={"a": "1", name: "x"})), DL)
      for name in sorted(RESERVED_LABELS)],
    *[(f"bad-name-{name!r}", Payload(_one(labels={name: "x"})), DL) for name in BAD_LABEL_NAMES],
    ("too-many-labels", Payload(_one(labels={"a": "1", "b": "2", "c": "3"})), SMALL),
    ("too-long-value", Payload(_one(labels={"a": "x" * 9})), SMALL),
    ("too-long-label-name", Payload(_one(labels={"a" * 9: "x"})), SMALL),
    ("surrogate-value", Payload(_one(labels={"a": "\ud800"})), DL),
    ("surrogate-help", Payload(_one(help="\udc00")), DL),
    ("duplicate-labels", Payload(_two({"labels": {"a": "1", "b": "2"}, "value": 1},
                                      {"labels": {"a": "1", "b": "2"}, "value": 2})), DL),
    ("duplicate-labels-key-order", Payload(_two({"labels": {"a": "1", "b": "2"}, "value": 1},
                                                {"labels": {"b": "2", "a": "1"}, "value": 2})), DL),
    ("duplicate-no-labels", Payload(_two({"value": 1}, {"labels": {}, "value": 2})), DL),
    ("duplicate-family", Payload(_one() + _one()), DL),
    ("duplicate-family-far-apart", Payload(_one() + _one(name="n") + _one(type="counter")), DL),
    ("duplicate-family-across-forms", Payload([*_one(name="c"), _cf([0], [1])], SETS), DL),
    ("family-null", Payload([None]), DL),
    ("family-name-bad", Payload(_one(name="1m")), DL),
    ("family-name-reserved", Payload(_one(name="hatang_device_up")), DL),
    ("family-name-reserved-prefix", Payload(_one(name="process_cpu_seconds_total")), DL),
    ("family-name-too-long", Payload(_one(name="m" * 9)), SMALL),
    ("family-type-histogram", Payload(_one(type="histogram")), DL),
    ("family-type-list", Payload(_one(type=["gauge"])), DL),
    ("family-help-int", Payload(_one(help=1)), DL),
    ("family-samples-object", Payload([{"name": "m", "type": "gauge", "samples": {"value": 1}}]), DL),
    # the previous-family shortcut: identical label lists, then a bad value / a repeated label set
    ("shortcut-then-bool", Payload(_one(1) + _one(True, name="n")), DL),
    ("shortcut-then-nan", Payload(_one(1.5) + _one(1.5, name="n") + _one(float("nan"), name="o")),
     DL),
    ("shortcut-then-duplicate", Payload(_one(1) + _one(2, name="n") + _two(
        {"labels": {"if_index": "1"}, "value": 1}, {"labels": {"if_index": "1"}, "value": 2})), DL),
    # the compact form
    ("compact-bool", Payload([_cf([0, 1], [1, True])], SETS), DL),
    ("compact-nan", Payload([_cf([0, 1], [1.5, float("nan")])], SETS), DL),
    ("compact-int-10**400-among-floats", Payload([_cf([0, 1], [0.5, 10**400])], SETS), DL),
    ("compact-value-null", Payload([_cf([0], [None])], SETS), DL),
    ("compact-index-too-big", Payload([_cf([2], [1])], SETS), DL),
    ("compact-index-negative", Payload([_cf([-1], [1])], SETS), DL),
    ("compact-index-bool", Payload([_cf([True], [1])], SETS), DL),
    ("compact-index-float", Payload([_cf([0.0], [1])], SETS), DL),
    ("compact-index-str", Payload([_cf(["0"], [1])], SETS), DL),
    ("compact-index-huge", Payload([_cf([10**400], [1])], SETS), DL),
    ("compact-no-label-sets", Payload([_cf([0], [1])]), DL),
    ("compact-duplicate-index", Payload([_cf([0, 0], [1, 2])], SETS), DL),
    ("compact-duplicate-label-set", Payload([_cf([0, 2], [1, 2])], [*SETS, {"i": "1"}]), DL),
    ("compact-length-mismatch", Payload([_cf([0, 1], [1])], SETS), DL),
    ("compact-series-missing", Payload([{"name": "c", "type": "gauge", "values": [1]}], SETS), DL),
    ("compact-series-object", Payload([_cf({"0": 0}, [1])], SETS), DL),
    ("compact-values-str", Payload([_cf([0], "1")], SETS), DL),
    ("compact-and-samples", Payload([_cf([0], [1], samples=[])], SETS), DL),
    ("label-sets-object", Payload([_cf([0], [1])], {"0": {"i": "1"}}), DL),
    ("label-sets-str", Payload(_one(), "x"), DL),
    ("unused-label-set-reserved", Payload(_one(), [*SETS, {"device": "x"}]), DL),
    ("unused-label-set-null", Payload(_one(), [None]), DL),
    ("label-set-unhashable-value", Payload([_cf([0], [1])], [{"i": ["1"]}]), DL),
    ("label-set-too-long", Payload([_cf([0], [1])], [{"i": "x" * 9}]), SMALL),
    ("compact-shortcut-then-bool", Payload([_cf([0, 1], [1, 2]), _cf([0, 1], [1, False], name="d")], SETS),
     DL),
    ("compact-shortcut-then-duplicate", Payload([_cf([0, 1], [1, 2]), _cf([0, 1], [1, 2], name="d"),
                                                 _cf([0, 1, 0], [1, 2, 3], name="e")], SETS), DL),
]


@pytest.mark.parametrize(("p", "limits"), [pytest.param(p, limits, id=name) for name, p, limits in INVALID])
def test_each_invalid_class_is_a_schema_reject(p: Payload, limits: Limits) -> None:
    base: Labels = (("agent", "xa-a"), ("device", "sw"))
    assert reference(p, base, 1, limits) == "schema"
    warm = Payload(_two({"labels": {"if_index": "1"}, "value": 1},
                        {"labels": {"a": "1", "b": "2"}, "value": 1},
                        {"labels": {"i": "1"}, "value": 0.5}, {"labels": {"i": "2"}, "value": 1}),
                   [{"i": "1"}, {"i": "2"}, {"if_index": "1"}])
    check_same(p, base, 1_795_550_709_000, limits, warm)


VALID: list[tuple[str, Payload, Limits]] = [
    ("extremes",
     Payload(_two(*({"labels": {"i": str(i)}, "value": v} for i, v in enumerate(EXTREME_VALUES)))), DL),
    ("counter64-max-twice", Payload(_two({"labels": {"i": "1"}, "value": 2**64 - 1},
                                         {"labels": {"i": "2"}, "value": 2**64 - 1})), DL),
    ("min-int-and-float", Payload(_two({"labels": {"i": "1"}, "value": -(2**63)},
                                       {"labels": {"i": "2"}, "value": -0.5})), DL),
    ("missing-labels", Payload([{"name": "m", "type": "gauge", "samples": [{"value": 1}]}]), DL),
    ("missing-samples-and-help", Payload([{"name": "m", "type": "gauge"}]), DL),
    ("escapes", Payload(_one(labels={"alias": 'Đường "số"\\n\nx', "b": "\\"}, help="a\nb\\")), DL),
    ("shortcut-key-order",
     Payload(_one(labels={"a": "1", "b": "2"}) + _one(labels={"b": "2", "a": "1"}, name="n")), DL),
    ("shortcut-empty-families", Payload([{"name": "m", "type": "gauge", "samples": []}, *_one(name="n"),
                                         {"name": "o", "type": "gauge", "samples": []}, *_one(name="p")]),
     DL),
    ("limits-exactly",
     Payload(_one(labels={"a" * 8: "x" * 8, "b": "é" * 8}, name="m" * 8, help="h" * 20)), SMALL),
    ("compact-extremes", Payload([_cf(list(range(len(EXTREME_VALUES))), EXTREME_VALUES)],
                                 [{"i": str(i)} for i in range(len(EXTREME_VALUES))]), DL),
    ("compact-two-copies-of-a-label-set", Payload([_cf([0, 1], [1, 2]), _cf([2, 1], [1, 2], name="d")],
                                                  [*SETS, {"i": "1"}]), DL),
    ("compact-empty", Payload([_cf([], [])], []), DL),
    ("compact-and-verbose", Payload([_cf([1, 0], [1, 2]), *_one(labels={"i": "2"})], SETS), DL),
    ("label-sets-empty-object", Payload(_one(), {}), DL),
]


@pytest.mark.parametrize(("p", "limits"), [pytest.param(p, limits, id=name) for name, p, limits in VALID])
def test_valid_examples_render_like_the_reference(p: Payload, limits: Limits) -> None:
    base: Labels = (("agent", "xa-a"), ("device", "sw"), ("province", "Vĩnh Phúc"))
    assert not isinstance(check_same(p, base, 1_795_550_709_000, limits, Payload(_one(), SETS)), str)


# --- regressions: what the properties found ------------------------------------------------------------


def test_an_int_beyond_float64_among_float_values_is_a_reject_not_an_overflow_error() -> None:
    # Regression (bug in collector/ingest.py _fast_block, found by the properties above; fixed in 9046b29):
    # with every label set of a family known, the whole-list range check sum(map(abs, values)) added a
    # float and an int beyond float64 (10**400, which JSON carries exactly) and raised OverflowError,
    # which escaped Store.ingest and ended the subscriber.
    raw = _two({"labels": {"i": "1"}, "value": 0.5}, {"labels": {"i": "2"}, "value": 10**400})
    valid = _two({"labels": {"i": "1"}, "value": 0.5}, {"labels": {"i": "2"}, "value": 1})
    cache: LabelCache = {}
    render_families(valid, 'agent="a"', 1, DEFAULT_LIMITS, cache)
    with pytest.raises(DecodeError) as info:
        render_families(raw, 'agent="a"', 1, DEFAULT_LIMITS, cache)
    assert info.value.reason == "schema"


@pytest.mark.parametrize("value", ["1e400", "-1" + "0" * 400, "2" * 320],
                         ids=["float-inf", "-10**400", "2e319"])
def test_the_store_rejects_a_huge_int_in_a_known_table_instead_of_raising(value: str) -> None:
    # The same end to end: the first family's samples fill the cache, the second family lists the same
    # label sets (the shortcut) with 0.5 and a JSON integer beyond float64 (or 1e400, a float: inf).
    store = Store(CollectorMetrics(), DEFAULT_LIMITS, clock=lambda: NOW)
    samples = '[{"labels":{"i":"1"},"value":0.5},{"labels":{"i":"2"},"value":%s}]'
    metrics = (f'[{{"name":"a","type":"gauge","samples":{samples % "1"}}},'
               f'{{"name":"b","type":"gauge","samples":{samples % value}}}]')
    doc = json.dumps({"v": 1, "type": "poll", "agent": "xa-a", "boot": "b", "seq": 1, "ts": NOW,
                      "device": "sw", "interval": 60, "up": True, "duration": 0.1, "metrics": None})
    payload = doc.replace('"metrics": null', f'"metrics": {metrics}').encode()
    assert store.ingest(data_topic("xa-a", "sw"), payload) == "rejected:schema"

"""The collector's push and late path: the metric families of a poll that is remote-written (a late,
replayed poll, or every poll in push mode), validated and turned straight from the decoded JSON into
remote-write :class:`~collector.remote_write.Series`. Pure: no I/O.

The reference is :func:`wire.codec.decode_families` followed by :func:`collector.ingest.to_series`: a
dataclass and a sorted label tuple per sample, then a tuple and a ``Series`` per sample built in Python.
Here the label sets of a compact poll are validated once per poll (and remembered from poll to poll),
the values of a family are checked with whole-list operations, and every series of a family is built by
C loops (``map``, ``zip``): one tuple concatenation for its labels, one ``zip`` for its sample.

The rules are exactly those of the reference (reject iff it rejects, always with its reason
``schema``), and the series exactly its series: the same labels in the same order (``__name__``, the
collector's labels, the sample's labels sorted), the same float values and timestamps, in the same
order; tests/unit/test_late_series.py checks both on generated and fuzzed payloads and the golden ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any

from collector.ingest import checked_value
from collector.remote_write import Series
from wire.codec import (
    MAX_INT,
    MIN_INT,
    DecodeError,
    Limits,
    validate_family_head,
    validate_labels,
)
from wire.messages import Labels

Meta = dict[str, tuple[str, str]]  # metric name -> (type, help), as the store records it
# Validated label sets: (name, value) items as sent -> the sorted labels. Only valid sets are kept.
LabelSetCache = dict[tuple[tuple[str, Any], ...], Labels]
MAX_CACHED_SETS = 100_000  # a cache is cleared beyond this (label values that churn)
_CACHES: dict[Limits, LabelSetCache] = {}  # one per limits: what is valid depends on them

_NUMBER_TYPES = frozenset({int, float})
_INT_TYPE = frozenset({int})
_EMPTY: Mapping[str, str] = {}

# Series is a frozen dataclass: its __init__ runs Python code per instance. Its slots' descriptors set
# the same two fields from C, so that a whole family is built by map() without a Python frame per
# sample; the objects are ordinary Series (equal, hashing and printing alike: test_late_series.py).
_new_series = object.__new__
_set_labels = vars(Series)["labels"].__set__  # the slot's member descriptor
_set_samples = vars(Series)["samples"].__set__


def _fail(detail: str) -> DecodeError:
    return DecodeError("schema", detail)


def late_series(raw_metrics: list[Any], base: Labels, ts_ms: int, limits: Limits,
                raw_label_sets: Any = None, cache: LabelSetCache | None = None
                ) -> tuple[list[Series], Meta]:
    """Every sample of the poll's ``metrics`` (verbose or compact families; the compact ones index
    ``raw_label_sets``) as a remote-write series stamped ``ts_ms``, and each family's (type, help).

    ``base`` is the collector's labels of the device (agent, device, site). Raises
    :class:`DecodeError` exactly when ``decode_families`` does, and returns what ``to_series`` of its
    families would. ``cache`` remembers validated label sets (default: one shared per ``limits``).
    """
    if cache is None:
        cache = _CACHES.setdefault(limits, {})
    if len(cache) > MAX_CACHED_SETS:
        cache.clear()
    sets = _label_sets(raw_label_sets or [], cache, limits)
    distinct = len(set(sets)) == len(sets)  # then distinct indexes are distinct label sets
    series: list[Series] = []
    meta: Meta = {}
    for index, raw in enumerate(raw_metrics):
        where = f"metrics[{index}]"
        if not isinstance(raw, dict):
            raise _fail(f"{where} must be an object")
        name, mtype, help_text = validate_family_head(raw, where, limits)
        if name in meta:
            raise _fail("a metric name appears twice in one poll")
        meta[name] = (mtype, help_text)
        if "values" in raw:
            labels, values = _compact(raw, where, sets, distinct)
        else:
            labels, values = _verbose(raw, where, cache, limits)
        if values:
            _extend(series, (("__name__", name), *base), labels, values, ts_ms)
    return series, meta


def _extend(out: list[Series], head: Labels, labels: list[Labels], values: list[float], ts_ms: int) -> None:
    """Append one Series per sample: labels ``head + labels[i]``, sample ``((values[i], ts_ms),)``."""
    made = list(map(_new_series, repeat(Series, len(values))))
    any(map(_set_labels, made, map(head.__add__, labels)))  # __set__ returns None: any() runs them all
    any(map(_set_samples, made, zip(zip(values, repeat(ts_ms)))))  # zip of one iterable: 1-tuples
    out += made


def _label_sets(raw: Any, cache: LabelSetCache, limits: Limits) -> list[Labels]:
    if not isinstance(raw, list):
        raise _fail("label_sets must be a list")
    return [_labels(item, cache, f"label_sets[{i}]", limits) for i, item in enumerate(raw)]


def _labels(raw: Any, cache: LabelSetCache, where: str, limits: Limits) -> Labels:
    """A label set validated as ``validate_labels`` does, from the cache when it was seen valid."""
    try:
        key = tuple(raw.items())
        labels = cache.get(key)
    except (AttributeError, TypeError):  # not an object, or unhashable values: invalid anyway
        return validate_labels(raw, where, limits)
    if labels is None:
        # only valid sets are stored, whose values are strings: no other value compares equal to them
        labels = cache[key] = validate_labels(raw, where, limits)
    return labels


def _floats(values: list[Any], where: str) -> list[float]:
    """The values as floats, each checked as ``number_field`` checks a sample's value."""
    if not values:
        return []
    if set(map(type, values)) <= _NUMBER_TYPES:  # also keeps out bool, a subclass of int
        # every |value| <= the sum <= 2**64 - 1 (so floats are finite, far below MAX_ABS_FLOAT, no NaN)
        try:
            if sum(map(abs, values)) <= MAX_INT and min(values) >= MIN_INT:
                return list(map(float, values))
        except OverflowError:  # float + an int beyond float64 (10**400): invalid, checked below
            pass
    return [_float(value, f"{where}[{j}]") for j, value in enumerate(values)]


def _float(value: Any, at: str) -> float:
    return float(checked_value(value, at))


def _compact(raw: dict[str, Any], where: str, sets: list[Labels], distinct: bool
             ) -> tuple[list[Labels], list[float]]:
    """A compact family (``series`` indexes the label sets, ``values``): its labels and values."""
    if "samples" in raw:
        raise _fail(f"{where}: has both samples and values")
    series, values = raw.get("series"), raw.get("values")
    if not isinstance(series, list) or not isinstance(values, list) or len(series) != len(values):
        raise _fail(f"{where}: series and values must be lists of the same length")
    if not series:
        return [], []
    # types before comparing: [True] == [1] and [1.0] == [1]
    if not set(map(type, series)) <= _INT_TYPE or min(series) < 0 or max(series) >= len(sets):
        raise _fail(f"{where}: series must index label_sets")
    labels = list(map(sets.__getitem__, series))
    if len(set(series) if distinct else set(labels)) != len(labels):
        raise _fail(f"{where}: a sample repeats the labels of another sample")
    return labels, _floats(values, f"{where}.values")


def _verbose(raw: dict[str, Any], where: str, cache: LabelSetCache, limits: Limits
             ) -> tuple[list[Labels], list[float]]:
    """A verbose family (``samples`` objects with ``labels`` and ``value``): its labels and values."""
    raw_samples = raw.get("samples", [])
    if not isinstance(raw_samples, list):
        raise _fail("samples must be a list")
    labels: list[Labels] = []
    values: list[Any] = []
    for j, sample in enumerate(raw_samples):
        at = f"{where}.samples[{j}]"
        if not isinstance(sample, dict):
            raise _fail(f"{at} must be an object")
        labels.append(_labels(sample.get("labels", _EMPTY), cache, f"{at}.labels", limits))
        values.append(sample.get("value"))
    if len(set(labels)) != len(labels):  # two samples of one series
        raise _fail(f"{where}: a sample repeats the labels of another sample")
    return labels, _floats(values, f"{where}.samples")

"""The push and late path (collector/late_series.py) against the reference decoder and ``to_series``.

``late_series`` must take exactly the decisions of :func:`wire.codec.decode_families` (reject iff the
reference rejects, with the same reason) and, when it accepts, return exactly the series of
:func:`collector.ingest.to_series` over the reference's families (labels in the same order, the same
float values and timestamps, in the same order; ordinary ``Series`` objects) and each family's (type,
help) as the store records them. Its cache of validated label sets (kept from poll to poll) is an
optimisation only: every payload is checked with a cold cache, the cache its own first run left behind,
and a cache warmed by its valid original (so that every label set of a broken payload is known).

The payload generators, mutations and the explicit valid and invalid examples are those of the live
path's differential test (tests/unit/test_collector_ingest.py); the golden payloads of wire v1 too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import late_series as module
from collector.ingest import to_series
from collector.late_series import LabelSetCache, late_series
from collector.remote_write import Series, encode_write_request
from tests.unit.test_collector_ingest import (
    INVALID,
    PROPERTY,
    VALID,
    Payload,
    bases,
    broken_payloads,
    limits_strategy,
    stamps,
    valid_payloads,
)
from wire.codec import DEFAULT_LIMITS, DecodeError, Limits, decode_families, load_batch
from wire.messages import Labels

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "wire-v1"
BASE: Labels = (("agent", "xa-a"), ("device", "sw"), ("province", "Vĩnh Phúc"))
TS_MS = 1_795_550_709_000

Outcome = str | tuple[list[tuple[Labels, tuple[tuple[float, int], ...]]], dict[str, tuple[str, str]]]


def reference(p: Payload, base: Labels, ts_ms: int, limits: Limits) -> tuple[str | None, list[Series],
                                                                                  dict[str, tuple[str, str]]]:
    try:
        families = decode_families(p.metrics, limits, p.label_sets)
    except DecodeError as exc:
        return exc.reason, [], {}
    return None, to_series(families, base, ts_ms), {f.name: (f.type, f.help) for f in families}


def fast(p: Payload, base: Labels, ts_ms: int, limits: Limits, cache: LabelSetCache
         ) -> tuple[str | None, list[Series], dict[str, tuple[str, str]]]:
    # Anything but DecodeError escaping fails the test: Store.ingest only turns DecodeError into a reject.
    try:
        series, meta = late_series(p.metrics, base, ts_ms, limits, p.label_sets, cache)
    except DecodeError as exc:
        return exc.reason, [], {}
    return None, series, meta


def same(got: tuple[str | None, list[Series], dict[str, tuple[str, str]]],
         want: tuple[str | None, list[Series], dict[str, tuple[str, str]]], how: str) -> None:
    assert got[0] == want[0], how
    # repr: NaN-free by construction, but repr also shows -0.0 against 0.0 and int against float
    assert [repr(s) for s in got[1]] == [repr(s) for s in want[1]], how
    assert got[1] == want[1], how
    assert all(type(s) is Series for s in got[1]), how
    assert list(got[2].items()) == list(want[2].items()), how


def check_same(p: Payload, base: Labels, ts_ms: int, limits: Limits, warm: Payload) -> str | None:
    """The verdict and series equal the reference's with a cold cache, the cache its first run left,
    and a cache warmed by the valid payload ``warm``; the input is left as it was."""
    snapshot = repr(p)
    want = reference(p, base, ts_ms, limits)
    cache: LabelSetCache = {}
    same(fast(p, base, ts_ms, limits, cache), want, "cold cache")
    same(fast(p, base, ts_ms, limits, cache), want, "own warm cache")
    for key, labels in cache.items():  # only valid label sets are remembered
        assert all(type(value) is str for _, value in key)
        assert labels == tuple(sorted(key))
    warmed: LabelSetCache = {}
    assert fast(warm, base, ts_ms - 1, limits, warmed)[0] is None
    same(fast(p, base, ts_ms, limits, warmed), want, "cache warmed by another payload")
    assert repr(p) == snapshot, "late_series changed its input"
    return want[0]


@settings(PROPERTY)
@given(p=valid_payloads(), base=bases(), ts_ms=stamps, limits=limits_strategy)
def test_valid_payloads_give_the_reference_series(p: Payload, base: Labels, ts_ms: int,
                                                  limits: Limits) -> None:
    assert check_same(p, base, ts_ms, limits, p) is None


@settings(PROPERTY)
@given(data=st.data(), base=bases(), ts_ms=stamps, limits=limits_strategy)
def test_broken_payloads_get_the_reference_verdict(data: st.DataObject, base: Labels, ts_ms: int,
                                                   limits: Limits) -> None:
    original, broken = data.draw(broken_payloads(limits))
    check_same(broken, base, ts_ms, limits, original)


@pytest.mark.parametrize(("p", "limits"), [pytest.param(p, limits, id=name) for name, p, limits in INVALID])
def test_each_invalid_class_is_a_schema_reject(p: Payload, limits: Limits) -> None:
    warm = Payload([{"name": "m", "type": "counter", "samples": [
        {"labels": {"if_index": "1"}, "value": 1}, {"labels": {"a": "1", "b": "2"}, "value": 1},
        {"labels": {"i": "1"}, "value": 0.5}, {"labels": {"i": "2"}, "value": 1}]}],
        [{"i": "1"}, {"i": "2"}, {"if_index": "1"}])
    assert check_same(p, BASE, TS_MS, limits, warm) == "schema"


@pytest.mark.parametrize(("p", "limits"), [pytest.param(p, limits, id=name) for name, p, limits in VALID])
def test_valid_examples_give_the_reference_series(p: Payload, limits: Limits) -> None:
    assert check_same(p, BASE, TS_MS, limits, Payload([], [{"i": "1"}, {"i": "2"}])) is None


GOLDEN_POLLS = sorted(path.name for path in GOLDEN.glob("*.json")
                      if json.loads(path.read_bytes()).get("type") == "poll")


@pytest.mark.parametrize("name", GOLDEN_POLLS)
def test_golden_polls_give_the_reference_series(name: str) -> None:
    _, raw_metrics, raw_label_sets = load_batch((GOLDEN / name).read_bytes())
    p = Payload(raw_metrics, raw_label_sets)
    assert check_same(p, BASE, TS_MS, DEFAULT_LIMITS, p) is None
    series = late_series(raw_metrics, BASE, TS_MS, DEFAULT_LIMITS, raw_label_sets)[0]
    assert series, name
    # and what remote write makes of them is byte for byte the same
    assert encode_write_request(series) == encode_write_request(reference(p, BASE, TS_MS, DEFAULT_LIMITS)[1])


def test_the_series_are_ordinary_series() -> None:
    # built through the slots' descriptors, they must behave as Series(...) in every way the queue,
    # the encoder and the tests use: equality, hashing, repr, immutability
    payload = Payload([{"name": "m", "type": "gauge", "series": [1, 0], "values": [2**64 - 1, -0.0]}],
                      [{"b": "2", "a": "1"}, {"i": "x"}])
    made = late_series(payload.metrics, BASE, TS_MS, DEFAULT_LIMITS, payload.label_sets, {})[0]
    want = [Series((("__name__", "m"), *BASE, ("i", "x")), ((float(2**64 - 1), TS_MS),)),
            Series((("__name__", "m"), *BASE, ("a", "1"), ("b", "2")), ((-0.0, TS_MS),))]
    assert made == want
    assert [hash(s) for s in made] == [hash(s) for s in want]
    assert [repr(s) for s in made] == [repr(s) for s in want]
    with pytest.raises(AttributeError):
        made[0].labels = ()  # type: ignore[misc]


def test_the_shared_cache_is_per_limits_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_CACHES", {})
    monkeypatch.setattr(module, "MAX_CACHED_SETS", 3)
    small = Limits(max_label_length=4)
    sets: list[Any] = [{"i": str(i)} for i in range(5)]
    metrics = [{"name": "m", "type": "gauge", "series": [0, 4], "values": [1, 2]}]
    assert len(late_series(metrics, BASE, TS_MS, DEFAULT_LIMITS, sets)[0]) == 2
    assert len(module._CACHES[DEFAULT_LIMITS]) == 5
    two = [{"name": "m", "type": "gauge", "series": [0, 1], "values": [1, 2]}]
    late_series(two, BASE, TS_MS, DEFAULT_LIMITS, sets[:1] + sets[4:])  # cleared first, then 2 sets
    assert len(module._CACHES[DEFAULT_LIMITS]) == 2
    # valid under the default limits, too long under small ones: a cache per limits
    with pytest.raises(DecodeError):
        late_series(metrics, BASE, TS_MS, small, [{"i": "12345"}, *sets[1:]])
    assert len(late_series(metrics, BASE, TS_MS, DEFAULT_LIMITS, [{"i": "12345"}, *sets[1:]])[0]) == 2

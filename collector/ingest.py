"""The collector's hot path: the metric families of a live poll, validated and rendered straight from
the decoded JSON into exposition text, one block per metric name. Pure: no I/O.

:func:`wire.codec.decode_batch` builds a dataclass per sample and a sorted label tuple per sample; the
reference renderer then formats every label again. Here a poll's label sets are validated and formatted
once per device and reused: an access switch repeats the same 48 label sets in its 20 interface
families, and from poll to poll. A sample then costs one dict lookup, a type check of its value and one
f-string.

The rules are exactly those of :func:`wire.codec.decode_batch` (same :class:`~wire.codec.DecodeError`
reasons) and the text exactly that of :func:`hatang.textformat.render_lines`;
tests/unit/test_collector_ingest.py checks both against the reference on generated and fuzzed payloads.

Polls that are not served but remote-written (late ones, push mode) become remote-write series in
collector/late_series.py, with the same rules; :func:`to_series` over the reference decoder's families
is its reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector.remote_write import Series
from hatang.textformat import escape
from wire.codec import (
    MAX_ABS_FLOAT,
    MAX_INT,
    MIN_INT,
    DecodeError,
    Limits,
    validate_family_head,
    validate_labels,
)
from wire.messages import Family, Labels

# Formatted label sets of one device: (name, value) items as sent -> 'a="1",b="2"' (sorted, escaped).
LabelCache = dict[tuple[tuple[str, Any], ...], str]
MAX_CACHE_FACTOR = 4  # a device's cache is dropped when it grows past 4x its series (label churn)


class RenderedFamilies:
    __slots__ = ("blocks", "meta", "samples")

    def __init__(self) -> None:
        self.blocks: dict[str, str] = {}  # metric name -> its sample lines, each ending in "\n"
        self.meta: dict[str, tuple[str, str]] = {}  # metric name -> (type, help)
        self.samples = 0


def _fail(detail: str) -> DecodeError:
    return DecodeError("schema", detail)


def _fragment(raw_labels: Any, where: str, limits: Limits) -> str:
    labels = validate_labels(raw_labels, where, limits)
    return ",".join(f'{name}="{escape(value)}"' for name, value in labels)


def render_families(raw_metrics: list[Any], base: str, ts_ms: int, limits: Limits,
                    cache: LabelCache, raw_label_sets: list[Any] | None = None) -> RenderedFamilies:
    """Validate and render the ``metrics`` list of a poll payload (verbose or compact families; the
    compact ones index ``raw_label_sets``).

    ``base`` is the formatted collector labels (``agent="..",device="..",province=".."``), never empty;
    ``cache`` the device's label cache (updated here). Raises :class:`DecodeError` like decode_batch.
    """
    out = RenderedFamilies()
    blocks, meta = out.blocks, out.meta
    stamp = f" {ts_ms}\n"
    table = _label_table(raw_label_sets or [], cache, limits)
    previous_series: tuple[list[Any], list[str]] = ([], [])
    # the label dicts of the previous family and their fragments: families of one table (20 interface
    # metrics) list the same label sets in the same order, so comparing the dicts saves the lookups
    previous: tuple[list[Any], list[str]] = ([], [])
    for index, raw in enumerate(raw_metrics):
        where = f"metrics[{index}]"
        if not isinstance(raw, dict):
            raise _fail(f"{where} must be an object")
        name, mtype, help_text = validate_family_head(raw, where, limits)
        if name in meta:
            raise _fail("a metric name appears twice in one poll")
        if "values" in raw:
            block, count, previous_series = _compact_block(raw, name, base, stamp, table, previous_series,
                                                           where)
            meta[name] = (mtype, help_text)
            if block:
                blocks[name] = block
            out.samples += count
            continue
        raw_samples = raw.get("samples", [])
        if not isinstance(raw_samples, list):
            raise _fail("samples must be a list")
        fast = _fast_block(raw_samples, name, base, stamp, cache, previous)
        if fast is None:  # a label set not seen yet, or something invalid: sample by sample
            block = _careful_block(raw_samples, name, base, stamp, cache, where, limits)
        else:
            block, previous = fast
        meta[name] = (mtype, help_text)
        if block:
            blocks[name] = block
        out.samples += len(raw_samples)
    return out


_NUMBER_TYPES = frozenset({int, float})
_INT_TYPE = frozenset({int})


def _join(name: str, base: str, stamp: str, frags: list[str], texts: list[str]) -> str:
    """The family's exposition lines (``frags``: each sample's own labels, formatted; may be empty)."""
    head = f"{name}{{{base},"
    plain = f"{name}{{{base}}} "
    return "".join([f"{head}{frag}}} {text}{stamp}" if frag else f"{plain}{text}{stamp}"
                    for frag, text in zip(frags, texts, strict=True)])


def _plain_texts(values: list[Any]) -> list[str] | None:
    """The values as exposition text when whole-list checks (C loops) prove them all valid, else None."""
    if not set(map(type, values)) <= _NUMBER_TYPES:  # also keeps out bool, a subclass of int
        return None
    # every |value| <= the sum <= 2**64 - 1 (so floats are finite, far below MAX_ABS_FLOAT, and no NaN)
    try:
        if not (sum(map(abs, values)) <= MAX_INT and min(values, default=0) >= MIN_INT):
            return None
    except OverflowError:  # float + an int beyond float64 (10**400): invalid, value_text says why
        return None
    return list(map(str, values))  # str() of a float is its repr(), as render_lines writes it


def checked_value(value: Any, at: str) -> int | float:
    """One sample value with decode_batch's verdict (an int in the 64-bit range or a finite float);
    raises DecodeError. Shared by the live path here and the late/push path (collector/late_series.py)."""
    kind = type(value)
    if kind is int:
        if not MIN_INT <= value <= MAX_INT:
            raise _fail(f"{at}: value is outside the 64-bit range")
        return int(value)
    if kind is float:
        if not abs(value) <= MAX_ABS_FLOAT:  # also false for NaN
            raise _fail(f"{at}: value must be finite and at most {MAX_ABS_FLOAT:g}")
        return float(value)
    raise _fail(f"{at}: value must be a number")


def _value_text(value: Any, at: str) -> str:
    """One value as exposition text (str() of a float is its repr()), with decode_batch's verdict."""
    return str(checked_value(value, at))


def _cached_fragment(raw_labels: Any, cache: LabelCache, where: str, limits: Limits) -> str:
    """The formatted label set, from the device's cache or validated and formatted now."""
    try:
        frag = cache.get(tuple(raw_labels.items()))
    except (AttributeError, TypeError):  # not an object, or unhashable values: invalid anyway
        frag = None
    if frag is None:
        frag = _fragment(raw_labels, where, limits)
        cache[tuple(raw_labels.items())] = frag
    return frag


def _fast_block(raw_samples: list[Any], name: str, base: str, stamp: str, cache: LabelCache,
                previous: tuple[list[Any], list[str]]) -> tuple[str, tuple[list[Any], list[str]]] | None:
    """The family's lines when every label set is cached and every value plainly valid, else None."""
    try:
        labels = [s["labels"] for s in raw_samples]
        if labels == previous[0]:
            frags = previous[1]
        else:
            frags = [cache[tuple(d.items())] for d in labels]
            if len(set(frags)) != len(frags):
                return None
        values = [s["value"] for s in raw_samples]
    except (KeyError, TypeError, AttributeError):
        return None
    if not values:
        return "", previous
    texts = _plain_texts(values)
    if texts is None:
        return None
    return _join(name, base, stamp, frags, texts), (labels, frags)


def _label_table(raw_label_sets: Any, cache: LabelCache, limits: Limits) -> list[str]:
    """The formatted fragment of every label set of a compact poll (validated on a cache miss)."""
    if not isinstance(raw_label_sets, list):
        raise _fail("label_sets must be a list")
    return [_cached_fragment(raw, cache, f"label_sets[{i}]", limits) for i, raw in enumerate(raw_label_sets)]


def _compact_block(raw: dict[str, Any], name: str, base: str, stamp: str, table: list[str],
                   previous: tuple[list[Any], list[str]], where: str
                   ) -> tuple[str, int, tuple[list[Any], list[str]]]:
    """A compact family (``series`` indexes into the label sets, ``values``): its lines, its size and
    the (series, fragments) pair for the next family."""
    if "samples" in raw:
        raise _fail(f"{where}: has both samples and values")
    series, values = raw.get("series"), raw.get("values")
    if type(series) is not list or type(values) is not list or len(series) != len(values):
        raise _fail(f"{where}: series and values must be lists of the same length")
    if not values:
        return "", 0, previous
    if not set(map(type, series)) <= _INT_TYPE:  # before comparing: [True] == [1] and [1.0] == [1]
        raise _fail(f"{where}: series must index label_sets")
    if series == previous[0]:  # the same rows as the family before (a table's columns)
        frags = previous[1]
    else:
        if min(series) < 0 or max(series) >= len(table):
            raise _fail(f"{where}: series must index label_sets")
        frags = [table[i] for i in series]
        if len(set(frags)) != len(frags):
            raise _fail(f"{where}: a sample repeats the labels of another sample")
    texts = _plain_texts(values)
    if texts is None:
        texts = [_value_text(value, f"{where}.values[{j}]") for j, value in enumerate(values)]
    return _join(name, base, stamp, frags, texts), len(values), (series, frags)


def _careful_block(raw_samples: list[Any], name: str, base: str, stamp: str, cache: LabelCache,
                   where: str, limits: Limits) -> str:
    """Sample by sample, with decode_batch's exact errors; fills the label cache."""
    frags: list[str] = []
    texts: list[str] = []
    for j, sample in enumerate(raw_samples):
        at = f"{where}.samples[{j}]"
        if type(sample) is not dict:
            raise _fail(f"{at} must be an object")
        frags.append(_cached_fragment(sample.get("labels", _EMPTY), cache, f"{at}.labels", limits))
        texts.append(_value_text(sample.get("value"), at))
    if len(set(frags)) != len(frags):  # two samples of one series would make the exposition invalid
        raise _fail(f"{where}: a sample repeats the labels of another sample")
    return _join(name, base, stamp, frags, texts)


_EMPTY: Mapping[str, str] = {}


def trim_cache(cache: LabelCache, series: int) -> None:
    """Bound a device's label cache: clear it when label values churn (e.g. a changing ifAlias)."""
    if len(cache) > MAX_CACHE_FACTOR * max(series, 64):
        cache.clear()


# The outcome of each device poll as a sample at the poll's own time, added by the collector to the
# poll's families: served with a live poll, remote-written with a late one, so that availability
# (hatang/availability/definitions.py) counts the polls an office buffered during an outage.
POLL_SUCCESS = "hatang_device_poll_success"
POLL_SUCCESS_META = ("gauge", "1 if the device answered the poll, 0 if not; one sample per poll at the "
                              "poll's time, written late with polls buffered during an outage.")


def poll_success_line(base: str, up: bool, ts_ms: int) -> bytes:
    """The exposition line of :data:`POLL_SUCCESS` for one poll (``base``: the formatted labels)."""
    return f"{POLL_SUCCESS}{{{base}}} {1 if up else 0} {ts_ms}\n".encode()


def poll_success_series(base: Labels, up: bool, ts_ms: int) -> Series:
    """:data:`POLL_SUCCESS` of one poll as a remote-write series."""
    return Series((("__name__", POLL_SUCCESS), *base), ((1.0 if up else 0.0, ts_ms),))


def to_series(families: Sequence[Family], base: Labels, ts_ms: int) -> list[Series]:
    """Every sample of a poll as a remote-write series stamped with the poll time (the reference of
    collector/late_series.py, which makes the same series straight from the decoded JSON)."""
    return [
        Series((("__name__", family.name), *base, *sample.labels), ((float(sample.value), ts_ms),))
        for family in families
        for sample in family.samples
    ]

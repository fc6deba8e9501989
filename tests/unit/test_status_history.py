"""The status pages' traffic history (collector/status_history.py): counters read from the exposition
blocks, rates in bit/s from consecutive polls (none across a reset, a wrap, a long gap or a jump above
the interface's speed), a bounded number of points, and devices and interfaces that go away."""

from __future__ import annotations

import math

import pytest

from collector import status_history
from collector.selfmetrics import CollectorMetrics
from collector.status_history import IN_BYTES, OUT_BYTES, TrafficHistory, counter_rates, parse_counters
from collector.store import DeviceState, Store
from hatang.textformat import format_labels
from wire.codec import Limits, encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import data_topic

T0 = 1_795_550_000.0
NAN = math.nan


def _iface(index: int, alias: str = "Cổng chuyên dùng") -> tuple[tuple[str, str], ...]:
    return (("if_alias", alias), ("if_index", str(index)), ("if_name", f"Gi0/{index}"))


def _block(name: str, values: dict[int, float], ts: float, alias: str = "Cổng chuyên dùng") -> bytes:
    base = (("agent", "xa-dai-dinh"), ("device", "sw"), ("province", "Phú Thọ"))
    return "".join(f"{name}{format_labels((*base, *_iface(i, alias)))} {v} {round(ts * 1000)}\n"
                   for i, v in values.items()).encode()


def _state(ts: float, ins: dict[int, float] | None, outs: dict[int, float] | None = None, *,
           device: str = "sw", kind: str = "device", interval: float = 60.0) -> DeviceState:
    blocks: dict[str, bytes] = {}
    if ins is not None:
        blocks[IN_BYTES] = _block(IN_BYTES, ins, ts)
        blocks[OUT_BYTES] = _block(OUT_BYTES, outs if outs is not None else ins, ts)
    return DeviceState("xa-dai-dinh", device, (), interval, ts, ts, ins is not None, 0.1, 0, kind,
                       blocks=blocks)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------------------------------
# reading counters


def test_counters_are_read_per_if_index() -> None:
    block = _block(IN_BYTES, {1: 100, 2: 2**64 - 1, 10: 0}, T0)
    assert parse_counters(block) == {b"1": 100.0, b"2": float(2**64 - 1), b"10": 0.0}
    assert parse_counters(None) == {} and parse_counters(b"") == {}


def test_a_hostile_label_value_cannot_fake_the_index_or_the_value() -> None:
    """ifAlias is free text from the device: quotes, braces, an 'if_index=' and numbers inside it."""
    alias = 'x",if_index="99"} 12345 1\n} 7 7 if_index="98"'
    block = _block(IN_BYTES, {3: 42}, T0, alias=alias)
    assert parse_counters(block) == {b"3": 42.0}


def test_a_value_ending_in_if_index_is_not_taken_for_the_label() -> None:
    """The closing quote of a value ending in ',if_index=' follows it: never a digit, so no match."""
    block = _block(IN_BYTES, {4: 42}, T0, alias=",if_index=")
    assert b',if_index="' in block
    assert parse_counters(block) == {b"4": 42.0}


def test_values_that_are_not_counters_are_skipped() -> None:
    lines = (b'm{agent="a",if_index="1"} NaN 1\nm{agent="a",if_index="2"} +Inf 1\n'
             b'm{agent="a",if_index="3"} -5 1\nm{agent="a",if_index="4"} 17\nm{agent="a"} 9 1\n')
    assert parse_counters(lines) == {b"4": 17.0}


def test_values_that_are_not_counters_give_no_rate() -> None:
    history = TrafficHistory(points=5)
    for n, value in enumerate(("NaN", "+Inf", "0", "1250")):
        block = f'{IN_BYTES}{{agent="a",if_index="1"}} {value} 1\n'.encode()
        history.observe(DeviceState("xa-dai-dinh", "sw", (), 10.0, T0 + 10 * n, T0, True, 0.1, 0,
                                    blocks={IN_BYTES: block}))
    assert history.traffic("xa-dai-dinh", "sw")["1"].in_bps == [None, None, 1000.0]


# --------------------------------------------------------------------------------------------------
# rates


def test_rate_is_bits_per_second_between_consecutive_polls() -> None:
    assert counter_rates([0, 10, 20], [0, 1250, 3750]) == [1000.0, 2000.0]


def test_a_counter_that_goes_back_gives_no_rate() -> None:
    """A device restart (counter reset) or a 32-bit wrap: None, never a negative or a huge figure."""
    wrap = 2**32 - 1000
    rates = counter_rates([0, 10, 20, 30], [wrap - 10_000, wrap, 500, 1750])
    assert rates == [8000.0, None, 1000.0]


def test_missing_values_gaps_and_jumps_give_no_rate() -> None:
    assert counter_rates([0, 10, 20, 30], [0, NAN, 1250, 2500]) == [None, None, 1000.0]
    assert counter_rates([0, 10, 400], [0, 1250, 2500], max_gap=35) == [1000.0, None]
    assert counter_rates([0, 10, 20], [0, 1250, 1250 + 2**40], ceiling=1e9) == [1000.0, None]
    assert counter_rates([0, 0, 10], [0, 5, 1255]) == [None, 1000.0]  # same time twice
    assert counter_rates([5], [1]) == [] and counter_rates([], []) == []


# --------------------------------------------------------------------------------------------------
# the history


def test_history_gives_current_rates_and_a_sparkline_per_interface() -> None:
    history = TrafficHistory(points=5)
    for n in range(4):
        history.observe(_state(T0 + 60 * n, {1: 7500 * n, 2: 0}, {1: 750 * n, 2: 0}))
    traffic = history.traffic("xa-dai-dinh", "sw")
    assert set(traffic) == {"1", "2"}
    assert traffic["1"].in_bps == [1000.0] * 3 and traffic["1"].out_bps == [100.0] * 3
    assert traffic["1"].current_in == 1000.0 and traffic["2"].current_out == 0.0
    assert history.newest("xa-dai-dinh", "sw") == T0 + 180


def test_rate_above_the_interface_speed_is_dropped() -> None:
    history = TrafficHistory(points=5)
    history.observe(_state(T0, {1: 0}))
    history.observe(_state(T0 + 10, {1: 125_000_000}))  # 100 Mbit/s
    assert history.traffic("xa-dai-dinh", "sw", {"1": 1e9})["1"].current_in == 1e8
    assert history.traffic("xa-dai-dinh", "sw", {"1": 1e7})["1"].current_in is None  # a 10 Mbit/s port


def test_counter_reset_in_the_history_gives_no_rate_then_rates_again() -> None:
    history = TrafficHistory(points=10)
    for n, value in enumerate((10_000, 20_000, 50, 10_050)):
        history.observe(_state(T0 + 10 * n, {1: value}))
    assert history.traffic("xa-dai-dinh", "sw")["1"].in_bps == [8000.0, None, 8000.0]


def test_size_is_bounded_by_points() -> None:
    history = TrafficHistory(points=30)
    for n in range(200):
        history.observe(_state(T0 + 60 * n, {i: 1000 * n * i for i in range(1, 49)}))
    polls = history._tracks[("xa-dai-dinh", "sw")].polls
    assert len(polls) == 30 and history.interfaces() == 48
    assert all(len(p.in_values) == len(p.out_values) == 48 for p in polls)
    assert len({id(p.in_keys) for p in polls} | {id(p.out_keys) for p in polls}) == 1  # one shared key tuple
    assert polls[0].ts == T0 + 60 * 170 and polls[-1].ts == T0 + 60 * 199
    assert len(history.traffic("xa-dai-dinh", "sw")["1"].in_bps) == 29


def test_interface_count_per_device_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_history, "MAX_INTERFACES", 10)
    history = TrafficHistory(points=3)
    history.observe(_state(T0, {i: 0 for i in range(1, 101)}))
    assert history.interfaces() == 10


def test_an_interface_that_goes_away_is_dropped_once_no_kept_poll_has_it() -> None:
    history = TrafficHistory(points=3)
    history.observe(_state(T0, {1: 0, 2: 0}))
    history.observe(_state(T0 + 10, {1: 1250}))
    assert set(history.traffic("xa-dai-dinh", "sw")) == {"1", "2"}
    assert history.traffic("xa-dai-dinh", "sw")["2"].in_bps == [None]
    history.observe(_state(T0 + 20, {1: 2500}))
    history.observe(_state(T0 + 30, {1: 3750}))  # the poll that had port 2 is no longer kept
    assert set(history.traffic("xa-dai-dinh", "sw")) == {"1"}


def test_an_interface_that_appears_is_aligned_with_the_kept_polls() -> None:
    history = TrafficHistory(points=4)
    history.observe(_state(T0, {1: 0}))
    history.observe(_state(T0 + 10, {1: 1250}))
    history.observe(_state(T0 + 20, {1: 2500, 7: 100}))
    history.observe(_state(T0 + 30, {1: 3750, 7: 1350}))
    traffic = history.traffic("xa-dai-dinh", "sw")
    assert traffic["7"].in_bps == [None, None, 1000.0]
    assert traffic["1"].in_bps == [1000.0, 1000.0, 1000.0]


def test_down_polls_probes_self_metrics_and_old_polls_add_nothing() -> None:
    history = TrafficHistory(points=5)
    history.observe(_state(T0, {1: 0}))
    history.observe(_state(T0 + 10, None))  # the device did not answer: no counters
    history.observe(_state(T0 - 5, {1: 99}))  # older than what is kept
    history.observe(_state(T0 + 10, {1: 1}, device="probe", kind="probe"))
    history.observe(_state(T0 + 10, {1: 1}, device="@self"))
    assert len(history) == 1 and history.newest("xa-dai-dinh", "sw") == T0


def test_devices_the_store_no_longer_has_are_forgotten() -> None:
    alive = {("xa-dai-dinh", "sw"), ("xa-dai-dinh", "sw2")}
    clock = Clock()
    history = TrafficHistory(points=5, alive=lambda: alive, clock=clock)
    history.observe(_state(T0, {1: 0}))
    history.observe(_state(T0, {1: 0}, device="sw2"))
    alive.discard(("xa-dai-dinh", "sw2"))
    clock.now = status_history.PRUNE_EVERY + 1  # pruning happens on an observation after PRUNE_EVERY
    history.observe(_state(T0 + 60, {1: 10}))
    assert len(history) == 1 and history.newest("xa-dai-dinh", "sw2") is None


def test_devices_without_counters_for_the_whole_window_are_forgotten() -> None:
    clock = Clock()
    history = TrafficHistory(points=5, clock=clock)
    history.observe(_state(T0, {1: 0}, interval=10.0))
    clock.now = 49.0
    history.prune()
    assert len(history) == 1
    clock.now = 51.0  # 5 points x 10 s without counters
    history.prune()
    assert len(history) == 0


def test_store_feeds_the_history_with_each_live_poll() -> None:
    """Wired as the collector does it: Store.on_live_poll -> TrafficHistory.observe."""
    now = [T0]
    store = Store(CollectorMetrics(), Limits(), clock=lambda: now[0])
    history = TrafficHistory(alive=lambda: store.devices)
    store.on_live_poll = history.observe
    for n in range(3):
        now[0] = T0 + 60 * n + 1
        batch = PollBatch("xa-dai-dinh", "b" * 32, n + 1, T0 + 60 * n, "sw", 60.0, True, 0.1, families=(
            Family(IN_BYTES, "counter", "in", (Sample(_iface(1), 75_000 * n),)),
            Family(OUT_BYTES, "counter", "out", (Sample(_iface(1), 7_500 * n),)),
            Family("hatang_interface_speed_bytes", "gauge", "speed", (Sample(_iface(1), 125_000_000),)),
        ))
        assert store.ingest(data_topic("xa-dai-dinh", "sw"), encode_batch(batch)) == "accepted"
    traffic = history.traffic("xa-dai-dinh", "sw")["1"]
    assert traffic.in_bps == [10_000.0, 10_000.0] and traffic.current_out == 1000.0

"""Benchmark: the collector's status pages (issue #18) beside /metrics of the same store, and the memory
of their traffic history.

A province of offices, each with four 48-port access switches (benchmarks/_workload.py batches, with
1 Gbit/s ports and byte counters growing at a few Mbit/s), is ingested through the real path
(``Store.ingest``) with the traffic history attached as the collector attaches it
(``Store.on_live_poll``), ``HISTORY_POINTS`` polls per switch so every history is full. Then, each the
median of several runs:

- the office page (``status_model.office`` + ``status_pages.office_page``: 192 interface rows with
  rates and sparklines), what ``GET /office/<agent>`` does;
- its JSON (``GET /api/office/<agent>``);
- the province page over every office (``GET /``);
- the reference: ``exposition.render_bytes`` of the same store, what ``GET /metrics`` does.

The goal is "well under 100 ms" for the office page. Memory: the history's own objects (arrays,
dicts, keys) summed with ``sys.getsizeof``, per interface kept.

    python -m benchmarks.status_page [--offices 100] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

from benchmarks._workload import PORTS, port_labels, samples_per_batch, switch_batch
from benchmarks.common import Result
from collector import exposition, status_model, status_pages
from collector.selfmetrics import CollectorMetrics
from collector.status_history import HISTORY_POINTS, IN_BYTES, OUT_BYTES, TrafficHistory
from collector.store import Store
from wire.codec import Limits, encode_batch
from wire.messages import Family, PollBatch, Sample

BENCH = "7. Status pages"
SWITCHES = 4
INTERVAL = 60.0


def _poll(agent: str, device: str, seq: int, ts: float, poll: int) -> PollBatch:
    """A 48-port switch poll with 1 Gbit/s ports and byte counters growing 1-9 Mbit/s per port."""
    batch = switch_batch(agent, device, seq, ts, poll)

    def counter(name: str, rate: int) -> Family:
        return Family(name, "counter", name, tuple(
            Sample(port_labels(p), 10**9 * p + rate * p * int(INTERVAL) * poll // 8)
            for p in range(1, PORTS + 1)))

    speed = "hatang_interface_speed_bytes"
    replaced = {IN_BYTES: counter(IN_BYTES, 1_000_000), OUT_BYTES: counter(OUT_BYTES, 250_000),
                speed: Family(speed, "gauge", "speed", tuple(
                    Sample(port_labels(p), 125_000_000.0) for p in range(1, PORTS + 1)))}
    families = tuple(replaced.get(f.name, f) for f in batch.families)
    return dataclasses.replace(batch, families=families, interval=INTERVAL)


def filled_store(offices: int) -> tuple[Store, TrafficHistory, float]:
    start = time.time() - HISTORY_POINTS * INTERVAL
    clock = [start]
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                  max_series_per_agent=10**9, clock=lambda: clock[0])
    history = TrafficHistory(alive=lambda: store.devices)
    store.on_live_poll = history.observe
    for poll in range(HISTORY_POINTS):
        clock[0] = start + poll * INTERVAL + 1
        for o in range(offices):
            agent = f"xa-{o:04d}"
            for d in range(SWITCHES):
                device = f"sw-{d:02d}"
                batch = _poll(agent, device, poll * SWITCHES + d + 1, start + poll * INTERVAL, poll)
                topic = f"hatang/v1/agents/{agent}/data/{device}"
                assert store.ingest(topic, encode_batch(batch)) == "accepted"
    for state in store.agents.values():
        state.online = True
    return store, history, clock[0]


def history_bytes(history: TrafficHistory) -> int:
    """Bytes of the history's own objects: its dict and keys, per device its track and kept polls (their
    counter arrays and if_index tuples, each shared tuple counted once)."""
    tracks = history._tracks
    total = sys.getsizeof(tracks)
    seen: set[int] = set()
    for key, track in tracks.items():
        total += sys.getsizeof(key) + sys.getsizeof(track) + sys.getsizeof(track.polls)
        for poll in track.polls:
            total += sys.getsizeof(poll) + sys.getsizeof(poll.in_values) + sys.getsizeof(poll.out_values)
            for keys in (poll.in_keys, poll.out_keys):
                if id(keys) not in seen:
                    seen.add(id(keys))
                    total += sys.getsizeof(keys) + sum(sys.getsizeof(k) for k in keys)
    return total


def store_memory(offices: int = 2) -> tuple[float, float]:
    """(bytes per /metrics series the store holds, bytes per interface of the history), from the memory
    allocated while filling a small store (tracemalloc; the history's share by :func:`history_bytes`)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store, history, _ = filled_store(offices)
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    series = sum(state.series for state in store.devices.values())
    kept = history_bytes(history)
    return (total - kept) / series, kept / history.interfaces()


def ingest_cost(devices: int = 50, polls: int = 10, rounds: int = 3) -> tuple[float, float]:
    """(seconds per poll of ``Store.ingest`` with the history attached, without it): best of ``rounds``."""
    t0 = time.time() - polls * INTERVAL
    messages = [(f"hatang/v1/agents/xa-{d:04d}/data/sw", encode_batch(_poll(f"xa-{d:04d}", "sw", poll + 1,
                                                                             t0 + poll * INTERVAL, poll)))
                for poll in range(polls) for d in range(devices)]

    def once(with_history: bool) -> float:
        clock = [t0]
        store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                      clock=lambda: clock[0])
        if with_history:
            store.on_live_poll = TrafficHistory(alive=lambda: store.devices).observe
        gc.collect()
        started = time.perf_counter()
        for i, (topic, payload) in enumerate(messages):
            clock[0] = t0 + (i // devices) * INTERVAL + 1
            store.ingest(topic, payload)
        return (time.perf_counter() - started) / len(messages)

    return min(once(True) for _ in range(rounds)), min(once(False) for _ in range(rounds))


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(quick: bool = False, offices: int | None = None, smoke: bool = False) -> list[Result]:
    offices = offices or (2 if smoke else 10 if quick else 100)
    store, history, now = filled_store(offices)
    agent = "xa-0000"
    rounds = 1 if smoke else 5 if quick else 20
    metrics_s, body = timed(lambda: exposition.render_bytes(store, now), 3)
    office_s, page = timed(lambda: status_pages.office_page(
        status_model.office(store, history, agent, now) or {}, "bench"), rounds)
    json_s, api = timed(lambda: json.dumps(status_model.office(store, history, agent, now),
                                           ensure_ascii=False), rounds)
    province_s, province = timed(lambda: status_pages.province_page(
        status_model.province(store, now), "bench"), rounds)
    data = status_model.office(store, history, agent, now)
    assert data is not None
    rows = sum(len(d["interfaces"]) for d in data["devices"])
    with_rate = sum(i["in_bps"] is not None for d in data["devices"] for i in d["interfaces"])
    assert rows == SWITCHES * PORTS and with_rate == rows, (rows, with_rate)
    assert isinstance(page, str) and isinstance(api, str) and isinstance(province, str)
    assert isinstance(body, bytes)
    series = body.count(b"\n") - body.count(b"\n#")
    interfaces = history.interfaces()
    memory = history_bytes(history)
    per_interface = memory / interfaces
    per_series, _ = store_memory(1 if smoke else 2)
    per_switch = PORTS * per_interface / (samples_per_batch() * per_series)
    # smoke: does it still run end to end? (tests/integration/test_benchmarks_smoke.py)
    with_history, without = ingest_cost(devices=5, polls=3, rounds=1) if smoke else ingest_cost()
    note = f"{offices} offices x {SWITCHES} switches x {PORTS} ports; /metrics: {series:,} series"
    return [
        Result(BENCH, f"office page, {rows} interface rows ({len(page) / 1e3:.0f} kB)", office_s * 1000, "ms",
               "/metrics render, same store", metrics_s * 1000, "< 100 ms", office_s < 0.1, notes=note),
        Result(BENCH, f"office JSON /api/office ({len(api) / 1e3:.0f} kB)", json_s * 1000, "ms",
               "/metrics render, same store", metrics_s * 1000, "< 100 ms", json_s < 0.1),
        Result(BENCH, f"province page, {offices} offices ({len(province) / 1e3:.0f} kB)", province_s * 1000,
               "ms", "/metrics render, same store", metrics_s * 1000, "", None),
        Result(BENCH, f"traffic history, {HISTORY_POINTS} points", per_interface, "bytes / interface",
               "collector store, bytes / series", per_series,
               notes=f"{interfaces:,} interfaces kept: {memory / 1e6:.1f} MB in all; for a 48-port switch "
                     f"({samples_per_batch()} series) the history adds {per_switch:.0%} to what the store "
                     "holds for it (store: tracemalloc while filling 2 offices)"),
        Result(BENCH, "Store.ingest of a 48-port switch poll, with the history", with_history * 1e6,
               "us / poll", "without the history", without * 1e6,
               notes=f"the history's share of ingest: {with_history / without - 1:+.0%} (best of 3 runs of "
                     "500 polls each)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offices", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from benchmarks.common import table

    print(table(run(args.quick, args.offices or None)))


if __name__ == "__main__":
    main()

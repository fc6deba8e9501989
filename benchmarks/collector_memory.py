"""Benchmark 8: collector memory, RSS per served series (goal: <= 1 kB per series at 1M series).

A child process builds the collector's real Store (scrape mode, as `hatang collector` builds it) and
reads its RSS with no series (the reference: the interpreter, the collector's imports and an empty
store). Then it ingests polls of 48-port access switches (961 samples each: benchmarks/_workload.py)
through ``Store.ingest``, the same path as MQTT messages, until the store holds the target number of
series, renders /metrics once (so every poll counts as served, as in production where Prometheus
scrapes), collects garbage and reads its RSS again. RSS per series = (full - empty) / series.

With ``--trace`` (and in the quick and full runs, on a smaller store in a second child) tracemalloc
attributes the memory of the store's state per series to the lines that allocated it.

    python -m benchmarks.collector_memory [--series 1000000] [--trace]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator

from benchmarks._workload import encoded_polls, samples_per_batch
from benchmarks.common import Result

BENCH = "8. Collector memory"
GOAL_BYTES = 1000
DEVICES_PER_AGENT = 10


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def polls(devices: int, ts: float) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) of one poll of each of ``devices`` switches, made one agent at a time."""
    for first in range(0, devices, DEVICES_PER_AGENT):
        batch = encoded_polls(1, min(DEVICES_PER_AGENT, devices - first), 1, ts)
        agent = f"xa-{first // DEVICES_PER_AGENT:05d}"
        for topic, payload in batch:  # encoded_polls names its only agent xa-0000
            yield topic.replace("xa-0000", agent), payload.replace(b'"xa-0000"', f'"{agent}"'.encode())


def child(series: int, trace: bool) -> dict[str, object]:
    """Runs in the child process: RSS empty, then with ``series`` series served."""
    from collector import exposition
    from collector.selfmetrics import CollectorMetrics
    from collector.store import Store
    from wire.codec import Limits

    devices = -(-series // samples_per_batch())
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9)
    gc.collect()
    empty = rss_bytes()
    if trace:
        tracemalloc.start(1)
    started = time.process_time()
    accepted = sum(store.ingest(topic, payload) == "accepted"
                   for topic, payload in polls(devices, time.time()))
    ingest_cpu = time.process_time() - started
    body = exposition.render_bytes(store, time.time())  # a scrape: every poll is served
    served = body.count(b"\nhatang_interface_")
    del body
    gc.collect()
    out: dict[str, object] = {"empty": empty, "full": rss_bytes(), "devices": devices, "accepted": accepted,
                              "series": devices * samples_per_batch(), "served_interface_lines": served,
                              "ingest_cpu": ingest_cpu}
    if trace:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = snapshot.statistics("lineno")
        out["traced"] = sum(s.size for s in stats)
        out["top"] = [(str(s.traceback[0]).replace(str(sys.prefix), "<venv>"), s.size, s.count)
                      for s in stats[:8]]
    return out


def measure(series: int, trace: bool = False) -> dict[str, object]:
    argv = [sys.executable, "-m", "benchmarks.collector_memory", "--child", "--series", str(series)]
    out = subprocess.run(argv + (["--trace"] if trace else []), capture_output=True, text=True, timeout=900,
                         check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _number(doc: dict[str, object], key: str) -> float:
    value = doc[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def run(quick: bool = False, series: int | None = None, smoke: bool = False) -> list[Result]:
    series = series or (20_000 if smoke else 200_000 if quick else 1_000_000)
    doc = measure(series)
    devices, total = _number(doc, "devices"), _number(doc, "series")
    assert _number(doc, "accepted") == devices, doc
    assert _number(doc, "served_interface_lines") == devices * (samples_per_batch() - 1), doc
    empty, full = _number(doc, "empty"), _number(doc, "full")
    per_series = (full - empty) / total
    notes = (f"{total:,.0f} series = {devices:,.0f} polls of 48-port switches in one Store (scrape mode), "
             f"ingested in {_number(doc, 'ingest_cpu'):.1f} CPU s and served once; RSS {full / 2**20:.0f} MB "
             f"against {empty / 2**20:.0f} MB with no series")
    if not smoke:
        traced = measure(min(series, 50_000), trace=True)
        top = traced["top"]
        assert isinstance(top, list)
        per = _number(traced, "series")
        notes += (f". tracemalloc at {per:,.0f} series: {_number(traced, 'traced') / per:.0f} B/series "
                  "traced; "
                  + "; ".join(f"{where} {size / per:.0f} B/series" for where, size, _ in top[:5]))
    return [
        Result(BENCH, f"collector RSS per served series ({total:,.0f} series)", per_series, "bytes / series",
               goal=f"<= {GOAL_BYTES:,} B/series", met=per_series <= GOAL_BYTES, notes=notes),
        Result(BENCH, f"collector RSS with {total:,.0f} series served", full / 2**20, "MB",
               "the same process with no series", empty / 2**20),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--trace", action="store_true", help="with --child: tracemalloc the store")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.series or 1_000_000, args.trace)), flush=True)
        return
    from benchmarks.common import table

    print(table(run(args.quick, args.series or None, args.smoke)))


if __name__ == "__main__":
    main()

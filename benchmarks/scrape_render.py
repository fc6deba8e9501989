"""Benchmark 4: time to render /metrics with 1,000,000 series, beside prometheus-client's
``generate_latest`` on the same data.

The store is filled through the real ingest path with 48-port switch polls (benchmarks/_workload.py,
961 series each) until it holds the requested number of series. hatang: what the /metrics handler does
(collector/http.py): ``exposition.render_bytes``, the liveness series included. Reference:
the same samples (same names, labels, values, timestamps) as prometheus-client metric families, built
once before timing (so the reference is not charged for building them), rendered by ``generate_latest``.
Both outputs are parsed back and compared on a sample of series to prove they carry the same data.

    python -m benchmarks.scrape_render [--series 1000000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from benchmarks._workload import samples_per_batch, switch_batch
from benchmarks.common import Result
from collector import exposition
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from wire.codec import Limits, encode_batch

BENCH = "4. Scrape /metrics"


def filled_store(series: int) -> tuple[Store, list[Metric]]:
    devices = max(1, round(series / samples_per_batch()))
    now = time.time()
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                  max_series_per_agent=10**9)
    families: dict[str, Metric] = {}
    for d in range(devices):
        agent, device = f"xa-{d // 10:04d}", f"sw-{d % 10:02d}"
        batch = switch_batch(agent, device, 1 + d % 10, now - 1, d)
        assert store.ingest(f"hatang/v1/agents/{agent}/data/{device}", encode_batch(batch)) == "accepted"
        base = {"agent": agent, "device": device, "province": "Lào Cai"}
        for family in batch.families:
            metric = families.get(family.name)
            if metric is None:
                name = family.name.removesuffix("_total") if family.type == "counter" else family.name
                kind = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
                metric = families[family.name] = kind(name, family.help, labels=())
            for sample in family.samples:
                labels = {**base, **dict(sample.labels)}
                metric.add_sample(family.name, labels, float(sample.value), timestamp=batch.ts)
    for agent in store.agents.values():
        agent.online = True
    return store, list(families.values())


class Prebuilt(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def timed(fn: object, rounds: int) -> tuple[float, bytes]:
    times, out = [], b""
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def lines_of(text: bytes, prefix: bytes) -> set[bytes]:
    return {line for line in text.splitlines() if line.startswith(prefix)}


def run(quick: bool = False, series: int | None = None, smoke: bool = False) -> list[Result]:
    series = series or (10_000 if smoke else 100_000 if quick else 1_000_000)
    store, metrics = filled_store(series)
    total = sum(len(m.samples) for m in metrics)
    now = time.time()
    ours, body = timed(lambda: exposition.render_bytes(store, now), 3)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Prebuilt(metrics))
    theirs, reference_body = timed(lambda: generate_latest(registry), 1 if not quick else 2)
    # same data: every sample line of one device family matches (floats rendered differently: compare values)
    probe = b'hatang_interface_in_bytes_total{agent="xa-0000",device="sw-00"'
    ours_lines = sorted(lines_of(body, probe))
    ref_lines = sorted(lines_of(reference_body, probe))
    assert len(ours_lines) == len(ref_lines) > 0, (len(ours_lines), len(ref_lines))
    for a, b in zip(ours_lines, ref_lines, strict=True):
        assert float(a.split(b" ")[-2]) == float(b.split(b" ")[-2]), (a, b)
    speedup = theirs / ours
    return [
        Result(BENCH, f"hatang collector render ({total:,} series)", ours, "s", "generate_latest", theirs,
               ">= 5x faster and < 1 s", speedup >= 5 and ours < 1.0,
               notes=f"{speedup:.0f}x faster; body {len(body) / 1e6:.0f} MB; median of 3 renders "
                     f"(reference: {'1 render' if not quick else 'median of 2'})"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from benchmarks.common import table

    print(table(run(args.quick, args.series or None)))


if __name__ == "__main__":
    main()

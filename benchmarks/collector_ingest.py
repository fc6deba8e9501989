"""Benchmark 3: collector ingest, samples per second from MQTT into the served state (scrape path) or into
remote-write series (push path: push mode, and late polls in either mode) on one core.

A real Mosquitto (own port and config, unlimited session queue) holds N poll batches (48-port switch
polls, 961 samples each: benchmarks/_workload.py) queued for a persistent session. A consumer process
then connects and drains them through the collector's real Subscriber (aiomqtt): once only counting
messages (the bare subscriber: the limit of the MQTT stack), once into the real Store in scrape mode
(decode, validate, render the exposition lines: what a scrape then serves), once into the real Store in
push mode (decode, validate, one remote-write series per sample) and once in push mode with the real
RemoteWriter behind it (queue, protobuf, snappy; a stub instead of HTTP). Same broker, same messages,
same client library, same run. Also reported, in process and without MQTT: the Store alone in both
modes, and the push path's decoder (collector/late_series.py) beside its reference
(``decode_families`` + ``to_series``) on the same decoded polls.

    python -m benchmarks.collector_ingest [--messages 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from benchmarks._workload import encoded_polls, samples_per_batch
from benchmarks.common import Result, measure
from collector.ingest import to_series
from collector.late_series import late_series
from collector.remote_write import Series, compress, encode_write_request
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from tests.support.services import start_mosquitto
from wire.codec import DEFAULT_LIMITS, Limits, decode_families, load_batch

BENCH = "3. Collector ingest"
PUSH_BENCH = "3. Collector push/late path"
GOAL = 500_000
MODES = ("bare", "collector", "push", "remote-write")


async def publish(url_port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", url_port, identifier="bench-publisher") as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def consume(url: str, client_id: str, mode: str, expect: int, prepare: bool = False) -> dict[str, float]:
    argv = [sys.executable, "-m", "benchmarks._ingest_consumer", "--url", url, "--client-id", client_id,
            "--mode", mode, "--expect", str(expect)] + (["--prepare"] if prepare else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout
    return {} if prepare else dict(json.loads(out.strip().splitlines()[-1]))


def in_process(messages: list[tuple[str, bytes]], push: bool = False,
               sink: Callable[[list[Series]], None] | None = None) -> float:
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                  late_sink=sink, push=push)
    with measure() as span:
        for topic, payload in messages:
            assert store.ingest(topic, payload) == "accepted"
    return span.cpu


def encode_batches(series: list[Series], batch: int = 2000) -> None:
    """What the remote writer does with them: protobuf and snappy, ``batch`` samples per request."""
    for start in range(0, len(series), batch):
        compress(encode_write_request(series[start:start + batch]))


def decoders(messages: list[tuple[str, bytes]]) -> tuple[float, float]:
    """CPU seconds of the reference (decode_families + to_series) and of late_series over the same
    decoded polls (JSON parsed beforehand), each poll's series dropped after it as a sink would."""
    polls = [load_batch(payload)[1:] for _, payload in messages]
    base = (("agent", "xa-0000"), ("device", "sw-00"), ("province", "Lào Cai"))
    ts_ms = int(time.time() * 1000)

    def reference(raw_metrics: list[Any], raw_label_sets: list[Any]) -> list[Series]:
        return to_series(decode_families(raw_metrics, DEFAULT_LIMITS, raw_label_sets), base, ts_ms)

    def fast(raw_metrics: list[Any], raw_label_sets: list[Any]) -> list[Series]:
        return late_series(raw_metrics, base, ts_ms, DEFAULT_LIMITS, raw_label_sets)[0]

    assert reference(*polls[0]) == fast(*polls[0])
    spans = []
    for decode in (reference, fast):
        with measure() as span:
            for raw_metrics, raw_label_sets in polls:
                decode(raw_metrics, raw_label_sets)
        spans.append(span.cpu)
    return spans[0], spans[1]


def run(quick: bool = False, count: int | None = None, smoke: bool = False) -> list[Result]:
    count = count or (40 if smoke else 400 if quick else 2000)
    agents = max(1, count // 20)
    # two polls of every device: the second finds its label sets known, as every poll after the first does
    messages = encoded_polls(agents, 10, 2, time.time())[:count]
    per_batch = samples_per_batch()
    samples = len(messages) * per_batch
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_mosquitto(Path(tmp), "max_queued_messages 0\n")
        try:
            for mode in MODES:
                client_id = f"bench-{mode}"
                consume(broker.url, client_id, mode, 0, prepare=True)
                asyncio.run(publish(broker.port, messages))
                results[mode] = consume(broker.url, client_id, mode, len(messages))
        finally:
            broker.stop()
    store_cpu = in_process(messages)
    push_cpu = in_process(messages, push=True, sink=lambda series: None)
    written_cpu = in_process(messages, push=True, sink=encode_batches)
    reference_cpu, fast_cpu = decoders(messages)
    bare, full, push, written = (results[mode] for mode in MODES)
    for mode in MODES[1:]:
        assert results[mode]["accepted"] == len(messages), (mode, results[mode])
    # push mode also writes the poll's success sample (hatang_device_poll_success): one more per poll
    assert push["series"] == written["series"] == samples + len(messages), (push, written)
    size = sum(len(p) for _, p in messages) / len(messages)
    rate, push_rate, written_rate = samples / full["cpu"], samples / push["cpu"], samples / written["cpu"]
    bare_rate = samples / bare["cpu"]

    def cpu(r: dict[str, float]) -> str:
        return f"{r['cpu']:.2f} s CPU in {r['wall']:.2f} s wall"

    workload = f"{len(messages)} messages x {per_batch} samples ({size / 1000:.0f} kB each)"
    return [
        Result(BENCH, "collector: MQTT -> Store (served state)", rate, "samples / CPU s (one core)",
               "bare subscriber", bare_rate, f">= {GOAL:,} samples/s", rate >= GOAL,
               notes=f"{workload}; consumer {cpu(full)} (bare: {cpu(bare)})"),
        Result(BENCH, "Store.ingest alone (in process)", samples / store_cpu, "samples/s per CPU second",
               notes="decode + validate + render lines, no MQTT"),
        Result(PUSH_BENCH, "collector: MQTT -> Store, push mode (remote-write series)", push_rate,
               "samples / CPU s (one core)", "scrape path (MQTT -> Store, above)", rate,
               f">= {GOAL:,} samples/s", push_rate >= GOAL,
               notes=f"same messages, same run; consumer {cpu(push)}; every poll becomes one Series per "
                     "sample for remote write (late polls take the same path in scrape mode)"),
        Result(PUSH_BENCH, "collector: MQTT -> Store -> RemoteWriter (protobuf + snappy, stub endpoint)",
               written_rate, "samples / CPU s (one core)", "scrape path (MQTT -> Store, above)", rate,
               notes=f"the whole member's push path but HTTP: queue, encode_write_request, compress "
                     f"(2,000 samples per request); consumer {cpu(written)}"),
        Result(PUSH_BENCH, "Store.ingest alone, push mode (in process)", samples / push_cpu,
               "samples/s per CPU second", "Store.ingest alone, scrape mode", samples / store_cpu,
               notes="decode + validate + remote-write series, no MQTT; the sink drops them"),
        Result(PUSH_BENCH, "Store.ingest, push mode, + protobuf + snappy (in process)",
               samples / written_cpu, "samples/s per CPU second", "Store.ingest alone, scrape mode",
               samples / store_cpu, notes="the series encoded as the remote writer does, 2,000 per request"),
        Result(PUSH_BENCH, "late_series (collector/late_series.py), decoded JSON -> Series",
               samples / fast_cpu, "samples/s per CPU second", "decode_families + to_series (the reference)",
               samples / reference_cpu, notes="the same decoded polls (JSON parsed beforehand), in process"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    from benchmarks.common import table

    print(table(run(args.quick, args.messages or None, args.smoke)))


if __name__ == "__main__":
    main()

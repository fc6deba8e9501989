"""Benchmark 3: collector ingest, samples per second from MQTT into the served state on one core.

A real Mosquitto (own port and config, unlimited session queue) holds N poll batches (48-port switch
polls, 961 samples each: benchmarks/_workload.py) queued for a persistent session. A consumer process
then connects and drains them through the collector's real Subscriber (aiomqtt): once only counting
messages (the bare subscriber: the limit of the MQTT stack) and once into the real Store (decode,
validate, render the exposition lines: what a scrape then serves). Same broker, same messages, same
client library; the ratio is what hatang's ingest adds. Also reported: the Store alone, in process.

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
from pathlib import Path

import aiomqtt

from benchmarks._workload import encoded_polls, samples_per_batch
from benchmarks.common import Result, measure
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from tests.support.services import start_mosquitto
from wire.codec import Limits

BENCH = "3. Collector ingest"


async def publish(url_port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", url_port, identifier="bench-publisher") as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def consume(url: str, client_id: str, mode: str, expect: int, prepare: bool = False) -> dict[str, float]:
    argv = [sys.executable, "-m", "benchmarks._ingest_consumer", "--url", url, "--client-id", client_id,
            "--mode", mode, "--expect", str(expect)] + (["--prepare"] if prepare else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True).stdout
    return {} if prepare else dict(json.loads(out.strip().splitlines()[-1]))


def in_process(messages: list[tuple[str, bytes]]) -> float:
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9)
    with measure() as span:
        for topic, payload in messages:
            store.ingest(topic, payload)
    return span.cpu


def run(quick: bool = False, count: int | None = None) -> list[Result]:
    count = count or (400 if quick else 2000)
    agents = max(1, count // 20)
    # two polls of every device: the second finds its label sets known, as every poll after the first does
    messages = encoded_polls(agents, 10, 2, time.time())[:count]
    samples = len(messages) * samples_per_batch()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_mosquitto(Path(tmp), "max_queued_messages 0\n")
        try:
            for mode in ("bare", "collector"):
                client_id = f"bench-{mode}"
                consume(broker.url, client_id, mode, 0, prepare=True)
                asyncio.run(publish(broker.port, messages))
                results[mode] = consume(broker.url, client_id, mode, len(messages))
        finally:
            broker.stop()
    store_cpu = in_process(messages)
    bare, full = results["bare"], results["collector"]
    assert full["accepted"] == len(messages), full
    size = sum(len(p) for _, p in messages) / len(messages)
    rate = samples / full["cpu"]
    return [
        Result(BENCH, "collector: MQTT -> Store (served state)", rate, "samples / CPU s (one core)",
               "bare subscriber", samples / bare["cpu"], ">= 500,000 samples/s", rate >= 500_000,
               notes=f"{len(messages)} messages x {samples_per_batch()} samples ({size / 1000:.0f} kB each); "
                     f"consumer CPU {full['cpu']:.2f} s in {full['wall']:.2f} s wall (bare: "
                     f"{bare['cpu']:.2f} s in {bare['wall']:.2f} s)"),
        Result(BENCH, "Store.ingest alone (in process)", samples / store_cpu, "samples/s per CPU second",
               notes="decode + validate + render lines, no MQTT"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from benchmarks.common import table

    print(table(run(args.quick, args.messages or None)))


if __name__ == "__main__":
    main()

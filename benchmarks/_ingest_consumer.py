"""Consumer process of the ingest benchmark: drains a persistent MQTT session through the collector's
real Subscriber, either into the real Store (``--mode collector``) or only counting (``--mode bare``).

    python -m benchmarks._ingest_consumer --url mqtt://127.0.0.1:PORT --client-id ID --mode bare \
        --expect 1000            # prints one JSON line: messages, cpu, wall, accepted
    ... --prepare                # connect once to create the session, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from collector.subscriber import Subscriber, SubscriberSettings
from wire.codec import Limits


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--mode", choices=("bare", "collector"), default="bare")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--prepare", action="store_true")
    args = parser.parse_args()
    settings = SubscriberSettings(url=args.url, client_id=args.client_id, session_expiry=3600)
    connected = asyncio.Event()
    done = asyncio.Event()
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9)
    count = 0
    accepted = 0
    first = [0.0, 0.0]

    def on_message(topic: str, payload: bytes, retained: bool = False) -> None:
        nonlocal count, accepted
        if count == 0:
            first[0], first[1] = time.perf_counter(), time.process_time()
        count += 1
        if args.mode == "collector":
            accepted += store.ingest(topic, payload) == "accepted"
        if count >= args.expect:
            done.set()

    def on_connection(up: bool) -> None:
        if up:
            connected.set()

    subscriber = Subscriber(settings, on_message, on_connection)
    task = asyncio.create_task(subscriber.run())
    try:
        if args.prepare:
            await asyncio.wait_for(connected.wait(), 30)
            return
        await asyncio.wait_for(done.wait(), float(os.environ.get("HATANG_BENCH_TIMEOUT", "300")))
        wall, cpu = time.perf_counter() - first[0], time.process_time() - first[1]
        print(json.dumps({"messages": count, "accepted": accepted, "wall": wall, "cpu": cpu}), flush=True)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())

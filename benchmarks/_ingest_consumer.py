"""Consumer process of the ingest benchmark: drains a persistent MQTT session through the collector's
real Subscriber, into the real Store or only counting.

    python -m benchmarks._ingest_consumer --url mqtt://127.0.0.1:PORT --client-id ID --mode bare \
        --expect 1000            # prints one JSON line: messages, cpu, wall, accepted, series
    ... --prepare                # connect once to create the session, then exit

Modes: ``bare`` only counts (the limit of the MQTT stack); ``collector`` is the scrape path (the Store
renders the served state); ``push`` is the push path (the Store makes remote-write series of every poll,
the sink counts them); ``remote-write`` is the push path with the real RemoteWriter behind it (queue,
protobuf encoding, snappy), posting to a stub that stores everything at once (no HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from collector.remote_write import RemoteWriter, Series
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from collector.subscriber import Subscriber, SubscriberSettings
from wire.codec import Limits

MODES = ("bare", "collector", "push", "remote-write")


async def stub_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    return 204, ""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--mode", choices=MODES, default="bare")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--prepare", action="store_true")
    args = parser.parse_args()
    settings = SubscriberSettings(url=args.url, client_id=args.client_id, session_expiry=3600)
    connected = asyncio.Event()
    done = asyncio.Event()
    written = [0]
    writer = RemoteWriter(["http://stub.invalid/api/v1/write"], stub_post) if args.mode == "remote-write" \
        else None

    def count(series: list[Series]) -> None:
        written[0] += len(series)

    sink = writer.submit if writer is not None else count
    push = args.mode in ("push", "remote-write")
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                  late_sink=sink if push else None, push=push)
    count_messages = 0
    accepted = 0
    first = [0.0, 0.0]

    def on_message(topic: str, payload: bytes, retained: bool = False) -> None:
        nonlocal count_messages, accepted
        if count_messages == 0:
            first[0], first[1] = time.perf_counter(), time.process_time()
        count_messages += 1
        if args.mode != "bare":
            accepted += store.ingest(topic, payload) == "accepted"
        if count_messages >= args.expect:
            done.set()

    def on_connection(up: bool) -> None:
        if up:
            connected.set()

    subscriber = Subscriber(settings, on_message, on_connection)
    tasks = [asyncio.create_task(subscriber.run())]
    if writer is not None:
        tasks.append(asyncio.create_task(writer.run()))
    try:
        if args.prepare:
            await asyncio.wait_for(connected.wait(), 30)
            return
        timeout = float(os.environ.get("HATANG_BENCH_TIMEOUT", "300"))
        await asyncio.wait_for(done.wait(), timeout)
        if writer is not None:
            assert await writer.flush(timeout), "the remote writer did not drain"
            written[0] = sum(queue.sent for queue in writer.queues)
        wall, cpu = time.perf_counter() - first[0], time.process_time() - first[1]
        print(json.dumps({"messages": count_messages, "accepted": accepted, "wall": wall, "cpu": cpu,
                          "series": written[0]}), flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())

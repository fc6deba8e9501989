"""Cost of the agent's durable queue: append with fsync (synchronous=FULL, what ships) next to the same
append without fsync (synchronous=OFF, the reference), in one run. Prints a table row per mode.

    python benchmarks/queue_fsync.py [--messages 2000] [--size 4000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from agent.queue import DiskQueue


def run(mode: str, messages: int, size: int) -> float:
    with tempfile.TemporaryDirectory(dir=os.environ.get("HATANG_BENCH_DIR")) as tmp:
        queue = DiskQueue(Path(tmp), max_bytes=1 << 30, max_age=86400)
        queue._db.execute(f"PRAGMA synchronous={mode}")
        payload = b"x" * size
        t0 = time.perf_counter()
        for _ in range(messages):
            queue.append("core-switch", payload)
        elapsed = time.perf_counter() - t0
        batch = queue.peek(messages)
        t1 = time.perf_counter()
        queue.ack([m.id for m in batch])
        ack = time.perf_counter() - t1
        queue.close()
    append_us, ack_us = elapsed / messages * 1e6, ack / messages * 1e6
    print(f"| {mode:4} | {messages} | {size} | {append_us:8.1f} µs | {ack_us:6.1f} µs |")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000)
    args = parser.parse_args()
    print("| synchronous | messages | payload bytes | append each | ack each |")
    print("|---|---|---|---|---|")
    full = run("FULL", args.messages, args.size)
    off = run("OFF", args.messages, args.size)
    print(f"\nfsync costs {full / off:.1f}x the no-fsync reference per append")


if __name__ == "__main__":
    main()

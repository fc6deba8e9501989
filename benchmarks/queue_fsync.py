"""Cost of the agent's durable queue: append with fsync (synchronous=FULL, what ships) next to the same
append without fsync (synchronous=OFF, the reference), in one run.

    python -m benchmarks.queue_fsync [--messages 2000] [--size 4000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from agent.queue import DiskQueue
from benchmarks.common import Result, table

BENCH = "6. Agent disk queue"


def append_seconds(mode: str, messages: int, size: int) -> float:
    with tempfile.TemporaryDirectory(dir=os.environ.get("HATANG_BENCH_DIR")) as tmp:
        queue = DiskQueue(Path(tmp), max_bytes=1 << 30, max_age=86400)
        queue._db.execute(f"PRAGMA synchronous={mode}")
        payload = b"x" * size
        t0 = time.perf_counter()
        for _ in range(messages):
            queue.append("core-switch", payload)
        elapsed = time.perf_counter() - t0
        batch = queue.peek(messages)
        queue.ack([m.id for m in batch])
        queue.close()
    return elapsed


def run(quick: bool = False, messages: int | None = None, size: int = 4000) -> list[Result]:
    messages = messages or (500 if quick else 2000)
    full = append_seconds("FULL", messages, size) / messages * 1e6
    off = append_seconds("OFF", messages, size) / messages * 1e6
    return [Result(BENCH, f"append, fsync (synchronous=FULL, ships), {size} B", full, "µs per append",
                   "no fsync (synchronous=OFF)", off,
                   notes=f"{messages} appends; the price of losing nothing on power loss")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000)
    args = parser.parse_args()
    print(table(run(False, args.messages, args.size)))


if __name__ == "__main__":
    main()

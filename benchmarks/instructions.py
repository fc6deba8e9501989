"""Instructions per varbind and per sample, counted by valgrind: for comparing two commits on a noisy machine.

CPU seconds on a shared virtual machine vary by 30 % from run to run (steal time, frequency), which hides
a 5 % change. valgrind's callgrind counts the instructions a process executes: the same code on the same
input gives the same count (within ~0.1 %) whatever else the machine does. Two figures, each the
difference between a long and a short run (so start-up, imports and warm-up cancel out):

* the agent's full fast-path poll of the ``interfaces`` profile against the benchmark responder (walk,
  mapping, JSON payload), per varbind the responder sent;
* ``Store.ingest`` of 48-port switch polls (decode, validate, render), per sample.

    python -m benchmarks.instructions                # both, in this checkout (needs valgrind)
    cd ../other-checkout && python -m benchmarks.instructions   # the same for another commit

Slow (about 9 minutes): the interpreter runs ~50x slower under valgrind. Run it from the checkout to
measure (it imports ``agent`` and ``collector`` from the working directory).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WALK_ROWS = 200
WALK_POLLS = (1, 5)
INGEST_MESSAGES = (200, 600)
INGEST_BUILT = INGEST_MESSAGES[1]  # messages always built, so only the ingest differs between the runs


def _walk(polls: int) -> None:
    import benchmarks.snmp_walk as sw
    from benchmarks.snmp_walk import ResponderProcess

    async def run(port: int) -> None:
        engine = sw.SnmpEngine(fast_path=True)
        try:
            target = await engine.target("127.0.0.1", port, sw.Credentials("2c", "public"), timeout=30.0,
                                         retries=1, max_repetitions=sw.REPS)
            poller = sw.DevicePoller("bench", target, [sw.load_profiles()["interfaces"]], deadline=3000.0,
                                     timeout_errors=(sw.SnmpTimeout,), snmp_errors=(sw.SnmpError,),
                                     label_refresh_polls=1)
            await poller.poll()  # warm-up, in both runs
            for seq in range(1, polls + 1):
                outcome = await poller.poll()
                assert outcome.up and not outcome.errors, outcome.errors
                sw.encode_batch(sw.PollBatch("bench", "b" * 32, seq, outcome.ts, "sw", 60.0, outcome.up,
                                             outcome.duration, families=outcome.families))
        finally:
            engine.close()

    responder = ResponderProcess(WALK_ROWS)
    try:
        before = responder.stats()["varbinds"]
        asyncio.run(run(responder.port))
        print(f"UNITS {responder.stats()['varbinds'] - before}")
    finally:
        responder.close()


def _ingest(count: int) -> None:
    from benchmarks._workload import encoded_polls, samples_per_batch
    from collector.selfmetrics import CollectorMetrics
    from collector.store import Store
    from wire.codec import Limits

    messages = encoded_polls(INGEST_BUILT // 20, 10, 2, 1_790_000_000.0)[:INGEST_BUILT]
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9)
    for topic, payload in messages[:count]:
        store.ingest(topic, payload)
    print(f"UNITS {count * samples_per_batch()}")


def _counted(kind: str, size: int) -> tuple[int, int]:
    """(instructions, units) of one run of this module under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={Path(tmp) / 'cg.out'}", sys.executable,
             "-m", "benchmarks.instructions", "--child", kind, str(size)],
            capture_output=True, text=True, check=True, timeout=1800)
    instructions = re.search(r"Collected : (\d+)", out.stderr)
    units = re.search(r"UNITS (\d+)", out.stdout)
    assert instructions and units, (out.stdout[-2000:], out.stderr[-2000:])
    return int(instructions.group(1)), int(units.group(1))


def measure(kind: str, sizes: tuple[int, int]) -> float:
    """Instructions per unit: the difference between the long and the short run."""
    (i_short, u_short), (i_long, u_long) = (_counted(kind, s) for s in sizes)
    return (i_long - i_short) / (u_long - u_short)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size = args.child
        (_walk if kind == "walk" else _ingest)(int(size))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian package valgrind)")
    walk = measure("walk", WALK_POLLS)
    ingest = measure("ingest", INGEST_MESSAGES)
    print(f"agent fast-path poll: {walk:,.0f} instructions per varbind")
    print(f"Store.ingest:         {ingest:,.0f} instructions per sample")


if __name__ == "__main__":
    main()

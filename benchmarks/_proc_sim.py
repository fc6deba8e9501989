"""Helper process for the benchmarks: serve simulated SNMP devices (hatang/sim) until SIGTERM.

    python -m benchmarks._proc_sim SPEC.json ENDPOINTS.json

SPEC.json is a list of {"name", "kind" ("switch" | "router"), "ports", "seed", "host"}; once every device
listens, ENDPOINTS.json receives [[name, host, port], ...] (written atomically: its existence means ready).
Runs in its own process so that answering SNMP does not count as the agent's CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from hatang.sim.device import SimulatedDevice, make_router, make_switch
from hatang.sim.responder import SimulatorHandle, serve_devices


def build(spec: dict[str, object]) -> SimulatedDevice:
    name, seed = str(spec["name"]), int(str(spec.get("seed", 0)))
    if spec.get("kind") == "router":
        return make_router(name, seed=seed)
    return make_switch(name, ports=int(str(spec.get("ports", 24))), seed=seed)


async def main(spec_path: Path, ready_path: Path) -> None:
    specs: list[dict[str, object]] = json.loads(spec_path.read_text())
    handles: list[SimulatorHandle] = []
    endpoints: list[tuple[str, str, int]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in specs:  # one handle per device: each may have its own loopback address
            handle = await serve_devices([build(spec)], host=str(spec.get("host", "127.0.0.1")))
            handles.append(handle)
            endpoints.extend((e.name, e.host, e.port) for e in handle.endpoints)
        tmp = ready_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(endpoints))
        os.replace(tmp, ready_path)
        await stop.wait()
    finally:
        for handle in handles:
            handle.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))

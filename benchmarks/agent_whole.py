"""Whole agent process beside snmp_exporter: CPU per varbind in steady state (issue #19, goal 1).

benchmarks/snmp_walk.py measures the poll alone (walk, mapping, JSON payload) in this process. This one
runs the real ``hatang agent`` process with everything a poll costs around it: the scheduler, the disk
queue (SQLite, fsync), the JSON batch, the MQTT uplink to a real Mosquitto (QoS 1), self-metrics,
timers and keep-alives. Goal: <= 0.5x snmp_exporter's CPU per varbind.

What runs, all on 127.0.0.1 and stopped by PID at the end:

- two responder processes (benchmarks/_bulk_responder.py's pre-encoded replay, one per subject so each
  counts its own varbinds) serving a real recording: a ZTE ZXR10 switch with 221 interfaces from
  snmpsim-data (``network/switch/zte-zrx10``);
- ``hatang agent``: 10 devices (all this recording), the ``interfaces`` profile, every 10 s;
- Prometheus ``snmp_exporter`` 0.21 (Go) with a module walking the same columns (with its label lookups),
  scraped by this process for 10 targets every 10 s, phase-shifted like the agent's devices, in the same
  window, at its default max-repetitions (25; the agent starts at 10: agent/snmp/target.py).

After a warm-up (every device polled once, then one more interval) both processes are measured over the
same window: exact CPU (/proc/PID/task/*/schedstat) divided by the varbinds their responder sent them.
The agent re-reads interface labels every 10th poll; snmp_exporter reads its lookups at every scrape:
dividing by varbinds served puts both on the same footing.

``AGENT_PROFILE=FILE`` runs the agent under cProfile for the window only and prints its top functions
(with profiling on, the CPU figures are not comparable).

    python -m benchmarks.agent_whole [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import random
import shutil
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from agent.snmp.target import DEFAULT_MAX_REPETITIONS
from benchmarks._proc import (
    BenchError,
    Proc,
    bench_tmpdir,
    hatang_argv,
    machine_load,
    require,
    wait_for,
    write_yaml,
)
from benchmarks.agent_footprint import PollCounter
from benchmarks.common import Result, process_cpu_seconds_exact, table
from benchmarks.snmp_walk import ResponderProcess, free_port, interface_columns, snmp_exporter_config
from tests.support.services import start_mosquitto

BENCHMARK = "1. SNMP walk, whole agent"
UNIT = "CPU ms / 1,000 varbinds"
RECORDING = "network/switch/zte-zrx10"  # 221 interfaces
AGENT_ID = "xa-tam-dao"
SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Tam Đảo"}
DEVICES = 10
GOAL_RATIO = 0.5
EXPORTER_MAX_REPETITIONS = 25  # snmp_exporter's default; the agent starts at DEFAULT_MAX_REPETITIONS

# cProfile for the measured window only: SIGUSR1 starts it, SIGUSR2 stops it and writes the file
_PROFILED_AGENT = """
import cProfile, os, signal, sys
profile = cProfile.Profile()
def _start(*_):
    profile.enable()
def _stop(*_):
    profile.disable()
    profile.dump_stats(os.environ["AGENT_PROFILE"])
signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
from hatang.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _serve(recording: str) -> None:
    """``--serve RECORDING``: benchmarks/_bulk_responder.py's responder on a recording's values, with a
    GETBULK of several OIDs answered in the order RFC 3416 gives (repetition by repetition)."""
    import asyncio
    from typing import Any

    from benchmarks._bulk_responder import Responder
    from hatang.sim import ber

    class RfcBulkResponder(Responder):
        def _answer(self, message: ber.Message) -> tuple[int, int, list[bytes]]:
            pdu = message.pdu
            if pdu.tag != ber.GET_BULK_REQUEST or len(pdu.varbinds) < 2:
                return super()._answer(message)
            key: tuple[Any, ...] = (pdu.tag, pdu.max_repetitions, tuple(o for o, _ in pdu.varbinds))
            hit = self.cache.get(key)
            if hit is not None:
                return hit
            cursors = [self._next_index(start) for start, _ in pdu.varbinds]
            out: list[bytes] = []
            size = 0
            for _ in range(max(1, pdu.max_repetitions)):
                row = []
                for k, (start, _) in enumerate(pdu.varbinds):
                    i = cursors[k]
                    row.append(self.encoded[i] if i < len(self.oids)
                               else ber.encode_varbind(start, ber.END_OF_MIB_VIEW_VALUE))
                    cursors[k] = i + 1
                size += sum(len(v) for v in row)
                if size > self.max_bytes:
                    break
                out.extend(row)
            result = (0, 0, out)
            self.cache[key] = result
            return result
    from tests.support.snmprec import data_dir, find_recording, load_recording

    directory = data_dir()
    if directory is None:
        raise SystemExit("snmpsim-data is not installed (pip install snmpsim-data)")
    values = load_recording(find_recording(directory, recording)).values
    table = [(oid, ber.encode_varbind(oid, value)) for oid, value in sorted(values.items())]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: RfcBulkResponder(table),
                                                           local_addr=("127.0.0.1", 0))
        print("PORT", transport.get_extra_info("sockname")[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class RecordingResponder(ResponderProcess):
    def __init__(self, recording: str) -> None:
        self._start([sys.executable, "-m", "benchmarks.agent_whole", "--serve", recording])


class Scraper:
    """Scrapes snmp_exporter for ``targets`` targets every ``interval`` s, phase-shifted, in a thread."""

    def __init__(self, url: str, targets: int, interval: float) -> None:
        self.url, self.targets, self.interval = url, targets, interval
        self.scrapes = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def _run(self) -> None:
        phases = sorted(random.uniform(0, self.interval) for _ in range(self.targets))
        start = time.monotonic()
        round_ = 0
        while not self._stop.is_set():
            for phase in phases:
                if self._stop.wait(max(0.0, start + round_ * self.interval + phase - time.monotonic())):
                    return
                try:
                    body = urllib.request.urlopen(self.url, timeout=30).read()
                    if b"snmp_scrape_walk_duration" not in body:
                        self.failures.append("no snmp_scrape_walk_duration in the scrape")
                    self.scrapes += 1
                except OSError as exc:
                    self.failures.append(str(exc))
            round_ += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _start_exporter(tmp: Path, port: int) -> tuple[Proc, str]:
    binary = shutil.which("prometheus-snmp-exporter")
    if binary is None:
        raise BenchError("prometheus-snmp-exporter missing (apt-get install prometheus-snmp-exporter)")
    config = snmp_exporter_config(interface_columns())
    module = config["bench"]
    assert isinstance(module, dict)
    module["max_repetitions"] = EXPORTER_MAX_REPETITIONS
    (tmp / "snmp.yml").write_text(yaml.safe_dump(config))
    http_port = free_port()
    argv = [binary, f"--config.file={tmp / 'snmp.yml'}", f"--web.listen-address=127.0.0.1:{http_port}"]
    proc = Proc("snmp_exporter", argv, tmp / "snmp_exporter.log").start()
    url = f"http://127.0.0.1:{http_port}/snmp?target=127.0.0.1:{port}&module=bench"

    def scrape() -> bytes | None:
        with contextlib.suppress(OSError):
            return urllib.request.urlopen(url, timeout=30).read()  # type: ignore[no-any-return]
        return None

    body = wait_for(scrape, 30, "snmp_exporter's first scrape", [proc])
    if b"snmp_scrape_walk_duration" not in body:
        raise BenchError("snmp_exporter's scrape failed")
    return proc, url


def _agent_config(tmp: Path, mqtt_url: str, port: int, interval: float) -> Path:
    devices = [{"name": f"zte-{i:02d}", "address": "127.0.0.1", "port": port, "interval": interval,
                "profiles": ["interfaces"], "snmp": {"version": "2c", "community": "public"}}
               for i in range(DEVICES)]
    return write_yaml(tmp / "agent.yaml", {
        "agent_id": AGENT_ID, "site": SITE, "mqtt": {"url": mqtt_url},
        "buffer": {"path": str(tmp / "buffer")}, "log_level": "info", "devices": devices,
    })


def _print_profile(path: Path, polls: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"agent profile over the window ({polls} polls), by own time:")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


def run(quick: bool = False, smoke: bool = False) -> list[Result]:
    interval = 2.0 if smoke else 10.0
    intervals = 1 if smoke else 3 if quick else 6
    require(("mosquitto", "mosquitto"), ("prometheus-snmp-exporter", "prometheus-snmp-exporter"))
    profile = os.environ.get("AGENT_PROFILE")
    load = machine_load()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(bench_tmpdir("hatang-bench-whole-")))
        agent_responder = RecordingResponder(RECORDING)
        stack.callback(agent_responder.close)
        exporter_responder = RecordingResponder(RECORDING)
        stack.callback(exporter_responder.close)
        broker = start_mosquitto(tmp / "mosquitto")
        stack.callback(broker.stop)
        counter = PollCounter(broker.host, broker.port, f"hatang/v1/agents/{AGENT_ID}/data/+").start()
        stack.callback(counter.stop)
        exporter, url = _start_exporter(tmp, exporter_responder.port)
        stack.callback(exporter.stop)
        config = _agent_config(tmp, broker.url, agent_responder.port, interval)
        argv = ([sys.executable, "-c", _PROFILED_AGENT, "agent", "-c", str(config)] if profile
                else [*hatang_argv(), "agent", "-c", str(config)])
        agent = Proc("agent", argv, tmp / "agent.log").start()
        stack.callback(agent.stop)
        scraper = Scraper(url, DEVICES, interval).start()
        stack.callback(scraper.stop)
        wait_for(lambda: len(counter.devices_seen()) >= DEVICES or None, interval + 120,
                 f"a first poll of all {DEVICES} devices", [agent, exporter], interval=0.2)
        time.sleep(interval)  # one more round: label walks and lazy imports are behind
        if profile:
            agent.signal(signal.SIGUSR1)
        t0 = time.monotonic()
        agent_cpu0 = process_cpu_seconds_exact(agent.pid)
        exporter_cpu0 = process_cpu_seconds_exact(exporter.pid)
        agent_vb0, exporter_vb0 = agent_responder.stats()["varbinds"], exporter_responder.stats()["varbinds"]
        scrapes0 = scraper.scrapes
        end = t0 + intervals * interval
        while time.monotonic() < end:
            for proc in (agent, exporter):
                proc.check()
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        agent_cpu = process_cpu_seconds_exact(agent.pid) - agent_cpu0
        exporter_cpu = process_cpu_seconds_exact(exporter.pid) - exporter_cpu0
        agent_vb = agent_responder.stats()["varbinds"] - agent_vb0
        exporter_vb = exporter_responder.stats()["varbinds"] - exporter_vb0
        scrapes = scraper.scrapes - scrapes0
        t1 = time.monotonic()
        polls = counter.between(t0, t1)
        if profile:
            agent.signal(signal.SIGUSR2)
            wait_for(lambda: Path(profile).exists() or None, 30, "the agent's profile", [agent])
        scraper.stop()
        agent.stop()
        if "Traceback" in agent.log(1_000_000):
            raise BenchError(f"the agent logged a traceback:\n{agent.log()}")
        if scraper.failures:
            raise BenchError(f"snmp_exporter scrapes failed: {scraper.failures[:3]}")
    if polls == 0 or agent_vb == 0 or exporter_vb == 0 or scrapes == 0:
        raise BenchError(f"nothing measured: {polls} polls, {agent_vb} and {exporter_vb} varbinds, "
                         f"{scrapes} scrapes")
    if profile:
        _print_profile(Path(profile), polls)
    wall = t1 - t0
    agent_per_kvb = agent_cpu / agent_vb * 1e6
    exporter_per_kvb = exporter_cpu / exporter_vb * 1e6
    setup = (f"{DEVICES} devices, each the recording {RECORDING} (221 interfaces), profile interfaces, every "
             f"{interval:g} s; window {wall:.0f} s = {intervals} intervals after a warm-up; {load} at the "
             "start")
    return [
        Result(BENCHMARK, "hatang agent, whole process (poll + queue + JSON + MQTT, steady state)",
               agent_per_kvb, UNIT, "snmp_exporter, whole process, same window", exporter_per_kvb,
               f"<= {GOAL_RATIO:g}x snmp_exporter", agent_per_kvb <= GOAL_RATIO * exporter_per_kvb,
               f"{setup}; {polls} polls published, {agent_vb / polls:,.0f} varbinds per poll, "
               f"{agent_cpu / polls * 1000:.1f} CPU ms per poll, {agent_cpu / wall * 100:.1f} % of a core; "
               f"exact CPU (schedstat) of the process over the window / varbinds its responder sent"
               + (" (profiled: not comparable)" if profile else ""),
               {"agent_cpu_seconds": agent_cpu, "agent_varbinds": agent_vb, "polls": polls,
                "window_seconds": wall}),
        Result(BENCHMARK, "snmp_exporter 0.21 (Go), whole process, same columns + lookups", exporter_per_kvb,
               UNIT, notes=f"{scrapes} scrapes in the window ({DEVICES} targets every {interval:g} s), "
               f"{exporter_vb / scrapes:,.0f} varbinds per scrape, max-repetitions "
               f"{EXPORTER_MAX_REPETITIONS} (its default; the agent's: {DEFAULT_MAX_REPETITIONS}), "
               f"{exporter_cpu / scrapes * 1000:.1f} CPU ms per scrape",
               extra={"exporter_cpu_seconds": exporter_cpu, "exporter_varbinds": exporter_vb,
                      "scrapes": scrapes}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 intervals instead of 6")
    parser.add_argument("--serve", metavar="RECORDING", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    print(table(run(quick=args.quick)))


if __name__ == "__main__":
    main()

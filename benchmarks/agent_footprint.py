"""Agent footprint: RSS and CPU share of a commune agent (10 devices, 60 s interval).

Goals (issue #19, goal 5): <= 40 MB steady RSS (median VmRSS over three intervals) and <= 0.3 % of one
core, with the idle cost (the same agent without devices) beside it; first round (issue #6): 60 MB, 1 %.

What runs, all on loopback and stopped by PID at the end:

- a real Mosquitto (tests/support/services.py) and a bare MQTT subscriber in this process that counts the
  polls the agent publishes;
- 9 simulated devices (hatang/sim: a router and switches of 8-24 ports) served by a helper process
  (benchmarks/_proc_sim.py), so answering SNMP is not counted as the agent's CPU, and one real net-snmp
  ``snmpd`` as the office server (profiles system, interfaces, host);
- the real agent, ``hatang agent -c agent.yaml`` from the venv, polling the 10 devices every 60 s;
- beside it, in the same window: the same agent with no devices (its idle cost: MQTT keep-alive,
  self-metrics, timers) and a bare interpreter (``python -c`` sleeping), the floor of any Python process.

After a warm-up (every device polled once: the first poll also reads interface labels and pays for lazy
imports) each process's CPU and RSS (/proc/PID/status, every second) are measured over ``intervals``
polling intervals. CPU is the scheduler's exact runtime (/proc/PID/task/*/schedstat, ns); /proc/PID/stat
(10 ms units) is reported beside it. CPU share = CPU seconds / wall seconds; CPU per poll = all the
agent's CPU in the window / polls published in the window (so it includes self-metrics, MQTT keep-alives,
the disk queue's fsyncs and idle wake-ups). Wake-ups are the voluntary context switches in the window.

Why wake-ups matter: on a virtual machine a wake-up after a long sleep is expensive whatever the process
does when awake (caches, TLB and, nested, shadow page tables are cold): measured on the 2-core VM of
docs/performance.md, a Python loop that only sleeps costs 25 us of CPU per wake-up every 1 ms, 60 us
every 10 ms, 185 us every 100 ms and 350-900 us every second, and 3-9x less while the other vCPU is busy.
So an agent that wakes every second for nothing (aiomqtt's housekeeping did) costs a different share of a
core on every machine and at every load; its CPU per wake-up is reported so that runs can be compared.

References, in the same run:

- RSS: an idle Python process that imports the same modules as ``hatang agent`` and does nothing else:
  the floor set by the interpreter and the libraries, with what each step adds (asyncio/ssl/sqlite3,
  pydantic, the config models, the SNMP engine (without pysnmp: this agent has no SNMPv3 device and no
  trap listener), aiomqtt, the rest).
- CPU: net-snmp's ``snmpbulkwalk`` (C) reading the same subtrees of the same devices (system group, the
  whole ifTable and ifXTable, the host subtrees for the server), one process per subtree, with the same
  max-repetitions (10), for as many device polls as the agent made. It reads a superset of the agent's
  columns; the cost of its process starts (measured with an snmpget of one OID) is taken out, leaving the
  walking work.

    python -m benchmarks.agent_footprint [--quick] [--intervals N]

``--quick`` polls every 10 s instead of 60 s over a 30 s window: six times the polling rate of the goal,
so its CPU share is not comparable with the goal (the per-poll CPU is).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks._proc import (
    BenchError,
    Proc,
    SimDevice,
    bench_tmpdir,
    fs_type,
    hatang_argv,
    machine_load,
    proc_status_kb,
    require,
    start_simulator,
    wait_for,
    write_yaml,
)
from benchmarks.common import (
    Result,
    children_cpu_seconds,
    process_cpu_seconds,
    process_cpu_seconds_exact,
    process_rss_bytes,
    process_wakeups,
    table,
)
from tests.support.services import heavy_libraries, require_binary, start_mosquitto, start_snmpd

BENCHMARK = "2. Agent footprint"
AGENT_ID = "xa-dai-dinh"
SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}
GOAL_RSS_MB = 40.0
GOAL_CPU_PERCENT = 0.3
IDLE_AGENT_ID = "xa-khong-thiet-bi"  # the agent without devices, beside the measured one
MB = 1024 * 1024
MAX_REPETITIONS = 10  # agent/snmp/target.py DEFAULT_MAX_REPETITIONS: the reference walks with the same
SETTLE = 2.0  # seconds after the last first poll before the window starts
REFERENCE_ROUNDS = 3

# A commune office: the router on the government network, a core switch, access switches per floor and
# room, and (below) the office server as a real snmpd.
SIM_DEVICES = (
    SimDevice("router-tsldcd", kind="router", seed=1),
    SimDevice("core-switch", ports=24, seed=2),
    SimDevice("sw-mot-cua", ports=24, seed=3),
    SimDevice("sw-tang-1", ports=24, seed=4),
    SimDevice("sw-tang-2", ports=24, seed=5),
    SimDevice("sw-tang-3", ports=16, seed=6),
    SimDevice("sw-camera", ports=16, seed=7),
    SimDevice("sw-hoi-truong", ports=8, seed=8),
    SimDevice("sw-phong-may", ports=8, seed=9),
)
SERVER = "may-chu"

# Subtrees the reference walks per profile (the agent walks columns of these).
SUBTREES = {
    "system": ("1.3.6.1.2.1.1",),
    "interfaces": ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1"),
    "host": ("1.3.6.1.2.1.25.1", "1.3.6.1.2.1.25.2.3", "1.3.6.1.2.1.25.3.3", "1.3.6.1.4.1.2021.4",
             "1.3.6.1.4.1.2021.10.1.3", "1.3.6.1.4.1.2021.11"),
}

# What `hatang agent` imports before it does anything: the floor of its memory.
FLOOR_STEPS = (  # imported in this order by one idle interpreter; RSS is read after each
    ("asyncio, ssl, sqlite3", ("asyncio", "ssl", "sqlite3")),
    # plain dataclasses: pydantic and PyYAML are loaded only by the child that checks the configuration
    # (agent/checked_config.py), never by the agent's own process (heavy_libraries reports it)
    ("config and profile models", ("agent.config", "agent.profiles")),
    # pysnmp is not here: a v2c agent without a trap listener never imports it (agent/snmp/engine.py)
    ("SNMP engine", ("agent.snmp.engine",)),
    ("aiomqtt", ("aiomqtt", "agent.uplink")),
    ("rest of agent", ("agent.service", "hatang.cli", "agent.checked_config")),
)


@dataclass
class PollCounter:
    """A bare MQTT subscriber (paho, in a thread) that timestamps every poll the agent publishes."""

    host: str
    port: int
    topic: str
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def start(self) -> PollCounter:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-counter-{os.getpid()}")
        client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(self.topic, qos=1)
        client.on_message = self._on_message
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client
        return self

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.arrivals.append((time.monotonic(), message.topic.rsplit("/", 1)[-1]))

    def devices_seen(self) -> set[str]:
        with self._lock:
            return {device for _, device in self.arrivals}

    def between(self, t0: float, t1: float) -> int:
        with self._lock:
            return sum(1 for t, _ in self.arrivals if t0 <= t < t1)

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None


@dataclass
class Usage:
    """One process's cost over the window."""

    cpu: float  # CPU seconds, exact (schedstat)
    cpu_ticks: float  # CPU seconds from /proc/PID/stat (10 ms units), for comparison
    wakeups: int
    rss: list[int]  # bytes, one sample per second

    @property
    def steady_rss(self) -> float:
        return statistics.median(self.rss)


@dataclass
class Window:
    wall: float
    polls: int
    agent: Usage
    idle: Usage  # the same agent without devices
    bare: Usage  # python -c sleeping
    peak_rss: int  # VmHWM at the end: the largest RSS since the agent started
    startup_cpu: float  # CPU seconds from exec to the end of the warm-up


class _Meter:
    """Counters of one process from the start of the window."""

    def __init__(self, proc: Proc) -> None:
        self.pid = proc.pid
        self.cpu0 = process_cpu_seconds_exact(self.pid)
        self.ticks0 = process_cpu_seconds(self.pid)
        self.wakeups0 = process_wakeups(self.pid)
        self.rss: list[int] = []

    def sample(self) -> None:
        self.rss.append(process_rss_bytes(self.pid))

    def usage(self) -> Usage:
        return Usage(process_cpu_seconds_exact(self.pid) - self.cpu0,
                     process_cpu_seconds(self.pid) - self.ticks0, process_wakeups(self.pid) - self.wakeups0,
                     self.rss)


_FLOOR_SCRIPT = """
import importlib, json, pathlib, sys, time
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
steps = json.loads(sys.argv[1])
sizes = [["python", rss()]]
for name, modules in steps:
    for module in modules:
        importlib.import_module(module)
    sizes.append([name, rss()])
tmp = pathlib.Path(sys.argv[2] + ".tmp")
tmp.write_text(json.dumps(sizes))
tmp.replace(sys.argv[2])
time.sleep(120)
"""


def _floor_rss(workdir: Path) -> tuple[int, list[tuple[str, int]]]:
    """RSS of an idle interpreter that imported what ``hatang agent`` imports (the floor), and how much
    each step of FLOOR_STEPS added."""
    out = workdir / "floor.json"
    proc = Proc("python (floor)", [sys.executable, "-c", _FLOOR_SCRIPT, json.dumps(FLOOR_STEPS), str(out)],
                workdir / "floor.log").start()
    try:
        sizes: list[tuple[str, int]] = wait_for(lambda: json.loads(out.read_text()) if out.exists() else None,
                                                60, "the idle interpreter", [proc])
        time.sleep(0.5)
        floor = process_rss_bytes(proc.pid)
    finally:
        proc.stop()
    steps = [(sizes[0][0], sizes[0][1])]
    steps += [(name, size - previous) for (name, size), (_, previous) in zip(sizes[1:], sizes, strict=False)]
    return floor, steps


def _idle_agent_config(workdir: Path, mqtt_url: str) -> Path:
    """The same agent without devices: what it costs to be there (MQTT keep-alive, self-metrics)."""
    return write_yaml(workdir / "idle-agent.yaml", {
        "agent_id": IDLE_AGENT_ID, "site": SITE, "mqtt": {"url": mqtt_url},
        "buffer": {"path": str(workdir / "idle-buffer")}, "log_level": "info", "devices": [],
    })


def _agent_config(workdir: Path, mqtt_url: str, interval: float, endpoints: dict[str, tuple[str, int]],
                  server_port: int) -> Path:
    devices = [
        {"name": name, "address": host, "port": port, "interval": interval,
         "profiles": ["system", "interfaces"], "snmp": {"version": "2c", "community": "public"}}
        for name, (host, port) in endpoints.items()
    ]
    devices.append({"name": SERVER, "address": "127.0.0.1", "port": server_port, "interval": interval,
                    "profiles": ["system", "interfaces", "host"],
                    "snmp": {"version": "2c", "community": "public"}})
    return write_yaml(workdir / "agent.yaml", {
        "agent_id": AGENT_ID, "site": SITE, "mqtt": {"url": mqtt_url},
        "buffer": {"path": str(workdir / "buffer")}, "log_level": "info", "devices": devices,
    })


def _measure_agent(agent: Proc, idle: Proc, bare: Proc, counter: PollCounter, devices: int, interval: float,
                   intervals: int, watch: list[Proc]) -> Window:
    wait_for(lambda: len(counter.devices_seen()) >= devices or None, interval + 60,
             f"a first poll of all {devices} devices", watch, interval=0.2)
    time.sleep(SETTLE)
    startup_cpu = process_cpu_seconds_exact(agent.pid)
    meters = [_Meter(agent), _Meter(idle), _Meter(bare)]
    t0 = time.monotonic()
    end = t0 + intervals * interval
    while (now := time.monotonic()) < end:
        for proc in watch:
            proc.check()
        for meter in meters:
            meter.sample()
        time.sleep(min(1.0, max(0.0, end - now)))
    busy, quiet, bare_use = (meter.usage() for meter in meters)
    t1 = time.monotonic()
    peak = proc_status_kb(agent.pid, "VmHWM") * 1024
    return Window(t1 - t0, counter.between(t0, t1), busy, quiet, bare_use, peak, startup_cpu)


@dataclass
class Reference:
    per_poll: float  # CPU seconds per device poll, process starts included
    per_start: float  # CPU seconds of starting a net-snmp tool that sends one GET
    starts_per_poll: float  # tool processes per device poll
    varbinds: int  # per round over all devices

    @property
    def walking_per_poll(self) -> float:
        """CPU seconds per device poll with the process starts taken out: the C walking work."""
        return max(0.0, self.per_poll - self.starts_per_poll * self.per_start)


def _reference_cpu(targets: list[tuple[str, tuple[str, ...]]], env: dict[str, str]) -> Reference:
    """net-snmp's tools reading the same subtrees of the same devices, REFERENCE_ROUNDS times."""
    walk = require_binary("snmpbulkwalk", "snmp")
    get = require_binary("snmpget", "snmp")
    varbinds = 0
    before = children_cpu_seconds()
    for _ in range(REFERENCE_ROUNDS):
        varbinds = 0
        for address, subtrees in targets:
            for subtree in subtrees:
                out = subprocess.run([walk, "-v2c", "-c", "public", f"-Cr{MAX_REPETITIONS}", "-On", "-Oq",
                                      "-t", "2", "-r", "1", address, subtree],
                                     capture_output=True, text=True, env=env, timeout=60, check=True).stdout
                varbinds += sum(1 for line in out.splitlines() if line.startswith("."))
    per_poll = (children_cpu_seconds() - before) / (REFERENCE_ROUNDS * len(targets))
    starts = REFERENCE_ROUNDS * sum(len(subtrees) for _, subtrees in targets)
    before = children_cpu_seconds()
    for i in range(starts):
        address = targets[i % len(targets)][0]
        subprocess.run([get, "-v2c", "-c", "public", "-On", "-Oq", address, "1.3.6.1.2.1.1.3.0"],
                       capture_output=True, env=env, timeout=30, check=True)
    per_start = (children_cpu_seconds() - before) / starts
    return Reference(per_poll, per_start, starts / (REFERENCE_ROUNDS * len(targets)), varbinds)


def run(quick: bool = False, intervals: int = 3, smoke: bool = False) -> list[Result]:
    interval = 2.0 if smoke else 10.0 if quick else 60.0  # smoke: does it still run end to end?
    intervals = 1 if smoke else intervals
    mode = "quick: 10 s interval, " if quick else ""
    devices = len(SIM_DEVICES) + 1
    require(("mosquitto", "mosquitto"), ("snmpd", "snmpd"), ("snmpbulkwalk", "snmp"), ("snmpget", "snmp"))
    load = machine_load()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(bench_tmpdir("hatang-bench-footprint-")))
        floor, floor_steps = _floor_rss(tmp)
        broker = start_mosquitto(tmp / "mosquitto")
        stack.callback(broker.stop)
        sim, endpoints = start_simulator(tmp, SIM_DEVICES)
        stack.callback(sim.stop)
        snmpd = start_snmpd(tmp / "snmpd")
        stack.callback(snmpd.stop)
        counter = PollCounter(broker.host, broker.port, f"hatang/v1/agents/{AGENT_ID}/data/+").start()
        stack.callback(counter.stop)
        config = _agent_config(tmp, broker.url, interval, endpoints, snmpd.port)
        agent = Proc("agent", [*hatang_argv(), "agent", "-c", str(config)], tmp / "agent.log").start()
        stack.callback(agent.stop)
        idle_config = _idle_agent_config(tmp, broker.url)
        idle = Proc("agent (no devices)", [*hatang_argv(), "agent", "-c", str(idle_config)],
                    tmp / "idle-agent.log").start()
        stack.callback(idle.stop)
        bare = Proc("python (bare)", [sys.executable, "-c", "import time; time.sleep(3600)"],
                    tmp / "bare.log").start()
        stack.callback(bare.stop)
        window = _measure_agent(agent, idle, bare, counter, devices, interval, intervals, [agent, idle, sim])
        heavy = heavy_libraries(agent.pid)
        for proc in (agent, idle, bare):
            proc.stop()
            if "Traceback" in proc.log(1_000_000):
                raise BenchError(f"{proc.name} logged a traceback:\n{proc.log()}")
        env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp), SNMPCONFPATH=str(tmp))
        targets = [(f"{host}:{port}", SUBTREES["system"] + SUBTREES["interfaces"])
                   for host, port in endpoints.values()]
        targets.append((snmpd.address, SUBTREES["system"] + SUBTREES["interfaces"] + SUBTREES["host"]))
        ref = _reference_cpu(targets, env)
        buffer_fs = fs_type(tmp)

    if window.polls == 0:
        raise BenchError("no poll was published in the measurement window")
    busy, quiet, bare_use = window.agent, window.idle, window.bare
    steady = busy.steady_rss
    share = busy.cpu / window.wall * 100
    idle_share = quiet.cpu / window.wall * 100
    per_poll = busy.cpu / window.polls
    # the same polls at the goal's interval of 60 s, beside the idle cost
    projected = idle_share + max(0.0, busy.cpu - quiet.cpu) / window.polls * devices / 60.0 * 100
    setup = (f"{devices} devices ({len(SIM_DEVICES)} simulated router/switches of 4-24 ports + snmpd as the "
             f"server), interval {interval:g} s, window {window.wall:.0f} s = {intervals} intervals after a "
             f"warm-up, {window.polls} polls published in it; disk queue on {buffer_fs}; {load} at the start")
    parts = ", ".join(f"{name} {'+' if i else ''}{size / MB:.1f}"
                      for i, (name, size) in enumerate(floor_steps))
    floor_note = (f"reference: a bare python (python -c sleeping) in the same window; an idle python that "
                  f"imported what the agent imports ({parts} MB) has {floor / MB:.1f} MB, so agent - imports "
                  f"= {(steady - floor) / MB:.1f} MB is the agent's own state (SNMP engine and targets, "
                  f"queue, label caches, MQTT client, buffers); the agent without devices: "
                  f"{quiet.steady_rss / MB:.1f} MB; pydantic and PyYAML mapped by the agent: "
                  f"{', '.join(heavy) or 'none'}")
    extra_rss = {"rss_window_min_mb": min(busy.rss) / MB, "rss_window_max_mb": max(busy.rss) / MB,
                 "rss_window_start_mb": busy.rss[0] / MB, "rss_window_end_mb": busy.rss[-1] / MB,
                 "imports_floor_mb": floor / MB, "idle_agent_rss_mb": quiet.steady_rss / MB,
                 "heavy_libraries_mapped": heavy,
                 **{f"floor_{name.replace(' ', '_').replace(',', '')}_mb": size / MB
                    for name, size in floor_steps}}
    cpu_note = (f"quick mode polls 6x as often as the goal's 60 s, so this share is not the goal's; the same "
                f"polls every 60 s would cost {projected:.3f} % (idle share + per-poll CPU above idle x "
                f"{devices} / 60 s). " if quick else "")
    wake_note = (f"wake-ups (voluntary context switches) in the window: {busy.wakeups / window.wall:.2f}/s "
                 f"with {devices} devices, {quiet.wakeups / window.wall:.2f}/s without; CPU per wake-up "
                 f"{busy.cpu / max(busy.wakeups, 1) * 1e6:.0f} us and "
                 f"{quiet.cpu / max(quiet.wakeups, 1) * 1e6:.0f} us")
    ref_note = (f"reference: {len(targets)} devices x {REFERENCE_ROUNDS} rounds of one snmpbulkwalk "
                f"process per subtree (-Cr{MAX_REPETITIONS}), {ref.varbinds} varbinds per round for all "
                f"devices (a superset of the agent's columns): {ref.per_poll * 1000:.2f} CPU ms per device "
                f"poll, of which {ref.starts_per_poll:.1f} process starts x {ref.per_start * 1000:.2f} ms "
                "(an snmpget of one OID) are taken out to leave the walking work")
    return [
        Result(BENCHMARK, f"hatang agent, steady RSS ({mode}median over the window)", steady / MB, "MB",
               "bare python (python -c sleeping)", bare_use.steady_rss / MB, f"<= {GOAL_RSS_MB:g} MB",
               steady / MB <= GOAL_RSS_MB, f"{setup}. {floor_note}", extra_rss),
        Result(BENCHMARK, f"hatang agent, peak RSS ({mode}VmHWM since start)", window.peak_rss / MB, "MB",
               "bare python (python -c sleeping)", bare_use.steady_rss / MB, "", None,
               "VmHWM covers start-up and the first polls (label walks) as well as the window"),
        Result(BENCHMARK, f"hatang agent, CPU share ({mode}window)", share, "% of one core",
               "the same agent without devices (idle cost), same window", idle_share,
               f"<= {GOAL_CPU_PERCENT:g} % at 60 s", None if quick or smoke else share <= GOAL_CPU_PERCENT,
               f"{cpu_note}exact CPU seconds (schedstat) / wall seconds of the window (/proc/PID/stat, 10 ms "
               f"units: {busy.cpu_ticks / window.wall * 100:.3f} % and "
               f"{quiet.cpu_ticks / window.wall * 100:.3f} % idle); {wake_note}; start-up to the end of the "
               f"warm-up cost {window.startup_cpu:.2f} CPU s (not counted)",
               {"projected_share_at_60s_percent": projected, "agent_cpu_seconds": busy.cpu,
                "agent_cpu_seconds_proc_stat": busy.cpu_ticks, "idle_cpu_seconds": quiet.cpu,
                "idle_cpu_seconds_proc_stat": quiet.cpu_ticks, "window_seconds": window.wall,
                "startup_cpu_seconds": window.startup_cpu}),
        Result(BENCHMARK, f"hatang agent, wake-ups ({mode}window)", busy.wakeups / window.wall,
               "wake-ups / s",
               "the same agent without devices", quiet.wakeups / window.wall, "", None,
               "voluntary context switches of all the agent's threads / wall seconds",
               {"agent_cpu_us_per_wakeup": busy.cpu / max(busy.wakeups, 1) * 1e6,
                "idle_cpu_us_per_wakeup": quiet.cpu / max(quiet.wakeups, 1) * 1e6}),
        Result(BENCHMARK, "hatang agent, CPU per device poll" + (" (quick)" if quick else ""),
               per_poll * 1000, "CPU ms / poll", "snmpbulkwalk walking work (net-snmp, C), same subtrees",
               ref.walking_per_poll * 1000, "", None,
               "agent: all its CPU in the window / polls published (so it includes self-metrics, MQTT, the "
               f"queue's fsyncs, timers and idle wake-ups: {quiet.cpu / window.polls * 1000:.2f} ms per poll "
               f"is what the agent without devices spent in the same window). {ref_note}",
               {"reference_with_process_starts_ms": ref.per_poll * 1000,
                "reference_tool_start_ms": ref.per_start * 1000,
                "reference_varbinds_per_poll": ref.varbinds / len(targets)}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 s interval, 30 s window")
    parser.add_argument("--intervals", type=int, default=3, help="polling intervals in the window")
    args = parser.parse_args()
    print(table(run(quick=args.quick, intervals=args.intervals)))


if __name__ == "__main__":
    main()

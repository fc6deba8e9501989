"""Latency: trap received -> visible in /metrics, and poll finished -> visible. Goal: p99 under 1 s.

What runs, all on loopback and stopped by PID at the end: a real Mosquitto, two simulated devices
(hatang/sim, in a helper process), the real agent and the real collector (``hatang agent`` and
``hatang collector`` from the venv, as processes). The agent polls ``fast-router`` (on 127.0.0.2) every
second and ``trap-switch`` (on 127.0.0.1) every 60 s, and receives SNMPv2c traps on a free UDP port (with
the default ``repoll: true``: each trap also makes the agent poll ``trap-switch`` at once).

One loop in this process scrapes the collector's /metrics every ``SCRAPE_INTERVAL`` (one keep-alive
HTTP connection) and, one trap at a time with a random pause in between:

(a) trap: sends a linkDown trap (SNMPv2c, built in-process with hatang/sim/ber.py from 127.0.0.1) and
    times until ``hatang_trap_received_total{device="trap-switch"}`` has grown by one;
    latency = end of the first scrape showing it - send time.
(b) poll: whenever ``hatang_device_last_poll_timestamp_seconds{device="fast-router"}`` changes,
    latency = end of that scrape (wall clock) - (poll start + ``hatang_device_poll_duration_seconds``),
    i.e. poll finished -> visible (agent and collector share this machine's clock).

Both are upper bounds with the scrape loop's resolution (the period between scrapes, reported in the
notes). The "ingested" rows take, instead of the end of that scrape, the collector's own clock reading
``hatang_agent_last_seen_timestamp_seconds`` in it (set when the collector handled the agent's newest
message, which is also when the store changed): free of the scrape resolution.

Reference in the same run: the raw MQTT hop over the same broker, an aiomqtt client publishing with QoS 1
(as the agent does) and a bare aiomqtt subscriber with QoS 1 (as the collector does), timed from the
publish call to the subscriber's receipt. hatang / reference says how much the agent (trap decoding,
durable queue with fsync, uplink), the collector (decoding, store) and the scrape add over the broker.

    python -m benchmarks.latency [--quick] [--traps N] [--polls N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import random
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from benchmarks._proc import (
    BenchError,
    Proc,
    SimDevice,
    bench_tmpdir,
    fs_type,
    hatang_argv,
    machine_load,
    percentile,
    require,
    start_simulator,
    wait_for,
    write_yaml,
)
from benchmarks.common import Result, process_cpu_seconds, table
from hatang.sim.ber import OID, encode_message, integer, make_trap_v2
from tests.support.services import free_tcp_port, free_udp_port, start_mosquitto

BENCHMARK = "5. Latency"
AGENT_ID = "xa-dai-dinh"
SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}
TRAP_DEVICE = "trap-switch"
POLL_DEVICE = "fast-router"
POLL_INTERVAL = 1.0
COMMUNITY = "bench-traps"
LINK_DOWN: OID = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
IF_INDEX_2: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 2)
IF_OPER_STATUS_2: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 2)
SCRAPE_INTERVAL = 0.005  # seconds from the start of one scrape to the start of the next
TRAP_PAUSE = (0.2, 1.6)  # seconds between a trap becoming visible and the next one (uniform)
TRAP_TIMEOUT = 10.0  # a trap not visible by then counts as lost
HOP_PAYLOAD = 800  # bytes: about the size of a trap message on the wire
GOAL_MS = 1000.0


def trap_datagram(request_id: int, uptime_ticks: int) -> bytes:
    message = make_trap_v2(COMMUNITY.encode(), request_id, uptime_ticks, LINK_DOWN,
                           ((IF_INDEX_2, integer(2)), (IF_OPER_STATUS_2, integer(2))))
    return encode_message(message)


class Scraper:
    """GET /metrics over one keep-alive connection (reconnecting when the server closed it)."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._conn = http.client.HTTPConnection(host, port, timeout=5)

    def get(self) -> str:
        for attempt in range(2):
            try:
                self._conn.request("GET", "/metrics")
                response = self._conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise BenchError(f"/metrics answered {response.status}")
                return body.decode("utf-8")
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=5)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


def sample(text: str, name: str, *needles: str) -> float | None:
    """The value of the first sample line of ``name`` that contains every needle (label pairs)."""
    prefix = name + "{"
    for line in text.splitlines():
        if line.startswith(prefix) and all(n in line for n in needles):
            return float(line.rsplit(" ", 1)[1])
    return None


@dataclass
class View:
    traps: float  # hatang_trap_received_total of the trap device (0 before the first)
    trap_ts: float | None  # hatang_trap_last_timestamp_seconds: the agent's receive time
    poll_ts: float | None
    poll_duration: float | None
    up: bool
    last_seen: float | None  # hatang_agent_last_seen_timestamp_seconds: collector time of the newest message


def view(text: str) -> View:
    trap = (f'device="{TRAP_DEVICE}"', 'trap="linkDown"')
    poll = (f'device="{POLL_DEVICE}"',)
    return View(
        sample(text, "hatang_trap_received_total", *trap) or 0.0,
        sample(text, "hatang_trap_last_timestamp_seconds", *trap),
        sample(text, "hatang_device_last_poll_timestamp_seconds", *poll),
        sample(text, "hatang_device_poll_duration_seconds", *poll),
        sample(text, "hatang_device_up", *poll) == 1 and sample(text, "hatang_device_up",
                                                                f'device="{TRAP_DEVICE}"') == 1,
        sample(text, "hatang_agent_last_seen_timestamp_seconds", f'agent="{AGENT_ID}"'),
    )


@dataclass
class Measurement:
    trap_ms: list[float] = field(default_factory=list)  # sent -> end of the first scrape showing it
    trap_low_ms: list[float] = field(default_factory=list)  # sent -> start of the last scrape not showing it
    trap_agent_ms: list[float] = field(default_factory=list)  # agent received -> visible (wall clocks)
    trap_ingest_ms: list[float] = field(default_factory=list)  # sent -> ingested by the collector (bound)
    poll_ingest_ms: list[float] = field(default_factory=list)  # finished -> ingested by the collector (bound)
    poll_ms: list[float] = field(default_factory=list)  # poll finished -> end of the first scrape showing it
    poll_low_ms: list[float] = field(default_factory=list)  # ... -> start of the last scrape not showing it
    poll_durations: list[float] = field(default_factory=list)
    trap_at: list[float] = field(default_factory=list)  # seconds since the loop started, per trap sample
    poll_at: list[float] = field(default_factory=list)
    scrape_ms: list[float] = field(default_factory=list)  # one GET /metrics, request to last byte
    cycles: int = 0
    lost: int = 0
    wall: float = 0.0
    collector_cpu: float = 0.0
    agent_cpu: float = 0.0
    cold_trap_ms: float = 0.0


class TrapSender:
    def __init__(self, port: int) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))  # the source address the agent maps to trap-switch
        self._sock.connect(("127.0.0.1", port))
        self._request_id = random.randrange(1, 1 << 30)
        self._started = time.monotonic()

    def send(self) -> tuple[float, float]:
        """Send one trap; return (perf_counter, wall clock) just before the send."""
        self._request_id += 1
        data = trap_datagram(self._request_id, int((time.monotonic() - self._started) * 100))
        sent, wall = time.perf_counter(), time.time()
        self._sock.send(data)
        return sent, wall

    def close(self) -> None:
        self._sock.close()


def slowest(values: list[float], at: list[float], n: int = 3) -> str:
    """The ``n`` largest values with when they happened, e.g. '280 ms at 12.3 s'."""
    top = sorted(zip(values, at, strict=True), reverse=True)[:n]
    return ", ".join(f"{v:.0f} ms at {t:.1f} s" for v, t in top)


def _measure(scraper: Scraper, sender: TrapSender, traps: int, polls: int,
             check: Callable[[], None], cpu: Callable[[], tuple[float, float]]) -> Measurement:
    m = Measurement()
    # A first, cold trap: its path (pysnmp's receiver, the events topic) runs for the first time.
    before = view(scraper.get()).traps
    sent, _ = sender.send()
    wait_for(lambda: view(scraper.get()).traps > before or None, TRAP_TIMEOUT, "the first trap in /metrics",
             interval=SCRAPE_INTERVAL)
    m.cold_trap_ms = (time.perf_counter() - sent) * 1000
    time.sleep(1.0)

    current = view(scraper.get())
    count, last_poll = current.traps, current.poll_ts
    pending: float | None = None  # send time of the trap in flight
    pending_wall = 0.0
    not_yet = 0.0  # start of the last scrape that did not show the pending trap
    previous_request_wall = time.time()
    sent_count = 0
    next_trap = time.perf_counter() + random.uniform(*TRAP_PAUSE)
    deadline = time.perf_counter() + polls * POLL_INTERVAL * 3 + traps * (TRAP_PAUSE[1] + 1) + 60
    collector0, agent0 = cpu()
    t_start = time.perf_counter()
    while sent_count < traps or pending is not None or len(m.poll_ms) < polls:
        start = time.perf_counter()
        if start > deadline:
            raise BenchError(f"the measurement did not finish: {len(m.trap_ms)}/{traps} traps, "
                             f"{len(m.poll_ms)}/{polls} polls seen")
        if m.cycles % 200 == 0:
            check()
        if pending is None and sent_count < traps and start >= next_trap:
            pending, pending_wall = sender.send()
            not_yet = pending
            sent_count += 1
        t_request, request_wall = time.perf_counter(), time.time()
        text = scraper.get()
        seen, seen_wall = time.perf_counter(), time.time()
        m.cycles += 1
        m.scrape_ms.append((seen - t_request) * 1000)
        now = view(text)
        if pending is not None:
            if now.traps >= count + 1:
                m.trap_ms.append((seen - pending) * 1000)
                m.trap_low_ms.append((not_yet - pending) * 1000)
                m.trap_at.append(pending - t_start)
                m.trap_ingest_ms.append((min(seen_wall, now.last_seen or seen_wall) - pending_wall) * 1000)
                if now.trap_ts is not None:
                    m.trap_agent_ms.append((seen_wall - now.trap_ts) * 1000)
                count, pending = now.traps, None
                next_trap = seen + random.uniform(*TRAP_PAUSE)
            elif seen - pending > TRAP_TIMEOUT:
                m.lost += 1
                count, pending = now.traps, None
                next_trap = seen + random.uniform(*TRAP_PAUSE)
            else:
                not_yet = t_request
        if now.poll_ts is not None and now.poll_duration is not None and now.poll_ts != last_poll:
            if last_poll is None or now.poll_ts > last_poll:
                finished = now.poll_ts + now.poll_duration
                m.poll_ms.append((seen_wall - finished) * 1000)
                m.poll_low_ms.append(max(0.0, previous_request_wall - finished) * 1000)
                m.poll_ingest_ms.append((min(seen_wall, now.last_seen or seen_wall) - finished) * 1000)
                m.poll_durations.append(now.poll_duration)
                m.poll_at.append(seen - t_start)
            last_poll = now.poll_ts
        previous_request_wall = request_wall
        time.sleep(max(0.0, start + SCRAPE_INTERVAL - time.perf_counter()))
    m.wall = time.perf_counter() - t_start
    collector1, agent1 = cpu()
    m.collector_cpu, m.agent_cpu = collector1 - collector0, agent1 - agent0
    return m


async def _mqtt_hop(host: str, port: int, count: int) -> list[float]:
    """Milliseconds from an aiomqtt QoS 1 publish call to a bare QoS 1 subscriber's receipt, one at a time."""
    topic = f"bench/hop/{os.getpid()}"
    latencies: list[float] = []
    received: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    async with (aiomqtt.Client(host, port, identifier=f"bench-hop-sub-{os.getpid()}") as sub,
                aiomqtt.Client(host, port, identifier=f"bench-hop-pub-{os.getpid()}") as pub):
        await sub.subscribe(topic, qos=1)

        async def reader() -> None:
            async for message in sub.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    received.put_nowait((int(payload[:8]), time.perf_counter()))

        task = asyncio.create_task(reader())
        try:
            await asyncio.sleep(0.2)
            for i in range(count + 1):  # the first one warms up and is not counted
                payload = f"{i:08d}".encode() + b"x" * (HOP_PAYLOAD - 8)
                t0 = time.perf_counter()
                await pub.publish(topic, payload, qos=1)
                while True:
                    index, t1 = await asyncio.wait_for(received.get(), TRAP_TIMEOUT)
                    if index == i:
                        break
                if i:
                    latencies.append((t1 - t0) * 1000)
                await asyncio.sleep(random.uniform(0.01, 0.05))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return latencies


def run(quick: bool = False, traps: int | None = None, polls: int | None = None,
        smoke: bool = False) -> list[Result]:
    traps = traps if traps is not None else (5 if smoke else 30 if quick else 200)
    polls = polls if polls is not None else (5 if smoke else 30 if quick else 200)
    mode = " (quick)" if quick else ""
    require(("mosquitto", "mosquitto"))
    load = machine_load()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(bench_tmpdir("hatang-bench-latency-")))
        broker = start_mosquitto(tmp / "mosquitto")
        stack.callback(broker.stop)
        sim, endpoints = start_simulator(tmp, [
            SimDevice(TRAP_DEVICE, ports=8, seed=1, host="127.0.0.1"),
            SimDevice(POLL_DEVICE, kind="router", seed=2, host="127.0.0.2"),
        ])
        stack.callback(sim.stop)
        http_port = free_tcp_port()
        listen = f"127.0.0.1:{http_port}"
        collector_config = write_yaml(tmp / "collector.yaml", {"mqtt": {"url": broker.url}, "listen": listen})
        collector = Proc("collector", [*hatang_argv(), "collector", "-c", str(collector_config)],
                         tmp / "collector.log").start()
        stack.callback(collector.stop)
        trap_port = free_udp_port()
        devices = [
            {"name": TRAP_DEVICE, "address": endpoints[TRAP_DEVICE][0], "port": endpoints[TRAP_DEVICE][1],
             "interval": 60, "snmp": {"timeout": 1.0, "retries": 1}},
            {"name": POLL_DEVICE, "address": endpoints[POLL_DEVICE][0], "port": endpoints[POLL_DEVICE][1],
             "interval": POLL_INTERVAL, "snmp": {"timeout": 0.5, "retries": 0}},
        ]
        agent_config = write_yaml(tmp / "agent.yaml", {
            "agent_id": AGENT_ID, "site": SITE, "mqtt": {"url": broker.url},
            "buffer": {"path": str(tmp / "buffer")}, "devices": devices,
            "traps": {"listen": f"127.0.0.1:{trap_port}", "communities": [COMMUNITY]},
        })
        agent = Proc("agent", [*hatang_argv(), "agent", "-c", str(agent_config)], tmp / "agent.log").start()
        stack.callback(agent.stop)
        procs = [agent, collector, sim]
        scraper = Scraper("127.0.0.1", http_port)
        stack.callback(scraper.close)

        def ready() -> bool:
            try:
                return view(scraper.get()).up and "receiving SNMP traps" in agent.log(1_000_000)
            except (OSError, http.client.HTTPException, BenchError):
                return False

        wait_for(ready, 60, "both devices up in /metrics and the trap receiver", procs, interval=0.2)
        sender = TrapSender(trap_port)
        stack.callback(sender.close)

        def check() -> None:
            for proc in procs:
                proc.check()

        m = _measure(scraper, sender, traps, polls, check,
                     lambda: (process_cpu_seconds(collector.pid), process_cpu_seconds(agent.pid)))
        hop = asyncio.run(_mqtt_hop(broker.host, broker.port, traps))
        buffer_fs = fs_type(tmp)
        for proc in (agent, collector):
            proc.stop()
            if "Traceback" in proc.log(1_000_000):
                raise BenchError(f"the {proc.name} logged a traceback:\n{proc.log()}")

    if not m.trap_ms or not m.poll_ms:
        raise BenchError("no latency sample")
    period = m.wall / m.cycles * 1000
    scrape_p50, scrape_p99 = statistics.median(m.scrape_ms), percentile(m.scrape_ms, 99)
    collector_share, agent_share = m.collector_cpu / m.wall * 100, m.agent_cpu / m.wall * 100
    resolution = (f"Scrape loop: one GET /metrics every {period:.1f} ms on average (target "
                  f"{SCRAPE_INTERVAL * 1000:g} ms; a scrape takes {scrape_p50:.1f} ms median, "
                  f"{scrape_p99:.1f} ms p99), the resolution of the 'visible' rows, which are upper bounds "
                  f"(end of the first scrape showing it; lower bounds, start of the last scrape not showing "
                  f"it, in extra); scraping this often costs the collector {collector_share:.0f} % of a core "
                  f"(agent: {agent_share:.0f} %)")
    hop_ref = "raw MQTT hop (aiomqtt QoS 1 pub -> bare sub, same broker)"
    pause = f"{TRAP_PAUSE[0]:g}-{TRAP_PAUSE[1]:g} s"
    trap_note = (f"{len(m.trap_ms)} linkDown traps (SNMPv2c, one at a time, {pause} apart; each also "
                 f"triggers a re-poll of {TRAP_DEVICE}), {m.lost} lost; the first (cold) trap took "
                 f"{m.cold_trap_ms:.1f} ms and is not counted. Agent received -> visible (wall clocks, from "
                 f"hatang_trap_last_timestamp_seconds): p50 {percentile(m.trap_agent_ms, 50):.1f} ms, p99 "
                 f"{percentile(m.trap_agent_ms, 99):.1f} ms. Slowest: {slowest(m.trap_ms, m.trap_at)} "
                 f"(since the loop started). Disk queue on {buffer_fs}; {load} at the start. {resolution}")
    ingest_note = ("'ingested' = hatang_agent_last_seen_timestamp_seconds in that first scrape (the "
                   "collector's clock when it handled the agent's newest message; the store is updated as "
                   "it is handled, so that is when it became visible) - send time (or poll end): free of the "
                   "scrape loop's resolution; still an upper bound if another message of the agent (a "
                   "re-poll) was handled after it and before the scrape")
    poll_note = (f"{len(m.poll_ms)} polls of {POLL_DEVICE} (every {POLL_INTERVAL:g} s, poll duration p50 "
                 f"{statistics.median(m.poll_durations) * 1000:.1f} ms); latency = end of the first scrape "
                 "showing the new hatang_device_last_poll_timestamp_seconds - (that value + "
                 f"hatang_device_poll_duration_seconds). Slowest: {slowest(m.poll_ms, m.poll_at)}")
    hop_note = (f"reference: {len(hop)} messages of {HOP_PAYLOAD} B, one at a time, publish call -> receipt, "
                "measured after the loop with the agent and collector still running; it has no scrape, so "
                "the ratio of the 'visible' rows includes the scrape loop's resolution")

    def row(subject: str, values: list[float], q: int | None, notes: str = "",
            lows: list[float] | None = None) -> Result:
        value = max(values) if q is None else percentile(values, q)
        ref = max(hop) if q is None else percentile(hop, q)
        goal = q == 99
        stat = "max" if q is None else f"p{q}"
        extra = {"samples": float(len(values)), "mean_ms": statistics.fmean(values),
                 "scrape_period_ms": period}
        if lows is not None:
            extra["lower_bound_ms"] = max(lows) if q is None else percentile(lows, q)
        return Result(BENCHMARK, f"{subject}, {stat}{mode}", value, "ms", hop_ref, ref,
                      f"< {GOAL_MS:g} ms" if goal else "", (value < GOAL_MS) if goal else None, notes, extra)

    trap, poll = "trap sent -> visible in /metrics", "poll finished -> visible in /metrics"
    trap_in, poll_in = "trap sent -> ingested by the collector", "poll finished -> ingested by the collector"
    return [
        row(trap, m.trap_ms, 50, trap_note, m.trap_low_ms),
        row(trap, m.trap_ms, 99, hop_note, m.trap_low_ms),
        row(trap, m.trap_ms, None, "", m.trap_low_ms),
        row(trap_in, m.trap_ingest_ms, 50, ingest_note),
        row(trap_in, m.trap_ingest_ms, 99),
        row(poll, m.poll_ms, 50, poll_note, m.poll_low_ms),
        row(poll, m.poll_ms, 99, "", m.poll_low_ms),
        row(poll, m.poll_ms, None, "", m.poll_low_ms),
        row(poll_in, m.poll_ingest_ms, 50),
        row(poll_in, m.poll_ingest_ms, 99),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Latency: trap -> /metrics and poll -> /metrics")
    parser.add_argument("--quick", action="store_true", help="30 traps and 30 polls instead of 200 each")
    parser.add_argument("--traps", type=int, default=None)
    parser.add_argument("--polls", type=int, default=None)
    args = parser.parse_args()
    print(table(run(quick=args.quick, traps=args.traps, polls=args.polls)))


if __name__ == "__main__":
    main()

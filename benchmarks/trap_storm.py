"""Trap storm: SNMPv2c linkDown/linkUp traps at a fixed rate into one agent receiver on one core.

Goal (issue #19, 4): >= 5,000 v2c traps/s decoded and published by one agent on one core, none lost, and
the kernel counts no UDP receive-buffer drops (``UdpRcvbufErrors`` in /proc/net/snmp).

What runs, all on loopback, every process stopped by PID at the end:

* the **sender** (``--send``, a process of its own pinned with ``taskset`` to core 0): pre-encoded v2c
  linkDown/linkUp traps (hatang/sim/ber.py; ifIndex 1-48, alternating) blasted at ``rate`` per second in
  1 ms slices, from 127.0.0.1;
* the **receiver** (``--receive``, pinned to core 1): the agent's trap path as agent/service.py runs it,
  in one asyncio loop: :class:`agent.snmp.traps.TrapReceiver` (decode, community check, TrapEvent), then
  per event what ``AgentService.on_trap`` does (a ``TrapMessage``, ``encode_trap``, the agent's
  ``QueueWriter`` batching traps into ``DiskQueue.append_many`` with fsync, ``Uplink.notify``) and the
  real :class:`agent.uplink.Uplink` publishing the queue to a Mosquitto (QoS 1, one message per trap,
  batches pipelined, as shipped). It counts traps received (decoded into events),
  queued and published (PUBACKed), its own CPU seconds, and its socket's drops (/proc/net/udp);
* Mosquitto, pinned to core 0 with the sender.

Rows: the receiver's rate (traps decoded and queued per second of the storm) with the lost count
(sent - received) and the UdpRcvbufErrors delta, and the published rate (until the last PUBACK); the
stages apart (receiver only: decode + TrapEvent, no queue and no MQTT) to show where the time goes.

References in the same run, the same storm: Debian ``snmptrapd`` (``-f -Lf /dev/null``,
``disableAuthorization yes``, pinned to core 1): its CPU and its socket's drops; and the receiver's pysnmp
path (a TrapReceiver subclass that sends every datagram to pysnmp, as before the fast path) on a shorter
storm (it handles a few hundred traps per second): traps per CPU second.

SNMPv3 rows (in process, no socket): the storm's traps as authPriv SNMPv3 traps (SHA-256/AES-128,
SHA-512/AES-256) fed to the receiver's v3 side, our USM (agent.snmp.trap_v3) beside pysnmp's, CPU per trap.

    python -m benchmarks.trap_storm [--quick] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks._proc import REPO, BenchError, bench_tmpdir, fs_type, machine_load, require
from benchmarks.common import Result, process_cpu_seconds, table

BENCHMARK = "9. Trap storm"
COMMUNITY = "bench-storm"
GOAL_RATE = 5000.0
SENDER_CORE, RECEIVER_CORE = 0, 1
LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
# receiver: whole trap path / without the uplink / TrapReceiver only / pysnmp path only
MODES = ("full", "queue", "decode", "pysnmp")


# ------------------------------------------------------------------------------ kernel counters


def udp_rcvbuf_errors() -> int:
    """UdpRcvbufErrors of /proc/net/snmp (system-wide: other programs' drops count too)."""
    text = Path("/proc/net/snmp").read_text()
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def socket_drops(port: int) -> int:
    """The drops column of /proc/net/udp for the socket bound to 127.0.0.1:``port``."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}"):
            return int(fields[-1])
    return 0


# ------------------------------------------------------------------------------ sender


def _datagrams(count: int = 96) -> list[bytes]:
    from hatang.sim.ber import encode_message, integer, make_trap_v2, octets

    out = []
    for i in range(count):
        index = i % 48 + 1
        trap = LINK_DOWN if i // 48 % 2 == 0 else LINK_UP
        out.append(encode_message(make_trap_v2(COMMUNITY.encode(), 1000 + i, 100 + i, trap, (
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, index), integer(index)),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 7, index), integer(1)),
            ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, index), integer(2 if trap == LINK_DOWN else 1)),
            ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, index), octets(f"uplink Gi1/0/{index}".encode())),
        ))))
    return out


def send(port: int, rate: float, count: int) -> dict[str, float]:
    """Send ``count`` traps at ``rate`` per second (1 ms slices); return what was sent and how fast."""
    datagrams = _datagrams()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sent = errors = 0
        start = time.perf_counter()
        while sent < count:
            due = min(count, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                try:
                    sock.send(datagrams[sent % len(datagrams)])
                except OSError:
                    errors += 1
                sent += 1
            pause = start + sent / rate - time.perf_counter()
            if pause > 0:
                time.sleep(min(pause, 0.001))
        elapsed = time.perf_counter() - start
    return {"sent": float(sent), "errors": float(errors), "seconds": elapsed, "rate": sent / elapsed}


# ------------------------------------------------------------------------------ receiver (agent side)


async def receive(mode: str, broker_port: int, buffer: Path) -> None:
    """The receiver process: print READY <port>, then on a line on stdin, wait until quiet and report."""
    from agent.queue import DiskQueue
    from agent.queue_writer import QueueWriter
    from agent.snmp.trap_events import TrapEvent
    from agent.snmp.traps import TrapReceiver
    from agent.uplink import EVENTS_CHANNEL, Uplink, UplinkSettings
    from wire.codec import encode_trap
    from wire.messages import TrapMessage

    class PysnmpReceiver(TrapReceiver):
        fast_versions = frozenset()

    queue = DiskQueue(buffer, max_bytes=1 << 30, max_age=86400) if mode in ("full", "queue") else None
    uplink = None
    if mode == "full" and queue is not None:
        uplink = Uplink(UplinkSettings(url=f"mqtt://127.0.0.1:{broker_port}", client_id="bench-trap-storm",
                                       protocol="5"), "bench-storm", queue, birth=lambda: b"{}", will=b"{}")
    writer = QueueWriter(queue, uplink.notify if uplink is not None else lambda: None) if queue else None
    boot_id, seq = uuid.uuid4().hex, 0
    counts = {"queued": 0}
    first_last = [0.0, 0.0]

    def on_trap(event: TrapEvent) -> None:
        nonlocal seq
        now = time.perf_counter()
        first_last[0] = first_last[0] or now
        first_last[1] = now
        if writer is None:
            return
        seq += 1
        message = TrapMessage(agent="bench-storm", boot_id=boot_id, seq=seq, ts=event.ts, device="unknown",
                              source=event.source, version=event.version, trap_oid=event.trap_oid,
                              trap_name=event.trap_name, if_index=event.if_index, uptime=event.uptime,
                              varbinds=event.varbinds, site=())
        writer.append_batched(EVENTS_CHANNEL, encode_trap(message), live_for=60.0)  # as on_trap does
        counts["queued"] += 1

    kind = PysnmpReceiver if mode == "pysnmp" else TrapReceiver
    receiver = kind(("127.0.0.1", 0), [COMMUNITY], [], on_trap)
    await receiver.start()
    port = receiver.bound[1]
    tasks = [asyncio.create_task(uplink.run())] if uplink is not None else []
    published_at = [0.0]
    base = 0
    if uplink is not None:  # wait until connected (the birth is published)
        deadline = time.monotonic() + 20
        while uplink.state != "connected":
            if time.monotonic() > deadline:
                raise SystemExit(f"the uplink did not connect: {uplink.state}")
            await asyncio.sleep(0.05)
    print(f"READY {port} {receiver.receive_buffer}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # the sender is done
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 1.0:  # until nothing arrives or is published for 1 s
        done = receiver.received + (uplink.published if uplink is not None else 0)
        if done != last:
            last, quiet_since = done, time.monotonic()
            if uplink is not None:
                published_at[0] = time.perf_counter()
        await asyncio.sleep(0.05)
    if writer is not None and queue is not None:
        writer.flush()
        counts["queued"] -= queue.stats().dropped_full
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "received": receiver.received, "rejected": receiver.rejected, "datagrams": receiver.datagrams,
        "queued": counts["queued"], "published": (uplink.published - base) if uplink is not None else 0,
        "first": first_last[0], "last": first_last[1], "published_at": published_at[0],
        "cpu": usage.ru_utime + usage.ru_stime, "drops": socket_drops(port),
    }
    receiver.close()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if queue is not None:
        queue.close()
    print("REPORT " + json.dumps(report), flush=True)


# ------------------------------------------------------------------------------ orchestration


def _python(*args: str, core: int) -> list[str]:
    return ["taskset", "-c", str(core), sys.executable, "-m", "benchmarks.trap_storm", *args]


def _run_sender(port: int, rate: float, count: int) -> dict[str, float]:
    out = subprocess.run(_python("--send", str(port), str(rate), str(count), core=SENDER_CORE), cwd=REPO,
                         capture_output=True, text=True, timeout=count / rate * 3 + 30, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def storm_receiver(mode: str, rate: float, count: int, tmp: Path, broker_port: int) -> dict[str, float]:
    buffer = tmp / f"buffer-{mode}"
    proc = subprocess.Popen(_python("--receive", mode, str(broker_port), str(buffer), core=RECEIVER_CORE),
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        ready = proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise BenchError(f"the {mode} receiver did not start")
        port, granted = int(ready[1]), int(ready[2])
        errors0 = udp_rcvbuf_errors()
        cpu0 = process_cpu_seconds(proc.pid)
        sender = _run_sender(port, rate, count)
        proc.stdin.write("done\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line.startswith("REPORT "):
            raise BenchError(f"the {mode} receiver failed: {line!r}")
        report: dict[str, float] = json.loads(line[len("REPORT "):])
        report.update(sender)
        report["rcvbuf_errors"] = float(udp_rcvbuf_errors() - errors0)
        report["cpu_storm"] = report["cpu"] - cpu0
        report["buffer"] = float(granted)
        proc.wait(timeout=30)
        return report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def storm_snmptrapd(rate: float, count: int, tmp: Path) -> dict[str, float]:
    from tests.support.services import free_udp_port

    binary = "/usr/sbin/snmptrapd"
    conf = tmp / "snmptrapd.conf"
    conf.write_text("disableAuthorization yes\ndoNotLogTraps no\n")
    port = free_udp_port()
    state = tmp / "snmptrapd-state"
    state.mkdir(exist_ok=True)
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(state), SNMPCONFPATH=str(state))
    proc = subprocess.Popen(["taskset", "-c", str(RECEIVER_CORE), binary, "-f", "-Lf", "/dev/null", "-C",
                             "-c", str(conf), "-M", "/dev/null", f"udp:127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not any(f":{port:04X}" in line for line in Path("/proc/net/udp").read_text().splitlines()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BenchError("snmptrapd did not start")
            time.sleep(0.05)
        errors0, cpu0 = udp_rcvbuf_errors(), process_cpu_seconds(proc.pid)
        sender = _run_sender(port, rate, count)
        time.sleep(1.0)  # let it read what is queued in its socket
        report = dict(sender)
        report["cpu_storm"] = process_cpu_seconds(proc.pid) - cpu0
        report["drops"] = float(socket_drops(port))
        report["rcvbuf_errors"] = float(udp_rcvbuf_errors() - errors0)
        return report
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(quick: bool = False, rate: float = GOAL_RATE, seconds: float | None = None,
        smoke: bool = False) -> list[Result]:
    require(("mosquitto", "mosquitto"), ("snmptrapd", "snmptrapd"), ("taskset", "util-linux"))
    if (os.cpu_count() or 1) < 2:
        raise BenchError("needs two cores (sender and receiver pinned apart)")
    seconds = seconds if seconds is not None else (0.4 if smoke else 3.0 if quick else 10.0)
    count = int(rate * seconds)
    pysnmp_count = int(rate * (0.04 if smoke else 0.4 if quick else 1.0))
    quick = quick or smoke
    mode = " (quick)" if quick else ""
    load = machine_load()
    from tests.support.services import start_mosquitto

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(bench_tmpdir("hatang-bench-traps-")))
        broker = start_mosquitto(tmp / "mosquitto", extra_config="set_tcp_nodelay true")  # as shipped
        stack.callback(broker.stop)
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(broker.pid, {SENDER_CORE})
        full = storm_receiver("full", rate, count, tmp, broker.port)
        queued = storm_receiver("queue", rate, count, tmp, broker.port)
        decode = storm_receiver("decode", rate, count, tmp, broker.port)
        trapd = storm_snmptrapd(rate, count, tmp)
        pysnmp = storm_receiver("pysnmp", rate, pysnmp_count, tmp, broker.port)
        buffer_fs = fs_type(tmp)

    def lost(r: dict[str, float]) -> int:
        return int(r["sent"] - r["received"])

    def storm_rate(r: dict[str, float]) -> float:  # received per second, first to last trap
        span = max(r["last"] - r["first"], 1e-9)
        return r["received"] / max(span, r["seconds"])

    published_span = max(full["published_at"] - full["first"], full["seconds"])
    published_rate = full["published"] / published_span
    trapd_cpu_per_trap = trapd["cpu_storm"] / trapd["sent"] * 1e6
    met = (storm_rate(full) >= GOAL_RATE * 0.98 and lost(full) == 0 and full["rcvbuf_errors"] == 0
           and full["published"] == full["sent"] and published_rate >= GOAL_RATE * 0.98)
    common = (f"{int(full['sent'])} v2c linkDown/linkUp traps at {full['rate']:,.0f}/s for "
              f"{full['seconds']:.1f} s, sender pinned to core {SENDER_CORE}, receiver to core "
              f"{RECEIVER_CORE} "
              f"(SO_RCVBUF granted {int(full['buffer']) // 1024} KiB); disk queue on {buffer_fs}; {load}")
    ref_trapd = "snmptrapd (net-snmp, -Lf /dev/null), same storm"
    trapd_note = (f"snmptrapd: {trapd_cpu_per_trap:.1f} µs CPU per trap, {int(trapd['drops'])} dropped "
                  f"on its socket, UdpRcvbufErrors +{int(trapd['rcvbuf_errors'])}")

    def cpu_per_trap(r: dict[str, float]) -> float:
        return r["cpu_storm"] / max(r["received"], 1) * 1e6

    return [
        Result(BENCHMARK, f"agent trap path: decoded + queued (fsync) per second{mode}", storm_rate(full),
               "traps/s", ref_trapd, trapd["sent"] / trapd["seconds"], f">= {GOAL_RATE:,.0f}/s, 0 lost, "
               "0 UdpRcvbufErrors", met,
               f"{common}. Lost {lost(full)}, socket drops {int(full['drops'])}, UdpRcvbufErrors "
               f"+{int(full['rcvbuf_errors'])}; {cpu_per_trap(full):.1f} µs receiver CPU per trap (incl. "
               f"uplink). {trapd_note}",
               {"lost": float(lost(full)), "rcvbuf_errors": full["rcvbuf_errors"], "drops": full["drops"],
                "cpu_us_per_trap": cpu_per_trap(full)}),
        Result(BENCHMARK, f"agent trap path: published (PUBACKed, QoS 1){mode}", published_rate, "traps/s",
               ref_trapd, trapd["sent"] / trapd["seconds"], "", None,
               f"{int(full['published'])} of {int(full['sent'])} published; the last PUBACK "
               f"{max(0.0, full['published_at'] - full['last']):.1f} s after the last trap was queued",
               {"published": full["published"]}),
        Result(BENCHMARK, f"without the uplink: decoded + queued (fsync) per second{mode}",
               storm_rate(queued), "traps/s", ref_trapd, trapd["sent"] / trapd["seconds"], "", None,
               f"TrapReceiver, TrapMessage, encode_trap, QueueWriter (batched appends); lost {lost(queued)}, "
               f"socket drops "
               f"{int(queued['drops'])}, UdpRcvbufErrors +{int(queued['rcvbuf_errors'])}, "
               f"{cpu_per_trap(queued):.1f} µs CPU per trap",
               {"lost": float(lost(queued)), "cpu_us_per_trap": cpu_per_trap(queued)}),
        Result(BENCHMARK, f"receiver only (decode + TrapEvent), CPU per trap{mode}", cpu_per_trap(decode),
               "µs CPU per trap", "snmptrapd, same storm", trapd_cpu_per_trap, "", None,
               f"{storm_rate(decode):,.0f} traps/s received, lost {lost(decode)}, socket drops "
               f"{int(decode['drops'])}, UdpRcvbufErrors +{int(decode['rcvbuf_errors'])}",
               {"lost": float(lost(decode)), "rate": storm_rate(decode)}),
        Result(BENCHMARK, f"pysnmp path (before), CPU per trap{mode}", cpu_per_trap(pysnmp),
               "µs CPU per trap",
               "receiver only (fast path), same run", cpu_per_trap(decode), "", None,
               f"{int(pysnmp['sent'])} traps at {pysnmp['rate']:,.0f}/s: {int(pysnmp['received'])} received "
               f"({storm_rate(pysnmp):,.0f}/s), lost {lost(pysnmp)}",
               {"lost": float(lost(pysnmp)), "rate": storm_rate(pysnmp)}),
        *v3_rows(quick),
    ]


# ------------------------------------------------------------------------------ SNMPv3 (in process)

V3_SENDER = bytes.fromhex("80001f8880c0ffee0019")
V3_COMBINATIONS = (("SHA256", "AES"), ("SHA512", "AES256"))


def _v3_datagrams(auth: str, priv: str) -> list[bytes]:
    """The storm's traps as SNMPv3 authPriv traps of user "bench" from engine V3_SENDER (what snmptrap -v3
    sends: the sender authoritative, its boots and time, a fresh salt each)."""
    from agent.snmp import usm, usm_crypto
    from agent.snmp.ber import expect_tlv, tlv, tlv_header
    from agent.snmp.credentials import Credentials

    security = usm.check_credentials(Credentials("3", username="bench", auth_protocol=auth,
                                                 auth_password="bench-auth-1", priv_protocol=priv,
                                                 priv_password="bench-priv-1"))
    keys, salts, cipher = usm.localized_keys(security, V3_SENDER), usm.Salts(19), usm.PRIV[priv][0]
    out = []
    for i, v2c in enumerate(_datagrams()):
        pos, end = expect_tlv(v2c, 0, len(v2c), 0x30)
        for _ in range(2):  # version, community: the rest is the PDU
            pos = tlv_header(v2c, pos, end)[2]
        salt = salts.next(cipher, 3)
        scoped = usm_crypto.encrypt(cipher, keys.priv, 3, 1000 + i, salt,
                                    usm.encode_scoped_pdu(V3_SENDER, b"", v2c[pos:end]))
        datagram, offset = usm.encode_message(i + 1, usm.FLAG_AUTH | usm.FLAG_PRIV, V3_SENDER, 3, 1000 + i,
                                              b"bench", security.mac_length, salt, tlv(0x04, scoped))
        out.append(usm_crypto.sign(usm.AUTH[auth][0], keys.auth, security.mac_length, datagram, offset))
    return out


def v3_cpu_per_trap(auth: str, priv: str, fast: bool, count: int) -> float:
    """µs of CPU per SNMPv3 trap through the receiver's v3 side (no socket): our USM or pysnmp's (which
    wants a running loop, as in the agent)."""
    return asyncio.run(_v3_cpu_per_trap(auth, priv, fast, count))


async def _v3_cpu_per_trap(auth: str, priv: str, fast: bool, count: int) -> float:
    from agent.snmp.trap_events import TrapEvent, V3User
    from agent.snmp.trap_v3 import V3Notifications
    from agent.snmp.traps import PysnmpNotifications

    class Discard:
        def sendto(self, data: bytes, address: object = None) -> None:
            pass

        def close(self) -> None:
            pass

    events: list[TrapEvent] = []
    user = V3User("bench", auth, "bench-auth-1", priv, "bench-priv-1", engine_id=V3_SENDER.hex())
    receiver = (V3Notifications([user], None, events.append) if fast
                else PysnmpNotifications([], [user], None, socket.AF_INET, events.append))
    receiver.attach(Discard())
    datagrams = _v3_datagrams(auth, priv)
    try:
        start = time.process_time()
        for i in range(count):
            receiver.feed(datagrams[i % len(datagrams)], ("127.0.0.1", 40000))
        cpu = time.process_time() - start
    finally:
        receiver.close()
    if len(events) != count or receiver.rejected:
        raise BenchError(f"SNMPv3 {auth}/{priv}: {len(events)} of {count} traps accepted")
    return cpu / count * 1e6


def v3_rows(quick: bool) -> list[Result]:
    """SNMPv3 authPriv traps through our USM beside the pysnmp path, the same datagrams, in process."""
    rows = []
    for auth, priv in V3_COMBINATIONS:
        fast = v3_cpu_per_trap(auth, priv, True, 1000 if quick else 5000)
        ref = v3_cpu_per_trap(auth, priv, False, 100 if quick else 500)
        rows.append(Result(BENCHMARK, f"SNMPv3 {auth}/{priv} traps, receiver v3 side, CPU per trap"
                           f"{' (quick)' if quick else ''}", fast, "µs CPU per trap",
                           "pysnmp path, same datagrams", ref, "", None,
                           "in process, no socket: usm.decode_message, HMAC, decryption, decode and "
                           "TrapEvent (agent.snmp.trap_v3) against PysnmpNotifications.feed"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Trap storm: v2c traps/s into one agent receiver")
    parser.add_argument("--quick", action="store_true", help="a 3 s storm instead of 10 s")
    parser.add_argument("--rate", type=float, default=GOAL_RATE)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--send", nargs=3, metavar=("PORT", "RATE", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--receive", nargs=3, metavar=("MODE", "BROKER_PORT", "BUFFER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        port, rate, count = args.send
        print(json.dumps(send(int(port), float(rate), int(count))))
    elif args.receive:
        mode, broker_port, buffer = args.receive
        if mode not in MODES:
            raise SystemExit(f"mode must be one of {MODES}")
        from hatang.gc_settings import tune_for_service

        tune_for_service()  # as `hatang agent` does (hatang/cli.py)
        asyncio.run(receive(mode, int(broker_port), Path(buffer)))
    else:
        print(table(run(quick=args.quick, rate=args.rate, seconds=args.seconds)))


if __name__ == "__main__":
    main()

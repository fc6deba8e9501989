"""Benchmark 1: CPU cost of reading SNMP varbinds, the agent beside net-snmp and snmp_exporter.

One fast loopback responder (benchmarks/_bulk_responder.py, its own process, CPU reported separately)
serves a 2,000-row IF-MIB. In the same run, each subject reads it with GETBULK, max-repetitions 25:

- hatang agent, fast path: a full poll of the ``interfaces`` profile (walks, mapping to metric
  families, JSON payload) on agent/snmp/community.py + agent/snmp/ber.py (what ships for v1/v2c);
- the same poll on pysnmp (``SnmpEngine(fast_path=False)``, what v3 uses);
- net-snmp ``snmpbulkwalk -Cr25`` of ifTable and ifXTable (C; prints every varbind to /dev/null);
- Prometheus ``snmp_exporter`` 0.21 (Go) with a module walking the profile's columns, scraped over HTTP.

Varbinds are counted by the responder (what it sent to each subject), so each subject's CPU is divided
by the same kind of number. The agent's CPU is this process's (time.process_time around the polls); the
others' are their process CPU times.

    python -m benchmarks.snmp_walk [--rows 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from agent.poller import DevicePoller
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from benchmarks._proc import BenchError
from benchmarks.common import Result, children_cpu_seconds, measure, process_cpu_seconds
from wire.codec import encode_batch
from wire.messages import PollBatch

REPS = 25
BENCH = "1. SNMP walk"
UNIT = "CPU ms / 1,000 varbinds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ResponderProcess:
    def __init__(self, rows: int, module: str = "benchmarks._bulk_responder") -> None:
        self._start([sys.executable, "-m", module, "--rows", str(rows)])

    def _start(self, argv: list[str]) -> None:
        """Start the responder; it prints ``PORT n`` once it serves."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.proc.kill()
            raise BenchError(f"the responder did not start: {line}")
        self.port = int(line[1])

    def stats(self) -> dict[str, int]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"STATS", ("127.0.0.1", self.port))
            data, _ = s.recvfrom(1000)
        result: dict[str, int] = json.loads(data)
        return result

    def cpu(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Meter:
    """Varbinds the responder sent and CPU it used during one subject's run."""

    def __init__(self, responder: ResponderProcess) -> None:
        self.responder = responder

    def __enter__(self) -> Meter:
        self.v0 = self.responder.stats()["varbinds"]
        self.c0 = self.responder.cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.varbinds = self.responder.stats()["varbinds"] - self.v0
        self.responder_cpu = self.responder.cpu() - self.c0


def interface_columns() -> list[str]:
    """Every column the ``interfaces`` profile reads (metrics and labels), as dotted OIDs."""
    raw = yaml.safe_load((Path(__file__).parent.parent / "agent/profiles/interfaces.yaml").read_text())
    table = raw["tables"][0]
    columns = list(table["labels"].values()) + [m["oid"] for m in table["metrics"]]
    return list(dict.fromkeys(columns))


V2C = Credentials("2c", "public")


async def agent_polls(port: int, rounds: int, fast: bool, creds: Credentials = V2C) -> tuple[float, int]:
    """CPU seconds of ``rounds`` full polls (after one warm-up poll) and the number of samples."""
    engine = SnmpEngine(fast_path=fast)
    try:
        target = await engine.target("127.0.0.1", port, creds, timeout=5.0, retries=1,
                                     max_repetitions=REPS)
        profile = load_profiles()["interfaces"]
        # labels every poll, like snmp_exporter's lookups (the agent normally re-reads them every 10th)
        poller = DevicePoller("bench", target, [profile], deadline=300.0, timeout_errors=(SnmpTimeout,),
                              snmp_errors=(SnmpError,), label_refresh_polls=1)
        await poller.poll()
        samples = 0
        cpu = 0.0
        for seq in range(1, rounds + 1):
            with measure() as span:
                outcome = await poller.poll()
                encode_batch(PollBatch("bench", "b" * 32, seq, outcome.ts, "sw", 60.0, outcome.up,
                                       outcome.duration, families=outcome.families))
            cpu += span.cpu
            assert outcome.up and not outcome.errors, outcome.errors
            samples = sum(len(f.samples) for f in outcome.families)
        return cpu, samples
    finally:
        engine.close()


def snmp_exporter_config(columns: list[str], auth: dict[str, str] | None = None) -> dict[str, object]:
    label_columns = {"ifName": "1.3.6.1.2.1.31.1.1.1.1", "ifAlias": "1.3.6.1.2.1.31.1.1.1.18",
                     "ifDescr": "1.3.6.1.2.1.2.2.1.2", "ifType": "1.3.6.1.2.1.2.2.1.3"}
    lookups = [{"labels": ["ifIndex"], "labelname": name, "oid": oid,
                "type": "gauge" if name == "ifType" else "DisplayString"}
               for name, oid in label_columns.items()]
    metrics = [{"name": f"c{oid.replace('.', '_')}", "oid": oid, "type": "gauge", "help": oid,
                "indexes": [{"labelname": "ifIndex", "type": "gauge"}], "lookups": lookups}
               for oid in columns if oid not in label_columns.values()]
    return {"bench": {"walk": columns, "metrics": metrics, "version": 3 if auth else 2,
                      "max_repetitions": REPS, "retries": 1, "timeout": "10s",
                      "auth": auth or {"community": "public"}}}


def run_snmp_exporter(port: int, rounds: int, responder: ResponderProcess, auth: dict[str, str] | None = None,
                      name: str = "snmp_exporter 0.21 (Go), same columns + lookups") -> Result:
    binary = shutil.which("prometheus-snmp-exporter")
    if binary is None:
        raise RuntimeError("prometheus-snmp-exporter missing (Debian package prometheus-snmp-exporter)")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "snmp.yml"
        config.write_text(yaml.safe_dump(snmp_exporter_config(interface_columns(), auth)))
        http_port = free_port()
        argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{http_port}"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{http_port}/snmp?target=127.0.0.1:{port}&module=bench"
            deadline = time.monotonic() + 20
            while True:
                try:
                    body = urllib.request.urlopen(url, timeout=30).read()  # warm-up scrape
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            if b"snmp_scrape_walk_duration" not in body:
                raise RuntimeError("snmp_exporter scrape failed")
            series = sum(1 for line in body.splitlines() if line.startswith(b"c1_"))
            with Meter(responder) as meter:
                cpu0 = process_cpu_seconds(proc.pid)
                for _ in range(rounds):
                    urllib.request.urlopen(url, timeout=60).read()
                cpu = process_cpu_seconds(proc.pid) - cpu0
        finally:
            proc.kill()
            proc.wait()
    return Result(BENCH, name, cpu / meter.varbinds * 1e6, UNIT,
                  notes=f"{series} series per scrape; responder CPU "
                        f"{meter.responder_cpu / meter.varbinds * 1e6:.2f} ms / 1,000 varbinds")


def run_snmpbulkwalk(port: int, rounds: int, responder: ResponderProcess) -> Result:
    binary = shutil.which("snmpbulkwalk")
    if binary is None:
        raise RuntimeError("snmpbulkwalk missing (Debian package snmp)")
    env = {"MIBS": "", "MIBDIRS": "/nonexistent", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    with Meter(responder) as meter:
        cpu0 = children_cpu_seconds()
        for _ in range(rounds):
            for root in ("1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"):
                subprocess.run([binary, "-v2c", "-c", "public", f"-Cr{REPS}", "-On", "-r1", "-t5",
                                f"127.0.0.1:{port}", root], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True, env=env)
        cpu = children_cpu_seconds() - cpu0
    return Result(BENCH, "net-snmp snmpbulkwalk (C), ifTable + ifXTable", cpu / meter.varbinds * 1e6, UNIT,
                  notes=f"includes process start-up, 2 processes per round; responder CPU "
                        f"{meter.responder_cpu / meter.varbinds * 1e6:.2f} ms / 1,000 varbinds")


def run(quick: bool = False, rows: int = 2000, rounds: int | None = None,
        smoke: bool = False) -> list[Result]:
    rounds = rounds or (1 if smoke else 2 if quick else 5)
    rows = 200 if smoke else rows
    responder = ResponderProcess(rows)
    try:
        exporter = run_snmp_exporter(responder.port, rounds, responder)
        bulkwalk = run_snmpbulkwalk(responder.port, rounds, responder)
        subjects = []
        for fast, name in ((True, "hatang agent, fast path (ships for v1/v2c)"),
                           (False, "hatang agent on pysnmp (v3 path)")):
            with Meter(responder) as meter:
                cpu, samples = asyncio.run(agent_polls(responder.port, rounds, fast))
            # the warm-up poll is inside the meter: count only the measured rounds' share
            varbinds = meter.varbinds * rounds / (rounds + 1)
            subjects.append(Result(
                BENCH, name, cpu / varbinds * 1e6, UNIT,
                notes=f"full poll: walk + mapping + JSON payload, {samples} samples per poll; responder CPU "
                      f"{meter.responder_cpu / meter.varbinds * 1e6:.2f} ms / 1,000 varbinds"))
        fast_result, pysnmp_result = subjects
        for r in (fast_result, pysnmp_result, bulkwalk):
            r.reference, r.reference_value = "snmp_exporter", exporter.value
        fast_result.goal = "<= snmp_exporter"
        fast_result.met = fast_result.value <= exporter.value
        # 200 devices x 500 varbinds every 60 s on one core: 1,667 varbinds/s
        per_second = 200 * 500 / 60
        core_share = fast_result.value / 1e6 * per_second
        budget = Result(BENCH, "agent core share for 200 devices x 500 varbinds / 60 s", core_share * 100,
                        "% of one core", goal="< 100 %", met=core_share < 1.0,
                        notes="computed from the fast path's CPU per varbind above")
        # SNMPv3 beside snmp_exporter with the same users (the pysnmp v3 row only in full runs: ~40 s)
        v3 = run_v3(rows, rounds, pysnmp=not (quick or smoke))
        return [fast_result, pysnmp_result, bulkwalk, exporter, budget, *v3]
    finally:
        responder.close()


# SNMPv3 authPriv (issue #19 goal 2): the same walk behind USM, the same users for every client
V3_USERS = {"SHA256/AES-128": ("bench256", "SHA256", "AES", "AES"),
            "SHA512/AES-256": ("bench512", "SHA512", "AES256", "AES256")}  # ours, snmp_exporter's priv name


def run_v3(rows: int, rounds: int, pysnmp: bool = True) -> list[Result]:
    """The agent's v3 fast path and snmp_exporter (gosnmp) on benchmarks/_bulk_responder_v3.py, per user;
    the pysnmp path (the agent's v3 before the fast path) for the first user when ``pysnmp``."""
    from benchmarks._bulk_responder_v3 import AUTH_PASSWORD, PRIV_PASSWORD

    responder = ResponderProcess(rows, "benchmarks._bulk_responder_v3")
    results: list[Result] = []
    try:
        for label, (user, auth, priv, exporter_priv) in V3_USERS.items():
            exporter_auth = {"username": user, "security_level": "authPriv",
                             "password": AUTH_PASSWORD.decode(), "auth_protocol": auth,
                             "priv_protocol": exporter_priv,
                             "priv_password": PRIV_PASSWORD.decode()}
            exporter = run_snmp_exporter(responder.port, rounds, responder, exporter_auth,
                                         f"snmp_exporter 0.21 (Go), v3 {label}, same columns + lookups")
            creds = Credentials("3", username=user, auth_protocol=auth, auth_password=AUTH_PASSWORD.decode(),
                                priv_protocol=priv, priv_password=PRIV_PASSWORD.decode())
            subjects = [(True, f"hatang agent, v3 fast path ({label})")]
            if pysnmp and not results:
                subjects.append((False, f"hatang agent on pysnmp, v3 ({label})"))
            for fast, name in subjects:
                with Meter(responder) as meter:
                    cpu, samples = asyncio.run(agent_polls(responder.port, rounds, fast, creds))
                varbinds = meter.varbinds * rounds / (rounds + 1)
                result = Result(BENCH, name, cpu / varbinds * 1e6, UNIT, reference="snmp_exporter v3",
                                reference_value=exporter.value,
                                notes=f"full poll: walk + mapping + JSON payload, {samples} samples per "
                                      f"poll; responder CPU "
                                      f"{meter.responder_cpu / meter.varbinds * 1e6:.2f} ms / 1,000 varbinds")
                if fast:
                    result.goal = "<= 1.0x snmp_exporter (same v3 user)"
                    result.met = result.value <= exporter.value
                results.append(result)
            results.append(exporter)
    finally:
        responder.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--v3-only", action="store_true", help="only the SNMPv3 rows")
    args = parser.parse_args()
    from benchmarks.common import table

    if args.v3_only:
        print(table(run_v3(args.rows, args.rounds)))
        return
    print(table(run(args.quick, args.rows, args.rounds)))


if __name__ == "__main__":
    main()

"""Benchmark (not a test): ``hatang report`` over a month of a synthetic province against a real Prometheus.

    .venv/bin/python -m benchmarks.report                       # 120 offices x 5 devices, 31 days
    .venv/bin/python -m benchmarks.report --offices 10 --days 2  # a quick run

The history: per office one ``hatang_agent_up`` (with outages and gaps without data), ``--devices``
``hatang_device_poll_success`` series and one ``hatang_probe_up``, all sampled every 60 s at second :30,
plus ``hatang_site_info``; random down stretches from a fixed seed. It is written as OpenMetrics one day
at a time (each day's file is deleted once ``promtool tsdb create-blocks-from openmetrics`` has made its
two-hour blocks) into a cached TSDB directory (``--data``, reused while it is complete), then served by a
real Prometheus on a free loopback port with compaction off (``--storage.tsdb.max-block-duration=2h``):
the report reads 12 blocks a day, the worst case; a Prometheus that has compacted its blocks reads fewer.

Measured: the report's work in this process, split into the time spent on Prometheus (requests,
transfer and JSON decoding: ``query``), folding the answers into one byte per minute (``fold``),
assembling the rows (``model``) and rendering each format; the CPU Prometheus used meanwhile; then the
whole ``hatang report`` command as a separate process (wall time and peak RSS). The device minutes are
checked against the generator (devices have a sample every minute, so a minute is down exactly when
its own poll was).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks.common import Result, process_cpu_seconds, table
from hatang.availability.prometheus_query import PrometheusClient
from hatang.availability.render_html import render_html
from hatang.availability.render_text import render_csv, render_markdown
from hatang.availability.report_model import build_report
from hatang.availability.timeline import ReportPeriod
from hatang.cli_report import gather

ICT = timezone(timedelta(hours=7))
START = datetime(2026, 10, 1, tzinfo=ICT)
NO_SAMPLE = 2
SEED = 20261001
BENCH = "R. Availability report"


@dataclass(frozen=True)
class Province:
    offices: int
    devices: int  # per office
    days: int

    @property
    def minutes(self) -> int:
        return self.days * 1440

    @property
    def series(self) -> int:
        return self.offices * (self.devices + 2)

    def tag(self) -> str:
        return f"{self.offices}x{self.devices}x{self.days}d"


def _stretches(rng: random.Random, states: bytearray, count: int, longest: int, code: int) -> None:
    for _ in range(count):
        length = rng.randint(1, longest)
        first = rng.randrange(0, max(1, len(states) - length))
        states[first:first + length] = bytes((code,)) * length


def history(province: Province) -> list[tuple[str, str, bytearray]]:
    """(metric, label text, code per minute from 10 minutes before the period: 1 up, 0 down, 2 none)."""
    rng = random.Random(SEED)
    size = province.minutes + 20
    out = []
    for o in range(province.offices):
        site = f'province="Tỉnh Thử Nghiệm",commune="Xã số {o:03d}"'
        agent = f'agent="xa-{o:03d}",{site}'
        up = bytearray(b"\x01") * size
        _stretches(rng, up, rng.randint(0, 3), 90, 0)
        _stretches(rng, up, rng.randint(0, 1), 240, NO_SAMPLE)
        out.append(("hatang_agent_up", agent, up))
        for d in range(province.devices):
            device = bytearray(b"\x01") * size
            _stretches(rng, device, rng.randint(0, 4), 120, 0)
            out.append(("hatang_device_poll_success", f'{agent},device="thiet-bi-{d}"', device))
        link = bytearray(b"\x01") * size
        _stretches(rng, link, rng.randint(0, 6), 30, 0)
        target = f"10.{o // 250}.{o % 250}.1"
        out.append(("hatang_probe_up", f'{agent},device="tslcd",method="icmp",target="{target}"', link))
        info = bytearray(b"\x02") * size
        info[::10] = b"\x01" * len(range(0, size, 10))
        out.append(("hatang_site_info", f'{agent},site_name="UBND xã số {o:03d}",role="commune"', info))
    return out


def write_tsdb(province: Province, data: Path) -> None:
    """Blocks for the whole history, one OpenMetrics file (one day, 2 h aligned) at a time."""
    series = history(province)
    first_ts = int(START.timestamp()) - 600  # minute index 0 of the codes
    size = province.minutes + 20
    aligned = first_ts - first_ts % 7200
    data.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        om = Path(scratch) / "day.om"
        day_start = aligned
        while day_start < first_ts + size * 60:
            lo = max(0, (day_start - first_ts) // 60)
            hi = min(size, (day_start + 86400 - first_ts) // 60)
            with om.open("w", encoding="utf-8") as f:
                current = ""
                for name, labels, codes in series:
                    if name != current:
                        f.write(f"# TYPE {name} gauge\n")
                        current = name
                    prefix = f"{name}{{{labels}}} "
                    f.writelines(f"{prefix}{codes[m]} {first_ts + 60 * m + 30}\n"
                                 for m in range(lo, hi) if codes[m] != NO_SAMPLE)
                f.write("# EOF\n")
            subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(om),
                            str(data)], check=True, capture_output=True)
            print(f"  blocks for {datetime.fromtimestamp(day_start, ICT):%Y-%m-%d %H:%M}", file=sys.stderr)
            day_start += 86400
    (data / "hatang-bench-complete").write_text(province.tag())


def device_down_minutes(province: Province) -> int:
    """Down minutes of all devices in the period (every device minute has its own poll)."""
    return sum(codes[10:10 + province.minutes].count(0) for name, _, codes in history(province)
               if name == "hatang_device_poll_success")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_prometheus(data: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
         "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # a benchmark's start-up poll, not a test's synchronisation
    proc.kill()
    raise RuntimeError("prometheus did not become ready in 120 s")


def run(quick: bool = False, province: Province | None = None, data: Path | None = None) -> list[Result]:
    province = province or (Province(10, 5, 2) if quick else Province(120, 5, 31))
    data = data or Path(tempfile.gettempdir()) / "hatang-bench-report" / province.tag()
    marker = data / "hatang-bench-complete"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        started = time.perf_counter()
        print(f"writing {province.series} series x {province.minutes} minutes into {data}", file=sys.stderr)
        write_tsdb(province, data)
        print(f"history written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    period = ReportPeriod(START, START + timedelta(days=province.days))
    with tempfile.TemporaryDirectory() as work:
        proc, url = start_prometheus(data, Path(work))
        try:
            prom_cpu = process_cpu_seconds(proc.pid)
            started = time.perf_counter()
            gathered = gather(PrometheusClient(url, timeout=300), period)
            prom_cpu = process_cpu_seconds(proc.pid) - prom_cpu
            t0 = time.perf_counter()
            timelines = gathered.timelines
            report = build_report(period=period, tz=ICT, tz_name="Asia/Ho_Chi_Minh",
                                  generated_at=datetime.now(ICT), source=url,
                                  offices=timelines["office"].timelines.values(),
                                  devices=timelines["device"].timelines.values(),
                                  links=timelines["link"].timelines.values(), site_info=gathered.site_info)
            model = time.perf_counter() - t0
            renders = {}
            for name, render in (("html", render_html), ("csv", render_csv), ("md", render_markdown)):
                t0 = time.perf_counter()
                size = len(render(report).encode())
                renders[name] = (time.perf_counter() - t0, size)
            in_process = time.perf_counter() - started
            expected_down = device_down_minutes(province)
            got_down = sum(r.totals.down for r in report.devices)
            counts = (len(report.offices), len(report.devices), len(report.links))
            assert counts == (province.offices, province.offices * province.devices, province.offices), counts
            assert got_down == expected_down, (got_down, expected_down)
            last_day = (period.end - timedelta(days=1)).strftime("%Y-%m-%d")
            command = [sys.executable, "-m", "hatang", "report", "--prometheus", url, "--from",
                       START.strftime("%Y-%m-%d"), "--to", last_day, "--timeout", "300",
                       "-o", str(Path(work) / "report.html")]
            t0 = time.perf_counter()
            child = subprocess.Popen(command, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(child.pid, 0)
            command_wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                error = child.stderr.read().decode() if child.stderr else ""
                raise RuntimeError(f"hatang report failed: {error}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    points = province.series * province.minutes  # site_info excluded below: one instant query
    points -= province.offices * province.minutes
    subject = f"{province.offices} offices x {province.devices} devices + link, {province.days} days"
    notes = (f"{gathered.requests} requests, {points:,} minute values; query {gathered.query_seconds:.1f} s "
             f"(Prometheus CPU {prom_cpu:.1f} s), fold {gathered.fold_seconds:.1f} s, model {model:.2f} s, "
             + ", ".join(f"{k} {v[0]:.2f} s ({v[1] / 1e6:.1f} MB)" for k, v in renders.items())
             + f"; device down minutes checked: {got_down}")
    return [
        Result(BENCH, f"in process: {subject}", in_process, "s (query + fold + model + 3 renders)",
               notes=notes, extra={"query_s": gathered.query_seconds, "fold_s": gathered.fold_seconds,
                                   "model_s": model, "prometheus_cpu_s": prom_cpu}),
        Result(BENCH, "query: Prometheus requests, transfer, JSON", gathered.query_seconds, "s"),
        Result(BENCH, "fold: one byte per minute", gathered.fold_seconds, "s"),
        Result(BENCH, f"`hatang report` process, HTML: {subject}", command_wall, "s wall",
               notes=f"peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
                     f"CPU {usage.ru_utime + usage.ru_stime:.1f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n")[0])
    parser.add_argument("--offices", type=int, default=120)
    parser.add_argument("--devices", type=int, default=5, help="per office")
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--data", type=Path, help="TSDB directory to reuse or fill (default under $TMPDIR)")
    args = parser.parse_args()
    print(table(run(province=Province(args.offices, args.devices, args.days), data=args.data)))


if __name__ == "__main__":
    main()

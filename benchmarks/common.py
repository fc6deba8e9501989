"""Shared pieces of the benchmark suite: one result row, CPU accounting of processes, and the table.

Every benchmark measures the shipped code beside a reference run in the same script (snmp_exporter,
snmpbulkwalk, prometheus-client, a bare MQTT subscriber, ...) and reports both plus their ratio, because
absolute numbers on a shared machine are noisy and ratios are not.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One row of docs/performance.md."""

    benchmark: str  # e.g. "1. SNMP walk cost"
    subject: str  # what was measured, e.g. "hatang agent (fast path)"
    value: float
    unit: str  # e.g. "CPU ms / 1,000 varbinds"
    reference: str = ""  # the reference it is compared with, e.g. "snmp_exporter"
    reference_value: float | None = None
    goal: str = ""  # e.g. "<= snmp_exporter"
    met: bool | None = None  # None: no goal for this row
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.reference_value in (None, 0):
            return None
        assert self.reference_value is not None
        return self.value / self.reference_value


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Span:
    cpu: float = 0.0
    wall: float = 0.0


@contextmanager
def measure() -> Iterator[Span]:
    """CPU (this process) and wall seconds of the block."""
    span = Span()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        yield span
    finally:
        span.cpu = time.process_time() - cpu0
        span.wall = time.perf_counter() - wall0


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    lines = [
        "| benchmark | measured | value | unit | reference | reference value | ratio | goal | met |",
        "|---|---|---:|---|---|---:|---:|---|---|",
    ]
    for r in results:
        ratio = r.ratio
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.benchmark} | {r.subject} | {_fmt(r.value)} | {r.unit} | {r.reference} | "
            f"{_fmt(r.reference_value)} | {'' if ratio is None else f'{ratio:.2f}x'} | {r.goal} | {met} |"
        )
    notes = [f"- {r.benchmark}, {r.subject}: {r.notes}" for r in results if r.notes]
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def _threads(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []


def process_cpu_seconds_exact(pid: int) -> float:
    """CPU seconds of a running process's live threads from /proc/PID/task/*/schedstat (the scheduler's
    sum_exec_runtime, in nanoseconds). /proc/PID/stat's utime + stime come in 10 ms units (USER_HZ); on
    x86 their sum is the same runtime rounded (cputime_adjust scales the tick-sampled split to it), so
    it is not biased, only coarse: over a window of 0.1 CPU s it is +-10 %. Threads that already exited
    are not counted here (they are in /proc/PID/stat)."""
    total = 0
    for tid in _threads(pid):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def process_wakeups(pid: int) -> int:
    """Voluntary context switches of a running process's live threads: each is a sleep that ended in a
    wake-up (an event, a timer), so their count over a window is the process's wake-ups."""
    total = 0
    for tid in _threads(pid):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{tid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches")),
                          0)
    return total

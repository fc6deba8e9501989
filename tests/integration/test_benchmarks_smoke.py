"""The benchmark suite still runs: ``python -m benchmarks --smoke`` end to end, every module of it.

The benchmarks are not tests (docs/performance.md) and nothing here looks at their figures; but a
benchmark that no longer runs is otherwise only found when someone needs its numbers. The smoke mode
runs every module of the suite at its smallest size with the real components each one starts
(Mosquitto, snmpd, snmp_exporter, net-snmp's tools, the agent and collector processes) and exits
non-zero when any of them raised; this fails on that, and on a module that printed no row.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITE
from tests.support.services import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 110  # seconds; CI gives the smoke run two minutes


def test_every_benchmark_runs_end_to_end_in_smoke_mode() -> None:
    for binary, package in (("mosquitto", "mosquitto"), ("snmpd", "snmpd"), ("snmpbulkwalk", "snmp"),
                            ("prometheus-snmp-exporter", "prometheus-snmp-exporter")):
        require_binary(binary, package)
    env = {**os.environ, "HATANG_BENCH_TIMEOUT": "60"}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=BUDGET, check=False)
    assert done.returncode == 0, done.stderr[-5000:] + done.stdout[-3000:]
    assert "Failed:" not in done.stdout, done.stdout
    ran = re.findall(r"^--- (\w+): \d+ s$", done.stderr, re.MULTILINE)
    assert ran == SUITE, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if re.match(r"\| \d+\. ", line)]
    assert len(rows) >= len(SUITE), done.stdout
    assert "`python -m benchmarks --smoke`" in done.stdout, done.stdout

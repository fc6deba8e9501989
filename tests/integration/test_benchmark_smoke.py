"""The benchmark harness still runs (a smoke run at a tiny size; the figures are not checked here).

The benchmarks are not tests (docs/performance.md), but a harness that no longer runs is only found when
someone needs its numbers: the collector-ingest consumer silently stopped counting when the subscriber's
callback gained an argument, and nothing failed. This runs the collector-ingest benchmark end to end
(real Mosquitto, the consumer processes, the real Subscriber and Store) with 40 messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_collector_ingest_benchmark_runs_and_counts_every_message() -> None:
    require_binary("mosquitto", "mosquitto")
    env = {**os.environ, "HATANG_BENCH_TIMEOUT": "30"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.collector_ingest", "--messages", "40"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 3. Collector ingest")]
    assert len(rows) == 2, done.stdout
    assert "collector: MQTT -> Store" in rows[0] and "40 messages x" in done.stdout, done.stdout
    rate = float(rows[0].split("|")[3].replace(",", ""))
    assert rate > 0, rows[0]

"""Run ``hatang`` subcommands as real processes and read their /metrics."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import _spawn, _terminate, pid_alive
from tests.support.waiting import wait_until

HATANG = [sys.executable, "-m", "hatang"]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass(eq=False)
class HatangProcess:
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> HatangProcess:
        self.proc = _spawn([*HATANG, *self.args], self.log_path)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and pid_alive(self.proc.pid)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        _terminate(self.proc, self.proc.pid, first_signal=sig)
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def run_hatang(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HATANG, *args], capture_output=True, text=True, timeout=timeout, check=False)


def scrape(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode("utf-8")


def try_scrape(url: str) -> str | None:
    try:
        return scrape(url)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """{(sample name, sorted labels): value} for every sample in an exposition text."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def find(series: Series, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Samples of ``name`` whose labels include ``labels``."""
    hits = []
    for (sample_name, sample_labels), value in series.items():
        as_dict = dict(sample_labels)
        if sample_name == name and all(as_dict.get(k) == v for k, v in labels.items()):
            hits.append((as_dict, value))
    return hits


def one(series: Series, name: str, **labels: str) -> float | None:
    hits = find(series, name, **labels)
    assert len(hits) <= 1, f"{name}{labels} matches {len(hits)} series: {hits}"
    return hits[0][1] if hits else None


def wait_for_series(url: str, name: str, timeout: float, **labels: str) -> Series:
    """Scrape until a sample of ``name`` with ``labels`` appears; return the whole parsed scrape."""

    def ready() -> Series | None:
        text = try_scrape(url)
        if text is None:
            return None
        series = parse(text)
        return series if find(series, name, **labels) else None

    return wait_until(ready, timeout, interval=0.2, message=f"{name}{labels} at {url}")

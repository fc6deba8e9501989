"""Run ``hatang`` subcommands as real processes and read their /metrics.

The processes run what a user installs, not the source tree: ``scripts/test`` builds a runtime venv with
only ``pip install .`` in it and exports its ``bin/hatang`` as ``HATANG_BIN``. Every process starts in
a fresh working directory outside the repository, without ``PYTHONPATH`` and without the user's site
directory, so neither the checkout nor the test extras can stand in for a missing dependency or package
data file. Under ``CI=true`` a missing ``HATANG_BIN`` fails the test; elsewhere (``pytest`` run directly
by a developer) ``python -m hatang`` of the test interpreter stands in, with the repository on
``PYTHONPATH`` but still in a working directory outside it.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import _spawn, _terminate, pid_alive, unavailable
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
HATANG_BIN_VARIABLE = "HATANG_BIN"
_cwd_root: Path | None = None


def runtime_bin() -> Path | None:
    """``$HATANG_BIN``: the ``hatang`` script of the runtime venv (only ``pip install .``), or None.

    When it is set it must exist. When it is not set: ``pytest.fail`` under ``CI=true``, else None.
    """
    value = os.environ.get(HATANG_BIN_VARIABLE)
    if value:
        path = Path(value)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AssertionError(f"{HATANG_BIN_VARIABLE}={value} is not an executable file")
        return path.absolute()
    message = (f"{HATANG_BIN_VARIABLE} is not set: run the tests with scripts/test, which builds the "
               "runtime venv (pip install . alone) whose bin/hatang the process tests run")
    if os.environ.get("CI") == "true":
        unavailable(message)
    return None


def hatang_command() -> list[str]:
    """The argv prefix that runs ``hatang``: ``[$HATANG_BIN]`` or (unset, outside CI) python -m hatang."""
    binary = runtime_bin()
    return [str(binary)] if binary is not None else [sys.executable, "-m", "hatang"]


def hatang_env(runtime: bool | None = None) -> dict[str, str]:
    """Environment of a ``hatang`` process: ours without PYTHONPATH/PYTHONHOME and without the user site
    directory; the fallback (``python -m hatang`` from the test venv) gets the repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    if runtime is None:
        runtime = runtime_bin() is not None
    if not runtime:
        env["PYTHONPATH"] = str(REPO)
    return env


def outside_cwd() -> Path:
    """A new empty directory outside the repository, as a process's working directory."""
    global _cwd_root
    if _cwd_root is None:
        _cwd_root = Path(tempfile.mkdtemp(prefix="hatang-test-cwd-")).resolve()
        atexit.register(shutil.rmtree, _cwd_root, True)
    path = Path(tempfile.mkdtemp(dir=_cwd_root))
    assert not path.is_relative_to(REPO), f"{path} is inside the repository {REPO}"
    return path


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
        self.proc = _spawn([*hatang_command(), *self.args], self.log_path, env=hatang_env(),
                           cwd=outside_cwd())
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
    """Run ``hatang ARGS`` to its end (see the module doc for which ``hatang`` and where)."""
    return subprocess.run([*hatang_command(), *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=hatang_env(), cwd=outside_cwd())


SubParsers = argparse._SubParsersAction  # what a command module's add_parser(sub) takes


def run_subcommand(add_parser: Callable[[SubParsers[argparse.ArgumentParser]], None], *argv: str) -> int:
    """``hatang ARGV`` in this process, through the parser a command module adds (``add_parser``): the
    exit code its ``func`` returns (the module's own logic, without starting a process)."""
    parser = argparse.ArgumentParser(prog="hatang")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


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


def pending_clause(db: sqlite3.Connection) -> str:
    """A WHERE clause for an agent's queue database that leaves out messages already delivered and only
    kept for redelivery after a broker crash (the ``delivered`` table of agent/queue/database.py)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return " WHERE id NOT IN (SELECT id FROM delivered)" if "delivered" in tables else ""

"""Process plumbing shared by the end-to-end benchmarks (agent_footprint, latency).

Every process is started here with its own log file, is known by its PID, and is stopped by that PID
(SIGTERM, a deadline, then SIGKILL) from an ``ExitStack`` callback, so nothing outlives a benchmark, also
when it fails half-way. On Linux each child also gets PR_SET_PDEATHSIG, so a benchmark killed from outside
does not leave orphans either. Nothing listens outside 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 10.0
T = TypeVar("T")


class BenchError(RuntimeError):
    """A component did not start or misbehaved; the message says which, with the tail of its log."""


def bench_tmpdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A scratch directory under $HATANG_BENCH_DIR (default: the system temp dir)."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=os.environ.get("HATANG_BENCH_DIR"))


def fs_type(path: Path) -> str:
    """The file system type (ext4, tmpfs, ...) that holds ``path``, from /proc/mounts."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3 or len(parts[1]) < len(best):
                continue
            if target == parts[1] or target.startswith(parts[1].rstrip("/") + "/"):
                best, kind = parts[1], parts[2]
    return kind


def require(*programs: tuple[str, str]) -> None:
    """Fail with a BenchError naming the Debian package when a (program, package) is missing. Checked up
    front because tests/support/services.py would raise pytest's Skipped, a BaseException."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    missing = [f"{name} (apt-get install {package})" for name, package in programs
               if shutil.which(name, path=search) is None]
    if missing:
        raise BenchError(f"missing programs: {', '.join(missing)}")


def machine_load() -> str:
    """E.g. 'load 2.10 on 2 CPUs': others' work on a shared machine makes every number here noisier."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def hatang_argv() -> list[str]:
    """The ``hatang`` console script of the running venv (else ``python -m hatang``)."""
    script = Path(sys.executable).parent / "hatang"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hatang"]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(eq=False)
class Proc:
    """A child process we own, known by PID, with its output in ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=REPO, close_fds=True, preexec_fn=_pdeathsig if sys.platform == "linux" else None,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise BenchError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def check(self) -> None:
        """Raise if the process died."""
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(f"{self.name} (pid {self.popen.pid}) exited with code {self.popen.returncode}"
                             f"\n--- {self.log_path} ---\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM by PID, wait, SIGKILL by PID; reap. Idempotent."""
        proc = self.popen
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str,
             watch: Sequence[Proc] = (), interval: float = 0.1) -> T:
    """Call ``predicate`` until it returns something other than None/False; fail if a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            proc.check()
        result = predicate()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {p.name} log ---\n{p.log(2000)}" for p in watch)
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}{tails}")
        time.sleep(interval)


# ------------------------------------------------------------------ simulated devices in their own process


@dataclass(frozen=True)
class SimDevice:
    """One device for benchmarks/_proc_sim.py: kind "switch" (with ``ports``) or "router"."""

    name: str
    kind: str = "switch"
    ports: int = 24
    seed: int = 0
    host: str = "127.0.0.1"


def start_simulator(workdir: Path, devices: Sequence[SimDevice]) -> tuple[Proc, dict[str, tuple[str, int]]]:
    """Serve ``devices`` from a helper process (so their CPU is not the agent's); return it and
    {device name: (host, udp port)}."""
    spec = workdir / "sim-spec.json"
    ready = workdir / "sim-endpoints.json"
    spec.write_text(json.dumps([d.__dict__ for d in devices]))
    proc = Proc("simulator", [sys.executable, "-m", "benchmarks._proc_sim", str(spec), str(ready)],
                workdir / "simulator.log").start()
    endpoints = wait_for(lambda: json.loads(ready.read_text()) if ready.exists() else None, 30,
                         "the simulated devices", [proc])
    return proc, {name: (host, int(port)) for name, host, port in endpoints}


# ------------------------------------------------------------------ numbers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample: p99 of 200 values is the 2nd largest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM, ...), 0 when absent."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

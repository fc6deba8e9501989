"""``--foreground``: the centre's daemons as child processes of ``scripts/central-up`` with the installed
files. ``Supervisor`` starts each (output to ROOT/var/log/hatang-central/NAME.log, PID in
ROOT/run/hatang-central/NAME.pid), waits until it is ready, and stops them all (SIGTERM, then SIGKILL)
on SIGTERM/SIGINT (exit 0) or when one of them dies (exit 1, with the dead one's log tail)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from central_configs import Layout, mosquitto_files
from central_files import blocked_for, is_root, make_dir
from central_messages import PROG, CentralUpError, say

READY_TIMEOUT = 60.0  # per service
STOP_TIMEOUT = 15.0  # SIGTERM -> SIGKILL
LOG_TAIL_LINES = 40


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with us


@dataclass
class Child:
    """One daemon: its command, the URL it prints, when it is ready, and its process once started."""

    name: str
    argv: list[str]
    url: str
    ready: Callable[[], bool]
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = Path()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])


def listening(port: int) -> bool:
    """A TCP socket listens on ``port`` (any address): /proc/net/tcp{,6}, without connecting (a probe
    connection to the TLS listener would log a failed handshake); a connect to 127.0.0.1 without procfs."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    suffix = f":{port:04X}"
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 3 and cols[1].endswith(suffix) and cols[3] == "0A":  # 0A: LISTEN
                    return True
    return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Stop(Exception):
    """SIGTERM or SIGINT arrived: stop the children."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildDied(Exception):
    """A child exited or was killed: stop the others."""

    def __init__(self, child: Child) -> None:
        super().__init__(child.name)
        self.child = child


@dataclass
class Supervisor:
    """Starts the children one after the other, each when the previous one is ready, and stops them."""

    layout: Layout
    children: list[Child] = field(default_factory=list)
    stop_signal: int | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum

    def check(self) -> None:
        if self.stop_signal is not None:
            raise Stop(self.stop_signal)
        for child in self.children:
            if not child.alive():
                raise ChildDied(child)

    def start(self, child: Child) -> None:
        make_dir(self.layout.logs, mode=0o755)
        child.log_path = self.layout.logs / f"{child.name}.log"
        with open(child.log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"=== {PROG} {stamp}: exec {shlex.join(child.argv)}\n".encode())
            log.flush()
            try:
                child.proc = subprocess.Popen(child.argv, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=child.env, cwd=self.layout.run,
                                              close_fds=True, preexec_fn=_child_setup)
            except OSError as exc:
                raise CentralUpError(f"cannot start {child.name} ({shlex.join(child.argv)}): {exc}") from None
        self.children.append(child)
        (self.layout.run / f"{child.name}.pid").write_text(f"{child.proc.pid}\n", encoding="ascii")
        deadline = time.monotonic() + READY_TIMEOUT
        while not child.ready():
            self.check()
            if time.monotonic() > deadline:
                raise CentralUpError(f"{child.name} was not ready within {READY_TIMEOUT:.0f} s "
                                     f"({child.url}); last lines of {child.log_path}:\n{child.log_tail()}")
            time.sleep(0.1)
        assert child.proc is not None
        say(f"{child.name} {child.url} (pid {child.proc.pid}, log {child.log_path})")

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.alive():
                assert child.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} (pid {child.proc.pid}) did not stop within {STOP_TIMEOUT:.0f} s: SIGKILL",
                    sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                child.proc.wait()
            (self.layout.run / f"{child.name}.pid").unlink(missing_ok=True)


def mosquitto_access_problems(layout: Layout) -> list[str]:
    """What the user mosquitto (Mosquitto drops to it when started as root) cannot read or write."""
    if not is_root():
        return []
    problems = []
    named = mosquitto_files(layout.mosquitto_conf.read_text(encoding="utf-8"))
    for path, write in ((layout.mosquitto_conf, False), *named):
        why = blocked_for("mosquitto", path, want_write=write)
        if why and why not in problems:
            problems.append(why)
    return problems


def foreground(layout: Layout, hatang: str, programs: dict[str, str], ports: dict[str, int],
               broker_names: list[str]) -> int:
    problems = mosquitto_access_problems(layout)
    if problems:
        raise CentralUpError("Mosquitto, started as root, drops to the user mosquitto, which cannot use its "
                             "files:\n    " + "\n    ".join(problems) + "\nInstall under a --root whose "
                             "parent directories are searchable by everyone (e.g. a directory made with "
                             "mode 0755 under /tmp), not under a private (0700) directory")
    make_dir(layout.run, mode=0o755)
    sup = Supervisor(layout)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, sup.on_signal)
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    tls_name = broker_names[0] if broker_names else "127.0.0.1"
    children = [
        Child("mosquitto", [programs["mosquitto"], "-c", str(layout.mosquitto_conf)],
              f"mqtt://127.0.0.1:{ports['mqtt']} mqtts://{tls_name}:{ports['mqtts']}",
              lambda: listening(ports["mqtt"]) and listening(ports["mqtts"]), env),
        Child("prometheus", [programs["prometheus"], f"--config.file={layout.prometheus_conf}",
                             f"--storage.tsdb.path={layout.prometheus_data}",
                             f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                             "--web.enable-remote-write-receiver"],
              f"http://127.0.0.1:{ports['prometheus']}/",
              lambda: http_ok(f"http://127.0.0.1:{ports['prometheus']}/-/ready"), env),
        Child("alertmanager", [programs["prometheus-alertmanager"],
                               f"--config.file={layout.alertmanager_conf}",
                               f"--storage.path={layout.alertmanager_data}",
                               f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                               "--cluster.listen-address="],
              f"http://127.0.0.1:{ports['alertmanager']}/",
              lambda: http_ok(f"http://127.0.0.1:{ports['alertmanager']}/-/ready"), env),
        Child("collector", [hatang, "collector", "-c", str(layout.collector_conf)],
              f"http://127.0.0.1:{ports['collector']}/",
              lambda: http_ok(f"http://127.0.0.1:{ports['collector']}/readyz"),
              {**env, "CREDENTIALS_DIRECTORY": str(layout.secrets)}),
    ]
    try:
        for child in children:
            sup.start(child)
        say("ready")
        while True:
            sup.check()
            time.sleep(0.2)
    except Stop as stop:
        say(f"{stop}: stopping {', '.join(c.name for c in sup.children)}")
        sup.stop_all()
        say("stopped")
        return 0
    except ChildDied as died:
        child = died.child
        assert child.proc is not None
        code = child.proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        say(f"{child.name} (pid {child.proc.pid}) {how}; last lines of {child.log_path}:\n"
            f"{child.log_tail()}", sys.stderr)
        sup.stop_all()
        return 1
    except BaseException:
        sup.stop_all()
        raise

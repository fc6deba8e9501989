"""Start real Mosquitto and net-snmp ``snmpd`` on free loopback ports for tests; stop them by PID.

Every component gets its own config file, log file and state directory under a caller-supplied work
directory, listens on 127.0.0.1 only, and is stopped with SIGTERM, a deadline, then SIGKILL. Nothing
here touches the system Mosquitto on port 1883, /etc/snmp, /var/lib/snmp, or the privileged ports 161
and 199.

Facts this module relies on (Debian 12: mosquitto 2.0.11, net-snmp 5.9.3), checked by hand:

* Mosquitto started as root drops privileges to user ``mosquitto``, which then cannot open a log file
  or read password/ACL/TLS files inside pytest's 0700 tmp dirs ("Unable to open log file"). When
  running as root we therefore write ``user root`` into the config (mosquitto then only warns).
* ``snmpd`` run as root opens the SMUX port 0.0.0.0:199/tcp unless the module is excluded: we pass
  ``-I -smux``. No AgentX socket is opened (``master agentx`` is off by default).
* Passing the endpoint both as ``agentAddress`` and on the command line makes snmpd bind it twice
  and exit ("Error opening specified endpoint"): we give it only in the config file.
* ``MIBS=`` in the environment stops snmpd and the tools from spamming the log about missing MIB
  modules (Debian ships without the IETF MIB files); we use numeric OIDs anyway.
* The tools (``snmpget`` ...) create ``/var/lib/snmp/cert_indexes`` unless ``SNMP_PERSISTENT_DIR``
  points elsewhere: we point it at a private temp dir.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Self, TypeVar

import pytest

from hatang.sim import ber as sim_ber
from tests.support.waiting import wait_until

__all__ = [
    "LOOPBACK",
    "Mosquitto",
    "ServiceError",
    "Snmpd",
    "free_tcp_port",
    "free_udp_port",
    "in_ephemeral_range",
    "owns_port",
    "pid_alive",
    "require_binary",
    "snmp_probe",
    "snmpget",
    "snmpwalk",
    "start_mosquitto",
    "start_snmpd",
    "stop_all",
    "tcp_port_open",
]

LOOPBACK = "127.0.0.1"
SYS_UPTIME_OID = "1.3.6.1.2.1.1.3.0"

MOSQUITTO_READY_TIMEOUT = 10.0
SNMPD_READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3  # retries with a fresh port when an auto-chosen port turned out to be taken

_EXTRA_BIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class ServiceError(RuntimeError):
    """A component failed to start or to become ready; the message includes its log."""


# --------------------------------------------------------------------------------------------------
# binaries


def unavailable(message: str) -> NoReturn:
    """A real dependency or host capability a test needs is missing: ``pytest.fail`` when the
    environment variable ``CI`` equals "true" (CI must provide it), otherwise ``pytest.skip``."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str, package: str) -> str:
    """Return the absolute path of ``name`` (searched on PATH plus /usr/sbin and /sbin).

    When it is missing: ``pytest.fail`` if the environment variable ``CI`` equals "true" (CI must
    install it), otherwise ``pytest.skip``; both name the Debian package to install.
    """
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_BIN_DIRS])
    found = shutil.which(name, path=search)
    if found is not None:
        return os.path.abspath(found)
    msg = (
        f"required program {name!r} not found: "
        f"install the Debian package {package!r} (apt-get install {package})"
    )
    unavailable(msg)


# --------------------------------------------------------------------------------------------------
# ports
#
# Every port we hand out lies OUTSIDE the kernel's ephemeral range (net.ipv4.ip_local_port_range, here
# 32768-60999). A client retrying connect() to a stopped server on 127.0.0.1 whose port is in that
# range can be given that very port as its own source port and connect to itself (TCP self-connect:
# paho then reads its own CONNECT, "Unrecognised command 16"); the restarted server then fails with
# "Address already in use". The same range is where every other program's outgoing connections take
# their source ports, so a port from it can also be taken between our check and the daemon's bind.
# Services here are restarted on the same port (broker outages, collector restarts), so no port of
# ours may come from that range.

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PREFERRED_PORTS = (20000, 32767)  # below Linux's default ephemeral range; no well-known service here
_handed_out: set[tuple[int, int]] = set()
_ports_lock = threading.Lock()
_random = random.Random()


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range of automatically assigned source ports (Linux's default when unreadable)."""
    try:
        low, high = (int(n) for n in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def in_ephemeral_range(port: int) -> bool:
    low, high = ephemeral_port_range()
    return low <= port <= high


def _candidate_ports() -> list[int]:
    low, high = ephemeral_port_range()
    preferred = [p for p in range(_PREFERRED_PORTS[0], _PREFERRED_PORTS[1] + 1) if not low <= p <= high]
    if len(preferred) >= 1000:
        return preferred
    others = [p for p in range(1024, 65536) if not low <= p <= high]
    if len(others) < 100:
        raise RuntimeError(f"net.ipv4.ip_local_port_range {low}-{high} leaves almost no unprivileged port "
                           "outside it for test services")
    return others


def _bind_free(kind: socket.SocketKind, port: int) -> bool:
    """True when nothing holds 127.0.0.1:``port`` (no SO_REUSEADDR: a TIME_WAIT connection counts)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port(kind: socket.SocketKind) -> int:
    candidates = _candidate_ports()
    for _ in range(500):
        port = _random.choice(candidates)
        with _ports_lock:
            if (kind, port) in _handed_out or not _bind_free(kind, port):
                continue
            _handed_out.add((kind, port))
            return port
    raise RuntimeError("could not find a free loopback port outside the ephemeral range that was not "
                       "already handed out")


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 outside the ephemeral range, free a moment ago, never handed out before
    in this process: a service on it can be stopped and started again on the same port."""
    return _free_port(socket.SOCK_STREAM)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 outside the ephemeral range, free a moment ago, never handed out before
    in this process."""
    return _free_port(socket.SOCK_DGRAM)


def tcp_port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# processes

_live: set[_Service] = set()
_live_lock = threading.Lock()


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child when the thread that forked it dies (e.g. pytest is killed)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def _spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # append: the program may write the same file itself
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        where = f" in {cwd}" if cwd is not None else ""
        log.write(f"=== test harness {stamp}: exec {' '.join(argv)}{where}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            close_fds=True,
            preexec_fn=_set_pdeathsig if sys.platform == "linux" else None,
        )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _terminate(
    proc: subprocess.Popen[bytes] | None,
    pid: int,
    timeout: float = STOP_TIMEOUT,
    first_signal: signal.Signals = signal.SIGTERM,
) -> None:
    """Send ``first_signal`` (SIGTERM) to ``pid``, wait up to ``timeout``, then SIGKILL; reap our child."""
    if pid <= 0:  # never started; os.kill(0, ...) would signal our own process group
        return
    if proc is not None and proc.poll() is not None:
        return
    if proc is None and not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first_signal)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
        return
    try:
        wait_until(lambda: not pid_alive(pid), timeout, message=f"pid {pid} to exit after SIGTERM")
    except AssertionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout, message=f"pid {pid} to exit after SIGKILL")


def _socket_inodes(proto: str, port: int, listening: bool) -> set[str]:
    """Inodes of 127.0.0.1:``port`` sockets in /proc/net/``proto`` (TCP: only those in LISTEN)."""
    wanted = f"0100007F:{port:04X}"
    inodes: set[str] = set()
    for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[1] == wanted and (not listening or cols[3] == "0A"):
            inodes.add(cols[9])
    return inodes


def owns_port(pid: int, proto: str, port: int) -> bool:
    """True when process ``pid`` holds the 127.0.0.1:``port`` socket (``proto``: "tcp" or "udp").

    A successful connect alone proves nothing: during the free-port race another program may hold the
    port while our daemon dies on "Address already in use". Without procfs this returns True.
    """
    if not Path("/proc/net").is_dir():
        return True
    inodes = _socket_inodes(proto, port, listening=proto == "tcp")
    if not inodes:
        return False
    targets = {f"socket:[{inode}]" for inode in inodes}
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd) in targets:
                return True
    return False


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class _Service:
    """Shared lifecycle of a foreground daemon that we own (a plain mixin: not a dataclass base, so the
    concrete dataclasses keep their own field order). Subclasses define argv, env and readiness."""

    host: str
    port: int
    pid: int
    config_path: Path
    log_path: Path
    _proc: subprocess.Popen[bytes] | None
    _ready_timeout: float

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _probe(self) -> bool:
        raise NotImplementedError

    def _name(self) -> str:
        return type(self).__name__.lower()

    @property
    def running(self) -> bool:
        """True while the process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The whole log file (our exec markers, the program's own log, its stdout and stderr)."""
        return _read_log(self.log_path)

    def start(self) -> None:
        """Start the program (again) on the same port with the same config; wait until it is ready.

        A no-op while it is running. Raises :class:`ServiceError` with the log when it dies or does not
        become ready in time (after killing whatever is left).
        """
        if self.running:
            return
        if self._proc is not None and in_ephemeral_range(self.port):
            raise ServiceError(
                f"{self._name()} would be restarted on {self.host}:{self.port}, inside the ephemeral port "
                f"range {ephemeral_port_range()}: a client retrying to connect may have taken the port "
                "(TCP self-connect). Start it on a port from free_tcp_port()/free_udp_port()."
            )
        proc = _spawn(self._argv(), self.log_path, self._env())
        self._proc = proc
        self.pid = proc.pid
        with _live_lock:
            _live.add(self)

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceError(
                    f"{self._name()} (pid {proc.pid}) exited with code {proc.returncode} while starting "
                    f"on {self.host}:{self.port}; config {self.config_path}\n--- log {self.log_path} ---\n"
                    f"{self.log()}"
                )
            return self._probe()

        try:
            wait_until(
                ready, self._ready_timeout, message=f"{self._name()} on {self.host}:{self.port} to be ready"
            )
        except AssertionError as exc:
            self.stop()
            raise ServiceError(
                f"{exc}\nconfig {self.config_path}\n--- log {self.log_path} ---\n{self.log()}"
            ) from None
        except ServiceError:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM by pid, wait (deadline), SIGKILL if needed. Idempotent."""
        try:
            _terminate(self._proc, self.pid)
        finally:
            with _live_lock:
                _live.discard(self)

    def kill(self) -> None:
        """SIGKILL by pid at once (a crash rather than a clean shutdown). Idempotent."""
        try:
            _terminate(self._proc, self.pid, first_signal=signal.SIGKILL)
        finally:
            with _live_lock:
                _live.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


S = TypeVar("S", bound=_Service)


def stop_all() -> None:
    """Stop every component started through this module that is still running (session teardown)."""
    with _live_lock:
        services = list(_live)
    for service in services:
        with contextlib.suppress(Exception):
            service.stop()


atexit.register(stop_all)


def _start_with_port_retry(make: Callable[[int], S], port: int | None, new_port: Callable[[], int]) -> S:
    """Build and start a service; when the port was auto-chosen and turns out taken, retry with another."""
    attempts = 1 if port is not None else _START_ATTEMPTS
    for attempt in range(attempts):
        service = make(port if port is not None else new_port())
        try:
            service.start()
            return service
        except ServiceError as exc:
            text = str(exc)
            port_taken = "Address already in use" in text or "Error opening specified endpoint" in text
            if not port_taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------------
# Mosquitto


@dataclass(eq=False)
class Mosquitto(_Service):
    """A running Mosquitto broker that this process owns."""

    host: str
    port: int
    pid: int
    config_path: Path
    log_path: Path
    binary: str = field(default="/usr/sbin/mosquitto", repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _ready_timeout: float = field(default=MOSQUITTO_READY_TIMEOUT, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def _probe(self) -> bool:
        return tcp_port_open(self.host, self.port) and owns_port(self.pid, "tcp", self.port)


def _mosquitto_config(port: int, log_path: Path, extra_config: str) -> str:
    lines = [
        "# written by tests/support/services.py",
        f"listener {port} {LOOPBACK}",
        "persistence false",
        f"log_dest file {log_path}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if "password_file" not in extra_config and "allow_anonymous" not in extra_config:
        lines.append("allow_anonymous true")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root mosquitto would switch to user "mosquitto", which cannot write the log or read files
        # in pytest's 0700 tmp dirs. Staying root only costs a warning line in the log.
        lines.append("user root")
    if extra_config:
        lines += ["", "# extra_config", extra_config.strip()]
    return "\n".join(lines) + "\n"


def start_mosquitto_keeping_sessions(workdir: Path) -> Mosquitto:
    """A broker that keeps sessions across its own restart, saved every second (as
    deploy/mosquitto/hatang.conf does), so a collector's persistent session queues what agents publish
    while the collector is away. Its store is ``workdir/data``."""
    store = Path(workdir).absolute() / "data"
    store.mkdir(parents=True, exist_ok=True)
    return start_mosquitto(workdir, extra_config=f"persistence true\npersistence_location {store}/\n"
                                                  "autosave_interval 1")


def start_mosquitto(workdir: Path, extra_config: str = "", port: int | None = None) -> Mosquitto:
    """Start ``mosquitto -c FILE`` in the foreground on 127.0.0.1 and wait until it accepts TCP.

    ``workdir`` receives ``mosquitto.conf`` and ``mosquitto.log``. ``allow_anonymous true`` is added
    unless ``extra_config`` mentions ``password_file`` or ``allow_anonymous``. Raises
    :class:`ServiceError` (with the log) when the broker dies or does not listen within 10 s.
    """
    binary = require_binary("mosquitto", "mosquitto")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "mosquitto.conf"
    log_path = workdir / "mosquitto.log"

    def make(p: int) -> Mosquitto:
        config_path.write_text(_mosquitto_config(p, log_path, extra_config))
        return Mosquitto(LOOPBACK, p, 0, config_path, log_path, binary=binary)

    return _start_with_port_retry(make, port, free_tcp_port)


# --------------------------------------------------------------------------------------------------
# snmpd


def _snmp_v2c_get(community: str, oid: str, request_id: int) -> bytes:
    """A GET request encoded by the simulator's codec (the test oracle, independent of the agent's)."""
    name = tuple(int(arc) for arc in oid.strip(".").split("."))
    return sim_ber.encode_message_parts(1, community.encode(), sim_ber.GET_REQUEST, request_id, 0, 0,
                                        [sim_ber.encode_varbind(name, sim_ber.NULL_VALUE)])


def snmp_probe(host: str, port: int, community: str = "public", timeout: float = 0.5) -> bool:
    """Send one hand-built SNMPv2c GET of sysUpTime.0 over UDP; True when any SNMP reply comes back."""
    request_id = int.from_bytes(os.urandom(3), "big")
    packet = _snmp_v2c_get(community, SYS_UPTIME_OID, request_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            sock.send(packet)
            reply = sock.recv(65535)
        except OSError:  # timeout, or ICMP port unreachable -> ConnectionRefusedError
            return False
    return reply[:1] == b"\x30"


_client_state_dir: str | None = None


def _snmp_client_env() -> dict[str, str]:
    """Environment for net-snmp tools: no MIB loading noise, no writes to /var/lib/snmp."""
    global _client_state_dir
    if _client_state_dir is None:
        _client_state_dir = tempfile.mkdtemp(prefix="hatang-snmp-client-")
        atexit.register(shutil.rmtree, _client_state_dir, True)
    env = dict(os.environ)
    env["MIBS"] = ""
    env["SNMP_PERSISTENT_DIR"] = _client_state_dir
    env["SNMPCONFPATH"] = _client_state_dir
    return env


@dataclass(eq=False)
class Snmpd(_Service):
    """A running net-snmp ``snmpd`` that this process owns."""

    host: str
    port: int
    pid: int
    community: str
    config_path: Path
    log_path: Path
    persistent_dir: Path = field(repr=False, default=Path())
    pid_file: Path = field(repr=False, default=Path())
    binary: str = field(default="/usr/sbin/snmpd", repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _ready_timeout: float = field(default=SNMPD_READY_TIMEOUT, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        return [
            self.binary,
            "-f",  # foreground: the pid we hold is the daemon
            "-LOi",  # log info and above to stdout (-> our log file); debug stays off
            "-C",  # read no config file but ours
            "-c",
            str(self.config_path),
            "-I",
            "-smux",  # otherwise root snmpd listens on 0.0.0.0:199/tcp
            "-p",
            str(self.pid_file),
            f"--persistentDir={self.persistent_dir}",
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MIBS"] = ""
        env["SNMP_PERSISTENT_DIR"] = str(self.persistent_dir)
        return env

    def _probe(self) -> bool:
        return owns_port(self.pid, "udp", self.port) and snmp_probe(self.host, self.port, self.community)


def _snmpd_config(port: int, community: str, extra_config: str) -> str:
    lines = [
        "# written by tests/support/services.py",
        f"agentAddress udp:{LOOPBACK}:{port}",
        f"rocommunity {community} {LOOPBACK}",
        "sysLocation hatang test bench",
        "sysContact hatang-tests@example.invalid",
        "sysName hatang-test-snmpd",
        "dontLogTCPWrappersConnects yes",  # else every request logs "Connection from UDP: ..."
    ]
    if extra_config:
        lines += ["", "# extra_config", extra_config.strip()]
    return "\n".join(lines) + "\n"


def start_snmpd(
    workdir: Path, extra_config: str = "", community: str = "public", port: int | None = None
) -> Snmpd:
    """Start ``snmpd -f`` on udp:127.0.0.1:PORT and wait until it answers an SNMP GET of sysUpTime.

    ``workdir`` receives ``snmpd.conf``, ``snmpd.log``, ``snmpd.pid`` and the ``persist/`` state dir
    (engine boots, converted ``createUser`` lines). ``extra_config`` is appended to the config, e.g.
    ``createUser U SHA256 "authpass" AES "privpass"`` and ``rouser U priv``. The agent serves the
    host's real MIB-II / IF-MIB (including ifXTable ``ifHC*`` counters for ``lo``).
    """
    binary = require_binary("snmpd", "snmpd")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    persistent_dir = workdir / "persist"
    persistent_dir.mkdir(exist_ok=True)
    config_path = workdir / "snmpd.conf"

    def make(p: int) -> Snmpd:
        config_path.write_text(_snmpd_config(p, community, extra_config))
        return Snmpd(
            LOOPBACK,
            p,
            0,
            community,
            config_path,
            workdir / "snmpd.log",
            persistent_dir=persistent_dir,
            pid_file=workdir / "snmpd.pid",
            binary=binary,
        )

    return _start_with_port_retry(make, port, free_udp_port)


# --------------------------------------------------------------------------------------------------
# net-snmp command line tools


def _address_of(target: Snmpd | str) -> str:
    return target.address if isinstance(target, Snmpd) else target


def _run_tool(argv: list[str], timeout: float) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=_snmp_client_env(), timeout=timeout, check=False
    )
    if proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise ServiceError(f"{' '.join(argv)} failed with code {proc.returncode}: {output}")
    return proc.stdout


def snmpget(
    target: Snmpd | str, oid: str, community: str = "public", timeout: float = 1.0, retries: int = 1
) -> str:
    """Run the real ``snmpget -v2c -c COMMUNITY -Oqv -On -Ot ADDRESS OID``; return the value text.

    Counters and TimeTicks come back as plain decimal numbers (``-Ot``), strings in double quotes
    (``"lo"``). A missing object is not an error for snmpget: the text is then e.g. ``No Such Object
    available on this agent at this OID``. Raises :class:`ServiceError` when the tool fails (timeout,
    bad community, unreachable agent).
    """
    tool = require_binary("snmpget", "snmp")
    argv = [tool, "-v2c", "-c", community, "-t", str(timeout), "-r", str(retries), "-Oqv", "-On", "-Ot"]
    out = _run_tool([*argv, _address_of(target), oid], timeout * (retries + 1) + 10)
    return out.strip()


def snmpwalk(
    target: Snmpd | str, oid: str, community: str = "public", timeout: float = 1.0, retries: int = 1
) -> dict[str, str]:
    """Run the real ``snmpwalk -v2c -Oq -On -Ot``; return ``{numeric OID without leading dot: value}``."""
    tool = require_binary("snmpwalk", "snmp")
    argv = [tool, "-v2c", "-c", community, "-t", str(timeout), "-r", str(retries), "-Oq", "-On", "-Ot"]
    out = _run_tool([*argv, _address_of(target), oid], timeout * (retries + 1) + 30)
    rows: dict[str, str] = {}
    for line in out.splitlines():
        if not line.startswith("."):
            continue  # e.g. "End of MIB" or a continuation line of a multi-line string
        name, _, value = line.partition(" ")
        rows[name.lstrip(".")] = value
    return rows


SHIPPED_MOSQUITTO = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
# settings of the shipped hatang.conf that name the production host's files and ports: tests set their own
_HOST_SETTINGS = {"listener", "certfile", "keyfile", "cafile", "password_file", "acl_file",
                  "persistence_location", "per_listener_settings"}


def shipped_broker_settings() -> str:
    """deploy/mosquitto/hatang.conf without the lines that name the production host's files and listeners."""
    lines = [line.strip() for line in (SHIPPED_MOSQUITTO / "hatang.conf").read_text().splitlines()]
    return "\n".join(line for line in lines
                     if line and not line.startswith("#") and line.split()[0] not in _HOST_SETTINGS)


def start_shipped_mosquitto(workdir: Path, passwords: dict[str, str], port: int | None = None) -> Mosquitto:
    """Mosquitto as shipped: the settings of deploy/mosquitto/hatang.conf, its ACL file (copied verbatim)
    and a password file for ``passwords`` (user -> password); anonymous clients refused. ``port``: to
    start a broker again where the clients know it (outside the ephemeral range, free_tcp_port)."""
    passwd = require_binary("mosquitto_passwd", "mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "hatang.acl"
    shutil.copyfile(SHIPPED_MOSQUITTO / "hatang.acl", acl)
    password_file = workdir / "hatang.passwd"
    for i, (user, password) in enumerate(passwords.items()):
        subprocess.run([passwd, *(["-c"] if i == 0 else []), "-b", str(password_file), user, password],
                       check=True, timeout=30, capture_output=True)
    extra = (f"{shipped_broker_settings()}\npersistence_location {workdir}/\n"
             f"allow_anonymous false\npassword_file {password_file}\nacl_file {acl}\n")
    return start_mosquitto(workdir, extra_config=extra, port=port)


# Shared libraries a running ``hatang agent`` must not have mapped: pydantic's core and PyYAML's C loader
# (its configuration is checked by a child process, agent/checked_config.py).
HEAVY_LIBRARIES = ("pydantic_core", "_yaml")


def heavy_libraries(pid: int) -> list[str]:
    """The :data:`HEAVY_LIBRARIES` that process ``pid`` has mapped (``/proc/PID/maps``), by file name.
    Raises AssertionError if the maps do not show the interpreter itself (nothing was read)."""
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        files = {Path(line.split()[-1]).name for line in maps if len(line.split()) >= 6}
    if not any("python" in name for name in files):
        raise AssertionError(f"/proc/{pid}/maps shows no python library or executable: {sorted(files)}")
    return sorted(name for name in files if any(heavy in name for heavy in HEAVY_LIBRARIES))

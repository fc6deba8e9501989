"""``scripts/central-up``: the hatang centre on a plain Debian host, from Debian packages, without containers.

Install step (always; idempotent):

1. check the Debian programs (mosquitto, prometheus, prometheus-alertmanager; Grafana optional);
2. ``hatang fleet init`` the fleet directory when it has no fleet.yaml;
3. copy the shipped files of deploy/ under ROOT (see docs/central-install.md for the table), with only
   these substitutions, made in lines that are not comments:

   * /etc/hatang/fleet/ becomes the fleet directory (--fleet; by default ROOT/etc/hatang/fleet/):
     deploy/mosquitto/hatang.conf reads the broker's certificate, key and password file there, in
     place, so ``hatang fleet add-agent/revoke-agent`` change what the broker reads;
   * other absolute paths under /etc/mosquitto/, /var/lib/mosquitto/, /etc/prometheus/, /etc/hatang/,
     /var/lib/hatang-collector/ and /var/lib/grafana/ get ROOT in front (nothing changes when ROOT is /);
   * with ``--ports``: ``127.0.0.1:1883`` (mqtt), ``127.0.0.1:9108`` (collector), ``127.0.0.1:9090``
     (prometheus) and ``127.0.0.1:9093`` (alertmanager) get the given port, and so do Mosquitto's
     ``listener 1883`` (mqtt) and ``listener 8883`` (mqtts) lines;

   files it writes itself: /etc/default/prometheus and /etc/default/prometheus-alertmanager (ARGS for
   Debian's units), a drop-in for mosquitto.service (Mosquitto runs hatang.conf alone), a drop-in for
   hatang-collector.service when hatang is not where the unit looks for it, and the collector's
   config from deploy/central/collector.yaml;
4. permissions for the daemons' users (root:mosquitto 0640 for what the broker reads, the fleet
   directory searchable by group mosquitto, root:prometheus 0640 for Alertmanager's files, root:root
   0600 for the collector's credentials in /etc/hatang/secrets);
5. unless ``--foreground``, when ROOT is / and systemd runs: the hatang user, ``systemctl daemon-reload``,
   ``enable --now`` of the four services, a restart of those whose files changed.

A file this command installed and an operator changed since is kept: the new version is written next to
it as ``FILE.hatang-new``. A file it never installed (Debian's own prometheus.yml, say) is saved as
``FILE.hatang-old`` before it is replaced. The checksums of what it installed are kept in
ROOT/var/lib/hatang-central/installed.json.

``--foreground`` then starts the same daemons as child processes with the installed files, waits until
each is ready, prints one line per service and ``central-up: ready``, and stops them all on SIGTERM or
SIGINT (exit 0). When one of them dies it stops the others and exits 1 with the dead one's log tail.

Standard library only: it runs with Debian's python3 before anything else is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROG = "central-up"

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "collector": 9108, "prometheus": 9090, "alertmanager": 9093}
# "127.0.0.1:<default>" in the shipped files -> the port of that name
LOOPBACK_PORT_NAMES = {1883: "mqtt", 9108: "collector", 9090: "prometheus", 9093: "alertmanager"}
# Mosquitto's "listener <default>" lines -> the port of that name
LISTENER_PORT_NAMES = {1883: "mqtt", 8883: "mqtts"}
# absolute paths that get ROOT in front; DEFAULT_FLEET/ becomes the fleet directory (--fleet)
DEFAULT_FLEET = "/etc/hatang/fleet/"
ROOTED_PREFIXES = ("/etc/mosquitto/", "/var/lib/mosquitto/", "/etc/prometheus/", "/etc/hatang/",
                   "/var/lib/hatang-collector/", "/var/lib/grafana/")

# Required programs and the Debian package of each; Grafana is optional (not in Debian).
PROGRAMS = (
    ("mosquitto", "mosquitto"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("prometheus-alertmanager", "prometheus-alertmanager"),
    ("amtool", "prometheus-alertmanager"),
)
SYSTEM_BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")
HATANG_CANDIDATES = ("/opt/hatang/venv/bin/hatang", "/usr/local/bin/hatang")
SERVICES = ("mosquitto", "prometheus", "prometheus-alertmanager", "hatang-collector")

READY_TIMEOUT = 60.0  # per service
STOP_TIMEOUT = 15.0  # SIGTERM -> SIGKILL
LOG_TAIL_LINES = 40


class CentralUpError(Exception):
    """Something the operator has to fix; ``str()`` says what and how."""


def say(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROG}: {message}", file=stream or sys.stdout, flush=True)


# --------------------------------------------------------------------------------------------------
# options


def parse_ports(text: str) -> dict[str, int]:
    """``mqtt=1883,mqtts=8883,...`` (any subset) -> the full map, defaults filled in."""
    ports = dict(DEFAULT_PORTS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in DEFAULT_PORTS:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected NAME=PORT with NAME one of {', '.join(DEFAULT_PORTS)}")
        try:
            port = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: the port is not a number") from None
        if not 0 < port < 65536:
            raise argparse.ArgumentTypeError(f"{item!r}: the port is out of range")
        ports[name] = port
    if len(set(ports.values())) != len(ports):
        raise argparse.ArgumentTypeError(f"two services on one port: {ports}")
    return ports


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Install the hatang centre (Mosquitto, collector, Prometheus, Alertmanager; Grafana "
                    "provisioning when Grafana is installed) from the Debian packages and the files in "
                    "deploy/, and start it with systemd, or in the foreground with --foreground. "
                    "See docs/central-install.md.")
    p.add_argument("--root", default="/", type=Path,
                   help="install under this directory instead of / (tests, staging); default /")
    p.add_argument("--fleet", type=Path, metavar="DIR",
                   help="the fleet directory (default ROOT/etc/hatang/fleet); made by `hatang fleet init` "
                        "when it has no fleet.yaml")
    p.add_argument("--broker-name", action="append", default=[], metavar="NAME",
                   help="a DNS name or IP address the offices use to reach this broker; repeat for more. "
                        "Needed when the fleet directory is created: the first one goes into the broker "
                        "URL mqtts://NAME:<mqtts port>, all of them into the server certificate")
    p.add_argument("--hatang", metavar="PATH",
                   help="the hatang program (default: hatang on PATH, then /opt/hatang/venv/bin/hatang, "
                        "/usr/local/bin/hatang)")
    p.add_argument("--foreground", action="store_true",
                   help="after installing, run the daemons as child processes until SIGTERM/SIGINT "
                        "instead of handing them to systemd")
    p.add_argument("--ports", type=parse_ports, metavar="NAME=PORT,...",
                   help="ports instead of mqtt=1883,mqtts=8883,collector=9108,prometheus=9090,"
                        "alertmanager=9093 (any subset)")
    return p


# --------------------------------------------------------------------------------------------------
# users, permissions


def is_root() -> bool:
    return os.geteuid() == 0


def uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def set_owner(path: Path, user: str | None, group: str | None, mode: int) -> None:
    """chmod always; chown (without following links) only as root and for users/groups that exist."""
    if not path.is_symlink():
        os.chmod(path, mode)
    if not is_root():
        return
    uid = uid_of(user) if user else None
    gid = gid_of(group) if group else None
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)


def make_dir(path: Path, user: str | None = "root", group: str | None = "root", mode: int = 0o755,
             enforce: bool = False) -> None:
    """Create ``path`` (and its parents) with this owner and mode; an existing directory is left as it
    is unless ``enforce`` (directories whose owner and mode a daemon depends on)."""
    if path.is_dir() and not enforce:
        return
    path.mkdir(parents=True, exist_ok=True)
    set_owner(path, user, group, mode)


def blocked_for(user: str, path: Path, want_write: bool = False) -> str | None:
    """Why ``user`` cannot reach (read, or write with ``want_write``) ``path`` (symlinks followed), or
    None when it can. Checks the classic mode bits only (no ACLs)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return f"there is no user {user}"
    uid = entry.pw_uid
    gids = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}

    def allowed(st: os.stat_result, bit: int) -> bool:  # bit: 4 read, 2 write, 1 execute/search
        if uid == 0:
            return True
        if st.st_uid == uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid in gids:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)

    real = path.resolve()
    for parent in reversed(real.parents):
        st = parent.stat()
        if not allowed(st, 1):
            return (f"{parent} (mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}) is not "
                    f"searchable by user {user}")
    st = real.stat()
    if not allowed(st, 2 if want_write else 4):
        return (f"{real} (mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}) is not "
                f"{'writable' if want_write else 'readable'} by user {user}")
    if real.is_dir() and not allowed(st, 1):
        return f"{real} is not searchable by user {user}"
    return None


# --------------------------------------------------------------------------------------------------
# the shipped files and their substitutions


def rewrite(text: str, root: Path, ports: dict[str, int] | None, fleet: Path) -> str:
    """The shipped ``text`` with the documented substitutions (module doc), in non-comment lines only:
    the fleet directory for /etc/hatang/fleet/, ROOT before the other absolute paths of ROOTED_PREFIXES,
    and with ``ports`` the loopback and listener ports."""
    prefix = "" if root == Path("/") else str(root)
    fleet_dir = f"{fleet}/"
    paths = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in (DEFAULT_FLEET, *ROOTED_PREFIXES))
                       + ")")

    def path(m: re.Match[str]) -> str:
        return fleet_dir if m.group(1) == DEFAULT_FLEET else prefix + m.group(1)
    loopback = re.compile(r"\b127\.0\.0\.1:(\d+)\b")
    listener = re.compile(r"^(\s*listener\s+)(\d+)\b")

    def loopback_port(m: re.Match[str]) -> str:
        name = LOOPBACK_PORT_NAMES.get(int(m.group(1)))
        return f"127.0.0.1:{ports[name]}" if ports is not None and name else m.group(0)

    def listener_port(m: re.Match[str]) -> str:
        name = LISTENER_PORT_NAMES.get(int(m.group(2)))
        return f"{m.group(1)}{ports[name]}" if ports is not None and name else m.group(0)

    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            line = paths.sub(path, line)
            if ports is not None:
                line = listener.sub(listener_port, loopback.sub(loopback_port, line))
        out.append(line)
    return "".join(out)


def check_mosquitto_listeners(text: str) -> None:
    """The shipped Mosquitto config must use the two listener ports this command knows how to change."""
    found = {int(m.group(1)) for m in re.finditer(r"^\s*listener\s+(\d+)", text, re.MULTILINE)}
    unknown = found - set(LISTENER_PORT_NAMES)
    if unknown:
        raise CentralUpError(f"deploy/mosquitto/hatang.conf has listener ports {sorted(unknown)} that "
                             f"{PROG} does not know (expected {sorted(LISTENER_PORT_NAMES)}): update "
                             "LISTENER_PORT_NAMES in deploy/central/central_up.py")


def collector_config() -> str:
    return (DEPLOY / "central" / "collector.yaml").read_text(encoding="utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Installer:
    """Writes files under ROOT with dpkg-like conffile handling and remembers what changed."""

    root: Path
    manifest_path: Path
    manifest: dict[str, str] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # services whose files changed
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0, "kept": 0})

    @classmethod
    def load(cls, root: Path) -> Installer:
        path = root / "var/lib/hatang-central/installed.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            manifest = {}
        return cls(root, path, manifest)

    def save(self) -> None:
        make_dir(self.manifest_path.parent, mode=0o755)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def file(self, dest: Path, data: str | bytes, *, service: str, user: str = "root", group: str = "root",
             mode: int = 0o644) -> None:
        """Install ``data`` as ``dest`` (see the module doc for files changed locally or not ours)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        key = str(dest)
        if not dest.parent.exists():
            make_dir(dest.parent, mode=0o755)
        if dest.exists():
            current = dest.read_bytes()
            if current == raw:
                self.counts["unchanged"] += 1
                self.manifest[key] = sha256(raw)
                set_owner(dest, user, group, mode)
                return
            if key in self.manifest and self.manifest[key] != sha256(current):
                new = dest.with_name(dest.name + ".hatang-new")
                self._write(new, raw, user, group, mode)
                self.counts["kept"] += 1
                self.notes.append(f"kept {dest}: changed here since {PROG} installed it; the shipped "
                                  f"version is {new.name} next to it (merge by hand, then run {PROG} again)")
                set_owner(dest, user, group, mode)
                return
            if key not in self.manifest:
                old = dest.with_name(dest.name + ".hatang-old")
                shutil.copy2(dest, old)
                self.notes.append(f"replaced {dest} (not installed by {PROG}); the previous one is "
                                  f"{old.name}")
            self.counts["updated"] += 1
        else:
            self.counts["new"] += 1
        self._write(dest, raw, user, group, mode)
        self.manifest[key] = sha256(raw)
        self.changed.add(service)

    def copy_if_absent(self, dest: Path, source: Path, *, user: str, group: str, mode: int) -> None:
        """Secrets: installed once from an example, never overwritten."""
        if not dest.exists():
            self._write(dest, source.read_bytes(), user, group, mode)
            self.counts["new"] += 1
            self.notes.append(f"{dest}: placeholder from {source.relative_to(REPO)}; put the real secret "
                              "there")
        else:
            set_owner(dest, user, group, mode)

    def remove(self, dest: Path, *, service: str) -> None:
        """Remove a file this command installed before and no longer needs (unless changed here)."""
        key = str(dest)
        if key not in self.manifest or not dest.exists():
            return
        if sha256(dest.read_bytes()) == self.manifest.pop(key):
            dest.unlink()
            self.changed.add(service)
            self.notes.append(f"removed {dest} (no longer needed)")
        else:
            self.notes.append(f"{dest} is no longer needed but was changed here: kept; remove it by hand")

    @staticmethod
    def _write(dest: Path, raw: bytes, user: str, group: str, mode: int) -> None:
        tmp = dest.with_name(f".{dest.name}.central-up")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        set_owner(tmp, user, group, mode)
        os.replace(tmp, dest)


# --------------------------------------------------------------------------------------------------
# install step


@dataclass
class Layout:
    """Where the installed files are (ROOT-prefixed)."""

    root: Path
    fleet: Path

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def mosquitto_conf(self) -> Path:
        return self.at("/etc/mosquitto/hatang.conf")

    @property
    def prometheus_conf(self) -> Path:
        return self.at("/etc/prometheus/prometheus.yml")

    @property
    def alertmanager_conf(self) -> Path:
        return self.at("/etc/prometheus/alertmanager/hatang.yml")

    @property
    def collector_conf(self) -> Path:
        return self.at("/etc/hatang/collector.yaml")

    @property
    def secrets(self) -> Path:
        return self.at("/etc/hatang/secrets")

    @property
    def prometheus_data(self) -> Path:
        return self.at("/var/lib/prometheus/metrics2")

    @property
    def alertmanager_data(self) -> Path:
        return self.at("/var/lib/prometheus/alertmanager")

    @property
    def logs(self) -> Path:
        return self.at("/var/log/hatang-central")

    @property
    def run(self) -> Path:
        return self.at("/run/hatang-central")


def find_program(name: str) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SYSTEM_BIN_DIRS])
    return shutil.which(name, path=search)


def check_programs() -> dict[str, str]:
    found: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for name, package in PROGRAMS:
        path = find_program(name)
        if path is None:
            missing.append((name, package))
        else:
            found[name] = path
    if missing:
        packages = sorted({package for _, package in missing})
        names = ", ".join(f"{name} (package {package})" for name, package in missing)
        raise CentralUpError(f"missing programs: {names}. Install them with:\n"
                             f"    apt-get install {' '.join(packages)}")
    if find_program("grafana-server") is None and not Path("/usr/share/grafana").is_dir():
        say("Grafana is not installed (optional; not in Debian): add Grafana's APT repository "
            "(https://apt.grafana.com, see docs/central-install.md), `apt-get install grafana`, then run "
            f"{PROG} again to provision the data source and the dashboards")
    return found


def find_hatang(option: str | None) -> str:
    if option:
        path = Path(option)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CentralUpError(f"--hatang {option}: not an executable file")
        return str(path.absolute())
    for candidate in (shutil.which("hatang"), *HATANG_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise CentralUpError("the hatang program was not found (PATH, " + ", ".join(HATANG_CANDIDATES) + "): "
                         "install it (python3 -m venv /opt/hatang/venv && /opt/hatang/venv/bin/pip install "
                         "hatang-*.whl, see docs/central-install.md) or give --hatang PATH")


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def run(argv: Sequence[str], what: str) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CentralUpError(f"{what} failed ({shlex.join(argv)}): {exc}") from None
    if done.returncode != 0:
        raise CentralUpError(f"{what} failed ({shlex.join(argv)}, exit {done.returncode}):\n"
                             f"{(done.stdout + done.stderr).strip()}")
    return done.stdout


def reload_command(layout: Layout, use_systemd: bool) -> str:
    if use_systemd:
        return "systemctl reload mosquitto"
    pidfile = layout.run / "mosquitto.pid"
    return "sh -c " + shlex.quote(f'kill -HUP "$(cat {shlex.quote(str(pidfile))})"')


def init_fleet(layout: Layout, hatang: str, names: list[str], ports: dict[str, int],
               use_systemd: bool) -> None:
    fleet_yaml = layout.fleet / "fleet.yaml"
    if fleet_yaml.exists():
        try:
            url = json.loads(fleet_yaml.read_text(encoding="utf-8")).get("broker_url", "?")
        except (OSError, ValueError):
            url = "?"
        say(f"fleet directory {layout.fleet} exists (broker URL {url}): kept")
        if names:
            wanted = f"mqtts://{names[0]}:{ports['mqtts']}"
            if url != wanted:
                say(f"note: --broker-name/--ports give {wanted}, the fleet says {url}; the fleet is not "
                    "changed (agents already enrolled use its URL)")
        return
    if not names:
        raise CentralUpError(f"{layout.fleet} has no fleet.yaml: give --broker-name NAME (the DNS name or "
                             "IP address the offices use to reach this host) so that it can be created")
    argv = [hatang, "fleet", "init", "--fleet", str(layout.fleet),
            "--broker-url", f"mqtts://{names[0]}:{ports['mqtts']}",
            "--reload-command", reload_command(layout, use_systemd)]
    for name in names:
        try:
            ipaddress.ip_address(name)
            argv += ["--server-ip", name]
        except ValueError:
            argv += ["--server-name", name]
    make_dir(layout.fleet.parent, mode=0o755)
    run(argv, "creating the fleet directory")
    say(f"fleet directory {layout.fleet} created ({shlex.join(argv[2:])})")


def fleet_permissions(layout: Layout) -> None:
    """The broker (user mosquitto) reads the fleet's password file and server key in place: it may
    search the fleet directory (not list it) and read broker/; everything else there stays root's."""
    fleet = layout.fleet
    owner_bits = fleet.stat().st_mode & 0o700
    set_owner(fleet, None, "mosquitto", owner_bits | 0o010)
    set_owner(fleet / "broker", None, "mosquitto", 0o750)
    for name, mode in (("mosquitto.passwd", 0o640), ("server.key", 0o640), ("server.crt", 0o644)):
        path = fleet / "broker" / name
        if not path.exists():
            raise CentralUpError(f"{path} is missing: the fleet directory is incomplete (hatang fleet init)")
        set_owner(path, None, "mosquitto", mode)


def install(args: argparse.Namespace, layout: Layout, hatang: str, use_systemd: bool) -> Installer:
    ports: dict[str, int] = args.ports or dict(DEFAULT_PORTS)
    subst_ports = args.ports  # None: the shipped ports stay as they are
    inst = Installer.load(layout.root)
    make_dir(layout.at("/etc/hatang"), mode=0o755)

    init_fleet(layout, hatang, args.broker_name, ports, use_systemd)
    fleet_permissions(layout)

    # Mosquitto
    conf = (DEPLOY / "mosquitto/hatang.conf").read_text(encoding="utf-8")
    check_mosquitto_listeners(conf)
    make_dir(layout.at("/etc/mosquitto"), mode=0o755)
    inst.file(layout.mosquitto_conf, rewrite(conf, layout.root, subst_ports, layout.fleet),
              service="mosquitto")
    inst.file(layout.at("/etc/mosquitto/hatang.acl"), (DEPLOY / "mosquitto/hatang.acl").read_bytes(),
              service="mosquitto", group="mosquitto", mode=0o640)
    make_dir(layout.at("/var/lib/mosquitto"), user="mosquitto", group="mosquitto", mode=0o750, enforce=True)

    # Prometheus
    make_dir(layout.at("/etc/prometheus"), mode=0o755)
    make_dir(layout.at("/etc/prometheus/rules"), mode=0o755)
    inst.file(layout.prometheus_conf,
              rewrite((DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8"), layout.root,
                      subst_ports, layout.fleet), service="prometheus")
    for rules in sorted((DEPLOY / "prometheus/rules").glob("*.rules.yml")):
        inst.file(layout.at(f"/etc/prometheus/rules/{rules.name}"), rules.read_bytes(), service="prometheus")
    make_dir(layout.prometheus_data, user="prometheus", group="prometheus", mode=0o750, enforce=True)
    # Files systemd reads (units, drop-ins, /etc/default) name the host's own paths: no ROOT in them.
    prometheus_args = ("--config.file=/etc/prometheus/prometheus.yml "
                       "--storage.tsdb.path=/var/lib/prometheus/metrics2 "
                       f"--web.listen-address=127.0.0.1:{ports['prometheus']} "
                       "--web.enable-remote-write-receiver")
    inst.file(layout.at("/etc/default/prometheus"), default_file("prometheus", prometheus_args),
              service="prometheus")

    # Alertmanager (layout of deploy/alertmanager/README.md: relative paths resolve next to hatang.yml)
    am = layout.at("/etc/prometheus/alertmanager")
    for d in (am, am / "templates", am / "secrets"):
        make_dir(d, group="prometheus", mode=0o750, enforce=True)
    inst.file(layout.alertmanager_conf, (DEPLOY / "alertmanager/hatang.yml").read_bytes(),
              service="prometheus-alertmanager", group="prometheus", mode=0o640)
    for tmpl in sorted((DEPLOY / "alertmanager/templates").glob("*.tmpl")):
        inst.file(am / "templates" / tmpl.name, tmpl.read_bytes(), service="prometheus-alertmanager",
                  group="prometheus", mode=0o640)
    for secret in sorted((DEPLOY / "alertmanager/secrets.example").iterdir()):
        inst.copy_if_absent(am / "secrets" / secret.name, secret, user="root", group="prometheus", mode=0o640)
    make_dir(layout.alertmanager_data, user="prometheus", group="prometheus", mode=0o750, enforce=True)
    am_args = ("--config.file=/etc/prometheus/alertmanager/hatang.yml --cluster.listen-address= "
               f"--web.listen-address=127.0.0.1:{ports['alertmanager']}")
    inst.file(layout.at("/etc/default/prometheus-alertmanager"),
              default_file("prometheus-alertmanager", am_args), service="prometheus-alertmanager")

    # collector
    inst.file(layout.collector_conf, rewrite(collector_config(), layout.root, subst_ports, layout.fleet),
              service="hatang-collector", group="hatang", mode=0o640)
    make_dir(layout.secrets, mode=0o700, enforce=True)
    inst.file(layout.secrets / "collector-password",
              (layout.fleet / "secrets/collector-password").read_bytes(), service="hatang-collector",
              mode=0o600)
    make_dir(layout.at("/var/lib/hatang-collector"), user="hatang", group="hatang", mode=0o700, enforce=True)
    make_dir(layout.at("/etc/systemd/system"), mode=0o755)
    inst.file(layout.at("/etc/systemd/system/hatang-collector.service"),
              (DEPLOY / "systemd/hatang-collector.service").read_bytes(), service="hatang-collector")
    hatang_in_unit = unit_program(DEPLOY / "systemd/hatang-collector.service")
    program_conf = layout.at("/etc/systemd/system/hatang-collector.service.d/hatang-program.conf")
    if hatang_in_unit and hatang_in_unit != hatang:
        inst.file(program_conf,
                  program_dropin(DEPLOY / "systemd/hatang-collector.service", hatang_in_unit, hatang),
                  service="hatang-collector")
    else:
        inst.remove(program_conf, service="hatang-collector")
    # hatang.conf is a whole broker configuration, kept out of conf.d/ (which Debian's mosquitto.conf
    # includes, and whose persistence_location Mosquitto would refuse as a duplicate): the service runs it
    # alone, as the foreground mode does.
    inst.file(layout.at("/etc/systemd/system/mosquitto.service.d/hatang.conf"),
              "# Written by scripts/central-up: Mosquitto runs hatang's configuration alone (Debian's\n"
              "# mosquitto.conf repeats persistence_location, which Mosquitto refuses).\n"
              "[Service]\nExecStart=\n"
              "ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/hatang.conf\n", service="mosquitto")

    # Grafana (only when installed)
    if layout.at("/etc/grafana").is_dir():
        for kind in ("dashboards", "datasources"):
            src = DEPLOY / f"grafana/provisioning/{kind}/hatang.yaml"
            make_dir(layout.at(f"/etc/grafana/provisioning/{kind}"), mode=0o755)
            inst.file(layout.at(f"/etc/grafana/provisioning/{kind}/hatang.yaml"),
                      rewrite(src.read_text(encoding="utf-8"), layout.root, subst_ports, layout.fleet),
                      service="grafana-server")
        boards = layout.at("/var/lib/grafana/dashboards/hatang")
        make_dir(boards, mode=0o755)
        for board in sorted((REPO / "dashboards").glob("*.json")):
            inst.file(boards / board.name, board.read_bytes(), service="grafana-server")
    else:
        say(f"{layout.at('/etc/grafana')} does not exist: Grafana provisioning skipped")

    inst.save()
    check_mosquitto_files(layout.mosquitto_conf)
    check_installed(layout, hatang)
    return inst


def default_file(package: str, args: str) -> str:
    """/etc/default/PACKAGE: Debian's unit for PACKAGE runs ``/usr/bin/PACKAGE $ARGS`` with it."""
    return (f"# /etc/default/{package}, written by scripts/central-up (hatang). Debian's {package}.service\n"
            f"# reads it (EnvironmentFile=) and runs /usr/bin/{package} $ARGS.\n"
            f'ARGS="{args}"\n')


def unit_program(unit: Path) -> str | None:
    m = re.search(r"^ExecStart=(\S+)\s+collector\b", unit.read_text(encoding="utf-8"), re.MULTILINE)
    return m.group(1) if m else None


def program_dropin(unit: Path, shipped: str, hatang: str) -> str:
    """A drop-in that runs ``hatang`` where the unit names ``shipped``: its ExecStartPre/ExecStart lines."""
    lines = ["# Written by scripts/central-up: hatang is installed at " + hatang, "[Service]"]
    for key in ("ExecStartPre", "ExecStart"):
        found = re.findall(rf"^{key}=(.*)$", unit.read_text(encoding="utf-8"), re.MULTILINE)
        if found:
            lines.append(f"{key}=")
            lines += [f"{key}={value.replace(shipped, hatang, 1)}" for value in found]
    return "\n".join(lines) + "\n"


def check_installed(layout: Layout, hatang: str) -> None:
    """The installed configs, checked by the daemons' own tools (and hatang's)."""
    promtool = find_program("promtool")
    amtool = find_program("amtool")
    if promtool:
        run([promtool, "check", "config", str(layout.prometheus_conf)], "promtool check config")
    if amtool:
        run([amtool, "check-config", str(layout.alertmanager_conf)], "amtool check-config")
    check = [hatang, "check", "-c", str(layout.collector_conf)]
    if "--credentials" in run([hatang, "check", "--help"], "hatang check --help"):
        check[2:2] = ["--credentials", str(layout.secrets)]
    run(check, "hatang check of the collector's config")
    say("configs checked: promtool check config, amtool check-config, hatang check")


# --------------------------------------------------------------------------------------------------
# systemd


def ensure_hatang_user() -> None:
    if uid_of("hatang") is not None:
        return
    run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent", "--no-create-home",
         "--shell", "/usr/sbin/nologin", "hatang"], "creating the system user hatang")
    say("created the system user hatang")


def systemd_up(changed: set[str]) -> None:
    run(["systemctl", "daemon-reload"], "systemctl daemon-reload")
    say("systemctl daemon-reload")
    for service in SERVICES:
        active = subprocess.run(["systemctl", "is-active", "--quiet", service], check=False).returncode == 0
        run(["systemctl", "enable", "--now", service], f"enabling {service}")
        if active and service in changed:
            run(["systemctl", "restart", service], f"restarting {service}")
            say(f"{service}: enabled, restarted (its files changed)")
        else:
            say(f"{service}: enabled and {'running' if active else 'started'}")
    if "grafana-server" in changed and shutil.which("systemctl"):
        subprocess.run(["systemctl", "try-restart", "grafana-server"], check=False)
        say("grafana-server: restarted if it was running (provisioning changed)")


# --------------------------------------------------------------------------------------------------
# foreground


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with us


@dataclass
class Child:
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
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildDied(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(child.name)
        self.child = child


@dataclass
class Supervisor:
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


MOSQUITTO_FILE_KEYS = ("certfile", "keyfile", "cafile", "password_file", "acl_file")


def mosquitto_files(conf: Path) -> list[tuple[Path, bool]]:
    """The files and directories the installed Mosquitto config names: (path, written by the broker)."""
    found: list[tuple[Path, bool]] = []
    for line in conf.read_text(encoding="utf-8").splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[0] in (*MOSQUITTO_FILE_KEYS, "persistence_location"):
            found.append((Path(words[1].strip()), words[0] == "persistence_location"))
    return found


def check_mosquitto_files(conf: Path) -> None:
    missing = [str(path) for path, _ in mosquitto_files(conf) if not path.exists()]
    if missing:
        raise CentralUpError(f"{conf} names files that do not exist: {', '.join(missing)} (the fleet "
                             "directory is incomplete, or deploy/mosquitto/hatang.conf names a path that "
                             f"{PROG} does not install)")


def mosquitto_access_problems(layout: Layout) -> list[str]:
    """What the user mosquitto (Mosquitto drops to it when started as root) cannot read or write."""
    if not is_root():
        return []
    problems = []
    for path, write in ((layout.mosquitto_conf, False), *mosquitto_files(layout.mosquitto_conf)):
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


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(os.path.abspath(args.root))
    fleet = Path(os.path.abspath(args.fleet)) if args.fleet else root / "etc/hatang/fleet"
    layout = Layout(root, fleet)
    ports: dict[str, int] = args.ports or dict(DEFAULT_PORTS)
    use_systemd = not args.foreground and root == Path("/") and systemd_running()
    try:
        if args.foreground and is_root() and root.exists() and (why := blocked_for("mosquitto", root)):
            raise CentralUpError(f"Mosquitto, started as root, drops to the user mosquitto: {why}. Use a "
                                 "--root whose parent directories everyone may search (e.g. a directory made "
                                 "with mode 0755 under /tmp)")
        if root == Path("/") and not is_root():
            raise CentralUpError("installing into / needs root: run it with sudo (or give --root DIR)")
        programs = check_programs()
        hatang = find_hatang(args.hatang)
        if use_systemd and hatang.startswith(("/home/", "/root/", "/run/user/")):
            say(f"warning: hatang-collector.service has ProtectHome=true: it cannot run {hatang}; install "
                "hatang into /opt/hatang/venv (docs/central-install.md)", sys.stderr)
        if use_systemd:
            ensure_hatang_user()
        inst = install(args, layout, hatang, use_systemd)
        c = inst.counts
        say(f"installed under {root}: {c['new']} new, {c['updated']} updated, {c['unchanged']} unchanged, "
            f"{c['kept']} kept (changed here)")
        for note in inst.notes:
            say(note)
        if args.foreground:
            return foreground(layout, hatang, programs, ports, args.broker_name)
        if use_systemd:
            systemd_up(inst.changed)
        elif root != Path("/"):
            say(f"ROOT is {root}, not /: systemd left alone (start the daemons with --foreground)")
        else:
            say("systemd is not running here: nothing enabled (start the daemons with --foreground)")
        return 0
    except CentralUpError as exc:
        say(f"error: {exc}", sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

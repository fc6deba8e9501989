"""The centre's configs as installed, computed without touching the host (pure; unit-tested by
tests/unit/test_central_rewrite.py): where the shipped files are (``DEPLOY``) and where they go under
ROOT (``Layout``), the ports, the substitutions made in the shipped files (``rewrite``), and the text of
the files ``scripts/central-up`` writes itself.

The substitutions, made in lines that are not comments only (docs/central-install.md):

* /etc/hatang/fleet/ becomes the fleet directory (--fleet; by default ROOT/etc/hatang/fleet/);
* other absolute paths under ``ROOTED_PREFIXES`` get ROOT in front (nothing changes when ROOT is /);
* with ``--ports``: ``127.0.0.1:<port>`` for the ports of ``LOOPBACK_PORT_NAMES`` and Mosquitto's
  ``listener <port>`` lines for those of ``LISTENER_PORT_NAMES`` get the port of that name.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from central_messages import PROG, CentralUpError

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "collector": 9108, "prometheus": 9090, "alertmanager": 9093}
# "127.0.0.1:<default>" in the shipped files -> the port of that name
LOOPBACK_PORT_NAMES = {1883: "mqtt", 9108: "collector", 9090: "prometheus", 9093: "alertmanager"}
# Mosquitto's "listener <default>" lines -> the port of that name
LISTENER_PORT_NAMES = {1883: "mqtt", 8883: "mqtts"}
# absolute paths that get ROOT in front; DEFAULT_FLEET/ becomes the fleet directory (--fleet)
DEFAULT_FLEET = "/etc/hatang/fleet/"
ROOTED_PREFIXES = ("/etc/mosquitto/", "/var/lib/mosquitto/", "/etc/prometheus/", "/etc/hatang/",
                   "/var/lib/hatang-collector/", "/var/lib/grafana/")

# the keys of a Mosquitto config that name a file the broker reads
MOSQUITTO_FILE_KEYS = ("certfile", "keyfile", "cafile", "password_file", "acl_file")


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
                             "LISTENER_PORT_NAMES in deploy/central/central_configs.py")


def mosquitto_files(conf_text: str) -> list[tuple[Path, bool]]:
    """The files and directories a Mosquitto config (its text) names: (path, written by the broker)."""
    found: list[tuple[Path, bool]] = []
    for line in conf_text.splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[0] in (*MOSQUITTO_FILE_KEYS, "persistence_location"):
            found.append((Path(words[1].strip()), words[0] == "persistence_location"))
    return found


def reload_command(layout: Layout, use_systemd: bool) -> str:
    """The command ``hatang fleet`` runs to make the broker reread its files."""
    if use_systemd:
        return "systemctl reload mosquitto"
    pidfile = layout.run / "mosquitto.pid"
    return "sh -c " + shlex.quote(f'kill -HUP "$(cat {shlex.quote(str(pidfile))})"')


def default_file(package: str, args: str) -> str:
    """/etc/default/PACKAGE: Debian's unit for PACKAGE runs ``/usr/bin/PACKAGE $ARGS`` with it."""
    return (f"# /etc/default/{package}, written by scripts/central-up (hatang). Debian's {package}.service\n"
            f"# reads it (EnvironmentFile=) and runs /usr/bin/{package} $ARGS.\n"
            f'ARGS="{args}"\n')


def prometheus_args(ports: dict[str, int]) -> str:
    """ARGS of /etc/default/prometheus (the host's own paths: no ROOT in files systemd reads)."""
    return ("--config.file=/etc/prometheus/prometheus.yml "
            "--storage.tsdb.path=/var/lib/prometheus/metrics2 "
            f"--web.listen-address=127.0.0.1:{ports['prometheus']} "
            "--web.enable-remote-write-receiver")


def alertmanager_args(ports: dict[str, int]) -> str:
    """ARGS of /etc/default/prometheus-alertmanager (no ROOT either)."""
    return ("--config.file=/etc/prometheus/alertmanager/hatang.yml --cluster.listen-address= "
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}")


# hatang.conf is a whole broker configuration, kept out of conf.d/ (which Debian's mosquitto.conf
# includes, and whose persistence_location Mosquitto would refuse as a duplicate): the service runs it
# alone, as the foreground mode does.
MOSQUITTO_DROPIN = ("# Written by scripts/central-up: Mosquitto runs hatang's configuration alone (Debian's\n"
                    "# mosquitto.conf repeats persistence_location, which Mosquitto refuses).\n"
                    "[Service]\nExecStart=\n"
                    "ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/hatang.conf\n")


def unit_program(unit_text: str) -> str | None:
    """The program a hatang-collector unit (its text) runs as ``PROGRAM collector``."""
    m = re.search(r"^ExecStart=(\S+)\s+collector\b", unit_text, re.MULTILINE)
    return m.group(1) if m else None


def program_dropin(unit_text: str, shipped: str, hatang: str) -> str:
    """A drop-in that runs ``hatang`` where the unit names ``shipped``: its ExecStartPre/ExecStart lines."""
    lines = ["# Written by scripts/central-up: hatang is installed at " + hatang, "[Service]"]
    for key in ("ExecStartPre", "ExecStart"):
        found = re.findall(rf"^{key}=(.*)$", unit_text, re.MULTILINE)
        if found:
            lines.append(f"{key}=")
            lines += [f"{key}={value.replace(shipped, hatang, 1)}" for value in found]
    return "\n".join(lines) + "\n"

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

The code, by role: central_configs.py (the layout under ROOT, the ports and the substitutions; pure),
central_files.py (owners, modes and the installer of files), central_debian.py (the host's programs and
the systemd steps), central_install.py (the install step), central_foreground.py (--foreground), and
this module (the command line).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from central_configs import DEFAULT_PORTS, Layout
from central_debian import check_programs, ensure_hatang_user, find_hatang, systemd_running, systemd_up
from central_files import blocked_for, is_root
from central_foreground import foreground
from central_install import install
from central_messages import PROG, CentralUpError, say


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
        inst = install(layout, hatang, args.broker_name, args.ports, use_systemd)
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

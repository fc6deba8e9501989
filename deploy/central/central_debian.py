"""The Debian host: the programs the centre needs (``check_programs``, ``find_hatang``), running a
command as a step (``run``), and the systemd steps (the hatang user, ``systemctl daemon-reload``,
``enable --now`` of the services and a restart of those whose files changed)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from central_files import uid_of
from central_messages import PROG, CentralUpError, say

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


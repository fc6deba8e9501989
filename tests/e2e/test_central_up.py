"""``scripts/central-up``: the centre from the shipped files, for real on loopback.

``--foreground`` installs deploy/'s files under a temporary root and starts Mosquitto (TLS listener,
password file and ACL), Prometheus (shipped config and rules, remote-write receiver), Alertmanager and the
collector as processes. An agent enrolled with ``hatang fleet add-agent`` into the same fleet directory,
from its unpacked enrolment bundle, polls a real snmpd; its device must show up in that Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.e2e.conftest import SITE
from tests.support.hatang import REPO, HatangProcess, hatang_env, outside_cwd, run_hatang, runtime_bin
from tests.support.services import Snmpd, free_tcp_port, pid_alive, require_binary, unavailable
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CENTRAL_UP = REPO / "scripts" / "central-up"
AGENT_ID = "xa-dai-dinh"
READY_TIMEOUT = 60.0
# The shipped prometheus.yml scrapes every 30 s: the device can miss the first scrape.
SERIES_TIMEOUT = 75.0
DAEMONS = (("mosquitto", "mosquitto"), ("prometheus", "prometheus"), ("promtool", "prometheus"),
           ("prometheus-alertmanager", "prometheus-alertmanager"), ("amtool", "prometheus-alertmanager"))


def _hatang_program() -> str:
    """``$HATANG_BIN`` (the runtime install), or outside CI the test venv's own ``hatang`` script."""
    binary = runtime_bin()
    if binary is not None:
        return str(binary)
    script = Path(sys.executable).parent / "hatang"
    if not script.exists():
        unavailable("no hatang program: run the tests with scripts/test (HATANG_BIN)")
    return str(script)


@pytest.fixture
def root() -> Iterator[Path]:
    """A root directory the user mosquitto can search (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="hatang-central-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class CentralUp:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def ready(self) -> bool:
        if "central-up: ready" in self.lines:
            return True
        if self.proc.poll() is not None:
            raise AssertionError(f"central-up exited with {self.proc.returncode}:\n{self.output()}")
        return False

    def pids(self) -> dict[str, int]:
        found = (re.match(r"central-up: (\S+) \S+.*\(pid (\d+),", line) for line in self.lines)
        return {m.group(1): int(m.group(2)) for m in found if m}


def _central_up(*args: str) -> list[str]:
    """The script as an operator runs it: executable, ``#!/usr/bin/env python3``, standard library only."""
    return [str(CENTRAL_UP), *args]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _api(base: str, path: str, **params: str) -> Any:
    status, body = _get(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, (path, status)
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]


def _device_up(prometheus: str) -> float | None:
    result = _api(prometheus, "query", query=f'hatang_device_up{{agent="{AGENT_ID}",device="core-switch"}}')
    return float(result["result"][0]["value"][1]) if result["result"] else None


def test_foreground_centre_receives_an_enrolled_agents_device(
    root: Path, tmp_path: Path, snmpd: Snmpd, monkeypatch: pytest.MonkeyPatch
) -> None:
    for program, package in DAEMONS:
        require_binary(program, package)
    hatang = _hatang_program()
    ports = {name: free_tcp_port() for name in ("mqtt", "mqtts", "collector", "prometheus", "alertmanager")}
    fleet = root / "etc/hatang/fleet"

    proc = subprocess.Popen(
        _central_up("--root", str(root), "--foreground", "--broker-name", "localhost", "--hatang", hatang,
                    "--ports", ",".join(f"{k}={v}" for k, v in ports.items())),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=hatang_env(), cwd=outside_cwd())
    central = CentralUp(proc)
    assert proc.stdout is not None
    threading.Thread(target=central.read, args=(proc.stdout,), daemon=True).start()
    agent: HatangProcess | None = None
    try:
        wait_until(central.ready, READY_TIMEOUT, interval=0.2, message="central-up: ready")
        pids = central.pids()
        assert set(pids) == {"mosquitto", "prometheus", "alertmanager", "collector"}, central.output()

        # the installed files are the shipped ones, with only the documented substitutions
        conf = (root / "etc/mosquitto/hatang.conf").read_text(encoding="utf-8")
        assert f"listener {ports['mqtt']} 127.0.0.1\n" in conf and f"listener {ports['mqtts']}\n" in conf
        assert f"password_file {fleet}/broker/mosquitto.passwd\n" in conf
        assert f"acl_file {root}/etc/mosquitto/hatang.acl\n" in conf
        prometheus_yml = (root / "etc/prometheus/prometheus.yml").read_text(encoding="utf-8")
        assert f"{root}/etc/prometheus/rules/hatang.rules.yml" in prometheus_yml

        # one office, enrolled with the fleet tools; an SNMP community from the fleet's snmp/ directory
        (fleet / "snmp").mkdir(exist_ok=True)
        (fleet / "snmp/snmp-community").write_text("public")
        bundle = tmp_path / f"{AGENT_ID}.tar.gz"
        site = ",".join(f"{k}={v}" for k, v in SITE.items())
        enrolled = run_hatang(["fleet", "add-agent", AGENT_ID, "--site", site, "--fleet", str(fleet),
                               "--buffer-path", str(tmp_path / "buffer"), "--output", str(bundle)])
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
        unpacked = tmp_path / "agent"
        with tarfile.open(bundle) as tar:
            tar.extractall(unpacked, filter="data")
        config_path = unpacked / "agent.yaml"
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        assert config["mqtt"]["url"] == f"mqtts://localhost:{ports['mqtts']}"
        assert config["devices"] == []
        config["devices"] = [{
            "name": "core-switch", "address": "127.0.0.1", "port": snmpd.port, "interval": 2,
            "snmp": {"version": "2c", "community_file": "${CREDENTIALS_DIRECTORY}/snmp-community",
                     "timeout": 0.5, "retries": 0},
            "profiles": ["system", "interfaces"],
        }]
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(unpacked / "secrets"))
        agent = HatangProcess(["agent", "-c", str(config_path)], tmp_path / "agent.log").start()

        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        up = wait_until(lambda: _device_up(prometheus), SERIES_TIMEOUT, interval=0.5,
                        message=f"hatang_device_up of {AGENT_ID}/core-switch in Prometheus")
        assert up == 1
        groups = {g["name"] for g in _api(prometheus, "rules")["groups"]}
        assert {"hatang-trung-tam", "hatang-diem", "hatang-kha-dung"} <= groups, groups
        alertmanagers = _api(prometheus, "alertmanagers")["activeAlertmanagers"]
        assert [a["url"] for a in alertmanagers] == [f"http://127.0.0.1:{ports['alertmanager']}/api/v2/alerts"]
        assert _get(f"http://127.0.0.1:{ports['alertmanager']}/-/ready")[0] == 200
    finally:
        if agent is not None:
            agent.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            for pid in central.pids().values():  # never leave a daemon behind, even on failure
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert code == 0, central.output()
    assert "central-up: stopped" in central.lines, central.output()
    assert not [name for name, pid in pids.items() if pid_alive(pid)], central.output()


def test_install_is_idempotent_and_keeps_local_changes(root: Path) -> None:
    for program, package in DAEMONS:  # central-up checks for all of them
        require_binary(program, package)
    args = _central_up("--root", str(root), "--broker-name", "central.example.invalid",
                       "--hatang", _hatang_program())

    def install() -> str:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=hatang_env(),
                              cwd=outside_cwd(), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = install()
    assert "fleet directory" in first and "created" in first
    assert f"ROOT is {root}, not /: systemd left alone" in first
    fleet = json.loads((root / "etc/hatang/fleet/fleet.yaml").read_text())
    assert fleet["broker_url"] == "mqtts://central.example.invalid:8883"  # shipped ports without --ports
    conf = (root / "etc/mosquitto/hatang.conf").read_text(encoding="utf-8")
    assert "listener 1883 127.0.0.1\n" in conf and "listener 8883\n" in conf
    defaults = (root / "etc/default/prometheus").read_text(encoding="utf-8")
    assert "--web.enable-remote-write-receiver" in defaults and "127.0.0.1:9090" in defaults

    second = install()
    assert re.search(r"0 new, 0 updated, \d+ unchanged, 0 kept", second), second
    assert "exists" in second

    prometheus_yml = root / "etc/prometheus/prometheus.yml"
    shipped = prometheus_yml.read_text(encoding="utf-8")
    edited = shipped.replace("scrape_interval: 30s", "scrape_interval: 15s")
    prometheus_yml.write_text(edited, encoding="utf-8")
    third = install()
    assert "1 kept" in third, third
    assert prometheus_yml.read_text(encoding="utf-8") == edited
    assert "scrape_interval: 30s" in (root / "etc/prometheus/prometheus.yml.hatang-new").read_text()

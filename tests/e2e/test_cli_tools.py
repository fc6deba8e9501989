"""Installer tools: `hatang poll` (one poll, printed) and `hatang profiles` (list and show)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.hatang import run_hatang, write_yaml
from tests.support.services import Snmpd, free_udp_port, snmpget

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, devices: list[dict[str, Any]]) -> Path:
    return write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc", "commune": "Đại Đình"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"}, "buffer": {"path": str(tmp_path / "buf")}, "devices": devices,
    })


def test_poll_prints_what_would_be_published(tmp_path: Path, snmpd: Snmpd) -> None:
    path = _config(tmp_path, [{"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port}])
    result = run_hatang(["poll", "-c", str(path), "--device", "core-switch"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: UP" in out and "errors: none" in out
    sys_name = snmpget(snmpd, "1.3.6.1.2.1.1.5.0").strip('"')
    assert f'sys_name="{sys_name}"' in out
    assert "# TYPE hatang_interface_in_bytes_total counter" in out
    assert 'hatang_interface_in_bytes_total{agent="xa-dai-dinh",device="core-switch",' in out
    assert 'if_name="lo"' in out


def test_poll_explains_a_wrong_community(tmp_path: Path, snmpd: Snmpd) -> None:
    path = _config(tmp_path, [{"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port,
                               "snmp": {"community": "sai", "timeout": 0.5, "retries": 0}}])
    result = run_hatang(["poll", "-c", str(path), "--device", "core-switch"])
    assert result.returncode == 0
    assert "status: DOWN" in result.stdout
    assert "wrong community" in result.stdout


def test_poll_of_a_dead_address_and_of_an_unknown_device(tmp_path: Path) -> None:
    path = _config(tmp_path, [{"name": "ups", "address": "127.0.0.1", "port": free_udp_port(),
                               "snmp": {"timeout": 0.3, "retries": 0}}])
    dead = run_hatang(["poll", "-c", str(path), "--device", "ups"])
    assert dead.returncode == 0 and "status: DOWN" in dead.stdout and "no answer" in dead.stdout
    unknown = run_hatang(["poll", "-c", str(path), "--device", "nope"])
    assert unknown.returncode == 2 and "ups" in unknown.stderr


def test_profiles_lists_builtin_and_user_profiles_and_shows_one(tmp_path: Path) -> None:
    listing = run_hatang(["profiles"])
    assert listing.returncode == 0
    for name in ("system", "interfaces", "host", "ups", "sensors"):
        assert name in listing.stdout
    user = tmp_path / "profiles"
    user.mkdir()
    (user / "camera.yaml").write_text(
        "name: camera\ndescription: \"Camera IP ở cổng UBND\"\nscalars:\n"
        "  - {name: hatang_camera_uptime_seconds, type: gauge, oid: 1.3.6.1.2.1.1.3.0, scale: 0.01,\n"
        "     help: \"Uptime (SNMPv2-MIB::sysUpTime)\"}\n", encoding="utf-8")
    with_user = run_hatang(["profiles", "--dir", str(user)])
    assert "camera" in with_user.stdout and "Camera IP ở cổng UBND" in with_user.stdout
    shown = run_hatang(["profiles", "interfaces"])
    assert shown.returncode == 0 and "1.3.6.1.2.1.31.1.1.1.6" in shown.stdout
    assert "hatang_interface_in_bytes_total" in shown.stdout
    missing = run_hatang(["profiles", "nope"])
    assert missing.returncode == 2 and "unknown profile 'nope'" in missing.stderr

"""``hatang maintenance`` against a real Alertmanager 0.25 on 127.0.0.1: the silence ``add`` creates
(exact matchers and times) mutes the office's or the device's alerts and nothing else, ``remove`` expires
it, and when Alertmanager is down or the file cannot be written nothing is left half done."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hatang.availability.maintenance_file import load_windows
from hatang.availability.silences import AlertmanagerClient
from hatang.availability.windows import format_time, zone
from hatang.cli_maintenance import add_parser
from tests.support.alerting import Alertmanager, start_alertmanager
from tests.support.hatang import hatang_command, hatang_env, outside_cwd, run_subcommand
from tests.support.services import LOOPBACK, free_tcp_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DEADLINE = 20.0
ICT = zone()
CONFIG = """\
route:
  receiver: "khong-gui"
  group_by: ["agent"]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: "khong-gui"
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A fresh Alertmanager per test (no silences or alerts left over), stopped by PID."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG, encoding="utf-8")
    am = start_alertmanager(tmp_path / "am", config)
    try:
        yield am
    finally:
        am.stop()


def run(*argv: str) -> int:
    """``hatang maintenance ARGV`` through the subcommand's own parser, in this process."""
    return run_subcommand(add_parser, "maintenance", *argv)


def local(moment: datetime) -> str:
    return format_time(moment, ICT)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def alert(name: str, agent: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, "severity": "warning", "area": "network", "agent": agent, **labels},
            "annotations": {"summary": f"{name} {agent}"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat()}


def statuses(am: Alertmanager) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(a["labels"]["alertname"], a["labels"]["agent"], a["labels"].get("device", "")): a["status"]
            for a in am.alerts()}


def wait_for_states(am: Alertmanager, expected: dict[tuple[str, str, str], str]
                    ) -> dict[tuple[str, str, str], dict[str, Any]]:
    def settled() -> dict[tuple[str, str, str], dict[str, Any]] | None:
        now = statuses(am)
        ok = all(key in now and now[key]["state"] == state for key, state in expected.items())
        return now if ok else None

    result: dict[tuple[str, str, str], dict[str, Any]] = wait_until(
        settled, DEADLINE, message=f"alert states {expected}")
    return result


def test_office_window_silences_the_office_and_not_its_neighbour(
    alertmanager: Alertmanager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "maintenance.yaml"
    before = datetime.now(UTC).replace(microsecond=0)
    start, end = before - timedelta(minutes=10), before + timedelta(hours=2)
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-thuong-lam",
               "--from", local(start), "--to", local(end), "--reason", "Thay switch lõi",
               "--created-by", "an") == 0
    [window] = load_windows(path)
    assert window.silence_id is not None and window.silence_id in capsys.readouterr().out

    silence = get_json(f"{alertmanager.url}/api/v2/silence/{window.silence_id}")
    assert silence["matchers"] == [{"name": "agent", "value": "xa-thuong-lam", "isRegex": False,
                                    "isEqual": True}]
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "an" and silence["comment"] == "Thay switch lõi [hatang maintenance bt1]"
    assert datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00")) == end
    # a window that started already: Alertmanager silences from the moment it was asked
    assert before <= datetime.fromisoformat(silence["startsAt"].replace("Z", "+00:00")) <= datetime.now(UTC)

    alertmanager.post_alerts([alert("HatangAgentOffline", "xa-thuong-lam"),
                              alert("HatangDeviceDown", "xa-thuong-lam", device="core-switch"),
                              alert("HatangAgentOffline", "xa-lang-quan")])
    muted = wait_for_states(alertmanager, {("HatangAgentOffline", "xa-thuong-lam", ""): "suppressed",
                                           ("HatangDeviceDown", "xa-thuong-lam", "core-switch"): "suppressed",
                                           ("HatangAgentOffline", "xa-lang-quan", ""): "active"})
    assert muted[("HatangAgentOffline", "xa-thuong-lam", "")]["silencedBy"] == [window.silence_id]
    assert muted[("HatangDeviceDown", "xa-thuong-lam", "core-switch")]["silencedBy"] == [window.silence_id]
    assert muted[("HatangAgentOffline", "xa-lang-quan", "")]["silencedBy"] == []

    assert run("remove", "--file", str(path), "--alertmanager", alertmanager.url, "bt1") == 0
    assert f"silence {window.silence_id} expired" in capsys.readouterr().out
    assert load_windows(path) == []
    expired = AlertmanagerClient(alertmanager.url).get_silence(window.silence_id)
    assert expired is not None and expired.state == "expired"
    active = wait_for_states(alertmanager, {("HatangAgentOffline", "xa-thuong-lam", ""): "active",
                                            ("HatangDeviceDown", "xa-thuong-lam", "core-switch"): "active"})
    assert active[("HatangAgentOffline", "xa-thuong-lam", "")]["silencedBy"] == []
    # removing again: the id is gone (exit 2), Alertmanager untouched
    assert run("remove", "--file", str(path), "--alertmanager", alertmanager.url, "bt1") == 2


def test_remove_through_a_wrong_url_keeps_the_window_and_an_expired_silence_is_no_error(
    alertmanager: Alertmanager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "maintenance.yaml"
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-a",
               "--from", local(soon), "--to", local(soon + timedelta(hours=1)), "--reason", "r") == 0
    [window] = load_windows(path)
    # a path prefix Alertmanager does not serve answers 404 for every silence: not "already expired"
    wrong = f"{alertmanager.url}/wrong-prefix"
    assert run("remove", "--file", str(path), "--alertmanager", wrong, "bt1") == 1
    assert "does not answer like an Alertmanager API v2" in capsys.readouterr().err
    assert load_windows(path) == [window]
    silence = AlertmanagerClient(alertmanager.url).get_silence(str(window.silence_id))
    assert silence is not None and silence.state == "pending"
    # expired meanwhile by someone else (amtool): remove still removes the window
    assert AlertmanagerClient(alertmanager.url).expire_silence(str(window.silence_id))
    assert run("remove", "--file", str(path), "--alertmanager", alertmanager.url, "bt1") == 0
    assert load_windows(path) == []


def test_device_window_silences_that_device_only(alertmanager: Alertmanager, tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    now = datetime.now(UTC)
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-a",
               "--device", "ups-1", "--from", local(now), "--to", local(now + timedelta(hours=1)),
               "--reason", "Bảo dưỡng UPS") == 0
    [window] = load_windows(path)
    alertmanager.post_alerts([alert("HatangUpsOnBattery", "xa-a", device="ups-1"),
                              alert("HatangDeviceDown", "xa-a", device="ups-2"),
                              alert("HatangAgentOffline", "xa-a"),
                              alert("HatangUpsOnBattery", "xa-b", device="ups-1")])
    states = wait_for_states(alertmanager, {("HatangUpsOnBattery", "xa-a", "ups-1"): "suppressed",
                                            ("HatangDeviceDown", "xa-a", "ups-2"): "active",
                                            ("HatangAgentOffline", "xa-a", ""): "active",
                                            ("HatangUpsOnBattery", "xa-b", "ups-1"): "active"})
    assert states[("HatangUpsOnBattery", "xa-a", "ups-1")]["silencedBy"] == [window.silence_id]


def test_future_window_silence_has_exactly_the_window(alertmanager: Alertmanager, tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    day = (datetime.now(ICT) + timedelta(days=2)).date()
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "phuong-an-tuong",
               "--device", "core-switch", "--from", f"{day} 22:00", "--to", f"{day + timedelta(days=1)}",
               "--reason", "Nâng cấp firmware", "--created-by", "binh") == 0
    [window] = load_windows(path)
    silence = get_json(f"{alertmanager.url}/api/v2/silence/{window.silence_id}")
    assert silence["matchers"] == [
        {"name": "agent", "value": "phuong-an-tuong", "isRegex": False, "isEqual": True},
        {"name": "device", "value": "core-switch", "isRegex": False, "isEqual": True}]
    starts = datetime.fromisoformat(silence["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    # 22:00 in Hà Nội is 15:00 UTC; a bare --to date is the end of that day (00:00 of the next, +07:00)
    assert starts == datetime(day.year, day.month, day.day, 15, tzinfo=UTC) == window.start
    assert ends == datetime.combine(day + timedelta(days=2), datetime.min.time(), ICT) == window.end
    assert silence["status"]["state"] == "pending"
    assert silence["createdBy"] == "binh" and "bt1" in silence["comment"]


def test_unreachable_alertmanager_leaves_the_file_alone(
    alertmanager: Alertmanager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "maintenance.yaml"
    now = datetime.now(UTC)
    window_args = ["--from", local(now), "--to", local(now + timedelta(hours=1)), "--reason", "r"]
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-a",
               *window_args) == 0
    before = path.read_bytes()
    capsys.readouterr()

    closed = f"http://{LOOPBACK}:{free_tcp_port()}"  # nothing listens there
    assert run("add", "--file", str(path), "--alertmanager", closed, "--site", "xa-b", *window_args) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Alertmanager at {closed}/api/v2/silences" in err and "--alertmanager" in err
    assert path.read_bytes() == before

    alertmanager.stop()
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-b",
               *window_args) == 1
    assert run("remove", "--file", str(path), "--alertmanager", alertmanager.url, "bt1") == 1
    assert f"cannot reach Alertmanager at {alertmanager.url}" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_a_file_that_cannot_be_written_leaves_no_silence(
    alertmanager: Alertmanager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "maintenance.yaml"
    now = datetime.now(UTC)

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    assert run("add", "--file", str(path), "--alertmanager", alertmanager.url, "--site", "xa-a",
               "--from", local(now), "--to", local(now + timedelta(hours=1)), "--reason", "r") == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not path.exists()
    [silence] = AlertmanagerClient(alertmanager.url).list_silences()
    assert silence.state == "expired" and "bt1" in silence.comment


def test_the_installed_command(alertmanager: Alertmanager, tmp_path: Path) -> None:
    """``hatang maintenance`` as a user runs it: settings from the environment, Vietnamese intact."""
    path = tmp_path / "maintenance.yaml"
    env = {**hatang_env(), "HATANG_MAINTENANCE_FILE": str(path), "HATANG_ALERTMANAGER_URL": alertmanager.url}
    now = datetime.now(UTC)

    def hatang(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*hatang_command(), "maintenance", *argv], capture_output=True, text=True,
                              timeout=60, check=False, env=env, cwd=outside_cwd())

    added = hatang("add", "--site", "xa-thuong-lam", "--from", local(now),
                   "--to", local(now + timedelta(hours=1)), "--reason", "Cắt điện theo lịch")
    assert added.returncode == 0, added.stdout + added.stderr
    [window] = load_windows(path)
    assert window.reason == "Cắt điện theo lịch" and window.silence_id is not None
    alertmanager.post_alerts([alert("HatangAgentOffline", "xa-thuong-lam")])
    wait_for_states(alertmanager, {("HatangAgentOffline", "xa-thuong-lam", ""): "suppressed"})

    listed = hatang("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(w["id"], w["state"], w["silence_id"]) for w in json.loads(listed.stdout)] == [
        ("bt1", "active", window.silence_id)]
    table = hatang("list")
    assert "đang diễn ra/active" in table.stdout and "Cắt điện theo lịch" in table.stdout

    removed = hatang("remove", "bt1")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    wait_for_states(alertmanager, {("HatangAgentOffline", "xa-thuong-lam", ""): "active"})
    unknown = hatang("remove", "bt1")
    assert unknown.returncode == 2 and "no window 'bt1'" in unknown.stderr

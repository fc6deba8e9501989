"""The agent's local status page, for real: a ``hatang agent`` process with ``status.listen`` on a free
loopback port, a real snmpd (and a device that never answers), a real Mosquitto that the test stops.
The page and ``/api/status`` are read with urllib, and the page is loaded in headless Chromium (its
inline script fetches ``api/status`` and updates the page in place)."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SITE
from tests.support.hatang import HatangProcess
from tests.support.services import Mosquitto, Snmpd, free_tcp_port, free_udp_port, require_binary
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HOSTILE_COMMUNE = "Đại Đình <script>alert(1)</script>"
SECRET = "community-s3cret-e2e"


def _fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode("utf-8")


def _status(base: str) -> dict[str, Any] | None:
    try:
        status, _, body = _fetch(f"{base}/api/status")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return json.loads(body) if status == 200 else None


def _devices(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in data["devices"]}


def _chromium_dom(url: str, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium serializes it."""
    binary = require_binary("chromium", "chromium")
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--dump-dom", "--virtual-time-budget=4000", url],
        capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_page_follows_the_broker_and_the_backlog(
    start_agent: Callable[..., HatangProcess], mosquitto: Mosquitto, snmpd: Snmpd, tmp_path: Path
) -> None:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    agent = start_agent(
        [{"name": "core-switch", "address": "127.0.0.1", "port": snmpd.port, "interval": 1,
          "profiles": ["system"]},
         {"name": "may-chu-tat", "address": "127.0.0.1", "port": free_udp_port(), "interval": 2,
          "snmp": {"community": SECRET, "timeout": 0.3, "retries": 0}}],
        site={**SITE, "commune": HOSTILE_COMMUNE}, status={"listen": f"127.0.0.1:{port}"},
        self_metrics_interval=1)

    def polled_and_connected() -> dict[str, Any] | None:
        data = _status(base)
        if data is None or not data["broker"]["connected"]:
            return None
        devices = _devices(data)
        ready = devices["core-switch"]["state"] == "up" and devices["may-chu-tat"]["state"] == "down"
        return data if ready else None

    data = wait_until(polled_and_connected, 30, interval=0.2, message="the page: connected, both polled")
    assert data["broker"]["state"] == "connected" and data["agent"]["site"]["commune"] == HOSTILE_COMMUNE
    dead = _devices(data)["may-chu-tat"]
    assert dead["errors"][0]["reason"] == "timeout"
    # no profiles configured (auto): identifying the device is the whole poll's first request
    assert dead["error_lines"][0].startswith("whole poll [timeout]: no answer from 127.0.0.1:")
    assert data["config"]["devices"] == 2 and len(data["config"]["config_version"]) == 12

    status, content_type, page = _fetch(f"{base}/")
    assert status == 200 and content_type == "text/html; charset=utf-8"
    for words in ("Trạng thái agent", "Đã kết nối", "Thiết bị và đầu dò", "core-switch", "may-chu-tat",
                  "Không trả lời", "Cấu hình đang áp dụng", "Đại Đình &lt;script&gt;alert(1)&lt;/script&gt;"):
        assert words in page, words
    assert "<script>alert(1)" not in page and page.count("<script") == 2
    assert SECRET not in page and SECRET not in json.dumps(data)

    status, content_type, missing = _fetch(f"{base}/khong-co-trang-nay")
    assert status == 404 and content_type == "text/html; charset=utf-8"
    assert "Không tìm thấy trang" in missing and "/khong-co-trang-nay" in missing

    dom = _chromium_dom(f"{base}/", tmp_path)
    assert 'data-updated="' in dom  # the inline script fetched api/status and updated the page
    for words in ("Đã kết nối", "Thiết bị và đầu dò", "core-switch", "may-chu-tat", "Trả lời",
                  "Không trả lời", "Hàng đợi trên đĩa", "&lt;script&gt;alert(1)&lt;/script&gt;"):
        assert words in dom, words
    assert dom.count("<script") == 2 and "<img" not in dom

    mosquitto.stop()

    def disconnected() -> dict[str, Any] | None:
        data = _status(base)
        if data is None or data["broker"]["connected"] or data["broker"]["state"] != "unreachable":
            return None
        return data if data["broker"]["last_error"] else None

    down = wait_until(disconnected, 30, interval=0.2, message="the page: broker not connected, with why")
    start_depth = down["buffer"]["depth"]

    def backlog_grew() -> dict[str, Any] | None:
        data = _status(base)
        return data if data is not None and data["buffer"]["depth"] >= start_depth + 3 else None

    grown = wait_until(backlog_grew, 30, interval=0.2, message=f"the backlog to grow past {start_depth} + 3")
    assert grown["buffer"]["oldest_ts"] is not None and grown["buffer"]["oldest_ts"] <= grown["now"]
    assert grown["broker"]["last_error_ts"] is not None and grown["broker"]["since"] <= grown["now"]

    _, _, page = _fetch(f"{base}/")
    assert "Mất kết nối" in page and "Không kết nối được tới broker" in page
    dom = _chromium_dom(f"{base}/", tmp_path)
    assert 'data-updated="' in dom and "Mất kết nối" in dom and "Lỗi gần nhất" in dom
    error_shown = dom.split('id="broker-error">')[1].split("<")[0]  # why: the error, then when
    assert error_shown != "không có" and " — 20" in error_shown, error_shown
    depth_shown = dom.split('id="buffer-depth">')[1].split("<")[0]
    assert int(depth_shown.replace(".", "")) >= start_depth + 3
    assert agent.running()


def test_a_taken_port_leaves_the_agent_running_without_the_page(
    start_agent: Callable[..., HatangProcess], mosquitto: Mosquitto
) -> None:
    port = free_tcp_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        agent = start_agent([], status={"listen": f"127.0.0.1:{port}"}, self_metrics_interval=1)
        wait_until(lambda: "cannot serve the local status page" in agent.log(), 30,
                   message="the agent to say that it cannot serve the page")
        wait_until(lambda: "connected to broker" in agent.log(), 30, message="the agent to run on")
        assert agent.running()
        assert f"127.0.0.1:{port}" in agent.log() and "the agent runs on without it" in agent.log()

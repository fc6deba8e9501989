"""`hatang demo` runs the whole system with no external service and stops by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hatang import HatangProcess, Series, find, one, parse, try_scrape
from tests.support.services import free_tcp_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DURATION = 25
DEVICES = ("core-switch", "access-switch", "router-tsldcd", "ups-phong-may")


def test_demo_serves_interface_series_and_stops_by_itself(tmp_path: Path) -> None:
    port = free_tcp_port()
    demo = HatangProcess(["demo", "--listen", f"127.0.0.1:{port}", "--duration", str(DURATION)],
                         tmp_path / "demo.log").start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def every_device_polled() -> Series | None:
            text = try_scrape(url)
            series = parse(text) if text else {}
            return series if all(find(series, "hatang_device_up", device=d) for d in DEVICES) else None

        series = wait_until(every_device_polled, timeout=DURATION - 5, message="a poll of every device")
        assert len(find(series, "hatang_interface_in_bytes_total", device="core-switch")) == 24
        assert one(series, "hatang_device_up", device="core-switch") == 1
        assert one(series, "hatang_device_up", device="ups-phong-may") == 0
        assert one(series, "hatang_agent_up", agent="xa-dai-dinh") == 1
        aliases = {labels["if_alias"] for labels, _ in find(series, "hatang_interface_oper_status")}
        assert "Uplink - Đường truyền số liệu chuyên dùng" in aliases
        assert demo.wait_exit(timeout=DURATION + 20) == 0
        assert f"Metrics:  {url}" in demo.log()
        assert "hatang demo stopped." in demo.log()
    finally:
        demo.stop()

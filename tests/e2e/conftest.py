"""Fixtures for end-to-end tests: ``hatang agent`` and ``hatang collector`` as real processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.hatang import REPO, HatangProcess, wait_for_series, write_yaml
from tests.support.offline_bundle import Bundle, build_bundle, wheelhouse_dir
from tests.support.services import Mosquitto, free_tcp_port

SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}


@dataclass
class Collector:
    process: HatangProcess
    url: str  # the /metrics URL
    config_path: Path


@pytest.fixture
def processes(request: pytest.FixtureRequest) -> Iterator[list[HatangProcess]]:
    """hatang processes started by a test; stopped (and their logs shown on failure) at teardown."""
    started: list[HatangProcess] = []
    yield started
    for proc in started:
        proc.stop()
    if request.session.testsfailed:  # show what the services said; pytest prints it with the failure
        for proc in started:
            sys.stderr.write(f"\n----- hatang {proc.args[0]} log -----\n{proc.log()[-6000:]}\n")


@pytest.fixture
def start_collector(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess]
) -> Callable[..., Collector]:
    def start(**overrides: Any) -> Collector:
        port = free_tcp_port()
        config = {"mqtt": {"url": mosquitto.url}, "listen": f"127.0.0.1:{port}", **overrides}
        path = write_yaml(tmp_path / "collector.yaml", config)
        proc = HatangProcess(["collector", "-c", str(path)], tmp_path / "collector.log").start()
        processes.append(proc)
        url = f"http://{config['listen']}/metrics"
        wait_for_series(url, "hatang_collector_broker_connected", timeout=20)
        return Collector(proc, url, path)

    return start


@pytest.fixture
def start_agent(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[HatangProcess]
) -> Callable[..., HatangProcess]:
    def start(
        devices: list[dict[str, Any]], agent_id: str = "xa-dai-dinh", mqtt: dict[str, Any] | None = None,
        **overrides: Any
    ) -> HatangProcess:
        config = {
            "agent_id": agent_id,
            "site": SITE,
            "mqtt": {"url": mosquitto.url, **(mqtt or {})},
            "buffer": {"path": str(tmp_path / f"buffer-{agent_id}")},
            "devices": devices,
            **overrides,
        }
        path = write_yaml(tmp_path / f"agent-{agent_id}.yaml", config)
        proc = HatangProcess(["agent", "-c", str(path)], tmp_path / f"agent-{agent_id}.log").start()
        processes.append(proc)
        return proc

    return start


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """The wheels of hatang's dependencies for the offices' systems ($HATANG_TEST_WHEELHOUSE)."""
    return wheelhouse_dir()


@pytest.fixture(scope="session")
def bundle(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The checkout's offline agent bundle, built once per session without the network (shared by the
    installer's and the Ansible role's tests)."""
    return build_bundle(REPO, wheelhouse, tmp_path_factory.mktemp("bundle"))

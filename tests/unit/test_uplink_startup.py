"""What used to stop the agent at start-up: many devices (the last will listed them all and overflowed
MQTT's 65,535-byte will), one device whose address does not resolve, and a buffer directory held by
another agent. No sockets: the SNMP engine is a fake; the disk queue is the real one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.queue import DiskQueue
from agent.service import AgentService
from agent.snmp.errors import SnmpAddressError
from hatang import cli, configfile
from tests.support.hatang import write_yaml
from tests.support.sequential_walks import SequentialWalks
from wire.codec import decode_batch, decode_status

SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}
MQTT_WILL_LIMIT = 65_535  # the will payload's length is two bytes in CONNECT


def _config(tmp_path: Path, devices: list[dict[str, Any]]) -> AgentConfig:
    return configfile.validate(AgentConfig, {
        "agent_id": "xa-dai-dinh", "site": SITE, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "buffer": {"path": str(tmp_path / "buffer")}, "devices": devices,
    })


def _devices(count: int, width: int) -> list[dict[str, Any]]:
    return [{"name": f"d{i:05d}".ljust(width, "x"), "address": "127.0.0.1"} for i in range(count)]


@pytest.fixture
def service_for(tmp_path: Path) -> Any:
    made: list[AgentService] = []

    def make(devices: list[dict[str, Any]]) -> AgentService:
        service = AgentService(_config(tmp_path, devices), tmp_path / "agent.yaml")
        made.append(service)
        return service

    yield make
    for service in made:
        service.queue.close()


# ---------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(("count", "width"), [(1100, 63), (10_000, 8), (20_000, 63)],
                         ids=["1100-long-names", "10000-short-names", "20000-long-names"])
def test_the_will_lists_no_devices_and_stays_small(service_for: Any, count: int, width: int) -> None:
    service = service_for(_devices(count, width))
    will = service._status(online=False)
    assert len(will) < 2048 < MQTT_WILL_LIMIT
    status = decode_status(will)
    assert status.devices == () and not status.online


@pytest.mark.parametrize(("count", "width"), [(1100, 63), (10_000, 8)],
                         ids=["1100-long-names", "10000-short-names"])
def test_the_birth_lists_the_devices_while_that_stays_under_256_kib(service_for: Any, count: int,
                                                                      width: int) -> None:
    service = service_for(_devices(count, width))
    birth = service._status(online=True)
    assert len(birth) <= 256 * 1024
    status = decode_status(birth)
    assert status.online and len(status.devices) == count  # the collector forgets devices not listed


def test_a_birth_too_large_lists_no_devices_and_says_so_once(service_for: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """An incomplete list would make the collector forget the devices left out: none, then."""
    caplog.set_level(logging.WARNING, logger="hatang.agent")
    service = service_for(_devices(20_000, 63))
    for _ in range(3):
        birth = service._status(online=True)
        assert len(birth) < 2048 and decode_status(birth).devices == ()
    lines = [r.getMessage() for r in caplog.records if "does not list" in r.getMessage()]
    assert len(lines) == 1 and "20000 devices" in lines[0], lines


# ---------------------------------------------------------------------------------------------- address


class FakeTarget(SequentialWalks):
    """Answers every GET with nothing: the device answered (up) but has no data for the profile."""

    def __init__(self) -> None:
        self.gets = 0

    async def get(self, oids: Sequence[Any]) -> list[Any]:
        self.gets += 1
        return []

    async def walk(self, root: Any, *, max_rows: int = 0) -> list[Any]:
        return []


class FakeEngine:
    """``engine.target`` of agent.snmp.engine: the address of "bad" does not resolve until ``resolvable``."""

    def __init__(self) -> None:
        self.resolvable = False
        self.calls: dict[str, int] = {}
        self.targets: dict[str, FakeTarget] = {}

    async def target(self, host: str, port: int, creds: Any, **_: Any) -> FakeTarget:
        self.calls[host] = self.calls.get(host, 0) + 1
        if host == "khong-ton-tai.invalid" and not self.resolvable:
            raise SnmpAddressError(f"cannot use address {host}:{port}: [Errno -2] Name or service not known")
        return self.targets.setdefault(host, FakeTarget())


async def test_a_device_whose_address_does_not_resolve_is_polled_down_with_reason_address(
    service_for: Any,
) -> None:
    service = service_for([
        {"name": "khong-phan-giai", "address": "khong-ton-tai.invalid", "interval": 60,
         "profiles": ["system"]},
        {"name": "core-switch", "address": "192.0.2.10", "interval": 60, "profiles": ["system"]},
    ])
    engine = FakeEngine()
    scheduler = await service._build_scheduler(engine)  # type: ignore[arg-type]
    pollers = {name: d.poller for name, d in scheduler.devices.items()}
    assert set(pollers) == {"khong-phan-giai", "core-switch"}

    for expected in (1, 2):  # each interval: reported down, resolution tried again
        outcome = await pollers["khong-phan-giai"].poll()
        service.record("khong-phan-giai", 60, outcome)
        assert not outcome.up
        assert [e.reason for e in outcome.errors] == ["address"]
        assert "Name or service not known" in outcome.errors[0].error
        assert dict(outcome.problems)["address"] == expected
    assert engine.calls["khong-ton-tai.invalid"] == 3  # at start, then at each poll

    batches = [decode_batch(m.payload) for m in service.queue.peek(10)]
    assert [(b.device, b.up) for b in batches] == [("khong-phan-giai", False)] * 2
    counter = next(f for f in batches[-1].families if f.name == "hatang_device_poll_errors_total")
    assert (("reason", "address"),) in [s.labels for s in counter.samples]
    assert {s.labels: s.value for s in counter.samples}[(("reason", "address"),)] == 2

    assert (await pollers["core-switch"].poll()).up  # the other device runs

    engine.resolvable = True  # DNS fixed: the next poll reaches the device
    outcome = await pollers["khong-phan-giai"].poll()
    assert outcome.up and engine.targets["khong-ton-tai.invalid"].gets == 1


# ---------------------------------------------------------------------------------------------- lock


def test_a_second_agent_on_a_held_buffer_prints_why_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-dai-dinh", "site": SITE, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "buffer": {"path": str(tmp_path / "buffer")},
    })
    holder = DiskQueue(tmp_path / "buffer", max_bytes=1 << 20, max_age=86400)  # the running agent
    try:
        assert cli.main(["agent", "-c", str(path)]) == 2
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert "buffer.path" in err and "in use by another hatang agent" in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------- settings


def test_the_mqtt_settings_reach_the_uplink(tmp_path: Path) -> None:
    config = configfile.validate(AgentConfig, {
        "agent_id": "xa-dai-dinh", "site": SITE, "buffer": {"path": str(tmp_path / "buffer")},
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "redeliver_window": 0, "protocol": "3.1.1"},
    })
    service = AgentService(config, tmp_path / "agent.yaml")
    try:
        assert service.uplink.protocol == "3.1.1"
        assert service.uplink._redeliver_window == 0
    finally:
        service.queue.close()
    default = AgentService(_config(tmp_path / "default", []), tmp_path / "agent.yaml")
    try:
        assert default.uplink.protocol == "5"  # "auto": MQTT 5 until a broker refuses it
        assert default.uplink._redeliver_window == 120
    finally:
        default.queue.close()

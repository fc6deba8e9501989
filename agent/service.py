"""Agent composition root: build the pieces from the config and run them until asked to stop."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

from agent.config import AgentConfig, DeviceConfig
from agent.poller import DevicePoller, PollOutcome
from agent.profiles import load_profiles
from agent.queue import DiskQueue
from agent.scheduler import ScheduledDevice, Scheduler
from agent.snmp import Credentials, SnmpEngine, SnmpError, SnmpTimeout
from agent.uplink import BrokerSettings, Uplink
from hatang import __version__
from hatang.configfile import read_secret
from wire.codec import encode_batch, encode_status
from wire.messages import AgentStatus, PollBatch

log = logging.getLogger("hatang.agent")


def _secret(inline: str | None, path: Path | None, config_path: Path, key: str) -> str | None:
    return read_secret(path, config_path, key) if path is not None else inline


def credentials(device: DeviceConfig, index: int, config_path: Path) -> Credentials:
    snmp = device.snmp
    key = f"devices[{index}].snmp"
    community = _secret(snmp.community, snmp.community_file, config_path, f"{key}.community_file")
    return Credentials(
        version=snmp.version,
        community=community if community is not None else "public",
        username=snmp.username or "",
        auth_protocol=snmp.auth_protocol,
        auth_password=_secret(snmp.auth_password, snmp.auth_password_file, config_path,
                              f"{key}.auth_password_file") or "",
        priv_protocol=snmp.priv_protocol,
        priv_password=_secret(snmp.priv_password, snmp.priv_password_file, config_path,
                              f"{key}.priv_password_file") or "",
        context=snmp.context,
    )


def poll_deadline(device: DeviceConfig) -> float:
    """A poll must finish well before the next one is due."""
    return max(1.0, device.interval * 0.9)


class AgentService:
    def __init__(self, config: AgentConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.boot_id = uuid.uuid4().hex
        self._seq = 0
        self._site = config.site.labels()
        buffer = config.buffer
        self.queue = DiskQueue(buffer.path, max_bytes=buffer.max_bytes, max_age=buffer.max_age)
        mqtt = config.mqtt
        intervals = {d.name: d.interval for d in config.devices}
        self.uplink = Uplink(
            BrokerSettings(
                url=mqtt.url,
                client_id=f"hatang-agent-{config.agent_id}",
                username=mqtt.username or config.agent_id,
                password=_secret(mqtt.password, mqtt.password_file, config_path, "mqtt.password_file"),
                ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
                keepalive=mqtt.keepalive,
            ),
            config.agent_id,
            self.queue,
            birth=lambda: self._status(online=True),
            will=self._status(online=False),
            live_window=lambda device: intervals.get(device, 60.0),
        )
        self.scheduler: Scheduler | None = None

    def _status(self, *, online: bool) -> bytes:
        return encode_status(AgentStatus(
            agent=self.config.agent_id, boot_id=self.boot_id, online=online, ts=time.time(),
            version=__version__, site=self._site, devices=tuple(d.name for d in self.config.devices),
        ))

    def record(self, device: str, interval: float, outcome: PollOutcome) -> None:
        """Turn a poll outcome into a numbered batch and put it in the disk queue."""
        self._seq += 1
        batch = PollBatch(
            agent=self.config.agent_id, boot_id=self.boot_id, seq=self._seq, ts=outcome.ts, device=device,
            interval=interval, up=outcome.up, duration=round(outcome.duration, 6), site=self._site,
            errors=outcome.errors, families=outcome.families,
        )
        self.queue.append(device, encode_batch(batch))
        self.uplink.notify()

    async def _build_scheduler(self, engine: SnmpEngine) -> Scheduler:
        profiles = load_profiles(self.config.profiles_dir)
        devices = []
        for index, device in enumerate(self.config.devices):
            creds = credentials(device, index, self.config_path)
            target = await engine.target(device.address, device.port, creds,
                                         timeout=device.snmp.timeout, retries=device.snmp.retries)
            poller = DevicePoller(
                device.name, target, [profiles[p] for p in device.profiles],
                deadline=poll_deadline(device), timeout_errors=(SnmpTimeout,), snmp_errors=(SnmpError,),
            )
            devices.append(ScheduledDevice(poller, device.interval))
        return Scheduler(devices, max_concurrent=self.config.max_concurrent_polls, on_result=self.record)

    async def run(self, stop: asyncio.Event) -> None:
        engine = SnmpEngine()
        try:
            self.scheduler = await self._build_scheduler(engine)
            log.info("agent %s starting: %d devices, boot %s", self.config.agent_id,
                     len(self.config.devices), self.boot_id)
            async with asyncio.TaskGroup() as group:
                group.create_task(self.scheduler.run(), name="scheduler")
                group.create_task(self.uplink.run(), name="uplink")
                await stop.wait()
                await self.uplink.say_goodbye(self._status(online=False))
                raise _Stop
        except* _Stop:
            pass
        finally:
            engine.close()
            self.queue.close()
            log.info("agent %s stopped", self.config.agent_id)


class _Stop(Exception):
    """Raised inside the task group to cancel its tasks on a requested stop."""

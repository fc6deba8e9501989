"""Agent composition root: build the pieces from the config and run them until asked to stop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import AgentConfig, ProbeConfig
from agent.device_setup import ResolvingTarget, credentials, make_poller, secret, trap_receiver_args
from agent.events import device_addresses, probe_families
from agent.poller import PollOutcome
from agent.probes import ProbeError, run_probe
from agent.profiles import load_profiles
from agent.queue import DiskQueue, QueueLocked
from agent.scheduler import ScheduledDevice, Scheduler
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpAddressError
from agent.snmp.trap_events import TrapEvent
from agent.uplink import EVENTS_CHANNEL, SELF_CHANNEL, Uplink, UplinkSettings
from hatang import __version__
from hatang.configfile import ConfigError
from wire.codec import DEFAULT_LIMITS, encode_batch, encode_status, encode_trap
from wire.messages import AgentStatus, Family, PollBatch, ProfileError, Sample, TrapMessage

if TYPE_CHECKING:
    from agent.snmp.traps import TrapReceiver

log = logging.getLogger("hatang.agent")

# The birth message lists the agent's devices (the collector forgets devices no longer listed) as long as
# the status payload stays below this; beyond it the list is left out (the collector then forgets none).
# The will never lists them: it travels in CONNECT, whose will payload MQTT caps at 65,535 bytes.
STATUS_MAX_BYTES = 256 * 1024
# Seconds a changed choice of profiles waits before the birth is published again, so that the devices
# identified together after a start make one new birth, not one each.
BIRTH_REFRESH_DELAY = 2.0


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def config_version(path: Path) -> str:
    """A short hash of the config file, so operators can see which config an agent runs."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


class AgentService:
    def __init__(self, config: AgentConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.boot_id = uuid.uuid4().hex
        self.started = time.time()
        self._seq = 0
        self._site = config.site.labels()
        self.config_hash = config_version(config_path)
        self.polls = 0
        self.failed_polls = 0
        self._oversized: set[str] = set()  # devices whose polls exceed the collector's default limits
        self._device_names = (tuple(d.name for d in config.devices) + tuple(p.name for p in config.probes))
        self._status_list_warned = False
        # the profiles each device polls, for the birth: listed ones now, chosen ones (auto) once identified
        self._device_profiles = {d.name: tuple(d.profiles) for d in config.devices if not d.auto_profiles}
        self._birth_refresh: asyncio.TimerHandle | None = None
        self.last_polls: dict[str, PollOutcome] = {}  # per device and probe, without samples (status page)
        buffer = config.buffer
        try:
            self.queue = DiskQueue(buffer.path, max_bytes=buffer.max_bytes, max_age=buffer.max_age)
        except QueueLocked as exc:  # another agent runs on this buffer: say so and exit 2 (hatang.cli)
            raise ConfigError(config_path, [("buffer.path", str(exc))]) from None
        mqtt = config.mqtt
        self.uplink = Uplink(
            UplinkSettings(
                url=mqtt.url,
                client_id=f"hatang-agent-{config.agent_id}",
                username=mqtt.username or config.agent_id,
                password=secret(mqtt.password, mqtt.password_file, config_path, "mqtt.password_file"),
                ca_file=_path(mqtt.ca_file),
                cert_file=_path(mqtt.cert_file),
                key_file=_path(mqtt.key_file),
                keepalive=mqtt.keepalive,
                protocol=mqtt.protocol,
            ),
            config.agent_id,
            self.queue,
            birth=lambda: self._status(online=True),
            will=self._status(online=False),
            replay_rate=buffer.replay_rate,
            redeliver_window=mqtt.redeliver_window,
        )
        self.scheduler: Scheduler | None = None
        self._addresses = device_addresses(config)
        self.trap_receiver: TrapReceiver | None = None

    def _status(self, *, online: bool) -> bytes:
        """The birth (online: lists the devices while that stays under STATUS_MAX_BYTES), or the will and
        the goodbye (offline: no device list, so they stay small whatever the number of devices)."""
        stats = self.queue.stats()
        buffer = {"depth": float(stats.depth), "bytes": float(stats.bytes), "dropped": float(stats.dropped),
                  "dropped_full": float(stats.dropped_full)}
        if stats.oldest is not None:
            buffer["oldest_ts"] = stats.oldest

        def encode(devices: tuple[str, ...], profiles: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> bytes:
            return encode_status(AgentStatus(
                agent=self.config.agent_id, boot_id=self.boot_id, online=online, ts=time.time(),
                version=__version__, site=self._site, devices=devices,
                config_version=self.config_hash, buffer=tuple(sorted(buffer.items())), profiles=profiles,
            ))

        if not online:
            return encode(())
        payload = encode(self._device_names, tuple(sorted(self._device_profiles.items())))
        if len(payload) <= STATUS_MAX_BYTES:
            return payload
        payload = encode(self._device_names)  # the device list matters more than the profiles
        if len(payload) <= STATUS_MAX_BYTES:
            return payload
        if not self._status_list_warned:
            self._status_list_warned = True
            log.warning("the status message does not list the %d devices and probes: the list would make it "
                        "%d bytes, more than %d; the collector then keeps the series of devices removed from "
                        "the config until they go stale", len(self._device_names), len(payload),
                        STATUS_MAX_BYTES)
        return encode(())

    def _enqueue(self, channel: str, device: str, interval: float, outcome: PollOutcome,
                 kind: str = "device") -> None:
        self._seq += 1
        batch = PollBatch(
            agent=self.config.agent_id, boot_id=self.boot_id, seq=self._seq, ts=outcome.ts, device=device,
            interval=interval, up=outcome.up, duration=round(outcome.duration, 6), site=self._site,
            errors=outcome.errors, families=outcome.published, kind=kind,
        )
        payload = encode_batch(batch)
        self._warn_if_too_large(device, payload, batch)
        if channel != SELF_CHANNEL:
            self.last_polls[device] = replace(outcome, families=(), problems=())
        self._append(channel, payload, interval)

    def _append(self, channel: str, payload: bytes, live_for: float) -> None:
        """Into the disk queue. A queue that cannot write (disk full) loses the message; it logs that
        once per episode and counts it (``dropped_full``), and the collector sees the sequence gap."""
        if self.queue.append(channel, payload, live_for=live_for):
            self.uplink.notify()

    def _warn_if_too_large(self, device: str, payload: bytes, batch: PollBatch) -> None:
        """A poll over the collector's default limits is rejected there unless they were raised: say so,
        once per device (it is still sent: the centre may have raised them)."""
        samples = sum(len(f.samples) for f in batch.families)
        if ((len(payload) <= DEFAULT_LIMITS.max_payload_bytes and samples <= DEFAULT_LIMITS.max_samples)
                or device in self._oversized):
            return
        self._oversized.add(device)
        log.warning("a poll of device %s has %d samples in %d bytes, more than a collector accepts by "
                    "default (%d samples, %d bytes): raise limits.max_samples_per_message and "
                    "max_payload_bytes on the collectors, or poll fewer profiles on this device",
                    device, samples, len(payload), DEFAULT_LIMITS.max_samples,
                    DEFAULT_LIMITS.max_payload_bytes)

    def on_trap(self, event: TrapEvent) -> None:
        """A trap arrived: queue it as an event and poll the device that sent it at once."""
        names = self._addresses.get(event.source, [])
        for name in names:
            if self.scheduler is not None and self.config.traps is not None and self.config.traps.repoll:
                self.scheduler.poll_now(name)
        self._seq += 1
        message = TrapMessage(
            agent=self.config.agent_id, boot_id=self.boot_id, seq=self._seq, ts=event.ts,
            device=names[0] if names else "unknown", source=event.source, version=event.version,
            trap_oid=event.trap_oid, trap_name=event.trap_name, if_index=event.if_index,
            uptime=event.uptime, varbinds=event.varbinds, site=self._site,
        )
        self._append(EVENTS_CHANNEL, encode_trap(message), 60.0)

    async def _run_probe(self, probe: ProbeConfig) -> None:
        while True:
            started = time.time()
            try:
                result = await run_probe(probe.address, count=probe.count, interval=probe.spacing,
                                         timeout=probe.timeout, method=probe.method, tcp_port=probe.tcp_port)
            except ProbeError as exc:
                outcome = PollOutcome(started, False, time.time() - started,
                                      (ProfileError("probe", str(exc)),), ())
            else:
                outcome = PollOutcome(started, result.up, time.time() - started, (),
                                      probe_families(probe, result))
            self._enqueue(probe.name, probe.name, probe.interval, outcome, kind="probe")
            await asyncio.sleep(max(0.0, started + probe.interval - time.time()))

    def record(self, device: str, interval: float, outcome: PollOutcome) -> None:
        """Turn a poll outcome into a numbered batch and put it in the disk queue; a device whose profiles
        were chosen (anew) makes the birth be published again (``profiles``)."""
        self.polls += 1
        self.failed_polls += not outcome.up
        self._enqueue(device, device, interval, outcome)
        if outcome.profiles and self._device_profiles.get(device) != outcome.profiles:
            self._device_profiles[device] = outcome.profiles
            self._refresh_birth_soon()

    def _refresh_birth_soon(self) -> None:
        if self._birth_refresh is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test calling record): at once
            self.uplink.refresh_birth()
            return
        self._birth_refresh = loop.call_later(BIRTH_REFRESH_DELAY, self._refresh_birth)

    def _refresh_birth(self) -> None:
        self._birth_refresh = None
        self.uplink.refresh_birth()

    def self_metrics(self) -> tuple[Family, ...]:
        """The agent's own health, published on the ``self`` topic like a poll."""
        now = time.time()
        stats = self.queue.stats()
        usage = resource.getrusage(resource.RUSAGE_SELF)

        def one(name: str, mtype: str, help_text: str, value: float) -> Family:
            return Family(name, "counter" if mtype == "counter" else "gauge", help_text, (Sample((), value),))

        return (
            one("hatang_agent_queue_messages", "gauge", "Messages waiting in the agent's disk queue.",
                stats.depth),
            one("hatang_agent_queue_bytes", "gauge", "Bytes of payload in the agent's disk queue.",
                stats.bytes),
            one("hatang_agent_queue_oldest_age_seconds", "gauge",
                "Age of the oldest queued message (0 when the queue is empty).",
                round(now - stats.oldest, 3) if stats.oldest is not None else 0),
            one("hatang_agent_queue_dropped_total", "counter",
                "Messages dropped by the queue's size or age bound (over the queue's life).", stats.dropped),
            one("hatang_agent_queue_dropped_full_total", "counter",
                "Messages that could not be stored because the buffer's filesystem was full.",
                stats.dropped_full),
            one("hatang_agent_queue_corrupt_files_total", "counter",
                "Corrupt queue files moved aside (the queue started empty).", stats.corrupt_files),
            one("hatang_agent_queue_delivered_kept", "gauge",
                "Messages the broker accepted, kept to be sent again after a broker crash.",
                stats.delivered_kept),
            *self.uplink.self_metrics(),
            one("hatang_agent_polls_total", "counter", "Device polls done, since the agent started.",
                self.polls),
            one("hatang_agent_failed_polls_total", "counter",
                "Device polls in which the device did not answer, since the agent started.",
                self.failed_polls),
            one("hatang_agent_start_time_seconds", "gauge", "Unix time the agent process started.",
                round(self.started, 3)),
            one("hatang_agent_cpu_seconds_total", "counter", "CPU time (user + system) of the agent process.",
                round(usage.ru_utime + usage.ru_stime, 3)),
            one("hatang_agent_max_resident_memory_bytes", "gauge",
                "Peak resident memory of the agent process.", usage.ru_maxrss * 1024),
        )

    async def _publish_self_metrics(self) -> None:
        interval = self.config.self_metrics_interval
        while True:
            started = time.time()
            outcome = PollOutcome(started, True, 0.0, (), self.self_metrics())
            self._enqueue(SELF_CHANNEL, "self", interval, outcome)
            await asyncio.sleep(interval)

    async def _build_scheduler(self, engine: SnmpEngine) -> Scheduler:
        profiles = load_profiles(self.config.profiles_dir)
        devices = []
        for index, device in enumerate(self.config.devices):
            target = ResolvingTarget(engine, device, credentials(device, index, self.config_path))
            try:
                await target.resolve()
            except SnmpAddressError as exc:  # polled anyway: reported down, resolution retried each poll
                log.info("device %s: %s; reporting it down (reason \"address\") and trying again at each "
                         "poll", device.name, exc)
            poller = make_poller(device, target, profiles)
            devices.append(ScheduledDevice(poller, device.interval))
        return Scheduler(devices, max_concurrent=self.config.max_concurrent_polls, on_result=self.record)

    async def _start_traps(self) -> None:
        traps = self.config.traps
        if traps is None:
            return
        communities, users = trap_receiver_args(traps, self.config_path)
        from agent.snmp.traps import TrapReceiver  # pysnmp: only for an agent that receives traps

        self.trap_receiver = TrapReceiver(traps.host_port(), communities, users, self.on_trap,
                                          engine_id=traps.engine_id)
        await self.trap_receiver.start()  # TrapListenError: port taken or privileged
        host, port = self.trap_receiver.bound
        log.info("receiving SNMP traps on %s:%d", host, port)

    async def _start_status_page(self) -> Callable[[], Awaitable[None]] | None:
        """The local status page, if configured; aiohttp is imported only then (the agent's memory)."""
        if self.config.status is None:
            return None
        from agent.status_page import serve_status_page

        return await serve_status_page(self.config.status, self)

    async def run(self, stop: asyncio.Event) -> None:
        engine = SnmpEngine()
        close_page: Callable[[], Awaitable[None]] | None = None
        try:
            self.scheduler = await self._build_scheduler(engine)
            await self._start_traps()
            close_page = await self._start_status_page()
            log.info("agent %s starting: %d devices, %d probes, boot %s", self.config.agent_id,
                     len(self.config.devices), len(self.config.probes), self.boot_id)
            async with asyncio.TaskGroup() as group:
                uplink = group.create_task(self.uplink.run(), name="uplink")
                producers = [
                    group.create_task(self.scheduler.run(), name="scheduler"),
                    group.create_task(self._publish_self_metrics(), name="self-metrics"),
                    *(group.create_task(self._run_probe(probe), name=f"probe:{probe.name}")
                      for probe in self.config.probes),
                ]
                await stop.wait()
                # Stop producing first, so the goodbye is the last message the collector sees from us.
                for task in producers:
                    task.cancel()
                await asyncio.gather(*producers, return_exceptions=True)
                if self.trap_receiver is not None:
                    self.trap_receiver.close()
                await self.uplink.finish(self._status(online=False))
                uplink.cancel()
                raise _Stop
        except* _Stop:
            pass
        finally:
            if self._birth_refresh is not None:
                self._birth_refresh.cancel()
            if self.trap_receiver is not None:
                self.trap_receiver.close()
            if close_page is not None:
                await close_page()
            engine.close()
            self.queue.close()
            log.info("agent %s stopped; boot %s made %d message(s)", self.config.agent_id, self.boot_id,
                     self._seq)


class _Stop(Exception):
    """Raised inside the task group to cancel its tasks on a requested stop."""

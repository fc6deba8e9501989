"""Agent composition root: build the pieces from the config and run them until asked to stop."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent.birth import StatusMessages, config_version
from agent.checked_config import ConfigChecker, check_here
from agent.config import AgentConfig, ProbeConfig, TrapsConfig
from agent.device_setup import ResolvingTarget, credentials, make_poller, secret, trap_receiver_args
from agent.events import device_addresses, probe_outcome
from agent.poller import PollOutcome
from agent.profiles import Profile, load_profiles
from agent.queue import DiskQueue, QueueLocked
from agent.queue_writer import OversizedPolls, QueueWriter
from agent.remote_config import Accepted, Rejected, RemoteConfig
from agent.scheduler import ScheduledDevice, Scheduler
from agent.self_metrics import agent_self_metrics
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpAddressError
from agent.snmp.trap_events import TrapEvent
from agent.uplink import EVENTS_CHANNEL, SELF_CHANNEL, Uplink, UplinkSettings
from hatang import __version__
from hatang.config_errors import ConfigError
from wire.codec import encode_batch, encode_trap
from wire.messages import Family, PollBatch, TrapMessage

if TYPE_CHECKING:
    from agent.snmp.traps import TrapReceiver

log = logging.getLogger("hatang.agent")

# Seconds a changed choice of profiles waits before the birth is published again, so that the devices
# identified together after a start make one new birth, not one each.
BIRTH_REFRESH_DELAY = 2.0


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


class AgentService:
    """``profiles``: those ``config`` can use, as checked with it (None: loaded at start, in this process);
    ``checker``: how the centre's configurations are checked (agent/checked_config.py)."""

    def __init__(self, config: AgentConfig, config_path: Path, *, profiles: dict[str, Profile] | None = None,
                 checker: ConfigChecker = check_here) -> None:
        self.config_path = config_path
        # the centre's configuration (remote_config): the last good one kept on disk, until the broker
        # delivers a newer one (agent/remote_config.py)
        self.remote: RemoteConfig | None = None
        if config.remote_config is not None:
            self.remote = RemoteConfig(config, config_path, checker)
            kept = self.remote.last_good()
            if kept is not None:
                config = kept.config
                self.remote.applied(kept, save=False)
                log.info("running revision %d of the centre's configuration, kept in %s", kept.revision,
                         self.remote.state_file)
        self.config = config
        self._config_payload: bytes | None = None  # the newest one the broker delivered, not yet handled
        self._config_arrived_event = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._probe_tasks: dict[str, asyncio.Task[None]] = {}
        self._profiles: dict[str, Profile] = profiles or {}
        self.boot_id = uuid.uuid4().hex
        self._birth = StatusMessages(config.agent_id, self.boot_id, config.site.labels(), __version__)
        self.started = time.time()
        self._seq = 0
        self._site = config.site.labels()
        self.config_hash = config_version(config_path)
        self.polls = 0
        self.failed_polls = 0
        self._oversized = OversizedPolls()  # devices whose polls exceed the collector's default limits
        self._device_names = (tuple(d.name for d in config.devices) + tuple(p.name for p in config.probes))
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
            will=lambda: self._status(online=False),
            replay_rate=buffer.replay_rate,
            redeliver_window=mqtt.redeliver_window,
            on_config=self._config_arrived if self.remote is not None else None,
        )
        self.writer = QueueWriter(self.queue, self.uplink.notify)
        self.scheduler: Scheduler | None = None
        self._addresses = device_addresses(config)
        self.trap_receiver: TrapReceiver | None = None

    @property
    def config_version(self) -> str:
        """The birth's: the revision of the centre's configuration (remote_config), else agent.yaml's hash."""
        return str(self.remote.revision) if self.remote is not None else self.config_hash

    def _status(self, *, online: bool) -> bytes:
        """The birth (online), or the will and the goodbye (offline): agent/birth.py."""
        return self._birth.encode(
            online=online, stats=self.queue.stats(), config_version=self.config_version,
            config_rejected=self.remote.rejection if self.remote is not None else None,
            devices=self._device_names, profiles=tuple(sorted(self._device_profiles.items())))

    def _enqueue(self, channel: str, device: str, interval: float, outcome: PollOutcome,
                 kind: str = "device") -> None:
        self._seq += 1
        batch = PollBatch(
            agent=self.config.agent_id, boot_id=self.boot_id, seq=self._seq, ts=outcome.ts, device=device,
            interval=interval, up=outcome.up, duration=round(outcome.duration, 6), site=self._site,
            errors=outcome.errors, families=outcome.published, kind=kind,
        )
        payload = encode_batch(batch)
        self._oversized.check(device, payload, batch)
        if channel != SELF_CHANNEL:
            self.last_polls[device] = replace(outcome, families=(), problems=())
        self.writer.append(channel, payload, interval)  # in sequence order, traps in batches

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
        self.writer.append_batched(EVENTS_CHANNEL, encode_trap(message), 60.0)

    async def _run_probe(self, probe: ProbeConfig) -> None:
        while True:
            outcome = await probe_outcome(probe)
            self._enqueue(probe.name, probe.name, probe.interval, outcome, kind="probe")
            await asyncio.sleep(max(0.0, outcome.ts + probe.interval - time.time()))

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
        return agent_self_metrics(self.queue, self.uplink, polls=self.polls, failed_polls=self.failed_polls,
                                  started=self.started, remote=self.remote)

    async def _publish_self_metrics(self) -> None:
        while True:
            interval = self.config.self_metrics_interval
            started = time.time()
            outcome = PollOutcome(started, True, 0.0, (), self.self_metrics())
            self._enqueue(SELF_CHANNEL, "self", interval, outcome)
            await asyncio.sleep(interval)

    async def _schedule(self, engine: SnmpEngine, config: AgentConfig, names: set[str] | None = None,
                        ) -> list[ScheduledDevice]:
        """Pollers for the devices of ``config`` (those in ``names`` only, if given). Raises ConfigError
        when a secret file cannot be read."""
        devices = []
        for index, device in enumerate(config.devices):
            if names is not None and device.name not in names:
                continue
            target = ResolvingTarget(engine, device, credentials(device, index, self.config_path))
            try:
                await target.resolve()
            except SnmpAddressError as exc:  # polled anyway: reported down, resolution retried each poll
                log.info("device %s: %s; reporting it down (reason \"address\") and trying again at each "
                         "poll", device.name, exc)
            poller = make_poller(device, target, self._profiles)
            devices.append(ScheduledDevice(poller, device.interval))
        return devices

    async def _build_scheduler(self, engine: SnmpEngine) -> Scheduler:
        self._profiles = self._profiles or load_profiles(self.config.profiles_dir)
        return Scheduler(await self._schedule(engine, self.config),
                         max_concurrent=self.config.max_concurrent_polls, on_result=self.record)

    # --- the centre's configuration, applied live -----------------------------------------------------

    def _config_arrived(self, payload: bytes) -> None:
        """The broker delivered the agent's config topic (at each connection, and at each push)."""
        self._config_payload = payload
        self._config_arrived_event.set()

    async def _follow_remote_config(self, engine: SnmpEngine) -> None:
        while True:
            await self._config_arrived_event.wait()
            self._config_arrived_event.clear()
            payload, self._config_payload = self._config_payload, None
            if not payload:  # b"": the retained configuration was cleared; the one applied stays
                continue
            try:
                await self._handle_config(payload, engine)
            except Exception:  # a fault here must never stop the polls: logged, the agent goes on
                log.exception("a configuration from the centre could not be handled")

    async def _handle_config(self, payload: bytes, engine: SnmpEngine) -> None:
        remote = self.remote
        assert remote is not None
        try:
            # in a thread: the check may run a child process (agent/checked_config.py) while polls go on
            accepted = await asyncio.to_thread(remote.check, payload)
            if accepted is None:
                return
            summary = await self._apply(accepted, engine)
        except Rejected as exc:
            if remote.rejected(payload, exc):
                log.warning("configuration revision %d from the centre refused (%s): %s; the agent goes on "
                            "with revision %d", exc.revision, exc.reason, exc.error, remote.revision)
                self.uplink.refresh_birth()
            return
        remote.applied(accepted)
        for warning in accepted.warnings:
            log.warning("%s", warning)
        log.info("configuration revision %d from the centre applied: %s", accepted.revision, summary)
        self.uplink.refresh_birth()

    async def _apply(self, accepted: Accepted, engine: SnmpEngine) -> str:
        """Put a checked configuration in service without a restart: devices added, removed and changed
        (their pollers replaced), the others polled on undisturbed; probes likewise; the trap receiver
        started again if its settings changed. Raises :class:`Rejected` ("apply") and changes nothing
        when it cannot."""
        new, old = accepted.config, self.config
        before = {d.name: d for d in old.devices}
        changed = {d.name for d in new.devices if d.name in before and before[d.name] != d}
        fresh = {d.name for d in new.devices if d.name not in before} | changed
        try:
            built = {d.poller.name: d for d in await self._schedule(engine, new, fresh)}
        except ConfigError as exc:
            raise Rejected("files", str(exc), accepted.revision) from None
        if new.traps != old.traps:
            await self._restart_traps(new.traps, old.traps, accepted.revision)
        assert self.scheduler is not None
        current = self.scheduler.devices
        self.scheduler.update([built.get(d.name) or current[d.name] for d in new.devices], changed,
                              max_concurrent=new.max_concurrent_polls)
        self._update_probes(old.probes, new.probes)
        removed = [name for name in before if name not in {d.name for d in new.devices}]
        for name in (*removed, *changed):
            self._device_profiles.pop(name, None)
            self.last_polls.pop(name, None)
        self._device_profiles.update({d.name: tuple(d.profiles) for d in new.devices if not d.auto_profiles})
        self.config = new
        self._addresses = device_addresses(new)
        self._device_names = tuple(d.name for d in new.devices) + tuple(p.name for p in new.probes)
        return (f"{len(new.devices)} devices ({len(fresh) - len(changed)} added, {len(changed)} changed, "
                f"{len(removed)} removed), {len(new.probes)} probes")

    async def _restart_traps(self, traps: TrapsConfig | None, previous: TrapsConfig | None,
                             revision: int) -> None:
        if self.trap_receiver is not None:
            self.trap_receiver.close()
            self.trap_receiver = None
        try:
            await self._start_traps(traps)
        except (OSError, ConfigError) as exc:  # TrapListenError is an OSError: port taken or privileged
            if previous is not None:
                await self._start_traps(previous)
            raise Rejected("apply", f"traps: {exc}", revision) from None

    def _start_probe(self, probe: ProbeConfig) -> None:
        if self._group is not None:
            self._probe_tasks[probe.name] = self._group.create_task(self._run_probe(probe),
                                                                    name=f"probe:{probe.name}")

    def _update_probes(self, old: list[ProbeConfig], new: list[ProbeConfig]) -> None:
        keep = {p.name for p in new if p in old}
        for name in [n for n in self._probe_tasks if n not in keep]:
            self._probe_tasks.pop(name).cancel()
            self.last_polls.pop(name, None)
        for probe in new:
            if probe.name not in keep:
                self._start_probe(probe)

    async def _start_traps(self, traps: TrapsConfig | None) -> None:
        if traps is None:
            return
        communities, users = trap_receiver_args(traps, self.config_path)
        from agent.snmp.traps import TrapReceiver  # only for an agent that receives traps (v3: cryptography)

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
            await self._start_traps(self.config.traps)
            close_page = await self._start_status_page()
            log.info("agent %s starting: %d devices, %d probes, boot %s", self.config.agent_id,
                     len(self.config.devices), len(self.config.probes), self.boot_id)
            async with asyncio.TaskGroup() as group:
                self._group = group
                uplink = group.create_task(self.uplink.run(), name="uplink")
                producers = [
                    group.create_task(self.scheduler.run(), name="scheduler"),
                    group.create_task(self._publish_self_metrics(), name="self-metrics"),
                ]
                if self.remote is not None:
                    producers.append(group.create_task(self._follow_remote_config(engine),
                                                       name="remote-config"))
                for probe in self.config.probes:
                    self._start_probe(probe)
                await stop.wait()
                # Stop producing first, so the goodbye is the last message the collector sees from us.
                producers += self._probe_tasks.values()
                for task in producers:
                    task.cancel()
                await asyncio.gather(*producers, return_exceptions=True)
                if self.trap_receiver is not None:
                    self.trap_receiver.close()
                self.writer.flush()
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
            self.writer.flush()  # traps that arrived just before a stop that was not clean
            self.queue.close()
            log.info("agent %s stopped; boot %s made %d message(s)", self.config.agent_id, self.boot_id,
                     self._seq)


class _Stop(Exception):
    """Raised inside the task group to cancel its tasks on a requested stop."""

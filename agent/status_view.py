"""What the local status page shows, as plain data: a snapshot of the running agent (pure; no aiohttp).

The snapshot is made from what the service already keeps: the uplink's state and its last error, the
disk queue's numbers (the same as the birth message's ``buffer``: depth, bytes, oldest_ts, dropped,
dropped_full), each device's and probe's last poll (up or down, when, how long, its problems in the words
``hatang poll`` prints, agent/poll_text.py) and the applied configuration.

The configuration is described by a list of what may be shown (:func:`applied_config`), never by dumping
the model: no community, password or secret file path can reach the page or ``/api/status``. Rendering
the snapshot as HTML is agent/status_html.py; serving it, agent/status_page.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.config import AgentConfig, DeviceConfig, ProbeConfig
from agent.poll_text import error_lines
from agent.poller import PollOutcome
from agent.queue.records import QueueStats
from agent.snmp.credentials import security_level
from hatang import __version__

SCHEMA = 1  # of /api/status; raised when a field changes meaning or goes away


class LocalUplinkSource(Protocol):
    """What the snapshot reads of agent.uplink.Uplink."""

    @property
    def connected(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def state_since(self) -> float: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_error_ts(self) -> float | None: ...
    @property
    def protocol(self) -> str: ...
    @property
    def published(self) -> int: ...
    @property
    def replayed(self) -> int: ...
    @property
    def connects(self) -> int: ...


class LocalQueueSource(Protocol):
    def stats(self) -> QueueStats: ...


class LocalAgentSource(Protocol):
    """What the snapshot reads of agent.service.AgentService."""

    @property
    def config(self) -> AgentConfig: ...
    @property
    def config_path(self) -> Path: ...
    @property
    def config_version(self) -> str: ...
    @property
    def boot_id(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def uplink(self) -> LocalUplinkSource: ...
    @property
    def queue(self) -> LocalQueueSource: ...
    @property
    def last_polls(self) -> Mapping[str, PollOutcome]: ...


@dataclass(frozen=True, slots=True)
class LocalBroker:
    url: str
    connected: bool
    state: str  # starting | connected | unreachable | refused (agent/uplink.py)
    since: float  # when the state began
    last_error: str | None  # why the last connection failed or ended, or what the broker refused
    last_error_ts: float | None
    protocol: str  # MQTT version: "5" or "3.1.1"
    published: int  # messages the broker acknowledged since the agent started
    replayed: int  # of which backlog after an outage
    connects: int


@dataclass(frozen=True, slots=True)
class LocalBuffer:
    depth: int  # messages waiting to be sent
    bytes: int
    oldest_ts: float | None  # poll time of the oldest message waiting
    dropped: int  # by the size or age bound, over the queue's life
    dropped_full: int  # not stored: the disk was full
    max_bytes: int
    max_age: float


@dataclass(frozen=True, slots=True)
class LocalError:
    profile: str  # "*": the whole poll
    reason: str  # timeout, auth, ... (wire.messages.ERROR_REASONS), "" if none given
    error: str  # the message for a person


@dataclass(frozen=True, slots=True)
class LocalDevice:
    name: str
    kind: str  # device | probe
    address: str
    snmp: str  # "v2c", "v3 authPriv", ...; a probe: its method
    profiles: tuple[str, ...]  # profiles: auto: those chosen for the device at its last poll ("auto" before)
    interval: float
    state: str  # up | down | waiting (not polled yet)
    last_poll_ts: float | None
    duration: float | None
    errors: tuple[LocalError, ...]
    error_lines: tuple[str, ...]  # what `hatang poll` prints under "errors"
    profiles_auto: bool = False  # the profiles were chosen by the device (profiles: auto), not listed


@dataclass(frozen=True, slots=True)
class LocalSnapshot:
    now: float
    agent: dict[str, Any]
    broker: LocalBroker
    buffer: LocalBuffer
    devices: tuple[LocalDevice, ...]
    config: dict[str, Any]


def _snmp(device: DeviceConfig) -> str:
    snmp = device.snmp
    if snmp.version != "3":
        return f"v{snmp.version}"
    return f"v3 {security_level(snmp.auth_protocol, snmp.priv_protocol)}"


def _device(name: str, kind: str, address: str, snmp: str, profiles: tuple[str, ...], interval: float,
            poll: PollOutcome | None, *, auto: bool = False) -> LocalDevice:
    if auto and poll is not None and poll.profiles:
        profiles = poll.profiles  # what the poller chose for the device (agent/profile_selection.py)
    if poll is None:
        return LocalDevice(name, kind, address, snmp, profiles, interval, "waiting", None, None, (), (),
                           profiles_auto=auto)
    errors = tuple(LocalError(e.profile, e.reason, e.error) for e in poll.errors)
    return LocalDevice(name, kind, address, snmp, profiles, interval, "up" if poll.up else "down", poll.ts,
                       round(poll.duration, 3), errors, tuple(error_lines(profiles, poll.errors, poll.up)),
                       profiles_auto=auto)


def devices(config: AgentConfig, polls: Mapping[str, PollOutcome]) -> tuple[LocalDevice, ...]:
    """Every configured device, then every probe, in config order, with its last poll. A device with
    ``profiles: auto`` shows the profiles its last poll used (chosen for it), ``auto`` until it was
    identified."""
    out = [_device(d.name, "device", f"{d.address}:{d.port}", _snmp(d), tuple(d.profiles), d.interval,
                   polls.get(d.name), auto=d.auto_profiles) for d in config.devices]
    out += [_device(p.name, "probe", _probe_address(p), p.method, (), p.interval, polls.get(p.name))
            for p in config.probes]
    return tuple(out)


def _probe_address(probe: ProbeConfig) -> str:
    return probe.address if probe.method == "icmp" else f"{probe.address} (tcp {probe.tcp_port})"


def applied_config(config: AgentConfig, path: Path, config_version: str) -> dict[str, Any]:
    """The configuration the agent runs with, for a person: what may be shown, listed key by key (no
    secret, no secret file path). ``config_version`` is what the birth message carries: the revision of
    the centre's configuration (remote_config), else a hash of agent.yaml."""
    mqtt, buffer, traps = config.mqtt, config.buffer, config.traps
    return {
        "file": str(path.absolute()),
        "config_version": config_version,
        "agent_id": config.agent_id,
        "mqtt": {"url": mqtt.url, "username": mqtt.username or config.agent_id, "protocol": mqtt.protocol,
                 "keepalive": mqtt.keepalive, "client_certificate": mqtt.cert_file is not None,
                 "redeliver_window": mqtt.redeliver_window},
        "buffer": {"path": str(buffer.path), "max_bytes": buffer.max_bytes, "max_age": buffer.max_age,
                   "replay_rate": buffer.replay_rate},
        "devices": len(config.devices),
        "probes": len(config.probes),
        "intervals": sorted({d.interval for d in config.devices} | {p.interval for p in config.probes}),
        "self_metrics_interval": config.self_metrics_interval,
        "max_concurrent_polls": config.max_concurrent_polls,
        "log_level": config.log_level,
        "traps": None if traps is None else {
            "listen": traps.listen, "repoll": traps.repoll, "users": len(traps.users),
            "communities": len(traps.communities) + (traps.communities_file is not None)},
        "status": None if config.status is None else {"listen": config.status.listen},
    }


def snapshot(agent: LocalAgentSource, now: float | None = None) -> LocalSnapshot:
    """The running agent as the status page shows it."""
    config, uplink = agent.config, agent.uplink
    stats = agent.queue.stats()
    site = config.site
    # "connected" until the uplink notices the end of a connection; the page says so as soon as it ended
    state = "unreachable" if uplink.state == "connected" and not uplink.connected else uplink.state
    return LocalSnapshot(
        now=time.time() if now is None else now,
        agent={"id": config.agent_id, "version": __version__, "boot_id": agent.boot_id,
               "started": agent.started,
               "site": {"province": site.province, "district": site.district, "commune": site.commune}},
        broker=LocalBroker(config.mqtt.url, uplink.connected, state, uplink.state_since,
                           uplink.last_error, uplink.last_error_ts, uplink.protocol, uplink.published,
                           uplink.replayed, uplink.connects),
        buffer=LocalBuffer(stats.depth, stats.bytes, stats.oldest, stats.dropped, stats.dropped_full,
                           config.buffer.max_bytes, config.buffer.max_age),
        devices=devices(config, agent.last_polls),
        config=applied_config(config, agent.config_path, agent.config_version),
    )


def as_json(snap: LocalSnapshot) -> dict[str, Any]:
    """The body of ``/api/status`` (docs/configuration.md, the ``status`` section)."""
    return {"schema": SCHEMA, **asdict(snap)}


def to_json_bytes(snap: LocalSnapshot) -> bytes:
    return json.dumps(as_json(snap), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

"""Agent configuration: strict models (unknown keys are errors) and ``load(path)``.

Secrets (community, v3 passwords, MQTT password) may be given inline or as ``*_file`` paths; relative
paths are resolved against the config file's directory. See docs/configuration.md.

:func:`load` is what the agent, ``hatang check`` and ``hatang poll`` use: the model, then what the agent
needs at start (every ``*_file`` readable and not empty, the buffer directory writable).
:func:`load_with_warnings` also returns what works but is probably wrong (``hatang check`` prints it, the
agent logs it at start). :func:`parse` is the model alone (no file system checks; ``hatang check
--skip-files``, ``hatang profiles -c``).

The models are plain dataclasses; their rules are ``Annotated`` metadata (:mod:`hatang.config_types`)
and ``__post_init__`` checks that pydantic applies when a file is validated (:mod:`hatang.configfile`,
imported by the loading functions only). Importing this module does not import pydantic: the running
agent receives its configuration checked by a child process (agent/checked_config.py).

Why this module is long: it is the agent config format, one tree of strict models (site, MQTT, buffer,
SNMP credentials, traps, probes, devices) with the checks that span them; the loading steps beside it are
short and read the same models.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from agent.critical import pattern_problem
from agent.profiles import AUTO
from agent.queue.files import DB_NAME, LOCK_NAME
from agent.snmp.credentials import AuthProtocol, PrivProtocol, SnmpVersion
from hatang import config_paths
from hatang.config_errors import ConfigError, ConfigWarning
from hatang.config_types import STRICT, After, Before, Constraints, FiniteFloat, MqttUrl, Port, listen_port
from wire.topics import AGENT_ID_PATTERN, DEVICE_NAME_PATTERN


def _valid_pattern(pattern: str) -> str:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return pattern


# A critical_interfaces entry: a regular expression, checked at load (agent.critical, docs/configuration.md).
CriticalPattern = Annotated[str, After(_valid_pattern)]
_NOT_EMPTY = Constraints(min_length=1)


def _int_as_text(value: Any) -> Any:
    """``version: 3`` / ``protocol: 5`` written as YAML numbers: the text they mean."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(kw_only=True)
class SiteConfig:
    """Where the agent is. Becomes labels on every series. District is optional (abolished 2025-07-01;
    still useful as a network zone)."""

    __pydantic_config__ = STRICT
    province: Annotated[str, _NOT_EMPTY]
    district: str | None = None
    commune: str | None = None

    def labels(self) -> tuple[tuple[str, str], ...]:
        pairs = [("province", self.province), ("district", self.district), ("commune", self.commune)]
        return tuple(sorted((k, v) for k, v in pairs if v))


@dataclass(kw_only=True)
class AgentMqttConfig:
    __pydantic_config__ = STRICT
    url: MqttUrl
    username: str | None = None  # default: the agent id
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None
    keepalive: Annotated[int, Constraints(ge=5, le=3600)] = 30
    # Seconds an acknowledged message is kept so it can be sent again after a broker crash (a broker
    # persists its queue only every autosave_interval). 0: not kept.
    redeliver_window: Annotated[FiniteFloat, Constraints(ge=0)] = 120.0
    # MQTT protocol version; auto: MQTT 5, falling back to 3.1.1 for brokers without v5.
    protocol: Annotated[Literal["auto", "5", "3.1.1"], Before(_int_as_text)] = "auto"

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.url.startswith("mqtt://") and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file need an mqtts:// url")


@dataclass(kw_only=True)
class BufferConfig:
    __pydantic_config__ = STRICT
    path: Path
    max_bytes: Annotated[int, Constraints(ge=64 * 1024)] = 256 * 1024 * 1024
    max_age: Annotated[FiniteFloat, Constraints(gt=0)] = 7 * 86400  # seconds
    # backlog messages per second after an outage
    replay_rate: Annotated[FiniteFloat, Constraints(gt=0)] = 20.0


@dataclass(kw_only=True)
class RemoteConfigSettings:
    """Configuration from the centre (docs/remote-config.md): signed documents on the agent's ``config``
    topic replace the centrally managed keys (wire.remote_config.MANAGED_KEYS) of this file, live."""

    __pydantic_config__ = STRICT
    public_key_file: Path  # the centre's public key(s), PEM (centre.pub of `hatang fleet keygen`)
    # where the last good configuration is kept (default: remote-config.json in buffer.path)
    state_file: Path | None = None


@dataclass(kw_only=True)
class _UsmSecrets:
    """SNMPv3 user-based security: protocols and their passwords (inline or from files)."""

    __pydantic_config__ = STRICT
    auth_protocol: AuthProtocol | None = None
    auth_password: str | None = field(default=None, repr=False)
    auth_password_file: Path | None = None
    priv_protocol: PrivProtocol | None = None
    priv_password: str | None = field(default=None, repr=False)
    priv_password_file: Path | None = None

    def _check_usm(self) -> None:
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("priv_protocol needs auth_protocol too (SNMPv3 has no privacy without auth)")
        for kind in ("auth", "priv"):
            protocol = getattr(self, f"{kind}_protocol")
            given = getattr(self, f"{kind}_password") is not None or getattr(
                self, f"{kind}_password_file") is not None
            if protocol and not given:
                raise ValueError(f"{kind}_protocol {protocol} needs {kind}_password or {kind}_password_file")
            if given and not protocol:  # never fall back silently to a weaker security level
                raise ValueError(f"{kind}_password given without {kind}_protocol; add {kind}_protocol")


@dataclass(kw_only=True)
class SnmpConfig(_UsmSecrets):
    version: Annotated[SnmpVersion, Before(_int_as_text)] = "2c"
    community: str | None = field(default=None, repr=False)
    community_file: Path | None = None
    username: str | None = None
    context: str = ""
    timeout: Annotated[FiniteFloat, Constraints(gt=0, le=60)] = 2.0  # seconds per request
    retries: Annotated[int, Constraints(ge=0, le=5)] = 1

    def __post_init__(self) -> None:
        if self.version in ("1", "2c"):
            if self.community is not None and self.community_file is not None:
                raise ValueError("give either community or community_file, not both")
            if self.username is not None:
                raise ValueError(f"username is for SNMPv3; this device is version {self.version}")
        else:
            if not self.username:
                raise ValueError("SNMPv3 needs username")
            self._check_usm()


_ENGINE_ID = Constraints(pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$")


@dataclass(kw_only=True)
class TrapUserConfig(_UsmSecrets):
    """An SNMPv3 user whose traps and informs are accepted."""

    username: Annotated[str, _NOT_EMPTY]
    # the sending device's engine id: needed for traps (informs discover it)
    engine_id: Annotated[str, _ENGINE_ID] | None = None

    def __post_init__(self) -> None:
        self._check_usm()


def _trap_port(value: str) -> str:
    return listen_port(value, "SNMP traps are sent to UDP port 162")


@dataclass(kw_only=True)
class TrapsConfig:
    __pydantic_config__ = STRICT
    listen: Annotated[str, Constraints(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}$"),
                      After(_trap_port)] = "0.0.0.0:162"
    communities: list[str] = field(default_factory=lambda: ["public"])
    communities_file: Path | None = None  # one community per line, added to `communities`
    users: list[TrapUserConfig] = field(default_factory=list)
    engine_id: Annotated[str, _ENGINE_ID] | None = None  # this receiver's
    repoll: bool = True  # poll the sending device at once, so a linkDown shows within seconds

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


# HOST:PORT or [IPv6]:PORT with a host (an empty host would mean every interface in the collector's listen)
_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}")


def loopback_host(host: str) -> bool:
    """``localhost`` (or a name under it), or a loopback address (``[::1]`` with or without brackets)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_alone(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return f"127.0.0.1:{value}" if isinstance(value, str) and value.isdigit() else value


def _status_address(value: str) -> str:
    if not _LISTEN.fullmatch(value):
        raise ValueError(f"{value!r} is not HOST:PORT: write e.g. 127.0.0.1:9109 (this machine only), "
                         "0.0.0.0:9109 (every interface), [::1]:9109, or a port alone (on 127.0.0.1)")
    return listen_port(value)


@dataclass(kw_only=True)
class LocalStatusConfig:
    """The local status page (agent/status_page.py): off unless the ``status`` section is given."""

    __pydantic_config__ = STRICT
    # HOST:PORT, [IPv6]:PORT, or a port alone (then on 127.0.0.1)
    listen: Annotated[str, After(_status_address), Before(_port_alone)] = "127.0.0.1:9109"

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


_NAME = Constraints(pattern=f"^{DEVICE_NAME_PATTERN}$")


@dataclass(kw_only=True)
class ProbeConfig:
    """Reachability, round-trip time and loss of a link target (e.g. the provincial gateway)."""

    __pydantic_config__ = STRICT
    name: Annotated[str, _NAME]
    address: Annotated[str, _NOT_EMPTY]
    method: Literal["auto", "icmp", "tcp"] = "auto"  # auto: ICMP if allowed, else TCP connect
    tcp_port: Port = 443
    count: Annotated[int, Constraints(ge=1, le=100)] = 5  # echoes per run
    spacing: Annotated[FiniteFloat, Constraints(gt=0, le=10)] = 0.2  # seconds between echoes
    timeout: Annotated[FiniteFloat, Constraints(gt=0, le=30)] = 1.0  # seconds to wait for each reply
    interval: Annotated[FiniteFloat, Constraints(ge=5, le=86400)] = 60.0  # seconds between runs

    def __post_init__(self) -> None:
        if self.count * self.spacing + self.timeout >= self.interval:
            raise ValueError("count x spacing + timeout must be shorter than interval")


def _auto_alone(value: Any) -> Any:
    if value == AUTO:
        return [AUTO]
    if isinstance(value, str):
        raise ValueError(f"write a list of profile names ([system, interfaces]) or {AUTO}")
    return value


def _auto_not_mixed(value: list[str]) -> list[str]:
    if AUTO in value and len(value) > 1:
        raise ValueError(f"{AUTO} chooses every profile by the device and cannot be combined with names: "
                         f"write {AUTO}, or list every profile the device should get")
    return value


@dataclass(kw_only=True)
class DeviceConfig:
    __pydantic_config__ = STRICT
    name: Annotated[str, _NAME]
    address: Annotated[str, _NOT_EMPTY]
    port: Port = 161
    snmp: SnmpConfig = field(default_factory=SnmpConfig)
    # Profile names, or "auto" (the default): chosen by the device at its first poll and when its
    # sysObjectID changes (agent/profile_selection.py). Kept as a list: "auto" is read as [auto].
    profiles: Annotated[list[str], _NOT_EMPTY, After(_auto_not_mixed), Before(_auto_alone)] = field(
        default_factory=lambda: [AUTO])
    interval: Annotated[FiniteFloat, Constraints(ge=1, le=86400)] = 60.0  # seconds
    # Regexes searched case-insensitively in ifName and ifAlias: hatang_interface_critical. None: the
    # agent's critical_interfaces, else agent.critical.DEFAULT_PATTERNS; []: no critical interface.
    critical_interfaces: list[CriticalPattern] | None = None

    @property
    def auto_profiles(self) -> bool:
        """``profiles: auto``: the profiles are chosen by the device (agent/profile_selection.py)."""
        return self.profiles == [AUTO]


def _unique_names(devices: list[DeviceConfig]) -> list[DeviceConfig]:
    seen: set[str] = set()
    for device in devices:
        if device.name in seen:
            raise ValueError(f"device name {device.name!r} is used twice; names must be unique")
        seen.add(device.name)
    return devices


@dataclass(kw_only=True)
class AgentConfig:
    __pydantic_config__ = STRICT
    agent_id: Annotated[str, Constraints(pattern=f"^{AGENT_ID_PATTERN}$")]
    site: SiteConfig
    mqtt: AgentMqttConfig
    buffer: BufferConfig
    devices: Annotated[list[DeviceConfig], After(_unique_names)] = field(default_factory=list)
    traps: TrapsConfig | None = None  # receive SNMP traps and informs
    status: LocalStatusConfig | None = None  # the local status page; None: off (aiohttp not imported)
    probes: list[ProbeConfig] = field(default_factory=list)
    profiles_dir: Path | None = None
    max_concurrent_polls: Annotated[int, Constraints(ge=1, le=1024)] = 32
    self_metrics_interval: Annotated[FiniteFloat, Constraints(ge=1, le=3600)] = 60.0  # seconds
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Default of devices[].critical_interfaces (None: agent.critical.DEFAULT_PATTERNS).
    critical_interfaces: list[CriticalPattern] | None = None
    remote_config: RemoteConfigSettings | None = None  # None: this file alone configures the agent

    def __post_init__(self) -> None:
        names = {d.name for d in self.devices}
        for probe in self.probes:
            if probe.name in names:
                raise ValueError(f"probe name {probe.name!r} is already used by a device or probe")
            names.add(probe.name)


def _resolve(base: Path, path: Path | None, config_path: Path, key: str) -> Path | None:
    return None if path is None else config_paths.resolve(base, path, config_path=config_path, key=key)


def parse(path: Path, data: Any = None, *, source: Path | None = None) -> AgentConfig:
    """Read and validate an agent config, resolve its paths and check its profile names; no other file
    system checks (see :func:`load`). Raises :class:`ConfigError` naming file and key.

    ``data``: the document to validate instead of the file's (the file merged with the centre's
    configuration, agent/remote_config.py); relative paths still resolve against ``path``'s directory, and
    errors name ``source`` (default ``path``)."""
    from hatang import configfile  # pydantic: only where a file is validated

    source = source or path
    config = configfile.validate(AgentConfig, configfile.load_yaml(path) if data is None else data, source)
    base = path.resolve().parent
    path = source
    config.buffer.path = _resolve(base, config.buffer.path, path, "buffer.path") or config.buffer.path
    config.profiles_dir = _resolve(base, config.profiles_dir, path, "profiles_dir")
    for key in ("password_file", "ca_file", "cert_file", "key_file"):
        setattr(config.mqtt, key, _resolve(base, getattr(config.mqtt, key), path, f"mqtt.{key}"))
    if config.remote_config is not None:
        remote = config.remote_config
        remote.public_key_file = _resolve(base, remote.public_key_file, path, "remote_config.public_key_file"
                                          ) or remote.public_key_file
        remote.state_file = _resolve(base, remote.state_file, path, "remote_config.state_file")
    for i, device in enumerate(config.devices):
        if device.critical_interfaces is None:  # the agent's default, so the device alone tells its poller
            device.critical_interfaces = config.critical_interfaces
        for key in ("community_file", "auth_password_file", "priv_password_file"):
            value = _resolve(base, getattr(device.snmp, key), path, f"devices[{i}].snmp.{key}")
            setattr(device.snmp, key, value)
    if config.traps is not None:
        config.traps.communities_file = _resolve(base, config.traps.communities_file, path,
                                                 "traps.communities_file")
        for i, user in enumerate(config.traps.users):
            user.auth_password_file = _resolve(base, user.auth_password_file, path,
                                               f"traps.users[{i}].auth_password_file")
            user.priv_password_file = _resolve(base, user.priv_password_file, path,
                                               f"traps.users[{i}].priv_password_file")
    _check_profiles(config, path)
    return config


def load(path: Path) -> AgentConfig:
    """:func:`parse`, then what the agent needs at start: every ``*_file`` (secrets, CA, certificate,
    key) readable and not empty, and the buffer directory creatable and writable. Raises
    :class:`ConfigError` naming file, key and fix."""
    return load_with_warnings(path)[0]


def load_with_warnings(path: Path, data: Any = None, *, source: Path | None = None,
                       ) -> tuple[AgentConfig, list[ConfigWarning]]:
    """:func:`load`, and the warnings about what works but is probably wrong or unsafe (``data`` and
    ``source`` as for :func:`parse`)."""
    from hatang import configfile

    config = parse(path, data, source=source)
    path = source or path
    problems: list[tuple[str, str]] = []
    try:
        warnings = configfile.check_files(config, path)
    except ConfigError as exc:
        problems += exc.problems
        warnings = []
    buffer_problem = _buffer_problem(config.buffer.path)
    if buffer_problem is not None:
        problems.append(("buffer.path", buffer_problem))
    if problems:
        raise ConfigError(path, problems)
    return config, [*warnings, *model_warnings(config, path)]


# The files the disk queue keeps in the buffer directory and opens for writing: the database (and its -wal,
# -shm) and the lock. Each one that exists must be writable by the agent.
QUEUE_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME)


def _buffer_problem(directory: Path) -> str | None:
    problem = config_paths.writable_directory_problem(directory, "buffer.path", "the agent's disk queue")
    if problem is not None:
        return problem
    for name in QUEUE_FILES:
        file = directory / name
        if not file.exists() and not file.is_symlink():
            continue
        try:
            with open(file, "r+b"):  # opened for writing, nothing written
                pass
        except OSError as exc:
            return (f"cannot write the agent's disk queue {file} ({exc.strerror or exc}): make it writable "
                    "by the user the agent runs as (chown), or set buffer.path to another directory")
    return None


def model_warnings(config: AgentConfig, path: Path) -> list[ConfigWarning]:
    """Warnings about the config's values alone (no file system): an MQTT username other than agent_id, a
    status page served beyond this machine."""
    out = []
    username = config.mqtt.username
    if username is not None and username != config.agent_id:
        out.append(ConfigWarning(str(path), "mqtt.username", (
            f"{username!r} differs from agent_id {config.agent_id!r}: the shipped broker ACL "
            f"(deploy/mosquitto/hatang.acl) lets an agent write only to hatang/v1/agents/<username>/#, so "
            f"the broker would silently drop everything this agent publishes under "
            f"hatang/v1/agents/{config.agent_id}/; remove mqtt.username (it defaults to agent_id) or set it "
            f"to {config.agent_id!r}")))
    if config.status is not None and not loopback_host(config.status.host_port()[0]):
        out.append(ConfigWarning(str(path), "status.listen", (
            f"{config.status.listen} serves the local status page beyond this machine, without a password "
            "(device addresses, errors, the configuration; never secrets): keep it on 127.0.0.1:PORT and "
            "use an SSH tunnel, or make sure the office firewall keeps others out")))
    return out


def _check_profiles(config: AgentConfig, path: Path) -> None:
    from agent.profiles import load_profiles

    known = load_profiles(config.profiles_dir)
    problems = [
        (f"devices[{i}].profiles[{j}]", f"unknown profile {name!r}; known: {', '.join(sorted(known))}")
        for i, device in enumerate(config.devices)
        for j, name in enumerate(device.profiles)
        if name not in known and name != AUTO
    ]
    if problems:
        raise ConfigError(path, problems)


__all__ = ["AgentConfig", "ConfigError", "ConfigWarning", "DeviceConfig", "LocalStatusConfig", "SnmpConfig",
           "load", "load_with_warnings", "loopback_host", "model_warnings", "parse"]

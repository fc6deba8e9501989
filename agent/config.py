"""Agent configuration: strict models (unknown keys are errors) and ``load(path)``.

Secrets (community, v3 passwords, MQTT password) may be given inline or as ``*_file`` paths; relative
paths are resolved against the config file's directory. See docs/configuration.md.

:func:`load` is what the agent, ``hatang check`` and ``hatang poll`` use: the model, then what the agent
needs at start (every ``*_file`` readable and not empty, the buffer directory writable).
:func:`load_with_warnings` also returns what works but is probably wrong (``hatang check`` prints it, the
agent logs it at start). :func:`parse` is the model alone (no file system checks; ``hatang check
--skip-files``, ``hatang profiles -c``).

Why this module is long: it is the agent config format, one tree of strict models (site, MQTT, buffer,
SNMP credentials, traps, probes, devices) with the checks that span them; the loading steps beside it are
short and read the same models.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.critical import pattern_problem
from agent.profiles import AUTO
from agent.queue.files import DB_NAME, LOCK_NAME
from agent.snmp.credentials import AuthProtocol, PrivProtocol, SnmpVersion
from hatang import config_paths, configfile
from hatang.configfile import ConfigError, ConfigWarning, FiniteFloat, MqttUrl, Port
from wire.topics import AGENT_ID_PATTERN, DEVICE_NAME_PATTERN


def _valid_pattern(pattern: str) -> str:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return pattern


# A critical_interfaces entry: a regular expression, checked at load (agent.critical, docs/configuration.md).
CriticalPattern = Annotated[str, AfterValidator(_valid_pattern)]


class _Strict(BaseModel):
    # allow_inf_nan=False: no .nan/.inf in any float, even one declared plain ``float`` by mistake.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SiteConfig(_Strict):
    """Where the agent is. Becomes labels on every series. District is optional (abolished 2025-07-01;
    still useful as a network zone)."""

    province: str = Field(min_length=1)
    district: str | None = None
    commune: str | None = None

    def labels(self) -> tuple[tuple[str, str], ...]:
        pairs = [("province", self.province), ("district", self.district), ("commune", self.commune)]
        return tuple(sorted((k, v) for k, v in pairs if v))


class AgentMqttConfig(_Strict):
    url: MqttUrl
    username: str | None = None  # default: the agent id
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    # Seconds an acknowledged message is kept so it can be sent again after a broker crash (a broker
    # persists its queue only every autosave_interval). 0: not kept.
    redeliver_window: FiniteFloat = Field(default=120.0, ge=0)
    # MQTT protocol version; auto: MQTT 5, falling back to 3.1.1 for brokers without v5.
    protocol: Literal["auto", "5", "3.1.1"] = "auto"

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _tls_files_fit(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.url.startswith("mqtt://") and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file need an mqtts:// url")
        return self


class BufferConfig(_Strict):
    path: Path
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    max_age: FiniteFloat = Field(default=7 * 86400, gt=0)  # seconds
    replay_rate: FiniteFloat = Field(default=20.0, gt=0)  # backlog messages per second after an outage


class RemoteConfigSettings(_Strict):
    """Configuration from the centre (docs/remote-config.md): signed documents on the agent's ``config``
    topic replace the centrally managed keys (wire.remote_config.MANAGED_KEYS) of this file, live."""

    public_key_file: Path  # the centre's public key(s), PEM (centre.pub of `hatang fleet keygen`)
    # where the last good configuration is kept (default: remote-config.json in buffer.path)
    state_file: Path | None = None


class _UsmSecrets(_Strict):
    """SNMPv3 user-based security: protocols and their passwords (inline or from files)."""

    auth_protocol: AuthProtocol | None = None
    auth_password: str | None = None
    auth_password_file: Path | None = None
    priv_protocol: PrivProtocol | None = None
    priv_password: str | None = None
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


class SnmpConfig(_UsmSecrets):
    version: SnmpVersion = "2c"
    community: str | None = None
    community_file: Path | None = None
    username: str | None = None
    context: str = ""
    timeout: FiniteFloat = Field(default=2.0, gt=0, le=60)  # seconds per request
    retries: int = Field(default=1, ge=0, le=5)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _credentials_fit_version(self) -> Self:
        if self.version in ("1", "2c"):
            if self.community is not None and self.community_file is not None:
                raise ValueError("give either community or community_file, not both")
            if self.username is not None:
                raise ValueError(f"username is for SNMPv3; this device is version {self.version}")
        else:
            if not self.username:
                raise ValueError("SNMPv3 needs username")
            self._check_usm()
        return self


class TrapUserConfig(_UsmSecrets):
    """An SNMPv3 user whose traps and informs are accepted."""

    username: str = Field(min_length=1)
    # the sending device's engine id: needed for traps (informs discover it)
    engine_id: str | None = Field(default=None, pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$")

    @model_validator(mode="after")
    def _credentials_fit(self) -> Self:
        self._check_usm()
        return self


class TrapsConfig(_Strict):
    listen: str = Field(default="0.0.0.0:162", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):\d{1,5}$")
    communities: list[str] = Field(default_factory=lambda: ["public"])
    communities_file: Path | None = None  # one community per line, added to `communities`
    users: list[TrapUserConfig] = Field(default_factory=list)
    engine_id: str | None = Field(default=None, pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$")  # this receiver's
    repoll: bool = True  # poll the sending device at once, so a linkDown shows within seconds

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        return configfile.listen_port(value, "SNMP traps are sent to UDP port 162")

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


class LocalStatusConfig(_Strict):
    """The local status page (agent/status_page.py): off unless the ``status`` section is given."""

    listen: str = "127.0.0.1:9109"  # HOST:PORT, [IPv6]:PORT, or a port alone (then on 127.0.0.1)

    @field_validator("listen", mode="before")
    @classmethod
    def _port_alone(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return f"127.0.0.1:{value}" if isinstance(value, str) and value.isdigit() else value

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _LISTEN.fullmatch(value):
            raise ValueError(f"{value!r} is not HOST:PORT: write e.g. 127.0.0.1:9109 (this machine only), "
                             "0.0.0.0:9109 (every interface), [::1]:9109, or a port alone (on 127.0.0.1)")
        return configfile.listen_port(value)

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class ProbeConfig(_Strict):
    """Reachability, round-trip time and loss of a link target (e.g. the provincial gateway)."""

    name: str = Field(pattern=f"^{DEVICE_NAME_PATTERN}$")
    address: str = Field(min_length=1)
    method: Literal["auto", "icmp", "tcp"] = "auto"  # auto: ICMP if allowed, else TCP connect
    tcp_port: Port = 443
    count: int = Field(default=5, ge=1, le=100)  # echoes per run
    spacing: FiniteFloat = Field(default=0.2, gt=0, le=10)  # seconds between echoes
    timeout: FiniteFloat = Field(default=1.0, gt=0, le=30)  # seconds to wait for each reply
    interval: FiniteFloat = Field(default=60.0, ge=5, le=86400)  # seconds between runs

    @model_validator(mode="after")
    def _fits_interval(self) -> Self:
        if self.count * self.spacing + self.timeout >= self.interval:
            raise ValueError("count x spacing + timeout must be shorter than interval")
        return self


class DeviceConfig(_Strict):
    name: str = Field(pattern=f"^{DEVICE_NAME_PATTERN}$")
    address: str = Field(min_length=1)
    port: Port = 161
    snmp: SnmpConfig = Field(default_factory=SnmpConfig)
    # Profile names, or "auto" (the default): chosen by the device at its first poll and when its
    # sysObjectID changes (agent/profile_selection.py). Kept as a list: "auto" is read as [auto].
    profiles: list[str] = Field(default_factory=lambda: [AUTO], min_length=1)
    interval: FiniteFloat = Field(default=60.0, ge=1, le=86400)  # seconds
    # Regexes searched case-insensitively in ifName and ifAlias: hatang_interface_critical. None: the
    # agent's critical_interfaces, else agent.critical.DEFAULT_PATTERNS; []: no critical interface.
    critical_interfaces: list[CriticalPattern] | None = None

    @field_validator("profiles", mode="before")
    @classmethod
    def _auto_alone(cls, value: Any) -> Any:
        if value == AUTO:
            return [AUTO]
        if isinstance(value, str):
            raise ValueError(f"write a list of profile names ([system, interfaces]) or {AUTO}")
        return value

    @field_validator("profiles")
    @classmethod
    def _auto_not_mixed(cls, value: list[str]) -> list[str]:
        if AUTO in value and len(value) > 1:
            raise ValueError(f"{AUTO} chooses every profile by the device and cannot be combined with names: "
                             f"write {AUTO}, or list every profile the device should get")
        return value

    @property
    def auto_profiles(self) -> bool:
        """``profiles: auto``: the profiles are chosen by the device (agent/profile_selection.py)."""
        return self.profiles == [AUTO]


class AgentConfig(_Strict):
    agent_id: str = Field(pattern=f"^{AGENT_ID_PATTERN}$")
    site: SiteConfig
    mqtt: AgentMqttConfig
    buffer: BufferConfig
    devices: list[DeviceConfig] = Field(default_factory=list)
    traps: TrapsConfig | None = None  # receive SNMP traps and informs
    status: LocalStatusConfig | None = None  # the local status page; None: off (aiohttp not imported)
    probes: list[ProbeConfig] = Field(default_factory=list)
    profiles_dir: Path | None = None
    max_concurrent_polls: int = Field(default=32, ge=1, le=1024)
    self_metrics_interval: FiniteFloat = Field(default=60.0, ge=1, le=3600)  # seconds
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Default of devices[].critical_interfaces (None: agent.critical.DEFAULT_PATTERNS).
    critical_interfaces: list[CriticalPattern] | None = None
    remote_config: RemoteConfigSettings | None = None  # None: this file alone configures the agent

    @field_validator("devices")
    @classmethod
    def _unique_names(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        seen: set[str] = set()
        for device in devices:
            if device.name in seen:
                raise ValueError(f"device name {device.name!r} is used twice; names must be unique")
            seen.add(device.name)
        return devices

    @model_validator(mode="after")
    def _probe_names_unique(self) -> Self:
        names = {d.name for d in self.devices}
        for probe in self.probes:
            if probe.name in names:
                raise ValueError(f"probe name {probe.name!r} is already used by a device or probe")
            names.add(probe.name)
        return self


def _resolve(base: Path, path: Path | None, config_path: Path, key: str) -> Path | None:
    return None if path is None else config_paths.resolve(base, path, config_path=config_path, key=key)


def parse(path: Path, data: Any = None, *, source: Path | None = None) -> AgentConfig:
    """Read and validate an agent config, resolve its paths and check its profile names; no other file
    system checks (see :func:`load`). Raises :class:`ConfigError` naming file and key.

    ``data``: the document to validate instead of the file's (the file merged with the centre's
    configuration, agent/remote_config.py); relative paths still resolve against ``path``'s directory, and
    errors name ``source`` (default ``path``)."""
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
    problem = configfile.writable_directory_problem(directory, "buffer.path", "the agent's disk queue")
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

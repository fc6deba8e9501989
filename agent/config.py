"""Agent configuration: strict models (unknown keys are errors) and ``load(path)``.

Secrets (community, v3 passwords, MQTT password) may be given inline or as ``*_file`` paths; relative
paths are resolved against the config file's directory. See docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatang import configfile
from hatang.configfile import ConfigError
from wire.topics import AGENT_ID_PATTERN, DEVICE_NAME_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteConfig(_Strict):
    """Where the agent is. Becomes labels on every series. District is optional (abolished 2025-07-01;
    still useful as a network zone)."""

    province: str = Field(min_length=1)
    district: str | None = None
    commune: str | None = None

    def labels(self) -> tuple[tuple[str, str], ...]:
        pairs = [("province", self.province), ("district", self.district), ("commune", self.commune)]
        return tuple(sorted((k, v) for k, v in pairs if v))


class MqttConfig(_Strict):
    url: str = Field(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$")
    username: str | None = None  # default: the agent id
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)

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
    max_age: float = Field(default=7 * 86400, gt=0)  # seconds
    replay_rate: float = Field(default=20.0, gt=0)  # backlog messages per second after an outage


AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "AES", "AES128", "AES192", "AES256", "AES192C", "AES256C"]


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
    version: Literal["1", "2c", "3"] = "2c"
    community: str | None = None
    community_file: Path | None = None
    username: str | None = None
    context: str = ""
    timeout: float = Field(default=2.0, gt=0, le=60)  # seconds per request
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

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class ProbeConfig(_Strict):
    """Reachability, round-trip time and loss of a link target (e.g. the provincial gateway)."""

    name: str = Field(pattern=f"^{DEVICE_NAME_PATTERN}$")
    address: str = Field(min_length=1)
    method: Literal["auto", "icmp", "tcp"] = "auto"  # auto: ICMP if allowed, else TCP connect
    tcp_port: int = Field(default=443, ge=1, le=65535)
    count: int = Field(default=5, ge=1, le=100)  # echoes per run
    spacing: float = Field(default=0.2, gt=0, le=10)  # seconds between echoes
    timeout: float = Field(default=1.0, gt=0, le=30)  # seconds to wait for each reply
    interval: float = Field(default=60.0, ge=5, le=86400)  # seconds between runs

    @model_validator(mode="after")
    def _fits_interval(self) -> Self:
        if self.count * self.spacing + self.timeout >= self.interval:
            raise ValueError("count x spacing + timeout must be shorter than interval")
        return self


class DeviceConfig(_Strict):
    name: str = Field(pattern=f"^{DEVICE_NAME_PATTERN}$")
    address: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    snmp: SnmpConfig = Field(default_factory=SnmpConfig)
    profiles: list[str] = Field(default_factory=lambda: ["system", "interfaces"], min_length=1)
    interval: float = Field(default=60.0, ge=1, le=86400)  # seconds


class AgentConfig(_Strict):
    agent_id: str = Field(pattern=f"^{AGENT_ID_PATTERN}$")
    site: SiteConfig
    mqtt: MqttConfig
    buffer: BufferConfig
    devices: list[DeviceConfig] = Field(default_factory=list)
    traps: TrapsConfig | None = None  # receive SNMP traps and informs
    probes: list[ProbeConfig] = Field(default_factory=list)
    profiles_dir: Path | None = None
    max_concurrent_polls: int = Field(default=32, ge=1, le=1024)
    self_metrics_interval: float = Field(default=60.0, ge=1, le=3600)  # seconds
    log_level: Literal["debug", "info", "warning", "error"] = "info"

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


def _resolve(base: Path, path: Path | None) -> Path | None:
    return None if path is None else (path if path.is_absolute() else base / path)


def load(path: Path) -> AgentConfig:
    """Read, validate and resolve an agent config; raise :class:`ConfigError` naming file and key."""
    config = configfile.load(AgentConfig, path)
    base = path.resolve().parent
    config.buffer.path = _resolve(base, config.buffer.path) or config.buffer.path
    config.profiles_dir = _resolve(base, config.profiles_dir)
    config.mqtt.password_file = _resolve(base, config.mqtt.password_file)
    config.mqtt.ca_file = _resolve(base, config.mqtt.ca_file)
    config.mqtt.cert_file = _resolve(base, config.mqtt.cert_file)
    config.mqtt.key_file = _resolve(base, config.mqtt.key_file)
    for device in config.devices:
        for key in ("community_file", "auth_password_file", "priv_password_file"):
            setattr(device.snmp, key, _resolve(base, getattr(device.snmp, key)))
    if config.traps is not None:
        config.traps.communities_file = _resolve(base, config.traps.communities_file)
        for user in config.traps.users:
            user.auth_password_file = _resolve(base, user.auth_password_file)
            user.priv_password_file = _resolve(base, user.priv_password_file)
    _check_profiles(config, path)
    return config


def _check_profiles(config: AgentConfig, path: Path) -> None:
    from agent.profiles import load_profiles

    known = load_profiles(config.profiles_dir)
    problems = [
        (f"devices[{i}].profiles[{j}]", f"unknown profile {name!r}; known: {', '.join(sorted(known))}")
        for i, device in enumerate(config.devices)
        for j, name in enumerate(device.profiles)
        if name not in known
    ]
    if problems:
        raise ConfigError(path, problems)


__all__ = ["AgentConfig", "ConfigError", "DeviceConfig", "SnmpConfig", "load"]

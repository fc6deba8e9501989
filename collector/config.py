"""Collector configuration: strict models (unknown keys are errors) and ``load(path)``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hatang import config_paths, configfile
from hatang.configfile import ConfigError
from wire.codec import DEFAULT_LIMITS

DEFAULT_CLIENT_ID = "hatang-collector"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectorMqttConfig(_Strict):
    url: str = Field(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$")
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate for mutual TLS (mqtts:// only)
    key_file: Path | None = None  # with cert_file
    client_id: str = DEFAULT_CLIENT_ID
    keepalive: int = Field(default=30, ge=5, le=3600)
    # Persistent MQTT v5 session: the broker keeps the subscription and queues messages for this many
    # seconds while the collector is down (mind Mosquitto's max_queued_messages). 0: clean session.
    session_expiry: int = Field(default=86400, ge=0)
    # MQTT protocol version; 3.1.1 for brokers without v5 (then a persistent session has no expiry).
    protocol: Literal["5", "3.1.1"] = "5"
    # Several collectors sharing the work (docs/scaling.md): the broker hands each data message to one
    # member of the group (MQTT 5 shared subscription $share/<group>/...). Each member needs its own
    # fixed client_id; every member still receives every status message.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # MQTT 5 Receive Maximum: QoS 1 messages the broker may send before the collector acknowledges. In
    # push mode a message is acknowledged after its samples are remote-written, so this is the window.
    receive_maximum: int = Field(default=200, ge=1, le=65535)

    @field_validator("shared_group")
    @classmethod
    def _group_needs_v5_and_own_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("protocol") == "3.1.1":
            raise PydanticCustomError("shared_group", 'shared subscriptions need MQTT 5: remove protocol: '
                                      '"3.1.1" (the default is "5") or remove shared_group')
        if info.data.get("client_id") == DEFAULT_CLIENT_ID:
            raise PydanticCustomError("shared_group", (
                f"every collector of shared group {value!r} needs a client id of its own that stays the "
                f"same across restarts: set mqtt.client_id, e.g. {DEFAULT_CLIENT_ID}-1, "
                f"{DEFAULT_CLIENT_ID}-2"))
        return value

    @model_validator(mode="after")
    def _cert_and_key(self) -> CollectorMqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise PydanticCustomError("tls", "give cert_file and key_file together (a client certificate "
                                      "and its key), or neither")
        if self.cert_file is not None and not self.url.startswith("mqtts://"):
            raise PydanticCustomError("tls", "cert_file needs an mqtts:// url")
        return self


class BasicAuthConfig(_Strict):
    username: str = Field(min_length=1)
    password_file: Path  # the password on the first line (chmod 600)


class TlsConfig(_Strict):
    ca_file: Path | None = None  # the CA that signed the endpoint's certificate (default: the system's)
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None  # with cert_file
    insecure_skip_verify: bool = False  # do not check the endpoint's certificate (tests only)

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise PydanticCustomError("tls", "give cert_file and key_file together (a client certificate "
                                      "and its key), or neither")
        return self


class RemoteWriteConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    max_pending_samples: int = Field(default=1_000_000, ge=1000)
    timeout: float = Field(default=10.0, gt=0)
    # Credentials come from files; none of them ever appears in a log line or a label.
    basic_auth: BasicAuthConfig | None = None
    bearer_token_file: Path | None = None  # "Authorization: Bearer <first line of the file>"
    tls: TlsConfig | None = None  # https:// only

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> RemoteWriteConfig:
        in_url = "@" in self.url.split("://", 1)[1].split("/", 1)[0]
        ways = [name for name, used in (("user:password@ in url", in_url),
                                        ("basic_auth", self.basic_auth is not None),
                                        ("bearer_token_file", self.bearer_token_file is not None)) if used]
        if len(ways) > 1:
            raise PydanticCustomError("auth", "give one way to authenticate, not {ways}: basic_auth "
                                      "(username, password_file) or bearer_token_file",
                                      {"ways": " and ".join(ways)})
        if self.tls is not None and not self.url.startswith("https://"):
            raise PydanticCustomError("tls", "tls needs an https:// url")
        return self


class HttpConfig(_Strict):
    # connections at once (also bounded by the open-file limit); over it the oldest idle connection
    # (half-sent request or kept alive) is closed for the new one, so /healthz still answers
    max_connections: int = Field(default=256, ge=4, le=100_000)
    # seconds to send a complete request after connecting (or between requests on a kept-alive connection)
    request_timeout: float = Field(default=10.0, gt=0, le=3600)
    # seconds to read one /metrics response; a slower reader is disconnected
    write_timeout: float = Field(default=60.0, gt=0, le=3600)


class LimitsConfig(_Strict):
    max_payload_bytes: int = Field(default=DEFAULT_LIMITS.max_payload_bytes, ge=1024)
    max_samples_per_message: int = Field(default=DEFAULT_LIMITS.max_samples, ge=1)
    max_label_length: int = Field(default=1024, ge=16)
    max_series_per_agent: int = Field(default=100_000, ge=100)  # cardinality cap per agent


class CollectorConfig(_Strict):
    mqtt: CollectorMqttConfig
    listen: str = Field(default="127.0.0.1:9108", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):\d{1,5}$")
    # A device's series disappear after this many of its poll intervals without data
    # (its hatang_device_up stays, at 0).
    stale_after_intervals: float = Field(default=3.0, ge=1.0)
    # A poll arriving later than its interval plus this grace (seconds) is late: remote write, not scrape.
    live_grace: float = Field(default=5.0, ge=0)
    # An agent clock off by more than this (seconds) gets its timestamps corrected by the measured offset;
    # smaller offsets are network delay (collector/clock.py).
    clock_offset_threshold: float = Field(default=10.0, ge=1.0)
    # scrape: Prometheus scrapes live data, late data goes by remote write. push: all data by remote write.
    mode: Literal["scrape", "push"] = "scrape"
    remote_write: list[RemoteWriteConfig] = Field(default_factory=list)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    # Optional site inventory (YAML or CSV, docs/inventory.md): authoritative labels, unknown agents rejected.
    inventory: Path | None = None
    # Optional file keeping every agent ever seen (and when) across collector restarts.
    state_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Optional Grafana base URL (e.g. https://grafana.example.vn): the status pages link to the shipped
    # dashboards there (docs/status-pages.md).
    grafana_url: str | None = Field(default=None, pattern=r"^https?://[^\s\"'<>]+$", max_length=512)

    @model_validator(mode="after")
    def _push_needs_a_store(self) -> CollectorConfig:
        if self.mode == "push" and not self.remote_write:
            raise ValueError("mode push needs at least one remote_write endpoint")
        if self.mqtt.shared_group is not None and self.mode != "push":
            # In scrape mode every member would serve every device now and then (the broker hands out
            # polls round robin): nothing is split, and members would serve stale copies of each other.
            raise PydanticCustomError("shared_group", (
                "mqtt.shared_group: a shared group works in push mode only: set mode: push with a "
                "remote_write endpoint (docs/scaling.md), or remove mqtt.shared_group"))
        return self

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range 0-65535")
        return value

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


def load(path: Path) -> CollectorConfig:
    config = configfile.load(CollectorConfig, path)
    base = path.resolve().parent

    def resolve(model: object, keys: tuple[str, ...], where: str) -> None:
        for key in keys:
            value = getattr(model, key, None)
            if value is not None:
                setattr(model, key, config_paths.resolve(base, value, config_path=path, key=f"{where}{key}"))

    resolve(config.mqtt, ("password_file", "ca_file", "cert_file", "key_file"), "mqtt.")
    resolve(config, ("inventory", "state_file"), "")
    for i, endpoint in enumerate(config.remote_write):
        for model, where in ((endpoint, ""), (endpoint.basic_auth, "basic_auth."), (endpoint.tls, "tls.")):
            if model is not None:
                resolve(model, ("password_file", "bearer_token_file", "ca_file", "cert_file", "key_file"),
                        f"remote_write[{i}].{where}")
    return config


__all__ = ["CollectorConfig", "ConfigError", "load"]

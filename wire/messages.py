"""Message models of the wire contract. Plain frozen dataclasses (:class:`Sample` a NamedTuple); the codec
turns them into JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

MetricType = Literal["gauge", "counter"]
Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable and ordered


class Sample(NamedTuple):
    """One value of a family. A NamedTuple, not a dataclass: a poll makes thousands and a collector
    ingests hundreds of thousands a second (a frozen dataclass costs three times as much to create)."""

    labels: Labels
    value: float  # ints (Counter64 up to 2**64-1) travel exactly in JSON; Prometheus stores float64


@dataclass(frozen=True, slots=True)
class Family:
    """All samples of one metric name from one device poll."""

    name: str
    type: MetricType
    help: str
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class ProfileError:
    """A problem in one poll: the profile ("*" for the whole poll), a message for a person, and a reason
    from :data:`ERROR_REASONS` for counting and alerting (empty from agents older than the field)."""

    profile: str
    error: str
    reason: str = ""


# Reasons a poll reports a problem (docs/metrics.md, hatang_device_poll_errors_total). An optional wire
# field: a receiver takes any short string here, so new reasons need no wire version.
ERROR_REASONS = (
    "timeout", "auth", "address", "wrong_oid", "not_increasing", "too_many_rows", "walk_time",
    "snmp_error", "deadline", "empty_profile", "bad_value",
)


@dataclass(frozen=True, slots=True)
class PollBatch:
    """One poll of one device: the unit of publishing, queueing and de-duplication.

    ``(agent, boot_id, seq)`` identifies a batch: ``boot_id`` is new at every agent start and ``seq``
    counts batches within a boot from 1 with no gaps, so a receiver can drop duplicates and see gaps.
    """

    agent: str
    boot_id: str
    seq: int
    ts: float  # unix seconds at which the poll started
    device: str
    interval: float  # the device's poll interval in seconds
    up: bool  # the device answered
    duration: float  # seconds the poll took
    site: Labels = ()
    errors: tuple[ProfileError, ...] = ()
    families: tuple[Family, ...] = ()
    kind: str = "device"  # "device": an SNMP device poll; "probe": a link probe (no device liveness)


@dataclass(frozen=True, slots=True)
class ConfigRejection:
    """The last configuration from the centre an agent refused (docs/remote-config.md): its revision,
    a reason from :data:`wire.remote_config.REJECT_REASONS`, a message for a person, and when."""

    revision: int
    reason: str
    error: str
    ts: float


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """Retained birth message (online) or last will (offline) of one agent."""

    agent: str
    boot_id: str
    online: bool
    ts: float
    version: str = ""
    site: Labels = ()
    devices: tuple[str, ...] = field(default=())
    # the revision of the centre's configuration applied (remote configuration on), else a short hash of
    # the agent's config file
    config_version: str = ""
    buffer: tuple[tuple[str, float], ...] = ()  # queue state: depth, bytes, oldest_ts, dropped
    # optional (birth only): the profiles each device polls, sorted by device; a device with
    # `profiles: auto` is listed once it has been identified
    profiles: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # optional (birth only): the last configuration from the centre the agent refused, while no newer
    # one has been applied
    config_rejected: ConfigRejection | None = None


@dataclass(frozen=True, slots=True)
class TrapMessage:
    """One SNMP trap or inform received by an agent (topic ``events``). Numbered like poll batches."""

    agent: str
    boot_id: str
    seq: int
    ts: float  # unix time the agent received it
    device: str  # the configured device whose address sent it, or "unknown"
    source: str  # sender IP address
    version: str  # "1", "2c", "3"
    trap_oid: str
    trap_name: str  # linkDown, coldStart, ... or the OID
    if_index: str | None = None
    uptime: float | None = None  # the sender's sysUpTime in seconds
    varbinds: tuple[tuple[str, str, str], ...] = ()  # (oid, kind, value as text)
    site: Labels = ()

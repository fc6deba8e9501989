"""Topic scheme: ``hatang/v1/agents/{agent}/{kind}[/{device}]``.

The agent id is a topic level so that a broker ACL (``pattern write hatang/v1/agents/%u/#``) binds each
agent's MQTT username to its own subtree. The collector takes the agent id from the topic, never from
the payload alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

WIRE_VERSION = 1
ROOT = f"hatang/v{WIRE_VERSION}/agents"

# Lower-case ids travel well through MQTT usernames, ACL patterns, file names and Prometheus labels.
AGENT_ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
DEVICE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
_AGENT_ID = re.compile(AGENT_ID_PATTERN)
_DEVICE_NAME = re.compile(DEVICE_NAME_PATTERN)


class TopicError(ValueError):
    """A topic that is not part of the contract."""


class TopicKind(StrEnum):
    STATUS = "status"  # retained birth / last-will message of one agent
    DATA = "data"  # one poll of one device, published live
    REPLAY = "replay"  # the same, drained from the agent's disk queue after an outage
    EVENTS = "events"  # traps and other events of one agent
    SELF = "self"  # the agent's own metrics (queue, polls, resources), same payload as a poll
    # retained, written by the centre only, read by that agent only: its signed configuration
    # (wire/remote_config.py); the collector neither subscribes to it nor ingests it
    CONFIG = "config"


_PER_DEVICE = frozenset({TopicKind.DATA, TopicKind.REPLAY})


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    agent: str
    device: str | None = None

    def __str__(self) -> str:
        base = f"{ROOT}/{self.agent}/{self.kind.value}"
        return f"{base}/{self.device}" if self.device is not None else base


def is_agent_id(value: str) -> bool:
    return _AGENT_ID.fullmatch(value) is not None


def is_device_name(value: str) -> bool:
    return _DEVICE_NAME.fullmatch(value) is not None


def status_topic(agent: str) -> str:
    return str(Topic(TopicKind.STATUS, agent))


def self_topic(agent: str) -> str:
    return str(Topic(TopicKind.SELF, agent))


def events_topic(agent: str) -> str:
    return str(Topic(TopicKind.EVENTS, agent))


def config_topic(agent: str) -> str:
    return str(Topic(TopicKind.CONFIG, agent))


def data_topic(agent: str, device: str, *, replay: bool = False) -> str:
    return str(Topic(TopicKind.REPLAY if replay else TopicKind.DATA, agent, device))


def subscription() -> str:
    """The one filter a collector subscribes to."""
    return f"{ROOT}/#"


def parse_topic(topic: str) -> Topic:
    """Parse a received topic; raise :class:`TopicError` for anything outside the contract."""
    prefix = ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"not a hatang v{WIRE_VERSION} topic: {topic!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) < 2 or not is_agent_id(parts[0]):
        raise TopicError(f"bad agent id in topic {topic!r}")
    try:
        kind = TopicKind(parts[1])
    except ValueError:
        raise TopicError(f"unknown topic kind {parts[1]!r} in {topic!r}") from None
    if kind in _PER_DEVICE:
        if len(parts) != 3 or not is_device_name(parts[2]):
            raise TopicError(f"bad device name in topic {topic!r}")
        return Topic(kind, parts[0], parts[2])
    if len(parts) != 2:
        raise TopicError(f"unexpected levels in topic {topic!r}")
    return Topic(kind, parts[0])

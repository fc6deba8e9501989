"""The MQTT wire contract shared by the hatang agent and collector.

This package is the only thing both sides import; it imports neither. It defines the topic scheme
(:mod:`wire.topics`), the message models (:mod:`wire.messages`), the metric and label name rules
(:mod:`wire.names`), the checks a decoder applies to each field (:mod:`wire.validation`) and the JSON
codec (:mod:`wire.codec`). See docs/wire.md for the rules of versioning.
"""

from wire.codec import DecodeError, Limits, decode_batch, decode_status, encode_batch, encode_status
from wire.messages import AgentStatus, Family, PollBatch, ProfileError, Sample
from wire.topics import WIRE_VERSION, Topic, TopicError, TopicKind, parse_topic

__all__ = [
    "WIRE_VERSION",
    "AgentStatus",
    "DecodeError",
    "Family",
    "Limits",
    "PollBatch",
    "ProfileError",
    "Sample",
    "Topic",
    "TopicError",
    "TopicKind",
    "decode_batch",
    "decode_status",
    "encode_batch",
    "encode_status",
    "parse_topic",
]

"""Name rules of the wire contract: which metric and label names a poll may carry.

Used by the decoders (:mod:`wire.validation`) and by the agent when it loads a profile
(agent/profiles.py), so that a profile the agent accepts is never rejected by the collector.
"""

from __future__ import annotations

import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_TYPES: frozenset[str] = frozenset({"gauge", "counter"})
# Site labels an agent may claim (the collector puts them on every series of the agent).
SITE_LABELS = frozenset({"province", "district", "commune"})
# Labels the collector sets itself; a sample may not carry them.
RESERVED_LABELS = frozenset({"agent", "device", "job", "instance"}) | SITE_LABELS
# Series the collector computes itself; an agent's metric family may not use these names or prefixes.
RESERVED_METRICS = frozenset({
    "hatang_agent_up", "hatang_agent_last_seen_timestamp_seconds", "hatang_device_up",
    "hatang_device_last_poll_timestamp_seconds", "hatang_device_poll_duration_seconds",
    "hatang_device_poll_errors", "hatang_site_info", "hatang_trap_received_total",
    "hatang_trap_last_timestamp_seconds", "hatang_agent_clock_offset_seconds", "hatang_agent_info",
    "hatang_device_poll_success",
    "hatang_link_info", "hatang_device_upstream_info",  # collector/topology.py
})
RESERVED_METRIC_PREFIXES = ("hatang_collector_", "process_", "python_")

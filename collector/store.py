"""Latest state of every agent and device, fed by decoded MQTT messages.

The store decides what a message means (accept, duplicate, reject) and keeps, per device, the
pre-rendered exposition lines of its newest poll, so a scrape only joins strings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.exposition import render_lines
from collector.selfmetrics import CollectorMetrics
from collector.sequence import SequenceTracker
from wire.codec import DecodeError, Limits, decode_batch, decode_status
from wire.messages import AgentStatus, Labels, PollBatch
from wire.topics import TopicError, TopicKind, parse_topic

log = logging.getLogger("hatang.collector.store")


@dataclass
class AgentState:
    agent: str
    online: bool = False
    last_seen: float = 0.0  # collector time of the last message from this agent
    boot_id: str = ""
    version: str = ""
    site: Labels = ()


@dataclass
class DeviceState:
    agent: str
    device: str
    site: Labels
    interval: float
    ts: float  # agent's poll time of the newest batch
    received: float  # collector time it arrived
    up: bool
    duration: float
    errors: int
    lines: dict[str, list[str]] = field(default_factory=dict)  # metric name -> exposition lines
    meta: dict[str, tuple[str, str]] = field(default_factory=dict)  # metric name -> (type, help)


class Store:
    def __init__(
        self,
        metrics: CollectorMetrics,
        limits: Limits,
        *,
        stale_after_intervals: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.limits = limits
        self.stale_after_intervals = stale_after_intervals
        self.clock = clock
        self.agents: dict[str, AgentState] = {}
        self.devices: dict[tuple[str, str], DeviceState] = {}
        self._sequences = SequenceTracker()
        self._logged_reasons: set[tuple[str, str]] = set()

    def ingest(self, topic: str, payload: bytes) -> str:
        """Handle one MQTT message; return 'accepted', 'duplicate', 'stale' or 'rejected:<reason>'."""
        try:
            parsed = parse_topic(topic)
            if parsed.kind is TopicKind.STATUS:
                return self._ingest_status(parsed.agent, payload)
            if parsed.kind in (TopicKind.DATA, TopicKind.REPLAY):
                return self._ingest_batch(parsed.agent, parsed.device or "", parsed.kind, payload)
            self.metrics.message(parsed.kind.value)
            return "accepted"  # events: issue #3
        except TopicError as exc:
            return self._reject("topic", topic, str(exc))
        except DecodeError as exc:
            return self._reject(exc.reason, topic, exc.detail)

    def _reject(self, reason: str, topic: str, detail: str) -> str:
        self.metrics.rejected(reason)
        key = (reason, topic)
        if key not in self._logged_reasons and len(self._logged_reasons) < 10_000:
            self._logged_reasons.add(key)  # log each (reason, topic) once, not per message
            log.warning("rejected message on %.200s: %s: %.300s", topic, reason, detail)
        return f"rejected:{reason}"

    def _agent(self, agent: str) -> AgentState:
        state = self.agents.get(agent)
        if state is None:
            state = self.agents[agent] = AgentState(agent)
        return state

    def _ingest_status(self, agent: str, payload: bytes) -> str:
        if not payload:  # a retained message being cleared
            return "accepted"
        status: AgentStatus = decode_status(payload, self.limits)
        if status.agent != agent:
            raise DecodeError("identity", f"payload claims agent {status.agent!r} on {agent!r}'s topic")
        self.metrics.message("status")
        state = self._agent(agent)
        state.online = status.online
        state.boot_id = status.boot_id
        state.version = status.version or state.version
        state.site = status.site or state.site
        # A retained offline status may be old: trust its time, not the time it was delivered.
        state.last_seen = self.clock() if status.online else max(state.last_seen, status.ts)
        return "accepted"

    def _ingest_batch(self, agent: str, device: str, kind: TopicKind, payload: bytes) -> str:
        batch: PollBatch = decode_batch(payload, self.limits)
        if batch.agent != agent or batch.device != device:
            raise DecodeError("identity", f"payload claims {batch.agent}/{batch.device} on {agent}/{device}")
        self.metrics.message(kind.value)
        verdict = self._sequences.see(agent, batch.boot_id, batch.seq)
        if not verdict.new:
            self.metrics.duplicate()
            return "duplicate"
        if verdict.gap:
            self.metrics.gap(verdict.gap)
        now = self.clock()
        agent_state = self._agent(agent)
        agent_state.last_seen = now
        agent_state.online = True
        agent_state.site = batch.site or agent_state.site
        current = self.devices.get((agent, device))
        if current is not None and batch.ts < current.ts:
            return "stale"  # an older poll (replayed): the live state keeps the newer one
        state = DeviceState(agent, device, batch.site, batch.interval, batch.ts, now, batch.up,
                            batch.duration, len(batch.errors))
        base = (("agent", agent), ("device", device), *batch.site)
        for family in batch.families:
            state.meta[family.name] = (family.type, family.help)
            state.lines.setdefault(family.name, []).extend(render_lines(family, base))
        self.devices[(agent, device)] = state
        return "accepted"

    def is_fresh(self, state: DeviceState, now: float) -> bool:
        return now - state.received <= self.stale_after_intervals * state.interval

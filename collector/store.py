"""Latest state of every agent and device, fed by decoded MQTT messages.

The store decides what a message means (accepted, late, duplicate, rejected) and keeps, per device,
the pre-rendered exposition lines of its newest live poll, so a scrape only joins bytes
(collector/exposition.py, which reads the store through collector/view.py and never imports it).

A poll is *live* when it arrives within its interval (plus ``live_grace``) of being taken: it becomes
the device's state that scrapes see (and ``on_live_poll`` is told, for the status pages' history). A
poll that arrives later (replayed from the agent's disk queue after an outage) is *late*: it goes to
``late_sink`` (remote write) with its own timestamp, never to /metrics. A scrape shows a device's state
only while it is fresh (collector/view.py ``is_fresh``). Served samples carry the poll time as their
timestamp, so a sample scraped twice is stored once and a backfilled poll can never interleave with a
stale copy of an older one. In push mode every poll goes to the sink and /metrics serves only liveness.

With an inventory (collector/inventory.py) the site labels of every series come from it, not from the
agent, and messages of agents it does not list are rejected (``unknown_agent``). Each agent's series
are capped (``max_series_per_agent``, reject reason ``cardinality``), so one broken or hostile office
cannot exhaust the collector. An agent's ``config`` topic (the centre's, for that agent) is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.clock import DEFAULT_THRESHOLD, Clocks, ClockSource
from collector.ingest import (
    POLL_SUCCESS,
    POLL_SUCCESS_META,
    LabelCache,
    poll_success_line,
    poll_success_series,
    render_families,
    trim_cache,
)
from collector.inventory import Inventory
from collector.late_series import late_series
from collector.logguard import RejectLog
from collector.remote_write import Series
from collector.selfmetrics import CollectorMetrics
from collector.sequence import SequenceTracker
from hatang.textformat import format_labels
from wire.codec import decode_status, decode_trap, family_size, load_batch
from wire.messages import AgentStatus, Labels
from wire.topics import TopicError, TopicKind, parse_topic
from wire.validation import DecodeError, Limits

SELF = "@self"  # key of an agent's own metrics among its devices (device names cannot start with '@')
BURST_GUARD = 10.0  # seconds after resuming a broker session in which messages may be queued ones
BACKLOG_GUARD = 100  # received messages waiting to be handled beyond which arrival times say little
REFERENCE_EVERY = 1.0  # seconds between recomputations of which clock is right
MAX_TRAP_KEYS_PER_AGENT = 1000  # distinct (device, trap name) pairs counted per agent

log = logging.getLogger("hatang.collector.store")


@dataclass
class AgentState:
    agent: str
    online: bool = False
    last_seen: float = 0.0  # collector time of the last message from this agent
    boot_id: str = ""
    version: str = ""
    site: Labels = ()
    offline_boot: str = ""  # boot id that said goodbye (its late data must not mark the agent online)
    status: AgentStatus | None = None  # its latest birth or will (buffer, config version: status pages)


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
    kind: str = "device"  # or "probe": no device liveness series
    series: int = 0  # samples in this poll (counted against the agent's cap)
    blocks: dict[str, bytes] = field(default_factory=dict)  # metric name -> its exposition lines, UTF-8
    meta: dict[str, tuple[str, str]] = field(default_factory=dict)  # metric name -> (type, help)
    label_cache: LabelCache = field(default_factory=dict)  # formatted label sets (collector/ingest.py)
    # A live poll no /metrics rendering has shown yet: what is needed to remote-write it, should a newer
    # poll replace it first (two polls within one scrape interval, e.g. right after a reconnect).
    # Cleared by the rendering that shows it.
    unserved: tuple[list[Any], Any, Labels, int] | None = None

    @property
    def is_self(self) -> bool:
        return self.device == SELF

    @property
    def polls_device(self) -> bool:  # an SNMP device's poll (not a probe nor the agent's own metrics)
        return self.kind == "device" and not self.is_self


class Store:
    def __init__(
        self,
        metrics: CollectorMetrics,
        limits: Limits,
        *,
        stale_after_intervals: float = 3.0,
        live_grace: float = 5.0,
        late_sink: Callable[[list[Series]], None] | None = None,
        push: bool = False,
        inventory: Inventory | None = None,
        max_series_per_agent: int = 100_000,
        track_gaps: bool = True,
        clock: Callable[[], float] = time.time,
        clock_offset_threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.metrics = metrics
        self.limits = limits
        self.stale_after_intervals = stale_after_intervals  # read by collector/view.py is_fresh
        self.live_grace = live_grace
        self.late_sink = late_sink
        self.push = push
        self.clock = clock
        self.broker_connected = True  # the subscriber clears this while it has no broker connection
        self.agents: dict[str, AgentState] = {}
        self.devices: dict[tuple[str, str], DeviceState] = {}
        # (agent, device, trap name) -> [count, unix time of the last one]
        self.traps: dict[tuple[str, str, str], list[float]] = {}
        self.trap_sites: dict[str, Labels] = {}
        self.max_series_per_agent = max_series_per_agent
        self._traps_per_agent: dict[str, int] = {}
        self._series_per_agent: dict[str, int] = {}
        self._sequences = SequenceTracker(track_gaps=track_gaps)
        metrics.watch_missing(lambda: self._sequences.missing)
        metrics.watch_clock(lambda: -self.clocks.reference)
        self._log_reject = RejectLog(clock)
        # agent clocks (collector/clock.py); arrival times are trusted as measurements only outside a
        # burst of messages the broker queued for us while we were away
        self.clocks = Clocks(clock_offset_threshold)
        self.backlog: Callable[[], int] = lambda: 0  # the subscriber's received, unhandled messages
        self.connected_at = float("-inf")  # collector time of the broker connection
        self.resumed_session = False  # that connection resumed a session: queued messages may come
        self._reference_dirty, self._reference_at = False, float("-inf")
        self._refresh: set[str] = set()  # agents whose estimate changed since it was last looked at
        self.version = 0  # grows with every change a scrape can see (collector/http.py caches by it)
        self.on_live_poll: Callable[[DeviceState], None] = lambda state: None  # told of each live poll
        self.inventory: Inventory | None = None
        self.set_inventory(inventory)

    def set_inventory(self, inventory: Inventory | None) -> None:
        """Use (or stop using) an inventory; every listed agent gets liveness series at once."""
        self.inventory = inventory
        if inventory is not None:
            for agent, site in inventory.sites.items():
                self._agent(agent).site = site.labels()

    def _site(self, agent: str, claimed: Labels) -> Labels:
        """The site labels to use: the inventory's when there is one, else what the agent claims."""
        if self.inventory is not None:
            site = self.inventory.get(agent)
            return site.labels() if site is not None else ()
        return claimed

    def ingest(self, topic: str, payload: bytes, retained: bool = False) -> str:
        """One MQTT message (``retained``: the broker's retained copy, maybe old) -> 'accepted', 'late',
        'duplicate', 'ignored' or 'rejected:<reason>'."""
        self.version += 1
        try:
            parsed = parse_topic(topic)
            if parsed.kind is TopicKind.CONFIG:
                return "ignored"
            if self.inventory is not None and self.inventory.get(parsed.agent) is None:
                raise DecodeError("unknown_agent", f"agent {parsed.agent!r} is not in the inventory")
            if parsed.kind is TopicKind.STATUS:
                return self._ingest_status(parsed.agent, payload, retained)
            if parsed.kind in (TopicKind.DATA, TopicKind.REPLAY, TopicKind.SELF):
                return self._ingest_batch(parsed.agent, parsed.device, parsed.kind, payload)
            return self._ingest_trap(parsed.agent, payload)
        except TopicError as exc:
            return self._reject("topic", topic, str(exc))
        except DecodeError as exc:
            return self._reject(exc.reason, topic, exc.detail)

    def _reject(self, reason: str, topic: str, detail: str) -> str:
        self.metrics.rejected(reason)
        self._log_reject(reason, topic, detail)
        return f"rejected:{reason}"

    def _agent(self, agent: str) -> AgentState:
        if (state := self.agents.get(agent)) is None:
            state = self.agents[agent] = AgentState(agent)
        return state

    def now_ref(self) -> float:
        """Reference time: the collector's clock, unless most agents agree it is off (collector/clock.py)."""
        return self.clock() + self.clocks.reference

    def set_connected(self, connected: bool, resumed_session: bool = False) -> None:
        """The subscriber's broker connection; ``resumed_session``: the broker kept our session, so it
        may now deliver what it queued while we were away (arrival times then say little)."""
        self.broker_connected = connected
        self.version += 1
        if connected:
            self.connected_at = self.clock()
            self.resumed_session = resumed_session

    def _confirmed(self, now: float) -> bool:
        """Whether an arrival time now measures a message's delay (not a burst of queued ones)."""
        if self.resumed_session and now - self.connected_at < BURST_GUARD:
            return False
        return self.backlog() < BACKLOG_GUARD

    def _observe_clock(self, agent: str, sample: float, now: float, source: ClockSource,
                       bound: float) -> None:
        if self.clocks.observe(agent, sample, now, source, bound, self._confirmed(now)):
            self._reference_dirty = True
            self._refresh.add(agent)

    def _settle_clocks(self, now: float) -> None:
        """Before a message is placed in time: which clock is right (at most once a second: it looks at
        every agent), then whether the agents whose estimate changed are corrected."""
        if self._reference_dirty and now - self._reference_at >= REFERENCE_EVERY:
            self._reference_dirty = False
            self._reference_at = now
            self.clocks.update_reference(a.agent for a in self.agents.values() if a.online)
            self._refresh.clear()
        while self._refresh:
            self.clocks.refresh(self._refresh.pop())

    def _ingest_status(self, agent: str, payload: bytes, retained: bool) -> str:
        if not payload:  # a retained message being cleared
            return "accepted"
        status: AgentStatus = decode_status(payload, self.limits)
        if status.agent != agent:
            raise DecodeError("identity", f"payload claims agent {status.agent!r} on {agent!r}'s topic")
        self.metrics.message("status")
        now = self.clock()
        if status.online:  # a birth is made and sent at connect; the will was made at the agent's start
            source = ClockSource.OLD if retained else ClockSource.BIRTH
            self._observe_clock(agent, status.ts - now, now, source, 0.0)
        state = self._agent(agent)
        if state.online != status.online:
            self._reference_dirty = True  # the voters changed
        state.online, state.boot_id, state.status = status.online, status.boot_id, status
        state.offline_boot = "" if status.online else status.boot_id
        if status.online and status.devices:
            self._forget_devices(agent, keep=set(status.devices))
        state.version = status.version or state.version
        state.site = self._site(agent, status.site) or state.site
        # A retained offline status may be old: trust its time, not the time it was delivered.
        reference = now + self.clocks.reference
        state.last_seen = reference if status.online else max(
            state.last_seen, min(status.ts - self.clocks.correction(agent), reference))
        return "accepted"

    def _forget_devices(self, agent: str, keep: set[str]) -> None:
        """Drop the state of devices an agent no longer has (its birth message lists the current ones)."""
        for (owner, device), state in list(self.devices.items()):
            if owner == agent and device != SELF and device not in keep:
                del self.devices[(owner, device)]
                self._series_per_agent[agent] = self._series_per_agent.get(agent, 0) - state.series

    def _ingest_trap(self, agent: str, payload: bytes) -> str:
        trap = decode_trap(payload, self.limits)
        if trap.agent != agent:
            raise DecodeError("identity", f"payload claims agent {trap.agent!r} on {agent!r}'s topic")
        self.metrics.message(TopicKind.EVENTS.value)
        now = self.clock()
        verdict = self._sequences.see(agent, trap.boot_id, trap.seq, now)
        if verdict.lost:
            self.metrics.lost(verdict.lost)
        if not verdict.new:
            self.metrics.duplicate()
            return "duplicate"
        self._settle_clocks(now)
        now_ref = now + self.clocks.reference
        self._agent(agent).last_seen = now_ref
        trap_ts = self.clocks.place(agent, trap.boot_id, trap.seq, trap.ts, now_ref, live=False)
        key = (agent, trap.device, trap.trap_name[:128])
        stats = self.traps.get(key)
        if stats is None:
            if self._traps_per_agent.get(agent, 0) >= MAX_TRAP_KEYS_PER_AGENT:
                raise DecodeError("cardinality", f"more than {MAX_TRAP_KEYS_PER_AGENT} trap series")
            self._traps_per_agent[agent] = self._traps_per_agent.get(agent, 0) + 1
            stats = self.traps[key] = [0, 0.0]
        stats[0] += 1
        stats[1] = max(stats[1], trap_ts)
        self.trap_sites[agent] = self._site(agent, trap.site)
        log.info("trap %s from %s (%s) via agent %s", trap.trap_name, trap.device, trap.source, agent)
        return "accepted"

    def _ingest_batch(self, agent: str, device: str | None, kind: TopicKind, payload: bytes) -> str:
        batch, raw_metrics, raw_label_sets = load_batch(payload, self.limits)
        if batch.agent != agent or (device is not None and batch.device != device):
            raise DecodeError("identity", f"payload claims {batch.agent}/{batch.device} on {agent}/{device}")
        self.metrics.message(kind.value)
        key = SELF if kind is TopicKind.SELF else batch.device
        samples = sum(map(family_size, raw_metrics)) + (batch.kind == "device" and key != SELF)  # + success
        current = self.devices.get((agent, key))
        in_use = self._series_per_agent.get(agent, 0) - (current.series if current is not None else 0)
        if in_use + samples > self.max_series_per_agent:
            raise DecodeError("cardinality", f"agent {agent} would have {in_use + samples} series "
                                             f"(limit {self.max_series_per_agent})")
        now = self.clock()
        # Clock: a poll on data/ left the agent within its interval, a self message newer than any of its
        # boot was just made; both measure the agent's clock (collector/clock.py). Never rejected for it.
        if kind is TopicKind.DATA:
            source = ClockSource.LIVE
        elif kind is TopicKind.SELF:
            highest = self._sequences.highest(agent, batch.boot_id)
            source = ClockSource.SELF if highest is not None and batch.seq > highest else ClockSource.OLD
        else:
            source = ClockSource.OLD
        self._observe_clock(agent, batch.ts - now, now, source, batch.interval + batch.duration)
        self._settle_clocks(now)
        now_ref = now + self.clocks.reference
        ts = self.clocks.place(agent, batch.boot_id, batch.seq, batch.ts, now_ref,
                               live=source in (ClockSource.LIVE, ClockSource.SELF))
        site = self._site(agent, batch.site)
        base: Labels = (("agent", agent), *(() if key == SELF else (("device", batch.device),)), *site)
        # Late: arrived after its live window, or older than the poll already served (it was overtaken
        # by live data after an outage). Either way it is backfilled, never served.
        late = now_ref - ts > batch.interval + self.live_grace or (current is not None and ts < current.ts)
        ts_ms = round(ts * 1000)
        state = DeviceState(agent, key, site, batch.interval, ts, now, batch.up,
                            batch.duration, len(batch.errors), batch.kind, series=samples)
        series: list[Series] = []
        # validate (and render) every family before the message counts as seen, so that a rejected
        # message leaves no trace in the sequence tracker
        if late or self.push:
            series, state.meta = late_series(raw_metrics, base, ts_ms, self.limits, raw_label_sets)
            if state.polls_device:
                series.append(poll_success_series(base, batch.up, ts_ms))
        else:
            cache = current.label_cache if current is not None else {}
            trim_cache(cache, samples)
            base_text = format_labels(base)[1:-1]
            rendered = render_families(raw_metrics, base_text, ts_ms, self.limits, cache, raw_label_sets)
            # UTF-8 once here, so that a scrape only joins bytes (1,000,000 series in ~0.1 s)
            state.blocks = {name: block.encode() for name, block in rendered.blocks.items()}
            state.meta, state.label_cache = rendered.meta, cache
            if state.polls_device:
                state.blocks[POLL_SUCCESS] = poll_success_line(base_text, batch.up, ts_ms)
                state.meta[POLL_SUCCESS] = POLL_SUCCESS_META
        verdict = self._sequences.see(agent, batch.boot_id, batch.seq, now)
        if verdict.lost:
            self.metrics.lost(verdict.lost)
        if not verdict.new:
            self.metrics.duplicate()
            return "duplicate"
        if verdict.gap:
            self.metrics.gap(verdict.gap)
        agent_state = self._agent(agent)
        agent_state.last_seen = now_ref
        agent_state.site = site or agent_state.site
        if kind is not TopicKind.REPLAY and batch.boot_id != agent_state.offline_boot:
            if not agent_state.online:
                self._reference_dirty = True
            agent_state.online = True  # live data of a boot that did not say goodbye: it is connected
        if late or self.push:
            if self.late_sink is not None:
                self.late_sink(series)
            if late:
                self.metrics.late(samples)
                return "late"
        if not self.push and self.late_sink is not None:
            state.unserved = (raw_metrics, raw_label_sets, base, ts_ms)
            if current is not None and current.unserved is not None:
                self._backfill_unserved(current)
        self.devices[(agent, key)] = state
        self._series_per_agent[agent] = in_use + samples
        self.on_live_poll(state)
        return "accepted"

    def _backfill_unserved(self, state: DeviceState) -> None:
        """A live poll replaced before any /metrics rendering showed it: write it by remote write, so
        that no scrape interval loses it (it was validated when it arrived)."""
        assert state.unserved is not None and self.late_sink is not None
        raw_metrics, raw_label_sets, base, ts_ms = state.unserved
        state.unserved = None
        series = late_series(raw_metrics, base, ts_ms, self.limits, raw_label_sets)[0]
        if state.polls_device:
            series.append(poll_success_series(base, state.up, ts_ms))
        self.late_sink(series)
        self.metrics.unserved(state.series)

    def mark_served(self, states: Iterable[DeviceState]) -> None:
        """These polls are in a /metrics rendering: a scrape shows them."""
        for state in states:
            state.unserved = None

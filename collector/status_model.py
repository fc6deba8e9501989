"""What the status pages show, as plain data (the JSON of ``/api/...``; docs/status-pages.md). Pure.

Computed on request from the store (through collector/view.py, never importing it) and the traffic
history (collector/status_history.py); nothing is kept here (collector/status_cache.py shares what a
request made). Times: ``now`` is the collector's clock (what freshness compares with arrival times); the
store keeps poll times and ``last_seen`` in reference time (collector/clock.py: the collector's clock
corrected when the agents agree it is off), so ages and ``generated`` use ``now + reference``. Work
per request is bounded: one pass over the store's devices and traps, and per device of the office
shown at most ``MAX_INTERFACES`` interfaces.

States (the words of collector/status_text.py):

- office: ``ok`` (agent online, every device answers, the link is up), ``warning`` (online, but a device
  does not answer or the link probe fails), ``offline`` (the agent said goodbye or its will was sent),
  ``unknown`` (never heard of since the collector started);
- device: ``up``, ``down`` (did not answer its newest poll), ``stale`` (no recent poll: the agent or the
  broker is away), ``pending`` (listed by the agent, no poll yet);
- link (the agent's probes): ``up``, ``down`` (a probe's target did not answer), ``unknown`` (no fresh run).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from collector.status_history import IN_BYTES, OUT_BYTES, TrafficHistory, parse_counters
from collector.view import AgentView, DeviceT, DeviceView, StoreView, is_fresh
from wire.messages import Labels

MAX_INTERFACES = 512  # interfaces shown per device (the rest are counted)
MAX_TRAPS = 20  # newest traps shown per office
SELF_DEVICE = "@self"  # the agent's own metrics (collector/store.py SELF)
ROLE_ORDER = {"datacenter": 0, "department": 1, "district": 2, "commune": 3, "other": 4}
OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
               7: "lowerLayerDown"}
QUEUE_METRICS = {"messages": "hatang_agent_queue_messages", "bytes": "hatang_agent_queue_bytes",
                 "oldest_age_seconds": "hatang_agent_queue_oldest_age_seconds",
                 "dropped": "hatang_agent_queue_dropped_total"}

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def samples(block: bytes | None) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of each sample line of an exposition block (``name{labels} value [ts]``)."""
    if not block:
        return
    for line in block.decode("utf-8", "replace").split("\n"):
        head, sep, tail = line.rpartition("} ")
        if not sep:
            head, _, tail = line.partition(" ")
            labels: dict[str, str] = {}
        else:
            labels = {k: _unescape(v) for k, v in _LABEL.findall(head[head.find("{") + 1:])}
        raw = tail.split(" ", 1)[0]
        try:
            yield labels, float(raw)
        except ValueError:
            continue


def first_value(block: bytes | None) -> float | None:
    for _, value in samples(block):
        return value if math.isfinite(value) else None
    return None


def _number(value: float | None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if value == int(value) and abs(value) < 2**53 else value


def _site(labels: Labels) -> dict[str, str]:
    return dict(labels)


def _group_devices(store: StoreView[DeviceT]) -> dict[str, list[DeviceT]]:
    grouped: dict[str, list[DeviceT]] = {}
    for state in store.devices.values():
        grouped.setdefault(state.agent, []).append(state)
    return grouped


def device_state(store: StoreView[DeviceT], state: DeviceT, now: float) -> str:
    if not is_fresh(store, state, now):
        return "stale"
    return "up" if state.up else "down"


def _link(store: StoreView[DeviceT], probes: list[DeviceT], now: float) -> str:
    results = [first_value(p.blocks.get("hatang_probe_up")) for p in probes if is_fresh(store, p, now)]
    known = [r for r in results if r is not None]
    if not known:
        return "unknown"
    return "up" if all(r >= 1 for r in known) else "down"


def _pending(agent: AgentView | None, states: list[DeviceT]) -> list[str]:
    """Devices (or probes) the agent listed in its birth message that have sent nothing yet."""
    if agent is None or agent.status is None or not agent.online:
        return []
    seen = {s.device for s in states}
    return sorted(d for d in agent.status.devices if d not in seen)


def _office_summary(store: StoreView[DeviceT], agent_id: str, states: list[DeviceT], now: float,
                    ) -> dict[str, Any]:
    agent = store.agents.get(agent_id)
    site = store.inventory.get(agent_id) if store.inventory is not None else None
    labels = _site(agent.site if agent is not None else ())
    devices = [s for s in states if s.kind == "device" and not s.is_self]
    probes = [s for s in states if s.kind == "probe"]
    up = sum(device_state(store, s, now) == "up" for s in devices)
    total = len(devices)  # not the pending names: the birth message lists probes among them
    link = _link(store, probes, now)
    online = agent is not None and agent.online
    if agent is None or (not online and not agent.last_seen):
        state = "unknown"
    elif not online:
        state = "offline"
    elif up < total or link == "down":
        state = "warning"
    else:
        state = "ok"
    return {
        "agent": agent_id,
        "name": (site.name if site is not None else "") or agent_id,
        "role": site.role if site is not None else "other",
        "province": site.province if site is not None else labels.get("province", ""),
        "district": (site.district if site is not None else labels.get("district")) or "",
        "commune": (site.commune if site is not None else labels.get("commune")) or "",
        "latitude": site.latitude if site is not None else None,
        "longitude": site.longitude if site is not None else None,
        "state": state,
        "online": online,
        "last_seen": (agent.last_seen or None) if agent is not None else None,
        "devices_up": up,
        "devices_total": total,
        "link": link,
        "version": agent.version if agent is not None else "",
        **_agent_config(agent),
    }


def _agent_config(agent: Any) -> dict[str, Any]:
    """From the agent's latest status: its configuration version (the revision of the centre's
    configuration, or a hash of agent.yaml), the last configuration it refused (or None) and its queue
    (``hatang fleet status``)."""
    status = agent.status if agent is not None else None
    if status is None:
        return {"config_version": "", "config_rejected": None, "buffer": {}}
    rejected = status.config_rejected if status.online else None
    return {
        "config_version": status.config_version,
        "config_rejected": None if rejected is None else {
            "revision": rejected.revision, "reason": rejected.reason, "error": rejected.error,
            "ts": rejected.ts},
        "buffer": {key: value for key, value in status.buffer if key in ("depth", "dropped", "dropped_full")},
    }


def _office_ids(store: StoreView[DeviceT]) -> list[str]:
    ids = set(store.agents)
    if store.inventory is not None:
        ids.update(store.inventory.sites)
    return sorted(ids)


def province(store: StoreView[DeviceT], now: float, grafana_url: str | None = None) -> dict[str, Any]:
    """Every office with its state, and the counts."""
    grouped = _group_devices(store)
    offices = [_office_summary(store, a, grouped.get(a, []), now) for a in _office_ids(store)]
    offices.sort(key=lambda o: (o["district"] == "", o["district"], ROLE_ORDER.get(o["role"], 9), o["name"]))
    counts = {state: sum(o["state"] == state for o in offices) for state in ("ok", "warning", "offline",
                                                                              "unknown")}
    return {
        "generated": now + store.clocks.reference,
        "counts": {"offices": len(offices), **counts,
                   "devices_up": sum(o["devices_up"] for o in offices),
                   "devices_total": sum(o["devices_total"] for o in offices)},
        "offices": offices,
        "grafana": grafana_links(grafana_url),
    }


def grafana_links(grafana_url: str | None, agent: str | None = None) -> dict[str, str] | None:
    """Links to the shipped dashboards (dashboards/*.json uids), or None without a Grafana URL."""
    if not grafana_url:
        return None
    base = grafana_url.rstrip("/")
    links = {"province": f"{base}/d/hatang-toan-tinh"}
    if agent is not None:
        links["office"] = f"{base}/d/hatang-diem?var-agent={quote(agent, safe='')}"
        links["interface"] = f"{base}/d/hatang-cong?var-agent={quote(agent, safe='')}"
    return links


def _interfaces(state: DeviceView, history: TrafficHistory | None, fresh: bool) -> tuple[list[dict[str, Any]],
                                                                                           int]:
    blocks = state.blocks
    rows: dict[str, dict[str, Any]] = {}
    source = blocks.get("hatang_interface_oper_status") or blocks.get(IN_BYTES) or blocks.get(OUT_BYTES)
    oper = "hatang_interface_oper_status" in blocks
    for labels, value in samples(source):
        index = labels.get("if_index")
        if index is None or index in rows:
            continue
        code = int(value) if oper and math.isfinite(value) else None
        rows[index] = {"if_index": index, "name": labels.get("if_name", ""),
                       "alias": labels.get("if_alias", ""), "oper_status": code,
                       "oper": OPER_STATUS.get(code, "unknown") if code else "unknown",
                       "speed_bps": None, "critical": False, "in_bps": None, "out_bps": None,
                       "history": {"in": [], "out": []}}
    order = sorted(rows, key=lambda i: (len(i), i))
    hidden = max(0, len(order) - MAX_INTERFACES)
    shown = {i: rows[i] for i in order[:MAX_INTERFACES]}
    speed_bytes = parse_counters(blocks.get("hatang_interface_speed_bytes"))
    speeds = {k.decode(): v * 8.0 for k, v in speed_bytes.items()}
    for raw_index in parse_counters(blocks.get("hatang_interface_critical")):
        row = shown.get(raw_index.decode())
        if row is not None:
            row["critical"] = True
    traffic = history.traffic(state.agent, state.device, speeds, shown) if history is not None else {}
    current = fresh and history is not None and history.newest(state.agent, state.device) == state.ts
    for index, row in shown.items():
        row["speed_bps"] = _number(speeds.get(index))
        rates = traffic.get(index)
        if rates is None:
            continue
        row["history"] = {"in": [_round(r) for r in rates.in_bps], "out": [_round(r) for r in rates.out_bps]}
        if current:
            row["in_bps"], row["out_bps"] = _round(rates.current_in), _round(rates.current_out)
    return list(shown.values()), hidden


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _device(store: StoreView[DeviceT], state: DeviceT, history: TrafficHistory | None, now: float,
            ) -> dict[str, Any]:
    status = device_state(store, state, now)
    interfaces, hidden = _interfaces(state, history, status != "stale")
    return {"name": state.device, "state": status, "last_poll": state.ts,
            "poll_age": max(0.0, now + store.clocks.reference - state.ts),
            "duration": round(state.duration, 3),
            "errors": state.errors,
            "uptime_seconds": _number(first_value(state.blocks.get("hatang_device_uptime_seconds"))),
            "interfaces": interfaces, "interfaces_hidden": hidden}


def _probe(store: StoreView[DeviceT], state: DeviceT, now: float) -> dict[str, Any]:
    labels = next((lab for lab, _ in samples(state.blocks.get("hatang_probe_up"))), {})
    rtt = {lab.get("stat", ""): v for lab, v in samples(state.blocks.get("hatang_probe_rtt_seconds"))}
    fresh = is_fresh(store, state, now)
    up = first_value(state.blocks.get("hatang_probe_up"))
    known = fresh and up is not None
    return {"name": state.device, "state": ("up" if up else "down") if known else "unknown",
            "target": labels.get("target", ""), "method": labels.get("method", ""),
            "last_poll": state.ts, "poll_age": max(0.0, now + store.clocks.reference - state.ts),
            "loss_ratio": _number(first_value(state.blocks.get("hatang_probe_loss_ratio"))),
            "rtt_seconds": _number(rtt.get("avg"))}


def _buffer(store: StoreView[DeviceT], agent: AgentView | None, own: DeviceT | None, now: float,
            ) -> dict[str, Any] | None:
    """The agent's disk-queue backlog: from its self metrics while fresh, else from its status message."""
    if own is not None and is_fresh(store, own, now):
        values = {key: _number(first_value(own.blocks.get(name))) for key, name in QUEUE_METRICS.items()}
        if values["messages"] is not None:
            return {**values, "source": "self", "ts": own.ts}
    if agent is None or agent.status is None or not agent.status.buffer:
        return None
    raw = dict(agent.status.buffer)
    oldest = raw.get("oldest_ts")  # the agent's clock: corrected as the store corrects its polls
    correction = store.clocks.correction(agent.agent)
    age = now + store.clocks.reference - (oldest - correction) if oldest is not None else 0
    return {"messages": _number(raw.get("depth")), "bytes": _number(raw.get("bytes")),
            "oldest_age_seconds": max(0.0, age), "dropped": _number(raw.get("dropped")),
            "source": "status", "ts": agent.status.ts - correction}


def office(store: StoreView[DeviceT], history: TrafficHistory | None, agent_id: str, now: float,
           grafana_url: str | None = None, device: str | None = None) -> dict[str, Any] | None:
    """One office in detail (or one of its devices: ``device``); None if the office (or device) is unknown."""
    if agent_id not in store.agents and (store.inventory is None or store.inventory.get(agent_id) is None):
        return None
    states = sorted((s for s in store.devices.values() if s.agent == agent_id), key=lambda s: s.device)
    agent = store.agents.get(agent_id)
    pending = _pending(agent, states)
    if device is not None and device not in {s.device for s in states if not s.is_self} | set(pending):
        return None
    own = next((s for s in states if s.is_self), None)
    status = agent.status if agent is not None else None
    chosen = [s for s in states if device is None or s.device == device]
    traps = sorted(((dev, trap, stats) for (a, dev, trap), stats in store.traps.items()
                    if a == agent_id and (device is None or dev == device)), key=lambda t: -t[2][1])
    offset = store.clocks.estimate(agent_id)
    if offset is not None:
        offset -= store.clocks.reference  # against reference time: the collector's own error taken out
    return {
        "generated": now + store.clocks.reference,
        "office": _office_summary(store, agent_id, states, now),
        "agent": {
            "version": agent.version if agent is not None else "",
            "config_version": status.config_version if status is not None else "",
            "boot_id": agent.boot_id if agent is not None else "",
            "online": agent is not None and agent.online,
            "last_seen": (agent.last_seen or None) if agent is not None else None,
            "clock_offset_seconds": round(offset, 3) if offset is not None else None,
            "buffer": _buffer(store, agent, own, now),
        },
        "device": device,
        "devices": [_device(store, s, history, now) for s in chosen if s.kind == "device" and not s.is_self]
        + [{"name": name, "state": "pending", "last_poll": None, "poll_age": None, "duration": None,
            "errors": 0, "uptime_seconds": None, "interfaces": [], "interfaces_hidden": 0}
           for name in pending if device is None or name == device],
        "probes": [_probe(store, s, now) for s in chosen if s.kind == "probe"],
        "traps": [{"device": dev, "trap": trap, "count": int(stats[0]), "last": stats[1]}
                  for dev, trap, stats in traps[:MAX_TRAPS]],
        "traps_total": len(traps),
        "grafana": grafana_links(grafana_url, agent_id),
    }

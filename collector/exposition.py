"""/metrics of the store: Prometheus text exposition (format 0.0.4, hatang/textformat.py). No I/O.

Sample lines are rendered once, when a batch arrives (collector/ingest.py), as one text block per device
and metric name. A scrape writes the liveness series computed at scrape time (agents and their info,
devices), the inventory's site info and the trap counts, then the blocks of every fresh device grouped
under one HELP/TYPE per metric name. The store is read through :class:`collector.view.StoreView` (this
module never imports it); the only thing a rendering changes is telling the store which polls it served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from collector import topology
from collector.view import AgentView, DeviceT, DeviceView, StoreView, is_fresh
from hatang.textformat import format_labels, format_value, header

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# parsed neighbour series per device, kept while its blocks are unchanged (one poll): collector/topology.py
_TOPOLOGY_CACHE = topology.FactsCache()


def _liveness(store: StoreView[DeviceT], now: float) -> Iterator[str]:
    agents = sorted(store.agents.values(), key=lambda a: a.agent)
    yield header("hatang_agent_up", "gauge", "1 if the agent is online (birth message seen, no will since).")
    for a in agents:
        yield f"hatang_agent_up{format_labels((('agent', a.agent), *a.site))} {1 if a.online else 0}\n"
    yield from _agent_info(agents)
    yield header("hatang_agent_last_seen_timestamp_seconds", "gauge",
                 "Unix time the collector last received a message from the agent.")
    for a in agents:
        yield (f"hatang_agent_last_seen_timestamp_seconds{format_labels((('agent', a.agent), *a.site))} "
               f"{format_value(a.last_seen)}\n")
    offsets = [(a, store.clocks.estimate(a.agent)) for a in agents]
    yield header("hatang_agent_clock_offset_seconds", "gauge",
                 "The collector's estimate of the agent's clock minus the collector's clock, in seconds.")
    for a, offset in offsets:
        if offset is not None:
            yield (f"hatang_agent_clock_offset_seconds{format_labels((('agent', a.agent), *a.site))} "
                   f"{format_value(round(offset, 3))}\n")
    devices = sorted((d for d in store.devices.values() if not d.is_self and d.kind == "device"),
                     key=lambda d: (d.agent, d.device))
    per_device: list[tuple[str, str, Callable[[DeviceView, bool], float]]] = [
        ("hatang_device_up", "1 if the device answered its last poll and that poll is recent; else 0.",
         lambda d, fresh: 1 if (d.up and fresh) else 0),
        ("hatang_device_last_poll_timestamp_seconds", "Unix time the newest received poll started.",
         lambda d, fresh: d.ts),
        ("hatang_device_poll_duration_seconds", "Seconds the newest received poll took.",
         lambda d, fresh: d.duration),
        ("hatang_device_poll_errors", "Profiles that failed in the newest received poll.",
         lambda d, fresh: d.errors),
    ]
    freshness = {(d.agent, d.device): is_fresh(store, d, now) for d in devices}
    for name, help_text, getter in per_device:
        yield header(name, "gauge", help_text)
        for d in devices:
            labels = format_labels((("agent", d.agent), ("device", d.device), *d.site))
            yield f"{name}{labels} {format_value(getter(d, freshness[(d.agent, d.device)]))}\n"


def _agent_info(agents: Sequence[AgentView]) -> Iterator[str]:
    """``hatang_agent_info``: one series per agent the collector knows, online or not, value 1, with the
    hatang version and the configuration version of the agent's latest status message (birth or will;
    empty until one arrives): the revision of the centre's configuration it runs, or a hash of its
    agent.yaml. ``hatang_agent_config_rejected``: per agent whose birth says it refused a configuration
    from the centre, that revision, with the reason. Per agent, beside the liveness series: the hot path
    (device blocks) is untouched."""
    yield header("hatang_agent_info", "gauge",
                 "Identity of the agent, value 1: its hatang version and configuration version (revision of "
                 "the centre's configuration, or a hash of agent.yaml), from its status message.")
    for a in agents:
        config = a.status.config_version if a.status is not None else ""
        labels = format_labels((("agent", a.agent), ("config_version", config), ("version", a.version),
                                *a.site))
        yield f"hatang_agent_info{labels} 1\n"
    yield header("hatang_agent_config_rejected", "gauge",
                 "Revision of the centre's configuration the agent refused (while it runs an older one), "
                 "by reason: docs/remote-config.md.")
    for a in agents:
        rejected = a.status.config_rejected if a.status is not None and a.status.online else None
        if rejected is not None:
            labels = format_labels((("agent", a.agent), ("reason", rejected.reason), *a.site))
            yield f"hatang_agent_config_rejected{labels} {rejected.revision}\n"


def _sites(store: StoreView[DeviceT]) -> Iterator[str]:
    if store.inventory is None:
        return
    yield header("hatang_site_info", "gauge",
                 "Site of an agent from the inventory, value 1: name, hierarchy, role, latitude/longitude.")
    for agent in sorted(store.inventory.sites):
        yield f"hatang_site_info{format_labels(store.inventory.sites[agent].info_labels())} 1\n"


def _traps(store: StoreView[DeviceT]) -> Iterator[str]:
    if not store.traps:
        return
    items = sorted(store.traps.items())
    for name, help_text, index in (
        ("hatang_trap_received_total", "SNMP traps and informs received, by device and trap name.", 0),
        ("hatang_trap_last_timestamp_seconds", "Unix time the last such trap was received.", 1),
    ):
        yield header(name, "counter" if index == 0 else "gauge", help_text)
        for (agent, device, trap), stats in items:
            labels = format_labels((("agent", agent), ("device", device), ("trap", trap),
                                    *store.trap_sites.get(agent, ())))
            yield f"{name}{labels} {format_value(stats[index])}\n"


def render_bytes(store: StoreView[DeviceT], now: float) -> bytes:
    """The device and liveness part of /metrics, UTF-8."""
    parts: list[bytes] = [text.encode() for text in _liveness(store, now)]
    parts.extend(text.encode() for text in _sites(store))
    parts.extend(text.encode() for text in _traps(store))
    fresh = [d for d in store.devices.values() if is_fresh(store, d, now)]
    store.mark_served(fresh)
    parts.extend(text.encode() for text in topology.render(fresh, _TOPOLOGY_CACHE))
    names: dict[str, tuple[str, str]] = {}
    for d in fresh:
        for name, (mtype, help_text) in d.meta.items():
            known = names.get(name)
            if known is None:
                names[name] = (mtype, help_text)
            elif known[0] != mtype:  # agents disagree (a broken profile): valid text, no one wins
                names[name] = ("untyped", known[1])
    for name in sorted(names):
        mtype, help_text = names[name]
        parts.append(header(name, mtype, help_text).encode())
        for d in fresh:
            block = d.blocks.get(name)
            if block:
                parts.append(block)
    return b"".join(parts)


def render(store: StoreView[DeviceT], now: float) -> str:
    """:func:`render_bytes` as text."""
    return render_bytes(store, now).decode("utf-8")

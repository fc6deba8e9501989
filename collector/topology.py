"""Links between the devices the collector knows, from their LLDP and CDP neighbour series (docs/topology.md).

Each device with the ``neighbors`` profile publishes what it sees (``hatang_lldp_neighbor_info``,
``hatang_cdp_neighbor_info``) and who it is (``hatang_lldp_local_info``, ``hatang_cdp_local_info``;
``hatang_device_info`` from ``system``). At scrape time :func:`render` reads those series of the fresh
devices (their exposition lines, as the store keeps them), and two pure steps make the topology:

- :func:`join`: a neighbour row names a known device when its chassis id equals that device's
  ``lldpLocChassisId``, else when its system name (CDP: device id) equals the device's LLDP system name,
  sysName or CDP device id (case-insensitive; then by the host name before the first dot), preferring a
  device of the reporting agent; an ambiguous name names nobody. A link is shown when either end reports
  it and is confirmed when both do (the two reports name each other's ports, or are the only reports
  between the two devices). One series per link: ``hatang_link_info``.
- :func:`upstreams`: in each office (the links whose ends have the same agent), the device with the most
  neighbours is the root (ties: the first name); every other device's upstream is its neighbour on a
  shortest path from the root (breadth first, neighbours in name order): ``hatang_device_upstream_info``,
  read by the alert rules' inhibition of devices behind a device that is down.

Cost (benchmarks/topology.py): a device's lines are parsed again only when its neighbour or identity
series change, not at each poll, and the join is redone only when some device's facts changed or a
device came or went; otherwise a scrape compares blocks and reuses the lines.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from collector.view import DeviceView
from hatang.textformat import format_labels, header
from wire.messages import Labels

NEIGHBOR_FAMILIES = ("hatang_lldp_neighbor_info", "hatang_cdp_neighbor_info")
IDENTITY_FAMILIES = ("hatang_lldp_local_info", "hatang_cdp_local_info", "hatang_device_info")
LINK_METRIC = "hatang_link_info"
UPSTREAM_METRIC = "hatang_device_upstream_info"
_LABEL = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")
Key = tuple[str, str]  # (agent, device)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One row of a device's LLDP or CDP neighbour table."""

    if_name: str  # the local port (LLDP: lldpLocPortId; CDP: ifName)
    chassis_id: str  # LLDP lldpRemChassisId ("" for CDP)
    sys_name: str  # LLDP lldpRemSysName, CDP cdpCacheDeviceId
    port: str  # LLDP lldpRemPortId, CDP cdpCacheDevicePort


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What topology needs of one fresh device."""

    agent: str
    device: str
    site: Labels
    chassis_ids: frozenset[str]  # its own lldpLocChassisId
    names: frozenset[str]  # its own lldpLocSysName, sysName, cdpGlobalDeviceId
    neighbors: tuple[Neighbor, ...]

    @property
    def key(self) -> Key:
        return (self.agent, self.device)


@dataclass(frozen=True, slots=True)
class End:
    agent: str
    device: str
    if_name: str


@dataclass(frozen=True, slots=True)
class Link:
    local: End
    remote: End
    confirmed: bool


@dataclass(frozen=True, slots=True)
class _Report:
    """A neighbour row resolved to a known device: ``src`` sees ``dst`` on ``src_port``."""

    src: Key
    src_port: str
    dst: Key
    dst_port: str  # the port as ``src`` reports it


# --- matching ----------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return name.strip().casefold()


def _short(name: str) -> str:
    return _norm(name).split(".", 1)[0]


class _Index:
    """The known devices by chassis id, full name and short host name."""

    def __init__(self, devices: Sequence[DeviceFacts]) -> None:
        self.chassis: dict[str, list[Key]] = defaultdict(list)
        self.names: dict[str, list[Key]] = defaultdict(list)
        self.short: dict[str, list[Key]] = defaultdict(list)
        for d in devices:
            for chassis in d.chassis_ids:
                self.chassis[chassis].append(d.key)
            for name in {_norm(n) for n in d.names if n.strip()}:
                self.names[name].append(d.key)
            for name in {_short(n) for n in d.names if _short(n)}:
                self.short[name].append(d.key)

    def resolve(self, src: Key, row: Neighbor) -> Key | None:
        for table, value in ((self.chassis, row.chassis_id), (self.names, row.sys_name)):
            candidates = table.get(value if table is self.chassis else _norm(value)) if value else None
            found = _choose(src, candidates) if candidates else None
            if found is not None:
                return found
        candidates = self.short.get(_short(row.sys_name)) if row.sys_name else None
        return _choose(src, candidates) if candidates else None


def _choose(src: Key, candidates: Iterable[Key]) -> Key | None:
    """The one candidate other than ``src``, preferring those of ``src``'s agent; None if ambiguous."""
    others = sorted(set(candidates) - {src})
    local = [k for k in others if k[0] == src[0]]
    pick = local or others
    return pick[0] if len(pick) == 1 else None


def _reports(devices: Sequence[DeviceFacts]) -> list[_Report]:
    index = _Index(devices)
    seen: dict[tuple[Key, str, Key], _Report] = {}
    for d in devices:
        for row in d.neighbors:
            dst = index.resolve(d.key, row)
            if dst is not None:  # LLDP rows come first: they win over a CDP row of the same port
                seen.setdefault((d.key, row.if_name, dst), _Report(d.key, row.if_name, dst, row.port))
    return list(seen.values())


def join(devices: Sequence[DeviceFacts]) -> list[Link]:
    """The links between known devices, sorted; a link is confirmed when both ends report it."""
    by_pair: dict[tuple[Key, Key], list[_Report]] = defaultdict(list)
    for report in _reports(devices):
        by_pair[(report.src, report.dst)].append(report)
    links: list[Link] = []
    for (a, b), forward in by_pair.items():
        if a > b and (b, a) in by_pair:
            continue  # handled from the other side
        backward = list(by_pair.get((b, a), ()))
        pairs, lone = _pair(forward, backward)
        for x, y in pairs:
            first, second = sorted([End(*x.src, x.src_port), End(*y.src, y.src_port)],
                                   key=lambda e: (e.agent, e.device, e.if_name))
            links.append(Link(first, second, True))
        links.extend(Link(End(*r.src, r.src_port), End(*r.dst, r.dst_port), False) for r in lone)
    return sorted(links, key=lambda link: (link.local.agent, link.local.device, link.local.if_name,
                                           link.remote.agent, link.remote.device, link.remote.if_name))


def _pair(forward: list[_Report], backward: list[_Report]
          ) -> tuple[list[tuple[_Report, _Report]], list[_Report]]:
    """Reports of a->b matched with reports of b->a: each names the other's port; then, when exactly
    one report is left on each side, those two (the ends name their ports differently: CDP and LLDP)."""
    pairs: list[tuple[_Report, _Report]] = []
    left_f, left_b = list(forward), list(backward)
    for x in forward:
        match = next((y for y in left_b if y.src_port == x.dst_port or y.dst_port == x.src_port), None)
        if match is not None:
            pairs.append((x, match))
            left_f.remove(x)
            left_b.remove(match)
    if len(left_f) == 1 and len(left_b) == 1:
        pairs.append((left_f[0], left_b[0]))
        left_f, left_b = [], []
    return pairs, left_f + left_b


def upstreams(links: Iterable[Link]) -> dict[Key, str]:
    """Per office (links whose ends share the agent): each device's neighbour towards the root, the
    device with the most neighbours (ties: the first name), on a breadth-first shortest path."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for link in links:
        a, b = link.local, link.remote
        if a.agent == b.agent and a.device != b.device:
            graph[a.agent][a.device].add(b.device)
            graph[a.agent][b.device].add(a.device)
    parent: dict[Key, str] = {}
    for agent, adjacency in graph.items():
        placed: set[str] = set()
        for root in sorted(adjacency, key=lambda d: (-len(adjacency[d]), d)):
            if root in placed:
                continue
            placed.add(root)
            queue = deque([root])
            while queue:
                here = queue.popleft()
                for nxt in sorted(adjacency[here]):
                    if nxt not in placed:
                        placed.add(nxt)
                        parent[(agent, nxt)] = here
                        queue.append(nxt)
    return parent


# --- reading the store's exposition lines ------------------------------------------------------------


def _labels(line: bytes) -> dict[str, str]:
    """The labels of a sample line; without a backslash no value holds a quote, so splitting is exact."""
    inner = line[line.find(b"{") + 1:line.rfind(b"}")]
    if b"\\" not in inner and inner.endswith(b'"'):
        pairs = (part.partition(b'="') for part in inner[:-1].split(b'",'))
        return {name.decode("ascii"): value.decode("utf-8", "replace") for name, _, value in pairs}
    out: dict[str, str] = {}
    for name, raw in _LABEL.findall(inner):
        text = raw.decode("utf-8", "replace")
        if "\\" in text:
            text = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)
        out[name.decode("ascii")] = text
    return out


def _rows(block: bytes | None) -> Iterator[dict[str, str]]:
    if block:
        for line in block.splitlines():
            yield _labels(line)


def device_facts(agent: str, device: str, site: Labels, blocks: Mapping[str, bytes]) -> DeviceFacts:
    """A device's identity and neighbours from its exposition blocks (metric name -> lines)."""
    chassis = {r.get("chassis_id", "") for r in _rows(blocks.get("hatang_lldp_local_info"))}
    names = {r.get("sys_name", "") for r in _rows(blocks.get("hatang_lldp_local_info"))}
    names |= {r.get("sys_name", "") for r in _rows(blocks.get("hatang_device_info"))}
    names |= {r.get("device_id", "") for r in _rows(blocks.get("hatang_cdp_local_info"))}
    rows = [Neighbor(r.get("if_name", ""), r.get("remote_chassis_id", ""), r.get("remote_sys_name", ""),
                     r.get("remote_port_id", "")) for r in _rows(blocks.get("hatang_lldp_neighbor_info"))]
    rows += [Neighbor(r.get("if_name", ""), "", r.get("remote_device_id", ""), r.get("remote_port", ""))
             for r in _rows(blocks.get("hatang_cdp_neighbor_info"))]
    return DeviceFacts(agent, device, site, frozenset(chassis - {""}), frozenset(names - {""}), tuple(rows))


def _without_stamp(block: bytes | None) -> bytes | None:
    """A block with its lines' timestamp taken out: all lines of one poll carry the same one (the poll
    time, after the value), so a block whose series did not change from the last poll compares equal."""
    if not block:
        return block
    end = len(block) - 1  # the final newline
    stamp = block[block.rfind(b" ", 0, end):end + 1]  # b" 1700000000000\n"
    return block.replace(stamp, b"\n")


class FactsCache:
    """Parsed facts per device, and the rendered topology, kept while they stay the same.

    A device's facts are parsed again only when its neighbour or identity series change (not when a new
    poll repeats them with a new timestamp), and the topology is joined again only when some device's
    facts changed or the set of fresh devices did."""

    def __init__(self) -> None:
        self._kept: dict[Key, tuple[tuple[bytes | None, ...], tuple[bytes | None, ...], DeviceFacts]] = {}
        self._rendered: tuple[tuple[DeviceFacts, ...], list[str]] | None = None

    def facts(self, agent: str, device: str, site: Labels, blocks: Mapping[str, bytes]) -> DeviceFacts:
        sources = tuple(blocks.get(name) for name in (*NEIGHBOR_FAMILIES, *IDENTITY_FAMILIES))
        kept = self._kept.get((agent, device))
        if kept is not None and kept[2].site == site:
            if all(a is b for a, b in zip(kept[0], sources, strict=True)):
                return kept[2]
            plain = tuple(map(_without_stamp, sources))
            if plain == kept[1]:
                self._kept[(agent, device)] = (sources, plain, kept[2])
                return kept[2]
        else:
            plain = tuple(map(_without_stamp, sources))
        made = device_facts(agent, device, site, blocks)
        self._kept[(agent, device)] = (sources, plain, made)
        return made

    def keep_only(self, keys: set[Key]) -> None:
        for key in [k for k in self._kept if k not in keys]:
            del self._kept[key]
        if not keys:
            self._rendered = None

    def lines(self, facts: Sequence[DeviceFacts]) -> list[str]:
        """:func:`render_facts` of these facts, reused while they are the very same objects."""
        last = self._rendered
        if last is None or len(last[0]) != len(facts) or any(a is not b for a, b in zip(last[0], facts,
                                                                                         strict=True)):
            last = self._rendered = (tuple(facts), list(render_facts(facts)))
        return last[1]


# --- exposition --------------------------------------------------------------------------------------


def _remote_site(site: Labels) -> list[tuple[str, str]]:
    return [(f"remote_{name}", value) for name, value in site]


def render_facts(devices: Sequence[DeviceFacts]) -> Iterator[str]:
    """``hatang_link_info`` and ``hatang_device_upstream_info`` lines (with headers) of these devices."""
    links = join(devices)
    if not links:
        return
    sites = {d.key: d.site for d in devices}
    yield header(LINK_METRIC, "gauge", "A link between two known devices, value 1, from their LLDP/CDP "
                 "neighbour tables; confirmed=\"true\" when both ends report it (docs/topology.md).")
    for link in links:
        a, b = link.local, link.remote
        labels = sorted([("agent", a.agent), ("device", a.device), ("if_name", a.if_name),
                         ("remote_agent", b.agent), ("remote_device", b.device),
                         ("remote_if_name", b.if_name), ("confirmed", "true" if link.confirmed else "false"),
                         *sites.get((a.agent, a.device), ()),
                         *_remote_site(sites.get((b.agent, b.device), ()))])
        yield f"{LINK_METRIC}{format_labels(labels)} 1\n"
    ups = upstreams(links)
    if ups:
        yield header(UPSTREAM_METRIC, "gauge", "The device's neighbour towards the root of its office's "
                     "topology, value 1 (docs/topology.md): alerts behind a device that is down are held.")
        for (agent, device), upstream in sorted(ups.items()):
            labels = sorted([("agent", agent), ("device", device), ("upstream_device", upstream),
                             *sites.get((agent, device), ())])
            yield f"{UPSTREAM_METRIC}{format_labels(labels)} 1\n"


def render(devices: Iterable[DeviceView], cache: FactsCache) -> Iterator[str]:
    """The topology series of these (fresh) devices; nothing when none of them reports a neighbour."""
    polled = [d for d in devices if d.kind == "device" and not d.is_self]
    if not any(name in d.blocks for d in polled for name in NEIGHBOR_FAMILIES):
        cache.keep_only(set())
        return
    facts = [cache.facts(d.agent, d.device, d.site, d.blocks) for d in polled]
    cache.keep_only({f.key for f in facts})
    yield from cache.lines(facts)

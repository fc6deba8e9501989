"""The cost of the topology (collector/topology.py) in a /metrics scrape.

A store of 100 offices x 4 switches, each switch polled with ``interfaces`` (48 ports, 961 series:
benchmarks/_workload.py) plus ``system``'s hatang_device_info and the ``neighbors`` series: its own LLDP
identity and one LLDP neighbour per port (48 rows). In each office the core switch (sw-0) sees the three
access switches on its ports 1-3 and each access switch sees the core on port 48 (3 confirmed links per
office); every other port sees an unknown neighbour (a phone, an access point). So 19,200 neighbour
rows, 300 links. Filled through the real ingest path.

Timed, median of 5 each: the whole /metrics rendering (``exposition.render_bytes``) beside that of the
same store without neighbour series; the topology alone when nothing was polled since the last scrape,
when every device was polled again with the same neighbours (the usual case: new timestamps only), and
when every device's neighbours changed (every block parsed, the join redone: the worst case).

    python -m benchmarks.topology
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable

from benchmarks._workload import PORTS, switch_batch
from collector import exposition, topology
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from wire.codec import Limits, encode_batch
from wire.messages import Family, Sample

OFFICES, SWITCHES = 100, 4


def _chassis(office: int, switch: int) -> str:
    return f"00:1a:{office >> 8:02x}:{office & 255:02x}:00:{switch:02x}"


def neighbor_families(office: int, switch: int) -> list[Family]:
    name = f"sw-{switch}"
    rows = []
    for port in range(1, PORTS + 1):
        if switch == 0 and port <= SWITCHES - 1:
            remote, remote_port = (_chassis(office, port), f"sw-{port}"), f"Gi0/{PORTS}"
        elif switch > 0 and port == PORTS:
            remote, remote_port = (_chassis(office, 0), "sw-0"), f"Gi0/{switch}"
        else:
            phone = f"00:50:56:{office & 255:02x}:{switch:02x}:{port:02x}"
            remote, remote_port = (phone, f"SEP{port:04d}"), "1"
        rows.append(Sample((("if_name", f"Gi0/{port}"), ("lldp_index", f"0.{port}.1"),
                            ("local_port_desc", f"GigabitEthernet0/{port}"), ("remote_chassis_id", remote[0]),
                            ("remote_chassis_id_subtype", "macAddress"), ("remote_port_desc", ""),
                            ("remote_port_id", remote_port), ("remote_port_id_subtype", "interfaceName"),
                            ("remote_sys_name", remote[1])), 1))
    return [
        Family("hatang_device_info", "gauge", "identity", (Sample((("sys_name", name),), 1),)),
        Family("hatang_lldp_local_info", "gauge", "LLDP identity",
               (Sample((("chassis_id", _chassis(office, switch)), ("sys_name", name)), 1),)),
        Family("hatang_lldp_neighbor_info", "gauge", "LLDP neighbours", tuple(rows)),
    ]


def filled_store(with_neighbors: bool, poll: int = 0) -> Store:
    now = time.time()
    store = Store(CollectorMetrics(), Limits(), stale_after_intervals=1e9, live_grace=1e9,
                  max_series_per_agent=10**9)
    fill(store, with_neighbors, now, poll)
    for agent in store.agents.values():
        agent.online = True
    return store


def fill(store: Store, with_neighbors: bool, now: float, poll: int) -> None:
    for office in range(OFFICES):
        agent = f"xa-{office:03d}"
        for switch in range(SWITCHES):
            device = f"sw-{switch}"
            batch = switch_batch(agent, device, 1 + switch + poll * SWITCHES, now - 1, poll)
            if with_neighbors:
                batch = dataclasses.replace(batch, families=(*batch.families,
                                                             *neighbor_families(office, switch)))
            topic = f"hatang/v1/agents/{agent}/data/{device}"
            assert store.ingest(topic, encode_batch(batch)) == "accepted"


def timed(fn: Callable[[], object], rounds: int = 5, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(rounds):
        if before is not None:
            before()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    plain, store = filled_store(False), filled_store(True)
    now = time.time()
    devices = [d for d in store.devices.values() if not d.is_self]
    body = exposition.render_bytes(store, now)
    link_lines = [line for line in body.splitlines() if line.startswith(b"hatang_link_info{")]
    links = len(link_lines)
    confirmed = sum(b'confirmed="true"' in line for line in link_lines)
    assert links == confirmed == OFFICES * (SWITCHES - 1), (links, confirmed)
    rows = sum(d.blocks.get("hatang_lldp_neighbor_info", b"").count(b"\n") for d in devices)

    render_plain = timed(lambda: exposition.render_bytes(plain, now))
    render_full = timed(lambda: exposition.render_bytes(store, now))
    cache = topology.FactsCache()
    list(topology.render(devices, cache))
    topo_same = timed(lambda: list(topology.render(devices, cache)))
    # every device polled again since the last scrape, its neighbours unchanged (new timestamps only)
    polled_again = filled_store(True, poll=1)
    again = [d for d in polled_again.devices.values() if not d.is_self]
    flip = [devices, again]
    topo_new_polls = timed(lambda: list(topology.render(flip[0], cache)),
                           before=lambda: flip.reverse())
    cold = topology.FactsCache()
    topo_cold = timed(lambda: list(topology.render(devices, cold)), before=lambda: cold.keep_only(set()))
    facts = [topology.device_facts(d.agent, d.device, d.site, d.blocks) for d in devices]
    join_only = timed(lambda: list(topology.render_facts(facts)))

    print(f"store: {OFFICES} offices x {SWITCHES} switches x {PORTS} ports; {rows:,} LLDP neighbour rows; "
          f"{links} links ({confirmed} confirmed); /metrics {len(body) / 1e6:.1f} MB")
    for label, seconds in [
        ("/metrics without neighbour series", render_plain),
        ("/metrics with neighbour series and topology (steady state)", render_full),
        ("topology alone: nothing polled since the last scrape", topo_same),
        ("topology alone: every device polled since, neighbours unchanged", topo_new_polls),
        ("topology alone: every device's neighbours changed (parse + join)", topo_cold),
        ("  of which join + upstreams + lines (parsed facts given)", join_only),
    ]:
        print(f"  {label:<68} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()

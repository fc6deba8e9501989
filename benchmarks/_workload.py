"""Realistic poll batches for the collector benchmarks: access switches of commune offices.

One batch is one poll of one 48-port switch with the ``interfaces`` profile: 20 metric families x 48
interfaces = 960 samples, each labelled like the agent labels them (if_index, if_name, if_alias in
Vietnamese, if_descr, if_type), plus sysUpTime. Values change from poll to poll like real counters.
"""

from __future__ import annotations

from wire.codec import encode_batch
from wire.messages import Family, PollBatch, Sample

PORTS = 48
COUNTERS = [
    "hatang_interface_in_bytes_total", "hatang_interface_out_bytes_total",
    "hatang_interface_in_unicast_packets_total", "hatang_interface_out_unicast_packets_total",
    "hatang_interface_in_multicast_packets_total", "hatang_interface_out_multicast_packets_total",
    "hatang_interface_in_broadcast_packets_total", "hatang_interface_out_broadcast_packets_total",
    "hatang_interface_in_errors_total", "hatang_interface_out_errors_total",
    "hatang_interface_in_discards_total", "hatang_interface_out_discards_total",
]
GAUGES = [
    "hatang_interface_oper_status", "hatang_interface_admin_status", "hatang_interface_speed_bytes",
    "hatang_interface_last_change_seconds", "hatang_interface_mtu_bytes", "hatang_interface_promiscuous",
    "hatang_interface_connector_present", "hatang_interface_out_queue_length",
]


def port_labels(port: int) -> tuple[tuple[str, str], ...]:
    return (("if_alias", f"Phòng một cửa, tầng {port % 4 + 1}"), ("if_descr", f"GigabitEthernet0/{port}"),
            ("if_index", str(port)), ("if_name", f"Gi0/{port}"), ("if_type", "6"))


def switch_batch(agent: str, device: str, seq: int, ts: float, poll: int = 0) -> PollBatch:
    families = []
    for n, name in enumerate(COUNTERS):
        families.append(Family(name, "counter", f"{name} help", tuple(
            Sample(port_labels(p), 1_000_000 * n + 12_345 * p + 1_000 * poll) for p in range(1, PORTS + 1))))
    for n, name in enumerate(GAUGES):
        families.append(Family(name, "gauge", f"{name} help", tuple(
            Sample(port_labels(p), float(n + (p + poll) % 2)) for p in range(1, PORTS + 1))))
    families.append(Family("hatang_system_uptime_seconds", "gauge", "uptime", (Sample((), 86400.0 + poll),)))
    return PollBatch(agent=agent, boot_id="b" * 32, seq=seq, ts=ts, device=device, interval=60.0, up=True,
                     duration=0.05, site=(("province", "Lào Cai"),), families=tuple(families))


def samples_per_batch() -> int:
    return len(COUNTERS + GAUGES) * PORTS + 1


def encoded_polls(agents: int, devices: int, polls: int, ts: float) -> list[tuple[str, bytes]]:
    """(topic, payload) of ``polls`` rounds over agents x devices, in publishing order."""
    out = []
    for poll in range(polls):
        for a in range(agents):
            agent = f"xa-{a:04d}"
            for d in range(devices):
                device = f"sw-{d:02d}"
                batch = switch_batch(agent, device, poll * devices + d + 1, ts + poll, poll)
                out.append((f"hatang/v1/agents/{agent}/data/{device}", encode_batch(batch)))
    return out

"""Traps and link probes turned into queued messages: the glue between agent/snmp/traps.py, agent/probes.py
and the service. Pure apart from the probe run itself."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable

from agent.config import AgentConfig, ProbeConfig
from agent.poller import PollOutcome
from agent.probes import ProbeError, ProbeResult, run_probe
from wire.messages import Family, ProfileError, Sample


def device_addresses(config: AgentConfig) -> dict[str, list[str]]:
    """IP address -> names of the configured devices at that address (host names resolved once)."""
    by_address: dict[str, list[str]] = {}
    for device in config.devices:
        for address in _resolve(device.address):
            by_address.setdefault(address, []).append(device.name)
    return by_address


def _resolve(host: str) -> Iterable[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def probe_families(probe: ProbeConfig, result: ProbeResult) -> tuple[Family, ...]:
    labels = (("method", result.method), ("target", probe.address))
    families = [
        Family("hatang_probe_up", "gauge", "1 if the probe target answered at least one probe of the run.",
               (Sample(labels, 1 if result.up else 0),)),
        Family("hatang_probe_loss_ratio", "gauge", "Share of probes of the run that got no answer (0..1).",
               (Sample(labels, round(result.loss_ratio, 4)),)),
        Family("hatang_probe_sent", "gauge", "Probes sent in the run.", (Sample(labels, result.sent),)),
    ]
    if result.rtt_avg is not None and result.rtt_min is not None and result.rtt_max is not None:
        families.append(Family(
            "hatang_probe_rtt_seconds", "gauge",
            "Round-trip time of the run's answered probes: stat=min|avg|max (ICMP echo or TCP connect).",
            tuple(Sample(tuple(sorted((*labels, ("stat", stat)))), round(value, 6))
                  for stat, value in (("min", result.rtt_min), ("avg", result.rtt_avg),
                                      ("max", result.rtt_max))),
        ))
    return tuple(families)


async def probe_outcome(probe: ProbeConfig) -> PollOutcome:
    """One run of a link probe, as a poll outcome (a probe that cannot run is reported down)."""
    started = time.time()
    try:
        result = await run_probe(probe.address, count=probe.count, interval=probe.spacing,
                                 timeout=probe.timeout, method=probe.method, tcp_port=probe.tcp_port)
    except ProbeError as exc:
        return PollOutcome(started, False, time.time() - started, (ProfileError("probe", str(exc)),), ())
    return PollOutcome(started, result.up, time.time() - started, (), probe_families(probe, result))

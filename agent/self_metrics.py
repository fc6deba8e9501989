"""The agent's own health metrics (published on the ``self`` topic like a poll; docs/metrics.md)."""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING

from wire.messages import Family, Sample
from wire.remote_config import REJECT_REASONS

if TYPE_CHECKING:
    from agent.queue import DiskQueue
    from agent.remote_config import RemoteConfig
    from agent.uplink import Uplink


def one(name: str, mtype: str, help_text: str, value: float) -> Family:
    """A family of one unlabelled sample."""
    return Family(name, "counter" if mtype == "counter" else "gauge", help_text, (Sample((), value),))


def _remote_config_metrics(remote: RemoteConfig | None) -> tuple[Family, ...]:
    """The centre's configuration: the revision applied and the refusals (only with remote_config)."""
    if remote is None:
        return ()
    return (
        Family("hatang_agent_config_revision", "gauge",
               "Revision of the centre's configuration the agent runs (0: its agent.yaml alone).",
               (Sample((), remote.revision),)),
        Family("hatang_agent_config_rejections_total", "counter",
               "Configurations from the centre the agent refused, by reason, since it started.",
               tuple(Sample((("reason", reason),), remote.rejections.get(reason, 0))
                     for reason in REJECT_REASONS)),
    )


def _uplink_metrics(uplink: Uplink) -> tuple[Family, ...]:
    """The uplink's counters."""
    return (
        one("hatang_agent_published_total", "counter",
            "Messages the broker acknowledged, since the agent started.", uplink.published),
        one("hatang_agent_replayed_total", "counter",
            "Backlog messages sent after an outage, since the agent started.", uplink.replayed),
        one("hatang_agent_broker_connected", "gauge", "1 while the agent is connected to the broker.",
            1 if uplink.connected else 0),
        Family("hatang_agent_publish_rejected_total", "counter",
               "Messages the broker refused (MQTT 5 PUBACK reason code >= 0x80), by reason; they stay "
               "queued and are retried. Since the agent started.",
               tuple(Sample((("reason", reason),), count)
                     for reason, count in sorted({"not_authorized": 0, **uplink.rejected}.items()))),
        one("hatang_agent_redelivered_total", "counter",
            "Messages the broker had accepted that were sent again after the connection ended (the "
            "broker may not have saved them), since the agent started.", uplink.redelivered),
    )


def agent_self_metrics(queue: DiskQueue, uplink: Uplink, *, polls: int, failed_polls: int, started: float,
                       remote: RemoteConfig | None) -> tuple[Family, ...]:
    """The queue, the uplink, the polls, the process, and the centre's configuration."""
    now = time.time()
    stats = queue.stats()
    usage = resource.getrusage(resource.RUSAGE_SELF)

    return (
        one("hatang_agent_queue_messages", "gauge", "Messages waiting in the agent's disk queue.",
            stats.depth),
        one("hatang_agent_queue_bytes", "gauge", "Bytes of payload in the agent's disk queue.",
            stats.bytes),
        one("hatang_agent_queue_oldest_age_seconds", "gauge",
            "Age of the oldest queued message (0 when the queue is empty).",
            round(now - stats.oldest, 3) if stats.oldest is not None else 0),
        one("hatang_agent_queue_dropped_total", "counter",
            "Messages dropped by the queue's size or age bound (over the queue's life).", stats.dropped),
        one("hatang_agent_queue_dropped_full_total", "counter",
            "Messages that could not be stored because the buffer's filesystem was full.",
            stats.dropped_full),
        one("hatang_agent_queue_corrupt_files_total", "counter",
            "Corrupt queue files moved aside (the queue started empty).", stats.corrupt_files),
        one("hatang_agent_queue_delivered_kept", "gauge",
            "Messages the broker accepted, kept to be sent again after a broker crash.",
            stats.delivered_kept),
        *_uplink_metrics(uplink),
        one("hatang_agent_polls_total", "counter", "Device polls done, since the agent started.",
            polls),
        one("hatang_agent_failed_polls_total", "counter",
            "Device polls in which the device did not answer, since the agent started.",
            failed_polls),
        one("hatang_agent_start_time_seconds", "gauge", "Unix time the agent process started.",
            round(started, 3)),
        one("hatang_agent_cpu_seconds_total", "counter", "CPU time (user + system) of the agent process.",
            round(usage.ru_utime + usage.ru_stime, 3)),
        one("hatang_agent_max_resident_memory_bytes", "gauge",
            "Peak resident memory of the agent process.", usage.ru_maxrss * 1024),
        *_remote_config_metrics(remote),
    )


"""The collector's own health metrics: the only collector module that imports prometheus_client.

Device data is rendered by :mod:`collector.exposition` from the store; this registry holds what the
collector knows about itself (messages by outcome, rejects by reason, broker connection, process).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import generate_latest

REJECT_REASONS = ("topic", "json", "version", "schema", "too_large", "too_many_samples", "identity")


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self._messages = Counter(
            "hatang_collector_messages", "MQTT messages received, by topic kind.", ["kind"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "hatang_collector_rejected_messages", "Messages rejected, by reason.", ["reason"],
            registry=self.registry,
        )
        for reason in REJECT_REASONS:
            self._rejected.labels(reason)
        self._duplicates = Counter(
            "hatang_collector_duplicate_messages",
            "Poll batches dropped as duplicates of (agent, boot id, sequence) already received.",
            registry=self.registry,
        )
        self._gaps = Counter(
            "hatang_collector_sequence_gaps",
            "Sequence numbers skipped when a batch arrived (may still arrive late, from replay).",
            registry=self.registry,
        )
        self._broker = Gauge(
            "hatang_collector_broker_connected", "1 while the collector is connected to the MQTT broker.",
            registry=self.registry,
        )
        self._render = Histogram(
            "hatang_collector_render_seconds", "Time to render the device part of /metrics.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=self.registry,
        )

    def message(self, kind: str) -> None:
        self._messages.labels(kind).inc()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def duplicate(self) -> None:
        self._duplicates.inc()

    def gap(self, missing: int) -> None:
        self._gaps.inc(missing)

    def broker_connected(self, connected: bool) -> None:
        self._broker.set(1 if connected else 0)

    def rendered(self, seconds: float) -> None:
        self._render.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

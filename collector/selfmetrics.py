"""The collector's own health metrics: the only collector module that imports prometheus_client.

Device data is rendered by :mod:`collector.exposition` from the store; this registry holds what the
collector knows about itself (messages by outcome, rejects by reason, broker connection, process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from collector.remote_write import RemoteWriter

# prometheus_client exposes a `<name>_created` series beside every counter and histogram (their creation
# time), which would double the collector's self-metric series for nothing Prometheus uses. The switch is
# process-wide; set here, on import, before this module (the collector's only user of prometheus_client)
# creates any metric.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped in prometheus-client 0.26)

REJECT_REASONS = ("topic", "json", "version", "schema", "too_large", "too_many_samples", "identity",
                  "unknown_agent", "cardinality", "clock")


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
            "Deprecated (removed in the next release; use hatang_collector_lost_messages_total): sequence "
            "numbers skipped when a batch arrived; most arrive later, from the agent's replay.",
            registry=self.registry,
        )
        self._lost = Counter(
            "hatang_collector_lost_messages",
            "Agent messages that never arrived: passed by the agent's oldest-first replay, or missing for "
            "10 minutes while the agent replayed nothing.",
            registry=self.registry,
        )
        self._broker = Gauge(
            "hatang_collector_broker_connected", "1 while the collector is connected to the MQTT broker.",
            registry=self.registry,
        )
        self._late = Counter(
            "hatang_collector_late_samples",
            "Samples that arrived after their live window (replayed) and went to remote write.",
            registry=self.registry,
        )
        self._unserved = Counter(
            "hatang_collector_unserved_samples",
            "Samples of live polls replaced by a newer poll before any scrape showed them, written by "
            "remote write instead.",
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

    def lost(self, missing: int) -> None:
        self._lost.inc(missing)

    def watch_missing(self, missing: Callable[[], int]) -> None:
        gauge = Gauge("hatang_collector_missing_messages",
                      "Agent messages missing now that may still arrive (gaps the agent's replay has not "
                      "reached yet).", registry=self.registry)
        gauge.set_function(missing)

    def watch_clock(self, offset: Callable[[], float]) -> None:
        gauge = Gauge("hatang_collector_clock_offset_seconds",
                      "The collector's clock minus the time most agents agree on; 0 unless at least two "
                      "agents, more than half, agree it is off by more than the threshold.",
                      registry=self.registry)
        gauge.set_function(offset)

    def late(self, samples: int) -> None:
        self._late.inc(samples)

    def unserved(self, samples: int) -> None:
        self._unserved.inc(samples)

    def watch_incoming(self, pending: Callable[[], int]) -> None:
        gauge = Gauge("hatang_collector_incoming_pending_messages",
                      "MQTT messages received and not yet handled.", registry=self.registry)
        gauge.set_function(pending)

    def watch_unacknowledged(self, unacknowledged: Callable[[], int]) -> None:
        gauge = Gauge("hatang_collector_unacknowledged_messages",
                      "MQTT messages received and not yet acknowledged to the broker (push mode: their "
                      "samples are still on their way to the store).", registry=self.registry)
        gauge.set_function(unacknowledged)

    def watch_remote_write(self, writer: RemoteWriter) -> None:
        self.registry.register(_RemoteWriteCollector(writer))

    def broker_connected(self, connected: bool) -> None:
        self._broker.set(1 if connected else 0)

    def rendered(self, seconds: float) -> None:
        self._render.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RemoteWriteCollector(Collector):
    """Remote-write queue state per endpoint, read at scrape time."""

    def __init__(self, writer: RemoteWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("hatang_collector_remote_write_pending_samples",
                                    "Samples queued for the endpoint.", labels=["url"])
        samples = CounterMetricFamily("hatang_collector_remote_write_samples",
                                      "Samples by outcome: sent, rejected (4xx), dropped (queue full).",
                                      labels=["url", "result"])
        failures = CounterMetricFamily("hatang_collector_remote_write_failures",
                                       "Requests that failed and will be retried.", labels=["url"])
        for q in self._writer.queues:
            pending.add_metric([q.url], q.samples + q.inflight)
            for result, value in (("sent", q.sent), ("rejected", q.rejected), ("dropped", q.dropped)):
                samples.add_metric([q.url, result], value)
            failures.add_metric([q.url], q.failures)
        yield pending
        yield samples
        yield failures

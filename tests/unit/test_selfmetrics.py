"""The collector's own metrics (collector/selfmetrics.py): no ``_created`` series beside its counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from collector.remote_write import RemoteWriter
from collector.selfmetrics import CollectorMetrics


async def _never_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    raise AssertionError("not used")


def test_the_collector_registry_exposes_no_created_series() -> None:
    """prometheus_client adds ``<name>_created`` to every counter and histogram (and every labelled
    child) unless disabled: that would double the collector's self-metric series."""
    metrics = CollectorMetrics()
    metrics.message("data")
    metrics.message("status")
    metrics.rejected("json")
    metrics.duplicate()
    metrics.gap(2)
    metrics.late(5)
    metrics.rendered(0.002)
    metrics.broker_connected(True)
    metrics.watch_incoming(lambda: 3)
    metrics.watch_remote_write(RemoteWriter(["http://127.0.0.1:1/api/v1/write"], _never_post))
    text = metrics.render().decode("utf-8")

    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    created = sorted(name for name in samples if name.endswith("_created"))
    assert not created, f"_created series exposed: {created}"
    assert "_created" not in text
    # the counters and the histogram are there (the scrape is not empty for another reason)
    for name in ("hatang_collector_messages_total", "hatang_collector_duplicate_messages_total",
                 "hatang_collector_sequence_gaps_total", "hatang_collector_late_samples_total",
                 "hatang_collector_render_seconds_count", "hatang_collector_remote_write_samples_total",
                 "hatang_collector_broker_connected", "hatang_collector_incoming_pending_messages"):
        assert name in samples, name
    families = {family.name: family for family in text_string_to_metric_families(text)}
    rejected = {s.labels["reason"]: s.value for s in families["hatang_collector_rejected_messages"].samples}
    assert rejected["json"] == 1 and rejected["schema"] == 0

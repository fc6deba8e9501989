"""``hatang_device_poll_success``: each device poll's outcome as a sample at the poll's own time, served
with a live poll and remote-written with a late one, so availability counts buffered polls
(hatang/availability/definitions.py). Probes and the agent's own metrics have none."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import exposition
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from tests.unit.test_collector_store import AGENT, SITE, T0, FakeClock, batch, status
from wire.codec import Limits, encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.names import RESERVED_METRICS
from wire.topics import data_topic, self_topic

NAME = "hatang_device_poll_success"


def served(store: Store, now: float) -> dict[str, tuple[float, float | None]]:
    """device -> (value, timestamp in s) of every poll-success sample of a rendering."""
    out: dict[str, tuple[float, float | None]] = {}
    for family in text_string_to_metric_families(exposition.render(store, now)):
        for sample in family.samples:
            if sample.name == NAME:
                assert sample.labels["device"] not in out
                stamp = None if sample.timestamp is None else float(sample.timestamp)  # type: ignore[arg-type]
                out[sample.labels["device"]] = (sample.value, stamp)
    return out


def probe_batch(seq: int, ts: float | None = None) -> bytes:
    family = Family("hatang_probe_up", "gauge", "1 if the probe target answered.",
                    (Sample((("method", "tcp"), ("target", "10.0.0.1")), 1),))
    return encode_batch(PollBatch(agent=AGENT, boot_id="b", seq=seq, ts=T0 + seq if ts is None else ts,
                                  device="wan", interval=60, up=True, duration=0.1, site=SITE,
                                  families=(family,), kind="probe"))


def test_live_polls_serve_their_success_at_the_poll_time() -> None:
    clock = FakeClock()
    store = Store(CollectorMetrics(), Limits(), clock=clock)
    store.ingest(f"hatang/v1/agents/{AGENT}/status", status(True))
    store.ingest(data_topic(AGENT, "core-switch"), batch(1, ts=T0 - 5))
    store.ingest(data_topic(AGENT, "dead-ups"), batch(2, device="dead-ups", up=False, families=(), ts=T0 - 4))
    store.ingest(data_topic(AGENT, "wan"), probe_batch(3))
    store.ingest(self_topic(AGENT), batch(4, device="@self", families=(), ts=T0 - 3))
    got = served(store, clock())
    assert got == {"core-switch": (1.0, pytest.approx(T0 - 5)), "dead-ups": (0.0, pytest.approx(T0 - 4))}


def test_late_and_pushed_polls_carry_their_success() -> None:
    for push in (False, True):
        clock = FakeClock()
        written: list[Any] = []
        store = Store(CollectorMetrics(), Limits(), clock=clock, late_sink=written.extend, push=push)
        store.ingest(f"hatang/v1/agents/{AGENT}/status", status(True))
        # an hour old: replayed from the agent's queue after an outage
        assert store.ingest(data_topic(AGENT, "core-switch", replay=True),
                            batch(1, ts=T0 - 3600, up=False, families=())) == "late"
        assert store.ingest(data_topic(AGENT, "wan", replay=True), probe_batch(2, T0 - 3500)) == "late"
        successes = [(dict(s.labels), s.samples) for s in written if dict(s.labels)["__name__"] == NAME]
        assert successes == [({"__name__": NAME, "agent": AGENT, "device": "core-switch", **dict(SITE)},
                              ((0.0, round((T0 - 3600) * 1000)),))], push
        # a probe run queued during the outage: its hatang_probe_up (the link state) is written too
        probes = [s.samples for s in written if dict(s.labels)["__name__"] == "hatang_probe_up"]
        assert probes == [((1.0, round((T0 - 3500) * 1000)),)], push


def test_an_agent_may_not_publish_the_name() -> None:
    assert NAME in RESERVED_METRICS

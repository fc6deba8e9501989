"""Agent clock offsets (collector/clock.py) through the store: nothing is rejected for a wrong clock,
polls are placed at the right time, the offset is exposed and logged once each way."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import exposition, state
from collector.clock import STEP_CONFIRM, Clocks, ClockSource
from collector.remote_write import Series
from collector.selfmetrics import CollectorMetrics
from collector.store import BURST_GUARD, Store
from wire.codec import Limits, encode_batch, encode_status, encode_trap
from wire.messages import AgentStatus, Family, PollBatch, Sample, TrapMessage
from wire.topics import data_topic, events_topic, self_topic, status_topic

T0 = 1_795_550_700.0
HOUR = 3600.0
SITE = (("province", "Vĩnh Phúc"),)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def poll(agent: str, seq: int, ts: float, *, boot: str = "b1", device: str = "sw", value: float = 1.0,
         interval: float = 60.0) -> bytes:
    family = Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), value),))
    return encode_batch(PollBatch(agent=agent, boot_id=boot, seq=seq, ts=ts, device=device,
                                  interval=interval, up=True, duration=0.05, site=SITE, families=(family,)))


def birth(agent: str, ts: float, boot: str = "b1") -> bytes:
    return encode_status(AgentStatus(agent, boot, True, ts, "0.1.0", SITE, ("sw",)))


def _stamp(timestamp: object) -> float | None:
    return None if timestamp is None else float(timestamp)  # type: ignore[arg-type]


class Rig:
    def __init__(self, **kwargs: object) -> None:
        self.clock = FakeClock()
        self.written: list[Series] = []  # the polls' own series written late
        self.successes: list[Series] = []  # hatang_device_poll_success written with them
        self.store = Store(CollectorMetrics(), Limits(), clock=self.clock, late_sink=self._sink,
                           **kwargs)  # type: ignore[arg-type]

    def _sink(self, series: list[Series]) -> None:
        for one in series:
            poll_success = dict(one.labels)["__name__"] == "hatang_device_poll_success"
            (self.successes if poll_success else self.written).append(one)

    def ingest(self, topic: str, payload: bytes, retained: bool = False) -> str:
        return self.store.ingest(topic, payload, retained)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float | None]]:
        text = exposition.render(self.store, self.clock()) + self.store.metrics.render().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): (s.value, _stamp(s.timestamp))
                for f in text_string_to_metric_families(text) for s in f.samples}

    def served(self, agent: str, device: str = "sw") -> tuple[float, float | None] | None:
        key = ("hatang_device_uptime_seconds", tuple(sorted((("agent", agent), ("device", device), *SITE))))
        return self.scrape().get(key)

    def offset(self, agent: str) -> float | None:
        labels = tuple(sorted((("agent", agent), *SITE)))
        hit = self.scrape().get(("hatang_agent_clock_offset_seconds", labels))
        return hit[0] if hit else None

    def metric(self, name: str) -> float:
        return sum(v for (n, _), (v, _) in self.scrape().items() if n == name)

    def written_times(self) -> list[float]:
        return [ts / 1000 for s in self.written for _, ts in s.samples]


def test_an_agent_an_hour_behind_is_served_live_at_the_right_time(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO, "hatang.collector.clock")
    rig.clock.now = T0 + 0.2  # the birth left the agent 0.2 s ago
    assert rig.ingest(status_topic("a"), birth("a", T0 - HOUR)) == "accepted"
    for i in range(1, 4):
        rig.clock.now = T0 + 60 * i + 0.3
        assert rig.ingest(data_topic("a", "sw"), poll("a", i, T0 - HOUR + 60 * i, value=i)) == "accepted"
        served = rig.served("a")
        assert served is not None and served[0] == i
        assert served[1] == pytest.approx(T0 + 60 * i, abs=0.5)  # the poll's real time, not an hour ago
    assert rig.written == []  # nothing went to remote write as "late"
    assert rig.offset("a") == pytest.approx(-HOUR, abs=0.5)
    assert rig.metric("hatang_collector_rejected_messages_total") == 0
    assert rig.metric("hatang_collector_late_samples_total") == 0
    device_up = rig.scrape()[("hatang_device_up", (("agent", "a"), ("device", "sw"), *SITE))]
    assert device_up[0] == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "3600 s behind" in warnings[0], warnings


def test_an_agent_an_hour_ahead_is_not_rejected_and_needs_no_birth() -> None:
    rig = Rig()
    for i in range(1, 4):
        rig.clock.now = T0 + 60 * i + 0.5
        assert rig.ingest(data_topic("a", "sw"), poll("a", i, T0 + HOUR + 60 * i, value=i)) == "accepted"
        served = rig.served("a")
        assert served is not None and served[1] == pytest.approx(T0 + 60 * i, abs=1)
    assert rig.offset("a") == pytest.approx(HOUR, abs=1)
    assert rig.metric("hatang_collector_rejected_messages_total") == 0


def test_small_offsets_are_network_delay_and_timestamps_stay_as_sent() -> None:
    rig = Rig()
    rig.clock.now = T0 + 4
    assert rig.ingest(status_topic("a"), birth("a", T0)) == "accepted"
    assert rig.ingest(data_topic("a", "sw"), poll("a", 1, T0 + 3)) == "accepted"
    assert rig.served("a") == (1.0, T0 + 3)
    assert rig.offset("a") == pytest.approx(-1)


def test_a_collector_an_hour_behind_is_outvoted_by_two_agents(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO, "hatang.collector.clock")
    real = T0 + HOUR  # the agents are right; the collector's clock says T0
    rig.clock.now = T0 + 0.1
    assert rig.ingest(status_topic("a"), birth("a", real)) == "accepted"
    assert rig.ingest(status_topic("b"), birth("b", real)) == "accepted"
    rig.clock.now = T0 + 60.2
    assert rig.ingest(data_topic("a", "sw"), poll("a", 1, real + 60)) == "accepted"
    assert rig.ingest(data_topic("b", "sw"), poll("b", 1, real + 60)) == "accepted"
    assert rig.served("a") == (1.0, real + 60)  # the agents' (right) time, not the collector's
    assert rig.served("b") == (1.0, real + 60)
    assert rig.written == []
    assert rig.metric("hatang_collector_clock_offset_seconds") == pytest.approx(-HOUR, abs=0.5)
    assert rig.offset("a") == pytest.approx(HOUR, abs=0.5)  # still: agent clock minus collector clock
    last_seen = rig.scrape()[("hatang_agent_last_seen_timestamp_seconds", (("agent", "a"), *SITE))][0]
    assert last_seen == pytest.approx(real + 60, abs=1)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "collector's clock is -3600 s off" in messages[0], messages


def test_one_agent_never_outvotes_the_collector() -> None:
    rig = Rig()
    rig.clock.now = T0 + 0.1
    rig.ingest(status_topic("a"), birth("a", T0 + HOUR))
    rig.clock.now = T0 + 60.1
    assert rig.ingest(data_topic("a", "sw"), poll("a", 1, T0 + HOUR + 60)) == "accepted"
    served = rig.served("a")
    assert served is not None and served[1] == pytest.approx(T0 + 60, abs=0.5)
    assert rig.metric("hatang_collector_clock_offset_seconds") == 0


def test_a_retained_birth_or_one_delayed_poll_does_not_make_an_agent_look_behind() -> None:
    rig = Rig()
    rig.clock.now = T0
    # the retained birth of an agent that connected two hours ago, delivered at our subscribe
    assert rig.ingest(status_topic("a"), birth("a", T0 - 2 * HOUR), retained=True) == "accepted"
    assert rig.offset("a") is None
    # one live poll that waited 20 minutes somewhere: a delay, not yet a clock
    assert rig.ingest(data_topic("a", "sw"), poll("a", 1, T0 - 1200)) == "late"
    assert rig.offset("a") is None
    rig.clock.now = T0 + 60
    assert rig.ingest(data_topic("a", "sw"), poll("a", 2, T0 + 59.9)) == "accepted"
    assert rig.offset("a") == pytest.approx(-0.1)


def test_queued_messages_after_resuming_a_session_are_no_clock_step() -> None:
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0))
    rig.ingest(data_topic("a", "sw"), poll("a", 1, T0))
    rig.clock.now = T0 + 1800  # the collector was away for half an hour; the broker queued 30 polls
    rig.store.set_connected(True, resumed_session=True)
    for i in range(2, 32):
        rig.ingest(data_topic("a", "sw"), poll("a", i, T0 + 60 * (i - 1)))
        rig.clock.now += 0.1
    assert rig.offset("a") == pytest.approx(0, abs=1)
    assert rig.clock.now - rig.store.connected_at < BURST_GUARD


def test_a_step_back_is_followed_after_self_messages_agree_and_at_once_on_a_birth() -> None:
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0))
    rig.ingest(self_topic("a"), poll("a", 1, T0, device="self"))
    seq = 1
    # the agent's clock is set back an hour without a reconnect; its self messages (every 10 s) show it
    start = rig.clock.now
    while rig.clock.now - start <= STEP_CONFIRM + 10:
        seq += 1
        rig.clock.now += 10
        rig.ingest(self_topic("a"), poll("a", seq, rig.clock.now - HOUR - 0.2, device="self", interval=10))
    assert rig.offset("a") == pytest.approx(-HOUR, abs=1)
    seq += 1
    rig.clock.now += 1
    assert rig.ingest(data_topic("a", "sw"), poll("a", seq, rig.clock.now - HOUR - 0.5)) == "accepted"
    served = rig.served("a")
    assert served is not None and served[1] == pytest.approx(rig.clock.now, abs=1)
    # and forward again, announced by a birth (reconnect): followed at once
    rig.clock.now += 10
    rig.ingest(status_topic("a"), birth("a", rig.clock.now))
    assert rig.offset("a") == pytest.approx(0, abs=1)


def test_old_polls_on_data_never_make_an_agent_look_behind() -> None:
    """Polls on data/ may have waited their interval, and tests (or a backlog) put old ones there: a
    birth-measured clock is not lowered by them, however long they keep coming, and they stay late."""
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0))
    for round_ in range(10):
        rig.clock.now = T0 + 35 * round_  # a pause between rounds, polls stamped 600 s before
        verdict = rig.ingest(data_topic("a", "sw"), poll("a", round_ + 1, T0 - 600 + 30 * round_))
        assert verdict == "late"
    assert rig.offset("a") == pytest.approx(0)
    assert rig.written_times() == [T0 - 600 + 30 * r for r in range(10)]
    # each poll's success travels with it, at the same time
    assert [ts / 1000 for s in rig.successes for _, ts in s.samples] == rig.written_times()


def test_buffered_polls_stamped_before_a_clock_fix_keep_their_old_correction() -> None:
    """An office box an hour behind polls, loses its uplink, NTP fixes its clock during the outage, and
    it replays its backlog: polls made before the fix were stamped an hour behind, later ones right."""
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0 - HOUR))
    for seq in range(1, 4):  # seen live, an hour behind
        rig.clock.now = T0 + 60 * seq
        assert rig.ingest(data_topic("a", "sw"), poll("a", seq, rig.clock.now - HOUR)) == "accepted"
    # outage from T0+180 to T0+900; polls 4..9 before the fix at T0+500, 10..14 after
    stamps = {seq: T0 + 60 * seq - (HOUR if T0 + 60 * seq < T0 + 500 else 0) for seq in range(4, 15)}
    rig.clock.now = T0 + 901
    rig.ingest(status_topic("a"), birth("a", T0 + 901))  # reconnect: the clock is right now
    assert rig.ingest(data_topic("a", "sw"), poll("a", 15, T0 + 900)) == "accepted"  # live first
    before = len(rig.written)  # poll 3, never shown by a scrape and now replaced, was written already
    for seq, ts in stamps.items():  # then the backlog, oldest first
        rig.clock.now += 0.05
        assert rig.ingest(data_topic("a", "sw", replay=True), poll("a", seq, ts, value=seq)) == "late"
    placed = {int(s.samples[0][0]): s.samples[0][1] / 1000 for s in rig.written[before:]}
    assert placed == {seq: pytest.approx(T0 + 60 * seq, abs=1) for seq in range(4, 15)}


def test_replayed_polls_of_an_agent_that_was_ahead_never_land_in_the_future() -> None:
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0 + HOUR))
    rig.ingest(data_topic("a", "sw"), poll("a", 1, T0 + HOUR))
    rig.clock.now = T0 + 600
    rig.ingest(status_topic("a"), birth("a", T0 + 600))  # fixed during an outage
    rig.ingest(data_topic("a", "sw"), poll("a", 12, T0 + 600))
    before = len(rig.written)  # poll 1, never shown by a scrape and now replaced, was written already
    for seq in range(2, 12):
        made = T0 + 50 * seq
        ts = made + HOUR if made < T0 + 300 else made
        assert rig.ingest(data_topic("a", "sw", replay=True), poll("a", seq, ts, value=seq)) == "late"
    placed = {int(s.samples[0][0]): s.samples[0][1] / 1000 for s in rig.written[before:]}
    assert placed == {seq: pytest.approx(T0 + 50 * seq, abs=1) for seq in range(2, 12)}


def test_trap_times_are_corrected_too() -> None:
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0 - HOUR))
    trap = TrapMessage(agent="a", boot_id="b1", seq=1, ts=T0 - HOUR + 1, device="sw", source="192.0.2.1",
                       version="2c", trap_oid="1.3.6.1.6.3.1.1.5.3", trap_name="linkDown")
    rig.clock.now = T0 + 1.1
    assert rig.ingest(events_topic("a"), encode_trap(trap)) == "accepted"
    stamp = [v for (n, _), (v, _) in rig.scrape().items() if n == "hatang_trap_last_timestamp_seconds"]
    assert stamp == [pytest.approx(T0 + 1, abs=0.5)]


def test_self_messages_measure_only_when_newer_than_any_seen() -> None:
    rig = Rig()
    rig.clock.now = T0
    # the first self message of a boot seen may be the oldest of a backlog: no measurement yet
    assert rig.ingest(self_topic("a"), poll("a", 9, T0 - 2000, device="self")) == "late"
    assert rig.offset("a") is None
    assert rig.ingest(self_topic("a"), poll("a", 10, T0 - 0.1, device="self")) == "accepted"
    assert rig.offset("a") == pytest.approx(-0.1)
    # its replayed backlog (lower sequence numbers) after an outage: old, no measurement
    for seq in range(2, 6):
        rig.ingest(self_topic("a"), poll("a", seq, T0 - 3000 + seq, device="self"))
    rig.clock.now = T0 + 120
    rig.ingest(self_topic("a"), poll("a", 7, T0 - 3000, device="self"))
    assert rig.offset("a") == pytest.approx(-0.1)


def test_the_offset_survives_a_collector_restart_in_the_state_file(tmp_path: Path) -> None:
    rig = Rig()
    rig.clock.now = T0
    rig.ingest(status_topic("a"), birth("a", T0 - HOUR))
    state.save(rig.store, tmp_path / "state.json")
    again = Rig()
    again.clock.now = T0 + 10
    assert state.load(again.store, tmp_path / "state.json") == 1
    again.store.set_connected(True, resumed_session=True)  # queued polls come first
    assert again.ingest(data_topic("a", "sw"), poll("a", 1, T0 - HOUR + 5)) == "accepted"
    served = again.served("a")
    assert served is not None and served[1] == pytest.approx(T0 + 5, abs=0.5)


def test_a_restored_offset_is_dropped_when_live_messages_disagree() -> None:
    clocks = Clocks()
    clocks.restore("a", -HOUR)
    clocks.refresh("a")
    assert clocks.correction("a") == -HOUR
    clocks.observe("a", -0.2, T0, ClockSource.BIRTH)
    clocks.refresh("a")
    assert clocks.estimate("a") == pytest.approx(-0.2)
    assert clocks.correction("a") == 0


def test_threshold_hysteresis_logs_each_change_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hatang.collector.clock")
    clocks = Clocks(threshold=10)
    for sample in (11.0, 11.5, 12.0):  # over the threshold: corrected, one line
        clocks.observe("a", sample, T0, ClockSource.LIVE)
        clocks.refresh("a")
    assert clocks.correction("a") == 12
    clocks.observe("a", -6.0, T0 + 100, ClockSource.BIRTH)  # a fresh birth far below: the clock went back
    clocks.refresh("a")
    assert clocks.correction("a") == -6  # 6 s: under the threshold, over half of it: still corrected
    clocks.observe("a", -3.0, T0 + 160, ClockSource.LIVE)
    clocks.refresh("a")
    assert clocks.correction("a") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("agent a: its clock is 11 s ahead")
    assert messages[1].startswith("agent a: its clock agrees again")

"""hatang_collector_lost_messages_total counts real loss only: gaps that the agent's replay fills later
(live first, backlog oldest first after an outage) are no loss; numbers the replay passed, or that stay
missing while the agent replays nothing, are (collector/sequence.py)."""

from __future__ import annotations

import random

from collector.selfmetrics import CollectorMetrics
from collector.sequence import GAP_WINDOW, PASS_GRACE, SequenceTracker
from collector.store import Store
from wire.codec import Limits, encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import data_topic

T0 = 1_795_550_700.0


def replay_after_outage(tracker: SequenceTracker, *, first: int, outage: range, live: list[int],
                        dropped: set[int], now: float) -> int:
    """What an agent sends when its uplink returns: its still-live messages first, then the backlog
    oldest first (minus what its full queue dropped, always the oldest), 20 a second."""
    lost = 0
    for seq in range(1, first):
        lost += tracker.see("a", "b", seq, now).lost
    for seq in live:
        lost += tracker.see("a", "b", seq, now).lost
    for seq in outage:
        if seq in dropped or seq in live:
            continue
        now += 0.05
        lost += tracker.see("a", "b", seq, now).lost
    return lost


def test_an_outage_replayed_in_full_loses_nothing_though_it_opened_gaps() -> None:
    tracker = SequenceTracker()
    lost = replay_after_outage(tracker, first=11, outage=range(11, 500), live=[498, 499], dropped=set(),
                               now=T0)
    # gaps were opened (live first); the loss stays 0, even much later
    lost += tracker.see("a", "b", 500, T0 + 10 * GAP_WINDOW).lost
    assert lost == 0
    assert tracker.missing == 0


def test_what_the_agent_dropped_counts_once_the_replay_passed_it() -> None:
    tracker = SequenceTracker()
    dropped = set(range(11, 41))  # its queue overflowed: the 30 oldest of the outage are gone
    lost = replay_after_outage(tracker, first=11, outage=range(11, 200), live=[199], dropped=dropped, now=T0)
    assert lost == 0  # passed, but within the grace: a reordered message may still come
    assert tracker.missing == 30
    later = T0 + 200 + PASS_GRACE
    assert tracker.see("a", "b", 200, later).lost == 30
    assert tracker.missing == 0
    assert tracker.see("a", "b", 11, later).new  # arriving after all: still accepted, not counted back


def test_a_gap_nobody_fills_counts_after_the_window_while_the_agent_replays_nothing() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "b", 1, T0)
    tracker.see("a", "b", 10, T0)  # 2..9 lost on the way (e.g. a broker queue overflowed)
    assert tracker.missing == 8
    assert tracker.see("a", "b", 11, T0 + GAP_WINDOW - 1).lost == 0
    assert tracker.see("a", "b", 12, T0 + GAP_WINDOW).lost == 8
    assert tracker.missing == 0


def test_a_gap_waits_while_the_agent_is_still_replaying_an_older_boot() -> None:
    tracker = SequenceTracker()
    for seq in range(1, 5):
        tracker.see("a", "old", seq, T0)
    tracker.see("a", "old", 100, T0)  # old boot: 5..99 still in the agent's queue
    tracker.see("a", "new", 1, T0)
    tracker.see("a", "new", 5, T0)  # new boot: 2..4 behind old boot's backlog
    now = T0
    lost = 0
    for seq in range(5, 100):  # the old boot's backlog drains for longer than the window
        now += 10
        lost += tracker.see("a", "old", seq, now).lost
    assert now - T0 > GAP_WINDOW and lost == 0
    for seq in (2, 3, 4):
        lost += tracker.see("a", "new", seq, now).lost
    assert lost == 0 and tracker.missing == 0


def test_a_replay_of_a_newer_boot_passes_every_older_boot() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "old", 1, T0)
    tracker.see("a", "old", 5, T0)  # 2..4 missing
    tracker.see("a", "new", 1, T0 + 1)
    tracker.see("a", "new", 3, T0 + 1)
    assert tracker.see("a", "new", 2, T0 + 2).lost == 0  # new boot's backlog: old boot is done
    assert tracker.see("a", "new", 4, T0 + 2 + PASS_GRACE).lost == 3


def test_random_reordering_within_the_grace_never_counts_as_loss() -> None:
    rng = random.Random(7)
    tracker = SequenceTracker()
    order = list(range(1, 2001))
    for i in range(0, len(order), 20):  # shuffled within windows of 20 messages
        window = order[i:i + 20]
        rng.shuffle(window)
        order[i:i + 20] = window
    lost = sum(tracker.see("a", "b", seq, T0 + i * 0.01).lost for i, seq in enumerate(order))
    lost += tracker.see("a", "b", 2001, T0 + 10 * GAP_WINDOW).lost
    assert lost == 0 and tracker.missing == 0


def test_the_store_exposes_loss_missing_and_the_deprecated_gap_counter() -> None:
    now = [T0]
    store = Store(CollectorMetrics(), Limits(), clock=lambda: now[0])

    def send(seq: int) -> None:
        family = Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), 1.0),))
        store.ingest(data_topic("a", "sw", replay=seq < 50), encode_batch(PollBatch(
            agent="a", boot_id="b", seq=seq, ts=now[0], device="sw", interval=60, up=True, duration=0.1,
            families=(family,))))

    def metric(name: str) -> float:
        for line in store.metrics.render().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(name)

    send(1)
    send(60)  # after an outage: live first
    assert metric("hatang_collector_sequence_gaps_total") == 58
    assert metric("hatang_collector_missing_messages") == 58
    for seq in range(2, 60):
        send(seq)
    assert metric("hatang_collector_lost_messages_total") == 0
    assert metric("hatang_collector_missing_messages") == 0
    assert metric("hatang_collector_sequence_gaps_total") == 58  # the old meaning, kept for a release

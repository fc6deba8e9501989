"""Tests of the collector's store, exposition and sequence tracking, with a fake clock."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import exposition
from collector.selfmetrics import REJECT_REASONS, CollectorMetrics
from collector.sequence import MAX_BOOTS_TRACKED, MAX_GAP, MAX_HOLES_TRACKED, SequenceTracker, Verdict
from collector.store import Store
from wire.codec import Limits, encode_batch, encode_status, encode_trap
from wire.messages import AgentStatus, Family, PollBatch, ProfileError, Sample, TrapMessage
from wire.topics import data_topic, events_topic, status_topic

COUNTER64_MAX = 2**64 - 1
AGENT = "xa-dai-dinh"
BOOT = "6ebf76ee001e404198571c9db1f3b7b6"
SITE = (("commune", "Đại Đình"), ("district", "Tam Đảo"), ("province", "Vĩnh Phúc"))
ALIAS_VI = "Đường truyền số liệu chuyên dùng"
T0 = 1_795_550_700.0

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> Store:
    return Store(CollectorMetrics(), Limits(), stale_after_intervals=3.0, clock=clock)


def interface_family(*rows: tuple[str, str, float]) -> Family:
    samples = tuple(
        Sample((("if_alias", alias), ("if_index", index), ("if_name", f"Gi0/{index}")), value)
        for index, alias, value in rows
    )
    return Family("hatang_interface_in_bytes_total", "counter", "Bytes received on the interface.", samples)


def uptime_family(seconds: float) -> Family:
    return Family("hatang_device_uptime_seconds", "gauge", "Seconds since the SNMP agent started.",
                  (Sample((), seconds),))


def batch(seq: int = 1, *, agent: str = AGENT, device: str = "core-switch", boot: str = BOOT,
          ts: float | None = None, up: bool = True, interval: float = 60.0,
          families: tuple[Family, ...] | None = None, site: tuple[tuple[str, str], ...] = SITE,
          errors: tuple[ProfileError, ...] = ()) -> bytes:
    if families is None:
        families = (uptime_family(1234.56), interface_family(("1", ALIAS_VI, COUNTER64_MAX), ("2", "", 0)))
    return encode_batch(PollBatch(
        agent=agent, boot_id=boot, seq=seq, ts=T0 + seq if ts is None else ts, device=device,
        interval=interval, up=up, duration=0.048, site=site, errors=errors, families=families,
    ))


def status(online: bool, *, agent: str = AGENT, ts: float = T0,
           site: tuple[tuple[str, str], ...] = SITE) -> bytes:
    return encode_status(AgentStatus(agent, BOOT, online, ts, "0.1.0", site, ("core-switch",)))


def render(store: Store) -> str:
    return exposition.render(store, store.clock())


def parse(text: str) -> dict[SeriesKey, float]:
    """Every sample of a text exposition, keyed by (sample name, labels); fails on repeated series."""
    series: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in series, f"series repeated: {key}"
            series[key] = sample.value
    return series


def value(series: dict[SeriesKey, float], name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


def self_metrics(store: Store) -> dict[SeriesKey, float]:
    return parse(store.metrics.render().decode())


def rejected(store: Store, reason: str) -> float:
    return value(self_metrics(store), "hatang_collector_rejected_messages_total", reason=reason)


def device_labels(device: str = "core-switch", agent: str = AGENT) -> dict[str, str]:
    return {"agent": agent, "device": device, **dict(SITE)}


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def sample_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# --- ingest and exposition -------------------------------------------------------------------------


def test_valid_batch_is_exposed_with_agent_device_and_site_labels(store: Store) -> None:
    assert store.ingest(data_topic(AGENT, "core-switch"), batch()) == "accepted"
    series = parse(render(store))
    labels = {**device_labels(), "if_index": "1", "if_alias": ALIAS_VI, "if_name": "Gi0/1"}
    assert value(series, "hatang_interface_in_bytes_total", **labels) == COUNTER64_MAX  # exact, not float
    assert value(series, "hatang_device_uptime_seconds", **device_labels()) == 1234.56
    assert value(series, "hatang_device_up", **device_labels()) == 1
    assert value(series, "hatang_device_last_poll_timestamp_seconds", **device_labels()) == T0 + 1
    assert value(series, "hatang_device_poll_duration_seconds", **device_labels()) == 0.048
    assert value(series, "hatang_device_poll_errors", **device_labels()) == 0
    assert value(series, "hatang_agent_up", agent=AGENT, **dict(SITE)) == 1
    assert value(series, "hatang_agent_last_seen_timestamp_seconds", agent=AGENT, **dict(SITE)) == T0


def test_counter64_max_is_rendered_exactly(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch())
    text = render(store)
    [line] = [line for line in sample_lines(text) if 'if_index="1"' in line]
    # value, then the poll time in milliseconds
    assert line.endswith(f" 18446744073709551615 {round((T0 + 1) * 1000)}")
    assert line.startswith("hatang_interface_in_bytes_total{agent=\"xa-dai-dinh\",device=\"core-switch\",")
    assert f'if_alias="{ALIAS_VI}"' in line


def test_one_help_and_type_per_metric_name_with_two_devices(store: Store) -> None:
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(1)) == "accepted"
    assert store.ingest(data_topic(AGENT, "ups"), batch(2, device="ups")) == "accepted"
    assert store.ingest(data_topic("xa-khac", "core-switch"), batch(1, agent="xa-khac")) == "accepted"
    text = render(store)
    type_lines = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))
    help_lines = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# HELP "))
    assert type_lines == help_lines
    assert set(type_lines.values()) == {1}
    assert "# TYPE hatang_interface_in_bytes_total counter" in text
    series = parse(text)
    for agent, device in [(AGENT, "core-switch"), (AGENT, "ups"), ("xa-khac", "core-switch")]:
        assert value(series, "hatang_device_uptime_seconds", **device_labels(device, agent)) == 1234.56


def test_metric_lines_of_one_name_are_grouped_after_its_header(store: Store) -> None:
    store.ingest(data_topic(AGENT, "a"), batch(1, device="a"))
    store.ingest(data_topic(AGENT, "b"), batch(2, device="b"))
    current = None
    seen: set[str] = set()
    for line in render(store).splitlines():
        if line.startswith("# TYPE "):
            current = line.split()[2]
            assert current not in seen
            seen.add(current)
        elif not line.startswith("#"):
            assert line.split("{")[0].split(" ")[0] == current


def test_whole_scrape_with_self_metrics_parses(store: Store) -> None:
    store.ingest(status_topic(AGENT), status(True))
    store.ingest(data_topic(AGENT, "core-switch"), batch())
    store.ingest(data_topic(AGENT, "core-switch"), b"garbage")
    body = (render(store).encode("utf-8") + store.metrics.render()).decode("utf-8")
    names = {family.name for family in text_string_to_metric_families(body)}
    assert {"hatang_interface_in_bytes", "hatang_device_up", "hatang_collector_rejected_messages"} <= names


def test_new_poll_replaces_the_previous_state_of_the_device(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(1))
    store.ingest(data_topic(AGENT, "core-switch"), batch(2, families=(uptime_family(99.5),),
                                                         errors=(ProfileError("interfaces", "timeout"),)))
    series = parse(render(store))
    assert value(series, "hatang_device_uptime_seconds", **device_labels()) == 99.5
    assert not any(name.startswith("hatang_interface") for name, _ in series)
    assert value(series, "hatang_device_poll_errors", **device_labels()) == 1


def test_device_that_did_not_answer_is_down(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(up=False, families=()))
    series = parse(render(store))
    assert value(series, "hatang_device_up", **device_labels()) == 0
    assert value(series, "hatang_agent_up", agent=AGENT, **dict(SITE)) == 1


def test_replay_topic_is_accepted_and_counted_by_kind(store: Store) -> None:
    assert store.ingest(data_topic(AGENT, "core-switch", replay=True), batch(1)) == "accepted"
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(2)) == "accepted"
    trap = TrapMessage(agent=AGENT, boot_id=BOOT, seq=3, ts=T0, device="core-switch", source="192.0.2.1",
                       version="2c", trap_oid="1.3.6.1.6.3.1.1.5.3", trap_name="linkDown", if_index="2",
                       site=SITE)
    assert store.ingest(events_topic(AGENT), encode_trap(trap)) == "accepted"
    assert store.ingest(events_topic(AGENT), b'{"anything": 1}') == "rejected:version"
    metrics = self_metrics(store)
    assert value(metrics, "hatang_collector_messages_total", kind="replay") == 1
    assert value(metrics, "hatang_collector_messages_total", kind="data") == 1
    assert value(metrics, "hatang_collector_messages_total", kind="events") == 1
    traps = parse(render(store))
    labels = dict((("agent", AGENT), ("device", "core-switch"), *SITE, ("trap", "linkDown")))
    assert value(traps, "hatang_trap_received_total", **labels) == 1
    assert value(traps, "hatang_trap_last_timestamp_seconds", **labels) == T0


# --- duplicates, gaps, stale replays ---------------------------------------------------------------


def test_duplicate_batch_is_dropped_and_counted(store: Store) -> None:
    topic = data_topic(AGENT, "core-switch")
    assert store.ingest(topic, batch(1)) == "accepted"
    assert store.ingest(topic, batch(1)) == "duplicate"
    assert store.ingest(data_topic(AGENT, "core-switch", replay=True), batch(1)) == "duplicate"
    assert value(self_metrics(store), "hatang_collector_duplicate_messages_total") == 2


def test_same_seq_from_a_new_boot_is_not_a_duplicate(store: Store, clock: FakeClock) -> None:
    topic = data_topic(AGENT, "core-switch")
    assert store.ingest(topic, batch(1)) == "accepted"
    clock.now = T0 + 100
    assert store.ingest(topic, batch(1, boot="second-boot", ts=T0 + 100)) == "accepted"
    assert value(self_metrics(store), "hatang_collector_duplicate_messages_total") == 0


def test_sequence_gap_is_counted_and_late_fill_is_accepted(store: Store) -> None:
    topic = data_topic(AGENT, "core-switch")
    assert store.ingest(topic, batch(1)) == "accepted"
    assert store.ingest(topic, batch(5)) == "accepted"
    assert value(self_metrics(store), "hatang_collector_sequence_gaps_total") == 3
    # the missing ones arrive late from the agent's disk queue: not duplicates, but older than the live
    # state, so they are backfilled, not served
    assert store.ingest(data_topic(AGENT, "core-switch", replay=True), batch(3)) == "late"
    assert store.ingest(data_topic(AGENT, "core-switch", replay=True), batch(3)) == "duplicate"
    assert value(self_metrics(store), "hatang_collector_sequence_gaps_total") == 3


def test_older_replayed_batch_does_not_override_newer_live_state(store: Store, clock: FakeClock) -> None:
    clock.now = T0 + 601
    live = batch(7, ts=T0 + 600, families=(uptime_family(600.0),))
    old = batch(6, ts=T0 + 590, families=(uptime_family(590.0),), up=False)  # still within its window
    assert store.ingest(data_topic(AGENT, "core-switch"), live) == "accepted"
    assert store.ingest(data_topic(AGENT, "core-switch", replay=True), old) == "late"
    series = parse(render(store))
    assert value(series, "hatang_device_uptime_seconds", **device_labels()) == 600.0
    assert value(series, "hatang_device_up", **device_labels()) == 1
    assert value(series, "hatang_device_last_poll_timestamp_seconds", **device_labels()) == T0 + 600


def test_newer_replayed_batch_does_update_state(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(1, ts=T0, families=(uptime_family(1.0),)))
    store.ingest(data_topic(AGENT, "core-switch", replay=True), batch(2, ts=T0 + 60,
                                                                     families=(uptime_family(61.0),)))
    assert value(parse(render(store)), "hatang_device_uptime_seconds", **device_labels()) == 61.0


# --- rejects ---------------------------------------------------------------------------------------


def test_payload_claiming_another_agent_is_rejected(store: Store) -> None:
    assert store.ingest(data_topic("xa-khac", "core-switch"), batch(agent=AGENT)) == "rejected:identity"
    assert store.ingest(data_topic(AGENT, "ups"), batch(device="core-switch")) == "rejected:identity"
    assert store.ingest(status_topic("xa-khac"), status(True, agent=AGENT)) == "rejected:identity"
    assert rejected(store, "identity") == 3
    assert store.devices == {}
    assert store.agents == {}


def test_rejected_identity_does_not_consume_the_sequence_number(store: Store) -> None:
    assert store.ingest(data_topic("xa-khac", "core-switch"), batch(1)) == "rejected:identity"
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(1)) == "accepted"


def _doc(**changes: Any) -> bytes:
    doc = json.loads(batch())
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not utf-8", "json"),
        (b'{"v": 1, "type": "poll",', "json"),
        (b"[" * 100_000 + b"]" * 100_000, "json"),
        (_doc(v=2), "version"),
        (_doc(seq=0), "schema"),
        (_doc(ts=True), "schema"),
        (_doc(metrics=[{"name": "m", "type": "gauge", "samples": [{"labels": {"agent": "x"}, "value": 1}]}]),
         "schema"),
        (batch().replace(b'1234.56', b'NaN'), "schema"),
        (b" " * ((4 << 20) + 1), "too_large"),
        (_doc(metrics=[{"name": "m", "type": "gauge", "samples": [{"value": 1}] * 200_001}]),
         "too_many_samples"),
    ],
    ids=["invalid-utf8", "truncated", "deep-nesting", "version", "seq", "bool-ts", "reserved-label", "nan",
         "too-large", "too-many-samples"],
)
def test_malformed_payloads_are_rejected_by_reason_and_counted(
    store: Store, payload: bytes, reason: str
) -> None:
    assert store.ingest(data_topic(AGENT, "core-switch"), payload) == f"rejected:{reason}"
    metrics = self_metrics(store)
    assert value(metrics, "hatang_collector_rejected_messages_total", reason=reason) == 1
    for other in REJECT_REASONS:
        if other != reason:
            assert value(metrics, "hatang_collector_rejected_messages_total", reason=other) == 0
    assert store.devices == {}


def test_limits_from_config_apply(clock: FakeClock) -> None:
    small = Store(CollectorMetrics(), Limits(max_payload_bytes=1024, max_samples=1), clock=clock)
    assert small.ingest(data_topic(AGENT, "core-switch"), batch()) == "rejected:too_many_samples"
    big = batch(families=(uptime_family(1.0),), errors=(ProfileError("x", "e" * 1000),))
    assert small.ingest(data_topic(AGENT, "core-switch"), big) == "rejected:too_large"


@pytest.mark.parametrize("topic", ["hatang/v2/agents/xa/status", "hatang/v1/agents/XA/status",
                                   "hatang/v1/agents/xa/data", "other/topic", "hatang/v1/agents/xa/foo"])
def test_messages_on_foreign_topics_are_rejected(store: Store, topic: str) -> None:
    assert store.ingest(topic, batch()) == "rejected:topic"
    assert rejected(store, "topic") == 1


def test_rejects_are_logged_once_per_reason_per_minute_but_all_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        store.ingest(data_topic(AGENT, "core-switch"), b"garbage")
    store.ingest(data_topic(AGENT, "ups"), b"garbage")  # another topic, same reason: not logged again
    store.ingest(data_topic(AGENT, "ups"), b'{"v": 2}')  # another reason: logged
    warnings = [r for r in caplog.records if r.name == "hatang.collector.store"]
    assert len(warnings) == 2
    assert rejected(store, "json") == 6


# --- agent status ----------------------------------------------------------------------------------


def test_status_sets_agent_up_online_and_offline(store: Store, clock: FakeClock) -> None:
    assert store.ingest(status_topic(AGENT), status(True)) == "accepted"
    series = parse(render(store))
    assert value(series, "hatang_agent_up", agent=AGENT, **dict(SITE)) == 1
    assert value(series, "hatang_agent_last_seen_timestamp_seconds", agent=AGENT, **dict(SITE)) == T0

    clock.now += 30
    assert store.ingest(status_topic(AGENT), status(False, ts=T0 + 29)) == "accepted"
    series = parse(render(store))
    assert value(series, "hatang_agent_up", agent=AGENT, **dict(SITE)) == 0
    assert value(self_metrics(store), "hatang_collector_messages_total", kind="status") == 2


def test_old_retained_offline_status_keeps_its_own_time(store: Store) -> None:
    assert store.ingest(status_topic(AGENT), status(False, ts=T0 - 86400)) == "accepted"
    series = parse(render(store))
    assert value(series, "hatang_agent_up", agent=AGENT, **dict(SITE)) == 0
    assert value(series, "hatang_agent_last_seen_timestamp_seconds", agent=AGENT, **dict(SITE)) == T0 - 86400


def test_empty_retained_status_clears_nothing(store: Store) -> None:
    store.ingest(status_topic(AGENT), status(True))
    assert store.ingest(status_topic(AGENT), b"") == "accepted"
    assert store.agents[AGENT].online is True


def test_malformed_status_is_rejected(store: Store) -> None:
    assert store.ingest(status_topic(AGENT), b'{"v":1,"type":"status"}') == "rejected:schema"
    assert store.ingest(status_topic(AGENT), batch()) == "rejected:schema"
    assert rejected(store, "schema") == 2
    assert store.agents == {}


# --- staleness -------------------------------------------------------------------------------------


def test_device_series_disappear_after_stale_intervals_but_device_up_stays(
    store: Store, clock: FakeClock
) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(interval=60.0))
    clock.now += 3 * 60.0  # exactly stale_after_intervals * interval: still fresh
    series = parse(render(store))
    assert value(series, "hatang_device_up", **device_labels()) == 1
    assert ("hatang_device_uptime_seconds", frozenset(device_labels().items())) in series

    clock.now += 0.001
    text = render(store)
    series = parse(text)
    assert not any(name.startswith(("hatang_interface", "hatang_device_uptime")) for name, _ in series)
    assert "hatang_interface_in_bytes_total" not in text
    assert value(series, "hatang_device_up", **device_labels()) == 0
    assert value(series, "hatang_device_last_poll_timestamp_seconds", **device_labels()) == T0 + 1


def test_stale_device_comes_back_with_new_data(store: Store, clock: FakeClock) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(1, interval=10.0))
    clock.now += 3600
    assert value(parse(render(store)), "hatang_device_up", **device_labels()) == 0
    store.ingest(data_topic(AGENT, "core-switch"), batch(2, ts=T0 + 3600, interval=10.0))
    series = parse(render(store))
    assert value(series, "hatang_device_up", **device_labels()) == 1
    assert value(series, "hatang_device_uptime_seconds", **device_labels()) == 1234.56


def test_staleness_is_per_device_interval(store: Store, clock: FakeClock) -> None:
    store.ingest(data_topic(AGENT, "fast"), batch(1, device="fast", interval=10.0))
    store.ingest(data_topic(AGENT, "slow"), batch(2, device="slow", interval=300.0))
    clock.now += 100
    series = parse(render(store))
    assert value(series, "hatang_device_up", **device_labels("fast")) == 0
    assert value(series, "hatang_device_up", **device_labels("slow")) == 1
    assert ("hatang_device_uptime_seconds", frozenset(device_labels("fast").items())) not in series
    assert ("hatang_device_uptime_seconds", frozenset(device_labels("slow").items())) in series


# --- escaping and validity -------------------------------------------------------------------------


def test_label_values_with_quote_backslash_and_newline_are_escaped(store: Store) -> None:
    nasty = 'Uplink "A"\\B\nline 2'
    store.ingest(data_topic(AGENT, "core-switch"), batch(families=(interface_family(("1", nasty, 7)),)))
    text = render(store)
    assert 'if_alias="Uplink \\"A\\"\\\\B\\nline 2"' in text
    series = parse(text)
    labels = {**device_labels(), "if_index": "1", "if_alias": nasty, "if_name": "Gi0/1"}
    assert value(series, "hatang_interface_in_bytes_total", **labels) == 7


def test_help_text_with_backslash_and_newline_is_escaped(store: Store) -> None:
    family = Family("hatang_x", "gauge", "first line\nsecond \\ line", (Sample((), 1),))
    store.ingest(data_topic(AGENT, "core-switch"), batch(families=(family,)))
    text = render(store)
    assert "# HELP hatang_x first line\\nsecond \\\\ line\n" in text
    [parsed] = [f for f in text_string_to_metric_families(text) if f.name == "hatang_x"]
    assert parsed.documentation == "first line\nsecond \\ line"


def test_site_labels_with_escapes_are_rendered_validly(store: Store) -> None:
    site = (("province", 'Tỉnh "A"\\'),)
    store.ingest(status_topic(AGENT), status(True, site=site))
    store.ingest(data_topic(AGENT, "core-switch"), batch(site=site))
    series = parse(render(store))
    assert value(series, "hatang_agent_up", agent=AGENT, province='Tỉnh "A"\\') == 1
    assert value(series, "hatang_device_up", agent=AGENT, device="core-switch", province='Tỉnh "A"\\') == 1


def test_values_render_exactly(store: Store) -> None:
    numbers = [0, -1, 0.1, 1e-9, 2**53 + 1, COUNTER64_MAX, 1e300]
    samples = tuple(Sample((("k", str(i)),), v) for i, v in enumerate(numbers))
    family = Family("hatang_values", "gauge", "", samples)
    store.ingest(data_topic(AGENT, "core-switch"), batch(families=(family,)))
    lines = {line.split('k="')[1].split('"')[0]: line.rsplit(" ", 2)[1]
             for line in sample_lines(render(store)) if line.startswith("hatang_values")}
    assert lines == {"0": "0", "1": "-1", "2": "0.1", "3": "1e-09", "4": "9007199254740993",
                     "5": "18446744073709551615", "6": "1e+300"}
    series = parse(render(store))
    assert [value(series, "hatang_values", k=str(i), **device_labels()) for i in range(len(numbers))] == (
        numbers)
    exact = value(series, "hatang_values", k="5", **device_labels())
    assert exact == COUNTER64_MAX
    assert isinstance(exact, int)


def test_rendered_series_never_repeat_a_label_name(store: Store) -> None:
    # 'site' is sent by the agent; a site label named like a collector label must not produce
    # {agent="xa-dai-dinh",...,agent="..."} (Prometheus rejects the whole scrape for that).
    site = (("agent", "mạo-danh"), ("device", "x"), ("province", "Vĩnh Phúc"))
    result = store.ingest(data_topic(AGENT, "core-switch"), batch(site=site))
    assert result in ("accepted", "rejected:schema")
    for line in sample_lines(render(store)):
        names = _LABEL.findall(line.split(" ")[0] if "{" not in line else line[: line.rindex("}") + 1])
        assert len(names) == len(set(names)), line


def test_agent_metric_named_like_a_collector_series_does_not_duplicate_it(store: Store) -> None:
    # a user profile may define any metric name; one that clashes with the collector's own liveness
    # series must not produce a second '# TYPE hatang_device_up' block.
    # The batch is rejected as a whole (the agent's profile loader refuses such names too).
    clash = Family("hatang_device_up", "gauge", "from a user profile", (Sample((), 1),))
    outcome = store.ingest(data_topic(AGENT, "core-switch"), batch(up=False, families=(clash,)))
    assert outcome == "rejected:schema"
    store.ingest(data_topic(AGENT, "core-switch"), batch(seq=2, up=False))
    text = render(store)
    type_lines = Counter(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))
    assert type_lines["hatang_device_up"] == 1
    series = parse(text)  # also fails on a repeated series
    assert [v for (name, labels), v in series.items() if name == "hatang_device_up"
            and ("device", "core-switch") in labels] == [0]


def test_lone_surrogate_in_a_label_cannot_break_the_scrape(store: Store) -> None:
    payload = batch(families=(interface_family(("1", "PLACEHOLDER", 1)),)).replace(b"PLACEHOLDER", b"\\ud800")
    store.ingest(data_topic(AGENT, "core-switch"), payload)
    render(store).encode("utf-8")  # what collector.http does for every scrape


# --- SequenceTracker -------------------------------------------------------------------------------


def test_sequence_in_order_is_new_without_gaps() -> None:
    tracker = SequenceTracker()
    assert [tracker.see("a", "b1", seq) for seq in range(1, 6)] == [Verdict(True, 0)] * 5


def test_sequence_repeat_is_a_duplicate() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "b1", 1)
    tracker.see("a", "b1", 2)
    assert tracker.see("a", "b1", 2) == Verdict(False, 0)
    assert tracker.see("a", "b1", 1) == Verdict(False, 0)
    assert tracker.see("a", "b1", 3) == Verdict(True, 0)


def test_sequence_gap_then_late_fill() -> None:
    tracker = SequenceTracker()
    assert tracker.see("a", "b1", 1) == Verdict(True, 0)
    assert tracker.see("a", "b1", 5) == Verdict(True, 3)
    assert tracker.see("a", "b1", 3) == Verdict(True, 0)
    assert tracker.see("a", "b1", 3) == Verdict(False, 0)
    assert tracker.see("a", "b1", 2) == Verdict(True, 0)
    assert tracker.see("a", "b1", 4) == Verdict(True, 0)
    assert tracker.see("a", "b1", 4) == Verdict(False, 0)
    assert tracker.see("a", "b1", 6) == Verdict(True, 0)


def test_first_seq_seen_of_a_boot_is_no_gap_but_earlier_ones_are_still_accepted() -> None:
    tracker = SequenceTracker()
    # e.g. after a collector restart: what came before is unknown, not a gap
    assert tracker.see("a", "b1", 10) == Verdict(True, 0)
    assert tracker.see("a", "b1", 4) == Verdict(True, 0)  # replayed later: still accepted
    assert tracker.see("a", "b1", 4) == Verdict(False, 0)
    assert tracker.see("a", "b1", 12) == Verdict(True, 1)


def test_new_boot_id_restarts_the_sequence() -> None:
    tracker = SequenceTracker()
    for seq in range(1, 101):
        tracker.see("a", "boot-1", seq)
    assert tracker.see("a", "boot-2", 1) == Verdict(True, 0)
    assert tracker.see("a", "boot-2", 2) == Verdict(True, 0)
    # the earlier boot is still remembered, so its replays are still recognised
    assert tracker.see("a", "boot-1", 100) == Verdict(False, 0)
    assert tracker.see("a", "boot-1", 101) == Verdict(True, 0)


def test_agents_are_tracked_independently() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "b", 1)
    assert tracker.see("other", "b", 1) == Verdict(True, 0)


def test_only_max_boots_tracked_boots_are_remembered_per_agent() -> None:
    tracker = SequenceTracker()
    for boot in range(MAX_BOOTS_TRACKED + 1):
        tracker.see("a", f"boot-{boot}", 1)
    # the oldest boot was forgotten: its seq 1 looks new again, the others are still known
    assert tracker.see("a", "boot-0", 1) == Verdict(True, 0)
    assert tracker.see("a", f"boot-{MAX_BOOTS_TRACKED}", 1) == Verdict(False, 0)


def test_huge_gap_uses_bounded_memory_and_is_still_counted_in_full() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "b", 1)
    far = MAX_GAP + 2
    assert tracker.see("a", "b", far) == Verdict(True, far - 2)
    # the hole is one range: every missing number is remembered, whatever its size
    assert tracker.see("a", "b", far - 1) == Verdict(True, 0)
    assert tracker.see("a", "b", 2) == Verdict(True, 0)
    assert tracker.see("a", "b", 2) == Verdict(False, 0)
    assert tracker.see("a", "b", far + 1) == Verdict(True, 0)
    assert len(tracker._agents["a"]["b"].starts) == 1  # [3, far - 1)
    # a jump beyond MAX_GAP is a broken sender, not a gap: not counted, but still tracked
    assert tracker.see("a", "b", far + 10 + MAX_GAP) == Verdict(True, 0)
    assert tracker.see("a", "b", far + 2) == Verdict(True, 0)


def test_holes_never_exceed_their_bound_and_the_oldest_are_forgotten() -> None:
    tracker = SequenceTracker()
    tracker.see("a", "b", 1)
    for i in range(1, MAX_HOLES_TRACKED + 11):
        tracker.see("a", "b", 1 + 2 * i)  # leaves hole 2 * i
    boot = tracker._agents["a"]["b"]
    assert len(boot.starts) == len(boot.ends) == MAX_HOLES_TRACKED
    assert tracker.see("a", "b", 2) == Verdict(False, 0)  # forgotten: treated as already seen
    last_hole = 2 * (MAX_HOLES_TRACKED + 10)
    assert tracker.see("a", "b", last_hole) == Verdict(True, 0)


def test_a_poll_from_the_future_is_never_rejected_for_the_clock(store: Store) -> None:
    # an agent clock an hour ahead: corrected by its measured offset (tests/unit/test_collector_clock.py)
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(ts=T0 + 3600)) == "accepted"
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(2, ts=T0 + 3660)) == "accepted"
    assert value(self_metrics(store), "hatang_collector_rejected_messages_total", reason="clock") == 0


def test_late_data_of_a_boot_that_said_goodbye_does_not_bring_the_agent_back(store: Store) -> None:
    assert store.ingest(status_topic(AGENT), status(True)) == "accepted"
    assert store.ingest(status_topic(AGENT), status(False)) == "accepted"
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(5)) == "accepted"
    assert value(parse(render(store)), "hatang_agent_up", agent=AGENT, **dict(SITE)) == 0


def test_agents_disagreeing_on_a_type_get_one_untyped_family(store: Store) -> None:
    gauge = Family("hatang_shared", "gauge", "", (Sample((), 1),))
    counter = Family("hatang_shared", "counter", "", (Sample((), 1),))
    assert store.ingest(data_topic(AGENT, "core-switch"), batch(1, families=(gauge,))) == "accepted"
    assert store.ingest(data_topic("xa-khac", "sw"), batch(1, agent="xa-khac", device="sw",
                                                            families=(counter,))) == "accepted"
    text = render(store)
    assert "# TYPE hatang_shared untyped" in text and text.count("# TYPE hatang_shared ") == 1
    assert len([k for k in parse(text) if k[0] == "hatang_shared"]) == 2


def test_birth_message_forgets_devices_the_agent_no_longer_has(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(1))
    store.ingest(data_topic(AGENT, "old-switch"), batch(2, device="old-switch"))
    birth = encode_status(AgentStatus(AGENT, BOOT, True, T0, devices=("core-switch",), site=SITE))
    assert store.ingest(status_topic(AGENT), birth) == "accepted"
    devices = {dict(k[1]).get("device") for k in parse(render(store)) if k[0] == "hatang_device_up"}
    assert devices == {"core-switch"}


def test_a_shared_group_member_counts_no_gaps_but_still_drops_copies() -> None:
    """In a shared group a member sees only its share of an agent's sequence numbers."""
    from collector.sequence import RECENT_TRACKED, SequenceTracker

    tracker = SequenceTracker(track_gaps=False)
    seen = [tracker.see("xa", "boot", seq) for seq in range(1, 2000, 2)]  # every other one
    assert all(v.new and v.gap == 0 for v in seen)
    assert not tracker.see("xa", "boot", 1999).new  # a redelivered copy
    assert tracker.see("xa", "boot", 2).new  # the other member's, if it ever comes here
    assert not tracker.see("xa", "boot", 2).new
    assert sum(len(r) for r in tracker._recent.values()) <= RECENT_TRACKED  # bounded memory


def test_a_live_poll_replaced_before_any_scrape_is_remote_written(clock: FakeClock) -> None:
    """Two live polls within one scrape interval (right after a reconnect): the first one never reaches a
    scrape, so it goes to remote write at its own time instead of leaving a gap. A poll that a rendering
    showed is not written again."""
    written: list[Any] = []
    store = Store(CollectorMetrics(), Limits(), clock=clock, late_sink=written.extend)
    store.ingest(data_topic(AGENT, "core-switch"), batch(1, families=(uptime_family(10.0),)))
    store.ingest(data_topic(AGENT, "core-switch"), batch(2, families=(uptime_family(11.0),)))
    assert [(dict(s.labels)["__name__"], s.samples) for s in written] == [
        ("hatang_device_uptime_seconds", ((10.0, round((T0 + 1) * 1000)),)),
        ("hatang_device_poll_success", ((1.0, round((T0 + 1) * 1000)),))]
    assert value(self_metrics(store), "hatang_collector_unserved_samples_total") == 2  # uptime + success
    assert value(parse(render(store)), "hatang_device_uptime_seconds", **device_labels()) == 11.0
    store.ingest(data_topic(AGENT, "core-switch"), batch(3, families=(uptime_family(12.0),)))
    assert len(written) == 2  # poll 2 was shown by the rendering above


def test_without_remote_write_nothing_is_kept_for_backfill(store: Store) -> None:
    store.ingest(data_topic(AGENT, "core-switch"), batch(1))
    assert all(state.unserved is None for state in store.devices.values())

"""The pure counting of ``hatang report`` (hatang/availability/timeline.py, report_model.py): minute
states, maintenance overlay, the four totals, the three ``--unknown-as`` modes, incidents, and how rows
are assembled. Every expected number is worked out by hand in the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hatang.availability.prometheus_query import check_url, chunks
from hatang.availability.report_model import build_report
from hatang.availability.timeline import (
    DOWN,
    MAINTENANCE,
    UNKNOWN,
    UNKNOWN_AS,
    UP,
    Incident,
    PeriodError,
    ReportPeriod,
    SeriesTimeline,
    TimelineSet,
    Totals,
    UnknownAs,
    fold,
    incidents,
    overlay_maintenance,
    percent_floor,
    state_of,
    summarize,
)
from hatang.availability.windows import MaintenanceWindow, zone
from hatang.cli_report import UsageError, parse_period

ICT = timezone(timedelta(hours=7))
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=ICT)  # 2026-10-31T17:00:00Z
T0_TS = 1_793_466_000
U, D, X, M = UP, DOWN, UNKNOWN, MAINTENANCE


def period(minutes: int) -> ReportPeriod:
    return ReportPeriod(T0, T0 + timedelta(minutes=minutes))


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return T0.replace(hour=hh, minute=mm, second=ss)


def window(start: datetime, end: datetime, site: str = "xa-a",
           device: str | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(id="bt1", site=site, start=start, end=end, reason="test", device=device)


# --- the period and the grid ---------------------------------------------------------------------


def test_the_test_epoch_is_what_the_comments_say() -> None:
    assert int(T0.timestamp()) == T0_TS
    assert period(360).minutes == 360 and period(360).end_ts == T0_TS + 21_600


@pytest.mark.parametrize(("start", "end", "why"), [
    (T0 + timedelta(seconds=30), T0 + timedelta(hours=1), "whole minute"),
    (T0, T0 + timedelta(minutes=10, seconds=1), "whole minute"),
    (T0, T0, "before it starts"),
    (T0 + timedelta(hours=1), T0, "before it starts"),
    (T0.replace(tzinfo=None), T0 + timedelta(hours=1), "no time zone"),
])
def test_a_period_must_be_whole_minutes_in_order_and_aware(start: datetime, end: datetime, why: str) -> None:
    with pytest.raises(PeriodError, match=why):
        ReportPeriod(start, end)


def test_a_minute_is_in_a_window_when_its_first_second_is() -> None:
    p = period(360)
    # [03:10:20, 03:15:00): minute 03:10 starts 03:10:00, before the window; 03:11..03:14 start inside;
    # 03:15 starts at the window's (excluded) end. 03:11 is minute 191.
    assert p.minutes_within(at(3, 10, 20), at(3, 15)) == (191, 195)
    # [03:10:00, 03:15:01): 03:10..03:15 (03:15:00 < 03:15:01)
    assert p.minutes_within(at(3, 10), at(3, 15, 1)) == (190, 196)
    # inside one minute, not at its start: covers nothing
    assert p.minutes_within(at(3, 10, 1), at(3, 10, 59)) == (191, 191)
    # clipped to the period at both ends
    assert p.minutes_within(T0 - timedelta(days=1), T0 + timedelta(days=1)) == (0, 360)
    assert p.minutes_within(T0 - timedelta(hours=2), T0 - timedelta(hours=1)) == (0, 0)


@pytest.mark.parametrize(("value", "state"), [
    ("1", UP), ("0", DOWN), ("0.5", DOWN), ("2", UP), ("1.0", UP), ("NaN", DOWN), ("-1", DOWN), (1.0, UP),
    ("0.999", DOWN), ("+Inf", UP), ("garbage", DOWN),
])
def test_a_value_of_at_least_one_is_up_anything_else_down(value: str | float, state: int) -> None:
    assert state_of(value) == state


def test_fold_puts_the_value_at_a_minutes_end_into_that_minute() -> None:
    p = period(5)
    states = bytearray(5)
    fold(states, p, [
        [T0_TS + 60, "1"],  # ends minute 0
        [T0_TS + 180, "0"],  # ends minute 2
        [T0_TS + 300, "0.5"],  # ends minute 4: down
        [T0_TS, "1"],  # the period's start ends no minute of it: ignored
        [T0_TS + 360, "1"],  # after the period: ignored
        [T0_TS + 90, "1"],  # off the grid: ignored
    ])
    assert bytes(states) == bytes([U, X, D, X, D])


def test_when_two_series_of_one_subject_disagree_up_wins_in_either_order() -> None:
    p = period(2)
    first, second = bytearray(2), bytearray(2)
    fold(first, p, [[T0_TS + 60, "0"], [T0_TS + 120, "1"]])
    fold(first, p, [[T0_TS + 60, "1"], [T0_TS + 120, "0"]])
    fold(second, p, [[T0_TS + 60, "1"], [T0_TS + 120, "0"]])
    fold(second, p, [[T0_TS + 60, "0"], [T0_TS + 120, "1"]])
    assert bytes(first) == bytes(second) == bytes([U, U])


def test_a_timeline_set_keys_series_by_identity_and_keeps_the_last_labels() -> None:
    p = period(3)
    found = TimelineSet(p, ("agent", "device"))
    found.add({"agent": "a", "device": "sw", "commune": "Xã Cũ"}, [[T0_TS + 60, "1"]])
    found.add({"agent": "a", "device": "sw", "commune": "Xã Mới"}, [[T0_TS + 120, "0"]])
    found.add({"agent": "a", "device": "ups"}, [[T0_TS + 180, "1"]])
    assert set(found.timelines) == {("a", "sw"), ("a", "ups")}
    switch = found.timelines[("a", "sw")]
    assert bytes(switch.states) == bytes([U, D, X])
    assert switch.site == {"commune": "Xã Mới"}


# --- maintenance and totals ------------------------------------------------------------------------


def test_maintenance_wins_over_every_state_and_partial_minutes_follow_the_first_second() -> None:
    p = period(6)
    states = bytearray([U, D, X, U, D, X])
    # [00:00:30, 00:02:00): minute 00:01 only; [00:04:00, 00:04:00.5): minute 00:04 (starts inside)
    overlay_maintenance(states, p, [window(at(0, 0, 30), at(0, 2)),
                                    window(at(0, 4), at(0, 4) + timedelta(milliseconds=500))])
    assert bytes(states) == bytes([U, M, X, U, M, X])
    totals = Totals.of(states)
    assert totals == Totals(up=2, down=0, unknown=2, maintenance=2)


def test_the_three_ways_of_counting_unknown() -> None:
    # 10 minutes: 6 up, 2 down, 1 unknown, 1 maintenance
    totals = Totals.of(bytes([U, U, U, D, X, M, U, D, U, U]))
    assert totals == Totals(6, 2, 1, 1) and totals.minutes == 10
    # down: up / (10 - 1 maintenance) = 6/9; downtime = 2 down + 1 unknown
    assert totals.ratio("down") == (6, 9) and totals.downtime("down") == 3
    # up: (6 + 1) / 9; downtime = 2
    assert totals.ratio("up") == (7, 9) and totals.downtime("up") == 2
    # excluded: 6 / (10 - 1 - 1) = 6/8; downtime = 2
    assert totals.ratio("excluded") == (6, 8) and totals.downtime("excluded") == 2
    assert totals.availability("excluded") == pytest.approx(75.0)
    assert percent_floor(totals.ratio("down"), 2) == "66.66"  # 66.666... rounded down
    assert percent_floor(totals.ratio("up"), 2) == "77.77"  # 77.777...


def test_no_denominator_no_availability() -> None:
    all_maintenance = Totals(0, 0, 0, 60)
    all_unknown = Totals(0, 0, 60, 0)
    for mode in UNKNOWN_AS:
        assert all_maintenance.ratio(mode) is None and all_maintenance.availability(mode) is None
    assert all_unknown.ratio("excluded") is None
    assert all_unknown.ratio("down") == (0, 60) and all_unknown.ratio("up") == (60, 60)
    assert percent_floor(None, 2) is None


@pytest.mark.parametrize(("ratio", "decimals", "text"), [
    ((1999, 2000), 2, "99.95"),  # exactly 99.95: no float error may turn it into 99.94
    ((43199, 43200), 2, "99.99"),  # 99.9976...: rounded down, never to 100.00
    ((43200, 43200), 2, "100.00"),
    ((0, 10), 2, "0.00"),
    ((1, 3), 4, "33.3333"),
    ((2, 3), 0, "66"),
])
def test_percent_is_rounded_down_exactly(ratio: tuple[int, int], decimals: int, text: str) -> None:
    assert percent_floor(ratio, decimals) == text


# --- incidents -------------------------------------------------------------------------------------


def test_maintenance_splits_an_incident() -> None:
    states = bytes([U, D, D, M, D, U, D])
    assert incidents(states, "down") == [Incident(1, 3), Incident(4, 5), Incident(6, 7)]


def test_unknown_joins_an_incident_only_when_counted_as_down() -> None:
    states = bytes([U, D, X, D, U, X, X])
    assert incidents(states, "down") == [Incident(1, 4), Incident(5, 7)]
    assert incidents(states, "up") == [Incident(1, 2), Incident(3, 4)]
    assert incidents(states, "excluded") == [Incident(1, 2), Incident(3, 4)]


def test_summary_keeps_the_longest_first_and_earlier_among_equals() -> None:
    states = bytes([D, U, D, D, U, D, D, U, D, D, D])
    summary = summarize(states, "down", keep=2)
    assert summary.incident_count == 4
    assert summary.longest == (Incident(8, 11), Incident(2, 4))  # 3 minutes, then the first of two 2s
    p = period(11)
    assert summary.longest[0].start(p) == at(0, 8) and summary.longest[0].end(p) == at(0, 11)


# --- properties ------------------------------------------------------------------------------------

states_strategy = st.binary(min_size=1, max_size=300).map(lambda b: bytes(x % 4 for x in b))
offsets = st.integers(min_value=-120 * 60, max_value=420 * 60)


@settings(max_examples=200, deadline=None)
@given(states_strategy,
       st.lists(st.tuples(offsets, st.integers(min_value=1, max_value=200 * 60)), max_size=4),
       st.sampled_from(UNKNOWN_AS))
def test_totals_sum_to_the_period_and_incidents_are_the_downtime(
    raw: bytes, spans: list[tuple[int, int]], mode: UnknownAs
) -> None:
    p = period(len(raw))
    states = bytearray(raw)
    windows = [window(T0 + timedelta(seconds=s), T0 + timedelta(seconds=s + length)) for s, length in spans]
    overlay_maintenance(states, p, windows)
    # the oracle: a minute is maintenance when some window contains its first second, else unchanged
    for i in range(len(raw)):
        minute = T0 + timedelta(minutes=i)
        expected = M if any(w.start <= minute < w.end for w in windows) else raw[i]
        assert states[i] == expected, i
    totals = Totals.of(states)
    assert totals.minutes == len(raw) == p.minutes
    found = incidents(states, mode)
    assert sum(i.minutes for i in found) == totals.downtime(mode)
    counted_down = {D, X} if mode == "down" else {D}
    for incident in found:
        assert all(states[j] in counted_down for j in range(incident.first, incident.stop))
        assert incident.first == 0 or states[incident.first - 1] not in counted_down  # maximal
        assert incident.stop == len(states) or states[incident.stop] not in counted_down
    ratio = totals.ratio(mode)
    if ratio is not None:
        assert 0 <= ratio[0] <= ratio[1]
        assert ratio[1] - ratio[0] == totals.downtime(mode)


# --- assembling the report -------------------------------------------------------------------------


def timeline(labels: dict[str, str], states: list[int]) -> SeriesTimeline:
    return SeriesTimeline(tuple(labels.values()), labels, bytearray(states))


def test_an_office_window_covers_its_devices_and_links_a_device_window_only_its_device() -> None:
    p = period(4)
    office = timeline({"agent": "xa-a"}, [U, U, U, U])
    switch = timeline({"agent": "xa-a", "device": "sw"}, [U, U, U, U])
    ups = timeline({"agent": "xa-a", "device": "ups"}, [U, U, U, U])
    link = timeline({"agent": "xa-a", "device": "ups", "method": "icmp", "target": "10.0.0.1"}, [D, D, D, D])
    other = timeline({"agent": "xa-b", "device": "sw"}, [U, U, U, U])
    report = build_report(
        period=p, tz=ICT, tz_name="+07", generated_at=T0, source="http://p", offices=[office],
        devices=[switch, ups, other], links=[link], site_info={},
        windows=[window(at(0, 0), at(0, 1)),  # office xa-a: minute 0 of everything of xa-a
                 window(at(0, 2), at(0, 3), device="ups")],  # minute 2 of the device (and probe) "ups"
    )
    got = {(r.kind, r.agent, r.device): r.totals.maintenance for r in report.rows()}
    assert got == {("office", "xa-a", None): 1, ("device", "xa-a", "sw"): 1, ("device", "xa-a", "ups"): 2,
                   ("link", "xa-a", "ups"): 2, ("device", "xa-b", "sw"): 0,
                   ("office", "xa-b", None): 0}  # xa-b has a device but no agent_up: an unknown office
    never = next(r for r in report.offices if r.agent == "xa-b")
    assert never.totals == Totals(0, 0, 4, 0)


def test_an_office_listed_but_never_seen_is_all_unknown_with_its_name() -> None:
    p = period(60)
    report = build_report(
        period=p, tz=ICT, tz_name="+07", generated_at=T0, source="http://p", offices=[], devices=[],
        links=[],
        site_info={"xa-c": {"agent": "xa-c", "site_name": "UBND xã Hợp Châu", "province": "Phú Thọ"}},
        unknown_as="down",
    )
    (row,) = report.offices
    assert (row.office, row.totals, report.percent(row.totals)) == ("UBND xã Hợp Châu", Totals(0, 0, 60, 0),
                                                                    "0.00")
    assert row.site == (("province", "Phú Thọ"),)
    assert row.incident_count == 1 and row.longest == (Incident(0, 60),)


def test_offices_are_ordered_by_site_then_name_and_the_top_incidents_across_subjects() -> None:
    p = period(6)
    report = build_report(
        period=p, tz=ICT, tz_name="+07", generated_at=T0, source="http://p",
        offices=[timeline({"agent": "b", "commune": "Xã B"}, [U, D, D, U, U, U]),
                 timeline({"agent": "a", "commune": "Xã C"}, [D, U, U, U, U, U])],
        devices=[timeline({"agent": "a", "device": "sw", "commune": "Xã C"}, [U, U, D, D, D, U])],
        links=[], site_info={}, top=2,
    )
    assert [r.agent for r in report.offices] == ["b", "a"]  # Xã B before Xã C
    assert [(t.row.agent, t.row.device, t.incident) for t in report.top] == [
        ("a", "sw", Incident(2, 5)), ("b", None, Incident(1, 3))]


# --- the period as typed, and the requests it becomes ----------------------------------------------


def test_month_and_bare_dates_become_whole_local_days() -> None:
    nov = parse_period("2026-11", None, None, ICT)
    assert (nov.start, nov.end, nov.minutes) == (T0, datetime(2026, 12, 1, tzinfo=ICT), 30 * 1440)
    dec = parse_period("2026-12", None, None, ICT)
    assert dec.end == datetime(2027, 1, 1, tzinfo=ICT) and dec.minutes == 31 * 1440
    # --to 2026-11-30 includes the 30th: the period ends 2026-12-01 00:00
    assert parse_period(None, "2026-11-01", "2026-11-30", ICT) == nov
    # a time with an offset is read as given: 2026-11-01T00:00Z is 07:00 in Vietnam
    utc = parse_period(None, "2026-11-01T00:00Z", "2026-11-01 12:00", ICT)
    assert utc.start == datetime(2026, 11, 1, 7, tzinfo=ICT) and utc.minutes == 5 * 60


@pytest.mark.parametrize(("month", "start", "end", "message"), [
    (None, "2026-11-01T00:00Z", "2026-11-01 06:00", "before it starts"),  # 07:00+07 to 06:00+07
    (None, "2026-11-01 00:00:30", "2026-11-02", "whole minute"),
    ("2026-11", "2026-11-01", None, "not both"),
    ("11/2026", None, None, "YYYY-MM"),
    (None, "2026-11-01", None, "give the period"),
    (None, "2025-01-01", "2026-12-31", "longer than 366 days"),
])
def test_periods_that_cannot_be_used(month: str | None, start: str | None, end: str | None,
                                     message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_period(month, start, end, ICT)


def test_a_range_query_is_split_into_requests_of_at_most_one_day() -> None:
    # a 31-day month: 44,640 instants from start+60 to end, 1,440 per request -> exactly 31 requests
    start, end = T0_TS + 60, T0_TS + 31 * 86400
    parts = list(chunks(start, end, 60))
    assert len(parts) == 31
    assert parts[0] == (start, start + 1439 * 60) and parts[1][0] == start + 1440 * 60 and parts[-1][1] == end
    assert sum((last - first) // 60 + 1 for first, last in parts) == 44_640
    assert list(chunks(0, 600, 60, max_points=4)) == [(0, 180), (240, 420), (480, 600)]
    assert list(chunks(0, 0, 60)) == [(0, 0)]


@pytest.mark.parametrize("url", ["127.0.0.1:9090", "ftp://host", "http://", "http://h:9090/api/v1",
                                 "http://h:9090/?x=1"])
def test_a_prometheus_url_must_be_the_servers_base_url(url: str) -> None:
    with pytest.raises(ValueError, match="--prometheus"):
        check_url(url)
    assert check_url("http://h:9090/") == "http://h:9090"
    assert check_url("https://h/prometheus") == "https://h/prometheus"


def test_minutes_are_real_minutes_across_a_daylight_saving_change() -> None:
    """--tz with daylight saving: Europe/Berlin went from +01:00 to +02:00 at 2026-03-29 02:00 local.
    A month is 31 x 1440 - 60 minutes, and times after the change are placed by Unix time."""
    berlin = zone("Europe/Berlin")
    period = parse_period(None, "2026-03-01", "2026-03-31", berlin)
    assert period.minutes == 31 * 1440 - 60
    # 2026-03-30 10:00 local (+02:00) = 08:00 UTC
    after = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    first, stop = period.minutes_within(after, after + timedelta(minutes=30))
    assert (first, stop) == (29 * 1440 - 60 + 10 * 60, 29 * 1440 - 60 + 10 * 60 + 30)
    assert period.minute_start(first).strftime("%Y-%m-%d %H:%M %z") == "2026-03-30 10:00 +0200"
    assert period.minute_start(period.minutes) == period.end

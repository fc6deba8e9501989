"""The availability report as data: rows per office, device and link, summaries and the longest
incidents, assembled from the timelines of :mod:`hatang.availability.timeline`. Pure: no I/O; the
renderers (:mod:`~hatang.availability.render_html`, :mod:`~hatang.availability.render_text`) only
format what is here.

- Offices: one row per agent seen in any subject or listed in ``hatang_site_info`` (the inventory). Its
  minutes are those of ``hatang_agent_up``; an office with no such series in the period is 100 %
  unknown (never seen). Its name is ``site_name`` of ``hatang_site_info`` (the agent id when none).
- Devices and links: one row per series identity seen in the period.
- Site labels (province, district, commune) come from the subject's series, else from the inventory.
- Maintenance: a subject gets the windows that cover it (``window.covers(agent, device)``; for an
  office ``covers(agent, None)``, so an office window covers the office and all its devices and links,
  a device window only that device or link).
- Order: offices by province, district, commune, name and agent; devices and links by their office's
  order, then device (and method, target).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from hatang.availability.definitions import SITE_LABELS, SubjectKind
from hatang.availability.timeline import (
    Incident,
    ReportPeriod,
    SeriesTimeline,
    Totals,
    UnknownAs,
    overlay_maintenance,
    percent_floor,
    summarize,
)
from hatang.availability.windows import MaintenanceWindow

NAME_LABEL = "site_name"  # the office's name in hatang_site_info (collector/inventory.py info_labels)


@dataclass(frozen=True, slots=True)
class SubjectRow:
    """One office connection, device or link over the period."""

    kind: SubjectKind
    agent: str
    office_name: str  # from the inventory; "" when not listed
    device: str | None  # None for an office; the probe's name for a link
    method: str | None  # links only
    target: str | None  # links only
    site: tuple[tuple[str, str], ...]  # (label, value) of the SITE_LABELS present
    totals: Totals
    incident_count: int
    longest: tuple[Incident, ...]  # longest first

    @property
    def office(self) -> str:
        """The office as a person reads it: its name, or the agent id when it has none."""
        return self.office_name or self.agent

    @property
    def subject(self) -> str:
        """Within its office: "" for the office itself, the device, or "probe (method → target)"."""
        if self.kind == "link":
            return f"{self.device} ({self.method} → {self.target})"
        return self.device or ""

    def site_value(self, label: str) -> str:
        return dict(self.site).get(label, "")


@dataclass(frozen=True, slots=True)
class TopIncident:
    row: SubjectRow
    incident: Incident


@dataclass(frozen=True, slots=True)
class KindSummary:
    """All subjects of one kind pooled: their minutes summed, so the availability weighs each minute."""

    kind: SubjectKind
    count: int
    totals: Totals
    incident_count: int
    below_full: int  # subjects with some minute counted as down


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    title: str
    period: ReportPeriod
    tz: tzinfo
    tz_name: str
    generated_at: datetime
    source: str  # the Prometheus URL
    unknown_as: UnknownAs
    maintenance_file: str | None
    window_count: int  # windows in the file (all of them, not only those in the period)
    offices: tuple[SubjectRow, ...]
    devices: tuple[SubjectRow, ...]
    links: tuple[SubjectRow, ...]
    top: tuple[TopIncident, ...]

    def rows(self) -> tuple[SubjectRow, ...]:
        return (*self.offices, *self.devices, *self.links)

    def ratio(self, totals: Totals) -> tuple[int, int] | None:
        return totals.ratio(self.unknown_as)

    def percent(self, totals: Totals, decimals: int = 2) -> str | None:
        """Availability in percent as text with a dot, rounded down; None when there is no denominator."""
        return percent_floor(totals.ratio(self.unknown_as), decimals)

    def downtime(self, totals: Totals) -> int:
        return totals.downtime(self.unknown_as)

    def summaries(self) -> tuple[KindSummary, ...]:
        out = []
        groups: tuple[tuple[SubjectKind, tuple[SubjectRow, ...]], ...] = (
            ("office", self.offices), ("device", self.devices), ("link", self.links))
        for kind, rows in groups:
            pooled = sum((r.totals for r in rows), Totals())
            out.append(KindSummary(kind, len(rows), pooled, sum(r.incident_count for r in rows),
                                   sum(1 for r in rows if self.downtime(r.totals))))
        return tuple(out)

    def devices_by_office(self) -> list[tuple[SubjectRow, list[SubjectRow]]]:
        """Each office with its devices (offices without devices left out), in report order."""
        by_agent: dict[str, list[SubjectRow]] = {}
        for row in self.devices:
            by_agent.setdefault(row.agent, []).append(row)
        return [(office, by_agent[office.agent]) for office in self.offices if office.agent in by_agent]


def _site(labels: Mapping[str, str], fallback: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    source = labels if any(labels.get(k) for k in SITE_LABELS) else fallback
    return tuple((k, source[k]) for k in SITE_LABELS if source.get(k))


def _row(kind: SubjectKind, timeline: SeriesTimeline, agent: str, device: str | None,
         site_info: Mapping[str, Mapping[str, str]], period: ReportPeriod,
         windows: Sequence[MaintenanceWindow], unknown_as: UnknownAs, keep: int) -> SubjectRow:
    overlay_maintenance(timeline.states, period, [w for w in windows if w.covers(agent, device)])
    summary = summarize(timeline.states, unknown_as, keep)
    info = site_info.get(agent, {})
    labels = timeline.labels
    return SubjectRow(
        kind=kind, agent=agent, office_name=info.get(NAME_LABEL, ""), device=device,
        method=labels.get("method") if kind == "link" else None,
        target=labels.get("target") if kind == "link" else None,
        site=_site(labels, info), totals=summary.totals, incident_count=summary.incident_count,
        longest=summary.longest,
    )


def build_report(
    *,
    period: ReportPeriod,
    tz: tzinfo,
    tz_name: str,
    generated_at: datetime,
    source: str,
    offices: Iterable[SeriesTimeline],
    devices: Iterable[SeriesTimeline],
    links: Iterable[SeriesTimeline],
    site_info: Mapping[str, Mapping[str, str]],
    windows: Sequence[MaintenanceWindow] = (),
    unknown_as: UnknownAs = "down",
    top: int = 10,
    title: str = "",
    maintenance_file: str | None = None,
) -> AvailabilityReport:
    """The report. Overlays maintenance onto the timelines (they are changed in place)."""
    keep = max(top, 1)

    def make(kind: SubjectKind, timeline: SeriesTimeline) -> SubjectRow:
        agent = timeline.labels.get("agent", "")
        device = None if kind == "office" else timeline.labels.get("device", "")
        return _row(kind, timeline, agent, device, site_info, period, windows, unknown_as, keep)

    device_rows = [make("device", t) for t in devices]
    link_rows = [make("link", t) for t in links]
    office_rows = {r.agent: r for r in (make("office", t) for t in offices)}
    for agent in sorted({*site_info, *(r.agent for r in (*device_rows, *link_rows))} - office_rows.keys()):
        never_seen = SeriesTimeline((agent,), {"agent": agent}, bytearray(period.minutes))
        office_rows[agent] = make("office", never_seen)

    def office_key(row: SubjectRow) -> tuple[str, ...]:
        return (*(row.site_value(k) for k in SITE_LABELS), row.office.casefold(), row.agent)

    ordered = sorted(office_rows.values(), key=office_key)
    position = {row.agent: i for i, row in enumerate(ordered)}

    def member_key(row: SubjectRow) -> tuple[int, str, str, str, str]:
        return (position.get(row.agent, len(position)), row.agent, row.device or "", row.method or "",
                row.target or "")

    device_rows.sort(key=member_key)
    link_rows.sort(key=member_key)
    all_rows = [*ordered, *device_rows, *link_rows]
    candidates = [TopIncident(row, incident) for row in all_rows for incident in row.longest]
    order = {id(row): i for i, row in enumerate(all_rows)}
    top_incidents = sorted(candidates, key=lambda c: (-c.incident.minutes, c.incident.first,
                                                      order[id(c.row)]))[:max(top, 0)]
    return AvailabilityReport(
        title=title, period=period, tz=tz, tz_name=tz_name, generated_at=generated_at, source=source,
        unknown_as=unknown_as, maintenance_file=maintenance_file, window_count=len(windows),
        offices=tuple(ordered), devices=tuple(device_rows), links=tuple(link_rows),
        top=tuple(top_incidents),
    )


def vi_percent(text: str | None) -> str:
    """``"99.95"`` → ``"99,95 %"`` (decimal comma); None → ``"—"`` (no denominator)."""
    return "—" if text is None else f"{text.replace('.', ',')} %"


# The report's words, shared by the HTML and Markdown renderers: (Vietnamese, English).
TITLE = ("Báo cáo mức độ sẵn sàng hạ tầng mạng", "Network infrastructure availability report")
SECTIONS = {
    "summary": ("Tóm tắt", "Summary"),
    "chart": ("Biểu đồ theo đơn vị", "Per-office chart (connection to the centre)"),
    "offices": ("Kết nối của các đơn vị về trung tâm", "Offices: connection to the centre"),
    "devices": ("Thiết bị theo đơn vị", "Devices by office"),
    "links": ("Đường truyền mạng truyền số liệu chuyên dùng", "Government-network links"),
    "incidents": ("Các sự cố dài nhất", "Longest incidents"),
    "method": ("Cách tính", "How it is counted"),
}
KINDS = {"office": ("Kết nối đơn vị", "office"), "device": ("Thiết bị", "device"),
         "link": ("Đường truyền", "link")}
STATES = {"up": ("Hoạt động", "up"), "down": ("Gián đoạn", "down"),
          "unknown": ("Không có dữ liệu", "unknown"), "maintenance": ("Bảo trì", "maintenance")}
UNKNOWN_AS_TEXT = {"down": ("tính là gián đoạn", "counted as down"),
                   "up": ("tính là hoạt động", "counted as up"),
                   "excluded": ("loại khỏi mẫu số", "left out of the denominator")}
METHOD_TEXT = (
    "Mỗi phút của kỳ báo cáo được xếp vào một trong bốn trạng thái theo giá trị đo được ở cuối phút: "
    "hoạt động, gián đoạn, không có dữ liệu, hoặc bảo trì (theo lịch bảo trì, ưu tiên hơn ba trạng thái "
    "kia). Tỷ lệ sẵn sàng = thời gian hoạt động / (thời gian kỳ báo cáo − thời gian bảo trì), làm tròn "
    "xuống; thời gian không có dữ liệu được xử lý theo tham số ở trên. Một sự cố là một chuỗi phút liên "
    "tiếp được tính là gián đoạn; phút bảo trì kết thúc sự cố.",
    "Each minute of the period is up, down, unknown (no data) or maintenance (planned windows win over "
    "the other three), from the value at the minute's end. Availability = up / (period − maintenance), "
    "rounded down; unknown minutes count as the parameter above says. An incident is a run of minutes "
    "counted as down; a maintenance minute ends it.",
)

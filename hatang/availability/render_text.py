"""The availability report as CSV (one flat table for spreadsheets) and as Markdown (Vietnamese headings
and tables, for a wiki or an e-mail). Pure: report in, text out.

CSV: one row per office connection, device and link, columns :data:`CSV_COLUMNS`, comma-separated,
numbers with a dot (``99.9500``, availability rounded down to four decimals, empty when there is no
denominator), times in the report's zone as ``YYYY-MM-DD HH:MM``. The text starts with a UTF-8 byte
order mark (U+FEFF) so that Excel opens it as UTF-8 and shows the Vietnamese names correctly (other
tools ignore it). A text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a
leading ``'`` so that a spreadsheet never runs a label value as a formula.

Markdown: numbers the Vietnamese way (``44.640`` minutes, ``99,95 %``); line breaks, ``<``, ``>``, ``&``
and Markdown's punctuation in cells are escaped so a name cannot break a table or add markup, links or
images.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from hatang.availability.definitions import SITE_LABELS
from hatang.availability.report_model import (
    KINDS,
    METHOD_TEXT,
    SECTIONS,
    TITLE,
    UNKNOWN_AS_TEXT,
    AvailabilityReport,
    SubjectRow,
    vi_percent,
)
from hatang.availability.windows import format_time
from hatang.vietnamese_numbers import vi_int

BOM = "\ufeff"
CSV_COLUMNS = (
    "kind", "agent", "office_name", "device", "method", "target", *SITE_LABELS,
    "up_minutes", "down_minutes", "unknown_minutes", "maintenance_minutes", "availability_percent",
    "downtime_minutes", "incidents", "longest_incident_start", "longest_incident_end",
    "longest_incident_minutes",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _csv_row(report: AvailabilityReport, row: SubjectRow) -> list[str | int]:
    totals = row.totals
    worst = row.longest[0] if row.longest else None
    return [
        row.kind, _cell(row.agent), _cell(row.office_name), _cell(row.device or ""), _cell(row.method or ""),
        _cell(row.target or ""), *(_cell(row.site_value(k)) for k in SITE_LABELS),
        totals.up, totals.down, totals.unknown, totals.maintenance, report.percent(totals, 4) or "",
        report.downtime(totals), row.incident_count,
        format_time(worst.start(report.period), report.tz) if worst else "",
        format_time(worst.end(report.period), report.tz) if worst else "",
        worst.minutes if worst else "",
    ]


def render_csv(report: AvailabilityReport) -> str:
    """The flat table, BOM first, CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows():
        writer.writerow(_csv_row(report, row))
    return out.getvalue()


_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]()!#~|])")


def _md(value: object) -> str:
    """A table cell: one line; HTML's three characters as entities; Markdown's punctuation (emphasis,
    code, links, images, headings, strikethrough, the cell separator) backslash-escaped, so a label value
    stays text."""
    text = " ".join(str(value).split())
    for char, replacement in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, replacement)
    return _MD_PUNCTUATION.sub(r"\\\1", text)


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int) -> str:
    align = ["---:" if i >= numeric_from else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_HEAD = ("Hoạt động (phút)", "Gián đoạn (phút)", "Không có dữ liệu (phút)", "Bảo trì (phút)",
         "Tỷ lệ sẵn sàng", "Thời gian gián đoạn (phút)", "Số sự cố", "Sự cố dài nhất")


def _numbers(report: AvailabilityReport, row: SubjectRow) -> list[str]:
    totals = row.totals
    worst = row.longest[0] if row.longest else None
    longest = "—" if worst is None else (
        f"{format_time(worst.start(report.period), report.tz)} → "
        f"{format_time(worst.end(report.period), report.tz)} ({vi_int(worst.minutes)} phút)")
    return [vi_int(totals.up), vi_int(totals.down), vi_int(totals.unknown), vi_int(totals.maintenance),
            vi_percent(report.percent(totals)), vi_int(report.downtime(totals)), vi_int(row.incident_count),
            longest]


def _heading(key: str) -> str:
    vi, en = SECTIONS[key]
    return f"## {vi} ({en})\n\n"


def render_markdown(report: AvailabilityReport) -> str:
    """The report as Markdown: heading, parameters, summary, then the tables of the HTML report."""
    period, tz = report.period, report.tz
    parts = [
        f"# {_md(report.title or TITLE[0])}\n\n_{TITLE[1]}_\n\n",
        f"- Kỳ báo cáo (period): {format_time(period.start, tz)} → {format_time(period.end, tz)} "
        f"({_md(report.tz_name)}; {vi_int(period.minutes)} phút)\n",
        f"- Thời điểm lập (generated): {format_time(report.generated_at, tz)}\n",
        f"- Nguồn dữ liệu (source): Prometheus {_md(report.source)}\n",
        f"- Thời gian không có dữ liệu (unknown minutes): {UNKNOWN_AS_TEXT[report.unknown_as][0]} "
        f"(`--unknown-as {report.unknown_as}`)\n",
        "- Lịch bảo trì (maintenance file): "
        + (f"{_md(report.maintenance_file)} ({vi_int(report.window_count)} đợt bảo trì)\n"
           if report.maintenance_file else "không có (none)\n"),
        "\n", _heading("summary"),
        _table(("Đối tượng", "Số lượng", "Tỷ lệ sẵn sàng chung", "Thời gian gián đoạn (phút)", "Số sự cố",
                "Số đối tượng có gián đoạn"),
               [(KINDS[s.kind][0], vi_int(s.count), vi_percent(report.percent(s.totals)),
                 vi_int(report.downtime(s.totals)), vi_int(s.incident_count), vi_int(s.below_full))
                for s in report.summaries()], 1),
        "\n", _heading("offices"),
        _table(("Đơn vị", "Mã agent", "Địa bàn", *_HEAD),
               [(r.office, r.agent, ", ".join(v for _, v in r.site), *_numbers(report, r))
                for r in report.offices], 3),
        "\n", _heading("devices"),
    ]
    groups = report.devices_by_office()
    for office, rows in groups:
        parts.append(f"### {_md(office.office)} ({_md(office.agent)})\n\n")
        parts.append(_table(("Thiết bị", *_HEAD), [(r.device, *_numbers(report, r)) for r in rows], 1))
        parts.append("\n")
    if not groups:
        parts.append("Không có dữ liệu thiết bị trong kỳ.\n\n")
    parts.append(_heading("links"))
    parts.append(_table(("Đơn vị", "Đường truyền", "Phương thức", "Đích", *_HEAD),
                        [(r.office, r.device, r.method or "", r.target or "", *_numbers(report, r))
                         for r in report.links], 4) if report.links else "Không có dữ liệu đường truyền.\n")
    parts += ["\n", _heading("incidents")]
    parts.append(_table(("STT", "Đơn vị", "Loại", "Đối tượng", "Bắt đầu", "Kết thúc", "Số phút"),
                        [(i, t.row.office, KINDS[t.row.kind][0], t.row.subject or "—",
                          format_time(t.incident.start(period), tz), format_time(t.incident.end(period), tz),
                          vi_int(t.incident.minutes)) for i, t in enumerate(report.top, 1)], 6)
                 if report.top else "Không có sự cố trong kỳ.\n")
    parts += ["\n", _heading("method"), f"{METHOD_TEXT[0]}\n\n_{METHOD_TEXT[1]}_\n"]
    return "".join(parts)

"""The availability report as ONE self-contained HTML file in Vietnamese (English in small text beside
it), to open in a browser or print for the province. Pure: report in, text out.

Self-contained: inline CSS only, the bar chart is inline SVG; no script, stylesheet link, web font,
image or http(s) address, so the file works offline, by e-mail and printed (``@media print``: each
section starts on a new page, table headers repeat, rows are not split). Every value that comes from
labels (office and device names, agent ids, targets) is HTML-escaped. Numbers are written the
Vietnamese way: ``44.640`` minutes, ``99,95 %``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from hatang.availability.report_model import (
    KINDS,
    METHOD_TEXT,
    SECTIONS,
    STATES,
    TITLE,
    UNKNOWN_AS_TEXT,
    AvailabilityReport,
    SubjectRow,
    vi_percent,
)
from hatang.availability.timeline import Totals
from hatang.availability.windows import format_time
from hatang.vietnamese_numbers import vi_int

COLOURS = {"up": "#2e7d32", "down": "#c62828", "unknown": "#9e9e9e", "maintenance": "#1565c0"}
CHART_ROWS = 30  # offices per SVG, so a printed chart breaks between SVGs, never through a bar
_LABEL_WIDTH, _BAR_WIDTH, _ROW = 300, 560, 22
_NAME_CHARS = 42
MIN_SEGMENT = 1.5  # px: the narrowest segment drawn

_CSS = """
body { font-family: "Times New Roman", "DejaVu Serif", serif; margin: 2em; color: #111; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { font-size: 1.25em; border-bottom: 1px solid #999; }
h3 { font-size: 1.05em; margin: 1.2em 0 .3em; }
.en { font-size: .75em; color: #555; font-weight: normal; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #bbb; padding: .2em .45em; vertical-align: top; }
th { background: #eee; text-align: left; } td.n { text-align: right; white-space: nowrap; }
table.meta th { width: 16em; } .bad { color: #c62828; font-weight: bold; }
svg { max-width: 100%; height: auto; display: block; break-inside: avoid; page-break-inside: avoid; }
.legend span { display: inline-block; margin-right: 1.2em; }
.swatch { display: inline-block; width: .9em; height: .9em; vertical-align: middle; margin-right: .3em; }
@media print {
  body { margin: 0; font-size: 10pt; }
  section.page { page-break-before: always; break-before: page; }
  thead { display: table-header-group; } tr { page-break-inside: avoid; break-inside: avoid; }
}
@page { size: A4; margin: 15mm; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _both(pair: tuple[str, str], tag: str = "") -> str:
    vi, en = pair
    inner = f'{_e(vi)} <span class="en">{_e(en)}</span>'
    return f"<{tag}>{inner}</{tag}>" if tag else inner


def _th(*pairs: tuple[str, str]) -> str:
    return "<thead><tr>" + "".join(f"<th>{_both(p)}</th>" for p in pairs) + "</tr></thead>"


def _td(value: object, number: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("n" if number else "", css) if c)
    return f'<td class="{classes}">{_e(value)}</td>' if classes else f"<td>{_e(value)}</td>"


_MINUTE_HEADS = (("Hoạt động (phút)", "up min"), ("Gián đoạn (phút)", "down min"),
                 ("Không có dữ liệu (phút)", "unknown min"), ("Bảo trì (phút)", "maintenance min"),
                 ("Tỷ lệ sẵn sàng", "availability"), ("Thời gian gián đoạn (phút)", "downtime min"),
                 ("Số sự cố", "incidents"), ("Sự cố dài nhất", "longest incident"))


def _numbers(report: AvailabilityReport, row: SubjectRow) -> str:
    totals = row.totals
    downtime = report.downtime(totals)
    cells = [_td(vi_int(totals.up), True), _td(vi_int(totals.down), True), _td(vi_int(totals.unknown), True),
             _td(vi_int(totals.maintenance), True), _td(vi_percent(report.percent(totals)), True),
             _td(vi_int(downtime), True, "bad" if downtime else ""), _td(vi_int(row.incident_count), True)]
    if row.longest:
        worst = row.longest[0]
        start, end = worst.start(report.period), worst.end(report.period)
        cells.append(_td(f"{format_time(start, report.tz)} → {format_time(end, report.tz)} "
                         f"({vi_int(worst.minutes)} phút)"))
    else:
        cells.append(_td("—"))
    return "".join(cells)


def _site_text(row: SubjectRow) -> str:
    return ", ".join(value for _, value in row.site)


def _office_table(report: AvailabilityReport) -> str:
    head = _th(("Đơn vị", "office"), ("Mã agent", "agent"), ("Địa bàn", "site"), *_MINUTE_HEADS)
    body = "".join(f"<tr>{_td(r.office)}{_td(r.agent)}{_td(_site_text(r))}{_numbers(report, r)}</tr>"
                   for r in report.offices)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _device_tables(report: AvailabilityReport) -> str:
    groups = report.devices_by_office()
    if not groups:
        return "<p>Không có dữ liệu thiết bị trong kỳ. <span class=\"en\">No device data.</span></p>"
    out = []
    head = _th(("Thiết bị", "device"), *_MINUTE_HEADS)
    for office, rows in groups:
        body = "".join(f"<tr>{_td(r.device)}{_numbers(report, r)}</tr>" for r in rows)
        out.append(f"<h3>{_e(office.office)} <span class=\"en\">{_e(office.agent)}</span></h3>"
                   f"<table>{head}<tbody>{body}</tbody></table>")
    return "".join(out)


def _link_table(report: AvailabilityReport) -> str:
    if not report.links:
        return "<p>Không có dữ liệu đường truyền trong kỳ. <span class=\"en\">No link data.</span></p>"
    head = _th(("Đơn vị", "office"), ("Đường truyền", "probe"), ("Phương thức", "method"),
               ("Đích", "target"), *_MINUTE_HEADS)
    body = "".join(f"<tr>{_td(r.office)}{_td(r.device)}{_td(r.method or '')}{_td(r.target or '')}"
                   f"{_numbers(report, r)}</tr>" for r in report.links)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _incident_table(report: AvailabilityReport) -> str:
    if not report.top:
        return "<p>Không có sự cố trong kỳ. <span class=\"en\">No incidents.</span></p>"
    head = _th(("STT", "#"), ("Đơn vị", "office"), ("Loại", "kind"), ("Đối tượng", "subject"),
               ("Bắt đầu", "start"), ("Kết thúc", "end"), ("Số phút", "minutes"))
    rows = []
    for number, item in enumerate(report.top, 1):
        row, incident = item.row, item.incident
        rows.append(f"<tr>{_td(number, True)}{_td(row.office)}{_td(KINDS[row.kind][0])}"
                    f"{_td(row.subject or '—')}{_td(format_time(incident.start(report.period), report.tz))}"
                    f"{_td(format_time(incident.end(report.period), report.tz))}"
                    f"{_td(vi_int(incident.minutes), True)}</tr>")
    return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"


def _summary_table(report: AvailabilityReport) -> str:
    head = _th(("Đối tượng", "kind"), ("Số lượng", "count"), ("Tỷ lệ sẵn sàng chung", "pooled availability"),
               ("Thời gian gián đoạn (phút)", "downtime min"), ("Số sự cố", "incidents"),
               ("Số đối tượng có gián đoạn", "with downtime"))
    body = "".join(
        f"<tr><td>{_both(KINDS[s.kind])}</td>{_td(vi_int(s.count), True)}"
        f"{_td(vi_percent(report.percent(s.totals)), True)}{_td(vi_int(report.downtime(s.totals)), True)}"
        f"{_td(vi_int(s.incident_count), True)}{_td(vi_int(s.below_full), True)}</tr>"
        for s in report.summaries())
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _segments(totals: Totals) -> Iterable[tuple[str, int]]:
    return (("up", totals.up), ("down", totals.down), ("unknown", totals.unknown),
            ("maintenance", totals.maintenance))


def _bar(totals: Totals) -> list[tuple[str, int, float]]:
    """(state, minutes, width) of each non-empty segment: proportional, except that a segment under
    :data:`MIN_SEGMENT` px is drawn that wide (taken from the widest) so one down minute stays visible."""
    total = totals.minutes or 1
    present = [(state, minutes) for state, minutes in _segments(totals) if minutes]
    widths = [_BAR_WIDTH * minutes / total for _, minutes in present]
    if widths:
        widest = widths.index(max(widths))
        for i, width in enumerate(widths):
            if width < MIN_SEGMENT and i != widest:
                widths[widest] -= MIN_SEGMENT - width
                widths[i] = MIN_SEGMENT
    return [(state, minutes, width) for (state, minutes), width in zip(present, widths, strict=True)]


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS - 1] + "…"


def _chart(report: AvailabilityReport, rows: Sequence[SubjectRow]) -> str:
    width = _LABEL_WIDTH + _BAR_WIDTH + 110
    height = _ROW * len(rows) + 4
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">']
    for i, row in enumerate(rows):
        y = 2 + i * _ROW
        parts.append(f'<g><title>{_e(row.office)} ({_e(row.agent)})</title>'
                     f'<text x="{_LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">'
                     f'{_e(_short(row.office))}</text>')
        x = float(_LABEL_WIDTH)
        for state, minutes, w in _bar(row.totals):
            parts.append(f'<rect x="{x:.2f}" y="{y + 3}" width="{w:.2f}" height="{_ROW - 6}" '
                         f'fill="{COLOURS[state]}"><title>{_e(STATES[state][0])}: {vi_int(minutes)} phút'
                         '</title></rect>')
            x += w
        parts.append(f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 8}" y="{y + 15}">'
                     f'{_e(vi_percent(report.percent(row.totals)))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    items = "".join(f'<span><span class="swatch" style="background:{COLOURS[s]}"></span>'
                    f'{_both(STATES[s])}</span>' for s in ("up", "down", "unknown", "maintenance"))
    return f'<p class="legend">{items}</p>'


def _meta(report: AvailabilityReport) -> str:
    period = report.period
    days = period.minutes / 1440
    days_text = vi_int(int(days)) if days == int(days) else f"{days:.2f}".replace(".", ",")
    rows = [
        (("Kỳ báo cáo", "period"),
         f"{format_time(period.start, report.tz)} → {format_time(period.end, report.tz)} "
         f"({report.tz_name}; {days_text} ngày = {vi_int(period.minutes)} phút)"),
        (("Thời điểm lập", "generated"), f"{format_time(report.generated_at, report.tz)} ({report.tz_name})"),
        (("Nguồn dữ liệu", "source"), f"Prometheus {_without_scheme(report.source)}"),
        (("Thời gian không có dữ liệu", "unknown minutes"),
         f"{UNKNOWN_AS_TEXT[report.unknown_as][0]} ({UNKNOWN_AS_TEXT[report.unknown_as][1]}, "
         f"--unknown-as {report.unknown_as})"),
        (("Lịch bảo trì", "maintenance file"),
         f"{report.maintenance_file} ({vi_int(report.window_count)} đợt bảo trì / windows)"
         if report.maintenance_file else "không có (none)"),
    ]
    body = "".join(f"<tr><th>{_both(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="meta"><tbody>{body}</tbody></table>'


def _without_scheme(url: str) -> str:
    """The server's address without ``http://``: the file holds no link of any kind."""
    return url.split("://", 1)[-1]


def _section(key: str, content: str, page: bool = True) -> str:
    css = ' class="page"' if page else ""
    return f"<section{css}>{_both(SECTIONS[key], 'h2')}{content}</section>\n"


def render_html(report: AvailabilityReport) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    title = report.title or TITLE[0]
    charts = "".join(_chart(report, report.offices[i:i + CHART_ROWS])
                     for i in range(0, len(report.offices), CHART_ROWS))
    none = "<p>Không có đơn vị. <span class=\"en\">No offices.</span></p>"
    chart = (_legend() + charts) if report.offices else none
    return (
        "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1><p class=\"en\">{_e(TITLE[1])}</p>{_meta(report)}</header>\n"
        + _section("summary", _summary_table(report), page=False)
        + _section("chart", chart)
        + _section("offices", _office_table(report))
        + _section("devices", _device_tables(report))
        + _section("links", _link_table(report))
        + _section("incidents", _incident_table(report))
        + _section("method", f"<p>{_e(METHOD_TEXT[0])}</p><p class=\"en\">{_e(METHOD_TEXT[1])}</p>",
                   page=False)
        + "</body>\n</html>\n"
    )

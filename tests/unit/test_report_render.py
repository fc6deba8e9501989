"""The renderers of ``hatang report`` (hatang/availability/render_html.py, render_text.py): one
self-contained Vietnamese HTML file, a CSV for Excel, Markdown; hostile label values stay text."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from hatang.availability.render_html import COLOURS, render_html
from hatang.availability.render_text import BOM, CSV_COLUMNS, render_csv, render_markdown
from hatang.availability.report_model import AvailabilityReport, build_report
from hatang.availability.timeline import (
    DOWN,
    MAINTENANCE,
    UNKNOWN,
    UP,
    ReportPeriod,
    SeriesTimeline,
    UnknownAs,
)

ICT = timezone(timedelta(hours=7))
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=ICT)
MINUTES = 2000
EVIL_OFFICE = '<script>alert("x")</script> & Co | x'
EVIL_DEVICE = 'sw"><img src=x onerror=alert(1)>'
FORMULA_DEVICE = "=cmd|' /C calc'!A0"


def states(*runs: tuple[int, int]) -> bytearray:
    return bytearray(b"".join(bytes([state]) * count for state, count in runs))


def make_report(unknown_as: UnknownAs = "down") -> AvailabilityReport:
    """Office xa-a: 1999 minutes up and minute 100 down (99.95 %); office xa-evil: all maintenance (no
    availability); devices with hostile names; a link half up, half unknown."""
    period = ReportPeriod(T0, T0 + timedelta(minutes=MINUTES))
    site = {"province": "Phú Thọ", "commune": "Xã Đại Đình"}
    offices = [
        SeriesTimeline(("xa-a",), {"agent": "xa-a", **site}, states((UP, 100), (DOWN, 1), (UP, 1899))),
        SeriesTimeline(("xa-evil",), {"agent": "xa-evil", **site}, states((MAINTENANCE, MINUTES))),
    ]
    devices = [
        SeriesTimeline(("xa-a", EVIL_DEVICE), {"agent": "xa-a", "device": EVIL_DEVICE, **site},
                       states((UP, 1990), (DOWN, 10))),
        SeriesTimeline(("xa-a", FORMULA_DEVICE), {"agent": "xa-a", "device": FORMULA_DEVICE, **site},
                       states((UP, MINUTES))),
    ]
    links = [SeriesTimeline(("xa-a", "tsl", "icmp", "10.0.0.1"),
                            {"agent": "xa-a", "device": "tsl", "method": "icmp", "target": "10.0.0.1",
                             **site},
                            states((UP, 1000), (UNKNOWN, 1000)))]
    return build_report(
        period=period, tz=ICT, tz_name="Asia/Ho_Chi_Minh", generated_at=T0 + timedelta(days=40),
        source="http://127.0.0.1:9090", offices=offices, devices=devices, links=links,
        site_info={"xa-a": {"agent": "xa-a", "site_name": "UBND xã Đại Đình"},
                   "xa-evil": {"agent": "xa-evil", "site_name": EVIL_OFFICE}},
        unknown_as=unknown_as,
        maintenance_file="/etc/hatang/maintenance.yml", windows=(),
    )


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(html: str) -> Collect:
    parser = Collect()
    parser.feed(html)
    parser.close()
    return parser


def test_the_html_is_self_contained() -> None:
    html = render_html(make_report())
    doc = parse(html)
    names = [t for t, _ in doc.tags]
    for forbidden in ("script", "link", "img", "iframe", "object", "embed", "image", "use", "audio", "video"):
        assert forbidden not in names, forbidden
    for tag, attrs in doc.tags:
        assert not {"src", "href", "xlink:href", "srcset", "action"} & attrs.keys(), (tag, attrs)
    css = "".join(doc.styles)
    assert "@media print" in css and "page-break-before" in css
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert not re.search(r"https?://", html)  # not even the source's address as a link
    assert html.startswith("<!DOCTYPE html>") and 'lang="vi"' in html and '<meta charset="utf-8">' in html


def test_hostile_label_values_stay_text_in_html() -> None:
    html = render_html(make_report())
    doc = parse(html)
    assert [t for t, _ in doc.tags if t in ("script", "img")] == []
    assert not any("onerror" in attrs for _, attrs in doc.tags)
    text = "".join(doc.text)
    assert EVIL_DEVICE in text  # shown as the text it is
    assert EVIL_OFFICE in text
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


def test_vietnamese_headings_decimal_comma_and_numbers() -> None:
    html = render_html(make_report())
    text = " ".join("".join(parse(html).text).split())
    for heading in ("Báo cáo mức độ sẵn sàng hạ tầng mạng", "Tóm tắt", "Biểu đồ theo đơn vị",
                    "Kết nối của các đơn vị về trung tâm", "Thiết bị theo đơn vị",
                    "Đường truyền mạng truyền số liệu chuyên dùng", "Các sự cố dài nhất", "Cách tính"):
        assert heading in text, heading
    assert "99,95 %" in text  # 1999 / 2000
    assert "99.95" not in text
    assert "1.999" in text  # minutes up, thousands with a dot
    assert "2026-11-01 01:40 → 2026-11-01 01:41 (1 phút)" in text  # xa-a's one incident
    assert "50,00 %" in text  # the link: 1000 up / 2000 (unknown counted as down)
    assert "—" in text  # xa-evil: all maintenance, no availability
    assert "tính là gián đoạn" in text and "maintenance.yml" in text


def test_the_chart_has_one_bar_per_office_with_proportional_segments_and_a_legend() -> None:
    html = render_html(make_report())
    doc = parse(html)
    assert [t for t, _ in doc.tags].count("svg") == 1
    rects = [attrs for tag, attrs in doc.tags if tag == "rect"]
    # xa-a: up 1999/2000 and down 1/2000 of 560 px = 559.72 and 0.28, but a segment is at least 1.5 px
    # wide, taken from the widest: 558.5 and 1.5; xa-evil: maintenance 2000/2000 = 560
    widths = sorted((attrs["fill"], float(attrs["width"] or 0)) for attrs in rects)
    assert widths == sorted([(COLOURS["up"], 558.5), (COLOURS["down"], 1.5),
                             (COLOURS["maintenance"], 560.0)])
    texts = "".join(doc.text)
    assert "Hoạt động: 1.999 phút" in texts and "Gián đoạn: 1 phút" in texts  # the segments' tooltips
    for state in ("Hoạt động", "Gián đoạn", "Không có dữ liệu", "Bảo trì"):
        assert state in "".join(doc.text)


def test_unknown_as_changes_the_html_numbers() -> None:
    text = "".join(parse(render_html(make_report("excluded"))).text)
    assert "100,00 %" in text  # the link: 1000 up / (2000 - 1000 unknown)
    assert "loại khỏi mẫu số" in text


def read_csv(text: str) -> list[dict[str, str]]:
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text[len(BOM):])))


def test_csv_has_a_bom_the_columns_and_plain_numbers() -> None:
    text = render_csv(make_report())
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(text[1:])))
    assert tuple(header) == CSV_COLUMNS
    rows = read_csv(text)
    assert len(rows) == 5  # 2 offices, 2 devices, 1 link
    office = next(r for r in rows if r["kind"] == "office" and r["agent"] == "xa-a")
    assert office["office_name"] == "UBND xã Đại Đình" and office["commune"] == "Xã Đại Đình"
    assert (office["up_minutes"], office["down_minutes"], office["unknown_minutes"],
            office["maintenance_minutes"]) == ("1999", "1", "0", "0")
    assert office["availability_percent"] == "99.9500" and office["downtime_minutes"] == "1"
    assert (office["incidents"], office["longest_incident_start"], office["longest_incident_end"],
            office["longest_incident_minutes"]) == ("1", "2026-11-01 01:40", "2026-11-01 01:41", "1")
    evil = next(r for r in rows if r["agent"] == "xa-evil")
    assert evil["office_name"] == EVIL_OFFICE and evil["availability_percent"] == ""
    assert evil["maintenance_minutes"] == "2000" and evil["longest_incident_start"] == ""
    link = next(r for r in rows if r["kind"] == "link")
    assert (link["device"], link["method"], link["target"], link["availability_percent"],
            link["downtime_minutes"]) == ("tsl", "icmp", "10.0.0.1", "50.0000", "1000")


def test_csv_never_hands_a_spreadsheet_a_formula() -> None:
    rows = read_csv(render_csv(make_report()))
    devices = {r["device"] for r in rows if r["kind"] == "device"}
    assert devices == {EVIL_DEVICE, "'" + FORMULA_DEVICE}


def test_markdown_has_vietnamese_headings_and_tables_that_a_name_cannot_break() -> None:
    md = render_markdown(make_report())
    lines = md.splitlines()
    assert lines[0] == "# Báo cáo mức độ sẵn sàng hạ tầng mạng"
    for heading in ("## Tóm tắt (Summary)", "## Kết nối của các đơn vị về trung tâm (Offices: connection to "
                    "the centre)", "## Thiết bị theo đơn vị (Devices by office)", "## Các sự cố dài nhất "
                    "(Longest incidents)"):
        assert heading in lines, heading
    office_head = next(line for line in lines if line.startswith("| Đơn vị | Mã agent"))
    columns = office_head.count(" | ") + 1
    table_rows = [line for line in lines if line.startswith("| ") and "| xa-" in line]  # the offices
    assert len(table_rows) == 2 and columns == 11
    for line in table_rows:  # escaped pipes do not add cells
        assert len(re.split(r"(?<!\\)\|", line)) - 2 == columns, line
    evil = next(line for line in table_rows if "xa-evil" in line and "&lt;script&gt;" in line)
    assert "\\| x" in evil and "<script>" not in md
    assert "| 99,95 % |" in next(line for line in table_rows if line.startswith("| UBND xã Đại Đình | xa-a"))


@pytest.mark.parametrize("render", [render_html, render_markdown, render_csv])
def test_an_empty_province_still_renders(render: Callable[[AvailabilityReport], str]) -> None:
    period = ReportPeriod(T0, T0 + timedelta(minutes=60))
    report = build_report(period=period, tz=ICT, tz_name="+07", generated_at=T0, source="http://x",
                          offices=[], devices=[], links=[], site_info={})
    out = render(report)
    assert isinstance(out, str) and out


def test_markdown_cells_cannot_add_links_images_or_emphasis() -> None:
    """A probe target is free text from an office's config: in Markdown it stays text."""
    hostile = "[bấm vào](https://evil.example/x) ![i](https://evil.example/t.png) **to** `code` #1"
    period = ReportPeriod(T0, T0 + timedelta(minutes=10))
    links = [SeriesTimeline(("xa-a", "wan", "tcp", hostile),
                            {"agent": "xa-a", "device": "wan", "method": "tcp", "target": hostile},
                            states((UP, 10)))]
    report = build_report(period=period, tz=ICT, tz_name="Asia/Ho_Chi_Minh", generated_at=T0,
                          source="127.0.0.1:9090", offices=[], devices=[], links=links, site_info={},
                          unknown_as="down", maintenance_file=None, windows=())
    [row] = [line for line in render_markdown(report).splitlines() if "evil.example" in line]
    for markup in ("[bấm", "](", "![", "**", "`code"):
        assert markup not in row.replace("\\" + markup[0], ""), (markup, row)
    assert "\\[bấm vào\\]\\(https://evil.example/x\\) \\!\\[i\\]" in row

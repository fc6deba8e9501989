"""``hatang report`` against a real Prometheus (Debian ``prometheus`` 2.42) loaded with known history.

Six hours of 2026-11-01 in +07:00 (00:00 to 06:00, 360 minutes) are written as OpenMetrics, turned into
TSDB blocks by ``promtool tsdb create-blocks-from openmetrics`` and served by a Prometheus on a free
loopback port (retention 100y, so the old blocks stay). Every expected number below is worked out by
hand from the samples, not by the code under test.

The rule used throughout (hatang/availability/definitions.py): minute ``i`` (``[00:00 + i, 00:00 + i +
1 min)``) takes the value of ``last_over_time(x[3m])`` at the instant that ends it, ``00:00 + i + 1 min``.
Polls are at second :30, so the poll "of minute k" at ``00:00 + k min + 30 s`` lies in the window
``[t - 180 s, t]`` of the minute-end instants t of minutes k, k+1 and k+2, and it is the newest sample
for minute k. So: minute i = the value of poll i; if there is none, of poll i-1, then i-2; else unknown.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import urllib.error
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hatang.availability.maintenance_file import save_windows
from hatang.availability.prometheus_query import PrometheusClient, PrometheusError
from hatang.availability.render_text import BOM
from hatang.availability.timeline import ReportPeriod
from hatang.availability.windows import MaintenanceWindow
from hatang.cli_report import add_parser, gather
from tests.support.hatang import run_hatang, run_subcommand
from tests.support.prometheus import Prometheus, create_blocks, start_prometheus_on_blocks
from tests.support.services import LOOPBACK, free_tcp_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ICT = timezone(timedelta(hours=7))
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=ICT)
T0_TS = 1_793_466_000  # 2026-10-31T17:00:00Z
END_TS = T0_TS + 6 * 3600
PERIOD = ["--from", "2026-11-01 00:00", "--to", "2026-11-01 06:00"]

SITE = {"province": "Tỉnh Phú Thọ"}
A = {"agent": "xa-a", **SITE, "commune": "Xã Đại Đình"}
B = {"agent": "xa-b", **SITE, "commune": "Xã Tam Đảo"}
C = {"agent": "xa-c", **SITE, "commune": "Xã Hợp Châu"}
NAMES = {"xa-a": "UBND xã Đại Đình", "xa-b": "UBND xã Tam Đảo", "xa-c": "UBND xã Hợp Châu"}
AROUND = range(-10, 370)  # polls from ten minutes before the period to ten after it

# (labels, {minute k of the poll at second :30: value}) per metric
HISTORY: dict[str, list[tuple[dict[str, str], dict[int, int]]]] = {
    "hatang_site_info": [({**o, "site_name": NAMES[o["agent"]], "role": "commune"},
                          {k: 1 for k in range(-10, 370, 10)}) for o in (A, B, C)],
    # xa-c is in the inventory only: never an agent_up sample
    "hatang_agent_up": [
        (A, {k: 0 if 120 <= k < 150 else 1 for k in AROUND}),  # the centre lost it 02:00-02:30
        (B, {k: 1 for k in AROUND if not 200 <= k < 260}),  # no data at all for polls 200..259
    ],
    "hatang_device_poll_success": [
        # down before the period and after it (must not count), and for polls 60..79 (01:00-01:20)
        ({**A, "device": "sw-a"}, {k: 0 if k < 0 or 60 <= k < 80 or k >= 360 else 1 for k in AROUND}),
        ({**A, "device": "ups-a"}, {k: 0 if 180 <= k < 200 else 1 for k in AROUND}),  # 03:00-03:20
        ({**B, "device": "rt-b"}, {k: 1 for k in range(-10, 301, 2)}),  # every 120 s, last at 05:00:30
    ],
    "hatang_probe_up": [
        ({**A, "device": "tsl-a", "method": "icmp", "target": "10.0.0.1"},
         {k: 0 if 300 <= k < 310 else 1 for k in AROUND}),  # no answer 05:00-05:10
        ({**B, "device": "tsl-b", "method": "tcp", "target": "10.0.0.2:443"},
         {k: 0 if k == 100 else 1 for k in AROUND}),  # one lost run at 01:40:30
    ],
}


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return T0.replace(hour=hh, minute=mm, second=ss)


WINDOWS = [
    MaintenanceWindow("bt1", "xa-a", at(4, 0), at(4, 30), "Thay switch lõi"),  # whole office xa-a
    MaintenanceWindow("bt2", "xa-a", at(3, 10, 20), at(3, 15), "Thay ắc quy", device="ups-a"),
    MaintenanceWindow("bt3", "xa-b", at(1, 39, 30), at(1, 40, 30), "Kiểm tra", device="tsl-b"),
    MaintenanceWindow("bt4", "xa-b", at(8, 0) + timedelta(days=1), at(9, 0) + timedelta(days=1), "Ngày khác"),
]


def openmetrics() -> str:
    def labels(pairs: dict[str, str]) -> str:
        escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in pairs.values())
        return "{" + ",".join(f'{k}="{v}"' for k, v in zip(pairs, escaped, strict=True)) + "}"

    lines = []
    for name, series in HISTORY.items():
        lines.append(f"# TYPE {name} gauge")
        for pairs, samples in series:
            lines += [f"{name}{labels(pairs)} {value} {T0_TS + 60 * k + 30}"
                      for k, value in sorted(samples.items())]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("report-prometheus")
    source = workdir / "history.om"
    source.write_text(openmetrics(), encoding="utf-8")
    create_blocks(source, workdir / "data")
    server = start_prometheus_on_blocks(workdir, workdir / "data")
    try:
        def loaded() -> bool:
            series = server.api("series", **{"match[]": '{__name__=~"hatang_.+"}', "start": str(T0_TS),
                                             "end": str(END_TS)})
            return len(series) == 10  # 3 + 2 + 3 + 2

        wait_until(loaded, 30, interval=0.2, message="the history to be queryable",
                   ignore=(urllib.error.URLError, ConnectionError))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def maintenance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("maintenance") / "maintenance.yml"
    save_windows(path, WINDOWS)
    return path


def report(*argv: str) -> int:
    """``hatang report ARGV`` through the subcommand's own parser, in this process."""
    return run_subcommand(add_parser, "report", *argv)


def csv_rows(text: str) -> dict[tuple[str, str, str], dict[str, str]]:
    assert text.startswith(BOM)
    rows = csv.DictReader(io.StringIO(text[len(BOM):]))
    return {(r["kind"], r["agent"], r["device"]): r for r in rows}


# up, down, unknown, maintenance, availability %, downtime, incidents, longest: start, end, minutes
Row = tuple[int, int, int, int, str, int, int, str, str, str]


def numbers(row: dict[str, str]) -> Row:
    return (int(row["up_minutes"]), int(row["down_minutes"]), int(row["unknown_minutes"]),
            int(row["maintenance_minutes"]), row["availability_percent"], int(row["downtime_minutes"]),
            int(row["incidents"]), row["longest_incident_start"][11:], row["longest_incident_end"][11:],
            row["longest_incident_minutes"])


# With the maintenance file, unknown counted as down (the default). 360 minutes each.
EXPECTED_MAINTENANCE_DOWN: dict[tuple[str, str, str], Row] = {
    # xa-a: polls 120..149 are 0 -> minutes 120..149 (02:00-02:30) down, 30. bt1 covers the office:
    # minutes 240..269 (04:00-04:30) maintenance, 30. up = 360 - 30 - 30 = 300; 300/330 = 90.9090..%
    ("office", "xa-a", ""): (300, 30, 0, 30, "90.9090", 30, 1, "02:00", "02:30", "30"),
    # xa-b: no polls 200..259. Minutes 200, 201 still see poll 199 (within 3 min); 202..259 see none:
    # unknown 58 (03:22-04:20), counted as down; poll 260 is up again. 302/360 = 83.8888..%
    ("office", "xa-b", ""): (302, 0, 58, 0, "83.8888", 58, 1, "03:22", "04:20", "58"),
    # xa-c: listed in hatang_site_info, never an agent_up sample: 360 unknown = one 6-hour incident
    ("office", "xa-c", ""): (0, 0, 360, 0, "0.0000", 360, 1, "00:00", "06:00", "360"),
    # sw-a: polls 60..79 down (01:00-01:20) = 20; the zeros before 00:00 and after 06:00 do not count
    # (minute 0 ends at 00:01:00, whose newest poll is 00:00:30 = 1; minute 359 ends at 06:00:00, the
    # poll of 06:00:30 is after it). bt1: 30 maintenance. up 310; 310/330 = 93.9393..%
    ("device", "xa-a", "sw-a"): (310, 20, 0, 30, "93.9393", 20, 1, "01:00", "01:20", "20"),
    # ups-a: polls 180..199 down (03:00-03:20) = 20 minutes, of which bt2 [03:10:20, 03:15:00) takes
    # minutes 03:11, 03:12, 03:13, 03:14 (4; 03:10 starts before the window) -> down 16 in two incidents,
    # 03:00-03:11 (11) and 03:15-03:20 (5); with bt1's 30: maintenance 34; up 360-16-34 = 310;
    # 310/326 = 95.0920..%
    ("device", "xa-a", "ups-a"): (310, 16, 0, 34, "95.0920", 16, 2, "03:00", "03:11", "11"),
    # rt-b: polled every 120 s (even k), so each minute sees poll i or i-1. The last poll is 300
    # (05:00:30): minutes 300, 301, 302 see it; 303..359 (05:03-06:00) unknown, 57. 303/360 = 84.1666..%
    ("device", "xa-b", "rt-b"): (303, 0, 57, 0, "84.1666", 57, 1, "05:03", "06:00", "57"),
    # tsl-a: polls 300..309 down (05:00-05:10) = 10; bt1 (an office window) covers its links: 30.
    # up 320; 320/330 = 96.9696..%
    ("link", "xa-a", "tsl-a"): (320, 10, 0, 30, "96.9696", 10, 1, "05:00", "05:10", "10"),
    # tsl-b: poll 100 down -> minute 100 (01:40) down, but bt3 [01:39:30, 01:40:30) covers the minute
    # starting 01:40:00 (and not 01:39, which starts before the window): maintenance 1, up 359: 100 %
    ("link", "xa-b", "tsl-b"): (359, 0, 0, 1, "100.0000", 0, 0, "", "", ""),
}


def test_the_numbers_with_maintenance_match_the_hand_computed_ones(
    prometheus: Prometheus, maintenance: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.csv"
    assert report("--prometheus", prometheus.url, *PERIOD, "--maintenance", str(maintenance),
                  "--format", "csv", "--output", str(out)) == 0
    rows = csv_rows(out.read_text(encoding="utf-8"))
    assert {key: numbers(row) for key, row in rows.items()} == EXPECTED_MAINTENANCE_DOWN
    assert {rows[("office", a, "")]["office_name"] for a in NAMES} == set(NAMES.values())
    assert rows[("device", "xa-b", "rt-b")]["commune"] == "Xã Tam Đảo"
    assert rows[("link", "xa-b", "tsl-b")]["target"] == "10.0.0.2:443"


def test_without_maintenance_and_with_the_other_unknown_modes(prometheus: Prometheus, tmp_path: Path,
                                                               maintenance: Path) -> None:
    def run(*extra: str) -> dict[tuple[str, str, str], Row]:
        out = tmp_path / "r.csv"
        assert report("--prometheus", prometheus.url, *PERIOD, "--format", "csv", "-o", str(out), *extra) == 0
        return {k: numbers(v) for k, v in csv_rows(out.read_text(encoding="utf-8")).items()}

    plain = run()
    # no maintenance: xa-a up 330/360 = 91.6666; sw-a and ups-a 340/360 = 94.4444 with one 20-minute
    # incident each; tsl-a 350/360 = 97.2222; tsl-b 359/360 = 99.7222 with the one minute 01:40-01:41
    assert plain[("office", "xa-a", "")][:6] == (330, 30, 0, 0, "91.6666", 30)
    assert plain[("device", "xa-a", "sw-a")][:7] == (340, 20, 0, 0, "94.4444", 20, 1)
    assert plain[("device", "xa-a", "ups-a")] == (340, 20, 0, 0, "94.4444", 20, 1, "03:00", "03:20", "20")
    assert plain[("link", "xa-a", "tsl-a")][:6] == (350, 10, 0, 0, "97.2222", 10)
    assert plain[("link", "xa-b", "tsl-b")] == (359, 1, 0, 0, "99.7222", 1, 1, "01:40", "01:41", "1")

    excluded = run("--maintenance", str(maintenance), "--unknown-as", "excluded")
    # unknown leaves the denominator: xa-b 302/302, rt-b 303/303; xa-c 0/0 has no availability;
    # downtime is down only, and unknown minutes make no incident
    assert excluded[("office", "xa-b", "")] == (302, 0, 58, 0, "100.0000", 0, 0, "", "", "")
    assert excluded[("office", "xa-c", "")] == (0, 0, 360, 0, "", 0, 0, "", "", "")
    assert excluded[("device", "xa-b", "rt-b")][4:7] == ("100.0000", 0, 0)
    assert excluded[("office", "xa-a", "")] == EXPECTED_MAINTENANCE_DOWN[("office", "xa-a", "")]

    up = run("--maintenance", str(maintenance), "--unknown-as", "up")
    # unknown counts as up: xa-b (302 + 58)/360, xa-c 360/360, rt-b (303 + 57)/360
    assert up[("office", "xa-b", "")][4:7] == ("100.0000", 0, 0)
    assert up[("office", "xa-c", "")][4:7] == ("100.0000", 0, 0)
    assert up[("device", "xa-b", "rt-b")][4:7] == ("100.0000", 0, 0)
    assert up[("device", "xa-a", "ups-a")] == EXPECTED_MAINTENANCE_DOWN[("device", "xa-a", "ups-a")]


def test_html_and_markdown_show_the_same_numbers_and_the_longest_incidents(
    prometheus: Prometheus, maintenance: Path, tmp_path: Path
) -> None:
    html_file, md_file = tmp_path / "r.html", tmp_path / "r.md"
    common = ["--prometheus", prometheus.url, *PERIOD, "--maintenance", str(maintenance)]
    assert report(*common, "--title", "Tháng 11 <thử>", "-o", str(html_file)) == 0
    assert report(*common, "--format", "md", "--top", "3", "-o", str(md_file)) == 0
    html = html_file.read_text(encoding="utf-8")
    for text in ("90,90 %", "83,88 %", "0,00 %", "93,93 %", "95,09 %", "84,16 %", "96,96 %", "100,00 %",
                 "UBND xã Hợp Châu", "Tháng 11 &lt;thử&gt;", "2026-11-01 00:00 → 2026-11-01 06:00",
                 "4 đợt bảo trì"):
        assert text in html, text
    # pooled offices: up 300 + 302 + 0 = 602 of 1080 minutes less 30 maintenance: 602/1050 = 57.33 %
    assert "57,33 %" in html
    md = md_file.read_text(encoding="utf-8")
    # --top 3: xa-c 00:00-06:00 (360), xa-b 03:22-04:20 (58), rt-b 05:03-06:00 (57)
    top = md.split("## Các sự cố dài nhất")[1].split("##")[0]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in top.splitlines()
             if line.startswith("| ") and line[2].isdigit()]
    assert [c[4:] for c in cells] == [["2026-11-01 00:00", "2026-11-01 06:00", "360"],
                                      ["2026-11-01 03:22", "2026-11-01 04:20", "58"],
                                      ["2026-11-01 05:03", "2026-11-01 06:00", "57"]]
    assert [c[1] for c in cells] == ["UBND xã Hợp Châu", "UBND xã Tam Đảo", "UBND xã Tam Đảo"]


def test_chunked_queries_give_the_same_minutes(prometheus: Prometheus) -> None:
    period = ReportPeriod(T0, T0 + timedelta(hours=6))
    whole = gather(PrometheusClient(prometheus.url), period)
    chunked = gather(PrometheusClient(prometheus.url, max_points=7), period)
    # 360 steps in chunks of 7: 52 requests per subject, 3 subjects, plus the names
    assert (whole.requests, chunked.requests) == (3 + 1, 3 * 52 + 1)
    for kind in ("office", "device", "link"):
        a, b = whole.timelines[kind].timelines, chunked.timelines[kind].timelines
        assert {k: bytes(v.states) for k, v in a.items()} == {k: bytes(v.states) for k, v in b.items()}
    assert set(whole.site_info) == {"xa-a", "xa-b", "xa-c"}


def test_the_command_as_a_real_process(prometheus: Prometheus, maintenance: Path, tmp_path: Path) -> None:
    out = tmp_path / "process.csv"
    done = run_hatang(["report", "--prometheus", prometheus.url, *PERIOD, "--maintenance", str(maintenance),
                       "--format", "csv", "--output", str(out)])
    assert done.returncode == 0, done.stderr
    rows = csv_rows(out.read_text(encoding="utf-8"))
    assert {key: numbers(row) for key, row in rows.items()} == EXPECTED_MAINTENANCE_DOWN
    assert "wrote" in done.stderr
    html = run_hatang(["report", "--prometheus", prometheus.url, *PERIOD])
    assert html.returncode == 0 and html.stdout.startswith("<!DOCTYPE html>") and "90,90 %" not in html.stdout
    assert "91,66 %" in html.stdout  # no maintenance file: xa-a 330/360


def test_prometheus_down_is_exit_1_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://{LOOPBACK}:{free_tcp_port()}"  # nothing listens there
    assert report("--prometheus", url, "--month", "2026-11") == 1
    err = capsys.readouterr().err
    assert f"cannot reach Prometheus at {url}" in err and "--prometheus" in err


def test_a_prometheus_that_does_not_answer_is_a_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as server:  # accepts connections (the kernel's backlog) and never answers
        server.bind((LOOPBACK, free_tcp_port()))
        server.listen(8)
        url = f"http://{LOOPBACK}:{server.getsockname()[1]}"
        assert report("--prometheus", url, "--month", "2026-11", "--timeout", "0.5") == 1
    err = capsys.readouterr().err
    assert f"Prometheus at {url} did not answer within 0.5 s" in err and "--timeout" in err


NO_NAMES = {"status": "success", "data": {"resultType": "vector", "result": []}}
MALFORMED = {  # range-query answers a proxy or another server might give instead of Prometheus's
    "no values": [{"metric": {"agent": "xa-a"}}],
    "a null value": [{"metric": {"agent": "xa-a"}, "values": [[1793466060, None]]}],
    "an item that is not an object": ["xa-a"],
    "a null metric": [{"metric": None, "values": []}],
    "a point that is not a pair": [{"metric": {"agent": "xa-a"}, "values": [[1793466060]]}],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_answer_is_exit_1_not_a_traceback(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": MALFORMED[case]}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = json.dumps(NO_NAMES if self.path.startswith("/api/v1/query?") else body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{LOOPBACK}:{server.server_address[1]}"
        assert report("--prometheus", url, "--from", "2026-11-01", "--to", "2026-11-01") == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert f"{url} does not answer like the Prometheus HTTP API" in err and "Traceback" not in err, err


def test_the_apis_error_text_is_quoted(prometheus: Prometheus) -> None:
    with pytest.raises(PrometheusError, match=r"HTTP 400 \(bad_data\): .*parse error") as caught:
        PrometheusClient(prometheus.url).instant("last_over_time(", END_TS)
    assert prometheus.url in str(caught.value)
    with pytest.raises(PrometheusError, match=r"HTTP 404.*without /api/v1"):
        PrometheusClient(prometheus.url + "/nothing-here").instant("up", END_TS)


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "2026-11-01 00:00:30", "--to", "2026-11-02"], "whole minute"),
    (["--from", "2026-11-02", "--to", "2026-11-01 06:00"], "before it starts"),
    (["--from", "01/11/2026", "--to", "2026-11-02"], "cannot read the time"),
    (["--month", "2026-13"], "use YYYY-MM"),
    (["--month", "2026-11", "--from", "2026-11-01"], "not both"),
    ([], "give the period"),
    (["--month", "2026-11", "--tz", "Mars/Olympus"], "unknown time zone"),
])
def test_bad_dates_are_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("--prometheus", "http://127.0.0.1:9", *argv) == 2
    assert message in capsys.readouterr().err


def test_a_bad_maintenance_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nwindows:\n  - id: x\n    site: xa-a\n", encoding="utf-8")
    assert report("--prometheus", "http://127.0.0.1:9", "--month", "2026-11", "--maintenance", str(bad)) == 2
    assert "maintenance file error" in capsys.readouterr().err

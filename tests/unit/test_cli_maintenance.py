"""``hatang maintenance`` without Alertmanager (hatang/cli_maintenance.py): what ``add`` accepts and
refuses, the table and JSON of ``list``, ``remove``, and the exit codes. The silences themselves are in
tests/integration/test_maintenance_silences.py (a real Alertmanager)."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatang.availability.maintenance_file import load_windows, save_windows
from hatang.availability.windows import MaintenanceWindow, format_time, zone
from hatang.cli_maintenance import add_parser, render_table, state_of
from tests.support.hatang import run_subcommand

ICT = zone()


def run(*argv: str) -> int:
    """``hatang maintenance ARGV`` through the subcommand's own parser, in this process."""
    return run_subcommand(add_parser, "maintenance", *argv)


def local(hours: float) -> str:
    """A time ``hours`` from now as typed in Hà Nội (minutes, no offset)."""
    return format_time(datetime.now(UTC) + timedelta(hours=hours), ICT)


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HATANG_ALERTMANAGER_URL", raising=False)
    file = tmp_path / "maintenance.yaml"
    monkeypatch.setenv("HATANG_MAINTENANCE_FILE", str(file))
    return file


def test_add_records_a_window_without_a_silence(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("add", "--site", "xa-thuong-lam", "--from", local(1), "--to", local(3),
               "--reason", "Thay switch lõi", "--created-by", "an") == 0
    out, err = capsys.readouterr()
    assert out.startswith("added bt1: xa-thuong-lam, (cả văn phòng), ")
    assert "no silence created" in err
    [window] = load_windows(path)
    assert (window.id, window.site, window.device, window.reason) == ("bt1", "xa-thuong-lam", None,
                                                                      "Thay switch lõi")
    assert window.created_by == "an" and window.silence_id is None and window.created_at is not None
    assert format_time(window.start, ICT) == local(1)


def test_a_bare_date_for_to_includes_that_day(path: Path) -> None:
    tomorrow = (datetime.now(ICT) + timedelta(days=1)).date()
    assert run("add", "--site", "xa-a", "--device", "ups-1", "--from", str(tomorrow), "--to", str(tomorrow),
               "--reason", "Bảo dưỡng UPS") == 0
    [window] = load_windows(path)
    assert window.start == datetime.combine(tomorrow, datetime.min.time(), ICT)
    assert window.end - window.start == timedelta(days=1) and window.device == "ups-1"


@pytest.mark.parametrize(("start", "end", "extra", "message"), [
    (3, 1, [], "must be after --from"),
    (-5, -1, [], "the window is already over"),
    (1, 24 * 40, [], "more than 31: check --from/--to, or pass --long"),
    (1, 2, ["--site", "xa\tb"], "control characters"),
    (1, 2, ["--site", " "], "must not be empty"),
    (1, 2, ["--device", ""], "must not be empty"),
    (1, 2, ["--reason", "  "], "--reason must not be empty"),
    (1, 2, ["--tz", "Mars/Olympus"], "unknown time zone"),
    (1, 2, ["--alertmanager", "127.0.0.1:9093"], "is not an Alertmanager URL"),
])
def test_add_refuses_what_cannot_be_meant(path: Path, capsys: pytest.CaptureFixture[str], start: float,
                                          end: float, extra: list[str], message: str) -> None:
    argv = {"--site": "xa-a", "--from": local(start), "--to": local(end), "--reason": "r"}
    for option, value in zip(extra[::2], extra[1::2], strict=True):
        argv[option] = value
    assert run("add", *(x for pair in argv.items() for x in pair)) == 2
    assert message in capsys.readouterr().err
    assert not path.exists()


def test_add_refuses_an_unreadable_time(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("add", "--site", "xa-a", "--from", "ngày mai", "--to", local(2), "--reason", "r") == 2
    assert "cannot read the time 'ngày mai'" in capsys.readouterr().err


def test_a_long_window_needs_long(path: Path) -> None:
    assert run("add", "--site", "xa-a", "--from", local(1), "--to", local(24 * 40), "--reason", "r",
               "--long") == 0


def test_a_window_done_but_not_recorded_in_time_needs_past_and_gets_no_silence(
        path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an Alertmanager URL nothing listens on: --past must not even try to reach it
    assert run("add", "--site", "xa-a", "--from", local(-5), "--to", local(-1), "--reason", "Thay UPS",
               "--past", "--alertmanager", "http://127.0.0.1:9") == 0
    assert "recorded after the fact (--past): no silence" in capsys.readouterr().err
    [window] = load_windows(path)
    assert window.silence_id is None and format_time(window.end, ICT) == local(-1)


def test_a_name_no_agent_has_is_a_warning(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("add", "--site", "Xã Thượng Lâm", "--from", local(1), "--to", local(2), "--reason", "r") == 0
    assert "warning: --site 'Xã Thượng Lâm' is not a name hatang gives" in capsys.readouterr().err


def test_overlapping_windows_are_kept_with_a_note(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("add", "--site", "xa-a", "--from", local(1), "--to", local(5), "--reason", "office") == 0
    assert run("add", "--site", "xa-b", "--from", local(1), "--to", local(5), "--reason", "neighbour") == 0
    capsys.readouterr()
    assert run("add", "--site", "xa-a", "--device", "sw", "--from", local(4), "--to", local(6),
               "--reason", "device") == 0
    err = capsys.readouterr().err
    assert "note: overlaps bt1 (xa-a, (cả văn phòng)" in err and "bt2" not in err
    assert [w.id for w in load_windows(path)] == ["bt1", "bt2", "bt3"]


def test_file_option_and_missing_directory(tmp_path: Path, path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.yaml"
    assert run("add", "--file", str(other), "--site", "xa-a", "--from", local(1), "--to", local(2),
               "--reason", "r") == 0
    assert len(load_windows(other)) == 1 and not path.exists()
    missing = tmp_path / "nowhere" / "m.yaml"
    assert run("add", "--file", str(missing), "--site", "xa-a", "--from", local(1), "--to", local(2),
               "--reason", "r") == 2
    assert f"the directory {missing.parent} does not exist" in capsys.readouterr().err


def test_a_bad_file_is_left_alone(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path.write_text("version: 1\nwindows:\n  - id: bt1\n", encoding="utf-8")
    assert run("add", "--site", "xa-a", "--from", local(1), "--to", local(2), "--reason", "r") == 2
    err = capsys.readouterr().err
    assert "nothing changed" in err and "windows[0].site: required key is missing" in err
    assert path.read_text() == "version: 1\nwindows:\n  - id: bt1\n"
    assert run("list") == 2 and run("remove", "bt1") == 2


def _windows_around_now() -> list[MaintenanceWindow]:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    return [
        MaintenanceWindow("bt1", "xa-a", now - 5 * hour, now - 4 * hour, "đã xong", silence_id="s-1"),
        MaintenanceWindow("bt2", "xa-a", now - hour, now + hour, "Thay switch lõi", device="core-switch",
                          silence_id="s-2"),
        MaintenanceWindow("bt3", "phuong-an-tuong", now + 2 * hour, now + 3 * hour, "Cắt điện"),
    ]


def test_list_shows_current_and_upcoming_in_a_table(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_windows(path, _windows_around_now())
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Giờ / times: Asia/Ho_Chi_Minh"
    assert lines[1].split("  ")[0] == "ID" and "TRẠNG THÁI/STATE" in lines[1] and "LÝ DO/REASON" in lines[1]
    assert lines[2].startswith("bt2 ") and "core-switch" in lines[2] and "đang diễn ra/active" in lines[2]
    assert lines[3].startswith("bt3 ") and "(cả văn phòng)" in lines[3] and "sắp tới/upcoming" in lines[3]
    assert lines[3].endswith("Cắt điện") and "s-2" in lines[2]
    assert lines[4] == "(1 window(s) already over not shown; --all shows them)"
    # the columns line up (the reason starts at the same column on every row)
    assert len({line.index(reason) for line, reason in zip(lines[2:4], ("Thay", "Cắt"), strict=True)}) == 1
    assert run("list", "--all") == 0
    out = capsys.readouterr().out
    assert "bt1 " in out and "đã kết thúc/over" in out


def test_list_json_for_scripts(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    windows = _windows_around_now()
    save_windows(path, windows)
    assert run("list", "--format", "json", "--all", "--tz", "UTC") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(w["id"], w["state"]) for w in listed] == [
        ("bt1", "over"), ("bt2", "active"), ("bt3", "upcoming")]
    assert listed[1]["device"] == "core-switch" and listed[2]["device"] is None
    assert listed[1]["from"] == windows[1].start.astimezone(UTC).isoformat()
    assert listed[2]["reason"] == "Cắt điện" and listed[1]["silence_id"] == "s-2"


def test_list_of_nothing(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list") == 0
    assert "no maintenance windows" in capsys.readouterr().out
    assert run("list", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_remove(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_windows(path, _windows_around_now())
    assert run("remove", "bt9") == 2
    assert "no window 'bt9'" in (err := capsys.readouterr().err) and "its ids: bt1, bt2, bt3" in err
    assert run("remove", "bt2") == 0
    out, err = capsys.readouterr()
    assert out.startswith("removed bt2: xa-a, core-switch")
    assert "silence s-2 stays until it ends" in err and "amtool silence expire s-2" in err
    assert run("remove", "bt1") == 0
    assert "its time counts in availability reports again" in capsys.readouterr().err
    assert [w.id for w in load_windows(path)] == ["bt3"]
    assert run("add", "--site", "xa-a", "--from", local(1), "--to", local(2), "--reason", "r") == 0
    assert [w.id for w in load_windows(path)] == ["bt3", "bt4"]  # bt1 and bt2 are not given again


def test_state_and_table_helpers() -> None:
    now = datetime.now(UTC)
    window = MaintenanceWindow("bt1", "xa-a", now, now + timedelta(hours=1), "Nâng cấp")
    assert [state_of(window, now + timedelta(minutes=m)) for m in (-1, 0, 59, 60)] == [
        "upcoming", "active", "active", "over"]
    decomposed = "Nâng cấp".replace("â", "a\u0302")  # typed with a combining circumflex
    table = render_table([window, MaintenanceWindow("bt22", decomposed, now, now, "x")], now, ICT)
    rows = table.splitlines()

    def column(row: str) -> int:  # where "(cả" starts on the screen: combining marks take no column
        return sum(not unicodedata.combining(c) for c in row[:row.index("(cả")])

    assert column(rows[1]) == column(rows[2]) and rows[2].index("(cả") == rows[1].index("(cả") + 1

"""The planned-maintenance file (hatang/availability/maintenance_file.py): round trip, atomic writes,
errors with key paths, the flock that keeps concurrent adds, ids that are never reused, time zones."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hatang.availability import maintenance_file
from hatang.availability.maintenance_file import (
    HEADER,
    MaintenanceFile,
    label_value_problem,
    load_windows,
    lock_path,
    read_maintenance_file,
    save_windows,
    update,
    write_maintenance_file,
    yaml_string,
)
from hatang.availability.windows import MaintenanceWindow, parse_time, zone
from hatang.config_errors import ConfigError
from hatang.yaml_loading import parse_yaml

ICT = zone()


def window(window_id: str = "bt1", site: str = "xa-thuong-lam", *, device: str | None = None,
           start: str = "2026-11-03 08:00", end: str = "2026-11-03 12:00", reason: str = "Thay switch lõi",
           created_by: str = "", created_at: datetime | None = None,
           silence_id: str | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(id=window_id, site=site, start=parse_time(start, ICT), end=parse_time(end, ICT),
                             reason=reason, device=device, created_by=created_by, created_at=created_at,
                             silence_id=silence_id)


# --- round trip --------------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    windows = [
        window("bt1", created_by="an", created_at=datetime(2026, 11, 1, 9, 12, 44, tzinfo=ICT),
               silence_id="1b012089-1f89-4132-9d52-43ce547a7e65"),
        window("bt2", "phuong-an-tuong", device="core-switch", start="2026-11-04T22:00:00+00:00",
               end="2026-11-05 06:30:15", reason='Cắt điện "theo lịch"\nđiện lực; \u2028 \x7f 🙂 \\ # :'),
    ]
    save_windows(path, windows)
    assert load_windows(path) == windows
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER) and "\nversion: 1\n" in text and "\nids_issued: 2\n" in text
    assert "hatang maintenance" in HEADER and "Back this file up" in HEADER
    assert "Cắt điện" in text  # Vietnamese stays readable in the file
    # another YAML reader (the report's, or a person's tool) sees the same document
    doc = parse_yaml(text, path)
    assert doc["windows"][1]["from"] == "2026-11-04T22:00:00+00:00"
    assert doc["windows"][1]["reason"] == windows[1].reason
    assert "device" not in doc["windows"][0]  # a whole-office window has no device key


def test_missing_and_empty_files_have_no_windows(tmp_path: Path) -> None:
    assert load_windows(tmp_path / "absent.yaml") == []
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert load_windows(tmp_path / "empty.yaml") == []
    save_windows(tmp_path / "none.yaml", [])
    assert "windows: []" in (tmp_path / "none.yaml").read_text()
    assert load_windows(tmp_path / "none.yaml") == []


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_every_text_is_written_as_yaml_and_json_alike(text: str) -> None:
    quoted = yaml_string(text)
    assert json.loads(quoted) == text
    assert parse_yaml(f"k: {quoted}\n", Path("test.yaml")) == {"k": text}


def test_hand_written_unquoted_times_and_ids_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nwindows:\n  - id: tet-2027\n    site: xa-a\n"
                    "    from: 2027-02-05T00:00:00+07:00\n    to: 2027-02-10 00:00:00Z\n    reason: Tết\n",
                    encoding="utf-8")
    [loaded] = load_windows(path)
    assert loaded.id == "tet-2027" and loaded.start == datetime(2027, 2, 4, 17, 0, tzinfo=UTC)
    assert loaded.end == datetime(2027, 2, 10, tzinfo=UTC) and loaded.device is None


# --- atomic writes -----------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "maintenance.yaml"
    save_windows(path, [window("bt1")])
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        save_windows(path, [window("bt1"), window("bt2", start="2026-12-01", end="2026-12-02")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maintenance.yaml"]


def test_a_write_interrupted_before_the_rename_leaves_the_old_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "maintenance.yaml"
    save_windows(path, [window("bt1")])
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_windows(path, [])
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_permissions_are_kept_and_new_files_are_readable_by_the_report(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    save_windows(path, [window()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    save_windows(path, [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# --- a bad file --------------------------------------------------------------------------------------

GOOD = ('  - id: "bt1"\n    site: "xa-a"\n    from: "2026-11-03T08:00:00+07:00"\n'
        '    to: "2026-11-03T12:00:00+07:00"\n    reason: "r"\n')


@pytest.mark.parametrize(("windows", "key", "fragment"), [
    ('  - id: "bt2"\n    site: "xa-a"\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T07:00:00+07:00"\n    reason: "r"\n', "windows[1].to", "must be after 'from'"),
    ('  - id: "bt2"\n    site: "xa-a"\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T09:00:00+07:00"\n    reson: "r"\n', "windows[1].reson", "did you mean 'reason'?"),
    ('  - id: "bt2"\n    site: "xa-a"\n    to: "2026-11-03T09:00:00+07:00"\n    reason: "r"\n',
     "windows[1].from", "required key is missing"),
    ('  - id: "bt2"\n    site: "xa-a"\n    from: "2026-11-03 08:00"\n    to: "2026-11-03T09:00:00+07:00"\n'
     '    reason: "r"\n', "windows[1].from", "no UTC offset"),
    ('  - id: "bt2"\n    site: "xa-a"\n    from: 2026-11-03\n    to: "2026-11-04T09:00:00+07:00"\n'
     '    reason: "r"\n', "windows[1].from", "cannot read '2026-11-03' as a time"),
    ('  - id: "bt2"\n    site: "xa-a"\n    from: "tomorrow"\n    to: "2026-11-04T09:00:00+07:00"\n'
     '    reason: "r"\n', "windows[1].from", "ISO 8601"),
    (GOOD, "windows[1].id", "also used by windows[0]"),
    ('  - id: "bt 2"\n    site: "xa-a"\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T09:00:00+07:00"\n    reason: "r"\n', "windows[1].id", "is not an id"),
    ('  - id: "bt2"\n    site: ""\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T09:00:00+07:00"\n    reason: "r"\n', "windows[1].site", "must not be empty"),
    ('  - id: "bt2"\n    site: "xa-a"\n    device: "sw\\t1"\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T09:00:00+07:00"\n    reason: "r"\n', "windows[1].device", "control characters"),
    ('  - id: "bt2"\n    site: 42\n    from: "2026-11-03T08:00:00+07:00"\n'
     '    to: "2026-11-03T09:00:00+07:00"\n    reason: "r"\n', "windows[1].site", "must be text"),
    ("  - just a line\n", "windows[1]", "must be a mapping"),
])
def test_a_bad_window_is_named_by_its_key_path(tmp_path: Path, windows: str, key: str, fragment: str) -> None:
    path = tmp_path / "maintenance.yaml"
    path.write_text(f"version: 1\nwindows:\n{GOOD}{windows}", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_windows(path)
    assert caught.value.path == str(path)
    messages = dict(caught.value.problems)
    assert key in messages, caught.value.problems
    assert fragment in messages[key], messages[key]
    assert f"{path}: {key}: " in str(caught.value)


@pytest.mark.parametrize(("text", "key", "fragment"), [
    (f"windows:\n{GOOD}", "version", "add 'version: 1'"),
    (f"version: 2\nwindows:\n{GOOD}", "version", "unsupported version 2"),
    (f"version: 1\nwindow:\n{GOOD}", "window", "did you mean 'windows'?"),
    ("version: 1\nwindows: bt1\n", "windows", "must be a list"),
    ("version: 1\nids_issued: -1\nwindows: []\n", "ids_issued", "whole number"),
    ("- 1\n- 2\n", "", "must be a YAML mapping"),
    ("version: 1\nwindows: [\n", "", "invalid YAML"),
    ("version: 1\nversion: 1\nwindows: []\n", "version", "key given twice"),
])
def test_a_bad_file_is_named_by_its_key_path(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = tmp_path / "maintenance.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_maintenance_file(path)
    messages = dict(caught.value.problems)
    assert key in messages and fragment in messages[key], caught.value.problems


def test_label_value_rules() -> None:
    assert label_value_problem("xa-thuong-lam") is None and label_value_problem("Máy chủ 1") is None
    assert label_value_problem(" ") == "must not be empty"
    assert "control" in (label_value_problem("a\nb") or "")
    assert "UTF-8" in (label_value_problem("a\udcff") or "")


# --- ids ---------------------------------------------------------------------------------------------


def test_ids_are_unique_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    for _ in range(3):
        update(path, lambda f: f.with_window(window(f.next_id())))
    assert [w.id for w in load_windows(path)] == ["bt1", "bt2", "bt3"]
    update(path, lambda f: f.without("bt3"))
    update(path, lambda f: f.without("bt2"))
    assert read_maintenance_file(path).next_id() == "bt4"  # bt2 and bt3 are gone, their ids too
    update(path, lambda f: f.without("bt1"))
    assert load_windows(path) == [] and read_maintenance_file(path).next_id() == "bt4"
    # save_windows (the public writer) keeps the counter of the file it replaces
    save_windows(path, [window("tet-2027")])
    assert read_maintenance_file(path).next_id() == "bt4"


def test_a_counter_behind_the_ids_in_the_file_does_not_repeat_an_id(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    write_maintenance_file(path, MaintenanceFile((window("bt7"), window("bt2")), ids_issued=1))
    path.write_text(path.read_text().replace("ids_issued: 7", "ids_issued: 1"))
    assert "ids_issued: 1" in path.read_text()
    assert read_maintenance_file(path).next_id() == "bt8"


# --- concurrency -------------------------------------------------------------------------------------


def _add_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        def add_one(current: MaintenanceFile, reason: str = f"worker {worker} #{i}") -> MaintenanceFile:
            return current.with_window(window(current.next_id(), reason=reason))

        update(Path(path), add_one)


def _check_all_kept(path: Path, workers: int, count: int) -> None:
    windows = load_windows(path)
    assert len(windows) == workers * count
    assert sorted(w.reason for w in windows) == sorted(f"worker {w} #{i}" for w in range(workers)
                                                       for i in range(count))
    assert sorted(int(w.id[2:]) for w in windows) == list(range(1, workers * count + 1))
    assert lock_path(path).exists()


def test_concurrent_adds_from_threads_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    threads = [threading.Thread(target=_add_many, args=(str(path), n, 15)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    _check_all_kept(path, 8, 15)


def test_concurrent_adds_from_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_many, args=(str(path), n, 10)) for n in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * 4
    _check_all_kept(path, 4, 10)


def test_a_change_that_raises_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    save_windows(path, [window()])
    before = path.read_bytes()

    def refuse(current: MaintenanceFile) -> MaintenanceFile:
        raise RuntimeError("Alertmanager said no")

    with pytest.raises(RuntimeError):
        update(path, refuse)
    assert path.read_bytes() == before


# --- time zones --------------------------------------------------------------------------------------


def test_a_window_entered_in_ict_reads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    entered = window(start="2026-11-03 08:00", end="2026-11-30")  # --to 2026-11-30 is [.., 2026-11-30 00:00)
    save_windows(path, [entered])
    text = path.read_text()
    assert 'from: "2026-11-03T08:00:00+07:00"' in text and 'to: "2026-11-30T00:00:00+07:00"' in text
    [loaded] = load_windows(path)
    assert loaded == entered
    assert loaded.start == datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
    assert loaded.start.utcoffset() == timedelta(hours=7)
    # end of day: a bare date for the end includes that day
    assert parse_time("2026-11-30", ICT, end_of_day=True) == datetime(2026, 12, 1, tzinfo=ICT)


def test_offsets_are_kept_as_entered(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    utc_window = window(start="2026-11-03T01:00:00Z", end="2026-11-03T05:00:00+00:00")
    other = window("bt2", start="2026-11-03T10:00:00+09:00", end="2026-11-03 12:00")
    save_windows(path, [utc_window, other])
    loaded = load_windows(path)
    assert loaded == [utc_window, other]
    assert loaded[0].start == parse_time("2026-11-03 08:00", ICT)  # the same instant as 08:00 in Hà Nội
    assert loaded[1].start.utcoffset() == timedelta(hours=9)
    assert loaded[1].end.tzinfo == timezone(timedelta(hours=7))


def test_lock_file_sits_beside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.yaml"
    with maintenance_file.file_lock(path):
        assert lock_path(path) == tmp_path / "maintenance.yaml.lock" and lock_path(path).exists()
    assert os.listdir(tmp_path) == ["maintenance.yaml.lock"]

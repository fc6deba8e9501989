"""Every panel query and every variable query of every dashboard returns data from a real Prometheus.

`hatang demo` runs as a process (several offices, switches, routers, UPSes, servers, link probes, traps);
a real Prometheus (Debian package ``prometheus``) scrapes its /metrics every second with
``honor_labels: true`` and evaluates the alert rules of deploy/prometheus/rules/*.rules.yml, so ``ALERTS``
exists. Each query is sent to Prometheus's HTTP API the way Grafana would send it, with the template
variables substituted (every filter variable as ``.*``, i.e. "All"; ``$__rate_interval`` 30s ...): range
queries to /api/v1/query_range, instant ones to /api/v1/query, ``label_values()`` variables to
/api/v1/label/<name>/values. A query that does not parse fails at once; the test then waits, with a
deadline, until every query has returned data. A few panels are then checked for meaning as well: the map
has one marker per office at coordinates in Vietnam, every office's WAN interface is found with a
utilisation within 0..1, the agents table shows versions, no traffic value exceeds the interface speed,
the failed-parts and needs-attention tables list exactly the demo's staged faults (a fan, a power supply,
high CPU, memory and temperature), and every office's topology has a link confirmed by both ends.
Last, ``hatang report`` (the installed command) reads one whole minute of that Prometheus with a
maintenance window recorded by ``hatang maintenance add``: every office, device and probe of the demo is
in it with the state the demo gives it (the dead UPS down, or in maintenance with the window).

Queries that cannot have data in the demo are listed in NO_DATA_IN_DEMO with the reason; keep it short.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hatang.demo_sites import OFFICES
from tests.support.hatang import HatangProcess, run_hatang, try_scrape
from tests.support.prometheus import Prometheus
from tests.support.services import _start_with_port_retry, free_tcp_port, require_binary
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.rules.yml"))

# What Grafana would put in: "All" for every filter variable, these for the built-in ones.
BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m", "__range_s": "300",
            "__interval_ms": "5000"}
RANGE_SECONDS = 60  # a range query covers the last minute ...
STEP = "5s"  # ... in steps of 5 s
DATA_DEADLINE = 100.0  # seconds after the first scrape for every query to return data

VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?::[^}]*)?\}|([A-Za-z0-9_]+))")
LABEL_VALUES_RE = re.compile(r"\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*", re.S)

# (dashboard uid, panel title, refId) -> why the demo cannot give it data. Keep this list minimal.
NO_DATA_IN_DEMO: dict[tuple[str, str, str], str] = {
    **{("hatang-he-thong", "Ghi bù remote write", ref): (
        "the demo's collector has no remote_write store configured, so the remote-write series "
        "(pending samples, samples by result, failures) do not exist"
    ) for ref in ("A", "B", "C")},
}
# Queries checked in a weaker form, with the reason: (uid, title, refId) -> (old, new) text substitution.
CHECKED_AS: dict[tuple[str, str, str], tuple[str, str, str]] = {
    **{(uid, title, "A"): ('alertstate="firing"', 'alertstate=~"firing|pending"', (
        "every alert rule the demo can trigger has a `for:` of 1 minute or more (HatangDeviceDown 5m for "
        "the UPS that never answers) or needs 30 minutes of flaps, so no alert is firing within the test; "
        "a pending alert checks the same series and label filters"
    )) for uid, title in (("hatang-toan-tinh", "Cảnh báo đang kích hoạt"),)},
}


@dataclass(frozen=True)
class Query:
    uid: str
    title: str
    ref: str
    kind: str  # "range", "instant" or "label_values"
    text: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.uid, self.title, self.ref)

    def __str__(self) -> str:
        return f"{self.uid} / {self.title} / {self.ref}: {self.text}"


def _substitute(text: str, custom: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in custom:
            return custom[name]
        return ".*"

    return VAR_RE.sub(value, text)


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[Query]:
    queries: list[Query] = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text(encoding="utf-8"))
        uid = dash["uid"]
        variables = dash.get("templating", {}).get("list", [])
        custom = {v["name"]: str(v.get("current", {}).get("value", "")) for v in variables
                  if v.get("type") == "custom"}
        for var in variables:
            if var.get("type") != "query":
                continue
            raw = var["query"]["query"] if isinstance(var.get("query"), dict) else var.get("query", "")
            queries.append(Query(uid, f"${var['name']}", "var", "label_values", _substitute(raw, custom)))
        for panel in _panels(dash):
            for target in panel.get("targets", []):
                text = _substitute(target["expr"], custom)
                kind = "instant" if target.get("instant") and not target.get("range") else "range"
                queries.append(Query(uid, panel["title"], target["refId"], kind, text))
    return queries


class BadQuery(AssertionError):
    """Prometheus rejected the query (a syntax or type error): fail at once, waiting will not help."""


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        if exc.code in (400, 422):
            raise BadQuery(f"HTTP {exc.code}: {body}") from None
        raise
    assert doc.get("status") == "success", doc
    return doc["data"]


def run(prometheus: Prometheus, query: Query) -> bool:
    """True when the query returned data."""
    now = time.time()
    if query.kind == "label_values":
        m = LABEL_VALUES_RE.fullmatch(query.text)
        assert m, f"{query}: not label_values(selector, label)"
        params = urllib.parse.urlencode({"match[]": m.group(1), "start": f"{now - 600:.3f}",
                                         "end": f"{now:.3f}"})
        return bool(_get(f"{prometheus.url}/api/v1/label/{m.group(2)}/values?{params}"))
    if query.kind == "instant":
        params = urllib.parse.urlencode({"query": query.text, "time": f"{now:.3f}"})
        data = _get(f"{prometheus.url}/api/v1/query?{params}")
        return bool(data["result"])
    params = urllib.parse.urlencode({"query": query.text, "start": f"{now - RANGE_SECONDS:.3f}",
                                     "end": f"{now:.3f}", "step": STEP})
    data = _get(f"{prometheus.url}/api/v1/query_range?{params}")
    return any(series.get("values") for series in data["result"])


def instant(prometheus: Prometheus, text: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": text, "time": f"{time.time():.3f}"})
    result: list[dict[str, Any]] = _get(f"{prometheus.url}/api/v1/query?{params}")["result"]
    return result


def check_meaning(prometheus: Prometheus, queries: dict[tuple[str, str, str], Query]) -> None:
    """Beyond "returns data": a few panels whose shape the demo lets us check."""
    # The map: one marker per office, at numeric coordinates in Vietnam, coloured by a known state.
    markers = instant(prometheus, queries[("hatang-toan-tinh", "Bản đồ các điểm", "A")].text)
    assert len(markers) >= 2, markers
    for marker in markers:
        labels, value = marker["metric"], float(marker["value"][1])
        assert 8 <= float(labels["latitude"]) <= 24 and 102 <= float(labels["longitude"]) <= 110, labels
        assert labels.get("site_name") and value in (-1, 0, 1), marker
    # Every office's critical (WAN) interface is found, and utilisation stays within 0..1.
    util = instant(prometheus, queries[("hatang-toan-tinh", "Cổng WAN sử dụng cao nhất", "A")].text)
    assert util and all(0 <= float(s["value"][1]) <= 1 for s in util), util
    # The agents table shows each agent's version.
    agents = instant(prometheus, queries[("hatang-he-thong", "Agent", "A")].text)
    assert agents and all(s["metric"].get("version") for s in agents), agents
    # Traffic never exceeds the interface speed (the clamp), in either direction.
    speed = {(s["metric"]["agent"], s["metric"]["device"], s["metric"]["if_index"]): float(s["value"][1])
             for s in instant(prometheus, "hatang_interface_speed_bytes * 8")}
    for ref in ("A", "B"):
        title = "Lưu lượng vào/ra (bit/s), các cổng bận nhất"
        traffic = instant(prometheus, queries[("hatang-diem", title, ref)].text)
        assert traffic, title
        for s in traffic:
            key = (s["metric"]["agent"], s["metric"]["device"], s["metric"]["if_index"])
            assert speed.get(key, 0) == 0 or float(s["value"][1]) <= speed[key], (s, speed.get(key))


    # Device health: the demo's staged faults (hatang/demo_sites.py) are where the boards list them.
    failed = {(s["metric"]["device"], s["metric"]["part"])
              for s in instant(prometheus, queries[("hatang-diem", "Quạt và nguồn hỏng", "A")].text)}
    assert failed == {("switch-lap-thach", "Quạt"), ("core-switch-ttdl", "Nguồn")}, failed
    attention = {ref: {s["metric"]["device"] for s in instant(
        prometheus, queries[("hatang-toan-tinh", "Thiết bị cần chú ý", ref)].text)} for ref in "ABCDE"}
    assert attention == {"A": {"switch-lap-thach"}, "B": {"core-switch-ttdl"}, "C": {"access-switch"},
                         "D": {"access-switch"}, "E": {"switch-lap-thach"}}, attention
    # Topology: every office's switch and router see each other over LLDP, links confirmed by both ends.
    edges = instant(prometheus, queries[("hatang-diem", "Sơ đồ kết nối", "B")].text)
    assert {e["metric"]["agent"] for e in edges if e["metric"]["mainstat"] == "hai đầu cùng thấy"} == {
        o.agent for o in OFFICES}, edges


DEAD_DEVICE = ("xa-dai-dinh", "ups-phong-may")  # the demo's UPS that never answers


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(moment))


def plan_maintenance(tmp_path: Path, minute: float) -> Path:
    """A window for the dead UPS over exactly the report's minute, recorded as an operator would."""
    path = tmp_path / "maintenance.yaml"
    added = run_hatang(["maintenance", "add", "--file", str(path), "--site", DEAD_DEVICE[0],
                        "--device", DEAD_DEVICE[1], "--from", _iso(minute), "--to", _iso(minute + 60),
                        "--reason", "Thay ắc quy UPS"])
    assert added.returncode == 0, added.stderr
    return path


def _report_rows(prom: Prometheus, minute: float, *extra: str) -> list[dict[str, str]]:
    done = run_hatang(["report", "--prometheus", prom.url, "--from", _iso(minute), "--to", _iso(minute + 60),
                       "--format", "csv", *extra])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("\ufeff")  # the BOM spreadsheets need for Vietnamese
    return list(csv.DictReader(io.StringIO(done.stdout.removeprefix("\ufeff"))))


def check_report(prom: Prometheus, minute: float, maintenance: Path) -> None:
    """`hatang report` over one minute of the demo: the states the demo's offices and devices really had."""
    wait_until(lambda: instant(prom, f"timestamp(hatang_agent_up) >= {minute + 60}"), 150, interval=1.0,
               message="Prometheus to have scraped past the end of the report's minute")
    for extra, dead in (((), {"down_minutes": "1", "availability_percent": 0.0}),
                        (("--maintenance", str(maintenance)),
                         {"maintenance_minutes": "1", "availability_percent": None})):
        rows = _report_rows(prom, minute, *extra)
        assert rows and all(sum(int(r[f"{k}_minutes"]) for k in ("up", "down", "unknown", "maintenance")) == 1
                            for r in rows), rows
        by_kind: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
        for row in rows:
            by_kind.setdefault(row["kind"], {})[(row["agent"], row["device"])] = row
        offices = by_kind["office"]
        assert {agent for agent, _ in offices} == {o.agent for o in OFFICES}
        for office in OFFICES:
            row = offices[(office.agent, "")]
            assert (row["office_name"], row["up_minutes"]) == (office.name, "1"), row
        devices = by_kind["device"]
        expected = {(o.agent, d.name) for o in OFFICES for d in o.devices}
        assert set(devices) == expected
        for key, row in devices.items():
            wanted = dead if key == DEAD_DEVICE else {"up_minutes": "1", "availability_percent": 100.0}
            percent = row["availability_percent"]
            got: dict[str, object] = {**row, "availability_percent": float(percent) if percent else None}
            assert {k: got[k] for k in wanted} == wanted, row
        links = by_kind["link"]
        assert {agent for agent, _ in links} == {o.agent for o in OFFICES}
        assert all(row["up_minutes"] == "1" for row in links.values()), links


def start_prometheus_with_rules(workdir: Path, target: str) -> Prometheus:
    binary = require_binary("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [{
            "job_name": "hatang", "honor_labels": True, "static_configs": [{"targets": [target]}],
            "metric_relabel_configs": [{"action": "labeldrop", "regex": "instance|job"}],
        }],
    }), encoding="utf-8")

    def make(port: int) -> Prometheus:
        return Prometheus(host="127.0.0.1", port=port, pid=0, config_path=config,
                          log_path=workdir / "prometheus.log", data_dir=workdir / "data", binary=binary)

    return _start_with_port_retry(make, None, free_tcp_port)


def test_queries_are_known() -> None:
    """The exception lists name queries that exist (a renamed panel must not hide a real failure)."""
    all_keys = [q.key for q in dashboard_queries()]
    keys = set(all_keys)
    assert len(keys) == len(all_keys), sorted({k for k in all_keys if all_keys.count(k) > 1})
    for key in [*NO_DATA_IN_DEMO, *CHECKED_AS]:
        assert key in keys, f"{key} is listed as an exception but no such query exists"
    assert RULE_FILES, "no deploy/prometheus/rules/*.rules.yml"


def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(DASHBOARDS) >= 7 and len(queries) > 100, (len(DASHBOARDS), len(queries))
    port = free_tcp_port()
    demo = HatangProcess(["demo", "--listen", f"127.0.0.1:{port}"], tmp_path / "demo.log").start()
    prometheus: Prometheus | None = None
    try:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: try_scrape(metrics_url), 30, interval=0.2, message=f"the demo at {metrics_url}")
        prometheus = start_prometheus_with_rules(tmp_path / "prometheus", f"127.0.0.1:{port}")
        prom = prometheus
        # the minute the report will cover: every device polled (every 10 s) and probed before it ends
        report_minute = math.ceil((time.time() + 25) / 60) * 60
        maintenance = plan_maintenance(tmp_path, report_minute)

        def checked(q: Query) -> Query:
            if q.key in CHECKED_AS:
                old, new, _reason = CHECKED_AS[q.key]
                assert old in q.text, f"{q}: expected {old!r} in the query"
                return Query(q.uid, q.title, q.ref, q.kind, q.text.replace(old, new))
            return q

        pending = [checked(q) for q in queries if q.key not in NO_DATA_IN_DEMO]
        no_data_yet = list(pending)

        def all_have_data() -> bool:
            nonlocal no_data_yet
            still = []
            for q in no_data_yet:
                try:
                    has_data = run(prom, q)
                except BadQuery as exc:
                    pytest.fail(f"Prometheus rejected {q}\n{exc}", pytrace=False)
                if not has_data:
                    still.append(q)
            no_data_yet = still
            return not still

        try:
            wait_until(all_have_data, DATA_DEADLINE, interval=2.0, message="data for every dashboard query")
        except AssertionError:
            listing = "\n".join(f"  {q}" for q in no_data_yet)
            pytest.fail(f"{len(no_data_yet)} of {len(pending)} dashboard queries returned no data within "
                        f"{DATA_DEADLINE:g} s:\n{listing}", pytrace=False)

        check_meaning(prom, {q.key: q for q in queries})
        check_report(prom, report_minute, maintenance)

        # The exceptions must stay exceptions: a query listed as "no data in the demo" that has data now
        # should be taken off the list.
        for key in NO_DATA_IN_DEMO:
            for q in (q for q in queries if q.key == key):
                assert not run(prom, q), f"{q} has data now: take it off NO_DATA_IN_DEMO"
    finally:
        if prometheus is not None:
            prometheus.stop()
        demo.stop()

"""Static checks of the Grafana dashboards in dashboards/*.json against the metric contract.

The metric names and labels come from docs/metrics.md (its tables), so a dashboard cannot use a metric or a
label the collector does not publish, and a renamed metric breaks this test instead of an operator's panel.
Grafana itself is not needed; if ``promtool`` is on PATH the PromQL syntax is checked too.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import require_binary

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards"
METRICS_DOC = ROOT / "docs" / "metrics.md"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))

GRID_WIDTH = 24
# hatang's metrics, and the series its recording rules make (hatang:...; documented in docs/metrics.md too)
METRIC_RE = re.compile(r"hatang(?:_[a-z0-9_]+|:[a-z0-9_:]+)")
SELECTOR_RE = re.compile(r"(hatang(?:_[a-z0-9_]+|:[a-z0-9_:]+))(\s*\{([^}]*)\})?")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
VAR_REF_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?::[^}]*)?\}|([A-Za-z0-9_]+))")
LEGEND_LABEL_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BACKTICK_RE = re.compile(r"`([^`]+)`")
LABEL_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
COUNTER_FUNCTIONS = {"rate", "irate", "increase"}
# Series Prometheus makes itself from the alert rules (deploy/prometheus/rules/): a query may use them
# without naming a hatang_ metric.
PROMETHEUS_SERIES_RE = re.compile(r"\bALERTS(?:_FOR_STATE)?\b")


# --- the metric contract (docs/metrics.md) ---------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _sections(text: str) -> Iterator[tuple[str, list[str]]]:
    title, lines = "", list[str]()
    for line in text.splitlines():
        if line.startswith("## "):
            yield title, lines
            title, lines = line[3:].strip(), []
        else:
            lines.append(line)
    yield title, lines


def _tables(lines: list[str]) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Markdown tables as (lower-cased header cells, rows of cells)."""
    i = 0
    while i < len(lines):
        is_header = lines[i].lstrip().startswith("|") and i + 1 < len(lines)
        if is_header and set(lines[i + 1].strip()) <= set("|-: "):
            header = [c.lower() for c in _cells(lines[i])]
            i += 2
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield header, rows
        else:
            i += 1


def _label_tokens(text: str) -> set[str]:
    return {t for t in BACKTICK_RE.findall(text) if LABEL_NAME_RE.match(t)}


@cache
def documented_metrics() -> dict[str, frozenset[str]]:
    """Metric name -> label names, from the tables of docs/metrics.md."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    device_labels: set[str] = set()
    site_labels: set[str] = set()
    for title, lines in _sections(text):
        if title.lower() == "labels":
            for header, rows in _tables(lines):
                if header[:1] == ["label"]:
                    for row in rows:
                        names = _label_tokens(row[0])
                        device_labels |= names
                        if "site" in row[1].lower():
                            site_labels |= names
    assert device_labels and site_labels, "docs/metrics.md: the Labels table was not found"

    metrics: dict[str, frozenset[str]] = {}
    for _title, lines in _sections(text):
        paragraph = " ".join(lines)
        extra_section: set[str] = set()
        match = re.search(r"Extra labels on every series:(.*?)(?:\.\s|$)", paragraph)
        if match:
            extra_section = _label_tokens(match.group(1))
        # "Every probe series carries `agent`, `device` (...), the site labels, `target` (...) and `method`"
        match = re.search(r"Every \w+ series carries(.*?)(?:\.\s|$)", paragraph)
        if match:
            extra_section |= _label_tokens(match.group(1))
        for header, rows in _tables(lines):
            if not header or header[0] != "metric":
                continue
            for row in rows:
                metric_names = [n for n in BACKTICK_RE.findall(row[0]) if METRIC_RE.fullmatch(n)]
                if not metric_names:
                    continue
                cell = dict(zip(header, row, strict=False))
                if "labels" in cell:
                    raw = re.sub(r"\([^)]*\)", "", cell["labels"]).replace("`", "")
                    labels: set[str] = set()
                    for token in (t.strip() for t in raw.split(",")):
                        if token == "site":
                            labels |= site_labels
                        elif token:
                            labels.add(token)
                else:
                    labels = device_labels | extra_section | _label_tokens(cell.get("extra labels", ""))
                    # e.g. "counter (`reason`: not_authorized, ...)" in the type column
                    labels |= _label_tokens(cell.get("type", ""))
                for name in metric_names:
                    metrics[name] = frozenset(labels)
                    if cell.get("type", "").strip() == "histogram":  # Prometheus' series of a histogram
                        metrics[f"{name}_bucket"] = frozenset(labels | {"le"})
                        metrics[f"{name}_sum"] = metrics[f"{name}_count"] = frozenset(labels)
    return metrics


def test_metrics_doc_parses() -> None:
    """Guard against a silently empty contract if docs/metrics.md changes shape."""
    metrics = documented_metrics()
    assert len(metrics) >= 20, sorted(metrics)
    assert metrics["hatang_agent_up"] == {"agent", "province", "district", "commune"}
    assert {"agent", "device", "province", "district", "commune"} <= metrics["hatang_device_up"]
    assert {"agent", "device", "if_index", "if_name", "if_alias", "if_descr"} <= metrics[
        "hatang_interface_in_bytes_total"
    ]
    assert {"sys_name", "device"} <= metrics["hatang_device_info"]
    assert metrics["hatang_collector_broker_connected"] == frozenset()
    assert metrics["hatang_collector_messages_total"] == {"kind"}


# --- dashboard helpers -----------------------------------------------------------------------------------


@cache
def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level must be an object"
    return data


def _all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _targets(dash: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in _all_panels(dash):
        for target in panel.get("targets", []):
            yield panel, target


def _exprs(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel query."""
    for panel, target in _targets(dash):
        expr = target.get("expr")
        if expr:
            yield f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}", expr


def _variables(dash: dict[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = dash.get("templating", {}).get("list", [])
    return variables


def _variable_queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for var in _variables(dash):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else query or ""
        for q in {text, var.get("definition", "")} - {""}:
            yield f"variable {var.get('name')}", q


def _filter_variables(dash: dict[str, Any]) -> list[str]:
    """Query variables: each one filters the label of the same name."""
    return [v["name"] for v in _variables(dash) if v.get("type") == "query"]


def _function_stack_at(expr: str) -> Iterator[tuple[int, list[str]]]:
    """For each position in expr (strings blanked), the names of the enclosing calls, innermost last."""
    blanked = STRING_RE.sub(lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', expr)
    stack: list[str] = []
    for i, ch in enumerate(blanked):
        if ch == "(":
            name = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", blanked[:i])
            stack.append(name.group(1) if name else "")
        elif ch == ")" and stack:
            stack.pop()
        yield i, list(stack)


needs_dashboards = pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])


def test_dashboards_exist() -> None:
    assert DASHBOARDS, f"no dashboards in {DASHBOARD_DIR}"


# --- structure -------------------------------------------------------------------------------------------


@needs_dashboards
def test_valid_dashboard_json(path: Path) -> None:
    dash = _load(path)
    assert isinstance(dash.get("uid"), str) and dash["uid"], "uid missing"
    assert len(dash["uid"]) <= 40, "Grafana uids are at most 40 characters"
    assert isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 39
    assert isinstance(dash.get("panels"), list) and dash["panels"]


def test_uids_unique_across_files() -> None:
    seen: dict[str, str] = {}
    for path in DASHBOARDS:
        uid = _load(path)["uid"]
        assert uid not in seen, f"uid {uid!r} in both {seen[uid]} and {path.name}"
        seen[uid] = path.name


@needs_dashboards
def test_panel_ids_unique(path: Path) -> None:
    ids: list[Any] = [p.get("id") for p in _all_panels(_load(path))]
    assert all(isinstance(i, int) for i in ids), f"every panel needs an integer id: {ids}"
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate panel ids {duplicates}"


def _check_layout(panels: list[dict[str, Any]]) -> None:
    boxes: list[tuple[Any, int, int, int, int]] = []
    for panel in panels:
        g = panel.get("gridPos") or {}
        values: list[Any] = [g.get(k) for k in ("x", "y", "w", "h")]
        assert all(isinstance(v, int) for v in values), f"panel {panel.get('id')}: bad gridPos {g}"
        x, y, w, h = (int(v) for v in values)
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= GRID_WIDTH, f"panel {panel.get('id')}: {g}"
        boxes.append((panel.get("id"), x, y, w, h))
    for n, (id1, x1, y1, w1, h1) in enumerate(boxes):
        for id2, x2, y2, w2, h2 in boxes[n + 1:]:
            overlap = x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1
            assert not overlap, f"panels {id1} and {id2} overlap"


@needs_dashboards
def test_grid_positions_do_not_overlap(path: Path) -> None:
    dash = _load(path)
    _check_layout(dash["panels"])
    for panel in dash["panels"]:
        if panel.get("type") == "row" and panel.get("collapsed"):
            _check_layout(panel.get("panels", []))


@needs_dashboards
def test_titles_present_and_vietnamese(path: Path) -> None:
    dash = _load(path)
    title = dash.get("title", "")
    assert title.strip(), "dashboard title missing"
    assert any(ord(c) > 127 for c in title), f"dashboard title {title!r} has no Vietnamese diacritics"
    texts = [title]
    for panel in _all_panels(dash):
        assert str(panel.get("title", "")).strip(), f"panel {panel.get('id')} has no title"
        texts += [panel["title"], panel.get("description", "")]
    texts += [str(v.get("label", "")) for v in _variables(dash)]
    for text in texts:
        # Precomposed (NFC) diacritics: decomposed text sorts and searches differently in Grafana.
        assert unicodedata.is_normalized("NFC", text), f"{text!r} is not NFC-normalized"


@needs_dashboards
def test_datasource_is_a_prometheus_variable(path: Path) -> None:
    dash = _load(path)
    ds_vars = [v for v in _variables(dash) if v.get("name") == "datasource"]
    assert ds_vars, "template variable 'datasource' missing"
    assert ds_vars[0].get("type") == "datasource" and ds_vars[0].get("query") == "prometheus"
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _all_panels(dash):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('id')}"
        assert panel.get("datasource") == expected, f"{where}: datasource {panel.get('datasource')}"
        for target in panel.get("targets", []):
            assert target.get("datasource", expected) == expected, f"{where} {target.get('refId')}"
    for var in _variables(dash):
        if var.get("type") == "query":
            assert var.get("datasource") == expected, f"variable {var.get('name')}: {var.get('datasource')}"


@needs_dashboards
def test_all_option_matches_missing_labels(path: Path) -> None:
    """With allValue '.*', `district=~"$district"` also matches series without a district (abolished 2025)."""
    for var in _variables(_load(path)):
        if var.get("type") == "query" and var.get("includeAll"):
            assert var.get("allValue") == ".*", f"variable {var['name']}: allValue must be '.*'"


# --- queries ---------------------------------------------------------------------------------------------


@needs_dashboards
def test_every_panel_has_queries(path: Path) -> None:
    for panel in _all_panels(_load(path)):
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"panel {panel.get('id')} has no queries"
        ref_ids = [t.get("refId") for t in targets]
        assert all(ref_ids) and len(set(ref_ids)) == len(ref_ids), f"panel {panel.get('id')}: {ref_ids}"
        assert all(t.get("expr", "").strip() for t in targets), f"panel {panel.get('id')}: empty expr"


@needs_dashboards
def test_metrics_are_documented(path: Path) -> None:
    dash = _load(path)
    documented = documented_metrics()
    for where, expr in [*_exprs(dash), *_variable_queries(dash)]:
        names = METRIC_RE.findall(expr)
        assert names or PROMETHEUS_SERIES_RE.search(expr), f"{where}: no hatang_ metric in {expr!r}"
        unknown = sorted(set(names) - set(documented))
        assert not unknown, f"{where}: {unknown} not in docs/metrics.md"


@needs_dashboards
def test_counters_only_inside_rate(path: Path) -> None:
    for where, expr in _exprs(_load(path)):
        stacks = dict(_function_stack_at(expr))
        for m in METRIC_RE.finditer(expr):
            if m.group(0).endswith("_total"):
                enclosing = stacks[m.start()]
                assert enclosing and enclosing[-1] in COUNTER_FUNCTIONS, (
                    f"{where}: counter {m.group(0)} must be inside rate/irate/increase, not {enclosing}"
                )


@needs_dashboards
def test_selectors_filter_by_template_variables(path: Path) -> None:
    dash = _load(path)
    filters = _filter_variables(dash)
    assert "agent" in filters, "template variable 'agent' missing"
    documented = documented_metrics()
    for where, expr in _exprs(dash):
        for m in SELECTOR_RE.finditer(expr):
            metric, body = m.group(1), m.group(3) or ""
            labels = documented.get(metric, frozenset())
            matchers = MATCHER_RE.findall(body)
            for label, _op, _value in matchers:
                assert label in labels, f"{where}: {metric} has no label {label!r} (docs/metrics.md)"
            present = {(label, op, value) for label, op, value in matchers}
            for var in filters:
                if var in labels:
                    ok = {(var, "=~", f"${var}"), (var, "=~", f"${{{var}}}")} & present
                    assert ok, f'{where}: {metric} must be filtered with {var}=~"${var}"'
        if METRIC_RE.search(expr) and re.search(r"hatang_(device|interface)_", expr):
            assert 'agent=~"$agent"' in expr, f"{where}: device/interface query without the agent filter"


@needs_dashboards
def test_variable_references_are_declared(path: Path) -> None:
    dash = _load(path)
    declared = {v.get("name") for v in _variables(dash)}
    for where, text in [*_exprs(dash), *_variable_queries(dash)]:
        for m in VAR_REF_RE.finditer(text):
            name = m.group(1) or m.group(2)
            assert name.startswith("__") or name in declared, f"{where}: ${name} is not a template variable"


@needs_dashboards
def test_variable_queries_use_documented_labels(path: Path) -> None:
    documented = documented_metrics()
    for where, query in _variable_queries(_load(path)):
        m = re.fullmatch(r"\s*label_values\(\s*(hatang_[a-z0-9_]+)\s*(\{[^}]*\})?\s*,\s*(\w+)\s*\)\s*", query)
        assert m, f"{where}: expected label_values(hatang_metric{{...}}, label), got {query!r}"
        labels = documented[m.group(1)]
        assert m.group(3) in labels, f"{where}: {m.group(1)} has no label {m.group(3)!r}"
        for label, _op, _value in MATCHER_RE.findall(m.group(2) or ""):
            assert label in labels, f"{where}: {m.group(1)} has no label {label!r}"


@needs_dashboards
def test_legend_labels_exist(path: Path) -> None:
    documented = documented_metrics()
    for panel, target in _targets(_load(path)):
        legend = target.get("legendFormat", "")
        names = METRIC_RE.findall(target.get("expr", ""))
        available = set().union(*(documented.get(n, frozenset()) for n in names))
        for label in LEGEND_LABEL_RE.findall(legend):
            assert label in available, f"panel {panel.get('id')} {target.get('refId')}: legend uses {label!r}"


def _custom_values(dash: dict[str, Any]) -> dict[str, str]:
    """Current value of each custom variable (e.g. $top, a number), to put into queries."""
    return {v["name"]: str(v.get("current", {}).get("value", "")) for v in _variables(dash)
            if v.get("type") == "custom"}


def _concrete(expr: str, custom: dict[str, str] | None = None) -> str:
    """Replace Grafana variables by values Prometheus accepts."""
    for name, value in (custom or {}).items():
        expr = re.sub(rf"\$(?:\{{{name}\}}|{name}\b)", value, expr)
    expr = re.sub(r"\$\{?__(rate_)?interval\}?", "5m", expr)
    expr = re.sub(r"\$\{?__range_s\}?", "3600", expr)
    expr = re.sub(r"\$\{?__range\}?", "1h", expr)
    return VAR_REF_RE.sub(".*", expr)


@needs_dashboards
def test_promql_syntax_with_promtool(path: Path, tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    dash = _load(path)
    rules = [{"record": f"hatang:check:{n}", "expr": _concrete(expr, _custom_values(dash))}
             for n, (_where, expr) in enumerate(_exprs(dash))]
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the generator, links, variable chains ---------------------------------------------------------------

BUILD_SCRIPT = DASHBOARD_DIR / "build.py"
LINK_UID_RE = re.compile(r"/d/([A-Za-z0-9_-]+)")
LINK_VAR_RE = re.compile(r"[?&]var-([A-Za-z0-9_]+)=")
# The boards of issue #13, by uid; each must exist (generated by dashboards/build.py).
EXPECTED_UIDS = {"hatang-tong-quan", "hatang-toan-tinh", "hatang-diem", "hatang-cong", "hatang-duong-truyen",
                 "hatang-may-chu", "hatang-he-thong"}


@cache
def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("hatang_dashboards_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _uids() -> dict[str, dict[str, Any]]:
    return {_load(path)["uid"]: _load(path) for path in DASHBOARDS}


def test_every_board_exists() -> None:
    assert set(_uids()) >= EXPECTED_UIDS, sorted(EXPECTED_UIDS - set(_uids()))


def test_json_on_disk_equals_generator_output() -> None:
    """dashboards/*.json are generated: edit dashboards/build.py and run it, never the JSON alone."""
    build = _build_module()
    generated = build.boards()
    assert generated, "dashboards/build.py generated nothing"
    for name, board in generated.items():
        path = DASHBOARD_DIR / name
        assert path.exists(), f"{name} missing: run python dashboards/build.py"
        assert path.read_text(encoding="utf-8") == build.render(board), (
            f"{name} differs from what dashboards/build.py writes: run python dashboards/build.py"
        )


def _links(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, url) of every dashboard link, panel link and data link."""
    for link in dash.get("links", []):
        if link.get("url"):
            yield "dashboard link", link["url"]
    for panel in _all_panels(dash):
        where = f"panel {panel.get('id')}"
        field_config = panel.get("fieldConfig", {})
        for link in [*panel.get("links", []), *field_config.get("defaults", {}).get("links", [])]:
            yield where, link.get("url", "")
        for override in field_config.get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "links":
                    for link in prop.get("value", []):
                        yield where, link.get("url", "")


@needs_dashboards
def test_links_point_to_existing_boards_and_variables(path: Path) -> None:
    boards = _uids()
    for where, url in _links(_load(path)):
        uids = LINK_UID_RE.findall(url)
        if not uids:
            continue
        assert len(uids) == 1 and uids[0] in boards, f"{where}: link {url!r} to an unknown dashboard"
        declared = {v.get("name") for v in _variables(boards[uids[0]])}
        for var in LINK_VAR_RE.findall(url):
            assert var in declared, f"{where}: link {url!r} sets var-{var}, not a variable of {uids[0]}"
        if "var-" in url:
            assert "${datasource:queryparam}" in url, f"{where}: link {url!r} does not pass the data source"


def test_generated_boards_link_to_each_other() -> None:
    """province -> office -> device/interface: every board links to every other board."""
    boards = _uids()
    for uid in sorted(EXPECTED_UIDS):
        targets = {u for _where, url in _links(boards[uid]) for u in LINK_UID_RE.findall(url)}
        missing = EXPECTED_UIDS - {uid} - targets
        assert not missing, f"{uid}: no link to {sorted(missing)}"
    province_links = {u for _w, url in _links(boards["hatang-toan-tinh"]) if "var-agent" in url
                      for u in LINK_UID_RE.findall(url)}
    assert "hatang-diem" in province_links, "the province board must open an office with var-agent"
    office_links = {u for _w, url in _links(boards["hatang-diem"]) if "var-device" in url
                    for u in LINK_UID_RE.findall(url)}
    assert "hatang-cong" in office_links, "the office board must open a device's interfaces with var-device"


@needs_dashboards
def test_variables_are_chained(path: Path) -> None:
    """datasource first; each query variable is filtered by earlier ones only, and by the one before it."""
    variables = _variables(_load(path))
    assert variables and variables[0].get("name") == "datasource", "the datasource variable must come first"
    names = [v.get("name") for v in variables]
    previous_query: str | None = None
    for var in variables:
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else query or ""
        refs = {m.group(1) or m.group(2) for m in VAR_REF_RE.finditer(text)}
        earlier = set(names[: names.index(var["name"])])
        assert refs <= earlier, f"variable {var['name']}: refers to later or unknown {sorted(refs - earlier)}"
        if previous_query is not None:
            assert previous_query in refs, f"variable {var['name']}: not filtered by ${previous_query}"
        previous_query = var["name"]


@needs_dashboards
def test_panels_have_units_and_bilingual_descriptions(path: Path) -> None:
    for panel in _all_panels(_load(path)):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        description = panel.get("description", "")
        assert any(ord(c) > 127 for c in description), f"{where}: no Vietnamese description"
        english = re.search(r"(\n| / )[A-Za-z(]", description)
        assert english, f"{where}: no English sentence after the Vietnamese one (newline or ' / ')"
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{where}: no unit"


# --- provisioning (deploy/grafana) -----------------------------------------------------------------------

GRAFANA_DIR = ROOT / "deploy" / "grafana"


def test_grafana_provisioning_files() -> None:
    provisioning = GRAFANA_DIR / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards/hatang.yaml").read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    path = provider["options"]["path"]
    assert path.startswith("/"), path
    readme = (GRAFANA_DIR / "README.md").read_text(encoding="utf-8")
    assert path in readme, f"deploy/grafana/README.md does not document the provider path {path}"

    sources = yaml.safe_load((provisioning / "datasources/hatang.yaml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] and source["isDefault"] is True
    # the dashboards must not depend on it: no board names this data source uid
    for board in DASHBOARDS:
        text = board.read_text(encoding="utf-8")
        assert source["uid"] not in text, f"{board.name} hard-codes a data source"


def test_readmes_list_every_board() -> None:
    docs = [(DASHBOARD_DIR / "README.md").read_text(encoding="utf-8"),
            (ROOT / "docs/vi/bang-dieu-khien.md").read_text(encoding="utf-8")]
    for path in DASHBOARDS:
        dash = _load(path)
        assert f"`{dash['uid']}`" in docs[0], f"dashboards/README.md does not list {dash['uid']}"
        short = dash["title"].removeprefix("hatang — ")
        assert short in docs[1], f"docs/vi/bang-dieu-khien.md does not describe {short!r}"


# --- the office board's topology panel (hatang_link_info, docs/topology.md) ------------------------------


def _topology_panel() -> dict[str, Any]:
    office = _load(DASHBOARD_DIR / "hatang-diem.json")
    [panel] = [p for p in _all_panels(office) if p.get("type") == "nodeGraph"]
    return panel


def test_office_board_shows_the_topology_as_a_node_graph() -> None:
    panel = _topology_panel()
    nodes, edges = (t["expr"] for t in panel["targets"])
    assert all(t.get("format") == "table" and t.get("instant") for t in panel["targets"])
    assert "hatang_device_up" in nodes and "hatang_link_info" in edges
    assert 'remote_agent=~"$agent"' in edges  # the other end in this office: its node is on the graph
    renamed = panel["transformations"][0]["options"]["renameByName"]
    assert renamed["Value #A"] == "color" and all(v.startswith("detail__") for k, v in renamed.items()
                                                  if k != "Value #A")


def test_topology_panel_queries_give_the_node_graph_its_fields(tmp_path: Path) -> None:
    """The panel's PromQL evaluated by promtool on a small office: nodes carry id and title, edges id,
    source, target and mainstat (what Grafana's node graph reads from the frames' fields)."""
    promtool = require_binary("promtool", "prometheus")
    nodes, edges = (_concrete(t["expr"]) for t in _topology_panel()["targets"])
    site = 'province="Phú Thọ"'
    link = (f'hatang_link_info{{agent="xa",device="core",if_name="g1",remote_agent="xa",remote_device="sw1",'
            f'remote_if_name="g24",confirmed="true",{site},remote_province="Phú Thọ"}}')
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": f'hatang_device_up{{agent="xa",device="core",{site}}}', "values": "1x5"},
            {"series": f'hatang_device_up{{agent="xa",device="sw1",{site}}}', "values": "0x5"},
            {"series": link, "values": "1x5"},
        ],
        "promql_expr_test": [
            {"expr": nodes, "eval_time": "2m", "exp_samples": [
                {"labels": '{agent="xa",device="core",id="core",title="core"}', "value": 1},
                {"labels": '{agent="xa",device="sw1",id="sw1",title="sw1"}', "value": 0}]},
            {"expr": edges, "eval_time": "2m", "exp_samples": [
                {"labels": '{agent="xa",device="core",if_name="g1",remote_device="sw1",remote_if_name="g24",'
                           'confirmed="true",mainstat="hai đầu cùng thấy",id="core g1 sw1 g24",source="core",'
                           'target="sw1"}', "value": 1}]},
        ],
    }]}
    test_file = tmp_path / "topology.test.yml"
    test_file.write_text(json.dumps(test, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr



# --- PromQL evaluated by promtool on a small office ------------------------------------------------------

SITE = 'province="Phú Thọ"'


def _promql_module() -> Any:
    """dashboards/hatang_dashboards/promql.py, the generator's shared expressions and thresholds."""
    _build_module()  # puts dashboards/ on sys.path
    return importlib.import_module("hatang_dashboards.promql")


def _panel(board: str, title: str) -> dict[str, Any]:
    [panel] = [p for p in _all_panels(_load(DASHBOARD_DIR / board)) if p.get("title") == title]
    return panel


def _exprs_of(board: str, title: str) -> dict[str, str]:
    """refId -> the panel's query with the variables substituted (All, 5m windows)."""
    return {t["refId"]: _concrete(t["expr"]) for t in _panel(board, title)["targets"]}


def _promtool_test(tmp_path: Path, input_series: list[dict[str, str]], checks: list[dict[str, Any]]) -> None:
    """Evaluate `checks` (promql_expr_test entries) on `input_series` (one-minute samples) with promtool."""
    promtool = require_binary("promtool", "prometheus")
    test = {"rule_files": [], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": checks}]}
    test_file = tmp_path / "panels.test.yml"
    test_file.write_text(json.dumps(test, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _series(metric: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f'{metric}{{agent="xa",{labels},{SITE}}}', "values": values}


def _sample(labels: str, value: float) -> dict[str, Any]:
    return {"labels": f'{{agent="xa",{labels}}}', "value": value}


def _check(expr: str, *samples: dict[str, Any], at: str = "5m") -> dict[str, Any]:
    return {"expr": expr, "eval_time": at, "exp_samples": list(samples)}


# --- traffic panels clamp to the interface speed ---------------------------------------------------------

TRAFFIC_RE = re.compile(r"hatang_interface_(?:in|out)_bytes_total")
# The most a traffic panel may show on the fixture below, by panel unit: the one known speed in bit/s (the
# interface of unknown speed carries half of that), or full utilisation.
TRAFFIC_LIMITS = {"bps": 1e6, "percentunit": 1.0, "percent": 100.0}


def _interface(if_index: int) -> str:
    name = f"ge{if_index}"
    return (f'device="sw",if_index="{if_index}",if_name="{name}",if_alias="uplink {name}",if_descr="{name}",'
            'if_type="6"')


def _traffic_queries() -> Iterator[tuple[str, str, str]]:
    """(where, unit, expr with the variables substituted) of every query drawing interface traffic."""
    for path in DASHBOARDS:
        dash = _load(path)
        for panel, target in _targets(dash):
            expr = target.get("expr", "")
            if TRAFFIC_RE.search(expr):
                unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
                where = f"{path.name} panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}"
                yield where, unit, _concrete(expr, _custom_values(dash))


def test_every_traffic_query_is_clamped_to_the_speed() -> None:
    """Static: every query of interface byte counters brings in the speed to clamp (or divide) by."""
    queries = list(_traffic_queries())
    assert len(queries) >= 10, queries
    for where, unit, expr in queries:
        assert "hatang_interface_speed_bytes" in expr, f"{where}: not clamped to the interface speed"
        assert unit in TRAFFIC_LIMITS, f"{where}: unit {unit!r}, not bit/s or a share of the speed"


def test_traffic_queries_never_exceed_the_speed_on_a_bad_counter(tmp_path: Path) -> None:
    """Every traffic query of every board, evaluated on an interface whose counter jumps by a petabyte
    (a device bug or an unnoticed reset) and one reporting speed 0: nothing above the speed, and data."""
    series = [
        _series("hatang_interface_speed_bytes", _interface(1), "125000x16"),  # 1 Mb/s
        _series("hatang_interface_in_bytes_total", _interface(1), "0+3750000x5 1e15+3750000x10"),
        _series("hatang_interface_out_bytes_total", _interface(1), "0+3750000x5 2e15+3750000x10"),
        _series("hatang_interface_speed_bytes", _interface(2), "0x16"),  # unknown; carries 500 kb/s
        _series("hatang_interface_in_bytes_total", _interface(2), "0+3750000x16"),
        _series("hatang_interface_out_bytes_total", _interface(2), "0+3750000x16"),
        _series("hatang_interface_critical", _interface(1), "1x16"),
        _series("hatang_interface_critical", _interface(2), "1x16"),
    ]
    checks = []
    for _where, unit, expr in _traffic_queries():
        checks.append(_check(f"count(({expr}) > {TRAFFIC_LIMITS[unit]})", at="10m"))
        checks.append(_check(f"count({expr}) > bool 0", {"labels": "{}", "value": 1}, at="10m"))
    _promtool_test(tmp_path, series, checks)


def test_traffic_clamp_keeps_rates_and_unknown_speeds(tmp_path: Path) -> None:
    """The shared clamp, exactly: a rate within the speed is kept, a jump shows as the speed, interfaces
    reporting speed 0 or none keep their rate."""
    promql = _promql_module()
    expr = _concrete(promql.traffic_bps(promql.chain(), "in"))
    series = [
        _series("hatang_interface_speed_bytes", _interface(1), "125000x16"),
        _series("hatang_interface_in_bytes_total", _interface(1), "0+3750000x16"),  # 500 kb/s
        _series("hatang_interface_speed_bytes", _interface(2), "125000x16"),
        _series("hatang_interface_in_bytes_total", _interface(2), "0+3750000x5 1e15+3750000x10"),
        _series("hatang_interface_speed_bytes", _interface(3), "0x16"),
        _series("hatang_interface_in_bytes_total", _interface(3), "0+7500000x16"),  # 1 Mb/s
        _series("hatang_interface_in_bytes_total", _interface(4), "0+75000000x16"),  # 10 Mb/s, no speed
    ]
    rates = {1: 500000, 2: 1e6, 3: 1e6, 4: 1e7}
    expected = [_sample(f"{_interface(i)},{SITE}", rate) for i, rate in rates.items()]
    # round(): rate() extrapolates in float64, 500000 comes out as 500000.00000000006
    _promtool_test(tmp_path, series, [_check(f"round({expr})", *expected, at="10m")])


# --- device health (the normalised families of the vendor profiles) --------------------------------------

CPU, TEMP = "hatang_device_cpu_utilization_ratio", "hatang_device_temperature_celsius"
MEM_USED, MEM_TOTAL = "hatang_device_memory_used_bytes", "hatang_device_memory_total_bytes"
FAN, PSU = "hatang_device_fan_ok", "hatang_device_power_supply_ok"
# A Huawei-like core switch (a hot, busy main board with nearly full memory, a failed fan), a Cisco-like
# access switch (memory as used + free, a pool with a total of 0, a failed power supply), a server (the
# host profile: per-core CPU, memory with page cache: left to the server board and HatangHost*), and a
# device that does not answer, with stale readings.
MPU, PROC, IO = 'entity_index="1",component="MPU"', 'pool_index="1",component="Processor"', \
    'pool_index="2",component="I/O"'
HEALTH_SERIES = [
    _series("hatang_device_up", 'device="core"', "1x10"),
    _series(CPU, f'device="core",{MPU}', "0.95x10"),
    _series(TEMP, f'device="core",{MPU}', "75x10"),
    _series(MEM_TOTAL, f'device="core",{MPU}', "1024x10"),
    _series(MEM_USED, f'device="core",{MPU}', "992x10"),
    _series(FAN, 'device="core",component="0.1"', "0x10"),
    _series(FAN, 'device="core",component="0.2"', "1x10"),
    _series(PSU, 'device="core",component="0.1"', "1x10"),
    _series("hatang_device_up", 'device="access"', "1x10"),
    _series(CPU, 'device="access",component="0"', "0.2x10"),
    _series(MEM_USED, f'device="access",{PROC}', "96x10"),
    _series("hatang_device_memory_free_bytes", f'device="access",{PROC}', "4x10"),
    _series(MEM_TOTAL, f'device="access",{IO}', "0x10"),
    _series(MEM_USED, f'device="access",{IO}', "5x10"),
    _series(PSU, 'device="access",component="PS1"', "0x10"),
    _series("hatang_device_up", 'device="server"', "1x10"),
    _series(CPU, 'device="server",cpu="1",component="Xeon"', "0.99x10"),
    _series("hatang_host_cpu_load_ratio", 'device="server",cpu="1"', "0.99x10"),
    _series(MEM_TOTAL, 'device="server",storage_index="1",component="RAM"', "100x10"),
    _series(MEM_USED, 'device="server",storage_index="1",component="RAM"', "99x10"),
    _series("hatang_host_memory_total_bytes", 'device="server"', "100x10"),
    _series("hatang_device_up", 'device="silent"', "0x10"),
    _series(CPU, 'device="silent",component="cpu"', "0.99x10"),
    _series(TEMP, 'device="silent",component="board"', "90x10"),
    _series(FAN, 'device="silent",component="fan"', "0x10"),
]
HEALTH_TITLES = ("CPU theo thành phần (%)", "Bộ nhớ đã dùng (%)", "Nhiệt độ (°C)",
                 "Bộ nhớ theo thành phần", "Quạt và nguồn hỏng")


def test_health_rows_are_on_the_office_and_interface_boards() -> None:
    for board in ("hatang-diem.json", "hatang-cong.json"):
        titles = [p.get("title") for p in _all_panels(_load(DASHBOARD_DIR / board))]
        assert "Tình trạng thiết bị" in titles, board
        for title in HEALTH_TITLES:
            assert title in titles, f"{board}: no panel {title!r}"
    assert _panel("hatang-toan-tinh.json", "Thiết bị cần chú ý")["type"] == "table"


def test_office_health_panels_on_a_small_office(tmp_path: Path) -> None:
    board = "hatang-diem.json"
    cpu, ratio, temp, memory, failed = (_exprs_of(board, title) for title in HEALTH_TITLES)
    checks = [
        _check(f"count({cpu['A']})", {"labels": "{}", "value": 4}),
        _check(f"count({temp['A']})", {"labels": "{}", "value": 2}),
        _check(ratio["A"], _sample(f'device="core",{MPU},{SITE}', 0.96875),
               _sample(f'device="access",{PROC},{SITE}', 0.96)),
        _check(memory["A"], _sample('device="core",component="MPU"', 992),
               _sample('device="access",component="Processor"', 96),
               _sample('device="access",component="I/O"', 5), _sample('device="server",component="RAM"', 99)),
        _check(memory["B"], _sample('device="core",component="MPU"', 1024),
               _sample('device="access",component="Processor"', 100),
               _sample('device="access",component="I/O"', 0),
               _sample('device="server",component="RAM"', 100)),
        _check(memory["C"], _sample('device="core",component="MPU"', 0.96875),
               _sample('device="access",component="Processor"', 0.96)),
        _check(failed["A"], _sample('device="core",component="0.1",part="Quạt"', 0),
               _sample('device="silent",component="fan",part="Quạt"', 0),
               _sample('device="access",component="PS1",part="Nguồn"', 0)),
    ]
    _promtool_test(tmp_path, HEALTH_SERIES, checks)


def test_province_attention_list_on_a_small_office(tmp_path: Path) -> None:
    """Only answering devices with a failed part or a reading above the alert thresholds; servers' CPU and
    memory are the server board's."""
    queries = _exprs_of("hatang-toan-tinh.json", "Thiết bị cần chú ý")
    expected = {
        "A": [_sample('device="core"', 1)],  # failed fans
        "B": [_sample('device="access"', 1)],  # failed power supplies
        "C": [_sample('device="core"', 0.95)],  # CPU above 90 %
        "D": [_sample('device="core"', 0.96875), _sample('device="access"', 0.96)],  # memory above 95 %
        "E": [_sample('device="core"', 75)],  # temperature above 70 °C
    }
    assert sorted(queries) == sorted(expected)
    checks = [_check(queries[ref], *samples) for ref, samples in expected.items()]
    _promtool_test(tmp_path, HEALTH_SERIES, checks)


def test_health_thresholds_are_the_alerts_thresholds() -> None:
    """The boards colour and list with the numbers the alerts use (deploy/prometheus/rules/)."""
    promql = _promql_module()
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/hatang.rules.yml").read_text(encoding="utf-8"))
    exprs = {r["alert"]: " ".join(r["expr"].split()) for g in rules["groups"] for r in g["rules"]
             if "alert" in r}
    thresholds = {"HatangDeviceCpuHigh": promql.CPU_HIGH, "HatangDeviceMemoryHigh": promql.MEMORY_HIGH,
                  "HatangDeviceTemperatureHigh": promql.TEMPERATURE_HIGH}
    for alert, threshold in thresholds.items():
        assert f"> {threshold:g} " in exprs[alert], f"{alert}: {exprs[alert]} (the boards use {threshold:g})"

"""The Grafana JSON model of a generated board, independent of what any board shows.

`Board` lays panels out on the 24-column grid, numbers them and renders the dashboard JSON; around it
are the template variables (the data source, the chained label_values() query variables, `top`), the
query `target`, the option presets of each panel type (stat, time series, state timeline, bar gauge,
table), the table column helpers, and the links between boards (`all_links`, `data_link`), which is
why the uids of every board live here. Shared PromQL and colour steps come from `promql`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .promql import GREEN, Scope, labels_of

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TAGS = ["hatang", "snmp"]

# uids of every board (the generated ones and the hand-written overview)
UID_OVERVIEW = "hatang-tong-quan"
UID_PROVINCE = "hatang-toan-tinh"
UID_OFFICE = "hatang-diem"
UID_PORT = "hatang-cong"
UID_LINK = "hatang-duong-truyen"
UID_SERVER = "hatang-may-chu"
UID_SYSTEM = "hatang-he-thong"

J = dict[str, Any]  # a JSON object


# --- variables ------------------------------------------------------------------------------------------


def datasource_variable() -> J:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Nguồn dữ liệu",
        "description": "Prometheus có thu thập số liệu từ hatang collector. / "
                       "Prometheus scraping the collector.",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


VARIABLE_TEXT: dict[str, tuple[str, str]] = {
    "province": ("Tỉnh/Thành phố", "Tỉnh của điểm (site.province). / Province of the site."),
    "district": ("Huyện (cũ)", "Cấp huyện đã bỏ từ 2025; chỉ có khi agent cấu hình site.district "
                 "(vùng mạng). "
                 "Chọn All để gồm cả điểm không có huyện. / District or network zone (optional): "
                 "All also matches sites without one."),
    "commune": ("Xã/Phường", "Xã, phường, sở, ngành (site.commune). / Commune, ward or department; "
                "All also matches sites without one."),
    "agent": ("Điểm (agent)", "Mã agent của điểm (agent_id). / Agent id of the office."),
    "device": ("Thiết bị", "Tên thiết bị trong cấu hình agent. / Device name in the agent config."),
    "if_name": ("Cổng", "Tên cổng (ifName). / Interface name (ifName)."),
    "target": ("Đích đo", "Địa chỉ được đo kiểm (probe target). / Probed address."),
}


def query_variable(scope: Scope, name: str, metric: str, *, multi: bool = True) -> J:
    """A label_values() variable filtered by every earlier variable of the chain."""
    earlier = scope.variables[: scope.variables.index(name)]
    matchers = [f'{v}=~"${v}"' for v in earlier if v in labels_of(metric)]
    selector = f"{metric}{{{','.join(matchers)}}}" if matchers else metric
    query = f"label_values({selector}, {name})"
    label, description = VARIABLE_TEXT[name]
    var: J = {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "skipUrlSync": False,
        "multi": multi,
        "includeAll": multi,
        "options": [],
    }
    if multi:
        var["allValue"] = ".*"
        var["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        var["current"] = {}
    return var


def top_variable() -> J:
    values = ["5", "10", "20", "50"]
    return {
        "type": "custom",
        "name": "top",
        "label": "Số cổng hiển thị",
        "description": "Số cổng có lưu lượng lớn nhất được vẽ. / How many busiest interfaces to draw.",
        "query": ",".join(values),
        "current": {"selected": True, "text": "10", "value": "10"},
        "options": [{"selected": v == "10", "text": v, "value": v} for v in values],
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "skipUrlSync": False,
    }


def standard_variables(scope: Scope, sources: dict[str, str], single: tuple[str, ...] = ()) -> list[J]:
    out = [datasource_variable()]
    for name in scope.variables:
        out.append(query_variable(scope, name, sources[name], multi=name not in single))
    return out


# --- targets and panels ---------------------------------------------------------------------------------


def check_text(text: str) -> str:
    assert unicodedata.is_normalized("NFC", text), text
    return text


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False) -> J:
    t: J = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "editorMode": "code",
        "range": not instant,
        "instant": instant,
    }
    if table:
        t["format"] = "table"
    return t


@dataclass
class Board:
    """One dashboard: its variables, links and panels, placed left to right as they are added."""

    uid: str
    title: str
    description: str
    scope: Scope
    variables: list[J]
    panels: list[J] = field(default_factory=list)
    links: list[J] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_h: int = 0
    _next_id: int = 1

    # layout: panels flow left to right and wrap at 24 columns; row() starts a new full-width row
    def _place(self, w: int, h: int) -> J:
        if self._x + w > 24:
            self._y += self._row_h
            self._x, self._row_h = 0, 0
        pos = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def row(self, title: str) -> None:
        self._y += self._row_h
        self._x, self._row_h = 0, 0
        self.panels.append({"id": self._id(), "type": "row", "title": check_text(title), "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y}, "panels": []})
        self._y += 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def add(self, kind: str, title: str, description: str, targets: list[J], *, w: int, h: int,
            unit: str = "none", steps: J | None = None, mappings: list[J] | None = None,
            options: J | None = None, custom: J | None = None, overrides: list[J] | None = None,
            transformations: list[J] | None = None, links: list[J] | None = None,
            decimals: int | None = None, minimum: float | None = None, maximum: float | None = None,
            color_mode: str | None = None) -> J:
        defaults: J = {"unit": unit, "thresholds": steps or GREEN, "mappings": mappings or []}
        defaults["color"] = {"mode": color_mode or ("thresholds" if kind in ("stat", "state-timeline",
                                                                             "bargauge", "table", "geomap")
                                                    else "palette-classic")}
        if decimals is not None:
            defaults["decimals"] = decimals
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        if custom is not None:
            defaults["custom"] = custom
        if links:
            defaults["links"] = links
        panel: J = {
            "id": self._id(),
            "type": kind,
            "title": check_text(title),
            "description": check_text(description),
            "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        return panel

    def render(self) -> J:
        return {
            "__inputs": [],
            "__requires": [
                {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            ],
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard",
            }]},
            "description": check_text(self.description),
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": self.links,
            "liveNow": False,
            "panels": self.panels,
            "refresh": "1m",
            "schemaVersion": SCHEMA_VERSION,
            "tags": TAGS,
            "templating": {"list": self.variables},
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": check_text(self.title),
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


# --- panel option presets -------------------------------------------------------------------------------


def stat_options(graph: bool = False, text: str = "value") -> J:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background", "graphMode": "area" if graph else "none", "justifyMode": "center",
        "orientation": "auto", "textMode": text, "wideLayout": True, "showPercentChange": False,
    }


def ts_options(calcs: tuple[str, ...] = ("mean", "max", "lastNotNull"), table: bool = True) -> J:
    return {
        "legend": {"showLegend": True, "displayMode": "table" if table else "list", "placement": "bottom",
                   "calcs": list(calcs)},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def ts_custom(fill: int = 10, stack: bool = False, thresholds_style: str = "off", bars: bool = False) -> J:
    return {
        "drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": fill, "showPoints": "never",
        "spanNulls": False, "axisPlacement": "auto", "axisCenteredZero": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": thresholds_style},
    }


def timeline_options() -> J:
    return {
        "showValue": "never", "mergeValues": True, "alignValue": "left", "rowHeight": 0.9,
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
        "tooltip": {"mode": "single", "sort": "none"},
    }


def bargauge_options() -> J:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True, "valueMode": "color",
        "namePlacement": "auto", "sizing": "auto", "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300,
    }


def table_options(sort_by: str | None = None, desc: bool = False) -> J:
    opts: J = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"],
                                                                  "fields": ""}}
    if sort_by:
        opts["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return opts


NEGATIVE_Y_B = [{"matcher": {"id": "byFrameRefID", "options": "B"},
                 "properties": [{"id": "custom.transform", "value": "negative-Y"}]}]


def column(name: str, *props: tuple[str, Any]) -> J:
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props]}


def cell(kind: str) -> tuple[str, Any]:
    return ("custom.cellOptions", {"type": kind})


def merge_table(order: dict[str, str], hide: tuple[str, ...] = ()) -> list[J]:
    """Merge instant table queries into one row per key; rename and order the columns."""
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": True, **{h: True for h in hide}},
            "indexByName": {name: i for i, name in enumerate(order)},
            "renameByName": order,
        }},
    ]


# --- links between boards -------------------------------------------------------------------------------


def board_link(title: str, uid: str, tooltip: str) -> J:
    """A dashboard link that keeps the time range and passes every variable of the current board."""
    return {"title": check_text(title), "type": "link", "url": f"/d/{uid}", "tooltip": check_text(tooltip),
            "icon": "dashboard", "includeVars": True, "keepTime": True, "targetBlank": False,
            "asDropdown": False,
            "tags": []}


def data_link(title: str, uid: str, params: dict[str, str]) -> J:
    """A data link to another board, passing the data source, the time range and some variables."""
    query = "&".join(["${datasource:queryparam}", *(f"var-{k}={v}" for k, v in params.items()),
                      "${__url_time_range}"])
    return {"title": check_text(title), "url": f"/d/{uid}?{query}", "targetBlank": False}


def all_links(here: str) -> list[J]:
    boards = [
        ("Toàn tỉnh", UID_PROVINCE, "Tình trạng mọi điểm trong tỉnh / the whole province"),
        ("Điểm", UID_OFFICE, "Thiết bị và cổng của một điểm / one office"),
        ("Cổng", UID_PORT, "Một cổng mạng / one interface"),
        ("Đường truyền chuyên dùng", UID_LINK, "Đường truyền số liệu chuyên dùng / government-network links"),
        ("Máy chủ", UID_SERVER, "Máy chủ trung tâm dữ liệu / data-centre servers"),
        ("Hệ thống giám sát", UID_SYSTEM, "hatang tự giám sát / the monitoring system itself"),
        ("Tổng quan", UID_OVERVIEW, "Tổng quan hạ tầng mạng / overview"),
    ]
    return [board_link(t, uid, tip) for t, uid, tip in boards if uid != here]

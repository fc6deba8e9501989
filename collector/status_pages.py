"""The status pages as HTML: the province (``/``), an office (``/office/<agent>``) and the 404 page. Pure.

Rendered on the server from the data of collector/status_model.py (the same dicts ``/api/...`` returns),
complete on first paint; the inline script of collector/status_assets.py then refreshes them in place.
Every value that comes from an agent, a device or the inventory goes through :func:`_e` (HTML escaping,
quotes included) or :func:`_q` (URL path segments): a device name or ifAlias with HTML in it shows as
text. Vietnamese, with English in small text where it helps.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from collector import status_text as tx
from collector.status_assets import CSS, JS
from collector.status_text import STATES

REFRESH_SECONDS = 10
SPARK_W, SPARK_H = 120, 24
MAP_W, MAP_H, MAP_PAD = 420, 360, 36
CONTENT_TYPE = "text/html; charset=utf-8"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _q(value: str) -> str:
    return quote(value, safe="")


def _badge(kind: str, state: str, element_id: str = "", role: str = "") -> str:
    """A coloured state word; ``role``: the class the page script finds it by."""
    vi, en = STATES.get(kind, {}).get(state, (state, state))
    ident = f' id="{element_id}"' if element_id else ""
    extra = f"{role} " if role else ""
    return f'<span{ident} class="{extra}badge b-{_e(state)}" title="{_e(en)}">{_e(vi)}</span>'


def _ago(ts: float | None, now: float, element_class: str = "", element_id: str = "") -> str:
    attrs = f' class="{element_class}"' if element_class else ""
    attrs += f' id="{element_id}"' if element_id else ""
    if not ts:
        return f"<span{attrs}>{tx.DASH}</span>"
    return f'<span{attrs} data-ts="{ts!r}">{_e(tx.age(now - ts))}</span>'


def page(title: str, title_en: str, body: str, *, page_kind: str, api: str, now: float, version: str) -> str:
    updated = _e(_clock_time(now))
    return (
        '<!doctype html>\n<html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)} · hatang</title><link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head>"
        f'<body data-page="{_e(page_kind)}" data-api="{_e(api)}" data-refresh="{REFRESH_SECONDS}">'
        '<header><a class="brand" href="/">hạ tầng</a>'
        f'<h1>{_e(title)} <span class="en">{_e(title_en)}</span></h1>'
        f'<span class="meta">Cập nhật lúc <span id="updated">{updated}</span> '
        f"(tự làm mới mỗi {REFRESH_SECONDS} giây · auto refresh)</span></header>"
        f'<main id="main">{body}</main>'
        f'<footer>hatang {_e(version)} · <a href="{_e(api or "/api/offices")}">JSON API</a> · '
        '<a href="/metrics">/metrics</a></footer>'
        f"<script>{JS}</script></body></html>\n"
    )


def _clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _grafana(links: Mapping[str, str] | None, keys: Sequence[tuple[str, str]]) -> str:
    if not links:
        return ""
    items = [f'<a href="{_e(links[k])}" rel="noreferrer">{_e(label)}</a>' for k, label in keys if k in links]
    return f'<p class="links">Grafana: {" ".join(items)}</p>'


# --------------------------------------------------------------------------------------------------
# province


def _project(offices: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """agent -> (x, y) on the map: equirectangular, scaled by cos(latitude), fitted to the box."""
    placed = [(o["agent"], float(o["latitude"]), float(o["longitude"])) for o in offices
              if o.get("latitude") is not None and o.get("longitude") is not None]
    if not placed:
        return {}
    lats = [p[1] for p in placed]
    lons = [p[2] for p in placed]
    k = math.cos(math.radians(sum(lats) / len(lats)))
    span_x = max((max(lons) - min(lons)) * k, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((MAP_W - 2 * MAP_PAD) / span_x, (MAP_H - 2 * MAP_PAD) / span_y)
    cx, cy = (max(lons) + min(lons)) / 2, (max(lats) + min(lats)) / 2
    return {agent: (MAP_W / 2 + (lon - cx) * k * scale, MAP_H / 2 - (lat - cy) * scale)
            for agent, lat, lon in placed}


def _map(offices: Sequence[Mapping[str, Any]]) -> str:
    points = _project(offices)
    if not points:
        return ('<p class="muted">Chưa có tọa độ các điểm trong danh mục '
                "(no coordinates in the inventory).</p>")
    parts = [f'<svg class="map" viewBox="0 0 {MAP_W} {MAP_H}" width="{MAP_W}" height="{MAP_H}" role="img" '
             'aria-label="Bản đồ các điểm (map of the offices)">'
             f'<rect class="frame" x="1" y="1" width="{MAP_W - 2}" height="{MAP_H - 2}" rx="6"/>']
    for o in offices:
        if o["agent"] not in points:
            continue
        x, y = points[o["agent"]]
        anchor = "end" if x > MAP_W * 0.7 else "start"
        dx = -11 if anchor == "end" else 11
        vi = STATES["office"].get(o["state"], (o["state"], ""))[0]
        parts.append(
            f'<a href="/office/{_e(_q(o["agent"]))}"><title>{_e(o["name"])}: {_e(vi)}</title>'
            f'<circle data-marker="{_e(o["agent"])}" class="m-{_e(o["state"])}" '
            f'cx="{x:.1f}" cy="{y:.1f}" r="8"/>'
            f'<text x="{x + dx:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}">{_e(o["name"])}</text></a>')
    parts.append("</svg>")
    legend = " ".join(_badge("office", state) for state in STATES["office"])
    return "".join(parts) + f'<p class="muted">Chú giải <span class="en">legend</span>: {legend}</p>'


def _office_row(o: Mapping[str, Any], now: float) -> str:
    search = " ".join(str(o.get(k) or "") for k in ("name", "agent", "commune", "district", "province"))
    role = tx.ROLES.get(o["role"], o["role"])
    return (
        f'<tr data-agent="{_e(o["agent"])}" data-state="{_e(o["state"])}" data-search="{_e(search.lower())}">'
        f'<td><a href="/office/{_e(_q(o["agent"]))}">{_e(o["name"])}</a> '
        f'<span class="en">{_e(o["agent"])}</span></td>'
        f'<td>{_e(o["commune"] or tx.DASH)}</td><td class="muted">{_e(role)}</td>'
        f'<td>{_badge("office", o["state"], role="st")}</td>'
        f'<td class="num dev">{o["devices_up"]}/{o["devices_total"]}</td>'
        f'<td>{_badge("link", o["link"], role="link")}</td>'
        f"<td>{_ago(o['last_seen'], now, 'seen')}</td></tr>"
    )


def _cards(counts: Mapping[str, int]) -> str:
    cards = [("offices", "Tổng số điểm", "offices", "")]
    cards += [(state, vi, en, f" s-{state}") for state, (vi, en) in STATES["office"].items()]
    html_cards = [f'<div class="card{cls}"><b id="c-{key}">{counts.get(key, 0)}</b>{_e(vi)} '
                  f'<span class="en">{_e(en)}</span></div>' for key, vi, en, cls in cards]
    devices = f'{counts["devices_up"]}/{counts["devices_total"]}'
    html_cards.append(f'<div class="card"><b id="c-devices">{devices}</b>'
                      'Thiết bị hoạt động <span class="en">devices up</span></div>')
    return f'<div class="cards">{"".join(html_cards)}</div>'


def province_body(data: Mapping[str, Any]) -> str:
    now = float(data["generated"])
    offices: list[Mapping[str, Any]] = data["offices"]
    zones: dict[str, list[Mapping[str, Any]]] = {}
    for o in offices:
        zones.setdefault(o["district"], []).append(o)
    options = "".join(f'<option value="{_e(s)}">{_e(vi)}</option>' for s, (vi, _) in STATES["office"].items())
    head = ("<thead><tr><th>Điểm <span class=\"en\">office</span></th><th>Xã, phường</th><th>Loại</th>"
            "<th>Trạng thái</th><th class=\"num\">Thiết bị <span class=\"en\">up/total</span></th>"
            "<th>Đường truyền <span class=\"en\">WAN</span></th><th>Lần cuối nhận tin <span class=\"en\">"
            "last seen</span></th></tr></thead>")
    sections = []
    for zone in sorted(zones, key=lambda z: (z == "", z)):
        rows = "".join(_office_row(o, now) for o in zones[zone])
        title = f"Khu vực {zone}" if zone else tx.NO_ZONE
        sections.append(f'<section data-zone="{_e(zone)}"><h2>{_e(title)}</h2>'
                        f"<table>{head}<tbody>{rows}</tbody></table></section>")
    return (
        _cards(data["counts"]) + _grafana(data.get("grafana"), (("province", "Bảng điều khiển toàn tỉnh"),))
        + '<div class="filter"><input id="q" type="search" placeholder="Lọc theo tên điểm, xã, khu vực… '
        '(filter)" aria-label="Lọc (filter)"><select id="st" aria-label="Trạng thái (state)">'
        f'<option value="">Mọi trạng thái (all)</option>{options}</select></div>'
        f'<div class="layout"><div>{_map(offices)}</div><div>{"".join(sections)}</div></div>'
    )


def province_page(data: Mapping[str, Any], version: str) -> str:
    return page("Tình trạng hạ tầng mạng toàn tỉnh", "province status", province_body(data),
                page_kind="province", api="/api/offices", now=float(data["generated"]), version=version)


# --------------------------------------------------------------------------------------------------
# office


def spark_path(values: Sequence[float | None], top: float, width: int = SPARK_W, height: int = SPARK_H,
               ) -> str:
    """An SVG path through the points (a gap where a value is unknown); the same as the page script's."""
    step = width / max(len(values) - 1, 1)
    parts, pen = [], False
    for i, value in enumerate(values):
        if value is None:
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{i * step:.1f} {height - 1 - value / top * (height - 2):.1f}")
        pen = True
    return "".join(parts)


def _spark(history: Mapping[str, Sequence[float | None]]) -> str:
    values = [v for v in (*history["in"], *history["out"]) if v is not None]
    top = max([*values, 1.0])
    return (f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}" '
            'aria-label="lưu lượng gần đây (recent traffic)">'
            f'<path class="in" d="{spark_path(history["in"], top)}"/>'
            f'<path class="out" d="{spark_path(history["out"], top)}"/></svg>')


def _interfaces(device: Mapping[str, Any]) -> str:
    rows = []
    for i in device["interfaces"]:
        wan = '<span class="wan" title="critical interface">WAN</span>' if i["critical"] else ""
        rows.append(
            f'<tr data-owner="{_e(device["name"])}" data-if="{_e(i["if_index"])}">'
            f'<td class="num">{_e(i["if_index"])}</td><td>{_e(i["name"])}{wan}</td><td>{_e(i["alias"])}</td>'
            f'<td>{_badge("oper", i["oper"], role="oper")}</td>'
            f'<td class="num speed">{_e(tx.bits_per_second(i["speed_bps"] or None))}</td>'
            f'<td class="num in">{_e(tx.bits_per_second(i["in_bps"]))}</td>'
            f'<td class="num out">{_e(tx.bits_per_second(i["out_bps"]))}</td>'
            f'<td>{_spark(i["history"])}</td></tr>')
    more = (f'<p class="muted">… và {device["interfaces_hidden"]} cổng khác '
            "(more interfaces: see the JSON API or Grafana)</p>") if device["interfaces_hidden"] else ""
    return (f'<section class="ifs"><h3>Cổng của {_e(device["name"])} <span class="en">interfaces</span></h3>'
            '<table><thead><tr><th class="num">#</th><th>Tên</th><th>Mô tả <span class="en">ifAlias</span>'
            '</th><th>Trạng thái</th><th class="num">Tốc độ <span class="en">speed</span></th>'
            '<th class="num">Vào <span class="en">in</span></th>'
            '<th class="num">Ra <span class="en">out</span></th>'
            '<th>Gần đây <span class="en">in/out</span></th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{more}</section>")


def _devices(data: Mapping[str, Any], now: float) -> str:
    agent = data["office"]["agent"]
    rows = []
    for d in data["devices"]:
        link = f'/office/{_e(_q(agent))}/device/{_e(_q(d["name"]))}'
        rows.append(
            f'<tr data-dev="{_e(d["name"])}"><td><a href="{link}">{_e(d["name"])}</a></td>'
            f'<td>{_badge("device", d["state"], role="st")}</td>'
            f'<td class="num up">{_e(tx.duration(d["uptime_seconds"]))}</td>'
            f"<td>{_ago(d['last_poll'], now, 'poll')}</td>"
            f'<td class="num errors">{_e(d["errors"])}</td></tr>')
    return ("<h2>Thiết bị <span class=\"en\">devices</span></h2><table><thead><tr><th>Thiết bị</th>"
            "<th>Trạng thái</th><th class=\"num\">Thời gian chạy <span class=\"en\">uptime</span></th>"
            "<th>Lần thăm dò cuối <span class=\"en\">last poll</span></th><th class=\"num\">Lỗi "
            f"<span class=\"en\">errors</span></th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _probes(probes: Iterable[Mapping[str, Any]], now: float) -> str:
    rows = "".join(
        f'<tr data-probe="{_e(p["name"])}"><td>{_e(p["name"])}</td>'
        f'<td>{_badge("link", p["state"], role="st")}</td>'
        f'<td>{_e(p["target"])} <span class="en">{_e(p["method"])}</span></td>'
        f'<td class="num rtt">{_e(tx.milliseconds(p["rtt_seconds"]))}</td>'
        f'<td class="num loss">{_e(tx.percent(p["loss_ratio"]))}</td>'
        f'<td>{_ago(p["last_poll"], now, "poll")}</td>'
        "</tr>" for p in probes)
    if not rows:
        return ""
    return ("<h2>Đường truyền <span class=\"en\">link probes</span></h2><table><thead><tr><th>Tên</th>"
            "<th>Trạng thái</th><th>Đích <span class=\"en\">target</span></th><th class=\"num\">RTT</th>"
            "<th class=\"num\">Mất gói <span class=\"en\">loss</span></th><th>Lần đo cuối</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _traps(data: Mapping[str, Any], now: float) -> str:
    rows = "".join(f"<tr><td data-ts=\"{t['last']!r}\">{_e(tx.age(now - t['last']))}</td>"
                   f"<td>{_e(t['device'])}</td><td>{_e(t['trap'])}</td><td>{_e(t['count'])}</td></tr>"
                   for t in data["traps"])
    return ("<h2>Trap gần đây <span class=\"en\">recent traps</span></h2><table><thead><tr><th>Lần cuối</th>"
            "<th>Thiết bị</th><th>Trap</th><th>Số lần <span class=\"en\">count</span></th></tr></thead>"
            f'<tbody id="traps">{rows}</tbody></table>'
            + ("" if rows else '<p class="muted">Chưa nhận trap nào (no traps yet).</p>'))


def _agent(data: Mapping[str, Any], now: float) -> str:
    a = data["agent"]
    buffer = a["buffer"] or {}
    oldest = buffer.get("oldest_age_seconds")
    offset = a["clock_offset_seconds"]
    items = [
        ("Agent", _badge("agent", "online" if a["online"] else "offline", "agent-online")),
        ('Lần cuối nhận tin <span class="en">last seen</span>',
         _ago(a["last_seen"], now, element_id="agent-seen")),
        ('Phiên bản <span class="en">version</span>',
         f'<span id="agent-version">{_e(a["version"] or tx.DASH)}</span>'),
        ("Cấu hình đang áp dụng <span class=\"en\">config revision</span>",
         f'<code id="agent-config">{_e(a["config_version"] or tx.DASH)}</code>'),
        ("Hàng đợi trên đĩa <span class=\"en\">buffer backlog</span>",
         f'<span id="buf-messages">{_e(tx.number(buffer.get("messages")))}</span> tin, '
         f'<span id="buf-bytes">{_e(tx.size_bytes(buffer.get("bytes")))}</span>; cũ nhất '
         f'<span id="buf-oldest">{_e(tx.duration(oldest) if oldest else tx.DASH)}</span>'),
        ("Lệch đồng hồ <span class=\"en\">clock offset</span>",
         _e(tx.DASH if offset is None else f"{tx.number(round(offset, 1) + 0.0)} giây")),
    ]
    return '<dl class="kv">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def office_body(data: Mapping[str, Any]) -> str:
    now = float(data["generated"])
    o = data["office"]
    place = ", ".join(_e(x) for x in (o["commune"], o["district"], o["province"]) if x)
    scope = ""
    if data.get("device") is not None:
        scope = (f'<p>Thiết bị <b>{_e(data["device"])}</b> · <a href="/office/{_e(_q(o["agent"]))}">'
                 "toàn bộ điểm (whole office)</a></p>")
    return (
        f'<p><a href="/">← Toàn tỉnh</a> <span class="en">province</span></p>'
        f'<h2>{_e(o["name"])} {_badge("office", o["state"], "office-state")}</h2>'
        f'<p class="muted">{place} · {_e(tx.ROLES.get(o["role"], o["role"]))} · '
        f'agent <code>{_e(o["agent"])}</code></p>'
        + scope
        + _grafana(data.get("grafana"), (("office", "Bảng điều khiển của điểm"), ("interface", "Cổng"),
                                         ("province", "Toàn tỉnh")))
        + _agent(data, now) + _devices(data, now) + _probes(data["probes"], now)
        + "".join(_interfaces(d) for d in data["devices"] if d["interfaces"]) + _traps(data, now)
    )


def office_page(data: Mapping[str, Any], version: str) -> str:
    o = data["office"]
    api = f"/api/office/{_q(o['agent'])}" + (f"/device/{_q(data['device'])}" if data.get("device") else "")
    return page(f"{o['name']}", "office status", office_body(data), page_kind="office", api=api,
                now=float(data["generated"]), version=version)


def not_found_page(path: str, version: str, now: float) -> str:
    body = (f'<h2>Không tìm thấy trang <span class="en">404 not found</span></h2>'
            f"<p>Không có điểm, thiết bị hay trang nào tại <code>{_e(path)}</code>.</p>"
            '<p><a href="/">← Về trang toàn tỉnh</a> <span class="en">back to the province</span></p>')
    return page("Không tìm thấy", "not found", body, page_kind="none", api="", now=now,
                version=version)


def busy_page(version: str, now: float) -> str:
    body = ('<h2>Máy chủ đang bận, xin thử lại sau giây lát <span class="en">503 busy, retry shortly</span>'
            "</h2><p>Trang trạng thái tạm dừng để không làm chậm việc nhận số liệu.</p>"
            '<p><a href="/">← Về trang toàn tỉnh</a> <span class="en">back to the province</span></p>')
    return page("Đang bận", "busy", body, page_kind="none", api="", now=now, version=version)

"""The local status page as HTML, in Vietnamese (English alongside in small text): pure rendering of an
agent/status_view.py snapshot, and the page for a wrong address (404).

Every value is HTML-escaped where it is written (:func:`_e`); the inline script writes only with
``textContent``. The page needs nothing from the network: no CDN, font or image; one inline style and
one inline script (allowed by their hashes in :data:`CSP`), which fetches ``api/status`` every
:data:`REFRESH_SECONDS` seconds and updates the page in place. The words both sides use (states, reasons,
units) are in :data:`LABELS`, handed to the script as a JSON data block.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from typing import Any

from agent.status_view import LocalBroker, LocalBuffer, LocalDevice, LocalSnapshot
from hatang.vietnamese_numbers import vi_int

REFRESH_SECONDS = 5

LABELS: dict[str, Any] = {
    "state": {"up": "Trả lời", "down": "Không trả lời", "waiting": "Chưa đọc lần nào"},
    "broker": {"connected": "Đã kết nối", "starting": "Đang kết nối…", "unreachable": "Mất kết nối",
               "refused": "Broker từ chối bản tin"},
    "broker_en": {"connected": "connected", "starting": "connecting", "unreachable": "not connected",
                  "refused": "messages refused"},
    "broker_hint": {
        "connected": "Số liệu được gửi về Trung tâm ngay sau mỗi lần đọc.",
        "starting": "Agent đang kết nối lần đầu tới broker của Trung tâm.",
        "unreachable": "Không kết nối được tới broker: số liệu vẫn được đọc, giữ trong hàng đợi trên đĩa "
                       "và gửi bù khi có kết nối trở lại. Kiểm tra đường truyền tới Trung tâm, địa chỉ "
                       "broker (mqtt.url) và chứng chỉ TLS.",
        "refused": "Broker nhận kết nối nhưng từ chối bản tin: kiểm tra mqtt.username (phải trùng "
                   "agent_id), mật khẩu và ACL của broker. Số liệu vẫn được giữ trong hàng đợi.",
    },
    "reason": {"timeout": "Không trả lời", "auth": "Bị từ chối truy cập",
               "address": "Địa chỉ không dùng được", "wrong_oid": "Trả lời sai đối tượng",
               "not_increasing": "OID không tăng",
               "too_many_rows": "Bảng quá nhiều dòng", "walk_time": "Đọc bảng quá lâu",
               "snmp_error": "Lỗi SNMP", "deadline": "Quá thời hạn một lần đọc",
               "empty_profile": "Hồ sơ không có số liệu", "bad_value": "Giá trị không dùng được"},
    "none": "không có",
    "units": ["giây", "phút", "giờ", "ngày"],
    "ago": "trước",
    "just_now": "vừa xong",
    "refreshed": "Số liệu lúc",
    "stale": "Không lấy được số liệu mới từ agent (agent đã dừng?); đang hiện số liệu cũ.",
    "summary": "{total} thiết bị và đầu dò: {up} trả lời, {down} không trả lời, {waiting} chưa đọc",
    "replayed": "gửi bù",
}

STYLE = """
body{font:15px/1.45 system-ui,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;margin:0;color:#1c2430;
background:#f4f6f8}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 16px}
header{padding-top:12px}h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:0 0 8px}
small[lang=en],.sub,.meta{color:#5b6775;font-size:12px;font-weight:normal}
section{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:4px 8px;
border-bottom:1px solid #eceff2}table.kv th{width:32%;font-weight:600}
.mono,code{font-family:ui-monospace,"DejaVu Sans Mono",Consolas,monospace;font-size:13px;
overflow-wrap:anywhere}
.state{font-size:18px;font-weight:700;margin:4px 0 8px}.ok{color:#17753a}.bad{color:#b3261e}
.wait{color:#8a6100}.badge{font-weight:700}.addr{white-space:nowrap}
ul.errors{margin:0;padding-left:18px}ul.errors b{color:#b3261e}
.hint{color:#3d4853;margin:8px 0 0}.stale{color:#b3261e;font-weight:700}
"""

SCRIPT = """
(function () {
  "use strict";
  var L = JSON.parse(document.getElementById("labels").textContent);
  function $(id) { return document.getElementById(id); }
  function put(id, value) { var el = $(id); if (el) { el.textContent = value; } return el; }
  function num(n) { return String(Math.round(n)).replace(/\\B(?=(\\d{3})+(?!\\d))/g, "."); }
  function dec(x, d) { return x.toFixed(d).replace(".", ","); }
  function secs(x) { return (x === Math.round(x) ? num(x) : dec(x, 1)) + " " + L.units[0]; }
  function size(n) {
    var u = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (n >= 1024 && i < 3) { n /= 1024; i += 1; }
    return (i === 0 ? num(n) : dec(n, 1).replace(/,0$/, "")) + " " + u[i];
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function ago(s) {
    if (s < 1) { return L.just_now; }
    var steps = [[60, 1], [3600, 60], [86400, 3600], [Infinity, 86400]];
    for (var i = 0; i < 4; i += 1) {
      if (s < steps[i][0]) { return Math.floor(s / steps[i][1]) + " " + L.units[i] + " " + L.ago; }
    }
  }
  function when(ts, now) {
    if (ts === null) { return L.none; }
    var d = new Date(ts * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + " (" + ago(now - ts) + ")";
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function row(d, now) {
    var tr = el("tr", null, d.state), td = el("td", null, null);
    td.appendChild(el("div", d.name, "mono"));
    td.appendChild(el("div", (d.kind === "probe" ? "probe " : "SNMP ") + d.snmp +
      (d.profiles.length ? " · " + d.profiles.join(", ") : ""), "sub"));
    tr.appendChild(td);
    tr.appendChild(el("td", d.address, "mono addr"));
    td = el("td", null, null);
    var tone = {up: "ok", down: "bad", waiting: "wait"}[d.state];
    td.appendChild(el("span", L.state[d.state], "badge " + tone));
    tr.appendChild(td);
    tr.appendChild(el("td", when(d.last_poll_ts, now), null));
    tr.appendChild(el("td", d.duration === null ? L.none : dec(d.duration, 3) + " " + L.units[0], null));
    tr.appendChild(el("td", secs(d.interval), null));
    td = el("td", null, null);
    if (d.error_lines.length) {
      var ul = el("ul", null, "errors");
      d.error_lines.forEach(function (line, i) {
        var li = el("li", null, null), e = d.errors[i];
        if (e && e.reason) { li.appendChild(el("b", (L.reason[e.reason] || e.reason) + ": ", null)); }
        li.appendChild(el("code", line, null));
        ul.appendChild(li);
      });
      td.appendChild(ul);
    } else { td.textContent = L.none; }
    tr.appendChild(td);
    return tr;
  }
  function render(s) {
    var b = s.broker, q = s.buffer, good = b.connected && b.state === "connected";
    var st = put("broker-state", L.broker[b.state] || b.state);
    st.className = "state " + (good ? "ok" : (b.state === "starting" ? "wait" : "bad"));
    put("broker-state-en", L.broker_en[b.state] || b.state);
    put("broker-since", when(b.since, s.now));
    put("broker-error", b.last_error === null ? L.none : b.last_error + " — " + when(b.last_error_ts, s.now));
    put("broker-protocol", "MQTT " + b.protocol);
    put("broker-published", num(b.published) + " (" + L.replayed + " " + num(b.replayed) + ")");
    put("broker-hint", L.broker_hint[b.state] || "");
    put("buffer-depth", num(q.depth));
    put("buffer-oldest", when(q.oldest_ts, s.now));
    put("buffer-bytes", size(q.bytes) + " / " + size(q.max_bytes));
    put("buffer-dropped", num(q.dropped));
    put("buffer-dropped-full", num(q.dropped_full));
    var body = document.createElement("tbody"), n = {up: 0, down: 0, waiting: 0};
    s.devices.forEach(function (d) { n[d.state] += 1; body.appendChild(row(d, s.now)); });
    var old = $("devices").tBodies[0];
    old.parentNode.replaceChild(body, old);
    put("devices-summary", L.summary.replace("{total}", num(s.devices.length)).replace("{up}", num(n.up))
      .replace("{down}", num(n.down)).replace("{waiting}", num(n.waiting)));
    var r = put("refreshed", L.refreshed + " " + when(s.now, s.now).split(" (")[0]);
    r.className = "";
    r.setAttribute("data-updated", String(s.now));
  }
  function refresh() {
    fetch("api/status", {cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(render)
      .catch(function () { var r = put("refreshed", L.stale); if (r) { r.className = "stale"; } });
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; connect-src 'self'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    return vi_int(round(value))


def _dec(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def _secs(value: float) -> str:
    return f"{_num(value) if value == round(value) else _dec(value, 1)} {LABELS['units'][0]}"


def _size(value: float) -> str:
    units, i = ("B", "KiB", "MiB", "GiB"), 0
    while value >= 1024 and i < 3:
        value, i = value / 1024, i + 1
    return f"{_num(value) if i == 0 else _dec(value, 1).removesuffix(',0')} {units[i]}"


def _span(seconds: float) -> str:
    """A setting's duration in its largest whole unit: 604800 -> "7 ngày"."""
    for unit, name in ((86400, 3), (3600, 2), (60, 1)):
        if seconds >= unit and seconds % unit == 0:
            return f"{_num(seconds // unit)} {LABELS['units'][name]}"
    return _secs(seconds)


def _ago(seconds: float) -> str:
    if seconds < 1:
        return str(LABELS["just_now"])
    for (limit, unit), name in zip(((60, 1), (3600, 60), (86400, 3600), (float("inf"), 86400)),
                                   LABELS["units"], strict=True):
        if seconds < limit:
            return f"{int(seconds // unit)} {name} {LABELS['ago']}"
    raise AssertionError("unreachable")


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _when(ts: float | None, now: float) -> str:
    return str(LABELS["none"]) if ts is None else f"{_clock(ts)} ({_ago(now - ts)})"


def _kv(rows: list[tuple[str, str, str]]) -> str:
    """Rows of (label, id, value): the label is HTML already (it may carry an English note)."""
    cells = "".join(f'<tr><th>{label}</th><td id="{key}">{_e(value)}</td></tr>' if key else
                    f"<tr><th>{label}</th><td>{_e(value)}</td></tr>" for label, key, value in rows)
    return f'<table class="kv">{cells}</table>'


def _broker(b: LocalBroker, now: float) -> str:
    good = b.connected and b.state == "connected"
    tone = "ok" if good else ("wait" if b.state == "starting" else "bad")
    error = LABELS["none"] if b.last_error is None else f"{b.last_error} — {_when(b.last_error_ts, now)}"
    return (
        '<section id="broker"><h2>Kết nối tới Trung tâm (broker MQTT) <small lang="en">uplink</small></h2>'
        f'<p id="broker-state" class="state {tone}">{_e(LABELS["broker"].get(b.state, b.state))}</p>'
        f'<p class="meta">broker: <span id="broker-state-en" lang="en">'
        f'{_e(LABELS["broker_en"].get(b.state, b.state))}</span></p>'
        + _kv([("Broker", "broker-url", b.url),
               ("Trạng thái này từ lúc", "broker-since", _when(b.since, now)),
               ('Lỗi gần nhất <small lang="en">last error</small>', "broker-error", error),
               ("Giao thức", "broker-protocol", f"MQTT {b.protocol}"),
               ('Bản tin đã gửi <small lang="en">published</small>', "broker-published",
                f"{_num(b.published)} ({LABELS['replayed']} {_num(b.replayed)})")])
        + f'<p id="broker-hint" class="hint">{_e(LABELS["broker_hint"].get(b.state, ""))}</p></section>')


def _buffer(q: LocalBuffer, now: float) -> str:
    return (
        '<section id="buffer"><h2>Hàng đợi trên đĩa <small lang="en">disk buffer</small></h2>'
        + _kv([('Bản tin chờ gửi <small lang="en">queued</small>', "buffer-depth", _num(q.depth)),
               ('Bản tin cũ nhất đang chờ <small lang="en">oldest queued</small>', "buffer-oldest",
                _when(q.oldest_ts, now)),
               ("Dung lượng / tối đa", "buffer-bytes", f"{_size(q.bytes)} / {_size(q.max_bytes)}"),
               ("Bị bỏ vì hàng đợi đầy hoặc quá hạn", "buffer-dropped", _num(q.dropped)),
               ("Bị bỏ vì ổ đĩa đầy", "buffer-dropped-full", _num(q.dropped_full))])
        + f'<p class="hint">Số liệu chờ quá {_e(_span(q.max_age))} bị bỏ (buffer.max_age).</p></section>')


def _errors(d: LocalDevice) -> str:
    if not d.error_lines:
        return _e(LABELS["none"])
    items = []
    for i, line in enumerate(d.error_lines):
        reason = d.errors[i].reason if i < len(d.errors) else ""
        label = f"<b>{_e(LABELS['reason'].get(reason, reason))}: </b>" if reason else ""
        items.append(f"<li>{label}<code>{_e(line)}</code></li>")
    return f'<ul class="errors">{"".join(items)}</ul>'


def _device_row(d: LocalDevice, now: float) -> str:
    tone = {"up": "ok", "down": "bad"}.get(d.state, "wait")
    what = ("probe " if d.kind == "probe" else "SNMP ") + d.snmp + (
        " · " + ", ".join(d.profiles) if d.profiles else "")
    duration = LABELS["none"] if d.duration is None else f"{_dec(d.duration, 3)} {LABELS['units'][0]}"
    return (f'<tr class="{_e(d.state)}"><td><div class="mono">{_e(d.name)}</div>'
            f'<div class="sub">{_e(what)}</div></td><td class="mono addr">{_e(d.address)}</td>'
            f'<td><span class="badge {tone}">{_e(LABELS["state"].get(d.state, d.state))}</span></td>'
            f"<td>{_e(_when(d.last_poll_ts, now))}</td><td>{_e(duration)}</td>"
            f"<td>{_e(_secs(d.interval))}</td>"
            f"<td>{_errors(d)}</td></tr>")


def _devices(devices: tuple[LocalDevice, ...], now: float) -> str:
    counts = {state: sum(d.state == state for d in devices) for state in ("up", "down", "waiting")}
    summary = str(LABELS["summary"]).format(total=_num(len(devices)),
                                            **{k: _num(v) for k, v in counts.items()})
    head = "".join(f"<th>{h}</th>" for h in (
        "Tên", "Địa chỉ", "Trạng thái", "Lần đọc gần nhất", "Thời gian đọc", "Chu kỳ",
        'Lỗi <small lang="en">as <code>hatang poll</code> prints them</small>'))
    return ('<section id="devices-section"><h2>Thiết bị và đầu dò <small lang="en">devices and probes: '
            f'last poll</small></h2><p id="devices-summary">{_e(summary)}</p><table id="devices">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(_device_row(d, now) for d in devices)}</tbody>'
            "</table></section>")


def _config(c: dict[str, Any]) -> str:
    mqtt, buffer, traps = c["mqtt"], c["buffer"], c["traps"]
    tls = " · chứng chỉ máy khách" if mqtt["client_certificate"] else ""
    trap_text = "tắt" if traps is None else (
        f"{traps['listen']} · {traps['communities']} community · {traps['users']} người dùng SNMPv3 · "
        f"đọc lại thiết bị ngay khi có trap: {'có' if traps['repoll'] else 'không'}")
    status = c["status"]
    return (
        '<section id="config"><h2>Cấu hình đang áp dụng <small lang="en">applied configuration</small></h2>'
        + _kv([("Tệp cấu hình", "", c["file"]),
               ('Mã phiên bản cấu hình <small lang="en">config_version</small>', "config-version",
                c["config_version"] or LABELS["none"]),
               ("Broker", "", f"{mqtt['url']} · người dùng {mqtt['username']} · MQTT {mqtt['protocol']} · "
                              f"keepalive {_secs(mqtt['keepalive'])}{tls}"),
               ("Hàng đợi", "", f"{buffer['path']} · tối đa {_size(buffer['max_bytes'])}, "
                                f"{_span(buffer['max_age'])} · gửi bù {_num(buffer['replay_rate'])} "
                                "bản tin/giây"),
               ("Số thiết bị / đầu dò", "", f"{_num(c['devices'])} / {_num(c['probes'])}"),
               ("Chu kỳ đọc", "", ", ".join(_secs(i) for i in c["intervals"]) or LABELS["none"]),
               ("Số liệu của chính agent", "", f"mỗi {_secs(c['self_metrics_interval'])}"),
               ("Số lần đọc đồng thời tối đa", "", _num(c["max_concurrent_polls"])),
               ("Nhận trap", "", trap_text),
               ("Trang trạng thái", "", status["listen"] if status else "tắt"),
               ("Mức ghi nhật ký", "", c["log_level"])])
        + '<p class="hint">Mật khẩu, community và tệp chứa bí mật không bao giờ hiện ở trang này. Cấu hình '
          "được đọc khi agent khởi động: sửa tệp rồi khởi động lại agent.</p></section>")


def _labels_block() -> str:
    data = json.dumps(LABELS, ensure_ascii=False)
    data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script id="labels" type="application/json">{data}</script>'


def _document(title: str, body: str, script: bool) -> str:
    tail = f"{_labels_block()}<script>{SCRIPT}</script>" if script else ""
    return ('<!DOCTYPE html><html lang="vi"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}{tail}</body></html>")


def render_page(snap: LocalSnapshot) -> str:
    """The whole status page (``/``)."""
    agent, now = snap.agent, snap.now
    site = " · ".join(_e(v) for v in (agent["site"]["province"], agent["site"]["district"],
                                      agent["site"]["commune"]) if v)
    header = (f'<header><h1>Trạng thái agent <span class="mono">{_e(agent["id"])}</span> '
              '<small lang="en">hatang agent status</small></h1>'
              f'<p id="site">{site}</p><p class="meta">hatang {_e(agent["version"])} · khởi động lúc '
              f'{_e(_clock(agent["started"]))} · <span id="refreshed">{_e(LABELS["refreshed"])} '
              f"{_e(_clock(now))}</span></p></header>")
    footer = (f'<footer><p class="meta">Trang tự cập nhật mỗi {REFRESH_SECONDS} giây, không cần tải lại '
              '<small lang="en">(refreshes itself)</small>. Số liệu dạng JSON: <a href="api/status">'
              "api/status</a>.</p><noscript><p>Trình duyệt đã tắt JavaScript: tải lại trang để cập nhật."
              "</p></noscript></footer>")
    main = ("<main>" + _broker(snap.broker, now) + _buffer(snap.buffer, now) + _devices(snap.devices, now)
            + _config(snap.config) + "</main>")
    return _document(f"Trạng thái agent {agent['id']} — hatang", header + main + footer, script=True)


def render_error(status: int, title: str, title_en: str, message: str) -> str:
    """A small page for a request the status page does not serve (404, 405, 403); ``message`` is text."""
    body = (f'<main><section><h1>{_e(title)} <small lang="en">{status} {_e(title_en)}</small></h1>'
            f'<p>{_e(message)}</p><p><a href="/">Về trang trạng thái của agent</a> · '
            '<a href="/api/status">/api/status</a></p></section></main>')
    return _document(f"{status} {title} — hatang", body, script=False)


def render_not_found(path: str) -> str:
    return render_error(404, "Không tìm thấy trang", "Not Found",
                        f"Địa chỉ {path} không có trên trang trạng thái của agent.")

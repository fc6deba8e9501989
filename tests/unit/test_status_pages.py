"""The collector's status pages without a browser or a socket: the data of ``/api/...``
(collector/status_model.py), the HTML (collector/status_pages.py) and the routes (collector/http.py,
called through aiohttp's mocked requests). States, rates, escaping of every value that comes from an
agent, a device or the inventory, Vietnamese text, 404s and the JSON shape."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from collector import status_answers, status_model, status_pages, status_text
from collector.config import CollectorConfig
from collector.http import make_app
from collector.inventory import Inventory, Site
from collector.selfmetrics import CollectorMetrics
from collector.status_assets import CSP, JS
from collector.status_history import IN_BYTES, OUT_BYTES, TrafficHistory
from collector.store import Store
from hatang.configfile import ConfigError
from wire.codec import Limits, encode_batch, encode_status, encode_trap
from wire.messages import AgentStatus, Family, PollBatch, Sample, TrapMessage
from wire.topics import data_topic, events_topic, self_topic, status_topic

T0 = 1_795_550_000.0
AGENT = "xa-dai-dinh"
HOSTILE_ALIAS = '<img src=x onerror="alert(1)"> Đường truyền chuyên dùng'
HOSTILE_NAME = "<b>Gi0/1</b>"
HOSTILE_SITE = '<script>alert("site")</script> & UBND'
HOSTILE_TRAP = "<svg onload=alert(2)>"
SITES = {
    AGENT: Site(agent=AGENT, province="Phú Thọ", district="Tam Đảo (cũ)", commune="Đại Đình",
                name="UBND xã Đại Đình", role="commune", latitude=21.472, longitude=105.631),
    "ttdl-tinh": Site(agent="ttdl-tinh", province="Phú Thọ", name="Trung tâm dữ liệu tỉnh", role="datacenter",
                      latitude=21.3227, longitude=105.4019),
    "xa-doc-hai": Site(agent="xa-doc-hai", province="Phú Thọ", commune="Độc Hại", name=HOSTILE_SITE,
                       latitude=21.4, longitude=105.5),
}


def _iface(index: int, name: str, alias: str) -> tuple[tuple[str, str], ...]:
    return (("if_alias", alias), ("if_index", str(index)), ("if_name", name))


def _switch_poll(seq: int, ts: float, n: int) -> PollBatch:
    ports = [(1, HOSTILE_NAME, HOSTILE_ALIAS), (2, "Gi0/2", "Phòng một cửa")]
    fam = [
        Family(IN_BYTES, "counter", "in", tuple(Sample(_iface(*p), 1_250_000 * n * p[0]) for p in ports)),
        Family(OUT_BYTES, "counter", "out", tuple(Sample(_iface(*p), 125_000 * n) for p in ports)),
        Family("hatang_interface_oper_status", "gauge", "oper", (Sample(_iface(*ports[0]), 1),
                                                                 Sample(_iface(*ports[1]), 2))),
        Family("hatang_interface_speed_bytes", "gauge", "speed", tuple(Sample(_iface(*p), 125_000_000)
                                                                       for p in ports)),
        Family("hatang_interface_critical", "gauge", "critical", (Sample(_iface(*ports[0]), 1),)),
        Family("hatang_device_uptime_seconds", "gauge", "uptime", (Sample((), 90061.0 + 10 * n),)),
    ]
    return PollBatch(AGENT, "b" * 32, seq, ts, "core-switch", 10.0, True, 0.2, families=tuple(fam))


@pytest.fixture
def store() -> Store:
    now = [T0]
    store = Store(CollectorMetrics(), Limits(), clock=lambda: now[0],
                  inventory=Inventory(Path("inventory.csv"), dict(SITES)))
    history = TrafficHistory(alive=lambda: store.devices)
    store.on_live_poll = history.observe
    store.status_history = history  # type: ignore[attr-defined]  # for the tests below
    listed = ("core-switch", "ups-phong-may", "duong-truyen-cd", "router-moi")
    status = AgentStatus(AGENT, "b" * 32, True, T0, "1.2.3", (), listed, "cfg-9f3a",
                         (("bytes", 2048.0), ("depth", 3.0), ("dropped", 0.0)))
    assert store.ingest(status_topic(AGENT), encode_status(status)) == "accepted"
    seq = 0
    for n in range(3):
        now[0] = T0 + 10 * n + 1
        seq += 1
        assert store.ingest(data_topic(AGENT, "core-switch"), encode_batch(_switch_poll(seq, T0 + 10 * n, n))
                            ) == "accepted"
    seq += 1
    dead = PollBatch(AGENT, "b" * 32, seq, T0 + 20, "ups-phong-may", 10.0, False, 2.0)
    assert store.ingest(data_topic(AGENT, "ups-phong-may"), encode_batch(dead)) == "accepted"
    seq += 1
    probe_labels = (("method", "tcp"), ("target", "127.0.0.1"))
    probe = PollBatch(AGENT, "b" * 32, seq, T0 + 20, "duong-truyen-cd", 10.0, True, 0.6, kind="probe",
                      families=(
        Family("hatang_probe_up", "gauge", "up", (Sample(probe_labels, 1),)),
        Family("hatang_probe_loss_ratio", "gauge", "loss", (Sample(probe_labels, 0.0),)),
        Family("hatang_probe_rtt_seconds", "gauge", "rtt", (Sample((*probe_labels[:1], ("stat", "avg"),
                                                                    probe_labels[1]), 0.0042),)),
    ))
    assert store.ingest(data_topic(AGENT, "duong-truyen-cd"), encode_batch(probe)) == "accepted"
    seq += 1
    own = PollBatch(AGENT, "b" * 32, seq, T0 + 20, "self", 30.0, True, 0.0, families=(
        Family("hatang_agent_queue_messages", "gauge", "q", (Sample((), 5),)),
        Family("hatang_agent_queue_bytes", "gauge", "q", (Sample((), 4096),)),
        Family("hatang_agent_queue_oldest_age_seconds", "gauge", "q", (Sample((), 12.5),)),
        Family("hatang_agent_queue_dropped_total", "counter", "q", (Sample((), 0),)),
    ))
    assert store.ingest(self_topic(AGENT), encode_batch(own)) == "accepted"
    seq += 1
    trap = TrapMessage(AGENT, "b" * 32, seq, T0 + 15, "core-switch", "127.0.0.1", "2c", "1.3.6.1.6.3.1.1.5.3",
                       HOSTILE_TRAP)
    assert store.ingest(events_topic(AGENT), encode_trap(trap)) == "accepted"
    now[0] = T0 + 22
    return store


def _office(store: Store, device: str | None = None, grafana: str | None = None) -> dict[str, Any] | None:
    history = store.status_history  # type: ignore[attr-defined]
    return status_model.office(store, history, AGENT, store.clock(), grafana, device)


# --------------------------------------------------------------------------------------------------
# data


def test_province_lists_every_office_of_the_inventory_with_its_state(store: Store) -> None:
    data = status_model.province(store, store.clock())
    offices = {o["agent"]: o for o in data["offices"]}
    assert set(offices) == set(SITES)
    dai_dinh = offices[AGENT]
    assert dai_dinh["state"] == "warning"  # the UPS does not answer
    # router-moi, listed in the birth message but not polled yet, is not counted: a probe that has not run
    # yet is listed there the same way
    assert (dai_dinh["devices_up"], dai_dinh["devices_total"]) == (1, 2)
    assert dai_dinh["link"] == "up" and dai_dinh["online"] and dai_dinh["name"] == "UBND xã Đại Đình"
    assert offices["ttdl-tinh"]["state"] == "unknown" and offices["ttdl-tinh"]["link"] == "unknown"
    assert data["counts"] == {"offices": 3, "ok": 0, "warning": 1, "offline": 0, "unknown": 2,
                              "devices_up": 1, "devices_total": 2}
    assert data["grafana"] is None


def test_office_shows_devices_interfaces_rates_probes_traps_and_the_agent(store: Store) -> None:
    data = _office(store)
    assert data is not None
    devices = {d["name"]: d for d in data["devices"]}
    assert {n: d["state"] for n, d in devices.items()} == {"core-switch": "up", "ups-phong-may": "down",
                                                          "router-moi": "pending"}
    switch = devices["core-switch"]
    assert switch["uptime_seconds"] == 90081 and switch["errors"] == 0
    ports = {i["if_index"]: i for i in switch["interfaces"]}
    assert ports["1"]["name"] == HOSTILE_NAME and ports["1"]["alias"] == HOSTILE_ALIAS
    assert ports["1"]["oper"] == "up" and ports["2"]["oper"] == "down" and ports["1"]["critical"]
    assert ports["1"]["speed_bps"] == 1_000_000_000
    assert ports["1"]["in_bps"] == 1_000_000.0 and ports["2"]["in_bps"] == 2_000_000.0  # 1.25 MB / 10 s
    assert ports["1"]["out_bps"] == 100_000.0
    assert ports["1"]["history"] == {"in": [1_000_000.0, 1_000_000.0], "out": [100_000.0, 100_000.0]}
    assert data["probes"] == [{"name": "duong-truyen-cd", "state": "up", "target": "127.0.0.1",
                               "method": "tcp", "last_poll": T0 + 20, "poll_age": 2.0, "loss_ratio": 0,
                               "rtt_seconds": 0.0042}]
    assert data["traps"] == [{"device": "core-switch", "trap": HOSTILE_TRAP, "count": 1, "last": T0 + 15}]
    agent = data["agent"]
    assert (agent["version"], agent["config_version"], agent["online"]) == ("1.2.3", "cfg-9f3a", True)
    assert agent["buffer"] == {"messages": 5, "bytes": 4096, "oldest_age_seconds": 12.5, "dropped": 0,
                               "source": "self", "ts": T0 + 20}


def test_buffer_falls_back_to_the_birth_message_without_self_metrics(store: Store) -> None:
    del store.devices[(AGENT, "@self")]
    data = _office(store)
    assert data is not None
    assert data["agent"]["buffer"]["source"] == "status" and data["agent"]["buffer"]["messages"] == 3


def test_stale_devices_show_no_current_rate(store: Store) -> None:
    store.broker_connected = False
    data = _office(store)
    assert data is not None
    switch = next(d for d in data["devices"] if d["name"] == "core-switch")
    assert switch["state"] == "stale" and all(i["in_bps"] is None for i in switch["interfaces"])


def test_one_device_unknown_office_and_unknown_device(store: Store) -> None:
    one = _office(store, device="ups-phong-may")
    assert one is not None and [d["name"] for d in one["devices"]] == ["ups-phong-may"] and not one["traps"]
    assert _office(store, device="khong-co") is None
    assert status_model.office(store, None, "khong-co", store.clock()) is None


def test_interfaces_shown_per_device_are_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_model, "MAX_INTERFACES", 1)
    data = _office(store)
    assert data is not None
    switch = next(d for d in data["devices"] if d["name"] == "core-switch")
    assert [i["if_index"] for i in switch["interfaces"]] == ["1"] and switch["interfaces_hidden"] == 1
    assert "… và 1 cổng khác" in status_pages.office_page(data, "t")


def test_json_shape_is_plain_json(store: Store) -> None:
    for data in (status_model.province(store, store.clock()), _office(store)):
        text = json.dumps(data, allow_nan=False, ensure_ascii=False)
        assert json.loads(text) == data
    province = status_model.province(store, store.clock())
    assert set(province) == {"generated", "counts", "offices", "grafana"}
    assert set(province["offices"][0]) == {"agent", "name", "role", "province", "district", "commune",
                                           "latitude", "longitude", "state", "online", "last_seen",
                                           "devices_up", "devices_total", "link", "version",
                                           "config_version", "config_rejected", "buffer"}
    office = _office(store)
    assert office is not None
    assert set(office) == {"generated", "office", "agent", "device", "devices", "probes", "traps",
                           "traps_total", "grafana"}
    assert set(office["devices"][0]["interfaces"][0]) == {"if_index", "name", "alias", "oper_status", "oper",
                                                          "speed_bps", "critical", "in_bps", "out_bps",
                                                          "history"}


def test_grafana_links_to_the_shipped_dashboards(store: Store) -> None:
    uids = {json.loads(p.read_text(encoding="utf-8"))["uid"]
            for p in (Path(__file__).resolve().parents[2] / "dashboards").glob("*.json")}
    data = _office(store, grafana="https://grafana.tinh.gov.vn/")
    assert data is not None
    links = data["grafana"]
    assert links == {"province": "https://grafana.tinh.gov.vn/d/hatang-toan-tinh",
                     "office": "https://grafana.tinh.gov.vn/d/hatang-diem?var-agent=xa-dai-dinh",
                     "interface": "https://grafana.tinh.gov.vn/d/hatang-cong?var-agent=xa-dai-dinh"}
    assert {link.split("/d/")[1].split("?")[0] for link in links.values()} <= uids
    page = status_pages.office_page(data, "test")
    assert 'href="https://grafana.tinh.gov.vn/d/hatang-diem?var-agent=xa-dai-dinh"' in page


@pytest.mark.parametrize("url, ok", [("https://grafana.tinh.gov.vn", True), ("http://10.0.0.5:3000/g", True),
                                     ("javascript:alert(1)", False), ('https://x"><script>', False)])
def test_grafana_url_in_the_config(url: str, ok: bool, tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(f'mqtt: {{url: "mqtt://127.0.0.1:1883"}}\ngrafana_url: {json.dumps(url)}\n',
                    encoding="utf-8")
    from collector import config

    if ok:
        assert config.load(path).grafana_url == url
    else:
        with pytest.raises(ConfigError):
            config.load(path)
    assert CollectorConfig.model_validate({"mqtt": {"url": "mqtt://h:1"}}).grafana_url is None


# --------------------------------------------------------------------------------------------------
# HTML


class _Parsed(HTMLParser):
    """Tags, attributes and text of a page as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _no_raw(page: str, *hostile: str) -> None:
    """Each hostile value is in the page as text (and in attributes as values), never as markup."""
    for text in hostile:
        assert text not in page, f"unescaped in the page: {text}"
    parsed = _Parsed(page)
    assert [t for t, _ in parsed.tags if t in ("script", "img", "iframe", "object", "embed")] == ["script"]
    assert not [(t, a) for t, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert not [t for t, attrs in parsed.tags if t == "svg" and "onload" in attrs]
    text = "".join(parsed.text)
    for value in hostile:
        assert value in text, f"not shown as text: {value}"


def test_every_label_value_is_escaped(store: Store) -> None:
    office = _office(store)
    assert office is not None
    page = status_pages.office_page(office, "test")
    _no_raw(page, HOSTILE_ALIAS, HOSTILE_NAME, HOSTILE_TRAP)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; Đường truyền chuyên dùng" in page
    assert "&lt;b&gt;Gi0/1&lt;/b&gt;" in page and "&lt;svg onload=alert(2)&gt;" in page
    province = status_pages.province_page(status_model.province(store, store.clock()), "test")
    _no_raw(province, HOSTILE_SITE)
    escaped = "&lt;script&gt;alert(&quot;site&quot;)&lt;/script&gt; &amp; UBND"
    assert province.count(escaped) == 3  # its row, and its map marker's title and label


def test_a_hostile_device_name_renders_as_text(store: Store) -> None:
    """Device names are restricted by the wire contract; the renderer does not rely on it."""
    office = _office(store)
    assert office is not None
    name = '"><script>alert(3)</script>'
    office["devices"][0]["name"] = name
    office["office"]["agent"] = 'x"><img src=y>'
    page = status_pages.office_page(office, "test")
    _no_raw(page, name, '<img src=y>')
    assert "&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert "/office/x%22%3E%3Cimg%20src%3Dy%3E/device/%22%3E%3Cscript%3Ealert%283%29%3C%2Fscript%3E" in page


def test_pages_are_vietnamese_with_correct_diacritics(store: Store) -> None:
    province = status_pages.province_page(status_model.province(store, store.clock()), "test")
    office = _office(store)
    assert office is not None
    page = status_pages.office_page(office, "test")
    for text in ("Tình trạng hạ tầng mạng toàn tỉnh", "UBND xã Đại Đình", "Khu vực Tam Đảo (cũ)", "Có sự cố",
                 "Chưa kết nối", "Trung tâm dữ liệu tỉnh", "Thiết bị hoạt động", "Đường truyền"):
        assert text in province, text
    for text in ("Không trả lời", "Hoạt động", "Chưa có dữ liệu", "Hàng đợi trên đĩa",
                 "Cấu hình đang áp dụng", "Trap gần đây", "1,0 Mbit/s", "100 kbit/s", "1 ngày 1 giờ"):
        assert text in page, text
    for html_page in (province, page):
        assert '<html lang="vi">' in html_page and '<meta charset="utf-8">' in html_page
        assert unicodedata.is_normalized("NFC", html_page)


def test_pages_load_nothing_from_elsewhere_and_the_script_is_allowed_by_hash(store: Store) -> None:
    office = _office(store)
    assert office is not None
    for page in (status_pages.office_page(office, "t"),
                 status_pages.province_page(status_model.province(store, store.clock()), "t")):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert "@import" not in page and "url(" not in page
        script = re.findall(r"<script>(.*?)</script>", page, re.S)
        assert script == [JS]
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in CSP and "default-src 'none'" in CSP


def test_map_places_offices_by_their_coordinates(store: Store) -> None:
    page = status_pages.province_page(status_model.province(store, store.clock()), "t")
    circles = dict(re.findall(r'data-marker="([^"]+)" class="m-[a-z]+" cx="([\d.]+)"', page))
    assert set(circles) == set(SITES)
    assert float(circles["ttdl-tinh"]) < float(circles["xa-doc-hai"]) < float(circles[AGENT])  # west to east


def test_not_found_page() -> None:
    page = status_pages.not_found_page("/office/<b>x</b>", "t", T0)
    assert "Không tìm thấy" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_formats() -> None:
    assert status_text.bits_per_second(12_345_678) == "12,3 Mbit/s"
    assert status_text.bits_per_second(999) == "999 bit/s"
    assert status_text.bits_per_second(1_000_000_000) == "1,0 Gbit/s"
    assert status_text.bits_per_second(None) == "–"
    assert status_text.size_bytes(1_234_567) == "1,2 MB"
    assert status_text.age(0.5) == "vừa xong" and status_text.age(75) == "1 phút 15 giây trước"
    assert status_text.duration(90061) == "1 ngày 1 giờ" and status_text.duration(0) == "0 giây"
    assert status_text.number(12345) == "12.345"
    path = status_pages.spark_path([None, 10.0, 20.0, None, 5.0], 20.0, 40, 10)
    assert path == "M10.0 5.0L20.0 1.0M40.0 7.0"  # a gap where a rate is unknown


# --------------------------------------------------------------------------------------------------
# routes (aiohttp's mocked requests: no socket)


def _get(app: Any, path: str) -> Any:
    async def go() -> Any:
        return await app._handle(make_mocked_request("GET", path, app=app))

    return asyncio.run(go())


@pytest.mark.parametrize("path, status, kind", [
    ("/", 200, "text/html"), ("/office/xa-dai-dinh", 200, "text/html"),
    ("/office/xa-dai-dinh/device/ups-phong-may", 200, "text/html"), ("/api/offices", 200, "application/json"),
    ("/api/office/xa-dai-dinh", 200, "application/json"),
    ("/api/office/xa-dai-dinh/device/core-switch", 200, "application/json"),
    ("/office/khong-co", 404, "text/html"), ("/office/xa-dai-dinh/device/khong-co", 404, "text/html"),
    ("/office/%3Cscript%3E", 404, "text/html"), ("/khong-co", 404, "text/html"),
    ("/api/office/khong-co", 404, "application/json"), ("/api/khong-co", 404, "application/json"),
])
def test_routes(store: Store, path: str, status: int, kind: str) -> None:
    app = make_app(store, lambda: True, history=store.status_history,  # type: ignore[attr-defined]
                   grafana=lambda: None)
    app.freeze()
    response = _get(app, path)
    assert (response.status, response.content_type, response.charset) == (status, kind, "utf-8")
    body = response.body.decode("utf-8")
    if kind == "text/html":
        assert response.headers["Content-Security-Policy"] == CSP
        assert "<script>alert" not in body and "<html lang=\"vi\">" in body
        if status == 404:
            assert "Không tìm thấy" in body
    else:
        data = json.loads(body)
        assert ("error" in data) == (status == 404)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_ages_are_in_reference_time_when_the_collectors_clock_is_judged_off(store: Store) -> None:
    """The store keeps poll times in reference time (collector/clock.py); so do the pages' ages."""
    before = _office(store)
    assert before is not None
    store.clocks.reference = 600.0  # the agents agree the collector's clock is 10 minutes slow
    after = _office(store)
    assert after is not None
    assert after["generated"] == pytest.approx(before["generated"] + 600)
    ages = [(b["poll_age"], a["poll_age"]) for b, a in zip(before["devices"], after["devices"], strict=True)
            if b["poll_age"] is not None]
    assert ages and all(a == pytest.approx(b + 600) for b, a in ages)


class _Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_answers_are_shared_budgeted_and_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = _Ticks()
    computed: list[str] = []
    real = status_model.office

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        computed.append(str(args[2]))
        ticks.t += 0.1  # each office page "costs" 100 ms
        return real(*args, **kwargs)

    monkeypatch.setattr(status_model, "office", counting)
    version = [1]
    answers = status_answers.StatusAnswers(store, store.status_history,  # type: ignore[attr-defined]
                                           lambda: None, store.clock, lambda: version[0], ticks)
    first = answers.get(f"/office/{AGENT}", AGENT)
    assert first.status == 200 and first.kind == "html"
    # a burst for the same page, the store changing under it: one computation per MIN_AGE
    for _ in range(50):
        version[0] += 1
        assert answers.get(f"/office/{AGENT}", AGENT) is first
    assert computed == [AGENT]
    # cycling through distinct paths: past BUDGET seconds of work in a second, 503 for new paths
    statuses = [answers.get(f"/api/office/{AGENT}/device/x{i}", AGENT, f"x{i}").status for i in range(10)]
    assert statuses.count(503) >= 6 and len(computed) <= 1 + 3
    # a page already computed is still served (older) while over budget
    assert answers.get(f"/office/{AGENT}", AGENT) is first
    # a second later the budget is back
    ticks.t += 1.5
    assert answers.get(f"/api/office/{AGENT}", AGENT).status == 200
    # at most MAX_ENTRIES kept
    ticks.t += 10
    monkeypatch.setattr(status_answers, "BUDGET", 1e9)
    for i in range(status_answers.MAX_ENTRIES + 50):
        answers.get(f"/office/nope-{i}", f"nope-{i}")
    assert len(answers._kept) == status_answers.MAX_ENTRIES

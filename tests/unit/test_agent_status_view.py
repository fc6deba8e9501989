"""The agent's local status page without sockets: the ``status`` config section, the snapshot the service
gives (agent/status_view.py), its HTML (agent/status_html.py: Vietnamese, escaped, offline, no secrets),
the routes through aiohttp's mocked requests (agent/status_page.py), and that an agent without the
page never imports aiohttp."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent import config as agent_config
from agent.poll_once import format_report
from agent.poller import PollOutcome
from agent.queue import DiskQueue
from agent.service import AgentService
from agent.status_html import CSP, LABELS, SCRIPT, STYLE, render_error, render_not_found, render_page
from agent.status_view import (
    LocalBroker,
    LocalBuffer,
    LocalDevice,
    LocalError,
    LocalSnapshot,
    as_json,
    snapshot,
    to_json_bytes,
)
from agent.uplink import Uplink, UplinkSettings
from hatang.configfile import ConfigError
from tests.support.hatang import write_yaml
from wire.messages import ERROR_REASONS, ProfileError

SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}
SECRETS = ("community-s3cret", "auth-pass-s3cret", "priv-pass-s3cret", "mqtt-pass-s3cret", "trap-comm-s3cret",
           "trap-auth-s3cret", "trap-priv-s3cret", "file-community-s3cret")
HOSTILE = '<img src=x onerror="alert(1)">'


class Page(HTMLParser):
    """The elements, attributes and text of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data
        else:
            self.text.append(data)

    def names(self) -> list[str]:
        return [tag for tag, _ in self.tags]

    def all_text(self) -> str:
        return "".join(self.text)


# ---------------------------------------------------------------------------------------------- config


def _doc(tmp_path: Path, **extra: Any) -> Path:
    doc = {"agent_id": "xa-dai-dinh", "site": SITE, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
           "buffer": {"path": "buf"}, "devices": [{"name": "sw", "address": "127.0.0.1"}], **extra}
    return write_yaml(tmp_path / "agent.yaml", doc)


def test_the_page_is_off_unless_the_section_is_given(tmp_path: Path) -> None:
    assert agent_config.parse(_doc(tmp_path)).status is None
    assert agent_config.parse(_doc(tmp_path, status=None)).status is None


@pytest.mark.parametrize(("listen", "host_port"), [
    (None, ("127.0.0.1", 9109)),  # status: {} -> the default address
    (9200, ("127.0.0.1", 9200)),  # a port alone: this machine only
    ("9200", ("127.0.0.1", 9200)),
    ("0.0.0.0:9109", ("0.0.0.0", 9109)),
    ("[::1]:9109", ("::1", 9109)),
    ("agent-host.lan:8080", ("agent-host.lan", 8080)),
])
def test_listen_addresses(tmp_path: Path, listen: Any, host_port: tuple[str, int]) -> None:
    section = {} if listen is None else {"listen": listen}
    status = agent_config.parse(_doc(tmp_path, status=section)).status
    assert status is not None and status.host_port() == host_port


@pytest.mark.parametrize(("section", "expected"), [
    ({"listen": ":9109"}, "status.listen: Value error, ':9109' is not HOST:PORT"),
    ({"listen": "localhost"}, "status.listen: Value error, 'localhost' is not HOST:PORT"),
    ({"listen": "127.0.0.1:70000"}, "status.listen: port 70000 is out of range: use 1-65535"),
    ({"listen": 0}, "status.listen: port 0 is out of range"),
    ({"listen": True}, "status.listen: Input should be a valid string"),
    ({"lisen": 9109}, "status.lisen: unknown key; did you mean 'listen'?"),
    ("on", "status: Input should be a valid dictionary"),
])
def test_a_bad_status_section_names_the_key(tmp_path: Path, section: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        agent_config.parse(_doc(tmp_path, status=section))
    assert expected in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "agent.yaml"))


@pytest.mark.parametrize(("listen", "warned"), [
    ("127.0.0.1:9109", False), ("[::1]:9109", False), ("localhost:9109", False), ("0.0.0.0:9109", True),
    ("192.0.2.5:9109", True), ("agent-host.lan:9109", True)])
def test_a_page_served_beyond_this_machine_is_warned_about(tmp_path: Path, listen: str, warned: bool) -> None:
    path = _doc(tmp_path, status={"listen": listen})
    warnings = [w for w in agent_config.model_warnings(agent_config.parse(path), path)
                if "status.listen" in str(w)]
    assert bool(warnings) == warned
    if warned:
        assert "without a password" in str(warnings[0]) and "SSH tunnel" in str(warnings[0])


# ---------------------------------------------------------------------------------------------- snapshot


def _secret_config(tmp_path: Path) -> Path:
    (tmp_path / "community").write_text("file-community-s3cret\n", encoding="utf-8")
    return _doc(
        tmp_path,
        mqtt={"url": "mqtt://127.0.0.1:1883", "password": "mqtt-pass-s3cret"},
        devices=[
            {"name": "core-switch", "address": "192.0.2.10", "interval": 60,
             "snmp": {"community": "community-s3cret"}},
            {"name": "router", "address": "192.0.2.1", "port": 1161, "profiles": ["system"],
             "snmp": {"version": 3, "username": "hatang-v3-user", "auth_protocol": "SHA256",
                      "auth_password": "auth-pass-s3cret", "priv_protocol": "AES",
                      "priv_password": "priv-pass-s3cret"}},
            {"name": "ups", "address": "192.0.2.20", "snmp": {"community_file": "community"}},
        ],
        traps={"listen": "127.0.0.1:1162", "communities": ["trap-comm-s3cret"],
               "users": [{"username": "trap-user", "auth_protocol": "SHA",
                          "auth_password": "trap-auth-s3cret", "priv_protocol": "AES",
                          "priv_password": "trap-priv-s3cret"}]},
        probes=[{"name": "cong-tinh", "address": "10.0.0.1", "method": "tcp", "tcp_port": 443}],
        status={"listen": 9109},
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AgentService]:
    path = _secret_config(tmp_path)
    made = AgentService(agent_config.parse(path), path)
    try:
        yield made
    finally:
        made.queue.close()


TIMEOUT = ProfileError("system", "no answer from 192.0.2.1:1161 within 2 s x 2 tries: device down", "timeout")


def _polled(service: AgentService) -> None:
    service.record("core-switch", 60, PollOutcome(1000.0, True, 0.25, (), ()))
    service.record("router", 60, PollOutcome(1001.0, False, 4.0, (TIMEOUT,), ()))


def test_the_snapshot_says_what_the_service_knows(service: AgentService) -> None:
    _polled(service)
    snap = snapshot(service, now=1010.0)
    assert snap.now == 1010.0 and snap.agent["id"] == "xa-dai-dinh"
    assert snap.agent["site"] == SITE and snap.agent["boot_id"] == service.boot_id
    assert snap.broker.url == "mqtt://127.0.0.1:1883" and not snap.broker.connected
    assert snap.broker.state == "starting" and snap.broker.last_error is None
    stats = service.queue.stats()
    assert (snap.buffer.depth, snap.buffer.bytes, snap.buffer.oldest_ts) == (2, stats.bytes, stats.oldest)
    assert snap.buffer.max_bytes == 256 * 1024 * 1024
    by_name = {d.name: d for d in snap.devices}
    assert list(by_name) == ["core-switch", "router", "ups", "cong-tinh"]  # config order, probes last
    assert by_name["core-switch"].state == "up" and by_name["core-switch"].duration == 0.25
    assert by_name["core-switch"].errors == () and by_name["core-switch"].snmp == "v2c"
    router = by_name["router"]
    assert (router.state, router.last_poll_ts, router.address, router.snmp) == (
        "down", 1001.0, "192.0.2.1:1161", "v3 authPriv")
    assert router.errors == (LocalError("system", "timeout", TIMEOUT.error),)
    assert by_name["ups"].state == "waiting" and by_name["ups"].last_poll_ts is None
    assert by_name["cong-tinh"].kind == "probe" and by_name["cong-tinh"].address == "10.0.0.1 (tcp 443)"
    assert snap.config["config_version"] == service.config_version == service.config_hash != ""
    assert snap.config["devices"] == 3 and snap.config["probes"] == 1
    assert snap.config["traps"] == {"listen": "127.0.0.1:1162", "repoll": True, "users": 1, "communities": 1}


def test_a_connection_that_ended_is_not_shown_as_connected(service: AgentService) -> None:
    service.uplink._set_state("connected")
    service.uplink.connected = True
    assert snapshot(service).broker.state == "connected"
    service.uplink.connected = False  # the connection ended; the uplink has not said why yet
    assert snapshot(service).broker.state == "unreachable"
    service.uplink._set_state("refused", "not authorized (0x87) for a message on hatang/v1/agents/x/status")
    broker = snapshot(service).broker
    assert broker.state == "refused" and broker.last_error is not None and "0x87" in broker.last_error


def test_the_last_poll_keeps_no_samples(service: AgentService) -> None:
    from wire.messages import Family, Sample

    family = Family("hatang_x", "gauge", "x", (Sample((), 1.0),))
    service.record("core-switch", 60, PollOutcome(1000.0, True, 0.1, (), (family,), (("timeout", 0),)))
    kept = service.last_polls["core-switch"]
    assert kept.families == () and kept.problems == () and kept.up


def test_an_auto_device_shows_the_profiles_chosen_for_it(service: AgentService) -> None:
    """core-switch has no `profiles` (auto): "auto" until its first poll identified it, then the profiles
    that poll used; a listed set (router) is shown as configured, whatever a poll says."""
    before = {d.name: d for d in snapshot(service).devices}
    assert (before["core-switch"].profiles, before["core-switch"].profiles_auto) == (("auto",), True)
    assert (before["router"].profiles, before["router"].profiles_auto) == (("system",), False)
    service.record("core-switch", 60, PollOutcome(1000.0, False, 2.0, (TIMEOUT,), ()))  # not identified
    assert next(d for d in snapshot(service).devices if d.name == "core-switch").profiles == ("auto",)
    chosen = ("system", "cisco-ios", "interfaces", "neighbors")
    service.record("core-switch", 60, PollOutcome(1060.0, True, 0.5, (), (), profiles=chosen))
    service.record("router", 60, PollOutcome(1061.0, True, 0.5, (), (), profiles=("system",)))
    after = {d.name: d for d in snapshot(service).devices}
    assert after["core-switch"].profiles == chosen and after["core-switch"].profiles_auto
    assert after["router"].profiles == ("system",)
    data = json.loads(to_json_bytes(snapshot(service)))
    assert data["devices"][0]["profiles"] == list(chosen) and data["devices"][0]["profiles_auto"] is True
    # a later poll that did not answer keeps the identified set, and its error lines name those profiles
    down = ProfileError("*", "no answer from 192.0.2.10:161 within 2 s x 2 tries: device down", "timeout")
    service.record("core-switch", 60, PollOutcome(1120.0, False, 4.0, (down,), (), profiles=chosen))
    switch = next(d for d in snapshot(service).devices if d.name == "core-switch")
    assert switch.profiles == chosen and switch.state == "down"
    assert "cisco-ios" in render_page(snapshot(service))


def test_errors_read_as_hatang_poll_prints_them(service: AgentService) -> None:
    _polled(service)
    router = next(d for d in snapshot(service).devices if d.name == "router")
    config = service.config.devices[1]
    report = format_report(config, PollOutcome(1001.0, False, 4.0, (TIMEOUT,), ()))
    printed = report.split("errors (1):\n")[1].split("would publish")[0].splitlines()
    assert list(router.error_lines) == [line.strip() for line in printed]
    assert router.error_lines[0].startswith("profile system [timeout]: no answer from 192.0.2.1:1161")


def test_the_uplinks_state_and_last_error(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q", max_bytes=1 << 20, max_age=3600)
    try:
        uplink = Uplink(UplinkSettings(url="mqtt://127.0.0.1:1", client_id="c"), "a", queue,
                        birth=lambda: b"{}", will=b"{}")
        assert (uplink.state, uplink.last_error) == ("starting", None)
        uplink._unreachable(ConnectionRefusedError(111, "Connection refused"))
        since = uplink.state_since
        assert uplink.state == "unreachable" and uplink.last_error == "[Errno 111] Connection refused"
        uplink._unreachable(OSError("still down"))
        assert uplink.state_since == since and uplink.last_error == "still down"  # same episode
        assert uplink.last_error_ts is not None and uplink.last_error_ts >= since
    finally:
        queue.close()


# ---------------------------------------------------------------------------------------------- rendering


def _snap(name: str = "core-switch", **changes: Any) -> LocalSnapshot:
    error = LocalError("*", "timeout", "no answer")
    device = LocalDevice(name, "device", "192.0.2.10:161", "v2c", ("system", "interfaces"), 60.0, "down",
                         995.0, 2.5, (error,), ("whole poll [timeout]: no answer",))
    fields: dict[str, Any] = {
        "now": 1000.0,
        "agent": {"id": "xa-dai-dinh", "version": "0.1.0", "boot_id": "b", "started": 900.0, "site": SITE},
        "broker": LocalBroker("mqtt://127.0.0.1:1883", False, "unreachable", 950.0,
                              "[Errno 111] Connection refused", 990.0, "5", 10, 2, 1),
        "buffer": LocalBuffer(12, 34_567, 950.0, 0, 0, 256 * 1024 * 1024, 604800.0),
        "devices": (device, LocalDevice("ups", "device", "192.0.2.20:161", "v2c", ("ups",), 30.0, "waiting",
                                        None, None, (), ())),
        "config": {"file": "/etc/hatang/agent.yaml", "config_version": "0123456789ab",
                   "agent_id": "xa-dai-dinh",
                   "mqtt": {"url": "mqtt://127.0.0.1:1883", "username": "xa-dai-dinh", "protocol": "auto",
                            "keepalive": 30, "client_certificate": False, "redeliver_window": 120.0},
                   "buffer": {"path": "/var/lib/hatang/buffer", "max_bytes": 268435456, "max_age": 604800.0,
                              "replay_rate": 20.0},
                   "devices": 2, "probes": 0, "intervals": [30.0, 60.0], "self_metrics_interval": 60.0,
                   "max_concurrent_polls": 32, "log_level": "info", "traps": None,
                   "status": {"listen": "127.0.0.1:9109"}},
    }
    fields.update(changes)
    return LocalSnapshot(**fields)


def test_the_page_is_in_vietnamese_and_shows_every_part() -> None:
    page = render_page(_snap())
    assert unicodedata.is_normalized("NFC", page)
    text = Page(page).all_text()
    for words in ("Trạng thái agent", "Kết nối tới Trung tâm (broker MQTT)", "Mất kết nối",
                  "[Errno 111] Connection refused", "Hàng đợi trên đĩa", "Bản tin chờ gửi", "12",
                  "Bản tin cũ nhất đang chờ", "Thiết bị và đầu dò", "core-switch", "Không trả lời",
                  "whole poll [timeout]: no answer", "Chưa đọc lần nào", "Cấu hình đang áp dụng",
                  "0123456789ab", "/etc/hatang/agent.yaml", "Vĩnh Phúc · Tam Đảo · Đại Đình",
                  "2 thiết bị và đầu dò: 0 trả lời, 1 không trả lời, 1 chưa đọc", "33,8 KiB / 256 MiB",
                  "Số liệu chờ quá 7 ngày bị bỏ", "tối đa 256 MiB, 7 ngày",
                  "2,500 giây", "60 giây"):
        assert words in text, words
    assert '<html lang="vi">' in page and 'lang="en"' in page  # English alongside, marked as such


def test_a_hostile_device_name_and_texts_render_as_text() -> None:
    error = LocalError("*", "timeout", f"</code>{HOSTILE}")
    device = LocalDevice(HOSTILE, "device", f"{HOSTILE}:161", "v2c", (HOSTILE,), 60.0, "down", 990.0, 1.0,
                         (error,), (f"whole poll [timeout]: </code>{HOSTILE}<script>alert(2)</script>",))
    site = {"province": HOSTILE, "district": None, "commune": "</p><script>alert(3)</script>"}
    snap = _snap(devices=(device,), agent={**_snap().agent, "site": site, "id": HOSTILE},
                 broker=LocalBroker(HOSTILE, False, "unreachable", 950.0, f"<b>{HOSTILE}</b>", 990.0, "5",
                                    0, 0, 0))
    page = render_page(snap)
    parsed = Page(page)
    assert "img" not in parsed.names() and parsed.names().count("b") == 1  # the reason's label only
    assert parsed.names().count("script") == 2  # the labels data block and the page's own script
    assert parsed.scripts[1] == SCRIPT
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    text = parsed.all_text()
    assert text.count(HOSTILE) >= 5 and "</p><script>alert(3)</script>" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    title = page.split("<title>")[1].split("</title>")[0]
    assert "<" not in title


def test_the_labels_block_cannot_end_its_script_element() -> None:
    page = render_page(_snap())
    block = page.split('<script id="labels" type="application/json">')[1].split("</script>")[0]
    assert "<" not in block and json.loads(block) == LABELS


def test_every_reason_and_broker_state_has_vietnamese_words() -> None:
    assert set(ERROR_REASONS) <= set(LABELS["reason"])
    for key in ("broker", "broker_en", "broker_hint"):
        assert set(LABELS[key]) == {"starting", "connected", "unreachable", "refused"}
    assert set(LABELS["state"]) == {"up", "down", "waiting"}


def test_the_page_needs_nothing_from_the_network() -> None:
    page = render_page(_snap())
    parsed = Page(page)
    assert not {"link", "img", "iframe", "object", "embed", "base"} & set(parsed.names())
    assert all("src" not in attrs for tag, attrs in parsed.tags)
    links = {attrs.get("href") for tag, attrs in parsed.tags if tag == "a"}
    assert links <= {"api/status", "/", "/api/status"}
    assert "@import" not in STYLE and "url(" not in STYLE
    assert "https://" not in SCRIPT and "http://" not in SCRIPT and "fetch(\"api/status\"" in SCRIPT


def test_the_csp_allows_exactly_the_inline_script_and_style() -> None:
    parsed = Page(render_page(_snap()))
    for text in (parsed.scripts[1], parsed.styles[0]):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in CSP
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_the_404_page_escapes_the_path_and_has_no_script() -> None:
    page = render_not_found("/<script>alert(1)</script>")
    parsed = Page(page)
    assert "script" not in parsed.names()
    assert "Không tìm thấy trang" in parsed.all_text() and "/<script>alert(1)</script>" in parsed.all_text()
    assert render_error(405, "A", "B", "<x>").count("&lt;x&gt;") == 1


# ---------------------------------------------------------------------------------------------- secrets


def test_no_secret_reaches_the_page_or_the_json(service: AgentService) -> None:
    _polled(service)
    snap = snapshot(service)
    page, body = render_page(snap), to_json_bytes(snap).decode()
    for secret in SECRETS:
        assert secret not in page and secret not in body, secret
    assert "hatang-v3-user" not in page and "trap-user" not in body  # v3 user names are credentials too
    assert str(service.config.devices[2].snmp.community_file) not in body  # nor secret file paths
    assert service.config.devices[1].snmp.auth_password == "auth-pass-s3cret"  # they were in the config


def test_the_json_shape(service: AgentService) -> None:
    _polled(service)
    data = json.loads(to_json_bytes(snapshot(service, now=1010.0)))
    assert data == json.loads(json.dumps(as_json(snapshot(service, now=1010.0)))) and data["schema"] == 1
    assert set(data) == {"schema", "now", "agent", "broker", "buffer", "devices", "config"}
    assert set(data["broker"]) == {"url", "connected", "state", "since", "last_error", "last_error_ts",
                                   "protocol", "published", "replayed", "connects"}
    assert set(data["buffer"]) == {"depth", "bytes", "oldest_ts", "dropped", "dropped_full", "max_bytes",
                                   "max_age"}
    router = data["devices"][1]
    assert set(router) == {"name", "kind", "address", "snmp", "profiles", "interval", "state", "last_poll_ts",
                           "duration", "errors", "error_lines", "profiles_auto"}
    assert router["errors"] == [{"profile": "system", "reason": "timeout", "error": TIMEOUT.error}]


# ---------------------------------------------------------------------------------------------- routes


async def _get(service: AgentService, path: str, method: str = "GET", host: str = "127.0.0.1:9109",
               listen: str = "127.0.0.1") -> Any:
    from aiohttp.test_utils import make_mocked_request

    from agent.status_page import make_app

    app = make_app(service, listen)
    request = make_mocked_request(method, path, headers={"Host": host}, app=app)
    match = await app.router.resolve(request)
    return await match.handler(request)


async def test_the_routes(service: AgentService) -> None:
    _polled(service)
    page = await _get(service, "/")
    assert page.status == 200 and page.content_type == "text/html" and page.charset == "utf-8"
    assert page.headers["Content-Security-Policy"] == CSP and page.headers["Cache-Control"] == "no-store"
    assert "core-switch" in page.text
    api = await _get(service, "/api/status", host="localhost:9109")
    assert api.status == 200 and api.content_type == "application/json"
    assert json.loads(api.body)["devices"][0]["name"] == "core-switch"
    missing = await _get(service, "/metrics/<b>x</b>")
    assert missing.status == 404 and "Không tìm thấy trang" in missing.text and "<b>x" not in missing.text
    posted = await _get(service, "/api/status", method="POST")
    assert posted.status == 405 and posted.headers["Allow"] == "GET, HEAD"


async def test_a_loopback_page_answers_only_loopback_host_names(service: AgentService) -> None:
    for host in ("127.0.0.1:9109", "localhost:9109", "[::1]:9109", "127.0.0.2"):
        assert (await _get(service, "/api/status", host=host)).status == 200, host
    rebound = await _get(service, "/api/status", host="attacker.example:9109")
    assert rebound.status == 403 and "127.0.0.1" in rebound.text
    # listening on every interface, the page is meant to be reached by the machine's names
    assert (await _get(service, "/", host="agent-xa.lan:9109", listen="0.0.0.0")).status == 200


# ---------------------------------------------------------------------------------------------- memory

RUN_AGENT = """
import asyncio, sys
from hatang import cli

async def stop_at_once(main):  # the agent starts, then stops at once: imports done, no signal needed
    stop = asyncio.Event()
    stop.set()
    await main(stop)

cli.run_until_signal = stop_at_once
code = cli.main(["agent", "-c", {path!r}])
print(code, "aiohttp" in sys.modules, "agent.status_page" in sys.modules, "agent.status_html" in sys.modules)
"""


def _run_agent(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", RUN_AGENT.format(path=str(path))], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_an_agent_without_the_page_never_imports_aiohttp(tmp_path: Path) -> None:
    # the broker address refuses at once (port 1); the agent stops before it matters
    path = _doc(tmp_path, mqtt={"url": "mqtt://127.0.0.1:1"}, devices=[])
    assert _run_agent(path) == "0 False False False"


def test_the_check_would_see_aiohttp() -> None:
    code = "import sys, agent.status_page; print('aiohttp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.stdout.strip() == "True"

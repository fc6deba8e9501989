"""The collector's status pages in a real browser: headless Chromium (Debian package ``chromium``) loads
them from a running ``hatang demo``, driven over the DevTools protocol (a websocket; aiohttp's client).

- The province page lists every office of the demo with its Vietnamese name and its state (xa-dai-dinh
  "Có sự cố": its UPS ups-phong-may never answers), the map has a marker per office.
- The office page of xa-dai-dinh shows ups-phong-may as down ("Không trả lời"), core-switch up with its
  interface rows and a traffic figure in bit/s; after the page refreshed itself from /api (no reload),
  it still does.
- Text is Vietnamese with its diacritics intact (UTF-8 end to end: no replacement characters, no
  mojibake).
- No request leaves the host: every request the pages make is to the demo's address (or a data: URL);
  no console error, no uncaught exception.
- /office/khong-co is a clean 404 page; /api/... 404s are JSON.
- A screenshot of each page is kept (under pytest's tmp dir, and in $HATANG_TEST_ARTIFACTS if set).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector.status_text import STATES
from hatang.demo_sites import OFFICES
from tests.support.hatang import HatangProcess, try_scrape
from tests.support.services import _spawn, _terminate, free_tcp_port, require_binary
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

OFFICE = "xa-dai-dinh"
DEAD = "ups-phong-may"
SWITCH = "core-switch"
READY_DEADLINE = 60.0  # seconds from the demo's start until two polls of every switch are in
REFRESH_DEADLINE = 20.0  # seconds for a page to refresh itself once (every 10 s)
BITS = re.compile(r"^\d[\d.]*(,\d+)? [kMGT]?bit/s$")


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _demo_ready(base: str) -> bool:
    """Every office heard from, the dead UPS down, core-switch up with traffic rates (two polls in)."""
    try:
        _, province = _get_json(f"{base}/api/offices")
        _, office = _get_json(f"{base}/api/office/{OFFICE}")
    except (OSError, ValueError):
        return False
    states = {o["agent"]: o["state"] for o in province["offices"]}
    devices = {d["name"]: d for d in office["devices"]}
    switch = devices.get(SWITCH)
    return (all(states.get(o.agent) in ("ok", "warning") for o in OFFICES)
            and devices.get(DEAD, {}).get("state") == "down" and switch is not None
            and switch["state"] == "up" and any(i["in_bps"] is not None for i in switch["interfaces"]))


class Cdp:
    """A minimal Chrome DevTools protocol client: commands by id, events collected per session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            future = self.pending.pop(data["id"], None) if "id" in data else None
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
                   ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps(message))
        return await asyncio.wait_for(future, 30)

    async def open_tab(self) -> str:
        """A new page target, attached (flat session), with the domains we listen to enabled."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        session = str(attached["sessionId"])
        for domain in ("Page", "Network", "Runtime", "Log"):
            await self.send(f"{domain}.enable", session=session)
        await self.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1600,
                                                               "deviceScaleFactor": 1, "mobile": False},
                        session=session)
        return session

    async def navigate(self, session: str, url: str) -> None:
        seen = len(self.events)
        await self.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + 30
        while not any(e["method"] == "Page.loadEventFired" and e.get("sessionId") == session
                      for e in self.events[seen:]):
            assert time.monotonic() < deadline, f"{url} did not load"
            await asyncio.sleep(0.05)

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                 session=session)
        details = result.get("exceptionDetails")
        assert details is None, details.get("exception", {}).get("description", details)
        return result["result"].get("value")

    async def screenshot(self, session: str, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                               session=session)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


DOM_STATE = """(() => {
  const text = el => el ? el.textContent.trim() : null;
  const rows = [...document.querySelectorAll('tr[data-agent]')].map(r => ({
    agent: r.dataset.agent, state: r.dataset.state, text: r.textContent,
    badge: text(r.querySelector('.st'))}));
  const devices = [...document.querySelectorAll('tr[data-dev]')].map(r => ({
    name: r.dataset.dev, state: text(r.querySelector('.st')), cls: r.querySelector('.st').className}));
  const ifs = [...document.querySelectorAll('tr[data-if]')].map(r => ({
    owner: r.dataset.owner, index: r.dataset.if, in: text(r.querySelector('.in')),
    out: text(r.querySelector('.out')), path: r.querySelector('svg .in').getAttribute('d')}));
  const badges = [...document.querySelectorAll('.badge')].map(b => [b.className, b.textContent]);
  return {title: document.title, badges, charset: document.characterSet, lang: document.documentElement.lang,
          text: document.body.innerText, refreshed: +(document.body.dataset.refreshed || 0),
          markers: [...document.querySelectorAll('[data-marker]')].map(c => c.dataset.marker),
          rows, devices, ifs};
})()"""


# Type "lập thạch" into the filter box, then choose the state "warning": the rows and markers left.
FILTER = """(() => {
  const shown = () => [...document.querySelectorAll('tr[data-agent]')].filter(r => !r.hidden)
    .map(r => r.dataset.agent);
  const marked = () => [...document.querySelectorAll('[data-marker]')]
    .filter(c => !c.parentNode.hasAttribute('hidden')).map(c => c.dataset.marker);
  const q = document.getElementById('q'), st = document.getElementById('st');
  q.value = 'LẬP THẠCH'; q.dispatchEvent(new Event('input'));
  const byText = [shown(), marked()];
  q.value = ''; q.dispatchEvent(new Event('input'));
  st.value = 'warning'; st.dispatchEvent(new Event('change'));
  const byState = [shown(), marked()];
  st.value = ''; st.dispatchEvent(new Event('change'));
  return {byText, byState, all: shown().length};
})()"""


async def _wait_refreshed(cdp: Cdp, session: str) -> None:
    deadline = time.monotonic() + REFRESH_DEADLINE
    while await cdp.evaluate(session, "+(document.body.dataset.refreshed || 0)") < 1:
        assert time.monotonic() < deadline, "the page did not refresh itself from /api"
        await asyncio.sleep(0.25)


def _check_vietnamese(dom: dict[str, Any]) -> None:
    assert dom["charset"] == "UTF-8" and dom["lang"] == "vi"
    assert "\ufffd" not in dom["text"] and "Ã" not in dom["text"] and "Ä‘" not in dom["text"]
    # every state word matches its colour (the script rewrites both when a state changes)
    for cls, text in dom["badges"]:
        state = next(c[2:] for c in cls.split() if c.startswith("b-"))
        assert text in {words[state][0] for words in STATES.values() if state in words}, (cls, text)


def _check_province(dom: dict[str, Any]) -> None:
    _check_vietnamese(dom)
    assert "Tình trạng hạ tầng mạng toàn tỉnh" in dom["text"]
    rows = {r["agent"]: r for r in dom["rows"]}
    assert set(rows) == {o.agent for o in OFFICES}
    for office in OFFICES:
        assert office.name in rows[office.agent]["text"], (office.name, rows[office.agent]["text"])
    assert rows[OFFICE]["state"] == "warning" and rows[OFFICE]["badge"] == "Có sự cố"
    assert sorted(dom["markers"]) == sorted(o.agent for o in OFFICES)


def _check_office(dom: dict[str, Any]) -> None:
    _check_vietnamese(dom)
    assert "UBND xã Đại Đình" in dom["text"]
    devices = {d["name"]: d for d in dom["devices"]}
    assert devices[DEAD]["state"] == "Không trả lời" and "b-down" in devices[DEAD]["cls"]
    assert devices[SWITCH]["state"] == "Hoạt động" and "b-up" in devices[SWITCH]["cls"]
    ports = [i for i in dom["ifs"] if i["owner"] == SWITCH]
    assert len(ports) >= 24, ports
    rates = [i["in"] for i in ports if i["in"] != "–"]
    assert rates and all(BITS.match(r) for r in rates), [i["in"] for i in ports]
    assert any(i["path"] for i in ports)  # a sparkline


async def _browse(chromium: str, base: str, workdir: Path) -> dict[str, Any]:
    profile = workdir / "chromium-profile"
    profile.mkdir()
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--mute-audio", "--window-size=1280,1600",
            "about:blank"]
    proc = _spawn(argv, workdir / "chromium.log")
    try:
        port_file = profile / "DevToolsActivePort"
        wait_until(lambda: port_file.exists() and len(port_file.read_text().split()) >= 2, 30, interval=0.1,
                   message=f"Chromium's DevTools port (log: {workdir / 'chromium.log'})")
        port, path = port_file.read_text().split()[:2]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}{path}",
                                                                      max_msg_size=0) as ws:
            cdp = Cdp(ws)
            province, office, missing = await cdp.open_tab(), await cdp.open_tab(), await cdp.open_tab()
            await cdp.navigate(province, f"{base}/")
            await cdp.navigate(office, f"{base}/office/{OFFICE}")
            first = {"province": await cdp.evaluate(province, DOM_STATE),
                     "office": await cdp.evaluate(office, DOM_STATE)}
            await _wait_refreshed(cdp, province)
            await _wait_refreshed(cdp, office)
            after = {"province": await cdp.evaluate(province, DOM_STATE),
                     "office": await cdp.evaluate(office, DOM_STATE)}
            shots = {"province": await cdp.screenshot(province, workdir / "status-province.png"),
                     "office": await cdp.screenshot(office, workdir / f"status-{OFFICE}.png")}
            filtered = await cdp.evaluate(province, FILTER)
            watched = len(cdp.events)  # (the 404 tab's console line "Failed to load resource" is expected)
            await cdp.navigate(missing, f"{base}/office/khong-co")
            not_found = {"dom": await cdp.evaluate(missing, DOM_STATE),
                         "status": [e["params"]["response"]["status"] for e in cdp.events[watched:]
                                    if e["method"] == "Network.responseReceived"
                                    and e["params"]["type"] == "Document" and e.get("sessionId") == missing]}
            cdp.reader.cancel()
            return {"first": first, "after": after, "shots": shots, "not_found": not_found,
                    "filtered": filtered, "events": cdp.events, "pages": (province, office)}
    finally:
        _terminate(proc, proc.pid)


def _keep(shots: dict[str, Path]) -> None:
    target = os.environ.get("HATANG_TEST_ARTIFACTS")
    for path in shots.values():
        assert path.stat().st_size > 10_000, f"{path}: an empty screenshot?"
        print(f"screenshot: {path}")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)


def test_status_pages_in_a_real_browser(tmp_path: Path) -> None:
    chromium = require_binary("chromium", "chromium")
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    demo = HatangProcess(["demo", "--listen", f"127.0.0.1:{port}"], tmp_path / "demo.log").start()
    try:
        wait_until(lambda: try_scrape(f"{base}/metrics"), 30, interval=0.2, message=f"the demo at {base}")
        wait_until(lambda: _demo_ready(base), READY_DEADLINE, interval=1.0,
                   message="every office heard from and two polls of core-switch")
        # the 404s of the API are JSON
        assert _get_json(f"{base}/api/office/khong-co") == (404, {"error": "not_found",
                                                                   "path": "/api/office/khong-co"})
        assert _get_json(f"{base}/api/office/{OFFICE}/device/khong-co")[0] == 404
        seen = asyncio.run(_browse(chromium, base, tmp_path))
    finally:
        demo.stop()
    _keep(seen["shots"])
    for when in ("first", "after"):  # as served, and after the page refreshed itself from /api
        _check_province(seen[when]["province"])
        _check_office(seen[when]["office"])
    assert seen["after"]["office"]["refreshed"] >= 1 and seen["after"]["province"]["refreshed"] >= 1

    assert seen["filtered"] == {"byText": [["xa-lap-thach"], ["xa-lap-thach"]],
                                "byState": [[OFFICE], [OFFICE]], "all": len(OFFICES)}

    not_found = seen["not_found"]
    assert not_found["status"] == [404]
    assert "Không tìm thấy" in not_found["dom"]["text"] and "/office/khong-co" in not_found["dom"]["text"]

    events = seen["events"]
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert any(url.startswith(f"{base}/api/office/{OFFICE}") for url in requests), requests
    assert any(url == f"{base}/api/offices" for url in requests), requests
    off_host = [url for url in requests if not (url.startswith(f"{base}/") or url.startswith("data:"))]
    assert not off_host, f"requests that leave the host: {off_host}"
    pages = set(seen["pages"])
    errors = [e for e in events if e.get("sessionId") in pages and (
        e["method"] == "Runtime.exceptionThrown"
        or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"))]
    assert not errors, json.dumps(errors, ensure_ascii=False, indent=1)[:4000]

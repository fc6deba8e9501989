"""Configuration from the centre, end to end (docs/remote-config.md, issue #16): a real Mosquitto with the
shipped ACL and passwords, a real snmpd, ``hatang agent`` and ``hatang collector`` as processes, and
``hatang fleet keygen / push / status`` as the centre's team runs them.

One office's life, in stages (each builds on the one before):
1. a push adds a device: it is polled by the same agent process (same PID, same boot), while the devices
   the push did not change miss no poll across the change;
2. a push naming a secret file the office does not have is refused, the reason reaches the collector
   (``hatang_agent_config_rejected``, ``hatang fleet status``), and polling goes on with the old config;
3. a push signed with another key, and a replay of an older revision, are refused;
4. the agent restarted while the broker is down runs the last good configuration (a fresh broker without
   any retained configuration then receives the pushed device's polls).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SITE
from tests.support.hatang import HatangProcess, one, parse, run_hatang, scrape, wait_for_series, write_yaml
from tests.support.mqtt_recorder import Client
from tests.support.services import Mosquitto, Snmpd, free_tcp_port, start_shipped_mosquitto
from tests.support.waiting import wait_until
from wire.codec import decode_batch, decode_status
from wire.topics import config_topic

pytestmark = pytest.mark.integration

AGENT = "xa-dai-dinh"
PASSWORDS = {AGENT: "mat-khau-xa", "collector.hatang": "mat-khau-thu-thap",
             "centre.hatang": "mat-khau-cau-hinh"}
INTERVAL = 1.0
TIMEOUT = 30.0


@dataclass
class Office:
    tmp: Path
    broker: Mosquitto
    port: int
    snmpd: Snmpd
    agent: HatangProcess
    config: Path
    centre_password: Path
    keys: Path

    def device(self, name: str, community_file: str = "secrets/snmp-community") -> dict[str, Any]:
        return {"name": name, "address": self.snmpd.host, "port": self.snmpd.port, "profiles": ["system"],
                "interval": INTERVAL, "snmp": {"version": "2c", "community_file": community_file}}

    def push(self, name: str, document: dict[str, Any], *extra: str, key: Path | None = None) -> str:
        path = write_yaml(self.tmp / "centre" / name, document)
        done = run_hatang(["fleet", "push", "--mqtt", self.broker.url, "--username", "centre.hatang",
                           "--password-file", str(self.centre_password), "--key",
                           str(key or self.keys / "centre.key"), "--wait", "1", *extra, AGENT, str(path)])
        assert done.returncode == 0, done.stderr
        return done.stdout


def _secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def office(tmp_path: Path, snmpd: Snmpd, processes: list[HatangProcess]) -> Iterator[Office]:
    port = free_tcp_port()
    broker = start_shipped_mosquitto(tmp_path / "broker", PASSWORDS, port=port)
    keys = tmp_path / "centre-keys"
    done = run_hatang(["fleet", "keygen", str(keys)])
    assert done.returncode == 0, done.stderr
    assert (keys / "centre.key").stat().st_mode & 0o777 == 0o600
    office_dir = tmp_path / "office"
    _secret(office_dir / "secrets" / "mqtt-password", PASSWORDS[AGENT])
    _secret(office_dir / "secrets" / "snmp-community", snmpd.community)
    (office_dir / "centre.pub").write_bytes((keys / "centre.pub").read_bytes())
    centre_password = _secret(tmp_path / "centre" / "password", PASSWORDS["centre.hatang"])
    partial = Office(tmp_path, broker, port, snmpd, HatangProcess([], tmp_path), office_dir / "agent.yaml",
                     centre_password, keys)
    config = {
        "agent_id": AGENT, "site": SITE,
        "mqtt": {"url": broker.url, "password_file": "secrets/mqtt-password"},
        "buffer": {"path": str(tmp_path / "buffer")},
        "remote_config": {"public_key_file": "centre.pub"},
        "self_metrics_interval": 5,
        "devices": [partial.device("sw-1"), partial.device("sw-2")],
    }
    write_yaml(partial.config, config)
    agent = HatangProcess(["agent", "-c", str(partial.config)], tmp_path / "agent.log").start()
    processes.append(agent)
    partial.agent = agent
    try:
        yield partial
    finally:
        broker.stop()


def _watch(office: Office) -> Client:
    """The collector's user, recording everything the agent publishes (the broker lets it read all)."""
    watcher = Client(office.broker, "collector.hatang", PASSWORDS["collector.hatang"])
    assert watcher.connect() == 0
    assert watcher.subscribe(f"hatang/v1/agents/{AGENT}/#") == [1]
    return watcher


def _polls(watcher: Client) -> list[Any]:
    return [decode_batch(payload) for topic, payload in watcher.messages() if "/data/" in topic]


def _births(watcher: Client) -> list[Any]:
    return [decode_status(payload) for topic, payload in watcher.messages()
            if topic.endswith("/status") and payload and decode_status(payload).online]


def _collector(office: Office, processes: list[HatangProcess]) -> str:
    port = free_tcp_port()
    password = _secret(office.tmp / "collector-password", PASSWORDS["collector.hatang"])
    path = write_yaml(office.tmp / "collector.yaml", {
        "mqtt": {"url": office.broker.url, "username": "collector.hatang", "password_file": str(password)},
        "listen": f"127.0.0.1:{port}"})
    process = HatangProcess(["collector", "-c", str(path)], office.tmp / "collector.log").start()
    processes.append(process)
    wait_for_series(f"http://127.0.0.1:{port}/metrics", "hatang_agent_up", timeout=TIMEOUT, agent=AGENT)
    return f"http://127.0.0.1:{port}"


def _wait_metric(url: str, name: str, value: float, **labels: str) -> None:
    wait_until(lambda: one(parse(scrape(url + "/metrics")), name, **labels) == value, TIMEOUT,
               message=f"{name}{labels} == {value}")


def test_an_office_configured_from_the_centre(office: Office, processes: list[HatangProcess]) -> None:
    watcher = _watch(office)
    wait_until(lambda: {p.device for p in _polls(watcher)} >= {"sw-1", "sw-2"}, TIMEOUT,
               message="the agent's first polls")
    pid = office.agent.pid

    # 1. a push adds a device, live
    output = office.push("them-thiet-bi.yaml", {"devices": [office.device("sw-1"), office.device("sw-2"),
                                                            office.device("sw-3")]})
    assert "revision 1" in output
    wait_until(lambda: any(p.device == "sw-3" for p in _polls(watcher)), TIMEOUT, message="sw-3 polled")
    wait_until(lambda: any(b.config_version == "1" for b in _births(watcher)), TIMEOUT,
               message="a birth saying revision 1")
    first_new = min(p.ts for p in _polls(watcher) if p.device == "sw-3")
    wait_until(lambda: sum(p.device == "sw-1" and p.ts > first_new + 2 for p in _polls(watcher)) >= 1,
               TIMEOUT, message="sw-1 polled for two more seconds")
    assert office.agent.running() and office.agent.pid == pid
    polls = _polls(watcher)
    assert len({p.boot_id for p in polls}) == 1, "the agent restarted"
    for name in ("sw-1", "sw-2"):  # untouched by the push: not one poll missed around it
        times = sorted(p.ts for p in polls if p.device == name)
        around = [t for t in times if first_new - 3 <= t <= first_new + 2]
        gaps = [b - a for a, b in itertools.pairwise(around)]
        assert around and max(gaps) < 1.5 * INTERVAL, f"{name}: polls at {around}"
        assert min(gaps) > 0.5 * INTERVAL, f"{name}: an extra poll (restarted loop) at {around}"

    # 2. a push the office cannot apply (a secret file it does not have) is refused, polling goes on
    bad = {"devices": [office.device("sw-1"), office.device("sw-2"),
                       office.device("sw-3", community_file="secrets/khong-co")]}
    assert "revision 2" in office.push("thieu-tep.yaml", bad)
    wait_until(lambda: any(b.config_rejected is not None and b.config_rejected.revision == 2
                           for b in _births(watcher)), TIMEOUT, message="a birth reporting the refusal")
    refusal = next(b.config_rejected for b in _births(watcher) if b.config_rejected is not None)
    assert refusal.reason == "files" and "devices[2].snmp.community_file" in refusal.error
    refused_at = len(_polls(watcher))
    wait_until(lambda: sum(p.device == "sw-3" for p in _polls(watcher)[refused_at:]) >= 2, TIMEOUT,
               message="sw-3 still polled under revision 1")
    watcher.close()  # the collector logs in as the same user
    collector = _collector(office, processes)
    _wait_metric(collector, "hatang_agent_config_rejected", 2, agent=AGENT, reason="files")
    _wait_metric(collector, "hatang_agent_info", 1, agent=AGENT, config_version="1")
    status = run_hatang(["fleet", "status", "--collector", collector])
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith(AGENT))
    assert " 1 " in row and "revision 2: files" in row, status.stdout

    # 3. another key, and a replayed older revision, are refused
    other = office.tmp / "other-keys"
    assert run_hatang(["fleet", "keygen", str(other)]).returncode == 0
    assert "revision 3" in office.push("khoa-khac.yaml", {"devices": [office.device("sw-9")]},
                                       "--history", str(other / "pushed"), key=other / "centre.key")
    _wait_metric(collector, "hatang_agent_config_rejected", 3, agent=AGENT, reason="unknown_key")
    assert "revision 4" in office.push("bot-thiet-bi.yaml", {"devices": [office.device("sw-1"),
                                                                         office.device("sw-3")]})
    _wait_metric(collector, "hatang_agent_info", 1, agent=AGENT, config_version="4")
    replay = Client(office.broker, "centre.hatang", PASSWORDS["centre.hatang"])
    assert replay.connect() == 0
    old = (office.keys / "pushed" / AGENT / "000001.signed").read_bytes()
    assert replay.publish(config_topic(AGENT), old, retain=True) == 0
    replay.close()
    _wait_metric(collector, "hatang_agent_config_rejected", 1, agent=AGENT, reason="older_revision")
    _wait_metric(collector, "hatang_agent_info", 1, agent=AGENT, config_version="4")
    _wait_metric(collector, "hatang_agent_config_revision", 4, agent=AGENT)  # the agent's own metric
    _wait_metric(collector, "hatang_agent_config_rejections_total", 1, agent=AGENT, reason="unknown_key")
    removed = wait_for_series(collector + "/metrics", "hatang_agent_info", timeout=1, agent=AGENT)
    assert one(removed, "hatang_device_up", agent=AGENT, device="sw-3") == 1
    polled = run_hatang(["poll", "-c", str(office.config), "--device", "sw-3"])  # the kept configuration's
    assert polled.returncode == 0 and "sw-3" in polled.stdout, polled.stderr

    # 4. restarted while the broker is down: it runs the last good configuration (revision 4, with sw-3)
    office.agent.stop()
    # The collector is done: it logs in as the watcher's user, and the shipped broker makes the username
    # the client id (use_username_as_clientid), so each would keep taking the other's place on the new
    # broker and the watcher would miss messages.
    for process in processes:
        if process.args[0] == "collector":
            process.stop()
    office.broker.stop()
    restarted = HatangProcess(["agent", "-c", str(office.config)], office.tmp / "agent-2.log").start()
    processes.append(restarted)
    wait_until(lambda: "revision 4 of the centre's configuration" in restarted.log(), TIMEOUT,
               message="the agent starting from the kept configuration")
    office.broker = start_shipped_mosquitto(office.tmp / "broker-2", PASSWORDS, port=office.port)
    watcher = _watch(office)  # a new broker: nothing retained, no configuration to receive
    wait_until(lambda: any(p.device == "sw-3" for p in _polls(watcher)), TIMEOUT,
               message="sw-3 polled after a restart without the centre")
    assert all(not topic.endswith("/config") for topic, _ in watcher.messages())
    births = _births(watcher)
    assert births and births[-1].config_version == "4"
    assert "sw-2" not in births[-1].devices and "sw-3" in births[-1].devices
    watcher.close()
    kept = json.loads((office.tmp / "buffer" / "remote-config.json").read_bytes())
    assert kept["type"] == "config"
    assert os.stat(office.tmp / "buffer" / "remote-config.json").st_size > 0

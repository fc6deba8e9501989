"""``hatang demo``: the whole system in one process, with no external service, on loopback only.

An embedded MQTT broker (amqtt); four offices (hatang/demo_sites.py), each with its own agent: simulated
SNMP switches, routers and UPSes (counters growing at realistic rates, one switch port that flaps, one
UPS that loses mains now and then, one that never answers), servers in the data centre, a link probe to
a loopback "government-network gateway", linkDown/linkUp traps from the flapping port
(hatang/demo_loopback.py); and one collector with a site inventory (coordinates for the map). The
switches are Huawei, H3C and Cisco models answering their vendors' health MIBs and LLDP; every device is
configured without ``profiles`` (auto), so the agents choose the vendor profiles by sysObjectID as they
would for real gear.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.service import AgentService
from collector.config import CollectorConfig
from collector.service import CollectorService
from hatang import configfile
from hatang.demo_broker import EmbeddedBroker, free_tcp_port
from hatang.demo_loopback import open_gateway, send_link_traps
from hatang.demo_sites import FLAP, FLAP_PORT, OFFICES, Office, build_office, write_inventory
from hatang.sim.device import SimulatedDevice
from hatang.sim.responder import serve_devices

POLL_INTERVAL = 10.0
PROBE_NAME = "duong-truyen-cd"  # the link to the government network (mạng truyền số liệu chuyên dùng)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _device_config(name: str, port: int, *, answers: bool) -> dict[str, Any]:
    """A device as an operator would write it: no ``profiles`` (auto: the agent chooses them from what the
    device says it is and the tables it answers, agent/profile_selection.py)."""
    snmp = {"version": "2c", "community": "public", "timeout": 1.0, "retries": 1 if answers else 0}
    return {"name": name, "address": "127.0.0.1", "port": port, "interval": POLL_INTERVAL, "snmp": snmp}


def agent_config(office: Office, ports: dict[str, int], broker_url: str, workdir: Path, gateway_port: int,
                 trap_port: int | None) -> AgentConfig:
    """The agent of one office: its devices (``ports``: simulated device name -> UDP port), its link probe,
    and for the office that gets traps a listener on ``trap_port``."""
    devices = [
        _device_config(plan.name, ports[plan.name] if plan.kind != "silent" else _free_udp_port(),
                       answers=plan.kind != "silent")
        for plan in office.devices
    ]
    data: dict[str, Any] = {
        # amqtt speaks MQTT 3.1.1 only: no MQTT 5 probe at start
        "agent_id": office.agent, "site": office.site, "mqtt": {"url": broker_url, "protocol": "3.1.1"},
        "buffer": {"path": str(workdir / office.agent / "buffer")}, "devices": devices,
        "probes": [{"name": PROBE_NAME, "address": "127.0.0.1", "method": "tcp", "tcp_port": gateway_port,
                    "count": 3, "spacing": 0.2, "timeout": 1.0, "interval": POLL_INTERVAL}],
        "self_metrics_interval": 30.0,
    }
    if office.traps and trap_port is not None:
        data["traps"] = {"listen": f"127.0.0.1:{trap_port}", "communities": ["public"]}
    return configfile.validate(AgentConfig, data)


def _banner(url: str, duration: float | None) -> str:
    stop = f"stops by itself after {duration:g} s" if duration else "Ctrl-C stops it"
    agents = ", ".join(o.agent for o in OFFICES)
    answering = sum(plan.kind != "silent" for o in OFFICES for plan in o.devices)
    base = url.rsplit('/', 1)[0]
    return f"""
hatang demo is running ({stop}).

  Status page (trang trạng thái): {base}/   <- open it in a browser
  Metrics:  {url}
  Health:   {base}/healthz
  Point Prometheus at it (honor_labels: true), or: curl -s {url}

What to look at (first polls arrive within ~{POLL_INTERVAL:g} s):
  hatang_agent_up, hatang_agent_info       {len(OFFICES)} offices, one agent each: {agents}
  hatang_site_info                         names, roles, latitude/longitude of every office (Grafana geomap)
  hatang_device_up                         {answering} simulated devices answer (1);
                                           xa-dai-dinh ups-phong-may never answers (0)
  hatang_device_poll_success               each poll's outcome at its own time (the availability report's
                                           input: hatang report --prometheus URL --month YYYY-MM)
  hatang_interface_in_bytes_total          byte counters per interface, growing; try
                                           rate(hatang_interface_in_bytes_total[1m]) * 8 in Prometheus
  hatang_interface_oper_status             xa-dai-dinh core-switch port {FLAP_PORT} flaps: \
up {FLAP.period - FLAP.down:g} s, down {FLAP.down:g} s
  hatang_trap_received_total               linkDown/linkUp traps of that port, received by xa-dai-dinh
  hatang_interface_in_bytes_total{{if_alias=~".*chuyên dùng.*"}}   Vietnamese interface descriptions
  hatang_probe_up, hatang_probe_rtt_seconds  each office's link to the government network (TCP probe)
  hatang_ups_on_battery                    ups-lap-thach loses mains 1 minute in 4 (battery charge, runtime)
  hatang_host_cpu_load_ratio, hatang_host_storage_used_bytes   data-centre servers may-chu-dvc, may-chu-csdl
  hatang_device_cpu_utilization_ratio, hatang_device_temperature_celsius, hatang_device_fan_ok ...
                                           switch health from the vendors' MIBs (profiles chosen by
                                           sysObjectID: Huawei VRP, H3C Comware, Cisco IOS); needing
                                           attention: core-switch-ttdl power supply 3 failed,
                                           switch-lap-thach fan failed and hot (>70 °C), access-switch
                                           CPU and memory nearly full
  hatang_link_info, hatang_device_upstream_info   links seen over LLDP from both ends (switches, routers)
  hatang_agent_queue_messages, hatang_collector_*               the monitoring system itself

  curl -s {url} | grep -E '^hatang_(agent_up|device_up|ups_on_battery|probe_up|trap_received_total)'
"""


def _simulated(now: float) -> list[tuple[Office, SimulatedDevice]]:
    return [(office, device) for office in OFFICES for device in build_office(office, now)]


async def run_demo(stop: asyncio.Event, host: str, port: int, duration: float | None) -> None:
    broker = EmbeddedBroker()
    await broker.start()
    devices = _simulated(time.time())
    simulator = await serve_devices([device for _, device in devices])
    gateway, gateway_port = await open_gateway()
    workdir = Path(tempfile.mkdtemp(prefix="hatang-demo-"))
    try:
        ports = {name: dev_port for name, _, dev_port in simulator.endpoints}
        trap_port = _free_udp_port()
        agents = [AgentService(agent_config(office, ports, broker.url, workdir, gateway_port, trap_port),
                               workdir / f"{office.agent}.yaml") for office in OFFICES]
        collector_config = CollectorConfig.model_validate({
            # amqtt speaks MQTT 3.1.1 only; the demo needs no persistent session
            "mqtt": {"url": broker.url, "protocol": "3.1.1", "session_expiry": 0},
            "listen": f"{host}:{port or free_tcp_port(host)}",
            "inventory": str(write_inventory(workdir / "inventory.csv")),
        })
        collector = CollectorService(collector_config, workdir / "collector.yaml")
        flapping = next(d for office, d in devices if office.traps and d.name == "core-switch")
        started = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(collector.run(stop, started), name="collector")
            await started.wait()
            for agent in agents:
                group.create_task(agent.run(stop), name=f"agent:{agent.config.agent_id}")
            group.create_task(send_link_traps(stop, flapping, FLAP, FLAP_PORT, ("127.0.0.1", trap_port)),
                              name="traps")
            url = f"http://{collector_config.listen_host_port[0]}:{collector.http.bound_port}/metrics"
            print(_banner(url, duration), flush=True)
            if duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration)
                stop.set()
    finally:
        gateway.close()
        simulator.close()
        await broker.stop()
        print("hatang demo stopped.", flush=True)

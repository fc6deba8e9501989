"""``hatang demo``: the whole system in one process, with no external service.

An embedded MQTT broker (amqtt), simulated SNMP devices on loopback (counters growing at realistic
rates, one interface that flaps, one device that never answers), one agent and one collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from agent.config import AgentConfig
from agent.service import AgentService
from collector.config import CollectorConfig
from collector.service import CollectorService
from hatang.demo_broker import EmbeddedBroker, free_tcp_port
from hatang.sim.device import SimulatedDevice, make_router, make_switch
from hatang.sim.responder import serve_devices

POLL_INTERVAL = 10.0
SITE = {"province": "Vĩnh Phúc", "district": "Tam Đảo", "commune": "Đại Đình"}


def _simulated_devices() -> list[SimulatedDevice]:
    return [
        make_switch("core-switch", ports=24, seed=1, flap_port=2, flap_period=60.0, flap_down=20.0),
        make_switch("access-switch", ports=8, seed=2, location="Bộ phận một cửa, UBND xã Đại Đình"),
        make_router("router-tsldcd", seed=3),
    ]


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _banner(url: str, duration: float | None) -> str:
    stop = f"stops by itself after {duration:g} s" if duration else "Ctrl-C stops it"
    return f"""
hatang demo is running ({stop}).

  Metrics:  {url}
  Health:   {url.rsplit('/', 1)[0]}/healthz

What to look at (first polls arrive within ~{POLL_INTERVAL:g} s):
  hatang_agent_up                          the agent 'xa-dai-dinh' is online (1)
  hatang_device_up                         core-switch, access-switch, router-tsldcd answer (1);
                                           ups-phong-may never answers (0)
  hatang_interface_in_bytes_total          byte counters per interface, growing; try
                                           rate(hatang_interface_in_bytes_total[1m]) * 8 in Prometheus
  hatang_interface_oper_status             core-switch port 2 flaps: up 40 s, down 20 s
  hatang_interface_in_bytes_total{{if_alias=~".*chuyên dùng.*"}}   Vietnamese interface descriptions

  curl -s {url} | grep -E '^hatang_(device_up|interface_oper_status)'
"""


async def run_demo(stop: asyncio.Event, host: str, port: int, duration: float | None) -> None:
    broker = EmbeddedBroker()
    await broker.start()
    devices = _simulated_devices()
    simulator = await serve_devices(devices)
    workdir = Path(tempfile.mkdtemp(prefix="hatang-demo-"))
    try:
        device_configs = [
            {"name": name, "address": dev_host, "port": dev_port, "interval": POLL_INTERVAL,
             "snmp": {"version": "2c", "community": "public", "timeout": 1.0, "retries": 1}}
            for name, dev_host, dev_port in simulator.endpoints
        ]
        device_configs.append({"name": "ups-phong-may", "address": "127.0.0.1", "port": _free_udp_port(),
                               "interval": POLL_INTERVAL, "profiles": ["system"],
                               "snmp": {"timeout": 1.0, "retries": 0}})
        agent_config = AgentConfig.model_validate({
            # amqtt speaks MQTT 3.1.1 only: no MQTT 5 probe at start
            "agent_id": "xa-dai-dinh", "site": SITE, "mqtt": {"url": broker.url, "protocol": "3.1.1"},
            "buffer": {"path": str(workdir / "buffer")}, "devices": device_configs,
        })
        collector_config = CollectorConfig.model_validate({
            # amqtt speaks MQTT 3.1.1 only; the demo needs no persistent session
            "mqtt": {"url": broker.url, "protocol": "3.1.1", "session_expiry": 0},
            "listen": f"{host}:{port or free_tcp_port(host)}",
        })
        agent = AgentService(agent_config, workdir / "agent.yaml")
        collector = CollectorService(collector_config, workdir / "collector.yaml")
        started = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(collector.run(stop, started), name="collector")
            await started.wait()
            group.create_task(agent.run(stop), name="agent")
            url = f"http://{collector_config.listen_host_port[0]}:{collector.http.bound_port}/metrics"
            print(_banner(url, duration), flush=True)
            if duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration)
                stop.set()
    finally:
        simulator.close()
        await broker.stop()
        print("hatang demo stopped.", flush=True)

"""The offices of ``hatang demo`` as data: sites, coordinates and the simulated devices of each office.

Four offices of one province, each with its own agent: the provincial data centre (a Huawei S12704 core
switch, a router, servers, a three-phase UPS) and three communes (a switch, a router and a UPS each; one
commune's UPS loses mains now and then). Xã Đại Đình keeps what the demo always had: a core switch (a
Huawei S5720) whose port 2 flaps (and sends linkDown/linkUp traps to its agent), an access switch (an
H3C S3100), a router, and a UPS that never answers. The switches are vendor models (hatang/sim/vendors.py)
that answer their vendor's health MIB, so the agents' ``profiles: auto`` gives them the vendor profiles;
each office's cables (switch to switch, switch uplink to router) are seen over LLDP from both ends
(hatang/sim/lldp.py), so the collector finds confirmed links. A few devices are not well, as in any
province: the data-centre core switch has lost one of its four power supplies, the Lập Thạch switch (a
Cisco Catalyst 3560G) a fan and runs hot, and the Đại Đình access switch (old, in the one-stop-shop
room) runs with its CPU and memory nearly full. :func:`build_office` makes an office's simulated
devices; :func:`write_inventory` the collector's site inventory.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hatang.sim.appliances import make_server, make_ups
from hatang.sim.device import Flap, SimulatedDevice, make_router, make_switch
from hatang.sim.lldp import Cable, cable
from hatang.sim.vendors import HEALTHY, Condition, make_vendor_switch

PROVINCE = "Phú Thọ"  # Vĩnh Phúc, Phú Thọ and Hòa Bình merged into Phú Thọ in 2025 (docs/inventory.md)
Kind = Literal["switch", "router", "ups", "server", "silent"]  # silent: nothing answers at its address
FLAP = Flap(period=60.0, down=20.0)  # core-switch port 2 of xa-dai-dinh
FLAP_PORT = 2
OUTAGE = Flap(period=240.0, down=60.0)  # mains of ups-lap-thach: 3 minutes on, 1 minute on battery
ROUTER_LAN = 2  # make_router: port 2 is the LAN port, cabled to the office switch's uplink


@dataclass(frozen=True)
class DevicePlan:
    name: str
    kind: Kind
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the make_* function
    started_ago: float = 0.0  # seconds the simulated device has run when the demo starts (flap timing)
    model: str | None = None  # a switch: its vendor model (hatang/sim/vendors.py MODELS); None: generic
    condition: Condition = HEALTHY  # a vendor switch: load, heat, failed parts


@dataclass(frozen=True)
class Office:
    agent: str
    name: str  # site_name in hatang_site_info
    role: str
    district: str | None  # a network zone since the district level was abolished (2025-07-01)
    commune: str | None
    latitude: float
    longitude: float
    devices: tuple[DevicePlan, ...]
    traps: bool = False  # the agent listens for traps (the flapping switch sends them)
    cables: tuple[Cable, ...] = ()  # between its devices, seen over LLDP

    @property
    def site(self) -> dict[str, str]:
        labels = {"province": PROVINCE, "district": self.district, "commune": self.commune}
        return {k: v for k, v in labels.items() if v}

    def location(self, room: str) -> str:
        return f"{room}, {self.name}"


def _commune(agent: str, commune: str, district: str | None, lat: float, lon: float, seed: int,
             *, ports: int = 16, model: str, condition: Condition = HEALTHY,
             ups: Mapping[str, Any] | None = None, ups_started_ago: float = 0.0) -> Office:
    suffix = agent.split("-", 1)[1]
    switch, router = f"switch-{suffix}", f"router-{suffix}"
    return Office(agent, f"UBND {'phường' if agent.startswith('phuong') else 'xã'} {commune}", "commune",
                  district, commune, lat, lon, (
                      DevicePlan(switch, "switch", seed, {"ports": ports, "flap_port": None}, model=model,
                                 condition=condition),
                      DevicePlan(router, "router", seed + 1),
                      DevicePlan(f"ups-{suffix}", "ups", seed + 2, dict(ups or {}), ups_started_ago),
                  ), cables=(Cable(switch, ports, router, ROUTER_LAN),))


OFFICES: tuple[Office, ...] = (
    Office("ttdl-tinh", "Trung tâm dữ liệu tỉnh", "datacenter", None, None, 21.3227, 105.4019, (
        DevicePlan("core-switch-ttdl", "switch", 11, {"ports": 24, "flap_port": None}, model="huawei-s12704",
                   condition=Condition(cpu=0.22, memory=0.41, temperature=38.0, failed_supplies=(3,))),
        DevicePlan("router-ttdl", "router", 12),
        DevicePlan("ups-ttdl", "ups", 13, {"lines": 3, "capacity_va": 20000, "battery_minutes": 25.0}),
        DevicePlan("may-chu-dvc", "server", 14, {"cpus": 16, "memory_gib": 64}),
        DevicePlan("may-chu-csdl", "server", 15, {"mounts": (("/", 50), ("/var", 200), ("/data", 4000))}),
    ), cables=(Cable("core-switch-ttdl", 24, "router-ttdl", ROUTER_LAN),)),
    Office("xa-dai-dinh", "UBND xã Đại Đình", "commune", "Tam Đảo (cũ)", "Đại Đình", 21.4720, 105.6310, (
        # first: a trap from 127.0.0.1 is put on the first device at that address
        DevicePlan("core-switch", "switch", 1, {"ports": 24, "flap_port": FLAP_PORT,
                                                "flap_period": FLAP.period, "flap_down": FLAP.down},
                   started_ago=30.0, model="huawei-s5720"),  # port 2 goes down 10 s after the start
        DevicePlan("access-switch", "switch", 2, {"ports": 8, "flap_port": None,
                                                  "location": "Bộ phận một cửa, UBND xã Đại Đình"},
                   model="h3c-s3100", condition=Condition(cpu=0.94, cpu_swing=0.02, memory=0.965,
                                                          temperature=47.0)),
        DevicePlan("router-tsldcd", "router", 3),
        DevicePlan("ups-mot-cua", "ups", 4, {"capacity_va": 2000}),
        DevicePlan("ups-phong-may", "silent"),
    ), traps=True, cables=(
        Cable("core-switch", 1, "access-switch", 8),  # core port 1 "Bộ phận một cửa", the access uplink
        Cable("core-switch", 24, "router-tsldcd", ROUTER_LAN),
    )),
    _commune("xa-lap-thach", "Lập Thạch", "Lập Thạch (cũ)", 21.4150, 105.4600, 21, model="cisco-c3560",
             condition=Condition(cpu=0.31, memory=0.58, temperature=74.0, failed_fans=(1,)),
             ups={"outage": OUTAGE, "battery_minutes": 10.0}, ups_started_ago=175.0),  # on battery from +5 s
    _commune("phuong-vinh-yen", "Vĩnh Yên", None, 21.3090, 105.6050, 31, ports=12, model="h3c-s5500"),
)


def build_device(office: Office, plan: DevicePlan, now: float | None = None) -> SimulatedDevice:
    """The simulated device of a plan (not for ``silent``, which has none)."""
    start = (time.time() if now is None else now) - plan.started_ago
    options: dict[str, Any] = {"seed": plan.seed, "start": start, **plan.options}
    room = "Phòng kỹ thuật" if plan.kind == "ups" else "Phòng máy chủ"
    options.setdefault("location", office.location(room))
    if plan.kind == "server":
        return make_server(plan.name, **options)
    if plan.kind == "switch" and plan.model is not None:
        return make_vendor_switch(plan.name, plan.model, plan.condition, **options)
    if plan.kind == "switch":
        return make_switch(plan.name, **options)
    if plan.kind == "router":
        return make_router(plan.name, **options)
    if plan.kind == "ups":
        return make_ups(plan.name, **options)
    raise ValueError(f"no simulated device for a {plan.kind!r} plan")


def build_office(office: Office, now: float | None = None) -> list[SimulatedDevice]:
    """The simulated devices of an office (in plan order; none for ``silent`` plans), with the LLDP its
    cables give them."""
    now = time.time() if now is None else now
    devices = {plan.name: build_device(office, plan, now) for plan in office.devices if plan.kind != "silent"}
    return list(cable(devices, office.cables).values())


def write_inventory(path: Path, offices: tuple[Office, ...] = OFFICES) -> Path:
    """The collector's site inventory (CSV, docs/inventory.md): names, roles and coordinates."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("agent", "province", "district", "commune", "name", "role", "latitude", "longitude"))
        for o in offices:
            writer.writerow((o.agent, PROVINCE, o.district or "", o.commune or "", o.name, o.role, o.latitude,
                             o.longitude))
    return path

"""The offices of ``hatang demo`` as data: sites, coordinates and the simulated devices of each office.

Four offices of one province, each with its own agent: the provincial data centre (servers, a three-phase
UPS) and three communes (a switch, a router and a UPS each; one commune's UPS loses mains now and then).
Xã Đại Đình keeps what the demo always had: a core switch whose port 2 flaps (and sends linkDown/linkUp
traps to its agent), an access switch, a router, and a UPS that never answers. :func:`build_device` makes
a simulated device from its plan; :func:`write_inventory` the collector's site inventory.
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

PROVINCE = "Phú Thọ"  # Vĩnh Phúc, Phú Thọ and Hòa Bình merged into Phú Thọ in 2025 (docs/inventory.md)
Kind = Literal["switch", "router", "ups", "server", "silent"]  # silent: nothing answers at its address
FLAP = Flap(period=60.0, down=20.0)  # core-switch port 2 of xa-dai-dinh
FLAP_PORT = 2
OUTAGE = Flap(period=240.0, down=60.0)  # mains of ups-lap-thach: 3 minutes on, 1 minute on battery
PROFILES: Mapping[Kind, tuple[str, ...]] = {
    "switch": ("system", "interfaces"), "router": ("system", "interfaces"), "ups": ("system", "ups"),
    "server": ("system", "interfaces", "host"), "silent": ("system", "ups"),
}


@dataclass(frozen=True)
class DevicePlan:
    name: str
    kind: Kind
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the make_* function
    started_ago: float = 0.0  # seconds the simulated device has run when the demo starts (flap timing)

    @property
    def profiles(self) -> tuple[str, ...]:
        return PROFILES[self.kind]


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

    @property
    def site(self) -> dict[str, str]:
        labels = {"province": PROVINCE, "district": self.district, "commune": self.commune}
        return {k: v for k, v in labels.items() if v}

    def location(self, room: str) -> str:
        return f"{room}, {self.name}"


def _commune(agent: str, commune: str, district: str | None, lat: float, lon: float, seed: int,
             *, ports: int = 16, ups: Mapping[str, Any] | None = None, ups_started_ago: float = 0.0
             ) -> Office:
    suffix = agent.split("-", 1)[1]
    return Office(agent, f"UBND {'phường' if agent.startswith('phuong') else 'xã'} {commune}", "commune",
                  district, commune, lat, lon, (
                      DevicePlan(f"switch-{suffix}", "switch", seed, {"ports": ports, "flap_port": None}),
                      DevicePlan(f"router-{suffix}", "router", seed + 1),
                      DevicePlan(f"ups-{suffix}", "ups", seed + 2, dict(ups or {}), ups_started_ago),
                  ))


OFFICES: tuple[Office, ...] = (
    Office("ttdl-tinh", "Trung tâm dữ liệu tỉnh", "datacenter", None, None, 21.3227, 105.4019, (
        DevicePlan("core-switch-ttdl", "switch", 11, {"ports": 24, "flap_port": None}),
        DevicePlan("router-ttdl", "router", 12),
        DevicePlan("ups-ttdl", "ups", 13, {"lines": 3, "capacity_va": 20000, "battery_minutes": 25.0}),
        DevicePlan("may-chu-dvc", "server", 14, {"cpus": 16, "memory_gib": 64}),
        DevicePlan("may-chu-csdl", "server", 15, {"mounts": (("/", 50), ("/var", 200), ("/data", 4000))}),
    )),
    Office("xa-dai-dinh", "UBND xã Đại Đình", "commune", "Tam Đảo (cũ)", "Đại Đình", 21.4720, 105.6310, (
        # first: a trap from 127.0.0.1 is put on the first device at that address
        DevicePlan("core-switch", "switch", 1, {"ports": 24, "flap_port": FLAP_PORT,
                                                "flap_period": FLAP.period, "flap_down": FLAP.down},
                   started_ago=30.0),  # port 2 goes down 10 s after the start
        DevicePlan("access-switch", "switch", 2, {"ports": 8, "flap_port": None,
                                                  "location": "Bộ phận một cửa, UBND xã Đại Đình"}),
        DevicePlan("router-tsldcd", "router", 3),
        DevicePlan("ups-mot-cua", "ups", 4, {"capacity_va": 2000}),
        DevicePlan("ups-phong-may", "silent"),
    ), traps=True),
    _commune("xa-lap-thach", "Lập Thạch", "Lập Thạch (cũ)", 21.4150, 105.4600, 21,
             ups={"outage": OUTAGE, "battery_minutes": 10.0}, ups_started_ago=175.0),  # on battery from +5 s
    _commune("phuong-vinh-yen", "Vĩnh Yên", None, 21.3090, 105.6050, 31, ports=12),
)


def build_device(office: Office, plan: DevicePlan, now: float | None = None) -> SimulatedDevice:
    """The simulated device of a plan (not for ``silent``, which has none)."""
    start = (time.time() if now is None else now) - plan.started_ago
    options: dict[str, Any] = {"seed": plan.seed, "start": start, **plan.options}
    room = "Phòng kỹ thuật" if plan.kind == "ups" else "Phòng máy chủ"
    options.setdefault("location", office.location(room))
    if plan.kind == "server":
        return make_server(plan.name, **options)
    if plan.kind == "switch":
        return make_switch(plan.name, **options)
    if plan.kind == "router":
        return make_router(plan.name, **options)
    if plan.kind == "ups":
        return make_ups(plan.name, **options)
    raise ValueError(f"no simulated device for a {plan.kind!r} plan")


def write_inventory(path: Path, offices: tuple[Office, ...] = OFFICES) -> Path:
    """The collector's site inventory (CSV, docs/inventory.md): names, roles and coordinates."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("agent", "province", "district", "commune", "name", "role", "latitude", "longitude"))
        for o in offices:
            writer.writerow((o.agent, PROVINCE, o.district or "", o.commune or "", o.name, o.role, o.latitude,
                             o.longitude))
    return path

"""The site inventory: which agents exist and where they are. Optional; when given it is authoritative.

A YAML file (``sites:`` list) or a CSV file (header ``agent,province,district,commune,name,role,
latitude,longitude``). With an inventory the collector takes every site label from it, not from what
an agent claims, and rejects agents that are not listed. See docs/inventory.md.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatang import configfile
from hatang.configfile import ConfigError
from wire.topics import AGENT_ID_PATTERN

Role = Literal["datacenter", "department", "district", "commune", "other"]
CSV_COLUMNS = ("agent", "province", "district", "commune", "name", "role", "latitude", "longitude")


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str = Field(pattern=f"^{AGENT_ID_PATTERN}$")
    province: str = Field(min_length=1)
    district: str | None = None  # abolished 2025-07-01 as an administrative level; kept as a network zone
    commune: str | None = None
    name: str = ""
    role: Role = "commune"
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("district", "commune", "latitude", "longitude", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def labels(self) -> tuple[tuple[str, str], ...]:
        pairs = [("province", self.province), ("district", self.district), ("commune", self.commune)]
        return tuple(sorted((k, v) for k, v in pairs if v))

    def info_labels(self) -> tuple[tuple[str, str], ...]:
        extra = [("site_name", self.name), ("role", self.role)]
        if self.latitude is not None and self.longitude is not None:
            extra += [("latitude", f"{self.latitude:.6f}"), ("longitude", f"{self.longitude:.6f}")]
        return (("agent", self.agent), *self.labels(), *extra)


class _InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sites: list[Site]


@dataclass(frozen=True)
class Inventory:
    path: Path
    sites: dict[str, Site]

    def get(self, agent: str) -> Site | None:
        return self.sites.get(agent)


def _read_csv(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(path, [("", "inventory file not found")]) from None
    reader = csv.DictReader(io.StringIO(text))
    unknown = [c for c in (reader.fieldnames or []) if c not in CSV_COLUMNS]
    if unknown or reader.fieldnames is None or "agent" not in reader.fieldnames:
        raise ConfigError(path, [("", f"CSV header must use these columns: {', '.join(CSV_COLUMNS)}"
                                      + (f" (unknown: {', '.join(unknown)})" if unknown else ""))])
    return {"sites": [{k: v for k, v in row.items() if v is not None} for row in reader]}


def load(path: Path) -> Inventory:
    """Read and validate an inventory; errors name the file, the entry (``sites[3].latitude``) and fix."""
    data = _read_csv(path) if path.suffix.lower() == ".csv" else configfile.load_yaml(path)
    parsed = configfile.validate(_InventoryFile, data, path)
    sites: dict[str, Site] = {}
    problems = []
    for i, site in enumerate(parsed.sites):
        if site.agent in sites:
            problems.append((f"sites[{i}].agent", f"agent {site.agent!r} is listed twice"))
        sites[site.agent] = site
    if problems:
        raise ConfigError(path, problems)
    return Inventory(path, sites)

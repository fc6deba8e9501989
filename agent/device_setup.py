"""How a configured device becomes something to poll, for the agent and ``hatang poll`` alike: its
credentials (secrets read from their files), its SNMP target (made at the first request), its poller
(profiles listed, or chosen by the device: ``profiles: auto``; deadline); and the trap receiver's
communities and users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.config import DeviceConfig, TrapsConfig
from agent.critical import DEFAULT_PATTERNS as DEFAULT_CRITICAL_PATTERNS
from agent.poller import DevicePoller, SnmpReader
from agent.profile_selection import AutoProfiles
from agent.profiles import Profile
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpAddressError, SnmpAuthError, SnmpError, SnmpTimeout
from agent.snmp.target import SnmpTarget
from agent.snmp.trap_events import V3User
from agent.snmp.values import OID, SnmpValue
from hatang.config_errors import ConfigError
from hatang.config_paths import read_secret

__all__ = ["ResolvingTarget", "credentials", "make_poller", "poll_deadline", "secret", "trap_receiver_args"]


def secret(inline: str | None, path: Path | None, config_path: Path, key: str) -> str | None:
    """A secret given inline or as a ``*_file`` (its first line; ``key`` names it in errors)."""
    return read_secret(path, config_path, key) if path is not None else inline


def credentials(device: DeviceConfig, index: int, config_path: Path) -> Credentials:
    snmp = device.snmp
    key = f"devices[{index}].snmp"
    community = secret(snmp.community, snmp.community_file, config_path, f"{key}.community_file")
    return Credentials(
        version=snmp.version,
        community=community if community is not None else "public",
        username=snmp.username or "",
        auth_protocol=snmp.auth_protocol,
        auth_password=secret(snmp.auth_password, snmp.auth_password_file, config_path,
                             f"{key}.auth_password_file") or "",
        priv_protocol=snmp.priv_protocol,
        priv_password=secret(snmp.priv_password, snmp.priv_password_file, config_path,
                             f"{key}.priv_password_file") or "",
        context=snmp.context,
    )


def trap_receiver_args(traps: TrapsConfig, config_path: Path) -> tuple[list[str], list[V3User]]:
    """Communities and v3 users for the trap receiver, with secrets read from their files."""
    communities = list(traps.communities)
    if traps.communities_file is not None:
        try:
            text = traps.communities_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(config_path, [("traps.communities_file", f"cannot read: {exc}")]) from None
        communities += [line.strip() for line in text.splitlines() if line.strip()]
    users = [
        V3User(
            username=u.username, auth_protocol=u.auth_protocol, priv_protocol=u.priv_protocol,
            auth_password=secret(u.auth_password, u.auth_password_file, config_path,
                                 f"traps.users[{i}].auth_password_file") or "",
            priv_password=secret(u.priv_password, u.priv_password_file, config_path,
                                 f"traps.users[{i}].priv_password_file") or "",
            engine_id=u.engine_id,
        )
        for i, u in enumerate(traps.users)
    ]
    return communities, users


def poll_deadline(device: DeviceConfig) -> float:
    """A poll must finish well before the next one is due."""
    return max(1.0, device.interval * 0.9)


def make_poller(device: DeviceConfig, target: SnmpReader, profiles: Mapping[str, Profile]) -> DevicePoller:
    """The poller of one configured device (the agent's and ``hatang poll``'s, alike). ``profiles`` is
    every known profile; a device with ``profiles: auto`` chooses among them (agent/profile_selection.py)."""
    hint = ""
    if device.snmp.version == "1":
        hint = ("; SNMPv1 has no GETBULK and reads one value per request: use version 2c (or 3) if the "
                "device supports it, or raise the interval")
    selection = AutoProfiles(device.name, profiles) if device.auto_profiles else None
    return DevicePoller(
        device.name, target, [] if selection is not None else [profiles[p] for p in device.profiles],
        deadline=poll_deadline(device),
        timeout_errors=(SnmpTimeout, SnmpAuthError, SnmpAddressError), snmp_errors=(SnmpError,),
        deadline_hint=hint,
        critical_interfaces=(DEFAULT_CRITICAL_PATTERNS if device.critical_interfaces is None
                             else device.critical_interfaces),
        selection=selection,
    )


class ResolvingTarget:
    """A device's SNMP target, made at its first request and again at each request until that works: a
    device whose address does not resolve (yet) fails its polls with :class:`SnmpAddressError` (reason
    "address": reported down, like a device that does not answer) instead of stopping the agent."""

    def __init__(self, engine: SnmpEngine, device: DeviceConfig, creds: Credentials) -> None:
        self._engine = engine
        self._device = device
        self._creds = creds
        self._target: SnmpTarget | None = None

    async def resolve(self) -> SnmpTarget:
        if self._target is None:
            device = self._device
            self._target = await self._engine.target(device.address, device.port, self._creds,
                                                     timeout=device.snmp.timeout, retries=device.snmp.retries)
        return self._target

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        return await (await self.resolve()).get(oids)

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        return await (await self.resolve()).walk(root, max_rows=max_rows)

    async def walk_columns(self, roots: Sequence[OID], *, max_rows: int = 100_000
                           ) -> list[list[tuple[OID, SnmpValue]]]:
        return await (await self.resolve()).walk_columns(roots, max_rows=max_rows)

    async def get_next(self, oid: OID) -> tuple[OID, SnmpValue] | None:
        return await (await self.resolve()).get_next(oid)

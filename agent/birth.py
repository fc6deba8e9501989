"""The agent's status messages on its retained ``status`` topic: the birth (online, at each connection and
when what it says changes) and the will and goodbye (offline)."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from agent.queue import QueueStats
from wire.codec import encode_status
from wire.messages import AgentStatus, ConfigRejection, Labels

log = logging.getLogger("hatang.agent")

# The birth message lists the agent's devices (the collector forgets devices no longer listed) as long as
# the status payload stays below this; beyond it the list is left out (the collector then forgets none).
# The will never lists them: it travels in CONNECT, whose will payload MQTT caps at 65,535 bytes.
STATUS_MAX_BYTES = 256 * 1024

def config_version(path: Path) -> str:
    """A short hash of the config file, so operators can see which config an agent runs."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


Profiles = tuple[tuple[str, tuple[str, ...]], ...]


class StatusMessages:
    def __init__(self, agent: str, boot_id: str, site: Labels, version: str) -> None:
        self._agent, self._boot_id, self._site, self._version = agent, boot_id, site, version
        self._list_warned = False

    def encode(self, *, online: bool, stats: QueueStats, config_version: str,
               config_rejected: ConfigRejection | None, devices: tuple[str, ...],
               profiles: Profiles) -> bytes:
        """The birth (``online``: lists the devices and their profiles while that stays under
        STATUS_MAX_BYTES), or the will and the goodbye (no device list, so they stay small whatever the
        number of devices)."""
        buffer = {"depth": float(stats.depth), "bytes": float(stats.bytes), "dropped": float(stats.dropped),
                  "dropped_full": float(stats.dropped_full)}
        if stats.oldest is not None:
            buffer["oldest_ts"] = stats.oldest

        def encode(names: tuple[str, ...], chosen: Profiles = ()) -> bytes:
            return encode_status(AgentStatus(
                agent=self._agent, boot_id=self._boot_id, online=online, ts=time.time(),
                version=self._version, site=self._site, devices=names, config_version=config_version,
                buffer=tuple(sorted(buffer.items())), profiles=chosen, config_rejected=config_rejected,
            ))

        if not online:
            return encode(())
        payload = encode(devices, profiles)
        if len(payload) <= STATUS_MAX_BYTES:
            return payload
        payload = encode(devices)  # the device list matters more than the profiles
        if len(payload) <= STATUS_MAX_BYTES:
            return payload
        if not self._list_warned:
            self._list_warned = True
            log.warning("the status message does not list the %d devices and probes: the list would make it "
                        "%d bytes, more than %d; the collector then keeps the series of devices removed from "
                        "the config until they go stale", len(devices), len(payload), STATUS_MAX_BYTES)
        return encode(())


__all__ = ["STATUS_MAX_BYTES", "StatusMessages", "config_version"]

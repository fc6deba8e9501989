"""One poll of one configured device, reported for a person: ``hatang poll -c agent.yaml --device NAME``.

Builds the same engine, target and :class:`~agent.poller.DevicePoller` the agent builds (credentials,
timeouts, profiles and deadline from the config), polls once, and returns a text report: the profiles
polled (for ``profiles: auto``, the ones chosen for the device and its sysObjectID), up or down, how long
it took, each profile's error in clear words, and the metric families as Prometheus text lines with the
labels the collector would add (agent, device, site): what the agent would publish. Nothing is queued
or sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.config import AgentConfig, DeviceConfig
from agent.device_setup import credentials, make_poller, poll_deadline
from agent.poll_text import error_lines
from agent.poller import PollOutcome
from agent.profile_selection import AutoProfiles, DeviceIdentity
from agent.profiles import AUTO, load_profiles
from agent.snmp.credentials import security_level
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError
from hatang.textformat import header, render_lines
from wire.messages import Family, Labels, ProfileError

__all__ = ["UnknownDeviceError", "format_report", "poll_once"]


class UnknownDeviceError(LookupError):
    """The config has no device of that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown device"


def _find(config: AgentConfig, config_path: Path, name: str) -> tuple[int, DeviceConfig]:
    for index, device in enumerate(config.devices):
        if device.name == name:
            return index, device
    known = ", ".join(d.name for d in config.devices)
    if not known:
        raise UnknownDeviceError(f"{config_path}: no device {name!r}: the config has no devices")
    raise UnknownDeviceError(f"{config_path}: no device {name!r}; known devices: {known}")


async def poll_once(config: AgentConfig, config_path: Path, device_name: str) -> str:
    """Poll ``device_name`` once as the agent would and return a human-readable report.

    Raises :class:`UnknownDeviceError` when the config has no such device (the message lists the
    known ones). SNMP problems are not raised: they are the report (device down, profile errors).
    """
    index, device = _find(config, config_path, device_name)
    profiles = load_profiles(config.profiles_dir)
    creds = credentials(device, index, config_path)
    engine = SnmpEngine()
    try:
        try:
            target = await engine.target(device.address, device.port, creds,
                                         timeout=device.snmp.timeout, retries=device.snmp.retries)
        except SnmpError as exc:
            error = ProfileError("*", str(exc), getattr(exc, "reason", ""))
            outcome = PollOutcome(0.0, False, 0.0, (error,), ())
            identity = None
        else:
            poller = make_poller(device, target, profiles)
            outcome = await poller.poll()
            selection = poller.selection
            identity = selection.identity if isinstance(selection, AutoProfiles) else None
    finally:
        engine.close()
    base: Labels = (("agent", config.agent_id), ("device", device.name), *config.site.labels())
    return format_report(device, outcome, base, identity)


# ------------------------------------------------------------------------------------------- report


def exposition_lines(families: Iterable[Family], base: Labels = ()) -> list[str]:
    """Prometheus text lines (HELP, TYPE, samples) for ``families``, labels ``base`` first."""
    lines: list[str] = []
    for family in families:
        lines += header(family.name, family.type, family.help).splitlines()
        lines += render_lines(family, base)
    return lines


def _security(device: DeviceConfig) -> str:
    snmp = device.snmp
    if snmp.version != "3":
        return f"SNMP v{snmp.version}"
    level = security_level(snmp.auth_protocol, snmp.priv_protocol)
    protocols = "/".join(p for p in (snmp.auth_protocol, snmp.priv_protocol) if p)
    return f"SNMP v3 user {snmp.username!r} {level}" + (f" ({protocols})" if protocols else "")


def _profiles(device: DeviceConfig, outcome: PollOutcome, identity: DeviceIdentity | None) -> str:
    if not device.auto_profiles:
        return ", ".join(device.profiles)
    if not outcome.profiles:
        return f"{AUTO} (none chosen yet: the device did not answer)"
    said = f"sysObjectID {identity.sys_object_id or 'not given'}" if identity is not None else ""
    return f"{AUTO}: {', '.join(outcome.profiles)}" + (f" (chosen for {said})" if said else "")


def format_report(device: DeviceConfig, outcome: PollOutcome, base: Labels = (),
                  identity: DeviceIdentity | None = None) -> str:
    """The report :func:`poll_once` returns, from a finished poll (pure; unit-tested). ``identity``: what
    a device with ``profiles: auto`` said it is."""
    state = "UP (answered)" if outcome.up else "DOWN (no usable answer)"
    published = outcome.published
    samples = sum(len(f.samples) for f in published)
    polled = list(outcome.profiles) if device.auto_profiles else device.profiles
    lines = [
        f"device {device.name} at {device.address}:{device.port}, {_security(device)}, "
        f"profiles: {_profiles(device, outcome, identity)}",
        f"status: {state}",
        f"duration: {outcome.duration:.3f} s (deadline {poll_deadline(device):g} s; per request "
        f"{device.snmp.timeout:g} s x {device.snmp.retries + 1} tries)",
    ]
    if outcome.errors:
        lines.append(f"errors ({len(outcome.errors)}):")
        lines += [f"  {line}" for line in error_lines(polled, outcome.errors, outcome.up)]
    else:
        lines.append("errors: none")
    lines.append(f"would publish {len(published)} metric families, {samples} samples"
                 + (":" if published else "."))
    lines += exposition_lines(published, base)
    return "\n".join(lines) + "\n"

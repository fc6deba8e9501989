"""``profiles: auto``: which profiles a device gets, from what it says it is and which tables it answers.

A profile's ``match`` block (agent/profiles.py, docs/profiles.md "Automatic selection") gives its
identity test (sysObjectID prefixes, else a sysDescr pattern; none: every device) and the subtrees the
device must answer. :func:`choose` is the pure rule; :func:`identify` asks a device what the rule needs
(one GET of sysObjectID.0 and sysDescr.0, then one GETNEXT per ``answers`` or ``answers_any`` subtree of
the profiles whose identity holds); :class:`AutoProfiles` is one device's selection as the poller keeps
it: made at its first poll and again when its sysObjectID changes (agent/poller.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Set
from dataclasses import dataclass

from agent.poller import SnmpReader
from agent.profiles import OID, Match, Profile, extended_by, parse_oid
from agent.snmp.errors import SnmpAddressError, SnmpAuthError, SnmpError, SnmpTimeout
from agent.snmp.values import ABSENT_KINDS, SnmpValue, oid_text

__all__ = ["SYS_DESCR", "SYS_OBJECT_ID", "AutoProfiles", "DeviceIdentity", "choose", "identify",
           "identity_holds", "poll_order", "probe_oids"]

log = logging.getLogger("hatang.agent.profiles")

SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)  # SNMPv2-MIB::sysDescr.0
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)  # SNMPv2-MIB::sysObjectID.0
_SILENT = (SnmpTimeout, SnmpAuthError, SnmpAddressError)  # the device does not answer at all
_DOTTED = re.compile(r"\d+(\.\d+)*")


@dataclass(frozen=True)
class DeviceIdentity:
    sys_object_id: str | None  # dotted numeric, no leading dot; None when the device gave none
    sys_descr: str | None


def _under(oid: OID, prefix: OID) -> bool:
    return oid[:len(prefix)] == prefix


def identity_holds(match: Match, identity: DeviceIdentity) -> bool:
    """The identity half of ``match``: a sysObjectID under one of its prefixes (whole arcs: 1.3.6.1.4.1.9
    is not a prefix of 1.3.6.1.4.1.99), or its sysDescr pattern found; true when it gives neither."""
    if match.sys_object_id is None and match.pattern is None:
        return True
    if identity.sys_object_id and any(_under(parse_oid(identity.sys_object_id), prefix)
                                      for prefix in match.prefixes):
        return True
    if match.pattern is None or identity.sys_descr is None:
        return False
    return match.pattern.search(identity.sys_descr) is not None


def probe_oids(profiles: Mapping[str, Profile]) -> list[OID]:
    """The ``answers`` and ``answers_any`` subtrees of the profiles that have a ``match``, each once, in OID
    order."""
    return sorted({oid for p in profiles.values() if p.match is not None
                   for oid in (*p.match.answer_oids, *p.match.any_answer_oids)})


def choose(profiles: Mapping[str, Profile], identity: DeviceIdentity, answered: Set[OID]) -> list[str]:
    """The names of the profiles a device gets, sorted: every profile with a ``match`` whose identity holds,
    whose ``answers`` subtrees are all in ``answered`` and (when it has ``answers_any``) one of whose
    ``answers_any`` subtrees is, less the profiles that a chosen one extends (directly or not: it includes
    them)."""
    chosen = {name for name, p in profiles.items()
              if p.match is not None and identity_holds(p.match, identity) and p.match.answered(answered)}
    included = {base for name in chosen for base in extended_by(profiles, name)}
    return sorted(chosen - included)


def _text(value: SnmpValue | None) -> str | None:
    if value is None or value.kind in ABSENT_KINDS or value.value is None:
        return None
    raw = value.value
    if isinstance(raw, bytes):
        return raw.rstrip(b"\x00").decode("utf-8", errors="replace")
    return str(raw)


def _object_id(value: SnmpValue | None) -> str | None:
    """A sysObjectID value as dotted numbers; None for anything else (absent, another type)."""
    if value is None or value.kind != "oid" or not isinstance(value.value, str):
        return None
    text = value.value.strip().lstrip(".")
    return text if _DOTTED.fullmatch(text) else None


async def identify(reader: SnmpReader, profiles: Mapping[str, Profile]) -> tuple[DeviceIdentity, set[OID]]:
    """What :func:`choose` needs from a device: one GET of sysObjectID.0 and sysDescr.0, then one GETNEXT
    per ``answers`` / ``answers_any`` subtree of the profiles whose identity holds; a subtree is answered
    when the object after it lies inside it. Raises the reader's errors for a device that does not answer
    (timeout, auth, address) and for a broken answer to the GET; a broken answer to a probe only leaves
    that subtree unanswered."""
    values = dict(await reader.get([SYS_OBJECT_ID, SYS_DESCR]))
    identity = DeviceIdentity(_object_id(values.get(SYS_OBJECT_ID)), _text(values.get(SYS_DESCR)))
    candidates = {name: p for name, p in profiles.items()
                  if p.match is not None and identity_holds(p.match, identity)}
    answered: set[OID] = set()
    for prefix in probe_oids(candidates):
        try:
            found = await reader.get_next(prefix)
        except _SILENT:
            raise
        except SnmpError as exc:
            log.debug("probe of %s: %s; taken as not answered", oid_text(prefix), exc)
            continue
        if found is not None and _under(found[0], prefix) and found[1].kind not in ABSENT_KINDS:
            answered.add(prefix)
    return identity, answered


def poll_order(profiles: Mapping[str, Profile], names: list[str]) -> list[str]:
    """Profiles with an ``uptime:`` block first (the boot time that ``as_timestamp`` metrics of the others
    need), then the rest, each group by name."""
    return sorted(names, key=lambda name: (profiles[name].uptime is None, name))


class AutoProfiles:
    """The profiles of one device with ``profiles: auto``. ``stale`` until identified, and again when a
    poll saw another sysObjectID (:meth:`observe`); :meth:`identify` then chooses anew and logs the choice
    when it changed."""

    def __init__(self, device: str, catalogue: Mapping[str, Profile]) -> None:
        self.device = device
        self.catalogue = catalogue
        self.identity: DeviceIdentity | None = None
        self.chosen: tuple[str, ...] | None = None  # names in poll order; None until identified
        self.stale = True

    def profiles(self) -> list[Profile]:
        return [self.catalogue[name] for name in self.chosen or ()]

    async def identify(self, reader: SnmpReader) -> bool:
        """Identify the device (errors as :func:`identify`); True when the chosen set changed."""
        identity, answered = await identify(reader, self.catalogue)
        chosen = tuple(poll_order(self.catalogue, choose(self.catalogue, identity, answered)))
        changed = chosen != self.chosen
        if changed or identity.sys_object_id != (self.identity and self.identity.sys_object_id):
            log.info("device %s (sysObjectID %s): profiles %s, chosen automatically", self.device,
                     identity.sys_object_id or "not given", ", ".join(chosen) or "none")
        self.identity, self.chosen, self.stale = identity, chosen, False
        return changed

    def observe(self, values: Mapping[OID, SnmpValue]) -> None:
        """A poll's GET result: a sysObjectID other than the identified one makes the selection stale."""
        if self.identity is None or self.stale or SYS_OBJECT_ID not in values:
            return
        seen = _object_id(values[SYS_OBJECT_ID])
        if seen is not None and seen != self.identity.sys_object_id:
            log.info("device %s now says sysObjectID %s (was %s): choosing its profiles again at the next "
                     "poll", self.device, seen, self.identity.sys_object_id or "not given")
            self.stale = True

"""``hatang discover``: find the SNMP devices of an office and write their ``devices:`` block.

Pure parts first (no I/O, unit-tested in tests/unit/test_discovery_targets.py): the expansion of the
targets (addresses, CIDRs, ranges) with the address limit checked on the merged intervals before
anything is materialised, the device names (sysName made to fit ``wire.topics.DEVICE_NAME_PATTERN`` and
unique), the vendor from the sysObjectID's enterprise number, the model from sysDescr, and the YAML.

Then the sweep (:func:`sweep`): a fixed pool of ``concurrency`` workers takes the addresses in order;
every SNMP request, whichever the worker, first takes a token from one bucket of ``rate`` requests per
second. Each address is asked sysObjectID.0, sysName.0 and sysDescr.0 in one GET with the first
credential, with no retries: a silent address costs one timeout. By default a timeout ends the
address (a wrong community gets no answer either, so asking the next community would cost one more
timeout on every silent address of the range); a credential that got a definite refusal (an SNMPv3
report: unknown user, wrong password) or an error answer passes to the next one. ``thorough`` asks every
credential of a silent address in turn (up to one timeout per credential). An address that answered
gets a new target with one retry for the identification (:func:`agent.profile_selection.identify`: the
GETs and the GETNEXTs on the profiles' ``answers`` subtrees), and its profiles are chosen by
:func:`agent.profile_selection.choose`. docs/discovery.md explains the choices for an operator.

Why this module is long: the pure helpers and the sweep that uses them belong together and are short
each; splitting them would only move the dataclasses they share into a third module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpAuthError, SnmpError, SnmpTimeout
from agent.snmp.session import Reply, Session
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue
from wire.topics import DEVICE_NAME_PATTERN

if TYPE_CHECKING:
    from agent.profiles import Profile
    from agent.snmp.engine import SnmpEngine

HostAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
log = logging.getLogger("hatang.agent.discovery")

DEFAULT_MAX_ADDRESSES = 4096
HARD_MAX_ADDRESSES = 65536  # a /16: --max-addresses cannot go beyond it
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_NAME: OID = (1, 3, 6, 1, 2, 1, 1, 5, 0)
ENTERPRISES = (1, 3, 6, 1, 4, 1)
NAME_MAX = 63  # DEVICE_NAME_PATTERN: one leading character and up to 62 more
MODEL_MAX = 48

# Enterprise numbers (IANA "SMI Network Management Private Enterprise Codes") of the equipment the
# province runs, for the vendor column. Unknown numbers are shown as "enterprise N".
VENDORS: Mapping[int, str] = {
    9: "Cisco", 11: "HPE", 43: "3Com", 171: "D-Link", 311: "Microsoft", 318: "APC", 534: "Eaton",
    674: "Dell", 1588: "Brocade", 1991: "Brocade", 2011: "Huawei", 2021: "Net-SNMP (UCD)",
    2636: "Juniper", 3375: "F5", 3902: "ZTE", 4526: "Netgear", 4881: "Ruijie", 6027: "Force10",
    6486: "Alcatel-Lucent", 6876: "VMware", 8072: "Net-SNMP", 10002: "Ubiquiti", 12356: "Fortinet",
    14823: "Aruba", 14988: "MikroTik", 25053: "Ruckus", 25461: "Palo Alto", 25506: "H3C",
    30065: "Arista", 41112: "Ubiquiti", 47196: "HPE",
}


class TargetError(ValueError):
    """A target that cannot be swept, or too many addresses; ``str()`` says what to type instead."""


# ---------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Span:
    """Addresses ``first`` to ``last`` (inclusive) of one IP version, as integers."""

    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def _address(text: str, target: str) -> HostAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise TargetError(f"{target!r}: {text.strip()!r} is not an IP address (give an address such as "
                          "192.168.1.10, a network such as 192.168.1.0/24, or a range such as "
                          "192.168.1.10-192.168.1.50 or 192.168.1.10-50)") from None


def _network_span(target: str) -> _Span:
    try:
        network = ipaddress.ip_network(target, strict=False)
    except ValueError:
        raise TargetError(f"{target!r} is not a network: write it as ADDRESS/PREFIX, e.g. "
                          "192.168.1.0/24") from None
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen <= 30:
        first, last = first + 1, last - 1  # network and broadcast addresses (a /31 has neither: RFC 3021)
    elif network.version == 6 and network.prefixlen <= 126:
        first += 1  # the Subnet-Router anycast address (RFC 4291), as ipaddress' hosts() leaves it out
    return _Span(network.version, first, last)


def _range_span(target: str) -> _Span:
    left, _, right = target.partition("-")
    start = _address(left, target)
    right = right.strip()
    if right.isdigit() and start.version == 4:  # 192.168.1.10-50: the last octet
        if int(right) > 255:
            raise TargetError(f"{target!r}: {right} is not an octet (0-255)")
        end: HostAddress = ipaddress.IPv4Address((int(start) & ~0xFF) | int(right))
    else:
        end = _address(right, target)
    if end.version != start.version:
        raise TargetError(f"{target!r} mixes IPv4 and IPv6")
    if int(end) < int(start):
        raise TargetError(f"{target!r}: the range ends before it starts; write the lower address first")
    return _Span(start.version, int(start), int(end))


def parse_target(target: str) -> _Span:
    """One TARGET: an address, ``ADDRESS/PREFIX`` or ``FIRST-LAST`` (``FIRST-N``: N is the last octet)."""
    text = target.strip()
    if not text:
        raise TargetError("an empty target")
    if "/" in text:
        return _network_span(text)
    if "-" in text:
        return _range_span(text)
    address = _address(text, target)
    return _Span(address.version, int(address), int(address))


def _merged(spans: Iterable[_Span]) -> list[_Span]:
    out: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.version, s.first)):
        if out and out[-1].version == span.version and span.first <= out[-1].last + 1:
            last = out[-1]
            out[-1] = _Span(last.version, last.first, max(last.last, span.last))
        else:
            out.append(span)
    return out


def count_addresses(targets: Sequence[str]) -> int:
    """How many different addresses the targets name (overlaps counted once), without listing them."""
    return sum(span.size for span in _merged(parse_target(t) for t in targets))


def expand_targets(targets: Sequence[str], max_addresses: int = DEFAULT_MAX_ADDRESSES) -> list[HostAddress]:
    """Every address the targets name, once each, in ascending order (IPv4 first). Raises
    :class:`TargetError` for a target that is not an address, network or range, and when there are more
    than ``max_addresses`` addresses: the count is made on merged intervals, before any list is built."""
    if not targets:
        raise TargetError("give at least one target: an address, a network (CIDR) or a range")
    spans = _merged(parse_target(t) for t in targets)
    total = sum(span.size for span in spans)
    if total > max_addresses:
        raise TargetError(
            f"the targets name {total} addresses, more than the limit of {max_addresses}: sweep a smaller "
            f"network (e.g. one /24 at a time) or raise --max-addresses (at most {HARD_MAX_ADDRESSES})")
    factory: dict[int, Callable[[int], HostAddress]] = {4: ipaddress.IPv4Address, 6: ipaddress.IPv6Address}
    return [factory[span.version](n) for span in spans for n in range(span.first, span.last + 1)]


# ------------------------------------------------------------------------------ names, vendor, model


_TRANSLITERATE = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae"})
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_DEVICE_NAME = re.compile(DEVICE_NAME_PATTERN)


def sanitize_name(text: str) -> str:
    """``text`` made to fit DEVICE_NAME_PATTERN: accents dropped (Vietnamese included: "Đồng Hới" ->
    "Dong-Hoi"), other characters turned into ``-``, a leading ``_``/``.``/``-`` dropped, cut to 63
    characters. Empty when nothing usable is left."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    ascii_text = "".join(ch for ch in ascii_text if not unicodedata.combining(ch))
    name = _NOT_NAME.sub("-", ascii_text).lstrip("_.-")[:NAME_MAX].rstrip("-.")
    return name if _DEVICE_NAME.fullmatch(name) else ""


def address_name(address: str) -> str:
    """The name of a device without a usable sysName: ``dev-192-168-1-10`` (IPv6: ``dev-fd00--1``)."""
    return sanitize_name("dev-" + address.replace(".", "-").replace(":", "-"))


def unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3`` ... (cut to fit) when taken; the result is added to
    ``taken``. Names are compared case-insensitively: two devices called ``SW1`` and ``sw1`` would
    confuse a person reading the dashboards."""
    lowered = {name.lower() for name in taken}
    name, n = wanted, 1
    while name.lower() in lowered:
        n += 1
        suffix = f"-{n}"
        name = wanted[:NAME_MAX - len(suffix)].rstrip("-.") + suffix
    taken.add(name)
    return name


def vendor_of(sys_object_id: str | None) -> str:
    """The vendor from the enterprise number of a sysObjectID (1.3.6.1.4.1.N...); "" when unknown."""
    if not sys_object_id:
        return ""
    arcs = sys_object_id.strip(".").split(".")
    prefix = [str(a) for a in ENTERPRISES]
    if arcs[:len(prefix)] != prefix or len(arcs) <= len(prefix) or not arcs[len(prefix)].isdigit():
        return ""
    number = int(arcs[len(prefix)])
    return VENDORS.get(number, f"enterprise {number}")


def model_of(sys_descr: str | None) -> str:
    """The first non-empty line of sysDescr, whitespace collapsed, cut to :data:`MODEL_MAX` characters."""
    for line in (sys_descr or "").splitlines():
        text = " ".join(line.split())
        if text:
            return text if len(text) <= MODEL_MAX else text[:MODEL_MAX - 3].rstrip() + "..."
    return ""


def value_text(value: SnmpValue | None) -> str | None:
    """An SNMP value as text (OCTET STRING as UTF-8, control characters as spaces except line breaks;
    an OID dotted); None when the device has no such object."""
    if value is None or value.value is None or value.kind in ("no_such_object", "no_such_instance",
                                                              "end_of_mib_view", "null"):
        return None
    raw = value.value
    if isinstance(raw, bytes):
        text = raw.rstrip(b"\x00").decode("utf-8", errors="replace")
        return "".join(ch if ch in "\r\n" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return str(raw).lstrip(".")


# ------------------------------------------------------------------------------------------- YAML


@dataclass(frozen=True)
class Credential:
    """One way to ask: the credentials for the requests, and the ``snmp:`` settings written into the
    devices block (secrets as ``*_file`` references where they came from a file)."""

    creds: Credentials
    settings: tuple[tuple[str, str], ...]  # key, value; in the order written

    @property
    def version(self) -> str:
        return self.creds.version


@dataclass(frozen=True)
class Found:
    """A device that answered."""

    address: str
    port: int
    name: str
    sys_object_id: str | None
    sys_descr: str | None
    sys_name: str | None
    credential: Credential
    profiles: tuple[str, ...]

    @property
    def vendor(self) -> str:
        return vendor_of(self.sys_object_id)

    @property
    def model(self) -> str:
        return model_of(self.sys_descr)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are a subset of YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def render_devices(found: Sequence[Found], header: Sequence[str] = ()) -> str:
    """The ``devices:`` block of agent.yaml for the devices found (block style, every string quoted)."""
    from agent.profiles import AUTO

    lines = [f"# {_comment(line)}" for line in header]
    lines.append("devices:" if found else "devices: []")
    for device in found:
        about = ", ".join(p for p in (device.vendor, device.model) if p)
        if device.sys_object_id:
            about += f" (sysObjectID {device.sys_object_id})"
        if about:
            lines.append(f"  # {_comment(about)}")
        lines += [f"  - name: {_quoted(device.name)}",
                  f"    address: {_quoted(device.address)}",
                  f"    port: {device.port}",
                  "    snmp:"]
        lines += [f"      {key}: {_quoted(value)}" for key, value in device.credential.settings]
        if device.profiles:
            lines.append(f"    profiles: [{', '.join(_quoted(p) for p in device.profiles)}]")
        else:  # nothing matched: let the agent choose at its start (the device may answer more by then)
            lines.append(f"    profiles: {AUTO}  # no profile matched when discovered")
    return "\n".join(lines) + "\n"


def name_devices(found: Sequence[Found]) -> list[Found]:
    """The devices with unique names from their sysName (the address when there is none), in address
    order; an earlier address keeps the plain name."""
    taken: set[str] = set()
    out = []
    for device in sorted(found, key=lambda d: ipaddress.ip_address(d.address)):
        wanted = sanitize_name(device.sys_name or "") or address_name(device.address)
        out.append(dataclasses.replace(device, name=unique_name(wanted, taken)))
    return out


# ------------------------------------------------------------------------------------------- sweep


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; :meth:`take` waits for one."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("rate must be a positive number")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)  # pacing, not synchronisation


class _RateLimited:
    """A :class:`Session` whose every request first takes a token from the sweep's bucket."""

    def __init__(self, session: Session, bucket: TokenBucket) -> None:
        self._session = session
        self._bucket = bucket
        self.creds = session.creds
        self.host = session.host
        self.port = session.port

    async def get(self, oids: Sequence[OID]) -> Reply:
        await self._bucket.take()
        return await self._session.get(oids)

    async def get_next(self, oid: OID) -> Reply:
        await self._bucket.take()
        return await self._session.get_next(oid)

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Reply:
        await self._bucket.take()
        return await self._session.get_bulk(oids, max_repetitions)


@dataclass(frozen=True)
class SweepOptions:
    port: int = 161
    timeout: float = 1.0
    concurrency: int = 32
    rate: float = 100.0  # SNMP requests per second, all addresses together
    thorough: bool = False  # ask every credential of an address that does not answer


@dataclass
class SweepResult:
    found: list[Found] = field(default_factory=list)  # named (name_devices), in address order
    asked: int = 0  # addresses asked
    timed_out: int = 0  # addresses that answered no credential
    errors: dict[str, str] = field(default_factory=dict)  # address -> what went wrong
    seconds: float = 0.0

    @property
    def answered(self) -> int:
        return len(self.found)


Progress = Callable[[int, int, int], None]  # (addresses done, addresses in total, devices found), after each


class _Sweep:
    def __init__(self, engine: SnmpEngine, credentials: Sequence[Credential],
                 profiles: Mapping[str, Profile], options: SweepOptions) -> None:
        self.engine = engine
        self.credentials = list(credentials)
        self.profiles = profiles
        self.options = options
        self.bucket = TokenBucket(options.rate, burst=min(options.rate, options.concurrency))
        self.result = SweepResult()
        self.found: list[Found] = []

    async def _target(self, address: str, credential: Credential, retries: int) -> SnmpTarget:
        target = await self.engine.target(address, self.options.port, credential.creds,
                                          timeout=self.options.timeout, retries=retries)
        return SnmpTarget(_RateLimited(target.session, self.bucket), max_repetitions=target.max_repetitions)

    async def probe(self, address: str) -> None:
        """Ask one address with each credential in turn (see the module doc for when the next one)."""
        problem = ""
        for credential in self.credentials:
            try:
                target = await self._target(address, credential, retries=0)
                values = dict(await target.get([SYS_OBJECT_ID, SYS_NAME, SYS_DESCR]))
            except SnmpTimeout:
                if self.options.thorough:
                    continue
                break
            except SnmpAuthError as exc:  # a definite refusal: the next credential may be the right one
                problem = str(exc)
                continue
            except SnmpError as exc:
                problem = str(exc)
                continue
            await self._identify(address, credential, values)
            return
        if problem:
            self.result.errors[address] = problem
        else:
            self.result.timed_out += 1

    async def _identify(self, address: str, credential: Credential, values: Mapping[OID, SnmpValue]) -> None:
        from agent.profile_selection import choose, identify  # the poller's modules: when a device answers

        try:
            target = await self._target(address, credential, retries=1)
            identity, answered = await identify(target, self.profiles)
        except SnmpError as exc:
            self.result.errors[address] = f"answered, then failed while its profiles were chosen: {exc}"
            return
        sys_object_id = identity.sys_object_id or value_text(values.get(SYS_OBJECT_ID))
        sys_descr = identity.sys_descr
        if sys_descr is None:
            sys_descr = value_text(values.get(SYS_DESCR))
        chosen = tuple(choose(self.profiles, identity, answered))
        self.found.append(Found(address, self.options.port, "", sys_object_id, sys_descr,
                                value_text(values.get(SYS_NAME)), credential, chosen))

    async def run(self, addresses: Sequence[HostAddress], progress: Progress | None) -> SweepResult:
        started = time.monotonic()
        queue = iter(addresses)
        done = 0

        async def worker() -> None:
            nonlocal done
            for address in queue:  # one shared iterator: each address taken by exactly one worker
                self.result.asked += 1
                try:
                    await self.probe(str(address))
                except Exception as exc:  # one odd device must not end the sweep of the others
                    log.exception("discover: %s", address)
                    self.result.errors[str(address)] = f"unexpected error (a bug; please report it): {exc!r}"
                done += 1
                if progress is not None:
                    progress(done, len(addresses), len(self.found))

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(self.options.concurrency, len(addresses)))):
                group.create_task(worker())
        self.result.found = name_devices(self.found)
        self.result.seconds = time.monotonic() - started
        return self.result


async def sweep(engine: SnmpEngine, addresses: Sequence[HostAddress], credentials: Sequence[Credential],
                profiles: Mapping[str, Profile], options: SweepOptions,
                progress: Progress | None = None) -> SweepResult:
    """Ask every address (see the module doc); the devices that answered, named, in address order."""
    if not credentials:
        raise ValueError("no credentials to ask with")
    return await _Sweep(engine, credentials, profiles, options).run(addresses, progress)


__all__ = ["DEFAULT_MAX_ADDRESSES", "HARD_MAX_ADDRESSES", "VENDORS", "Credential", "Found", "Progress",
           "SweepOptions", "SweepResult", "TargetError", "TokenBucket", "address_name", "count_addresses",
           "expand_targets", "model_of", "name_devices", "parse_target", "render_devices", "sanitize_name",
           "sweep", "unique_name", "value_text", "vendor_of"]

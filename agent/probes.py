"""Link probes: round-trip time, loss and reachability of a target over the government network.

Methods, tried in this order by ``method="auto"``:

``icmp`` (datagram socket)
    ``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)``: Linux "ping sockets", no privileges needed when the
    process's group is inside ``net.ipv4.ping_group_range`` (the kernel default ``1 0`` allows nobody;
    ``sysctl net.ipv4.ping_group_range="0 2147483647"`` allows everyone; upstream systemd >= 243 sets
    that at boot, Debian 12's systemd package does not ship the setting). The kernel sets the echo
    identifier to the socket's own port and delivers only that socket's replies.
``icmp`` (raw socket)
    ``socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)``: needs CAP_NET_RAW (root, or systemd
    ``AmbientCapabilities=CAP_NET_RAW``). Every raw ICMP socket sees every ICMP packet of the host, so
    each probe uses its own identifier (unique in this process) and a random token in the payload, and
    matches replies on source address, identifier, sequence and token; a kernel filter (``ICMP_FILTER``)
    keeps everything but echo replies out of the socket.
``tcp``
    A TCP connect to ``tcp_port``; the connect time is the RTT. A completed handshake *and* a refused
    connection (RST) both count as a reply: either proves the host (or a firewall answering in its
    name) is reachable. A timeout, "host/network unreachable" and other errors count as loss.

ICMP is IPv4 only for now; IPv6 targets are probed over TCP (``auto``). RTTs are measured on the event
loop (``time.perf_counter`` at send and when the reply is read), so a busy loop adds to them.

Pure parts (packet build/parse, checksum, statistics) are separate functions, unit-tested without
sockets; :func:`run_probe` is the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
_SOL_RAW = 255  # Linux <linux/in.h>
_ICMP_FILTER = 1  # Linux <linux/icmp.h>: bit N set = drop ICMP type N on this raw socket
TOKEN_BYTES = 8  # random per probe, first in the echo payload
PAYLOAD_MARK = b"hatang\x00\x00"  # then this, so that captures show whose echoes these are
METHODS = ("auto", "icmp", "tcp")


class ProbeError(Exception):
    """A probe cannot run at all (bad address, name not resolvable, method unavailable here)."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: str
    method: str  # "icmp" | "tcp"
    sent: int
    received: int
    rtt_min: float | None  # seconds
    rtt_avg: float | None
    rtt_max: float | None

    @property
    def up(self) -> bool:
        return self.received > 0

    @property
    def loss_ratio(self) -> float:
        """Fraction of probes without a reply: 0.0 .. 1.0 (1.0 when nothing could be sent)."""
        if self.sent <= 0:
            return 1.0
        return max(0.0, min(1.0, 1.0 - self.received / self.sent))


# ------------------------------------------------------------------------------------------- pure parts


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo_request(identifier: int, sequence: int, payload: bytes) -> bytes:
    """An ICMP echo request (type 8, code 0) with a correct checksum."""
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, identifier & 0xFFFF, sequence & 0xFFFF)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum(header + payload),
                       identifier & 0xFFFF, sequence & 0xFFFF) + payload


@dataclass(frozen=True, slots=True)
class EchoReply:
    source: str | None  # from the IP header (raw sockets); None when the kernel stripped it
    identifier: int
    sequence: int
    payload: bytes


def parse_echo_reply(packet: bytes, *, ip_header: bool) -> EchoReply | None:
    """Parse an ICMP echo reply; None for anything else (other types, truncated, bad checksum).

    ``ip_header``: raw sockets deliver the IPv4 header first; ICMP datagram sockets do not.
    """
    source = None
    if ip_header:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or len(packet) < ihl or packet[9] != socket.IPPROTO_ICMP:
            return None
        source = socket.inet_ntoa(packet[12:16])
        packet = packet[ihl:]
    if len(packet) < 8:
        return None
    kind, code, _sum, identifier, sequence = struct.unpack("!BBHHH", packet[:8])
    if kind != ICMP_ECHO_REPLY or code != 0 or checksum(packet) != 0:
        return None
    return EchoReply(source, identifier, sequence, packet[8:])


@dataclass(frozen=True, slots=True)
class EchoMatcher:
    """Which received packets answer *this* probe's echo requests.

    ``kind`` "raw": the packet starts with the IP header and may be anyone's ICMP, so source address,
    identifier and token must match. ``kind`` "dgram": the kernel already delivered only replies to this
    socket's identifier, without IP header; the token still guards against stray late replies.
    """

    kind: str  # "raw" | "dgram"
    address: str
    identifier: int
    token: bytes

    def sequence(self, packet: bytes) -> int | None:
        """The echo sequence number ``packet`` answers, or None when it is not for us."""
        reply = parse_echo_reply(packet, ip_header=self.kind == "raw")
        if reply is None or not reply.payload.startswith(self.token):
            return None
        if self.kind == "raw" and (reply.identifier != self.identifier or reply.source != self.address):
            return None
        return reply.sequence


def summarize(target: str, method: str, sent: int, rtts: Sequence[float]) -> ProbeResult:
    """A :class:`ProbeResult` from the number of probes sent and the RTTs of those answered."""
    if len(rtts) > sent:
        raise ValueError(f"{len(rtts)} replies for {sent} probes")
    if not rtts:
        return ProbeResult(target, method, sent, 0, None, None, None)
    return ProbeResult(target, method, sent, len(rtts), min(rtts), sum(rtts) / len(rtts), max(rtts))


# ------------------------------------------------------------------------------------------- sockets


def _open_icmp(kind: str) -> socket.socket:
    if kind == "dgram":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        with contextlib.suppress(OSError):  # Linux only; without it we just filter in Python
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF))
    sock.setblocking(False)
    return sock


def icmp_socket_kind() -> str | None:
    """Which ICMP socket this process may open: "dgram" (ping_group_range), "raw" (CAP_NET_RAW) or None."""
    for kind in ("dgram", "raw"):
        try:
            _open_icmp(kind).close()
        except OSError:
            continue
        return kind
    return None


_raw_identifiers: set[int] = set()


def _raw_identifier() -> int:
    """An echo identifier not used by another probe of this process (raw sockets see all replies)."""
    base = (os.getpid() ^ random.getrandbits(16)) & 0xFFFF
    for step in range(0x10000):
        candidate = (base + step) & 0xFFFF
        if candidate not in _raw_identifiers:
            _raw_identifiers.add(candidate)
            return candidate
    raise ProbeError("more than 65536 raw ICMP probes at once")


async def _resolve(address: str) -> tuple[int, str]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ProbeError(f"cannot resolve {address!r}: {exc}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # prefer IPv4 (ICMP is IPv4 only)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


# ------------------------------------------------------------------------------------------- probing


async def _paced(count: int, interval: float,
                 attempt: Callable[[int], Awaitable[float | None]]) -> list[float | None]:
    """Start ``count`` attempts ``interval`` seconds apart (pacing, not synchronisation); gather them."""
    tasks: list[asyncio.Task[float | None]] = []
    try:
        for seq in range(count):
            if seq:
                await asyncio.sleep(interval)
            tasks.append(asyncio.ensure_future(attempt(seq)))
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def _icmp_probe(kind: str, target: str, ip: str, count: int, interval: float,
                      timeout: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    sock = _open_icmp(kind)
    identifier = _raw_identifier() if kind == "raw" else 0  # dgram: the kernel sets it (local "port")
    token = random.randbytes(TOKEN_BYTES)
    matcher = EchoMatcher(kind, ip, identifier, token)
    waiting: dict[int, tuple[float, asyncio.Future[float]]] = {}

    def readable() -> None:
        while True:
            try:
                packet, sender = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error (unreachable, ...) reported on the socket: that echo is lost
            now = time.perf_counter()
            if sender[0] != ip:
                continue  # another host with our identifier (a datagram socket is not connected)
            sequence = matcher.sequence(packet)
            entry = waiting.get(sequence) if sequence is not None else None
            if entry is not None and not entry[1].done():
                entry[1].set_result(now - entry[0])

    async def attempt(seq: int) -> float | None:
        future: asyncio.Future[float] = loop.create_future()
        packet = build_echo_request(identifier, seq, token + PAYLOAD_MARK)
        waiting[seq] = (time.perf_counter(), future)
        try:
            await loop.sock_sendto(sock, packet, (ip, 0))
            async with asyncio.timeout(timeout):
                return await future
        except (TimeoutError, OSError):
            return None  # no reply in time, or the send failed (no route, ...): lost
        finally:
            waiting.pop(seq, None)

    loop.add_reader(sock.fileno(), readable)
    try:
        rtts = await _paced(count, interval, attempt)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
        if kind == "raw":
            _raw_identifiers.discard(identifier)
    return summarize(target, "icmp", count, [r for r in rtts if r is not None])


async def _tcp_attempt(family: int, ip: str, port: int, timeout: float) -> float | None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (ip, port))
        return time.perf_counter() - started
    except ConnectionRefusedError:
        return time.perf_counter() - started  # an RST came back: the host is reachable
    except (TimeoutError, OSError):
        return None
    finally:
        sock.close()


async def _tcp_probe(target: str, family: int, ip: str, port: int, count: int, interval: float,
                     timeout: float) -> ProbeResult:
    async def attempt(seq: int) -> float | None:
        return await _tcp_attempt(family, ip, port, timeout)

    rtts = await _paced(count, interval, attempt)
    return summarize(target, "tcp", count, [r for r in rtts if r is not None])


async def run_probe(
    address: str,
    *,
    count: int = 5,
    interval: float = 0.2,
    timeout: float = 1.0,
    method: str = "auto",
    tcp_port: int = 443,
) -> ProbeResult:
    """Send ``count`` probes to ``address`` (IP or host name), ``interval`` seconds apart, each waiting up
    to ``timeout`` seconds for its reply; takes about ``(count - 1) * interval + timeout`` at most.

    ``method``: "auto" (ICMP datagram socket, else raw socket, else TCP), "icmp" (either ICMP socket; raises
    :class:`ProbeError` when neither is allowed) or "tcp". Raises :class:`ProbeError` for an unknown
    method, bad arguments, or a name that does not resolve; an unreachable target is a result, not an error.
    """
    if method not in METHODS:
        raise ProbeError(f"unknown probe method {method!r}; known: {', '.join(METHODS)}")
    if count < 1 or interval < 0 or timeout <= 0 or not 1 <= tcp_port <= 65535:
        raise ProbeError(f"bad probe parameters: count={count} interval={interval} timeout={timeout} "
                         f"tcp_port={tcp_port}")
    family, ip = await _resolve(address)
    if method != "tcp":
        kind = icmp_socket_kind() if family == socket.AF_INET else None
        if kind is not None:
            return await _icmp_probe(kind, address, ip, count, interval, timeout)
        if method == "icmp":
            why = ("ICMP probes are IPv4 only" if family != socket.AF_INET else
                   "no ICMP socket allowed: add the agent's group to net.ipv4.ping_group_range, or give it "
                   "CAP_NET_RAW")
            raise ProbeError(f"cannot probe {address} with ICMP: {why}")
    return await _tcp_probe(address, family, ip, tcp_port, count, interval, timeout)


__all__ = [
    "EchoMatcher",
    "EchoReply",
    "ProbeError",
    "ProbeResult",
    "build_echo_request",
    "checksum",
    "icmp_socket_kind",
    "parse_echo_reply",
    "run_probe",
    "summarize",
]

"""The trap receiver's socket and fast path: SNMP v1/v2c notifications without pysnmp.

:class:`TrapListener` binds the UDP socket (with a large receive buffer: a storm arrives faster than one
loop turn), decodes SNMPv1 traps and SNMPv2c traps and informs with :mod:`agent.snmp.trap_decode`,
acknowledges informs (the Response-PDU of RFC 3416 4.2.7, before the callback runs), checks the community
and turns each notification into a :class:`~agent.snmp.trap_events.TrapEvent`. Datagrams of another
SNMP version go to a :class:`SlowPath` when the subclass makes one (:class:`agent.snmp.traps.TrapReceiver`:
our own USM, :mod:`agent.snmp.trap_v3`, for SNMPv3; pysnmp as the reference), else they are
refused. It imports no pysnmp; see :mod:`agent.snmp.traps` for the receiver's whole behaviour.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, cast

from agent.snmp.ber import BerError
from agent.snmp.trap_decode import decode_notification, inform_response, message_version
from agent.snmp.trap_events import MalformedTrap, TrapEvent, V3User, build_event, engine_id_bytes

log = logging.getLogger("hatang.agent.traps")

RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes asked for; the kernel caps it at net.core.rmem_max
VERSION_NAMES = {0: "1", 1: "2c", 3: "3"}
VERSION_BER = frozenset({0, 1})  # the versions decoded here; SNMPv3 needs the USM of a SlowPath


READ_BURST = 64  # datagrams read per wake-up of the socket
MAX_DATAGRAM = 65535


class TrapListenError(Exception):
    """The receiver could not bind its UDP address (taken, needs privileges, no such address)."""


class WarnOnce:
    """Log a warning the first time for a key (a sender, a user), then at debug level: a device repeating
    the same mistake every few seconds must not flood the log."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, ...]] = set()

    def __call__(self, key: tuple[str, ...], message: str, *args: object) -> None:
        if key in self._seen:
            log.debug(message, *args)
            return
        if len(self._seen) < 10_000:
            self._seen.add(key)
        log.warning(message + " (further ones at debug level)", *args)


class SlowPath(Protocol):
    """What handles the datagrams the BER path here does not (SNMPv3: :class:`agent.snmp.trap_v3.
    V3Notifications`, or pysnmp as the reference): fed one datagram at a time."""

    @property
    def engine_id(self) -> str: ...

    @property
    def rejected(self) -> int: ...

    def attach(self, transport: asyncio.DatagramTransport) -> None: ...

    def feed(self, datagram: bytes, address: Any) -> None: ...

    def close(self) -> None: ...


class TrapListener(asyncio.DatagramProtocol):
    """Receive SNMP notifications on ``listen`` and call ``on_trap(event)`` for each accepted one.

    ``on_trap`` runs on the event loop, synchronously, once per notification: keep it short (put the
    event in a queue, call ``Scheduler.poll_now``); an exception in it is logged and swallowed.

    Counters (plain attributes/properties, monotonic): ``received`` notifications delivered to
    ``on_trap``; ``rejected`` datagrams refused (unknown community, unknown v3 user or engine id,
    wrong digest, undecryptable, too low a security level, not SNMP, malformed); ``datagrams`` seen.
    """

    #: SNMP message versions on the fast path (0 v1, 1 v2c decoded here; 3 by the subclass's own USM);
    #: other versions go to pysnmp when it runs.
    fast_versions: ClassVar[frozenset[int]] = frozenset({0, 1})

    def __init__(
        self,
        listen: tuple[str, int],
        communities: Sequence[str],
        v3_users: Sequence[V3User],
        on_trap: Callable[[TrapEvent], None],
        *,
        engine_id: str | None = None,
    ) -> None:
        host, port = listen
        try:
            self._family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            raise ValueError(f"trap listen address {host!r} is not an IP address") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"trap listen port {port} is not 0..65535")
        self._listen = (host, port)
        self._communities = list(communities)
        if any(not c for c in self._communities):
            raise ValueError("empty community string")
        self._community_index: dict[bytes, str] = {}
        for index, community in enumerate(self._communities):
            self._community_index.setdefault(community.encode(), f"communities[{index}]")
        self._users = list(v3_users)
        self._engine_id = engine_id_bytes(engine_id) if engine_id is not None else None
        self._on_trap = on_trap
        self.received = 0
        self.datagrams = 0
        self._rejected_here = 0
        self._slow: SlowPath | None = None  # kept after close(): its counters stay readable
        self._transport: asyncio.DatagramTransport | None = None
        self._bound: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._started = self._closed = False
        self._warn = WarnOnce()
        self.receive_buffer = 0  # bytes the kernel granted (SO_RCVBUF)

    # ------------------------------------------------------------------ lifecycle

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the real port when ``listen`` asked for port 0)."""
        if self._bound is None:
            raise RuntimeError("TrapReceiver is not started")
        return self._bound

    @property
    def engine_id(self) -> str:
        """Our SNMP engine id in hex (what senders discover for v3 informs); without v3 users (no engine
        runs) the configured one, or "" if none was given."""
        if self._bound is None:
            raise RuntimeError("TrapReceiver is not started")
        if self._slow is not None:
            return self._slow.engine_id
        return self._engine_id.hex() if self._engine_id is not None else ""

    @property
    def rejected(self) -> int:
        return self._rejected_here + (self._slow.rejected if self._slow is not None else 0)

    def _bind(self) -> socket.socket:
        host, port = self._listen
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError as exc:  # pragma: no cover - platform without the option
            log.debug("cannot set SO_RCVBUF: %s", exc)
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            where = f"udp {host}:{port}" if self._family == socket.AF_INET else f"udp [{host}]:{port}"
            if exc.errno == errno.EADDRINUSE:
                hint = "another program (snmptrapd? another agent?) already listens there"
            elif exc.errno == errno.EACCES:
                hint = ("ports below 1024 need root or CAP_NET_BIND_SERVICE (systemd: "
                        "AmbientCapabilities=CAP_NET_BIND_SERVICE), or listen on a port >= 1024")
            elif exc.errno == errno.EADDRNOTAVAIL:
                hint = "no interface of this host has that address"
            else:
                hint = exc.strerror or str(exc)
            raise TrapListenError(f"cannot listen for SNMP traps on {where}: {hint} ({exc})") from exc
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        """Bind the UDP address and start receiving. Raises :class:`TrapListenError` when binding fails."""
        if self._started or self._closed:
            raise RuntimeError("a TrapReceiver starts once; make a new one")
        self._started = True
        sock = self._sock = self._bind()
        try:
            self._slow = self._make_slow_path()
            # Everything is set up before the socket is handed to the loop: no datagram finds it half-set.
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            self.close()
            raise
        name = sock.getsockname()
        self._bound = (str(name[0]), int(name[1]))
        log.info("listening for SNMP traps on udp %s:%d (%d communities, %d v3 users%s)",
                 self._bound[0], self._bound[1], len(self._communities), len(self._users),
                 f", engine id {self.engine_id}" if self._slow is not None else "")

    def close(self) -> None:
        """Stop receiving and release the socket. Safe to call more than once; counters stay readable."""
        if self._closed:
            return
        self._closed = True
        transport, self._transport = self._transport, None
        try:
            if self._slow is not None:
                self._slow.close()
        finally:
            if transport is not None:
                transport.close()  # stops reading now, closes the socket on the next loop turn
            if self._sock is not None:
                self._sock.close()  # release the port before close() returns

    def _make_slow_path(self) -> SlowPath | None:
        """The handler of the datagrams whose version is not in ``fast_versions`` (None: refuse them)."""
        return None

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._slow is not None:
            self._slow.attach(self._transport)

    def error_received(self, exc: Exception) -> None:
        log.debug("SNMP trap socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram, then those already waiting (up to READ_BURST): in a storm the receiver reads
        ahead of the loop's other work (the uplink publishing what it queued), so the socket's buffer
        does not overflow while the CPU goes to publishing; what is read is queued on disk at once."""
        self._datagram(data, addr)
        sock = self._sock
        for _ in range(READ_BURST - 1):
            if sock is None or self._closed:
                return
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            self._datagram(data, addr)

    def _datagram(self, data: bytes, addr: Any) -> None:
        if self._closed:
            return
        self.datagrams += 1
        try:
            version = message_version(data)
            if version in self.fast_versions and version in VERSION_BER:
                self._fast(data, addr)
            elif self._slow is not None:
                self._slow.feed(data, addr)
            else:
                self._rejected_here += 1
                why = "no SNMPv3 users are configured" if version == 3 else f"not SNMP v1/v2c ({version})"
                self._warn(("version", str(addr[0])), "SNMP datagram from %s dropped: %s", addr[0], why)
        except Exception as exc:  # never let one datagram break the receiver
            self._rejected_here += 1
            self._warn(("malformed", str(addr[0])), "malformed SNMP datagram from %s dropped: %s",
                       addr[0], exc)

    def _fast(self, data: bytes, addr: Any) -> None:
        notification = decode_notification(data)  # BerError: counted by the caller
        security_name = self._community_index.get(notification.community)
        if security_name is None:
            self._rejected_here += 1
            log.debug("SNMP notification from %s with an unknown community dropped", addr[0])
            return
        if notification.inform and self._transport is not None:
            self._transport.sendto(inform_response(notification), addr)
        try:
            event = build_event(ts=time.time(), source=str(addr[0]),
                                version=VERSION_NAMES[notification.version], security_name=security_name,
                                varbinds=notification.varbinds, inform=notification.inform)
        except MalformedTrap as exc:
            raise BerError(str(exc)) from None
        self._deliver(event)

    def _deliver(self, event: TrapEvent) -> None:
        self.received += 1
        try:
            self._on_trap(event)
        except Exception:
            log.exception("trap callback failed for %s from %s", event.trap_name, event.source)

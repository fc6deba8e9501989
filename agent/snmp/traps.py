"""SNMP trap and inform receiver: the trap side of pysnmp (:mod:`agent.snmp.pysnmp_session` is the poll side).

This is the only other module that imports pysnmp. Everything that leaves it is plain data: a
:class:`~agent.snmp.trap_events.TrapEvent` per accepted notification, handed to a callback; errors are
:class:`TrapListenError`.

* SNMPv1 traps, SNMPv2c traps and informs, SNMPv3 traps and informs (USM, auth and privacy protocols
  named as in :mod:`agent.snmp.credentials`).
* It runs inside the caller's asyncio loop: its own pysnmp ``SnmpEngine`` (built in
  :meth:`TrapReceiver.start`, ~0.1-0.4 s once), a UDP socket we bind ourselves (so a taken or
  privileged port fails at once with a clear :class:`TrapListenError`), and pysnmp's
  ``NotificationReceiver`` (which acknowledges informs).
  ``open_dispatcher()`` is never called: it would run a loop of its own.
* Informs are acknowledged before the callback runs (pysnmp sends the response first).
* SNMPv3 **informs** work without configuring the sender's engine id: the sender discovers ours first
  (RFC 3414 4), and the keys are localised to our engine id. SNMPv3 **traps** are sent with the
  *sender's* engine id as the authoritative one, so each sending device's engine id must be configured
  (:attr:`V3User.engine_id`, hex), as with net-snmp's ``snmptrapd`` (``createUser -e ENGINEID``).
  Our own engine id is random per start unless given (``engine_id=`` of :class:`TrapReceiver`); give
  one so devices that cache it for informs keep working across restarts.
* A v3 message is accepted only at the security level the user is configured for (or higher): pysnmp's
  notification receiver applies no access control, so without this check anyone knowing a user name
  (and, for traps, the engine id) could inject unauthenticated notifications.
* Community strings never appear in events: v1/v2c events carry the community's *index* in the
  configured list (``communities[0]``), and RFC 3584's ``snmpTrapCommunity.0`` varbind is dropped.

Conversion from SNMP values to :class:`TrapEvent` is pure (:mod:`agent.snmp.trap_events`) and
unit-tested without sockets; only :class:`TrapReceiver` touches pysnmp and the network.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity import engine as pysnmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v1, v2c

from agent.snmp.ber import repair_unsigned
from agent.snmp.credentials import level_rank
from agent.snmp.pysnmp_session import AUTH_PROTOCOLS, PRIV_PROTOCOLS, convert
from agent.snmp.trap_events import TrapEvent, V3User, build_event, engine_id_bytes, v1_varbinds
from agent.snmp.values import SnmpValue

log = logging.getLogger("hatang.agent.traps")


class TrapListenError(Exception):
    """The receiver could not bind its UDP address (taken, needs privileges, no such address)."""


# ------------------------------------------------------------------------------------------- pysnmp side


def _plain(name: Any, value: Any, network_address: Any = None) -> tuple[str, SnmpValue]:
    if network_address is not None and value.tagSet == network_address.tagSet:
        value = value.getComponent()  # SNMPv1 NetworkAddress is a CHOICE around IpAddress
    return ".".join(str(n) for n in name), convert(value)  # the poller's conversion: the same kinds


# pysnmp MIB counters that mean "a datagram was refused" (the discovery step usmStatsUnknownEngineIDs is
# not one: every v3 inform starts with it).
_REJECT_COUNTERS = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    ("__SNMPv2-MIB", "snmpInBadVersions"),
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    ("__SNMPv2-MIB", "snmpInBadCommunityUses"),
    ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"),
    ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
    ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"),
)


class TrapReceiver:
    """Receive SNMP notifications on ``listen`` and call ``on_trap(event)`` for each accepted one.

    ``on_trap`` runs on the event loop, synchronously, once per notification: keep it short (put the
    event in a queue, call ``Scheduler.poll_now``); an exception in it is logged and swallowed.

    Counters (plain attributes/properties, monotonic): ``received`` notifications delivered to
    ``on_trap``; ``rejected`` datagrams refused (unknown community, unknown v3 user or engine id,
    wrong digest, undecryptable, too low a security level, not SNMP, malformed); ``datagrams`` seen.
    """

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
        self._users = list(v3_users)
        self._engine_id = engine_id_bytes(engine_id) if engine_id is not None else None
        self._on_trap = on_trap
        self._required_level: dict[str, int] = {}
        for user in self._users:
            level = level_rank(user.security_level)
            self._required_level[user.username] = min(level, self._required_level.get(user.username, level))
        self.received = 0
        self.datagrams = 0
        self._rejected_here = 0
        self._engine: Any = None  # kept after close() so that the counters stay readable
        self._transport: Any = None
        self._receiver: Any = None
        self._bound: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self._warned: set[tuple[str, ...]] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the real port when ``listen`` asked for port 0)."""
        if self._bound is None:
            raise RuntimeError("TrapReceiver is not started")
        return self._bound

    @property
    def engine_id(self) -> str:
        """Our SNMP engine id in hex (what senders discover for v3 informs)."""
        if self._engine is None:
            raise RuntimeError("TrapReceiver is not started")
        return bytes(self._engine.snmpEngineID.asOctets()).hex()

    @property
    def rejected(self) -> int:
        if self._engine is None:
            return self._rejected_here
        builder = self._engine.get_mib_builder()
        total = self._rejected_here
        for module, name in _REJECT_COUNTERS:
            try:
                (counter,) = builder.import_symbols(module, name)
            except Exception:  # pragma: no cover - a counter missing from a pysnmp version
                continue
            total += int(counter.syntax)
        return total

    def _bind(self) -> socket.socket:
        host, port = self._listen
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
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
        if self._engine is not None or self._closed:
            raise RuntimeError("a TrapReceiver starts once; make a new one")
        sock = self._sock = self._bind()
        try:
            await self._start_engine(sock)
        except BaseException:
            self.close()
            sock.close()
            raise
        name = sock.getsockname()
        self._bound = (str(name[0]), int(name[1]))
        log.info("listening for SNMP traps on udp %s:%d (%d communities, %d v3 users, engine id %s)",
                 self._bound[0], self._bound[1], len(self._communities), len(self._users), self.engine_id)

    async def _start_engine(self, sock: socket.socket) -> None:
        engine_id = rfc1902.OctetString(self._engine_id) if self._engine_id is not None else None
        self._engine = engine = pysnmp_engine.SnmpEngine(snmpEngineID=engine_id)
        config = pysnmp_config
        for index, community in enumerate(self._communities):
            config.add_v1_system(engine, f"communities[{index}]", community)
        seen: set[str] = set()
        for user in self._users:
            auth = AUTH_PROTOCOLS[user.auth_protocol] if user.auth_protocol else config.USM_AUTH_NONE
            priv = PRIV_PROTOCOLS[user.priv_protocol] if user.priv_protocol else config.USM_PRIV_NONE
            keys = {"authProtocol": auth, "authKey": user.auth_password or None,
                    "privProtocol": priv, "privKey": user.priv_password or None}
            if user.username not in seen:  # for informs: keys localised to our engine id
                config.add_v3_user(engine, user.username, **keys)
                seen.add(user.username)
            if user.engine_id is not None:  # for traps: keys localised to the sender's engine id
                config.add_v3_user(engine, user.username, **keys,
                                   securityEngineId=rfc1902.OctetString(engine_id_bytes(user.engine_id)))
        if self._family == socket.AF_INET:
            domain, transport = udp.DOMAIN_NAME, _make_transport(udp.UdpAsyncioTransport, self)
        else:
            domain, transport = udp6.DOMAIN_NAME, _make_transport(udp6.Udp6AsyncioTransport, self)
        self._receiver = receiver = ntfrcv.NotificationReceiver(engine, self._on_notification)
        # Put our security-level gate in front of the receiver (it would acknowledge first, then call us).
        dispatcher = engine.message_dispatcher
        dispatcher.unregister_context_engine_id(b"", receiver.SUPPORTED_PDU_TYPES)
        dispatcher.register_context_engine_id(b"", receiver.SUPPORTED_PDU_TYPES, self._gate)
        config.add_transport(engine, domain, transport)
        self._transport = transport
        # Everything is registered before the socket is handed to the loop: no datagram finds it half-set.
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: transport, sock=sock)

    def close(self) -> None:
        """Stop receiving and release the socket. Safe to call more than once; counters stay readable."""
        if self._closed:
            return
        self._closed = True
        engine, receiver, transport = self._engine, self._receiver, self._transport
        self._receiver = self._transport = None
        try:
            if engine is not None and receiver is not None:
                engine.message_dispatcher.unregister_context_engine_id(b"", receiver.SUPPORTED_PDU_TYPES)
            if engine is not None and engine.transport_dispatcher is not None:
                engine.close_dispatcher()  # unregisters and closes the transport, stops pysnmp's timer task
        finally:
            if transport is not None and transport.transport is not None:
                transport.transport.close()  # stops reading now, closes the socket on the next loop turn
            if self._sock is not None:
                self._sock.close()  # release the port before close() returns

    def _warn_once(self, key: tuple[str, ...], message: str, *args: object) -> None:
        """Log a warning the first time for ``key`` (a sender, a user), then at debug level: a device
        repeating the same mistake every few seconds must not flood the log."""
        if key in self._warned:
            log.debug(message, *args)
            return
        if len(self._warned) < 10_000:
            self._warned.add(key)
        log.warning(message + " (further ones at debug level)", *args)

    # ------------------------------------------------------------------ receiving

    def _datagram(self, dispatch: Callable[[], None]) -> None:
        """Called per datagram by the transport: count it, and never let pysnmp raise into the loop."""
        self.datagrams += 1
        try:
            dispatch()
        except Exception as exc:
            self._rejected_here += 1
            log.debug("SNMP datagram dropped: %r", exc)

    def _gate(self, snmp_engine: Any, mp_model: Any, security_model: Any, security_name: Any,
              security_level: Any, *rest: Any) -> None:
        """Refuse v3 messages below the user's configured security level, before any acknowledgement."""
        if int(mp_model) == 3:
            required = self._required_level.get(str(security_name), 4)
            if int(security_level) < required:
                self._rejected_here += 1
                self._warn_once(("level", str(security_name)),
                                "SNMPv3 notification from user %r refused: security level %d is below the "
                                "configured %d (1 noAuthNoPriv, 2 authNoPriv, 3 authPriv)",
                                str(security_name), int(security_level), required)
                return
        receiver = self._receiver
        if receiver is not None:
            receiver.process_pdu(snmp_engine, mp_model, security_model, security_name, security_level, *rest)

    def _on_notification(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any,
                         context_name: Any, varbinds: Any, cb_ctx: Any) -> None:
        try:
            event = self._event(snmp_engine, varbinds)
        except Exception as exc:
            self._rejected_here += 1
            self._warn_once(("malformed", type(exc).__name__), "malformed SNMP notification dropped: %s", exc)
            return
        self.received += 1
        try:
            self._on_trap(event)
        except Exception:
            log.exception("trap callback failed for %s from %s", event.trap_name, event.source)

    def _event(self, snmp_engine: Any, varbinds: Any) -> TrapEvent:
        context = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        source = str(context["transportAddress"][0])
        mp_model = int(context["messageProcessingModel"])
        pdu = context["pdu"]
        version = {0: "1", 1: "2c", 3: "3"}.get(mp_model, str(mp_model))
        inform = pdu.tagSet == v2c.InformRequestPDU.tagSet
        if mp_model == 0:
            api = v1.apiTrapPDU
            plain = v1_varbinds(
                enterprise=".".join(str(n) for n in api.get_enterprise(pdu)),
                agent_address=".".join(str(b) for b in api.get_agent_address(pdu).asNumbers()),
                generic=int(api.get_generic_trap(pdu)),
                specific=int(api.get_specific_trap(pdu)),
                timestamp=int(api.get_timestamp(pdu)),
                varbinds=[_plain(name, value, v1.NetworkAddress) for name, value in api.get_varbinds(pdu)],
            )
        else:
            plain = [_plain(name, value) for name, value in varbinds]
        return build_event(ts=time.time(), source=source, version=version,
                           security_name=str(context["securityName"]), varbinds=plain, inform=inform)


def _make_transport(base: Any, owner: TrapReceiver) -> Any:
    """A pysnmp asyncio UDP transport whose datagrams go through ``owner._datagram`` (counted, exceptions
    caught) after :func:`agent.snmp.ber.repair_unsigned` (v1/v2c only; v3 bytes are authenticated)."""

    class _Transport(base):  # type: ignore[misc]  # pysnmp is untyped
        def datagram_received(self, datagram: bytes, address: Any) -> None:
            callback = self._callback_function
            if callback is None:
                return
            fixed = repair_unsigned(datagram)  # negative Counter32 etc. from buggy v1/v2c devices
            self.loop.call_soon(owner._datagram, lambda: callback(self, address, fixed))

    return _Transport()


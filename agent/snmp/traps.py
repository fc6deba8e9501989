"""SNMP trap and inform receiver: our own UDP socket, our own BER decoder for v1/v2c, our own USM for v3.

The socket and the v1/v2c fast path are :class:`agent.snmp.trap_listener.TrapListener`, the SNMPv3 side
:class:`agent.snmp.trap_v3.V3Notifications` (USM of :mod:`agent.snmp.usm`); this module puts them
together in :class:`TrapReceiver` and keeps the pysnmp receiver (:class:`PysnmpNotifications`), the
reference the fast path is differential-tested against. It is, with :mod:`agent.snmp.pysnmp_session`,
the only module that imports pysnmp (lazily: only a receiver that routes a version to pysnmp loads it;
the shipped :class:`TrapReceiver` never does).

Everything that leaves it is plain data: a :class:`~agent.snmp.trap_events.TrapEvent` per accepted
notification, handed to a callback; errors are :class:`TrapListenError`.

* SNMPv1 traps, SNMPv2c traps and informs: decoded by :mod:`agent.snmp.trap_decode` (tens of
  microseconds a trap; pysnmp took ~1.5 ms, so a storm of linkDown/linkUp from every access switch
  behind a flapping core link overwhelmed it). Informs are acknowledged (the Response-PDU of RFC 3416
  4.2.7) before the callback runs, as pysnmp did.
* SNMPv3 traps and informs (USM, auth and privacy protocols named as in :mod:`agent.snmp.credentials`):
  only when v3 users are configured, by :class:`agent.snmp.trap_v3.V3Notifications` (RFC 3414 3.2 as
  pysnmp's receiver applies it: see that module), fed the datagrams whose version field says 3; it
  imports ``cryptography`` (through :mod:`agent.snmp.usm_crypto`), never pysnmp. The reference,
  :class:`PysnmpNotifications`, is a pysnmp ``SnmpEngine`` fed the same datagrams (``open_dispatcher()``
  is never called: it would run a loop of its own).
* It runs inside the caller's asyncio loop on a UDP socket we bind ourselves (so a taken or privileged
  port fails at once with a clear :class:`TrapListenError`) with a large receive buffer (a storm
  arrives faster than one loop turn).
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
  A wrong community is counted in ``rejected`` and dropped (an inform is not acknowledged).
* Malformed datagrams are counted in ``rejected`` and logged once per sender (then at debug level).

Conversion from SNMP values to :class:`TrapEvent` is pure (:mod:`agent.snmp.trap_events`).
:class:`PysnmpNotifications` is also the reference the fast path is differential-tested and benchmarked
against (it can take v1/v2c datagrams too: a :class:`TrapReceiver` subclass with empty
``fast_versions`` sends everything there, as before the fast path existed).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from agent.snmp.credentials import level_rank
from agent.snmp.trap_events import TrapEvent, V3User, build_event, engine_id_bytes, v1_varbinds
from agent.snmp.trap_listener import VERSION_NAMES, SlowPath, TrapListener, TrapListenError, WarnOnce
from agent.snmp.unsigned_repair import repair_unsigned
from agent.snmp.values import SnmpValue

__all__ = ["PysnmpNotifications", "TrapListenError", "TrapReceiver"]

log = logging.getLogger("hatang.agent.traps")


class TrapReceiver(TrapListener):
    """Receive SNMP notifications on ``listen`` and call ``on_trap(event)`` for each accepted one (see
    :class:`TrapListener`); SNMPv3 ones too when ``v3_users`` are configured (our own USM).

    ``fast_versions`` says which versions take the fast path; a subclass that leaves one out sends it to
    pysnmp (:class:`PysnmpNotifications`, the reference of the differential tests)."""

    fast_versions: ClassVar[frozenset[int]] = frozenset({0, 1, 3})

    def _make_slow_path(self) -> SlowPath | None:
        if not self._users and {0, 1} <= self.fast_versions:
            return None  # v1/v2c only: no USM, no pysnmp
        if {0, 1, 3} <= self.fast_versions:
            from agent.snmp.trap_v3 import V3Notifications  # cryptography: only with v3 users

            return V3Notifications(self._users, self._engine_id, self._deliver)
        return PysnmpNotifications(self._communities, self._users, self._engine_id, self._family,
                                   self._deliver)


# ------------------------------------------------------------------------------------------- pysnmp side

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


class PysnmpNotifications:
    """A pysnmp ``SnmpEngine`` with a ``NotificationReceiver``, fed datagrams by :meth:`feed` (it reads no
    socket: it answers through the asyncio transport given to :meth:`attach`). Builds a
    :class:`TrapEvent` per accepted notification and hands it to ``deliver``. Imports pysnmp.

    SNMPv3 for :class:`TrapReceiver`; for v1/v2c too, as the reference of the fast path."""

    def __init__(self, communities: Sequence[str], users: Sequence[V3User], engine_id: bytes | None,
                 family: int, deliver: Callable[[TrapEvent], None]) -> None:
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config
        from pysnmp.entity import engine as pysnmp_engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto import rfc1902

        from agent.snmp.pysnmp_session import AUTH_PROTOCOLS, PRIV_PROTOCOLS

        self._deliver = deliver
        self._rejected_here = 0
        self._warn = WarnOnce()
        self._required_level: dict[str, int] = {}
        for user in users:
            level = level_rank(user.security_level)
            self._required_level[user.username] = min(level, self._required_level.get(user.username, level))
        self._engine = engine = pysnmp_engine.SnmpEngine(
            snmpEngineID=rfc1902.OctetString(engine_id) if engine_id is not None else None)
        for index, community in enumerate(communities):
            config.add_v1_system(engine, f"communities[{index}]", community)
        seen: set[str] = set()
        for user in users:
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
        if family == socket.AF_INET:
            domain, transport = udp.DOMAIN_NAME, udp.UdpAsyncioTransport()
        else:
            domain, transport = udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport()
        self._receiver: Any = ntfrcv.NotificationReceiver(engine, self._on_notification)
        # Put our security-level gate in front of the receiver (it would acknowledge first, then call us).
        dispatcher = engine.message_dispatcher
        dispatcher.unregister_context_engine_id(b"", self._receiver.SUPPORTED_PDU_TYPES)
        dispatcher.register_context_engine_id(b"", self._receiver.SUPPORTED_PDU_TYPES, self._gate)
        config.add_transport(engine, domain, transport)
        self._transport: Any = transport

    @property
    def engine_id(self) -> str:
        return bytes(self._engine.snmpEngineID.asOctets()).hex()

    @property
    def rejected(self) -> int:
        builder = self._engine.get_mib_builder()
        total = self._rejected_here
        for module, name in _REJECT_COUNTERS:
            try:
                (counter,) = builder.import_symbols(module, name)
            except Exception:  # pragma: no cover - a counter missing from a pysnmp version
                continue
            total += int(counter.syntax)
        return total

    def attach(self, transport: Any) -> None:
        """Send answers (inform acknowledgements, discovery reports) through this asyncio transport (or
        anything with ``sendto(data, address)``)."""
        self._transport.connection_made(transport)

    def feed(self, datagram: bytes, address: Any) -> None:
        """One datagram, processed now (an acknowledgement is sent and the event delivered before this
        returns). Exceptions from pysnmp are counted as rejections, never raised."""
        callback = self._transport._callback_function
        if callback is None:
            return
        try:
            callback(self._transport, address, repair_unsigned(datagram))  # v1/v2c only; v3 is authenticated
        except Exception as exc:
            self._rejected_here += 1
            log.debug("SNMP datagram dropped by pysnmp: %r", exc)

    def close(self) -> None:
        engine, receiver = self._engine, self._receiver
        self._receiver = None
        if receiver is not None:
            engine.message_dispatcher.unregister_context_engine_id(b"", receiver.SUPPORTED_PDU_TYPES)
        if engine.transport_dispatcher is not None:
            engine.close_dispatcher()  # unregisters the transport, stops pysnmp's timer task

    def _gate(self, snmp_engine: Any, mp_model: Any, security_model: Any, security_name: Any,
              security_level: Any, *rest: Any) -> None:
        """Refuse v3 messages below the user's configured security level, before any acknowledgement."""
        if int(mp_model) == 3:
            required = self._required_level.get(str(security_name), 4)
            if int(security_level) < required:
                self._rejected_here += 1
                self._warn(("level", str(security_name)),
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
            self._warn(("malformed", type(exc).__name__), "malformed SNMP notification dropped: %s", exc)
            return
        self._deliver(event)

    def _event(self, snmp_engine: Any, varbinds: Any) -> TrapEvent:
        from pysnmp.proto.api import v1, v2c

        context = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        source = str(context["transportAddress"][0])
        mp_model = int(context["messageProcessingModel"])
        pdu = context["pdu"]
        version = VERSION_NAMES.get(mp_model, str(mp_model))
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


def _plain(name: Any, value: Any, network_address: Any = None) -> tuple[str, SnmpValue]:
    from agent.snmp.pysnmp_session import convert

    if network_address is not None and value.tagSet == network_address.tagSet:
        value = value.getComponent()  # SNMPv1 NetworkAddress is a CHOICE around IpAddress
    return ".".join(str(n) for n in name), convert(value)  # the poller's conversion: the same kinds

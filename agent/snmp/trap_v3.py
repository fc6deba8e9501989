"""SNMPv3 traps and informs on the agent's own USM (no pysnmp): the v3 side of the trap receiver.

:class:`V3Notifications` is fed the datagrams whose version field says 3 by
:class:`agent.snmp.trap_listener.TrapListener` (it is that class's ``SlowPath``: the same interface as
the pysnmp reference, :class:`agent.snmp.traps.PysnmpNotifications`) and follows RFC 3414 3.2 the way
pysnmp's receiver does, so that both give the same events and refuse the same messages:

* **engine**: a message whose msgAuthoritativeEngineID is ours is an inform (we are authoritative); one
  with another engine ID of 5..32 bytes is a trap (the sender is authoritative: its engine ID must be
  configured for the user, :attr:`V3User.engine_id`); anything else (an empty engine ID) asks for
  discovery: a reportable plaintext request gets a Report usmStatsUnknownEngineIDs carrying our engine
  ID, engineBoots and engineTime (RFC 3414 4); discovery is not a rejection.
* **user**: informs use the first configured entry of the user name with its keys localized to our
  engine ID, traps the entry of (user, sender's engine ID) with keys localized to that engine ID.
  Unknown: usmStatsUnknownUserNames.
* **security level**: an inform must come at exactly the user's level (3.2.5; authNoPriv with boots and
  time 0 passes for an authPriv user: the time-synchronisation step, which then gets
  notInTimeWindow); a trap is refused below the lowest level configured for the user name (the gate
  the pysnmp path puts in front of its receiver) and above the user's own level (it has no key).
* **HMAC** (3.2.6, of the protocol's length) and **privacy** (3.2.8: DES-CBC, AES-CFB; a ScopedPDU
  that does not decrypt or decode is a decryptionError).
* **time window** (3.2.7): for informs, our boots and |our time - its time| <= 150 s, else an
  authenticated Report usmStatsNotInTimeWindows with our values; for traps what pysnmp enforces:
  it stores the sender's boots and time from each authenticated message *before* comparing with them,
  so only engineBoots 2147483647 (the latched maximum) is refused; there is no replay protection for
  traps, on either path.
* **answers**: an inform is acknowledged (a Response-PDU at the request's security level, encrypted when
  the request was, the varbinds echoed) before the event is delivered (one to another engine ID than
  ours is dropped: RFC 3412 7.2.13a); a refused request that is
  reportable and confirmed gets the Report of its counter (unauthenticated, but notInTimeWindow),
  as pysnmp sends them.

Each refused datagram is counted once in :attr:`V3Notifications.rejected` and logged once per reason
and sender (then at debug level); nothing raises out of :meth:`V3Notifications.feed`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.snmp import usm, usm_crypto
from agent.snmp.ber import BerError, encode_oid, expect_tlv, int_tlv, tlv
from agent.snmp.credentials import Credentials, level_rank
from agent.snmp.trap_decode import INFORM, RESPONSE, decode_v2_pdu
from agent.snmp.trap_events import MalformedTrap, TrapEvent, V3User, build_event, engine_id_bytes
from agent.snmp.trap_listener import WarnOnce

__all__ = ["V3Notifications", "default_engine_id"]

log = logging.getLogger("hatang.agent.traps")

STATS_OIDS: dict[str, tuple[int, ...]] = {name: oid for oid, name in usm.REPORTS.items()}
_CONFIRMED = frozenset({0xA0, 0xA1, 0xA3, 0xA5, INFORM})  # RFC 3411 2.8: the PDUs that get an answer
_LEVEL_FLAGS = usm.FLAG_AUTH | usm.FLAG_PRIV
_MAX_BOOTS = 2147483647
TIME_WINDOW = 150  # seconds, RFC 3414 3.2.7a


def default_engine_id() -> bytes:
    """A random engine ID in the format pysnmp makes one (its enterprise 20408, format 5: octets)."""
    return b"\x80\x00\x4f\xb8\x05" + os.urandom(8)


def boot_count() -> int:
    """Our snmpEngineBoots: the seconds from 2023-11-14 to this start. RFC 3414 2.2.2 asks that it grow at
    every restart (a sender's cached boots and time must not stay valid across one); pysnmp keeps a file
    for it, this needs none (a clock set back by more than the downtime breaks it: senders then resync
    through notInTimeWindow Reports, as after any restart)."""
    return max(1, min(int(time.time()) - 1_700_000_000, _MAX_BOOTS - 1))


class Refused(Exception):
    """A message refused: ``reason`` is the RFC 3414 counter name (a key of STATS_OIDS) or another word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _User:
    __slots__ = ("keys", "level", "name", "security")

    def __init__(self, name: str, security: usm.UserSecurity, keys: usm.LocalizedKeys | None) -> None:
        self.name = name
        self.security = security
        self.level = 1 + (security.auth is not None) + (security.priv is not None)
        self.keys = keys  # None until first used (traps: localized lazily to the sender's engine ID)


def _security(user: V3User) -> usm.UserSecurity:
    return usm.check_credentials(Credentials("3", username=user.username, auth_protocol=user.auth_protocol,
                                             auth_password=user.auth_password,
                                             priv_protocol=user.priv_protocol,
                                             priv_password=user.priv_password))


def _unsigned(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


class V3Notifications:
    """SNMPv3 notifications for :class:`agent.snmp.trap_listener.TrapListener`: fed one datagram at a
    time by :meth:`feed`, answering through the transport given to :meth:`attach`, handing a
    :class:`TrapEvent` per accepted notification to ``deliver``."""

    def __init__(self, users: Sequence[V3User], engine_id: bytes | None,
                 deliver: Callable[[TrapEvent], None]) -> None:
        self._engine_id = engine_id if engine_id is not None else default_engine_id()
        self._deliver = deliver
        self._started = time.monotonic()
        self.boots = boot_count()
        self._transport: Any = None
        self._warn = WarnOnce()
        self._rejected = 0
        self.discoveries = 0
        self._stats: dict[str, int] = dict.fromkeys(STATS_OIDS, 0)
        self._salts = usm.Salts(int.from_bytes(os.urandom(8), "big"))
        self._inform_users: dict[bytes, _User] = {}
        self._trap_users: dict[tuple[bytes, bytes], _User] = {}
        self._required_level: dict[str, int] = {}
        for user in users:
            level = level_rank(user.security_level)
            self._required_level[user.username] = min(level, self._required_level.get(user.username, level))
            security = _security(user)
            if security.user not in self._inform_users:
                self._inform_users[security.user] = _User(user.username, security, None)
            if user.engine_id is not None:
                self._trap_users.setdefault((engine_id_bytes(user.engine_id), security.user),
                                            _User(user.username, security, None))

    # ------------------------------------------------------------------ the SlowPath interface

    @property
    def engine_id(self) -> str:
        return self._engine_id.hex()

    @property
    def rejected(self) -> int:
        return self._rejected

    def attach(self, transport: Any) -> None:
        """Send answers (acknowledgements, Reports) through this (anything with ``sendto(data, addr)``)."""
        self._transport = transport

    def close(self) -> None:
        self._transport = None

    def engine_time(self) -> int:
        return min(int(time.monotonic() - self._started), _MAX_BOOTS)

    def set_clock(self, boots: int, engine_time: int) -> None:
        """Set our snmpEngineBoots and snmpEngineTime (tests: the same clock as another engine)."""
        self.boots, self._started = boots, time.monotonic() - engine_time

    def feed(self, datagram: bytes, address: Any) -> None:
        """One SNMPv3 datagram, processed now (the acknowledgement or Report sent and the event delivered
        before this returns); a refusal is counted and logged, never raised."""
        source = str(address[0])
        try:
            event = self._accept(datagram, address)
        except Refused as exc:
            self._refuse(source, exc.reason, str(exc))
            return
        except Exception as exc:  # BerError and anything unforeseen: one datagram never breaks the receiver
            self._refuse(source, "malformed", f"malformed SNMPv3 message: {exc}")
            return
        if event is not None:
            self._deliver(event)

    def _refuse(self, source: str, reason: str, detail: str) -> None:
        self._rejected += 1
        self._warn(("v3", reason, source), "SNMPv3 notification from %s refused: %s", source, detail)

    # ------------------------------------------------------------------ RFC 3414 3.2

    def _accept(self, datagram: bytes, address: Any) -> TrapEvent | None:
        message = usm.decode_message(datagram)
        flags = message.flags
        if flags & usm.FLAG_PRIV and not flags & usm.FLAG_AUTH:
            raise Refused("malformed", "privacy without authentication in msgFlags")
        authoritative = message.engine_id == self._engine_id
        if not authoritative and not 4 < len(message.engine_id) < 33:
            self._discovery(message, address)
            return None
        user = (self._inform_users.get(message.user) if authoritative
                else self._trap_users.get((message.engine_id, message.user)))
        if user is None:
            self._report(message, address, "unknownUserName")
            where = "" if authoritative else f" with engine ID {message.engine_id.hex()}"
            raise Refused("unknownUserName", f"unknown user {message.user!r}{where}")
        level = 1 + bool(flags & usm.FLAG_AUTH) + bool(flags & usm.FLAG_PRIV)
        self._check_level(message, address, user, level, authoritative)
        keys = user.keys
        if keys is None:
            keys = user.keys = usm.localized_keys(user.security, message.engine_id)
        if level > 1:
            self._authenticate(message, address, user, keys, authoritative)
        plaintext = self._decrypt(message, address, user, keys) if message.encrypted else message.data
        try:
            scoped = usm.decode_scoped_pdu(plaintext)
        except BerError:
            if message.encrypted:
                self._report(message, address, "decryptionError")
                raise Refused("decryptionError", f"user {user.name!r}: ScopedPDU does not decrypt") from None
            raise
        try:
            pdu_type, request_id, varbinds, varbind_list = decode_v2_pdu(scoped.pdu)
        except BerError as exc:
            if scoped.pdu[:1] and scoped.pdu[0] not in (INFORM, 0xA7):
                raise Refused("pdu", f"PDU type 0x{scoped.pdu[0]:02x} is not a notification") from None
            raise BerError(str(exc)) from None
        if pdu_type == INFORM and message.engine_id != self._engine_id:  # RFC 3412 7.2.13a, as pysnmp
            raise Refused("engineIDMismatch", f"user {user.name!r}: an inform to engine ID "
                          f"{message.engine_id.hex()}, not ours")
        if pdu_type == INFORM:
            self._acknowledge(message, address, user, keys, scoped, request_id, varbind_list)
        try:
            return build_event(ts=time.time(), source=str(address[0]), version="3", security_name=user.name,
                               varbinds=varbinds, inform=pdu_type == INFORM)
        except MalformedTrap as exc:
            raise BerError(str(exc)) from None

    def _check_level(self, message: usm.Message, address: Any, user: _User, level: int,
                     authoritative: bool) -> None:
        if authoritative:  # 3.2.5: exactly the user's level (but the authNoPriv time-synchronisation step)
            sync_step = (level == 2 and user.level == 3 and not message.boots and not message.engine_time)
            if level != user.level and not sync_step:
                self._report(message, address, "unsupportedSecLevel")
                raise Refused("unsupportedSecLevel", f"user {user.name!r}: security level {level}, "
                              f"configured {user.level} (1 noAuthNoPriv, 2 authNoPriv, 3 authPriv)")
            return
        required = self._required_level.get(user.name, 4)
        if level < required:
            raise Refused("level", f"user {user.name!r}: security level {level} is below the configured "
                          f"{required} (1 noAuthNoPriv, 2 authNoPriv, 3 authPriv)")
        if level > user.level:
            raise Refused("wrongDigest" if user.level == 1 else "decryptionError",
                          f"user {user.name!r}: security level {level}, but the user has no key for it")

    def _authenticate(self, message: usm.Message, address: Any, user: _User, keys: usm.LocalizedKeys,
                      authoritative: bool) -> None:
        security = user.security
        assert security.auth is not None  # level > 1 passed _check_level
        if len(message.mac) != security.mac_length or not usm_crypto.verify(
                usm.AUTH[security.auth][0], keys.auth, message.whole, message.mac_offset, message.mac):
            self._report(message, address, "wrongDigest")
            raise Refused("wrongDigest", f"user {user.name!r}: wrong digest (authentication password?)")
        if authoritative:
            now = self.engine_time()
            if (self.boots == _MAX_BOOTS or message.boots != self.boots
                    or abs(now - message.engine_time) > TIME_WINDOW):
                self._report(message, address, "notInTimeWindow", keys=(security, keys))
                raise Refused("notInTimeWindow", f"user {user.name!r}: boots {message.boots} time "
                              f"{message.engine_time}, ours {self.boots} {now}")
        elif message.boots == _MAX_BOOTS:
            raise Refused("notInTimeWindow", f"user {user.name!r}: engineBoots {_MAX_BOOTS} (latched)")

    def _decrypt(self, message: usm.Message, address: Any, user: _User, keys: usm.LocalizedKeys) -> bytes:
        assert user.security.priv is not None
        try:
            return usm_crypto.decrypt(usm.PRIV[user.security.priv][0], keys.priv, message.boots,
                                      message.engine_time, message.priv_params, message.data)
        except ValueError as exc:
            self._report(message, address, "decryptionError")
            raise Refused("decryptionError", f"user {user.name!r}: {exc}") from None

    # ------------------------------------------------------------------ answers

    def _discovery(self, message: usm.Message, address: Any) -> None:
        if not message.flags & usm.FLAG_REPORTABLE or message.encrypted:
            raise Refused("unknownEngineID", f"engine ID {message.engine_id.hex()!r} is neither ours nor a "
                          "sender's (a trap needs the sender's, an inform discovery first)")
        self.discoveries += 1
        self._report(message, address, "unknownEngineID")

    def _report(self, message: usm.Message, address: Any, name: str,
                keys: tuple[usm.UserSecurity, usm.LocalizedKeys] | None = None) -> None:
        """Send the Report of counter ``name`` (RFC 3412 7.1.3) when the request asks for one."""
        self._stats[name] += 1
        if not message.flags & usm.FLAG_REPORTABLE or self._transport is None:
            return
        request_id, context_name = 0, b""
        if not message.encrypted:
            try:
                scoped = usm.decode_scoped_pdu(message.data)
                if scoped.pdu_type not in _CONFIRMED:
                    return  # 7.1.3b: no Report for a trap
                start, stop = expect_tlv(scoped.pdu, 0, len(scoped.pdu), scoped.pdu_type)
                r_start, r_stop = expect_tlv(scoped.pdu, start, stop, 0x02)
                request_id = int.from_bytes(scoped.pdu[r_start:r_stop], "big", signed=True)
                context_name = scoped.context_name
            except BerError:
                request_id = 0
        varbind = tlv(0x30, encode_oid(STATS_OIDS[name]) + tlv(0x41, _unsigned(self._stats[name])))
        pdu = tlv(usm.REPORT, int_tlv(request_id) + b"\x02\x01\x00\x02\x01\x00" + tlv(0x30, varbind))
        if keys is None:
            security = usm.UserSecurity(message.user, None, b"", None, b"")
            localized = usm.LocalizedKeys(b"", b"")
        else:
            security, localized = keys[0], keys[1]
            security = usm.UserSecurity(security.user, security.auth, security.auth_password, None, b"")
        self._send(address, message.msg_id, security, localized, self._engine_id, self.boots,
                   self.engine_time(), usm.encode_scoped_pdu(self._engine_id, context_name, pdu))

    def _acknowledge(self, message: usm.Message, address: Any, user: _User, keys: usm.LocalizedKeys,
                     scoped: usm.ScopedPdu, request_id: int, varbind_list: bytes) -> None:
        """The Response-PDU of an inform (RFC 3416 4.2.7) at the request's security level."""
        if self._transport is None:
            return
        pdu = tlv(RESPONSE, int_tlv(request_id) + b"\x02\x01\x00\x02\x01\x00" + varbind_list)
        security = user.security
        if not message.flags & usm.FLAG_PRIV:
            security = usm.UserSecurity(security.user, security.auth if message.flags & usm.FLAG_AUTH
                                        else None, security.auth_password, None, b"")
        self._send(address, message.msg_id, security, keys, self._engine_id, self.boots, self.engine_time(),
                   usm.encode_scoped_pdu(scoped.context_engine_id, scoped.context_name, pdu))

    def _send(self, address: Any, msg_id: int, security: usm.UserSecurity, keys: usm.LocalizedKeys,
              engine_id: bytes, boots: int, engine_time: int, scoped: bytes) -> None:
        salt = b""
        if security.priv:
            cipher = usm.PRIV[security.priv][0]
            salt = self._salts.next(cipher, boots)
            scoped = tlv(0x04, usm_crypto.encrypt(cipher, keys.priv, boots, engine_time, salt, scoped))
        flags = security.flags & _LEVEL_FLAGS  # an answer is never reportable
        datagram, offset = usm.encode_message(msg_id, flags, engine_id, boots, engine_time, security.user,
                                              security.mac_length, salt, scoped)
        if security.auth:
            datagram = usm_crypto.sign(usm.AUTH[security.auth][0], keys.auth, security.mac_length, datagram,
                                       offset)
        try:
            self._transport.sendto(datagram, address)
        except OSError as exc:
            log.debug("cannot answer %s: %s", address[0], exc)

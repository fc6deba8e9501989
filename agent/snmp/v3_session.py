"""SNMPv3 on our own UDP socket: the agent's SNMPv3 fast path (USM in :mod:`agent.snmp.usm`, ciphers in
:mod:`agent.snmp.usm_crypto`, values by :mod:`agent.snmp.ber`'s decoder; no pysnmp).

:class:`V3Session` is the :class:`agent.snmp.session.Session` of one SNMPv3 device over the shared
:class:`V3Transport` (one socket for every SNMPv3 device of the process, apart from the v1/v2c one).

A session talks to its device as RFC 3414 4 describes:

* **discovery**: before the first request (and after a Report usmStatsUnknownEngineIDs, i.e. a
  replaced device) it sends the engine-ID probe of :func:`agent.snmp.v3_discovery.discovery_request`; the
  Report answering it gives the device's engine ID (the user's keys are localized to it, cached per
  engine ID) and its engineBoots/engineTime;
* **time window**: each request carries the device's boots and its time as estimated from the last
  authenticated message (plus the seconds since). An authenticated Report usmStatsNotInTimeWindows
  (the device restarted: boots went up, or our estimate was off by more than 150 s) carries the right
  values: the session takes them and sends the request again, once. Authenticated responses move the
  estimate forward (RFC 3414 3.2 7b);
* **reports**: any other Report ends the request with the :class:`agent.snmp.errors.SnmpError` the
  pysnmp session gives for it (:func:`agent.snmp.errors.v3_error`: unknownUserName, wrongDigest,
  decryptionError and unsupportedSecLevel are :class:`~agent.snmp.errors.SnmpAuthError`);
* **answers**: a response counts when it comes from the device's address with the request's msgID,
  the request's security level, user and engine ID, a correct HMAC, a ScopedPDU that decrypts and
  decodes, and the request's request-id; anything else is dropped and counted (a wrong privacy
  password makes net-snmp drop our request: the request then times out, as on the pysnmp path, and
  the message says why). A request is retransmitted with the same bytes after each timeout.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.snmp import usm, usm_crypto
from agent.snmp.ber import GET, GET_BULK, GET_NEXT, BerError, Response, tlv
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpError, timeout_error, v3_error
from agent.snmp.udp_requests import Address, RequestTimeout, UdpRequests
from agent.snmp.v3_discovery import discovery_request
from agent.snmp.values import OID, oid_text

log = logging.getLogger("hatang.agent.snmp")

@dataclass(frozen=True, slots=True)
class V3Report:
    """A Report-PDU answering a request (RFC 3412 7.2.11)."""

    name: str  # RFC 3414 name of its counter ("" for another one)
    oid: OID
    authenticated: bool
    engine_id: bytes
    boots: int
    engine_time: int


V3Answer = Response | V3Report
Accept = Callable[[usm.Message], V3Answer | None]  # None: not a usable answer to this request


class V3Transport(UdpRequests[usm.Message, V3Answer]):
    """The one UDP socket of every SNMPv3 session (agent/snmp/udp_requests.py): requests by msgID; what
    answers one is for the request's ``accept`` to say (user, engine, digest, request-id)."""

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender = self.sender(addr)
        try:
            message = usm.decode_message(data)
        except BerError as exc:
            self.dropped_malformed(sender, exc)
            return
        self.deliver(message.msg_id, sender, message)

    def message_id(self) -> int:
        return self.next_id()

    async def request(self, address: Address, msg_id: int, datagram: bytes, accept: Accept, timeout: float,
                      tries: int) -> V3Answer:
        """Send ``datagram`` (which carries ``msg_id``) up to ``tries`` times; the first answer that
        ``accept`` takes, or :class:`RequestTimeout`. Cancelling the caller withdraws the request."""
        return await self.send_request(address, msg_id, datagram, accept, timeout, tries)


_REPORT_DETAILS = {"unknownEngineID": "Unknown SNMP engine ID encountered"}  # pysnmp's words
_LEVEL = usm.FLAG_AUTH | usm.FLAG_PRIV


class V3Session:
    """One SNMPv3 device on the shared :class:`V3Transport` (a :class:`agent.snmp.session.Session`)."""

    def __init__(self, transport: V3Transport, creds: Credentials, host: str, port: int, address: Address,
                 *, timeout: float, retries: int) -> None:
        self.creds = creds
        self.host = host
        self.port = port
        self._security = usm.check_credentials(creds)
        self._transport = transport
        self._address = address
        self._timeout = timeout
        self._tries = retries + 1
        self._context = creds.context.encode()
        self._salts = usm.Salts(int.from_bytes(os.urandom(8), "big"))
        self.engine_id: bytes | None = None  # the device's, once discovered
        self._keys = usm.LocalizedKeys(b"", b"")
        self._boots = 0
        self._engine_time = 0
        self._synced_at = time.monotonic()  # when _engine_time was the device's time

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    async def get(self, oids: Sequence[OID]) -> Response:
        return await self._request(GET, oids, 0)

    async def get_next(self, oid: OID) -> Response:
        return await self._request(GET_NEXT, (oid,), 0)

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Response:
        return await self._request(GET_BULK, oids, max_repetitions)

    async def _request(self, pdu: int, oids: Sequence[OID], max_repetitions: int) -> Response:
        resynced = rediscovered = False
        while True:
            if self.engine_id is None:
                await self._discover()
            answer = await self._exchange(pdu, oids, max_repetitions)
            if isinstance(answer, Response):
                return answer
            if answer.name == "notInTimeWindow" and answer.authenticated and not resynced:
                resynced = True  # the device restarted, or our clock estimate drifted: take its time
                self._set_time(answer.boots, answer.engine_time)
                continue
            if answer.name == "unknownEngineID" and not rediscovered:
                rediscovered = True  # another device (a replacement) behind the same address
                self.engine_id = None
                continue
            detail = _REPORT_DETAILS.get(answer.name, oid_text(answer.oid))
            raise v3_error(self._where(), self.creds, answer.name, detail)

    # ---------------------------------------------------------------- one exchange

    async def _send(self, msg_id: int, datagram: bytes, accept: Accept) -> V3Answer:
        received = self._transport.received
        before = received[self._address]
        try:
            return await self._transport.request(self._address, msg_id, datagram, accept, self._timeout,
                                                 self._tries)
        except RequestTimeout:
            raise timeout_error(self._where(), self.creds, self._timeout, self._tries,
                                received[self._address] - before) from None

    async def _exchange(self, pdu: int, oids: Sequence[OID], max_repetitions: int) -> V3Answer:
        security = self._security
        msg_id = self._transport.message_id()
        try:
            encoded = usm.encode_pdu(pdu, msg_id, oids, max_repetitions)
        except ValueError as exc:  # an OID that BER cannot carry: like the other sessions
            raise SnmpError(f"{self._where()}: {exc}") from None
        boots = self._boots
        salt = self._salts.next(usm.PRIV[security.priv][0], boots) if security.priv else b""
        datagram = encode_request(security, self._keys, msg_id, self.engine_id or b"", boots, self._now(),
                                  salt, self._context, encoded)

        def accept(message: usm.Message) -> V3Answer | None:
            return self._accept(message, msg_id)

        return await self._send(msg_id, datagram, accept)

    def _accept(self, message: usm.Message, request_id: int) -> V3Answer | None:
        """The answer ``message`` gives to the request ``request_id`` (None: it gives none)."""
        opened = open_message(self._security, self._keys, self.engine_id or b"", message)
        if opened is None:
            return None
        scoped_type, pdu = opened
        authenticated = bool(message.flags & usm.FLAG_AUTH)
        if scoped_type == usm.REPORT:
            oid = pdu.varbinds[0][0] if pdu.varbinds else ()
            return V3Report(usm.report_name(pdu), oid, authenticated, message.engine_id, message.boots,
                          message.engine_time)
        if message.flags & _LEVEL != self._security.flags & _LEVEL or pdu.request_id != request_id:
            return None
        self._advance_time(message.boots, message.engine_time)
        return pdu

    # ---------------------------------------------------------------- discovery and time

    async def _discover(self) -> None:
        msg_id = self._transport.message_id()

        def accept(message: usm.Message) -> V3Answer | None:
            if message.flags & _LEVEL or not message.engine_id:
                return None
            opened = open_message(self._security, self._keys, b"", message)
            if opened is None or opened[0] != usm.REPORT:
                return None
            pdu = opened[1]
            oid = pdu.varbinds[0][0] if pdu.varbinds else ()
            return V3Report(usm.report_name(pdu), oid, False, message.engine_id, message.boots,
                          message.engine_time)

        answer = await self._send(msg_id, discovery_request(msg_id), accept)
        assert isinstance(answer, V3Report)
        self.engine_id = answer.engine_id
        self._keys = usm.localized_keys(self._security, answer.engine_id)
        self._set_time(answer.boots, answer.engine_time)
        log.debug("%s: SNMPv3 engine ID %s, boots %d, time %d", self._where(), answer.engine_id.hex(),
                  answer.boots, answer.engine_time)

    def _now(self) -> int:
        return min(self._engine_time + int(time.monotonic() - self._synced_at), 0x7FFFFFFF)

    def _set_time(self, boots: int, engine_time: int) -> None:
        self._boots, self._engine_time, self._synced_at = boots, engine_time, time.monotonic()

    def _advance_time(self, boots: int, engine_time: int) -> None:
        """RFC 3414 3.2 7b: an authenticated message from later than we thought moves our estimate."""
        if boots > self._boots or (boots == self._boots and engine_time > self._now()):
            self._set_time(boots, engine_time)


# ------------------------------------------------------------------------------ one message each way


def encode_request(security: usm.UserSecurity, keys: usm.LocalizedKeys, msg_id: int, engine_id: bytes,
                   boots: int, engine_time: int, salt: bytes, context: bytes, pdu: bytes) -> bytes:
    """A request carrying ``pdu`` (from :func:`agent.snmp.usm.encode_pdu`), encrypted with ``salt`` and
    signed as the user's security level asks."""
    scoped = usm.encode_scoped_pdu(engine_id, context, pdu)
    if security.priv:
        cipher = usm.PRIV[security.priv][0]
        scoped = tlv(0x04, usm_crypto.encrypt(cipher, keys.priv, boots, engine_time, salt, scoped))
    datagram, offset = usm.encode_message(msg_id, security.flags, engine_id, boots, engine_time,
                                          security.user, security.mac_length, salt if security.priv else b"",
                                          scoped)
    if security.auth:
        datagram = usm_crypto.sign(usm.AUTH[security.auth][0], keys.auth, security.mac_length, datagram,
                                   offset)
    return datagram


def open_message(security: usm.UserSecurity, keys: usm.LocalizedKeys, engine_id: bytes,
                 message: usm.Message) -> tuple[int, Response] | None:
    """(the PDU's type, the PDU) of a message from the device with ``engine_id``, or None when it does
    not authenticate (user, engine ID, HMAC), decrypt or decode. Unauthenticated messages pass (Reports
    of unknown users, wrong digests ... are sent without authentication): the caller checks the level."""
    authenticated = bool(message.flags & usm.FLAG_AUTH)
    if authenticated and (
            not security.auth or message.engine_id != engine_id or message.user != security.user
            or not usm_crypto.verify(usm.AUTH[security.auth][0], keys.auth, message.whole,
                                     message.mac_offset, message.mac)):
        return None
    plaintext = message.data
    if message.encrypted:
        if not authenticated or not security.priv:
            return None
        try:
            plaintext = usm_crypto.decrypt(usm.PRIV[security.priv][0], keys.priv, message.boots,
                                           message.engine_time, message.priv_params, message.data)
        except ValueError:
            return None
    try:
        scoped = usm.decode_scoped_pdu(plaintext)
        return scoped.pdu_type, usm.decode_pdu(scoped.pdu)
    except BerError:
        return None

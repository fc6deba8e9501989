"""SNMPv3 messages and the User-based Security Model as bytes (RFC 3412, 3414, 3826, 7860). Pure: no I/O,
no ``cryptography`` (the ciphers and digests are :mod:`agent.snmp.usm_crypto`'s), no pysnmp.

What is here:

* the protocol names of :mod:`agent.snmp.credentials` and what each means on the wire
  (:data:`AUTH`, :data:`PRIV`), and the check of a user's credentials (:func:`check_credentials`, with
  the messages the pysnmp path gives for the same mistakes);
* keys: password to key (RFC 3414 A.2: the password repeated to 1 MB and hashed; slow, so cached per
  password), localization with the authoritative engine ID (A.2, cached per engine ID), and the
  extension of a privacy key that is shorter than the cipher needs: AES192/AES256 (net-snmp's names)
  with the Blumenthal draft (``Kul || H(Kul)``), AES192C/AES256C with the Reeder draft (the password
  algorithm run again on the short key), as :mod:`agent.snmp.pysnmp_session` maps them for pysnmp;
* messages: a request's ScopedPDU and whole SNMPv3 message with its USM security parameters (the
  offset of the authentication parameters returned, for the signature), a message parsed back
  (:func:`decode_message`), its ScopedPDU (:func:`decode_scoped_pdu`) and its PDU read by the v1/v2c
  decoder of :mod:`agent.snmp.ber` (:func:`decode_pdu`: the same values, leniencies and errors);
* Reports: the usmStats/snmp counters a Report carries, by the RFC 3414 names that
  :func:`agent.snmp.errors.v3_error` words its messages by (:data:`REPORTS`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from agent.snmp.ber import GET_BULK, BerError, Response, decode_response, encode_oid, int_tlv, tlv, tlv_header
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpError
from agent.snmp.values import OID

# our auth name -> (hashlib name, length of msgAuthenticationParameters: RFC 3414 6/7, RFC 7860 Table 1)
AUTH: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA224": ("sha224", 16),
    "SHA256": ("sha256", 24),
    "SHA384": ("sha384", 32),
    "SHA512": ("sha512", 48),
}
# our priv name -> (cipher, localized key bytes needed, key extension: "blumenthal" or "reeder")
PRIV: dict[str, tuple[str, int, str]] = {
    "DES": ("des", 16, "blumenthal"),  # 8 bytes of key, 8 of pre-IV: every hash gives >= 16
    "AES": ("aes", 16, "blumenthal"),
    "AES128": ("aes", 16, "blumenthal"),
    "AES192": ("aes", 24, "blumenthal"),
    "AES256": ("aes", 32, "blumenthal"),
    "AES192C": ("aes", 24, "reeder"),
    "AES256C": ("aes", 32, "reeder"),
}

FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
USM = 3  # msgSecurityModel
MAX_SIZE = 65507  # msgMaxSize we announce (the largest UDP payload over IPv4, as pysnmp)
REPORT = 0xA8

# Report varbind OIDs (RFC 3414 usmStats, RFC 3412 snmpUnknownPDUHandlers etc.) -> RFC 3414 name
_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
REPORTS: dict[OID, str] = {
    (*_USM_STATS, 1, 0): "unsupportedSecLevel",
    (*_USM_STATS, 2, 0): "notInTimeWindow",
    (*_USM_STATS, 3, 0): "unknownUserName",
    (*_USM_STATS, 4, 0): "unknownEngineID",
    (*_USM_STATS, 5, 0): "wrongDigest",
    (*_USM_STATS, 6, 0): "decryptionError",
}


# --------------------------------------------------------------------------------------------------
# credentials and keys


@dataclass(frozen=True, slots=True)
class UserSecurity:
    """What a :class:`Credentials` means for USM: the user name and, per level, hash and cipher."""

    user: bytes
    auth: str | None  # our name (a key of AUTH), None: noAuthNoPriv
    auth_password: bytes
    priv: str | None  # our name (a key of PRIV), None: no privacy
    priv_password: bytes

    @property
    def flags(self) -> int:
        """msgFlags of a request (reportable, and the security level)."""
        return FLAG_REPORTABLE | (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)

    @property
    def mac_length(self) -> int:
        return AUTH[self.auth][1] if self.auth else 0


def check_credentials(creds: Credentials) -> UserSecurity:
    """The USM view of SNMPv3 credentials; :class:`SnmpError` (the pysnmp path's words) if unusable.

    Like pysnmp, a protocol without a password is not used (the config refuses that combination)."""
    if not creds.username:
        raise SnmpError("SNMPv3 needs a user name")
    if creds.auth_protocol and creds.auth_protocol not in AUTH:
        raise SnmpError(f"unknown SNMPv3 authentication protocol {creds.auth_protocol!r}; "
                        f"known: {', '.join(AUTH)}")
    if creds.priv_protocol and creds.priv_protocol not in PRIV:
        raise SnmpError(f"unknown SNMPv3 privacy protocol {creds.priv_protocol!r}; "
                        f"known: {', '.join(PRIV)}")
    if creds.priv_protocol and not creds.auth_protocol:
        raise SnmpError("SNMPv3 privacy needs an authentication protocol too")
    auth = creds.auth_protocol if creds.auth_protocol and creds.auth_password else None
    priv = creds.priv_protocol if auth and creds.priv_protocol and creds.priv_password else None
    return UserSecurity(creds.username.encode(), auth, creds.auth_password.encode(), priv,
                        creds.priv_password.encode())


_ONE_MEGABYTE = 1_048_576


@functools.lru_cache(maxsize=128)
def password_key(hash_name: str, password: bytes) -> bytes:
    """RFC 3414 A.2 (A.2.1 MD5, A.2.2 SHA; RFC 7860 the same with SHA-2): the digest of the password
    repeated to 1 MB. Costs a few ms: cached."""
    if not password:
        raise ValueError("empty SNMPv3 password")
    repeated = password * (_ONE_MEGABYTE // len(password) + 1)
    return hashlib.new(hash_name, repeated[:_ONE_MEGABYTE]).digest()


def localize(hash_name: str, key: bytes, engine_id: bytes) -> bytes:
    """RFC 3414 A.2: a key localized to an authoritative engine, H(key || engineID || key)."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


def extend_key(hash_name: str, key: bytes, engine_id: bytes, size: int, extension: str) -> bytes:
    """A localized privacy key lengthened to ``size`` bytes (or cut): Blumenthal draft 3.1.2.1
    (append H(key so far)), or Reeder draft 2.1 (append the password algorithm run on the key so far
    and localized again)."""
    while len(key) < size:
        if extension == "reeder":
            key += localize(hash_name, password_key(hash_name, key), engine_id)
        else:
            key += hashlib.new(hash_name, key).digest()
    return key[:size]


@dataclass(frozen=True, slots=True)
class LocalizedKeys:
    auth: bytes  # b"" without authentication
    priv: bytes  # b"" without privacy


@functools.lru_cache(maxsize=256)
def localized_keys(security: UserSecurity, engine_id: bytes) -> LocalizedKeys:
    """The user's keys localized to ``engine_id`` (cached: a device keeps its engine ID)."""
    if not security.auth:
        return LocalizedKeys(b"", b"")
    hash_name = AUTH[security.auth][0]
    auth = localize(hash_name, password_key(hash_name, security.auth_password), engine_id)
    if not security.priv:
        return LocalizedKeys(auth, b"")
    _, size, extension = PRIV[security.priv]
    priv = localize(hash_name, password_key(hash_name, security.priv_password), engine_id)
    return LocalizedKeys(auth, extend_key(hash_name, priv, engine_id, size, extension))


class Salts:
    """The msgPrivacyParameters of outgoing messages: DES boots || a 32-bit counter (RFC 3414 8.1.1.1),
    AES a 64-bit counter (RFC 3826 3.1.2.1); both start at a random value."""

    def __init__(self, seed: int) -> None:
        self._counter = seed & 0xFFFF_FFFF_FFFF_FFFF

    def next(self, cipher: str, boots: int) -> bytes:
        self._counter = (self._counter + 1) & 0xFFFF_FFFF_FFFF_FFFF
        if cipher == "des":
            return boots.to_bytes(4, "big") + (self._counter & 0xFFFF_FFFF).to_bytes(4, "big")
        return self._counter.to_bytes(8, "big")


# --------------------------------------------------------------------------------------------------
# encoding (requests)

_NULL_TLV = b"\x05\x00"


def encode_pdu(pdu: int, request_id: int, oids: Sequence[OID], max_repetitions: int = 0) -> bytes:
    """A GET / GETNEXT / GETBULK PDU (non-repeaters 0)."""
    varbinds = b"".join(tlv(0x30, encode_oid(o) + _NULL_TLV) for o in oids)
    return tlv(pdu, int_tlv(request_id) + int_tlv(0) + int_tlv(max_repetitions if pdu == GET_BULK else 0)
               + tlv(0x30, varbinds))


def encode_scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return tlv(0x30, tlv(0x04, context_engine_id) + tlv(0x04, context_name) + pdu)


def encode_message(msg_id: int, flags: int, engine_id: bytes, boots: int, engine_time: int, user: bytes,
                   mac_length: int, priv_params: bytes, data: bytes) -> tuple[bytes, int]:
    """An SNMPv3 message and the offset of its msgAuthenticationParameters (``mac_length`` zero bytes,
    to be replaced by the signature). ``data``: the ScopedPDU, or an encryptedPDU as an OCTET STRING."""
    before_mac = tlv(0x04, engine_id) + int_tlv(boots) + int_tlv(engine_time) + tlv(0x04, user)
    mac = tlv(0x04, bytes(mac_length))
    content = before_mac + mac + tlv(0x04, priv_params)
    usm = tlv(0x30, content)
    params = tlv(0x04, usm)
    head = int_tlv(3) + tlv(0x30, int_tlv(msg_id) + int_tlv(MAX_SIZE) + tlv(0x04, bytes((flags,)))
                            + int_tlv(USM))
    message = tlv(0x30, head + params + data)
    params_at = len(message) - len(data) - len(params)
    content_at = params_at + (len(params) - len(usm)) + (len(usm) - len(content))
    return message, content_at + len(before_mac) + (len(mac) - mac_length)


# --------------------------------------------------------------------------------------------------
# decoding (responses and reports)


@dataclass(frozen=True, slots=True)
class Message:
    """An SNMPv3 message with USM security parameters, as received (nothing checked but the form)."""

    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    engine_time: int
    user: bytes
    mac: bytes  # msgAuthenticationParameters
    mac_offset: int  # where they are in the message
    priv_params: bytes
    data: bytes  # the plaintext ScopedPDU (a whole TLV) or the encryptedPDU's content
    encrypted: bool
    whole: bytes  # the message as received (what its HMAC covers)


def _content(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = tlv_header(data, pos, end)
    if found != tag:
        raise BerError(f"tag 0x{found:02x} where 0x{tag:02x} was expected")
    return start, stop


def _integer(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _content(data, pos, end, 0x02)
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _octets(data: bytes, pos: int, end: int) -> tuple[bytes, int, int]:
    start, stop = _content(data, pos, end, 0x04)
    return data[start:stop], start, stop


def decode_message(data: bytes) -> Message:
    """An SNMPv3 message using USM; :class:`BerError` for anything else or anything malformed."""
    end = len(data)
    pos, stop = _content(data, 0, end, 0x30)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _integer(data, pos, end)
    if version != 3:
        raise BerError(f"not an SNMPv3 message (version {version})")
    pos, header_end = _content(data, pos, end, 0x30)
    msg_id, pos = _integer(data, pos, header_end)
    _, pos = _integer(data, pos, header_end)  # msgMaxSize
    flags, _, pos = _octets(data, pos, header_end)
    model, pos = _integer(data, pos, header_end)
    if len(flags) != 1 or model != USM or pos != header_end:
        raise BerError("bad msgGlobalData")
    pos, params_end = _content(data, header_end, end, 0x04)
    pos, usm_end = _content(data, pos, params_end, 0x30)
    engine_id, _, pos = _octets(data, pos, usm_end)
    boots, pos = _integer(data, pos, usm_end)
    engine_time, pos = _integer(data, pos, usm_end)
    user, _, pos = _octets(data, pos, usm_end)
    mac, mac_offset, pos = _octets(data, pos, usm_end)
    priv_params, _, pos = _octets(data, pos, usm_end)
    if pos != usm_end or usm_end != params_end:
        raise BerError("bad msgSecurityParameters")
    encrypted = bool(flags[0] & FLAG_PRIV)
    tag, start, stop = tlv_header(data, params_end, end)
    if stop != end:
        raise BerError("trailing bytes after the ScopedPduData")
    if tag != (0x04 if encrypted else 0x30):
        raise BerError("ScopedPduData does not match msgFlags")
    return Message(msg_id, flags[0], engine_id, boots, engine_time, user, mac, mac_offset, priv_params,
                   data[start:stop] if encrypted else data[params_end:stop], encrypted, data)


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    context_engine_id: bytes
    context_name: bytes
    pdu_type: int  # the PDU's tag: 0xA2 Response, 0xA8 Report ...
    pdu: bytes  # the whole PDU TLV


def decode_scoped_pdu(plaintext: bytes) -> ScopedPdu:
    """A ScopedPDU (decrypted: anything after it, DES padding, is ignored)."""
    end = len(plaintext)
    pos, stop = _content(plaintext, 0, end, 0x30)
    context_engine_id, _, pos = _octets(plaintext, pos, stop)
    context_name, _, pos = _octets(plaintext, pos, stop)
    tag, _, pdu_end = tlv_header(plaintext, pos, stop)
    if pdu_end != stop:
        raise BerError("trailing bytes after the PDU")
    return ScopedPdu(context_engine_id, context_name, tag, plaintext[pos:pdu_end])


_V2C_HEAD = b"\x02\x01\x01\x04\x00"  # version 2c, empty community: the wrapper decode_response reads


def decode_pdu(pdu: bytes) -> Response:
    """A Response-PDU or Report-PDU read by :func:`agent.snmp.ber.decode_response` (its values and
    leniencies); ``version`` and ``community`` of the result mean nothing."""
    if pdu[:1] not in (b"\xa2", b"\xa8"):
        raise BerError(f"not a Response or Report PDU (tag 0x{pdu[0] if pdu else 0:02x})")
    return decode_response(tlv(0x30, _V2C_HEAD + b"\xa2" + pdu[1:]))


def report_name(report: Response) -> str:
    """The RFC 3414 name of the counter a Report carries ("" for another counter)."""
    return REPORTS.get(report.varbinds[0][0], "") if report.varbinds else ""

"""Minimal, dependency-free BER codec for SNMP v1/v2c messages.

Decodes requests (Get, GetNext, GetBulk, and any other v1/v2c PDU with the common four-field layout) and
encodes responses and SNMPv2-Trap PDUs. OIDs are ``tuple[int, ...]``; typed values are :class:`Value`.
Malformed input raises :class:`BerError` (a ``ValueError``) and nothing else.

The encoder does not range-check a :class:`Value` built directly (so tests can forge a buggy agent that
sends a negative Counter32); the helper constructors (:func:`counter32` ...) do check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

OID = tuple[int, ...]

# Universal and SNMP application tags, then PDU tags.
INTEGER, OCTET_STRING, NULL, OBJECT_IDENTIFIER, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET_REQUEST, GET_NEXT_REQUEST, RESPONSE, SET_REQUEST = 0xA0, 0xA1, 0xA2, 0xA3
GET_BULK_REQUEST, INFORM_REQUEST, SNMPV2_TRAP, REPORT = 0xA5, 0xA6, 0xA7, 0xA8
PDU_TAGS = frozenset({GET_REQUEST, GET_NEXT_REQUEST, RESPONSE, SET_REQUEST, GET_BULK_REQUEST,
                      INFORM_REQUEST, SNMPV2_TRAP, REPORT})

VERSION_1, VERSION_2C = 0, 1

_INT_TAGS = frozenset({INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64})
_BYTES_TAGS = frozenset({OCTET_STRING, IP_ADDRESS, OPAQUE})
_EMPTY_TAGS = frozenset({NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
_UNSIGNED_MAX = {COUNTER32: 2**32 - 1, GAUGE32: 2**32 - 1, TIMETICKS: 2**32 - 1, COUNTER64: 2**64 - 1}
_MAX_INT_OCTETS = 9  # Counter64 max is 00 FF*8
_MAX_SUBIDS = 128
_MAX_SUBID = 2**32 - 1


class BerError(ValueError):
    """Malformed or unsupported BER data (or an unencodable value)."""


class Value(NamedTuple):
    """A typed SNMP value: ``tag`` is the BER tag, ``value`` an int, bytes, OID or None."""

    tag: int
    value: int | bytes | tuple[int, ...] | None


VarBind = tuple[OID, Value]


def _ranged(tag: int, n: int, lo: int, hi: int) -> Value:
    if not lo <= n <= hi:
        raise BerError(f"value {n} out of range [{lo}, {hi}] for tag 0x{tag:02x}")
    return Value(tag, n)


def integer(n: int) -> Value:
    return _ranged(INTEGER, n, -(2**31), 2**31 - 1)


def counter32(n: int) -> Value:
    return _ranged(COUNTER32, n, 0, 2**32 - 1)


def gauge32(n: int) -> Value:
    return _ranged(GAUGE32, n, 0, 2**32 - 1)


def timeticks(n: int) -> Value:
    return _ranged(TIMETICKS, n, 0, 2**32 - 1)


def counter64(n: int) -> Value:
    return _ranged(COUNTER64, n, 0, 2**64 - 1)


def octets(b: bytes | str) -> Value:
    return Value(OCTET_STRING, b.encode() if isinstance(b, str) else bytes(b))


def ip_address(b: bytes) -> Value:
    if len(b) != 4:
        raise BerError("IpAddress needs 4 bytes")
    return Value(IP_ADDRESS, bytes(b))


def opaque(b: bytes) -> Value:
    return Value(OPAQUE, bytes(b))


def oid(t: Iterable[int]) -> Value:
    o = tuple(t)
    _encode_oid_content(o)  # validates
    return Value(OBJECT_IDENTIFIER, o)


NULL_VALUE = Value(NULL, None)
NO_SUCH_OBJECT_VALUE = Value(NO_SUCH_OBJECT, None)
NO_SUCH_INSTANCE_VALUE = Value(NO_SUCH_INSTANCE, None)
END_OF_MIB_VIEW_VALUE = Value(END_OF_MIB_VIEW, None)


@dataclass(frozen=True, slots=True)
class Pdu:
    """A v1/v2c PDU. For GetBulk, error_status/error_index carry non-repeaters/max-repetitions."""

    tag: int
    request_id: int
    error_status: int = 0
    error_index: int = 0
    varbinds: tuple[VarBind, ...] = ()

    @property
    def non_repeaters(self) -> int:
        return self.error_status

    @property
    def max_repetitions(self) -> int:
        return self.error_index


@dataclass(frozen=True, slots=True)
class Message:
    version: int
    community: bytes
    pdu: Pdu


# ---------------------------------------------------------------- encoding


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + _length(n) + content


def _int_content(n: int) -> bytes:
    return n.to_bytes(((n if n >= 0 else ~n).bit_length() + 8) // 8, "big", signed=True)


@lru_cache(maxsize=65536)
def _encode_oid_content(o: OID) -> bytes:
    if len(o) < 2 or len(o) > _MAX_SUBIDS:
        raise BerError(f"OID must have 2..{_MAX_SUBIDS} sub-identifiers: {o}")
    first, second = o[0], o[1]
    if first not in (0, 1, 2) or second < 0 or (first < 2 and second >= 40):
        raise BerError(f"invalid first arcs in OID {o}")
    out = bytearray()
    for sub in (first * 40 + second, *o[2:]):
        if sub < 0x80:
            if sub < 0:
                raise BerError(f"negative sub-identifier in OID {o}")
            out.append(sub)
            continue
        if sub > _MAX_SUBID:
            raise BerError(f"sub-identifier {sub} > 2**32-1 in OID {o}")
        chunk = bytearray((sub & 0x7F,))
        sub >>= 7
        while sub:
            chunk.append(0x80 | (sub & 0x7F))
            sub >>= 7
        chunk.reverse()
        out += chunk
    return bytes(out)


def encode_oid(o: OID) -> bytes:
    """Full TLV of an OBJECT IDENTIFIER."""
    return _tlv(OBJECT_IDENTIFIER, _encode_oid_content(o))


def encode_value(v: Value) -> bytes:
    tag, val = v
    if tag in _INT_TAGS and isinstance(val, int):
        return _tlv(tag, _int_content(val))
    if tag in _BYTES_TAGS and isinstance(val, bytes | bytearray):
        return _tlv(tag, bytes(val))
    if tag in _EMPTY_TAGS:
        return bytes((tag, 0))
    if tag == OBJECT_IDENTIFIER and isinstance(val, tuple):
        return encode_oid(val)
    raise BerError(f"cannot encode {v!r}")


def encode_varbind(o: OID, v: Value) -> bytes:
    return _tlv(SEQUENCE, encode_oid(o) + encode_value(v))


def encode_message_parts(version: int, community: bytes, pdu_tag: int, request_id: int,
                         error_status: int, error_index: int, encoded_varbinds: Sequence[bytes]) -> bytes:
    """Encode a message whose varbinds are already encoded (see :func:`encode_varbind`)."""
    pdu = _tlv(pdu_tag, _tlv(INTEGER, _int_content(request_id)) + _tlv(INTEGER, _int_content(error_status))
               + _tlv(INTEGER, _int_content(error_index)) + _tlv(SEQUENCE, b"".join(encoded_varbinds)))
    return _tlv(SEQUENCE, _tlv(INTEGER, _int_content(version)) + _tlv(OCTET_STRING, community) + pdu)


def encode_message(m: Message) -> bytes:
    p = m.pdu
    return encode_message_parts(m.version, m.community, p.tag, p.request_id, p.error_status, p.error_index,
                                [encode_varbind(o, v) for o, v in p.varbinds])


SYS_UPTIME_0: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0: OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


def make_trap_v2(community: bytes, request_id: int, uptime_ticks: int, trap_oid: OID,
                 varbinds: Sequence[VarBind] = ()) -> Message:
    """An SNMPv2-Trap message: sysUpTime.0, snmpTrapOID.0, then ``varbinds``."""
    vbs = ((SYS_UPTIME_0, timeticks(uptime_ticks)), (SNMP_TRAP_OID_0, oid(trap_oid)), *varbinds)
    return Message(VERSION_2C, community, Pdu(SNMPV2_TRAP, request_id, 0, 0, vbs))


# ---------------------------------------------------------------- decoding


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Parse the TLV header at ``pos``; return (tag, content start, content end) within ``end``."""
    if pos + 2 > end:
        raise BerError("truncated TLV header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("high tag numbers are not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0:
            raise BerError("indefinite length is not allowed")
        if n > 4:
            raise BerError("length field too long")
        if pos + n > end:
            raise BerError("truncated length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("truncated content")
    return tag, pos, pos + length


def _int_from(data: bytes, start: int, stop: int) -> int:
    if stop == start or stop - start > _MAX_INT_OCTETS:
        raise BerError("bad integer length")
    return int.from_bytes(data[start:stop], "big", signed=True)


def _oid_from(data: bytes, start: int, stop: int) -> OID:
    if stop == start:
        raise BerError("empty OID")
    subs: list[int] = []
    acc = 0
    nbytes = 0
    for i in range(start, stop):
        b = data[i]
        if nbytes == 0 and b == 0x80:
            raise BerError("non-minimal OID sub-identifier")
        acc = (acc << 7) | (b & 0x7F)
        nbytes += 1
        if b & 0x80:
            if nbytes >= 5:
                raise BerError("OID sub-identifier too long")
            continue
        subs.append(acc)
        acc = 0
        nbytes = 0
    if nbytes:
        raise BerError("truncated OID sub-identifier")
    first = subs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    result = head + tuple(subs[1:])
    if len(result) > _MAX_SUBIDS or any(s > _MAX_SUBID for s in result):
        raise BerError("OID out of SNMP limits")
    return result


def _value_from(data: bytes, tag: int, start: int, stop: int) -> Value:
    if tag in _INT_TAGS:
        n = _int_from(data, start, stop)
        hi = _UNSIGNED_MAX.get(tag)
        if hi is not None and not 0 <= n <= hi:
            raise BerError(f"value {n} out of range for tag 0x{tag:02x}")
        return Value(tag, n)
    if tag in _BYTES_TAGS:
        if tag == IP_ADDRESS and stop - start != 4:
            raise BerError("IpAddress must be 4 bytes")
        return Value(tag, data[start:stop])
    if tag in _EMPTY_TAGS:
        if stop != start:
            raise BerError("NULL-like value with content")
        return Value(tag, None)
    if tag == OBJECT_IDENTIFIER:
        return Value(tag, _oid_from(data, start, stop))
    raise BerError(f"unsupported value tag 0x{tag:02x}")


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    t, start, stop = _header(data, pos, end)
    if t != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return start, stop


def _read_int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, INTEGER)
    return _int_from(data, start, stop), stop


def decode_value(data: bytes) -> Value:
    """Decode exactly one TLV value."""
    data = bytes(data)
    tag, start, stop = _header(data, 0, len(data))
    if stop != len(data):
        raise BerError("trailing bytes after value")
    return _value_from(data, tag, start, stop)


def decode_oid(data: bytes) -> OID:
    v = decode_value(data)
    if v.tag != OBJECT_IDENTIFIER or not isinstance(v.value, tuple):
        raise BerError("not an OID")
    return v.value


def _read_pdu(data: bytes, pos: int, end: int) -> tuple[Pdu, int]:
    tag, start, stop = _header(data, pos, end)
    if tag not in PDU_TAGS:
        raise BerError(f"unsupported PDU tag 0x{tag:02x}")
    request_id, p = _read_int(data, start, stop)
    error_status, p = _read_int(data, p, stop)
    error_index, p = _read_int(data, p, stop)
    p, list_end = _expect(data, p, stop, SEQUENCE)
    if list_end != stop:
        raise BerError("trailing bytes in PDU")
    varbinds: list[VarBind] = []
    while p < list_end:
        vb_start, vb_end = _expect(data, p, list_end, SEQUENCE)
        o_start, o_end = _expect(data, vb_start, vb_end, OBJECT_IDENTIFIER)
        vtag, v_start, v_end = _header(data, o_end, vb_end)
        if v_end != vb_end:
            raise BerError("trailing bytes in varbind")
        varbinds.append((_oid_from(data, o_start, o_end), _value_from(data, vtag, v_start, v_end)))
        p = vb_end
    return Pdu(tag, request_id, error_status, error_index, tuple(varbinds)), stop


def decode_message(data: bytes) -> Message:
    """Decode an SNMP v1/v2c message; raise :class:`BerError` on anything malformed or unsupported."""
    data = bytes(data)
    start, stop = _expect(data, 0, len(data), SEQUENCE)
    if stop != len(data):
        raise BerError("trailing bytes after message")
    version, p = _read_int(data, start, stop)
    if version not in (VERSION_1, VERSION_2C):
        raise BerError(f"unsupported SNMP version {version}")
    c_start, c_end = _expect(data, p, stop, OCTET_STRING)
    pdu, p = _read_pdu(data, c_end, stop)
    if p != stop:
        raise BerError("trailing bytes after PDU")
    return Message(version, data[c_start:c_end], pdu)

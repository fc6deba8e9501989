"""SNMP messages as bytes, the agent's one BER codec. Pure: no I/O, no pysnmp.

v1/v2c requests encoded and responses decoded (the fast path), and the TLV primitives of
:mod:`agent.snmp.unsigned_repair` (negative unsigned integers rewritten before pysnmp sees them),
:mod:`agent.snmp.v3_discovery`, :mod:`agent.snmp.usm` and :mod:`agent.snmp.trap_decode`.

This is the agent's hot path. pysnmp's object model costs tens of microseconds per varbind; this
decoder reads a response straight into ``(OID tuple, SnmpValue)`` pairs with a few slices per varbind
(OIDs whose sub-identifiers are all < 128, nearly all of them, are one C-level ``tuple(bytes)``; names
already seen are looked up, not decoded again: ``NAMES_KEPT``), and a request's varbinds are encoded
once per OID (``ASKED_KEPT``).

It gives the same values as pysnmp with :func:`agent.snmp.unsigned_repair.repair_unsigned` in front
(what the pysnmp path does on our socket) and accepts what that accepts, including BER leniencies pyasn1
has and real devices need: an INTEGER with no content octets reads as 0 (some power distribution units
send them in bulk responses), lengths in up to 8 octets. tests/unit/test_snmp_ber.py compares the two
on generated and fuzzed datagrams, tests/integration/test_fast_path_differential.py on whole walks of
recorded devices. The deliberate differences, all listed and checked there:

* a Counter32/Gauge32/TimeTicks/Counter64 encoded as a negative integer (a common device bug) is read
  as the unsigned number it stands for (two's complement) in every encoding, not only the short forms
  ``repair_unsigned`` rewrites;
* an INTEGER value outside Integer32 (UPS cards send a load of 4294967295) is read as sent, so that the
  rest of the response is kept and the mapping reports that one value as unusable; pysnmp drops the
  whole response (it then looks like a timeout);
* not decoded: what RFC 3417 section 8 forbids (indefinite lengths, constructed strings), and a
  Report-PDU (pysnmp takes one as the response; v1/v2c agents do not send them);
* not range-checked: request-id (an out-of-range one matches no request anyway), error-index (pysnmp
  drops a negative one and clamps one past the last varbind: we report it as sent), and the SMIv2
  types in an SNMPv1 message (Counter64, noSuch*, endOfMibView: pysnmp drops the whole response).

Anything malformed raises :class:`BerError`; the caller counts and drops the datagram.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.snmp.values import OID, SnmpValue

GET, GET_NEXT, RESPONSE, SET, GET_BULK = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5
VERSIONS = {"1": 0, "2c": 1}

UNSIGNED_BITS = {0x41: 32, 0x42: 32, 0x43: 32, 0x46: 64}  # Counter32 Gauge32 TimeTicks Counter64: bits
_UNSIGNED_KINDS = {0x41: "counter32", 0x42: "gauge32", 0x43: "timeticks", 0x46: "counter64"}
_EXCEPTIONS = {tag: SnmpValue(kind, None) for tag, kind in (
    (0x80, "no_such_object"), (0x81, "no_such_instance"), (0x82, "end_of_mib_view"))}
_NULL = SnmpValue("null", None)
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")  # the first byte of a multi-byte sub-identifier in an OID

ERROR_NAMES = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
    "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
    "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
    "inconsistentName",
)


class BerError(ValueError):
    """A datagram that is not a well-formed SNMP v1/v2c response."""


@dataclass(frozen=True, slots=True)
class Response:
    version: int  # 0 = v1, 1 = v2c
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[OID, SnmpValue]]
    repaired: int = 0  # negative unsigned integers read as unsigned

    @property
    def error_name(self) -> str:
        status = self.error_status
        return ERROR_NAMES[status] if 0 <= status < len(ERROR_NAMES) else f"error {status}"


# --------------------------------------------------------------------------------------------------
# encoding (requests)


def tlv(tag: int, content: bytes) -> bytes:
    """A BER tag-length-value (definite length)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(body))) + body + content


def int_tlv(n: int) -> bytes:
    """A BER INTEGER (minimal two's complement)."""
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(oid: OID) -> bytes:
    if len(oid) < 2 or not 0 <= oid[0] <= 2 or oid[1] < 0 or (oid[0] < 2 and oid[1] > 39):
        raise ValueError(f"cannot encode OID {oid}")
    if len(oid) < 100:
        # every sub-identifier < 128 (nearly always): one byte each; or all but the last, a row index
        # of 128..16383 in two bytes
        last = oid[-1]
        with contextlib.suppress(ValueError):  # some sub-identifier is negative or > 255
            if 0x80 <= last < 0x4000 and len(oid) > 2:
                content = bytes((oid[0] * 40 + oid[1], *oid[2:-1], 0x80 | last >> 7, last & 0x7F))
                if content[:-2].isascii():
                    return bytes((0x06, len(content))) + content
            else:
                content = bytes((oid[0] * 40 + oid[1], *oid[2:]))
                if content.isascii():
                    return bytes((0x06, len(content))) + content
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return tlv(0x06, bytes(out))


_NULL_TLV = b"\x05\x00"


# Request varbinds ({OID, NULL}) already encoded: a walk asks after the same OIDs every poll. OIDs of up
# to KEPT_OCTETS arcs (a longer one has a longer name); emptied when full (about 450 bytes an entry).
ASKED_KEPT = 16_384
_ASKED: dict[OID, bytes] = {}


def _asked(oid: OID) -> bytes:
    varbind = _ASKED.get(oid)
    if varbind is None:
        varbind = tlv(0x30, encode_oid(oid) + _NULL_TLV)
        if len(oid) <= KEPT_OCTETS:
            if len(_ASKED) >= ASKED_KEPT:
                _ASKED.clear()
            _ASKED[oid] = varbind
    return varbind


def encode_request(version: int, community: bytes, pdu: int, request_id: int, oids: Sequence[OID],
                   non_repeaters: int = 0, max_repetitions: int = 0) -> bytes:
    """A GET / GETNEXT / GETBULK request for ``oids`` (GETBULK: ``non_repeaters``/``max_repetitions``
    take the places of error-status and error-index)."""
    varbinds = b"".join(map(_asked, oids))
    body = (int_tlv(request_id) + int_tlv(non_repeaters if pdu == GET_BULK else 0)
            + int_tlv(max_repetitions if pdu == GET_BULK else 0) + tlv(0x30, varbinds))
    return tlv(0x30, int_tlv(version) + tlv(0x04, community) + tlv(pdu, body))


# --------------------------------------------------------------------------------------------------
# decoding (responses)


def _header(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Check the tag at ``pos``; return (content start, content end)."""
    if pos + 2 > end:
        raise BerError("truncated")
    if data[pos] != tag:
        raise BerError(f"tag 0x{data[pos]:02x} where 0x{tag:02x} was expected")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        stop = pos + first
    else:
        n = first & 0x7F
        if not 1 <= n <= 8 or pos + n > end:  # RFC 3417 allows extra length octets; pyasn1 up to 8
            raise BerError("bad length")
        stop = pos + n + int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if stop > end:
        raise BerError("truncated")
    return pos, stop


def _integer(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _header(data, pos, end, 0x02)  # no content octets: 0, like pyasn1
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _arcs(content: bytes) -> list[int]:
    """The sub-identifiers of base-128 content that starts an arc and ends one."""
    arcs: list[int] = []
    value = 0
    started = False
    for byte in content:
        if not started and byte == 0x80:
            raise BerError("bad OID (non-minimal sub-identifier)")
        value = (value << 7) | (byte & 0x7F)
        started = True
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            started = False
    return arcs


def _oid_slow(content: bytes) -> OID:
    if not content or content[-1] & 0x80:
        raise BerError("bad OID")
    arcs = _arcs(content)
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def decode_oid_content(content: bytes) -> OID:
    if content.isascii():  # every sub-identifier < 128: one byte each
        if not content:
            return _oid_slow(content)
        first = content[0]
        if first < 40:
            return (0, first, *content[1:])
        if first < 80:
            return (1, first - 40, *content[1:])
        return (2, first - 80, *content[1:])
    last = content[-1]
    if len(content) > 3 and last < 0x80 and content[-2] > 0x80 and content[-3] < 0x80:
        # only the last sub-identifier takes two bytes (a row index of 128..16383, the usual case)
        head = content[:-2]
        if head.isascii():
            return (*decode_oid_content(head), (content[-2] & 0x7F) << 7 | last)
    high = _HIGH_BYTE.search(content)
    if high is None or high.start() == 0 or last & 0x80:
        return _oid_slow(content)
    # one-byte arcs, then the first multi-byte one: the prefix as it is, the rest arc by arc (the byte
    # before it, below 0x80, ended an arc)
    split = high.start()
    return (*decode_oid_content(content[:split]), *_arcs(content[split:]))


def _value(tag: int, content: bytes) -> SnmpValue:
    if tag == 0x04:
        return SnmpValue("octets", content)
    bits = UNSIGNED_BITS.get(tag)
    if bits is not None:  # no content octets (a device bug) reads as 0, like pyasn1
        number = int.from_bytes(content, "big", signed=True)
        if number < 0:  # a device bug: the unsigned number it stands for (see the module doc)
            number %= 1 << bits
        elif number >> bits:
            raise BerError(f"value out of range for tag 0x{tag:02x}")
        return SnmpValue(_UNSIGNED_KINDS[tag], number)
    if tag == 0x02:  # outside Integer32 (a device bug) it is read as sent: the mapping rejects it
        return SnmpValue("integer", int.from_bytes(content, "big", signed=True))
    exception = _EXCEPTIONS.get(tag)
    if exception is not None:
        if content:
            raise BerError("exception value with content")
        return exception
    if tag == 0x05:
        if content:
            raise BerError("null with content")
        return _NULL
    if tag == 0x06:
        return SnmpValue("oid", ".".join(map(str, decode_oid_content(content))))
    if tag == 0x40:
        if len(content) != 4:
            raise BerError("IpAddress must be 4 bytes")
        return SnmpValue("ipaddress", ".".join(map(str, content)))
    if tag == 0x44:
        return SnmpValue("opaque", content)
    raise BerError(f"unknown value tag 0x{tag:02x}")


# Public names of the primitives above, for the other decoders (agent/snmp/trap_decode.py).
expect_tlv = _header  # (content start, content end) of the TLV at pos, whose tag must be ``tag``
decode_value = _value  # an SnmpValue from a value's tag and content octets


# Varbind names (OID content octets) already decoded, for all devices: a device answers with the same
# names at every poll, and devices of one model with the same ones. Only names of up to KEPT_OCTETS octets
# (a table column and a numeric index take 10-20): the datagrams decoded here need not be answers to us,
# and a long name costs kilobytes. Emptied when full: about 450 bytes an entry, some 7 MB at most.
KEPT_OCTETS = 32
NAMES_KEPT = 16_384
_NAMES: dict[bytes, OID] = {}


def decode_response(data: bytes) -> Response:
    """A v1/v2c Response-PDU. Raises :class:`BerError` for anything else or anything malformed."""
    end = len(data)
    pos, stop = _header(data, 0, end, 0x30)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _integer(data, pos, end)
    if version not in (0, 1):
        raise BerError(f"not an SNMP v1/v2c message (version {version})")
    c_start, pos = _header(data, pos, end, 0x04)
    community = data[c_start:pos]
    pos, pdu_end = _header(data, pos, end, RESPONSE)
    if pdu_end != end:
        raise BerError("trailing bytes after the PDU")
    request_id, pos = _integer(data, pos, end)
    error_status, pos = _integer(data, pos, end)
    error_index, pos = _integer(data, pos, end)
    pos, list_end = _header(data, pos, end, 0x30)
    if list_end != end:
        raise BerError("trailing bytes after the varbinds")
    varbinds: list[tuple[OID, SnmpValue]] = []
    append = varbinds.append
    repaired = 0
    unsigned_kinds, from_bytes, known_name = _UNSIGNED_KINDS, int.from_bytes, _NAMES.get
    new_value = tuple.__new__  # SnmpValue(kind, value) without the NamedTuple's Python-level __new__
    while pos < end:
        # varbind SEQUENCE { OID, value }, short lengths inlined (the usual case)
        if data[pos] != 0x30:
            raise BerError("varbind is not a SEQUENCE")
        length = data[pos + 1] if pos + 1 < end else 0x80
        if length < 0x80:
            pos += 2
            vb_end = pos + length
            if vb_end > end:
                raise BerError("truncated")
        else:
            pos, vb_end = _header(data, pos, end, 0x30)
        if pos + 2 > vb_end or data[pos] != 0x06:
            raise BerError("varbind name is not an OID")
        length = data[pos + 1]
        if length < 0x80 and length:
            o_end = pos + 2 + length
            if o_end > vb_end:
                raise BerError("truncated")
            name = data[pos + 2:o_end]
        else:
            o_start, o_end = _header(data, pos, vb_end, 0x06)
            name = data[o_start:o_end]
        oid = known_name(name)
        if oid is None:
            oid = decode_oid_content(name)
            if len(name) <= KEPT_OCTETS:
                if len(_NAMES) >= NAMES_KEPT:
                    _NAMES.clear()
                _NAMES[name] = oid
        if o_end + 2 > vb_end:
            raise BerError("varbind without a value")
        tag = data[o_end]
        length = data[o_end + 1]
        if length < 0x80:
            v_start = o_end + 2
            v_end = v_start + length
        else:
            v_start, v_end = _header(data, o_end, vb_end, tag)
        if v_end != vb_end:
            raise BerError("varbind length does not match its contents")
        kind = unsigned_kinds.get(tag)
        if kind is not None and v_end > v_start and data[v_start] < 0x80:  # a counter, gauge or timeticks
            number = from_bytes(data[v_start:v_end])
            if number >> UNSIGNED_BITS[tag]:
                raise BerError(f"value out of range for tag 0x{tag:02x}")
            append((oid, new_value(SnmpValue, (kind, number))))
        elif tag == 0x02:  # INTEGER; outside Integer32 (a device bug) read as sent: the mapping rejects it
            append((oid, new_value(SnmpValue, ("integer", from_bytes(data[v_start:v_end], signed=True)))))
        elif tag == 0x04:
            append((oid, new_value(SnmpValue, ("octets", data[v_start:v_end]))))
        else:
            if kind is not None and v_end > v_start:  # negative: read as the unsigned number it stands for
                repaired += 1
            append((oid, _value(tag, data[v_start:v_end])))
        pos = vb_end
    return Response(version, community, request_id, error_status, error_index, varbinds, repaired)


# --------------------------------------------------------------------------------------------------
# TLV walking (also for agent/snmp/unsigned_repair.py, agent/snmp/v3_discovery.py, agent/snmp/usm.py)


def tlv_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; :class:`BerError` if malformed."""
    if pos + 2 > end:
        raise BerError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4 or pos + n > end:
            raise BerError("bad length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("truncated")
    return tag, pos, pos + length

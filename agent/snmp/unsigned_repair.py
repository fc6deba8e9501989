"""The repair of negative unsigned integers in a v1/v2c datagram, before pysnmp sees it. Pure.

Devices send Counter32/Gauge32/TimeTicks/Counter64 values encoded as negative integers (a common bug);
pyasn1's range check then drops the whole reply. :func:`repair_unsigned` rewrites such values as the
unsigned numbers they stand for, which is what :mod:`agent.snmp.ber`'s own decoder reads them as.
"""

from __future__ import annotations

import re

from agent.snmp.ber import UNSIGNED_BITS, BerError, tlv, tlv_header

_CONSTRUCTED = frozenset({0x30, *range(0xA0, 0xA9)})  # SEQUENCE and the v1/v2c PDUs
# A negative (high bit set) content byte right after an unsigned application tag and a short length. A
# correct encoding of a value >= 2**31 starts with 0x00, so this only matches buggy values, or by chance
# bytes inside strings or OIDs (then the exact rewrite below finds nothing to change).
_SUSPECT = re.compile(rb"[\x41\x42\x43\x46][\x01-\x08][\x80-\xff]")
_V1_V2C_HEAD = re.compile(rb"\x30(?:[\x00-\x7f]|\x81.|\x82..|\x83...)\x02\x01[\x00\x01]", re.DOTALL)


def _rewrite(data: bytes, start: int, end: int) -> tuple[bytes, bool]:
    out: list[bytes] = []
    changed = False
    pos = start
    while pos < end:
        tag, content_start, content_end = tlv_header(data, pos, end)
        if tag in _CONSTRUCTED:
            inner, inner_changed = _rewrite(data, content_start, content_end)
            if inner_changed:
                out.append(tlv(tag, inner))
                changed = True
            else:
                out.append(data[pos:content_end])
        elif tag in UNSIGNED_BITS and content_end > content_start and data[content_start] & 0x80:
            bits = UNSIGNED_BITS[tag]
            number = int.from_bytes(data[content_start:content_end], "big", signed=True) % (1 << bits)
            out.append(tlv(tag, number.to_bytes(number.bit_length() // 8 + 1, "big")))
            changed = True
        else:
            out.append(data[pos:content_end])
        pos = content_end
    return b"".join(out), changed


def repair_unsigned(datagram: bytes) -> bytes:
    """An SNMP v1/v2c datagram with negative Counter32/Gauge32/TimeTicks/Counter64 values rewritten as
    the unsigned numbers they stand for (two's complement); any other datagram unchanged.

    For pysnmp, which drops a whole reply on such a value (pyasn1's range check); cheap, because a
    byte-pattern pre-check skips nearly every datagram. SNMPv3 bytes are authenticated: not repairable."""
    if not _SUSPECT.search(datagram) or not _V1_V2C_HEAD.match(datagram):
        return datagram
    try:
        fixed, changed = _rewrite(datagram, 0, len(datagram))
    except BerError:
        return datagram  # malformed: pysnmp will drop it and count it
    return fixed if changed else datagram

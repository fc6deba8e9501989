"""The fast paths of the agent's SNMP poll path give exactly what the general code they short-cut gives.

Each fast path is compared with its general path (forced off with ``monkeypatch`` where it is a separate
function) or with a reference written independently here, on hand-picked edge cases and on seeded random
inputs (``random.Random(seed)`` loops; hypothesis is not used). Every random test counts how many of its
cases took the fast path and asserts a minimum share, so that a fast path that silently stopped being
taken, or one never reached by the generator, fails too.

Proved here:

1. agent/snmp/ber.py
   * ``decode_oid_content`` (one byte per arc; only the last arc in two bytes; a one-byte prefix) equals
     ``_oid_slow`` on valid contents and raises :class:`BerError` on exactly the malformed ones;
   * ``encode_oid`` (one byte per arc; only the last arc in two bytes) equals a reference BER encoder
     and raises ``ValueError`` where the reference refuses the OID;
   * ``decode_response``'s name cache (``_NAMES``/``NAMES_KEPT``) and ``encode_request``'s varbind cache
     (``_ASKED``/``ASKED_KEPT``) stay within their bounds and never change a result: empty, full, cleared;
   * ``decode_response``'s inline values (Counter32/Gauge32/TimeTicks/Counter64, INTEGER, OCTET STRING)
     equal ``_value`` for every tag, ``Response.repaired`` counts the negative unsigned values.
2. agent/snmp/row_order.py: ``rows_plainly_increase`` True implies ``row_order_problem`` None, and it is
   True on well-formed row-by-row answers.
3. agent/snmp/target.py: ``SnmpTarget.walk_columns`` with and without ``_take_plain_rows`` and
   ``rows_plainly_increase`` (forced to False) returns the same rows, raises the same error and sends the
   same requests, over a scripted device that misbehaves at random.
4. agent/mapping.py ``map_table``: the ``MetricSpec.direct`` short path (``direct_number``) gives the same
   families and the same ``bad`` list as ``metric_value`` alone.
5. agent/mapping.py ``rows_by_index``: its one-arc path equals a plain dict comprehension.
6. hatang/gc_settings.py ``tune_for_service``: the young threshold and the frozen generation.
"""

from __future__ import annotations

import bisect
import functools
import gc
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

import agent.mapping
import agent.snmp.target
from agent.mapping import map_table, rows_by_index
from agent.profiles import Direct, LabelSpec, MetricSpec, Source, TableSpec, ValidRange, load_profiles
from agent.snmp import ber
from agent.snmp.ber import (
    GET,
    GET_BULK,
    GET_NEXT,
    BerError,
    Response,
    _oid_slow,
    _value,
    decode_oid_content,
    decode_response,
    encode_oid,
    encode_request,
)
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpError, SnmpTimeout
from agent.snmp.row_order import row_order_problem, rows_plainly_increase
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue
from agent.uptime import Epoch
from hatang import gc_settings
from hatang.sim import ber as sim

VB = tuple[OID, SnmpValue]
UNSIGNED_BITS = {0x41: 32, 0x42: 32, 0x43: 32, 0x46: 64}
UNSIGNED_KIND = {0x41: "counter32", 0x42: "gauge32", 0x43: "timeticks", 0x46: "counter64"}


# ==================================================================================================
# references written independently of agent/snmp/ber.py


def ref_oid_content(oid: Sequence[int]) -> bytes:
    """X.690 section 8.19: the first two arcs as 40*a+b, every arc base 128, big-endian, high bit set on
    all but the last byte of an arc. ``ValueError`` for what BER cannot carry."""
    if len(oid) < 2 or any(arc < 0 for arc in oid) or oid[0] > 2 or (oid[0] < 2 and oid[1] > 39):
        raise ValueError(f"not an encodable OID: {oid}")
    out = bytearray()
    for arc in (40 * oid[0] + oid[1], *oid[2:]):
        groups = [arc & 0x7F]
        arc >>= 7
        while arc:
            groups.append(arc & 0x7F)
            arc >>= 7
        groups.reverse()
        out.extend(0x80 | g for g in groups[:-1])
        out.append(groups[-1])
    return bytes(out)


def ref_tlv(tag: int, content: bytes, length_octets: int = 0) -> bytes:
    """A definite-length TLV: short form, or (``length_octets`` > 0, or 128 content bytes and more) the
    long form with at least ``length_octets`` length octets."""
    n = len(content)
    if length_octets == 0 and n < 0x80:
        return bytes((tag, n)) + content
    k = max(length_octets, (n.bit_length() + 7) // 8, 1)
    return bytes((tag, 0x80 | k)) + n.to_bytes(k, "big") + content


def ref_encode_oid(oid: Sequence[int]) -> bytes:
    return ref_tlv(0x06, ref_oid_content(oid))


def signed_content(n: int) -> bytes:
    """The minimal two's complement content octets of ``n``."""
    return n.to_bytes((n if n >= 0 else ~n).bit_length() // 8 + 1, "big", signed=True)


def ref_number_value(tag: int, content: bytes) -> SnmpValue | None:
    """What RFC 3416 and the module doc of agent/snmp/ber.py say an INTEGER, OCTET STRING or unsigned
    value reads as (None: ``BerError``). Unsigned: a negative two's complement number is the unsigned
    number it stands for (a device bug), one of more than 32 (64) bits is an error; no content: 0."""
    if tag == 0x04:
        return SnmpValue("octets", content)
    number = 0
    for byte in content:
        number = number << 8 | byte
    if content and content[0] & 0x80:
        number -= 1 << (8 * len(content))
    if tag == 0x02:
        return SnmpValue("integer", number)
    bits = UNSIGNED_BITS[tag]
    if number >= 1 << bits:
        return None
    return SnmpValue(UNSIGNED_KIND[tag], number % (1 << bits))


def outcome(function: Callable[[bytes], object], data: bytes) -> tuple[str, object]:
    """("ok", result) or ("BerError", None); any other exception escapes and fails the test."""
    try:
        return "ok", function(data)
    except BerError:
        return "BerError", None


# ==================================================================================================
# random OIDs


def random_arc(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.55:
        return rng.randrange(128)
    if r < 0.8:
        return rng.randrange(128, 16384)
    if r < 0.97:
        return rng.randrange(16384, 2**32)
    return rng.randrange(2**32, 2**70)  # beyond SNMP's 32 bits: BER carries them, so do both paths


def random_oid(rng: random.Random, max_len: int = 16) -> OID:
    """A valid OID of one of three shapes: every arc < 128 (the first two combined < 128 too, mostly);
    all arcs < 128 but the last, 128..16383 (a row index); any arcs."""
    first = rng.choice((0, 1, 2))
    if first < 2:
        second = rng.randrange(40)
    else:
        second = rng.choice((rng.randrange(48), rng.randrange(48, 200), random_arc(rng)))
    shape = rng.choice(("small", "small", "last_two", "any"))
    n = rng.randrange(0, max_len - 1)
    if shape == "small":
        rest = [rng.randrange(128) for _ in range(n)]
    elif shape == "last_two":
        rest = [rng.randrange(128) for _ in range(n)] + [rng.randrange(128, 16384)]
    else:
        rest = [random_arc(rng) for _ in range(n)]
    return (first, second, *rest)


def oid_path(content: bytes) -> str:
    """Which path decode_oid_content takes for ``content`` (for the coverage counts only)."""
    if not content:
        return "general"
    if content.isascii():
        return "one byte per arc"
    if (len(content) > 3 and content[-1] < 0x80 and content[-2] > 0x80 and content[-3] < 0x80
            and content[:-2].isascii()):
        return "last arc in two bytes"
    if content[0] >= 0x80 or content[-1] >= 0x80:
        return "general"
    return "one-byte prefix, then general"


def malformed_content(rng: random.Random) -> bytes:
    """Random byte strings, mostly broken OID contents: empty, ending with a high-bit byte, a non-minimal
    0x80 starting an arc, a first byte >= 0x80, random noise rich in high bytes."""
    base = ref_oid_content(random_oid(rng, 8))
    kind = rng.randrange(8)
    if kind == 0:
        return b""
    if kind == 1:  # the last arc unfinished
        return base + bytes([rng.randrange(0x80, 0x100)] * rng.randint(1, 3))
    if kind == 2:  # a non-minimal 0x80 where an arc starts (anywhere, also the last two-byte arc)
        starts = [0] + [i + 1 for i, b in enumerate(base[:-1]) if b < 0x80]
        at = rng.choice(starts)
        return base[:at] + b"\x80" + base[at:]
    if kind == 3:  # a first byte >= 0x80 (valid when it starts a multi-byte first arc)
        return bytes([rng.randrange(0x80, 0x100)]) + base
    if kind == 4:  # the last arc "in two bytes" with a non-minimal 0x80 first byte
        return bytes([rng.randrange(128) for _ in range(rng.randint(2, 6))]) + b"\x80" + bytes(
            [rng.randrange(128)])
    if kind == 5:  # one byte flipped
        at = rng.randrange(len(base))
        return base[:at] + bytes([base[at] ^ (1 << rng.randrange(8))]) + base[at + 1:]
    alphabet = (0x00, 0x01, 0x2B, 0x7F, 0x80, 0x81, 0xFF, rng.randrange(256))
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))


# ==================================================================================================
# 1a. decode_oid_content


DECODE_CASES: list[tuple[bytes, OID | None]] = [
    (b"\x00", (0, 0)),
    (b"\x27", (0, 39)),
    (b"\x28", (1, 0)),
    (b"\x4f", (1, 39)),
    (b"\x50", (2, 0)),
    (b"\x7f", (2, 47)),
    (b"\x2b\x06\x01\x02\x01\x01\x03\x00", (1, 3, 6, 1, 2, 1, 1, 3, 0)),
    (b"\x81\x00", (2, 48)),  # a first arc of two bytes
    (b"\x81\x00\x05", (2, 48, 5)),
    (b"\x2b\x81\x00", (1, 3, 128)),  # three bytes: not the "last arc in two bytes" path
    (b"\x2b\x06\x81\x00", (1, 3, 6, 128)),  # four bytes: the shortest "last arc in two bytes"
    (b"\x2b\x06\xff\x7f", (1, 3, 6, 16383)),
    (b"\x2b\x06\x81\x80\x00", (1, 3, 6, 16384)),  # three bytes, the last arc
    (b"\x2b\x06\x81\x00\x05", (1, 3, 6, 128, 5)),  # two bytes, not the last arc
    (b"\x2b\x06\x81\x00\x81\x00", (1, 3, 6, 128, 128)),
    (b"\x2b\x06\x8f\xff\xff\xff\x7f", (1, 3, 6, 2**32 - 1)),
    (b"\x2b\x06" + b"\x81" * 10 + b"\x00", (1, 3, 6, sum(1 << (7 * k) for k in range(1, 11)))),
    (b"", None),
    (b"\x80", None),
    (b"\x81", None),
    (b"\xff", None),
    (b"\x2b\x81", None),  # ends inside an arc
    (b"\x2b\x06\x81", None),
    (b"\x2b\x06\x81\x80", None),
    (b"\x80\x01", None),  # non-minimal first arc
    (b"\x2b\x80\x01", None),
    (b"\x2b\x06\x80\x01", None),  # non-minimal, in the place of the "last arc in two bytes"
    (b"\x2b\x06\x01\x80\x80\x01", None),
    (b"\x2b\x06\x81\x00\x80\x05", None),  # non-minimal after a multi-byte arc
]


@pytest.mark.parametrize(("content", "expected"), DECODE_CASES,
                         ids=[c.hex() or "empty" for c, _ in DECODE_CASES])
def test_decode_oid_content_hand_picked(content: bytes, expected: OID | None) -> None:
    fast, slow = outcome(decode_oid_content, content), outcome(_oid_slow, content)
    assert fast == slow
    assert fast == (("BerError", None) if expected is None else ("ok", expected))


def test_decode_oid_content_equals_oid_slow_on_random_valid_contents() -> None:
    rng = random.Random(20240611)
    paths: Counter[str] = Counter()
    cases = 6000
    for case in range(cases):
        oid = random_oid(rng)
        content = ref_oid_content(oid)
        paths[oid_path(content)] += 1
        assert decode_oid_content(content) == _oid_slow(content) == oid, (case, oid, content.hex())
    # the fast paths are taken, and the general path is reached too
    assert paths["one byte per arc"] > cases * 0.3, paths
    assert paths["last arc in two bytes"] > cases * 0.15, paths
    assert paths["general"] > cases * 0.02 and paths["one-byte prefix, then general"] > cases * 0.05, paths


def test_decode_oid_content_raises_like_oid_slow_on_random_malformed_contents() -> None:
    rng = random.Random(77)
    results: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    for case in range(6000):
        content = malformed_content(rng)
        fast, slow = outcome(decode_oid_content, content), outcome(_oid_slow, content)
        assert fast == slow, (case, content.hex(), fast, slow)
        results[fast[0]] += 1
        paths[oid_path(content)] += 1
    assert results["BerError"] > 2000 and results["ok"] > 500, results
    assert min(paths.values()) > 80 and len(paths) == 4, paths  # that path: only valid contents take it


# ==================================================================================================
# 1b. encode_oid


ENCODE_CASES: list[tuple[OID, bytes | None]] = [
    ((0, 0), b"\x06\x01\x00"),
    ((1, 3), b"\x06\x01\x2b"),
    ((2, 47), b"\x06\x01\x7f"),
    ((2, 48), b"\x06\x02\x81\x00"),
    ((2, 48, 1), b"\x06\x03\x81\x00\x01"),
    ((1, 3, 127), b"\x06\x02\x2b\x7f"),
    ((1, 3, 128), b"\x06\x03\x2b\x81\x00"),
    ((1, 3, 6, 16383), b"\x06\x04\x2b\x06\xff\x7f"),
    ((1, 3, 6, 16384), b"\x06\x05\x2b\x06\x81\x80\x00"),
    ((1, 3, 6, 255, 1), b"\x06\x05\x2b\x06\x81\x7f\x01"),
    ((1, 3, 256, 128), b"\x06\x05\x2b\x82\x00\x81\x00"),  # a middle arc > 255 beside a two-byte last one
    ((2, 100, 200), b"\x06\x04\x81\x34\x81\x48"),  # the combined first arc takes two bytes
    ((1, 3, *[1] * 98), b"\x06\x63\x2b" + b"\x01" * 98),  # 99 arcs
    ((1, 3, *[1] * 200), b"\x06\x81\xc9\x2b" + b"\x01" * 200),  # a long-form length
    ((1, 3, *[1] * 130, 300), b"\x06\x81\x85\x2b" + b"\x01" * 130 + b"\x82\x2c"),
    ((), None),
    ((1,), None),
    ((3, 1), None),
    ((0, 40), None),
    ((1, 40), None),
    ((-1, 39), None),
    ((0, -1), None),
    ((1, 3, -1), None),
    ((1, 3, -1, 200), None),
    ((1, 3, 6, -200), None),
    ((1, 3, 300, -5), None),
]


@pytest.mark.parametrize(("oid", "expected"), ENCODE_CASES, ids=[str(o)[:40] for o, _ in ENCODE_CASES])
def test_encode_oid_hand_picked(oid: OID, expected: bytes | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            ref_encode_oid(oid)
        with pytest.raises(ValueError):
            encode_oid(oid)
    else:
        assert ref_encode_oid(oid) == expected
        assert encode_oid(oid) == expected


def random_invalid_oid(rng: random.Random) -> OID:
    """An OID BER cannot carry."""
    oid = list(random_oid(rng))
    kind = rng.randrange(6)
    if kind == 0:
        return tuple(oid[:rng.randint(0, 1)])
    if kind == 1:
        oid[0] = rng.choice((3, 4, 40, 2**40))
    elif kind == 2:
        oid[0] = rng.randrange(2)
        oid[1] = rng.choice((40, 41, 127, 128, rng.randrange(40, 2**33)))
    elif kind == 3:
        oid[0] = rng.choice((-1, -2, -(2**40)))
    elif kind == 4:
        oid[0], oid[1] = rng.randrange(3), -rng.randint(1, 2**20)  # a negative second arc
    else:
        oid += [random_arc(rng) for _ in range(rng.randint(1, 3))]
        at = rng.randrange(2, len(oid))
        oid[at] = -rng.choice((1, 127, 128, 255, 256, 16383, 16384, rng.randrange(1, 2**40)))
    return tuple(oid)


def encode_path(oid: OID) -> str:
    """Which path encode_oid takes for a valid ``oid`` (for the coverage counts only)."""
    arcs = (40 * oid[0] + oid[1], *oid[2:])
    if len(oid) >= 100:
        return "general"
    if all(a < 0x80 for a in arcs):
        return "one byte per arc"
    if len(oid) > 2 and all(a < 0x80 for a in arcs[:-1]) and 0x80 <= arcs[-1] < 0x4000:
        return "last arc in two bytes"
    return "general"


def test_encode_oid_equals_a_reference_encoder_on_random_oids() -> None:
    rng = random.Random(4242)
    paths: Counter[str] = Counter()
    cases = 6000
    for case in range(cases):
        if rng.random() < 0.3:
            oid = random_invalid_oid(rng)
            with pytest.raises(ValueError):
                ref_encode_oid(oid)
            with pytest.raises(ValueError):
                encode_oid(oid)
            paths["invalid"] += 1
            continue
        oid = random_oid(rng, max_len=rng.choice((16, 16, 16, 140)))
        expected = ref_encode_oid(oid)
        assert encode_oid(oid) == expected, (case, oid)
        paths[encode_path(oid)] += 1
    assert paths["one byte per arc"] > cases * 0.2, paths
    assert paths["last arc in two bytes"] > cases * 0.1, paths
    assert paths["general"] > cases * 0.1 and paths["invalid"] > cases * 0.2, paths


@pytest.mark.parametrize("oid", [(1, -5), (2, -50), (1, -40), (2, -1), (2, -80, 5), (1, -1, 1, 2)])
def test_encode_oid_refuses_a_negative_second_arc(oid: OID) -> None:
    """Once accepted when 40*a+b was still >= 0: (1, -5) was encoded as 0.35."""
    with pytest.raises(ValueError):
        ref_encode_oid(oid)
    with pytest.raises(ValueError):
        encode_oid(oid)


# ==================================================================================================
# 1c. decode_response: inline values against _value


VALUE_TAGS = (0x02, 0x02, 0x04, 0x04, 0x41, 0x41, 0x42, 0x43, 0x46, 0x46, 0x05, 0x06, 0x40, 0x44,
              0x80, 0x81, 0x82)


def random_int_content(rng: random.Random, bits: int | None) -> bytes:
    """Content octets for an INTEGER (``bits`` None) or an unsigned type of ``bits`` bits: in range,
    edges, negative (a device bug for unsigned types, sometimes sign-extended), out of range, empty,
    non-minimal, random."""
    r = rng.random()
    if bits is None:
        low, high = -(2**31), 2**31 - 1
    else:
        low, high = 0, 2**bits - 1
    if r < 0.4:
        return signed_content(rng.randint(low, high))
    if r < 0.5:
        return signed_content(rng.choice((low, high, 0, 1, -1 if bits is None else 127, 128, 255, 256)))
    if r < 0.65:  # negative
        n = -rng.randint(1, 2 ** (bits or 32))
        return b"\xff" * rng.choice((0, 0, 1, 3)) + signed_content(n)
    if r < 0.73:  # out of range: one octet too many (5 for Counter32 starting 0x01..0x7f)
        size = (bits or 32) // 8
        return bytes([rng.randrange(1, 0x80)]) + bytes(rng.randrange(256) for _ in range(size))
    if r < 0.78:
        return b""
    if r < 0.86:  # non-minimal positive
        return b"\x00" * rng.randint(1, 3) + signed_content(rng.randint(0, high))
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 10)))


def random_value(rng: random.Random) -> tuple[int, bytes]:
    """(tag, content octets) of a varbind value, mostly valid, sometimes not."""
    if rng.random() < 0.02:
        return rng.choice((0x01, 0x30, 0x45, 0x47, 0x83, 0xA2)), bytes(rng.randrange(256) for _ in range(2))
    tag = rng.choice(VALUE_TAGS)
    if tag == 0x02:
        return tag, random_int_content(rng, None)
    if tag in UNSIGNED_BITS:
        return tag, random_int_content(rng, UNSIGNED_BITS[tag])
    if tag in (0x04, 0x44):
        size = rng.choice((0, 1, 6, rng.randrange(300)))
        return tag, bytes(rng.randrange(256) for _ in range(size))
    if tag == 0x40:
        return tag, bytes(rng.randrange(256) for _ in range(4 if rng.random() < 0.9 else rng.randrange(8)))
    if tag == 0x06:
        return tag, ref_oid_content(random_oid(rng, 10)) if rng.random() < 0.9 else malformed_content(rng)
    return tag, b"" if rng.random() < 0.9 else b"\x00"  # NULL and the exception values


def value_path(tag: int, content: bytes) -> str:
    """Which branch of decode_response's loop reads a value (for the coverage counts only)."""
    if tag in UNSIGNED_BITS and content and content[0] < 0x80:
        return "inline unsigned"
    if tag == 0x02:
        return "inline integer"
    if tag == 0x04:
        return "inline octets"
    return "_value"


@dataclass(frozen=True)
class DraftVarbind:
    name: bytes  # OID content octets
    tag: int
    content: bytes
    length_octets: tuple[int, int, int]  # of the varbind SEQUENCE, its name, its value (0: shortest)

    def encode(self) -> bytes:
        seq, name, value = self.length_octets
        return ref_tlv(0x30, ref_tlv(0x06, self.name, name) + ref_tlv(self.tag, self.content, value), seq)


def random_length_octets(rng: random.Random) -> int:
    return 0 if rng.random() < 0.75 else rng.choice((1, 1, 2, 3, 4, 8))


def datagram(version: int, community: bytes, request_id: int, varbinds: Sequence[bytes],
             error_status: int = 0, error_index: int = 0) -> bytes:
    """A Response-PDU message around already encoded varbinds (hatang.sim.ber's encoder)."""
    return sim.encode_message_parts(version, community, sim.RESPONSE, request_id, error_status, error_index,
                                    varbinds)


def test_decode_response_inline_values_equal_value_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ber, "_NAMES", {})  # no names left behind for other tests
    rng = random.Random(9001)
    paths: Counter[str] = Counter()
    results: Counter[str] = Counter()
    repaired_total = 0
    for case in range(3000):
        drafts: list[DraftVarbind] = []
        for _ in range(rng.randint(0, 8)):
            name = ref_oid_content(random_oid(rng, 12)) if rng.random() < 0.98 else malformed_content(rng)
            tag, content = random_value(rng)
            lengths = (random_length_octets(rng), random_length_octets(rng), random_length_octets(rng))
            drafts.append(DraftVarbind(name, tag, content, lengths))
        version, request_id = rng.choice((0, 1)), rng.randint(0, 2**31 - 1)
        status, index = rng.choice((0, 0, 0, 1, 5)), rng.randint(0, 3)
        community = rng.choice((b"public", b"", b"x" * 200))
        data = datagram(version, community, request_id, [d.encode() for d in drafts], status, index)
        expected: list[VB] | None = []
        for d in drafts:
            decoded_name = outcome(_oid_slow, d.name)
            decoded_value = outcome(functools.partial(_value, d.tag), d.content)
            if decoded_name[0] != "ok" or decoded_value[0] != "ok" or expected is None:
                expected = None
                continue
            oid, value = decoded_name[1], decoded_value[1]
            assert isinstance(oid, tuple) and isinstance(value, SnmpValue)
            if d.tag in (0x02, 0x04, *UNSIGNED_BITS):  # _value itself against the reference
                assert value == ref_number_value(d.tag, d.content), (d.tag, d.content.hex())
            expected.append((oid, value))
            paths[value_path(d.tag, d.content)] += 1
        got = outcome(decode_response, data)
        if expected is None:
            assert got == ("BerError", None), (case, data.hex())
            results["BerError"] += 1
            continue
        repaired = sum(1 for d in drafts if d.tag in UNSIGNED_BITS and d.content and d.content[0] >= 0x80)
        assert got == ("ok", Response(version, community, request_id, status, index, expected, repaired)), (
            case, data.hex())
        results["ok"] += 1
        repaired_total += repaired
    assert results["ok"] > 1000 and results["BerError"] > 500, results
    assert min(paths[p] for p in ("inline unsigned", "inline integer", "inline octets")) > 1000, paths
    assert paths["_value"] > 1000 and repaired_total > 300, (paths, repaired_total)


# tag, content, value (None: BerError), repaired
VALUE_CASES: list[tuple[int, bytes, SnmpValue | None, int]] = [
    (0x41, b"", SnmpValue("counter32", 0), 0),
    (0x41, b"\x00\xff\xff\xff\xff", SnmpValue("counter32", 2**32 - 1), 0),
    (0x41, b"\x01\x00\x00\x00\x00", None, 0),  # 2**32: out of range
    (0x41, b"\x7f\xff\xff\xff\xff", None, 0),
    (0x41, b"\xff", SnmpValue("counter32", 2**32 - 1), 1),  # -1 sent for 4294967295
    (0x41, b"\x80\x00\x00\x00", SnmpValue("counter32", 2**31), 1),
    (0x41, b"\xff\xff\xff\xff\xff\x80\x00\x00\x00", SnmpValue("counter32", 2**31), 1),  # sign-extended
    (0x42, b"\x80", SnmpValue("gauge32", 2**32 - 128), 1),
    (0x43, b"\x00\x00\x00\x05", SnmpValue("timeticks", 5), 0),
    (0x46, b"\x00" + b"\xff" * 8, SnmpValue("counter64", 2**64 - 1), 0),
    (0x46, b"\x01" + b"\x00" * 8, None, 0),
    (0x46, b"\xff" * 8, SnmpValue("counter64", 2**64 - 1), 1),
    (0x46, b"\x80" + b"\x00" * 8, SnmpValue("counter64", 0), 1),  # -2**71 mod 2**64
    (0x46, b"", SnmpValue("counter64", 0), 0),
    (0x02, b"", SnmpValue("integer", 0), 0),
    (0x02, b"\xff", SnmpValue("integer", -1), 0),
    (0x02, b"\x00\xff\xff\xff\xff", SnmpValue("integer", 2**32 - 1), 0),  # outside Integer32: as sent
    (0x04, b"", SnmpValue("octets", b""), 0),
    (0x04, b"x" * 300, SnmpValue("octets", b"x" * 300), 0),
]


@pytest.mark.parametrize(("tag", "content", "expected", "repaired"), VALUE_CASES,
                         ids=[f"{t:02x}-{c[:10].hex()}-{len(c)}" for t, c, _, _ in VALUE_CASES])
@pytest.mark.parametrize("length_octets", [0, 1, 4, 8])
def test_decode_response_hand_picked_values(
        monkeypatch: pytest.MonkeyPatch, tag: int, content: bytes, expected: SnmpValue | None, repaired: int,
        length_octets: int) -> None:
    monkeypatch.setattr(ber, "_NAMES", {})
    name = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 7)
    varbind = ref_tlv(0x30, ref_encode_oid(name) + ref_tlv(tag, content, length_octets), length_octets)
    data = datagram(1, b"public", 7, [varbind])
    assert outcome(lambda c: _value(tag, c), content) == (
        ("BerError", None) if expected is None else ("ok", expected))
    if expected is None:
        with pytest.raises(BerError):
            decode_response(data)
    else:
        assert decode_response(data) == Response(1, b"public", 7, 0, 0, [(name, expected)], repaired)


# ==================================================================================================
# 1d. the caches: _NAMES (decode_response) and _ASKED (encode_request)


def test_name_cache_stays_bounded_and_never_changes_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ber, "NAMES_KEPT", 3)
    names: dict[bytes, OID] = {}
    monkeypatch.setattr(ber, "_NAMES", names)
    rng = random.Random(31337)
    pool = [random_oid(rng, 12) for _ in range(5)]
    hits = misses = 0
    datagrams: list[tuple[bytes, Response]] = []
    for case in range(2500):
        state = rng.choice(("as left", "as left", "cleared", "full of others"))
        if state == "cleared":
            names.clear()
        elif state == "full of others":
            names.clear()
            for _ in range(3):
                other = random_oid(rng, 12)
                names[ref_oid_content(other)] = other
        counts: list[tuple[OID, int]] = []
        for _ in range(rng.randint(1, 4)):
            oid = rng.choice(pool)
            counts.append((oid, rng.randrange(2**32)))
            if ref_oid_content(oid) in names:
                hits += 1
            else:
                misses += 1
        expected = Response(1, b"public", case, 0, 0, [(o, SnmpValue("counter32", c)) for o, c in counts])
        data = datagram(1, b"public", case, [ref_tlv(0x30, ref_encode_oid(o) + sim.encode_value(
            sim.Value(0x41, c))) for o, c in counts])
        assert decode_response(data) == expected, (case, state)
        assert len(names) <= 3, names
        assert all(_oid_slow(key) == oid for key, oid in names.items())
        datagrams.append((data, expected))
    assert hits > 1000 and misses > 1000, (hits, misses)
    # with the default bound, the same datagrams decode the same with the cache warm (every name a hit)
    monkeypatch.setattr(ber, "NAMES_KEPT", 32_768)
    for data, expected in datagrams:
        assert decode_response(data) == expected
    kept = [oid for oid in pool if len(ref_oid_content(oid)) <= ber.KEPT_OCTETS]
    assert len(names) == len(kept) and all(names[ref_oid_content(oid)] == oid for oid in kept)


def test_long_names_are_decoded_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A datagram on the agent's socket need not answer anything: a long name it carries must not cost
    the cache kilobytes (one of 1,400 octets cost 12.7 kB)."""
    names: dict[bytes, OID] = {}
    monkeypatch.setattr(ber, "_NAMES", names)
    short, long = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 7), (1, 3, 6, 1, 4, 1, *range(1, 120))
    data = datagram(1, b"public", 7, [ref_tlv(0x30, ref_encode_oid(o) + sim.encode_value(sim.Value(0x41, 5)))
                                      for o in (short, long)])
    assert [oid for oid, _ in decode_response(data).varbinds] == [short, long]
    assert list(names.values()) == [short]
    asked: dict[OID, bytes] = {}
    monkeypatch.setattr(ber, "_ASKED", asked)
    encode_request(1, b"public", GET, 1, [short, long])
    assert list(asked) == [short]


def test_varbind_cache_stays_bounded_and_never_changes_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ber, "ASKED_KEPT", 3)
    asked: dict[OID, bytes] = {}
    monkeypatch.setattr(ber, "_ASKED", asked)
    rng = random.Random(5150)
    pool = [random_oid(rng, rng.choice((12, 12, 140))) for _ in range(4)]
    hits = misses = 0
    for case in range(2500):
        state = rng.choice(("as left", "as left", "as left", "cleared", "full of others"))
        if state == "cleared":
            asked.clear()
        elif state == "full of others":
            asked.clear()
            for _ in range(3):
                other = random_oid(rng, 12)
                asked[other] = ref_tlv(0x30, ref_encode_oid(other) + b"\x05\x00")
        oids = [rng.choice(pool) for _ in range(rng.randint(0, 4))]
        for oid in oids:
            if oid in asked:
                hits += 1
            else:
                misses += 1
        version, community = rng.choice((0, 1)), rng.choice((b"public", b"", b"c" * 150))
        pdu, request_id = rng.choice((GET, GET_NEXT, GET_BULK)), rng.randint(0, 2**31 - 1)
        non_repeaters, max_repetitions = rng.randint(0, 5), rng.randint(0, 300)
        got = encode_request(version, community, pdu, request_id, oids, non_repeaters, max_repetitions)
        bulk = pdu == GET_BULK
        expected = sim.encode_message_parts(
            version, community, pdu, request_id, non_repeaters if bulk else 0, max_repetitions if bulk else 0,
            [ref_tlv(0x30, ref_encode_oid(oid) + b"\x05\x00") for oid in oids])
        assert got == expected, (case, state)
        assert len(asked) <= 3, asked
        assert all(v == ref_tlv(0x30, ref_encode_oid(k) + b"\x05\x00") for k, v in asked.items())
    assert hits > 800 and misses > 1500, (hits, misses)


# ==================================================================================================
# 2. rows_plainly_increase implies row_order_problem is None


def number(i: int) -> SnmpValue:
    return SnmpValue("counter32", i)


def successor(device: list[OID], oid: OID) -> OID | None:
    i = bisect.bisect_right(device, oid)
    return device[i] if i < len(device) else None


def rfc_answer(device: list[OID], asked: Sequence[OID], reps: int) -> list[OID]:
    """RFC 3416's answer to a GETBULK of ``asked``, cut short where a successor is missing (there the
    device would send endOfMibView, which is not an ordinary number)."""
    above, out = list(asked), list[OID]()
    for _ in range(reps):
        for j, cursor in enumerate(above):
            nxt = successor(device, cursor)
            if nxt is None:
                return out
            out.append(nxt)
            above[j] = nxt
    return out


def random_table(rng: random.Random, rectangular: bool) -> tuple[list[OID], list[OID]]:
    """(column roots, every OID of the device): a table's columns with one- or two-arc indices, a few
    objects before and after it."""
    entry = (1, 3, 6, 1, 2, 1, 2, 2, 1)
    columns: list[OID] = [(*entry, c) for c in sorted(rng.sample(range(1, 25), rng.randint(1, 6)))]

    def indices() -> list[tuple[int, ...]]:
        if rng.random() < 0.7:
            return [(i,) for i in rng.sample(range(1, 400), rng.randint(0, 12))]
        return [(rng.randint(1, 4), rng.randint(0, 300)) for _ in range(rng.randint(0, 12))]

    shared = indices()
    device = {(*c, *i) for c in columns for i in (shared if rectangular else indices())}
    device |= {(1, 3, 6, 1, 2, 1, 1, k, 0) for k in range(1, 4)}
    device |= {(1, 3, 6, 1, 2, 1, 2, 3, k) for k in range(rng.choice((0, 3, 40)))}
    return columns, sorted(device)


def test_rows_plainly_increase_is_true_on_well_formed_row_by_row_answers() -> None:
    rng = random.Random(8086)
    shapes: Counter[str] = Counter()
    for case in range(3000):
        rectangular = rng.random() < 0.5
        columns, device = random_table(rng, rectangular)
        rows = sorted({o[len(columns[0]):] for o in device if o[:len(columns[0])] in columns})
        if rectangular and rows and rng.random() < 0.6:
            if rng.random() < 0.5:  # a table's column roots
                asked, shape = list(columns), "column roots"
            else:  # every column at one row
                index = rng.choice(rows)
                asked, shape = [(*c, *index) for c in columns], "one row of every column"
        else:  # cursors: OIDs the device has, in increasing order
            asked, shape = sorted(rng.sample(device, rng.randint(1, min(6, len(device))))), "cursors"
        oids = rfc_answer(device, asked, rng.randint(1, 15))
        assert rows_plainly_increase(asked, oids), (case, asked, oids)
        assert row_order_problem(asked, [(o, number(i)) for i, o in enumerate(oids)]) is None
        shapes[shape] += 1
    assert min(shapes.values()) > 400, shapes


def rows_by_row_after_perturbation(rng: random.Random, device: list[OID], asked: list[OID]) -> list[OID]:
    """A row-by-row answer, then one perturbation: swapped, repeated, replaced, removed, truncated."""
    oids = rfc_answer(device, asked, rng.randint(1, 8))
    if not oids:
        return oids
    kind, i = rng.randrange(6), rng.randrange(len(oids))
    j = rng.randrange(len(oids))
    if kind == 0:
        oids[i], oids[j] = oids[j], oids[i]
    elif kind == 1:
        oids[i] = oids[j]
    elif kind == 2:
        oids[i] = rng.choice(device)
    elif kind == 3:
        del oids[i]
    elif kind == 4:  # a neighbour's OID, or one just past it: equalities at the boundaries
        k = min(len(oids) - 1, i + 1)
        oids[i] = oids[k] if rng.random() < 0.5 else (*oids[k], 0)
    else:
        oids = oids[:i]
    return oids


def column_by_column(device: list[OID], asked: list[OID], reps: int) -> list[OID]:
    out: list[OID] = []
    for cursor in asked:
        after = device[bisect.bisect_right(device, cursor):][:reps]
        out.extend(after)
    return out


def tiny_oid(rng: random.Random) -> OID:
    return tuple(rng.randrange(3) for _ in range(rng.randint(1, 3)))


def test_rows_plainly_increase_implies_no_row_order_problem() -> None:
    rng = random.Random(1987)
    kinds: Counter[str] = Counter()
    plain: Counter[str] = Counter()
    cases = 8000
    for case in range(cases):
        kind = rng.choice(("rfc", "perturbed", "column by column", "first only", "tiny random"))
        if kind == "tiny random":  # a tiny OID space: many ties and boundary equalities
            asked = [tiny_oid(rng) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.7:
                asked = sorted(set(asked))
            oids = [tiny_oid(rng) for _ in range(rng.randint(0, 12))]
        else:
            columns, device = random_table(rng, rectangular=rng.random() < 0.5)
            if rng.random() < 0.5:
                asked = list(columns)
            else:
                asked = sorted(rng.sample(device, rng.randint(1, min(5, len(device)))))
            if rng.random() < 0.15:
                rng.shuffle(asked)
            reps = rng.randint(1, 8)
            if kind == "rfc":
                oids = rfc_answer(device, asked, reps)
            elif kind == "perturbed":
                oids = rows_by_row_after_perturbation(rng, device, asked)
            elif kind == "column by column":
                oids = column_by_column(device, asked, reps)
            else:
                oids = column_by_column(device, asked[:1], reps * len(asked))
        varbinds = [(oid, number(i)) for i, oid in enumerate(oids)]
        kinds[kind] += 1
        if rows_plainly_increase(asked, oids):
            plain[kind] += 1
            assert row_order_problem(asked, varbinds) is None, (case, kind, asked, oids)
    # the quick check says yes often, also where the inputs are close to wrong ones
    assert sum(plain.values()) > cases * 0.3, (plain, kinds)
    assert all(plain[k] > 100 for k in kinds), (plain, kinds)


# ==================================================================================================
# 3. SnmpTarget.walk_columns with and without its fast paths


END = SnmpValue("end_of_mib_view", None)
NULL = SnmpValue("null", None)
ENTRY: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)
SYS_DESCR: OID = (1, 3, 6, 1, 2, 1, 1, 1, 0)
BULK_FAULTS = ("truncate", "column by column", "first only", "end", "absent repeating", "absent value",
               "repeat", "decrease", "past", "skip", "skip", "shuffle", "text", "timeout", "too big",
               "gen err", "empty")
NESTED_FAULTS = ("first only", "skip", "column by column")  # what a subtree inside another is sensitive to
NEXT_FAULTS = ("repeat", "decrease", "past", "end", "absent repeating", "absent value", "two", "none",
               "gen err", "timeout", "text")


@dataclass(frozen=True)
class Answer:
    """A device's response (an agent.snmp.session.Reply)."""

    varbinds: list[VB]
    error_status: int = 0
    error_index: int = 0
    error_name: str = "noError"


class ScriptedDevice:
    """A Session over a sorted list of (OID, value) rows, answering as RFC 3416 says, except that each
    response is spoilt with probability ``rate`` by one of the faults above, drawn from its own
    ``random.Random(seed)``: two devices with the same seed asked the same requests answer the same."""

    def __init__(self, rows: list[VB], version: str, seed: int, rate: float,
                 faults: Sequence[str] | None = None) -> None:
        self.creds = Credentials(version=version)
        self.host, self.port = "192.0.2.9", 161
        self.rows = sorted(rows, key=lambda row: row[0])
        self.oids = [oid for oid, _ in self.rows]
        self.rng = random.Random(seed)
        self.rate = rate
        self.only = faults  # the faults to choose from (default: all)
        self.requests: list[tuple[str, tuple[OID, ...], int]] = []
        self.faults: Counter[str] = Counter()

    def _after(self, oid: OID) -> VB | None:
        i = bisect.bisect_right(self.oids, oid)
        return self.rows[i] if i < len(self.rows) else None

    def _fault(self, faults: Sequence[str]) -> str | None:
        if len(self.requests) > 3000:  # a walk that never ends: fail instead of hanging
            raise AssertionError(f"runaway walk: {len(self.requests)} requests, the last ones "
                                 f"{self.requests[-3:]}")
        fault = self.rng.choice(self.only or faults) if self.rng.random() < self.rate else None
        self.faults[fault or "none"] += 1
        return fault

    async def get(self, oids: Sequence[OID]) -> Answer:
        raise AssertionError("a walk does not GET")

    async def get_next(self, oid: OID) -> Answer:
        self.requests.append(("next", (oid,), 0))
        fault = self._fault(NEXT_FAULTS)
        row = self._after(oid)
        if fault == "timeout":
            raise SnmpTimeout("no answer from 192.0.2.9:161")
        if fault == "gen err":
            return Answer([(oid, NULL)], 5, 1, "genErr")
        if fault in ("two", "none"):
            return Answer([(oid, NULL)] * (2 if fault == "two" else 0))
        if row is None:
            return Answer([(oid, NULL)], 2, 1, "noSuchName")
        found, value = row
        if fault == "repeat":
            found = oid
        elif fault == "decrease":
            found = self.rng.choice((SYS_DESCR, oid[:-1]))
        elif fault == "past":
            found = (1, 3, 6, 1, 2, 1, 2, 3, self.rng.randint(0, 3))
        elif fault == "end":
            found, value = oid, END
        elif fault == "absent repeating":
            found, value = oid, SnmpValue(self.rng.choice(("no_such_object", "no_such_instance")), None)
        elif fault == "absent value":
            value = SnmpValue("no_such_instance", None)
        elif fault == "text":
            value = SnmpValue("octets", b"42")
        return Answer([(found, value)])

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> Answer:
        self.requests.append(("bulk", tuple(oids), max_repetitions))
        fault = self._fault(BULK_FAULTS)
        if fault == "timeout":
            raise SnmpTimeout("no answer from 192.0.2.9:161")
        if fault == "too big":
            return Answer([], 1, 0, "tooBig")
        if fault == "gen err":
            return Answer([(oids[0], NULL)], 5, 1, "genErr")
        if fault == "empty":
            return Answer([])
        n, rng = len(oids), self.rng
        if fault == "column by column":
            varbinds: list[VB] = []
            for cursor in oids:
                after = self.rows[bisect.bisect_right(self.oids, cursor):][:max_repetitions]
                varbinds += after + [(cursor, END)] * (max_repetitions - len(after))
            return Answer(varbinds)
        if fault == "first only":
            after = self.rows[bisect.bisect_right(self.oids, oids[0]):][:max_repetitions * n]
            return Answer(after or [(oids[0], END)])
        varbinds = self._rfc(oids, max_repetitions)
        i = rng.randrange(len(varbinds))
        above = oids[i] if i < n else varbinds[i - n][0]
        oid, value = varbinds[i]
        if fault == "truncate":
            varbinds = varbinds[:max(1, i)]
        elif fault == "end":
            varbinds[i] = (above, END)
        elif fault == "absent repeating":
            varbinds[i] = (above, SnmpValue(rng.choice(("no_such_object", "no_such_instance")), None))
        elif fault == "absent value":
            varbinds[i] = (oid, SnmpValue("no_such_object", None))
        elif fault == "repeat":
            varbinds[i] = (above, value)
        elif fault == "decrease":
            varbinds[i] = (rng.choice((SYS_DESCR, varbinds[rng.randrange(i + 1)][0], above[:-1])), value)
        elif fault == "past":
            varbinds[i] = ((1, 3, 6, 1, 2, 1, 2, 3, rng.randint(0, 3)), value)
        elif fault == "skip":  # a later object than the successor: a row (or a column) left out
            later = bisect.bisect_right(self.oids, oid) + rng.randint(0, 30)
            if later < len(self.rows):
                varbinds[i] = self.rows[later]
        elif fault == "shuffle":
            rng.shuffle(varbinds)
        elif fault == "text":
            varbinds[i] = (oid, SnmpValue("octets", b"eth0"))
        return Answer(varbinds)

    def _rfc(self, oids: Sequence[OID], reps: int) -> list[VB]:
        """Repetition by repetition, endOfMibView at the end of the MIB (RFC 3416 section 4.2.3)."""
        varbinds: list[VB] = []
        cursors = list(oids)
        for _ in range(reps):
            ended = 0
            for j, cursor in enumerate(cursors):
                row = self._after(cursor)
                if row is None:
                    varbinds.append((cursor, END))
                    ended += 1
                    continue
                varbinds.append(row)
                cursors[j] = row[0]
            if ended == len(cursors):
                break
        return varbinds


def random_walk_case(rng: random.Random) -> tuple[list[VB], list[OID], bool]:
    """(device rows, roots to walk): a sparse table, a few objects before and after it (or none after:
    the walk then ends at endOfMibView), sometimes one at the very end of a column's subtree; roots in any
    order, sometimes an empty column, a root repeated, or the whole table's entry beside its columns; and
    (the bool) one subtree inside another that walks the same rows: the table's entry beside its first
    column."""
    columns = [(*ENTRY, c) for c in sorted(rng.sample(range(1, 20), rng.randint(1, 6)))]
    rows: list[VB] = [((1, 3, 6, 1, 2, 1, 1, k, 0), SnmpValue("octets", b"sys")) for k in (1, 5)]
    for column in columns:
        if rng.random() < 0.1:
            continue  # an empty column
        two_arcs = rng.random() < 0.2
        for i in rng.sample(range(1, 300), rng.randint(0, 80)):
            index = (i % 5, i) if two_arcs else (i,)
            value = SnmpValue("counter32", i) if rng.random() < 0.7 else SnmpValue("integer", -i)
            rows.append(((*column, *index), value))
    rows += [((1, 3, 6, 1, 2, 1, 2, 3, k), SnmpValue("integer", k)) for k in range(rng.choice((0, 1, 3)))]
    if rng.random() < 0.15:  # an object exactly where a column's subtree ends (the next column's root)
        rows.append(((*ENTRY, rng.choice(columns)[-1] + 1), SnmpValue("integer", 0)))
    rows = list(dict(rows).items())
    if rng.random() < 0.15:
        rows += [((*columns[0], i), SnmpValue("counter32", i)) for i in range(1, rng.randint(3, 40))]
        rows = list(dict(rows).items())
        return rows, [ENTRY, columns[0], *rng.sample(columns[1:], rng.randint(0, len(columns) - 1))], True
    roots = rng.sample(columns, rng.randint(1, len(columns)))
    if rng.random() < 0.1:
        roots.append(rng.choice(roots))
    if rng.random() < 0.15:  # one subtree inside others
        roots.append(rng.choice((ENTRY, ENTRY, ENTRY[:-1], (*roots[0], 1))))
    if rng.random() < 0.05:
        roots.append((*ENTRY, 99))  # a column the device lacks
    return rows, roots, False


def force_general_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk's fast paths off: every response through row_order_problem and the varbind loop."""
    monkeypatch.setattr(agent.snmp.target, "_take_plain_rows", lambda *args: False)
    monkeypatch.setattr(agent.snmp.target, "rows_plainly_increase", lambda *args: False)


@pytest.mark.parametrize("fast", [True, False], ids=["fast paths", "general path"])
@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("reps", [1, 2, 10])
async def test_a_walk_of_the_last_subtrees_of_the_mib_ends(monkeypatch: pytest.MonkeyPatch, fast: bool,
                                                           version: str, reps: int) -> None:
    """Nothing after the table: SNMPv1 answers noSuchName (an empty batch for the walk), v2c endOfMibView;
    either ends the walk, with or without the fast paths, after the same requests."""
    if not fast:
        force_general_walk(monkeypatch)
    columns = [(*ENTRY, 2), (*ENTRY, 10)]
    rows = [((*c, i), SnmpValue("counter32", i)) for c in columns for i in (1, 2, 3)]
    device = ScriptedDevice(rows, version, seed=0, rate=0.0)
    got = await SnmpTarget(device, max_repetitions=reps).walk_columns(columns)
    assert got == [[((*c, i), SnmpValue("counter32", i)) for i in (1, 2, 3)] for c in columns]
    assert len(device.requests) <= 9, device.requests


@pytest.mark.parametrize("fast", [True, False], ids=["fast paths", "general path"])
async def test_a_subtree_inside_another_answered_by_the_first_oid_only(monkeypatch: pytest.MonkeyPatch,
                                                                       fast: bool) -> None:
    """The table's entry beside its first column, on a device that follows only the first OID asked: each
    walk's varbinds lie inside its subtree and increase, yet the rows are not RFC 3416's (the entry's
    successor cannot be E.2.1 when E.2 is followed by E.2.2); the walk starts again one subtree at a
    time and loses nothing."""
    if not fast:
        force_general_walk(monkeypatch)
    column = (*ENTRY, 2)
    rows = [((*column, i), SnmpValue("counter32", i)) for i in range(1, 21)]
    rows += [((*ENTRY, 3, i), SnmpValue("counter32", i)) for i in range(1, 6)]
    first_only = ScriptedDevice(rows, "2c", seed=0, rate=1.0, faults=["first only"])
    got = await SnmpTarget(first_only, max_repetitions=1).walk_columns([ENTRY, column])
    assert got == [rows, rows[:20]]
    # (E.2.1, E.2.2, E.2.3 ...): each walk's share inside its subtree and increasing, not row by row
    assert first_only.requests[0] == ("bulk", (ENTRY, column), 4)
    assert all(len(oids) == 1 for _, oids, _ in first_only.requests[1:]), first_only.requests


async def test_walk_columns_gives_the_same_with_and_without_its_fast_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Random tables, roots, versions, max-repetitions, row caps and device faults, each walked twice on
    devices that answer alike: with the fast paths, and with ``_take_plain_rows`` and
    ``rows_plainly_increase`` forced to False. Rows or error (type and message), every request sent and
    the target's adapted state are the same."""
    original_take = agent.snmp.target._take_plain_rows
    Plain = Callable[[Sequence[OID], list[OID]], bool]
    original_plain: Plain = vars(agent.snmp.target)["rows_plainly_increase"]  # the one the walk calls
    state = {"fast": True}
    calls: Counter[tuple[str, bool]] = Counter()

    def take(*args: object) -> bool:
        if not state["fast"]:
            return False
        result = original_take(*args)  # type: ignore[arg-type]
        calls[("take_plain_rows", result)] += 1
        return result

    def plain(asked: Sequence[OID], oids: list[OID]) -> bool:
        if not state["fast"]:
            return False
        result = original_plain(asked, oids)
        calls[("rows_plainly_increase", result)] += 1
        return result

    monkeypatch.setattr(agent.snmp.target, "_take_plain_rows", take)
    monkeypatch.setattr(agent.snmp.target, "rows_plainly_increase", plain)

    async def run(rows: list[VB], roots: list[OID], version: str, seed: int, rate: float,
                  faults: Sequence[str] | None, reps: int, max_rows: int, fast: bool) -> tuple[object, ...]:
        state["fast"] = fast
        device = ScriptedDevice(rows, version, seed, rate, faults)
        target = SnmpTarget(device, max_repetitions=reps)
        target.answered = seed % 2 == 0  # a device that answered before: timeouts retried once
        try:
            result: object = await target.walk_columns(roots, max_rows=max_rows)
        except SnmpError as exc:
            result = (type(exc).__name__, str(exc))
        return result, device.requests, target.max_repetitions, target._several, device.faults

    rng = random.Random(2718)
    outcomes: Counter[str] = Counter()
    fast_cases = 0
    cases = 1500
    for case in range(cases):
        rows, roots, nested = random_walk_case(rng)
        version = "1" if rng.random() < 0.1 else "2c"
        rate = rng.choice((0.0, 0.0, 0.05, 0.2, 0.5))
        faults = NESTED_FAULTS if nested and rng.random() < 0.7 else None
        reps = rng.choice((1, 2, 3, 5, 5, 10, 25))
        max_rows = rng.choice((100_000, 100_000, 100_000, 100_000, 100_000, 100_000, 1, 3, 10, 60))
        seed = rng.randrange(2**32)
        taken_before = calls[("take_plain_rows", True)]
        fast = await run(rows, roots, version, seed, rate, faults, reps, max_rows, fast=True)
        fast_cases += calls[("take_plain_rows", True)] > taken_before
        general = await run(rows, roots, version, seed, rate, faults, reps, max_rows, fast=False)
        assert fast == general, (case, version, rate, reps, max_rows, seed, roots)
        outcomes["rows" if isinstance(fast[0], list) else fast[0][0]] += 1  # type: ignore[index]
    # most cases, and most responses, take the fast paths; the random faults reach every error
    assert fast_cases > cases * 0.55, (fast_cases, calls)
    assert calls[("take_plain_rows", True)] > 2 * calls[("take_plain_rows", False)], calls
    assert calls[("rows_plainly_increase", True)] > 250, calls
    assert calls[("rows_plainly_increase", False)] > 100, calls
    assert outcomes["rows"] > cases * 0.5, outcomes
    errors = {"SnmpNotIncreasing", "SnmpTooManyRows", "SnmpWrongOid", "SnmpTimeout", "SnmpError"}
    assert errors <= set(outcomes), outcomes


# ==================================================================================================
# 4. map_table: the direct short path against metric_value


def random_snmp_value(rng: random.Random) -> SnmpValue:
    """A value of any kind the sessions return, with the numbers that matter to the mapping: zeros,
    Integer32 edges and beyond, Counter64 up to 2**64-1, numbers as text, Opaque floats."""
    kind = rng.choice(("integer", "integer", "counter32", "gauge32", "timeticks", "counter64", "counter64",
                       "octets", "opaque", "oid", "ipaddress", "null", "no_such_object",
                       "no_such_instance", "end_of_mib_view", "unknown"))
    if kind == "integer":
        return SnmpValue(kind, rng.choice((0, 0, 1, 2, 3, 7, 8, -1, -5, 2**31 - 1, -(2**31), 2**31,
                                           -(2**31) - 1, 4294967295, rng.randint(-(2**31), 2**31 - 1),
                                           rng.randint(-(2**40), 2**40))))
    if kind in ("counter32", "gauge32", "timeticks"):
        return SnmpValue(kind, rng.choice((0, 0, 1, 3, 10, 2**31, 2**32 - 1, rng.randrange(2**32))))
    if kind == "counter64":
        return SnmpValue(kind, rng.choice((0, 1, 2**63, 2**64 - 1, rng.randrange(2**64))))
    if kind == "octets":
        return SnmpValue(kind, rng.choice((b"12", b" 3.5 ", b"-7", b"0", b"0.0", b"1e3", b"abc", b"", b"nan",
                                           b"inf", b"-inf", b"\xff\xfe", b"eth0", b"4294967296")))
    if kind == "opaque":
        return SnmpValue(kind, rng.choice((
            b"\x9f\x78\x04\x3f\xc0\x00\x00",  # float 1.5
            b"\x9f\x78\x04\x7f\x80\x00\x00",  # float +inf
            b"\x9f\x79\x08" + bytes(8),  # double 0.0
            b"\x9f\x76\x02\x01\x00",  # counter64 256
            b"\x9f\x7a\x01\xff",  # integer64 -1
            b"1.5", b"\x01\x02")))
    if kind == "oid":
        return SnmpValue(kind, "1.3.6.1.4.1.9")
    if kind == "ipaddress":
        return SnmpValue(kind, "10.0.0.1")
    return SnmpValue(kind, None)


def random_columns(rng: random.Random, table: TableSpec) -> dict[OID, dict[str, SnmpValue]]:
    """Every column the table reads, each present at a random subset of a few row indices (or absent);
    label columns hold text."""
    indices = [str(i) for i in rng.sample(range(1, 60), rng.randint(0, 6))]
    metric_columns = {c for spec in table.metrics for c in (
        spec.source.parsed if spec.source else None, spec.fallback.parsed if spec.fallback else None) if c}
    columns: dict[OID, dict[str, SnmpValue]] = {}
    for column in sorted(metric_columns):
        if rng.random() < 0.1:
            continue
        bias = rng.random()  # some columns mostly numbers, some mostly zeros, some anything
        columns[column] = {
            index: (SnmpValue("counter64", rng.randrange(2**64)) if bias < 0.3
                    else SnmpValue("integer", 0) if bias < 0.4 else random_snmp_value(rng))
            for index in indices if rng.random() < 0.8}
    for label in table.labels.values():
        columns[label.parsed] = {index: SnmpValue("octets", f"port {index}".encode()) for index in indices}
    return columns


T = "1.3.6.1.4.1.99999.7.1"  # a made-up table entry


def metric(name: str, column: int, **fields: object) -> MetricSpec:
    return MetricSpec(name=name, type="gauge", help=f"{name} (test)", oid=f"{T}.{column}", **fields)  # type: ignore[arg-type]


def hand_built_tables() -> list[TableSpec]:
    labels = {"name": LabelSpec(oid=f"{T}.30")}
    speed = [
        metric("t_speed_bytes", 1, scale=125000,
               fallback=Source(oid=f"{T}.2", scale=0.125, when_primary_zero=True)),
        metric("t_status", 3, valid=ValidRange(min=1, max=7)),
        metric("t_temperature_celsius", 4, scale=0.01, valid=ValidRange(min=-5000, max=15000),
               fallback=Source(oid=f"{T}.5", scale=0.1)),
        metric("t_load", 6, scale=0.01, valid=ValidRange(max=10000),
               fallback=Source(oid=f"{T}.7", when_primary_zero=True)),
    ]
    counters = [
        MetricSpec(name="t_bytes_total", type="counter", help="bytes", oid=f"{T}.8",
                   const_labels={"dir": "in"}),
        MetricSpec(name="t_bytes_total", type="counter", help="bytes", oid=f"{T}.9",
                   const_labels={"dir": "out"}, fallback=Source(oid=f"{T}.10")),
        metric("t_ratio", 11, scale=0.125, valid=ValidRange(min=0)),
        metric("t_scaled_zero", 12, scale=0.01, fallback=Source(oid=f"{T}.13", scale=100,
                                                                   when_primary_zero=True)),
        metric("t_unsigned", 14, as_unsigned=True, fallback=Source(oid=f"{T}.15")),  # no direct path
        metric("t_unknown", 16, unknown=[0.0], valid=ValidRange(min=0, max=100)),  # no direct path
    ]
    return [TableSpec(name="speeds", index_label="idx", labels=labels, metrics=speed),
            TableSpec(name="counters", index_label="idx", labels=labels, metrics=counters),
            TableSpec(name="both", index_label="port", metrics=speed + counters)]


def test_the_tables_have_direct_and_general_metrics() -> None:
    interfaces = load_profiles()["interfaces"].tables[0]
    directs = [spec.direct for spec in interfaces.metrics]
    assert sum(d is not None for d in directs) >= 10 and None in directs
    assert any(d is not None and d.zero_falls_back for d in directs)
    assert any(d is not None and d.valid is not None for d in directs)
    both = hand_built_tables()[2]
    assert [spec.direct is None for spec in both.metrics] == [False] * 8 + [True] * 2
    assert isinstance(both.metrics[0].direct, Direct) and both.metrics[0].direct.zero_falls_back


def test_map_table_direct_path_equals_metric_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random columns for the built-in interfaces table and the hand-built ones, mapped with the direct
    path and with ``direct_number`` forced to None (every metric through ``metric_value``): the same
    families (compared by repr, so 5 and 5.0 differ) and the same ``bad`` list, in the same order."""
    interfaces = load_profiles()["interfaces"].tables[0]
    tables = [interfaces, *hand_built_tables()]
    original: Callable[[Direct, SnmpValue], float | None] = vars(agent.mapping)["direct_number"]
    state = {"fast": True}
    calls: Counter[str] = Counter()

    def direct(spec: Direct, value: SnmpValue) -> float | None:
        if not state["fast"]:
            return None
        result = original(spec, value)
        calls["number" if result is not None else "None"] += 1
        return result

    monkeypatch.setattr(agent.mapping, "direct_number", direct)
    rng = random.Random(6502)
    epochs = (None, Epoch(start=1_700_000_000.0, uptime=1_000_000.0, boot_time=1_699_999_000.0))
    reported = 0
    cases = 2400
    for case in range(cases):
        table = tables[case % len(tables)]
        columns = random_columns(rng, table)
        epoch = rng.choice(epochs)
        state["fast"] = True
        bad_fast: list[agent.mapping.BadValue] = []
        fast = map_table(table, columns, epoch=epoch, bad=bad_fast)
        state["fast"] = False
        bad_general: list[agent.mapping.BadValue] = []
        general = map_table(table, columns, epoch=epoch, bad=bad_general)
        # repr: 5 and 5.0 differ there (ints travel exactly, Counter64 values too)
        assert repr(fast) == repr(general), (case, table.name, columns)
        assert bad_fast == bad_general, (case, table.name, columns)
        assert map_table(table, columns, epoch=epoch) == fast  # without a bad list
        reported += len(bad_fast)
    total = calls["number"] + calls["None"]
    assert calls["number"] > total * 0.3 and calls["None"] > total * 0.3, calls
    assert reported > 1000


# ==================================================================================================
# 5. rows_by_index


def test_rows_by_index_equals_a_dict_comprehension() -> None:
    rng = random.Random(1066)
    one_arc = 0
    cases = 4000
    for case in range(cases):
        column = tuple(rng.randrange(50) for _ in range(rng.randint(1, 12)))
        shape = rng.choice(("one arc", "one arc", "several arcs", "mixed"))
        varbinds: list[VB] = []
        for k in range(rng.randint(0, 30)):
            if shape == "one arc":
                index: tuple[int, ...] = (rng.choice((0, 1, rng.randrange(2**32))),)
            elif shape == "several arcs":
                index = tuple(rng.randrange(300) for _ in range(rng.randint(2, 6)))
            else:
                index = tuple(rng.randrange(300) for _ in range(rng.randint(0, 4)))
            varbinds.append(((*column, *index), SnmpValue("integer", k)))
        expected = {".".join(map(str, oid[len(column):])): value for oid, value in varbinds}
        got = rows_by_index(column, varbinds)
        assert list(got.items()) == list(expected.items()), (case, column, varbinds)
        one_arc += all(len(oid) == len(column) + 1 for oid, _ in varbinds)
    assert cases * 0.9 > one_arc > cases * 0.4, one_arc


def test_rows_by_index_hand_picked() -> None:
    column: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)
    v = [SnmpValue("counter32", i) for i in range(4)]
    assert rows_by_index(column, []) == {}
    assert rows_by_index(column, [((*column, 1), v[0]), ((*column, 3), v[1])]) == {"1": v[0], "3": v[1]}
    assert rows_by_index(column, [((*column, 1), v[0]), ((*column, 1), v[1])]) == {"1": v[1]}
    assert rows_by_index(column, [((*column, 1, 2), v[0]), ((*column, 3), v[1]), (column, v[2])]) == {
        "1.2": v[0], "3": v[1], "": v[2]}


# ==================================================================================================
# 6. gc settings


def test_tune_for_service_raises_the_young_threshold_and_freezes_what_start_up_made() -> None:
    before = gc.get_threshold()
    try:
        gc_settings.tune_for_service()
        assert gc.get_threshold()[0] == gc_settings.YOUNG_COLLECTION_AFTER
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()

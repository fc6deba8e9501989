"""Tests of the simulator's BER codec, including a cross-check against pyasn1/pysnmp."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as asn1_decoder
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto import api

from hatang.sim import ber
from hatang.sim.ber import BerError, Message, Pdu, Value

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)


def roundtrip(v: Value) -> Value:
    return ber.decode_value(ber.encode_value(v))


@pytest.mark.parametrize("v", [
    ber.integer(0), ber.integer(1), ber.integer(-1), ber.integer(127), ber.integer(128), ber.integer(-128),
    ber.integer(-129), ber.integer(2**31 - 1), ber.integer(-(2**31)),
    ber.counter32(0), ber.counter32(2**32 - 1), ber.gauge32(2**31), ber.timeticks(2**32 - 1),
    ber.counter64(0), ber.counter64(2**63), ber.counter64(2**64 - 1),
    ber.octets(b""), ber.octets("Đường truyền số liệu chuyên dùng"), ber.octets(bytes(range(256)) * 2),
    ber.ip_address(b"\x0a\x00\x00\x01"), ber.opaque(b"\x9f\x78\x04\x42\xf6\x00\x00"),
    ber.oid((0, 0)), ber.oid((1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)), ber.oid((2, 999, 2**28 + 5, 2**32 - 1)),
    ber.NULL_VALUE, ber.NO_SUCH_OBJECT_VALUE, ber.NO_SUCH_INSTANCE_VALUE, ber.END_OF_MIB_VIEW_VALUE,
])
def test_value_roundtrip(v: Value) -> None:
    assert roundtrip(v) == v


@pytest.mark.parametrize(("v", "encoded"), [
    (ber.counter32(2**32 - 1), "41 05 00 ff ff ff ff"),
    (ber.counter64(2**64 - 1), "46 09 00 ff ff ff ff ff ff ff ff"),
    (ber.counter32(0), "41 01 00"),
    (ber.integer(-1), "02 01 ff"),
    (ber.integer(-129), "02 02 ff 7f"),
    (ber.integer(128), "02 02 00 80"),
    (ber.gauge32(128), "42 02 00 80"),
    (ber.oid((1, 3, 6, 1, 2, 1, 1, 1, 0)), "06 08 2b 06 01 02 01 01 01 00"),
    (ber.oid((1, 3, 128, 16383, 16384)), "06 08 2b 81 00 ff 7f 81 80 00"),
    (ber.oid((1, 3, 2**32 - 1)), "06 06 2b 8f ff ff ff 7f"),
    (ber.oid((2, 100)), "06 02 81 34"),
    (ber.END_OF_MIB_VIEW_VALUE, "82 00"),
])
def test_exact_encodings(v: Value, encoded: str) -> None:
    assert ber.encode_value(v) == bytes.fromhex(encoded)


@pytest.mark.parametrize(("size", "header"), [(127, "04 7f"), (128, "04 81 80"), (255, "04 81 ff"),
                                              (256, "04 82 01 00"), (70000, "04 83 01 11 70")])
def test_long_form_lengths(size: int, header: str) -> None:
    encoded = ber.encode_value(ber.octets(b"x" * size))
    assert encoded.startswith(bytes.fromhex(header))
    assert len(encoded) == len(bytes.fromhex(header)) + size
    assert ber.decode_value(encoded) == ber.octets(b"x" * size)


def test_long_oid_roundtrip() -> None:
    long_oid = (1, 3, 6, 1, 4, 1, 2**28 + 1, 200, 2**32 - 1, *range(0, 1000, 9))
    assert ber.decode_oid(ber.encode_oid(long_oid)) == long_oid


@pytest.mark.parametrize("make", [ber.counter32, ber.gauge32, ber.timeticks, ber.counter64, ber.integer])
def test_constructors_reject_out_of_range(make: object) -> None:
    assert callable(make)
    with pytest.raises(BerError):
        make(2**64)
    with pytest.raises(BerError):
        make(-(2**31) - 1)


@pytest.mark.parametrize("bad", [(1,), (3, 1), (1, 40), (1, 3, -1), (1, 3, 2**32), ()])
def test_invalid_oids_rejected(bad: tuple[int, ...]) -> None:
    with pytest.raises(BerError):
        ber.oid(bad)


@pytest.mark.parametrize("data", [
    "", "30", "30 05 02 01 00", "30 80 00 00", "30 85 00 00 00 00 01", "1f 01 00", "06 00", "06 02 2b 81",
    "06 02 80 01", "02 00", "02 0a 00 00 00 00 00 00 00 00 00 01", "41 01 ff",
    "46 0a 01 00 00 00 00 00 00 00 00 00", "40 03 01 02 03", "05 01 00", "47 01 00",
    "06 06 2b 90 80 80 80 00", "06 07 2b 81 80 80 80 80 00",
])
def test_malformed_values(data: str) -> None:
    with pytest.raises(BerError):
        ber.decode_value(bytes.fromhex(data))


def sample_request() -> Message:
    return Message(ber.VERSION_2C, b"public", Pdu(ber.GET_BULK_REQUEST, 12345, 1, 25, (
        (SYS_DESCR, ber.NULL_VALUE), ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1), ber.NULL_VALUE))))


def test_message_roundtrip_and_truncations() -> None:
    msg = sample_request()
    data = ber.encode_message(msg)
    decoded = ber.decode_message(data)
    assert decoded == msg
    assert (decoded.pdu.non_repeaters, decoded.pdu.max_repetitions) == (1, 25)
    for cut in range(len(data)):
        with pytest.raises(BerError):
            ber.decode_message(data[:cut])
    with pytest.raises(BerError):
        ber.decode_message(data + b"\x00")


def test_v3_and_trap_v1_are_rejected() -> None:
    v3 = ber.encode_message(sample_request()).replace(b"\x02\x01\x01", b"\x02\x01\x03", 1)
    with pytest.raises(BerError, match="version"):
        ber.decode_message(v3)
    trap_v1 = bytes.fromhex("30 0c 02 01 00 04 01 70 a4 04 06 02 2b 06")
    with pytest.raises(BerError):
        ber.decode_message(trap_v1)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_ber_error(data: bytes) -> None:
    with contextlib.suppress(BerError):
        ber.decode_message(data)
    with contextlib.suppress(BerError):
        ber.decode_value(data)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_mutated_messages_only_raise_ber_error(data: st.DataObject) -> None:
    encoded = bytearray(ber.encode_message(sample_request()))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BerError):
        ber.decode_message(bytes(encoded))


oids = st.tuples(st.integers(0, 1), st.integers(0, 39)).flatmap(
    lambda head: st.lists(st.integers(0, 2**32 - 1), max_size=20).map(lambda rest: head + tuple(rest)))
values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(ber.integer), st.integers(0, 2**32 - 1).map(ber.counter32),
    st.integers(0, 2**32 - 1).map(ber.gauge32), st.integers(0, 2**32 - 1).map(ber.timeticks),
    st.integers(0, 2**64 - 1).map(ber.counter64), st.binary(max_size=300).map(ber.octets),
    st.binary(min_size=4, max_size=4).map(ber.ip_address), st.binary(max_size=20).map(ber.opaque),
    oids.map(ber.oid), st.sampled_from([ber.NULL_VALUE, ber.NO_SUCH_OBJECT_VALUE, ber.END_OF_MIB_VIEW_VALUE]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(oids, values), max_size=30), st.integers(-(2**31), 2**31 - 1))
def test_response_roundtrip_property(varbinds: list[tuple[tuple[int, ...], Value]], request_id: int) -> None:
    msg = Message(ber.VERSION_2C, b"c\xc3\xb4ng", Pdu(ber.RESPONSE, request_id, 0, 0, tuple(varbinds)))
    assert ber.decode_message(ber.encode_message(msg)) == msg


# ---------------------------------------------------------------- cross-check with pyasn1 / pysnmp

P = api.v2c


def test_pysnmp_request_decodes() -> None:
    pdu = P.GetBulkRequestPDU()
    P.apiBulkPDU.set_defaults(pdu)
    P.apiBulkPDU.set_request_id(pdu, 4242)
    P.apiBulkPDU.set_non_repeaters(pdu, 1)
    P.apiBulkPDU.set_max_repetitions(pdu, 300)
    P.apiBulkPDU.set_varbinds(pdu, [(SYS_DESCR, P.Null("")), ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10), P.Null(""))])
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, "public")
    P.apiMessage.set_pdu(msg, pdu)
    decoded = ber.decode_message(asn1_encoder.encode(msg))
    assert decoded == Message(1, b"public", Pdu(ber.GET_BULK_REQUEST, 4242, 1, 300, (
        (SYS_DESCR, ber.NULL_VALUE), ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10), ber.NULL_VALUE))))


def test_our_response_decodes_in_pyasn1_and_bytes_match() -> None:
    ours = [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), ber.timeticks(2**32 - 1), P.TimeTicks(2**32 - 1)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), ber.counter32(2**32 - 1), P.Counter32(2**32 - 1)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 5, 1), ber.gauge32(10**9), P.Gauge32(10**9)),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), ber.counter64(2**64 - 1), P.Counter64(2**64 - 1)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 1), ber.integer(-5), P.Integer(-5)),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, 1), ber.octets("Bộ phận một cửa"),
         P.OctetString("Bộ phận một cửa".encode())),
        ((1, 3, 6, 1, 2, 1, 1, 2, 0), ber.oid((1, 3, 6, 1, 4, 1, 2**28 + 3)),
         P.ObjectIdentifier((1, 3, 6, 1, 4, 1, 2**28 + 3))),
        ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), ber.ip_address(b"\x0a\x00\x00\x01"),
         P.IpAddress("10.0.0.1")),
        ((1, 3, 6, 1, 2, 1, 99, 0), ber.NO_SUCH_OBJECT_VALUE, P.NoSuchObject("")),
        ((1, 3, 6, 1, 2, 1, 1, 1), ber.NO_SUCH_INSTANCE_VALUE, P.NoSuchInstance("")),
        ((1, 3, 6, 1, 2, 1, 99, 1), ber.END_OF_MIB_VIEW_VALUE, P.EndOfMibView("")),
    ]
    data = ber.encode_message(Message(1, b"public", Pdu(ber.RESPONSE, 77, 0, 0,
                                                        tuple((o, v) for o, v, _ in ours))))
    decoded, rest = asn1_decoder.decode(data, asn1Spec=P.Message())
    assert rest == b""
    pdu = P.apiMessage.get_pdu(decoded)
    assert int(P.apiPDU.get_request_id(pdu)) == 77
    got = P.apiPDU.get_varbinds(pdu)
    assert [tuple(o) for o, _ in got] == [o for o, _, _ in ours]
    for (_, theirs_decoded), (_, _, theirs) in zip(got, ours, strict=True):
        assert theirs_decoded.tagSet == theirs.tagSet
        assert asn1_encoder.encode(theirs_decoded) == asn1_encoder.encode(theirs)
    # And byte for byte: pyasn1 encodes the same message identically.
    resp = P.ResponsePDU()
    P.apiPDU.set_defaults(resp)
    P.apiPDU.set_request_id(resp, 77)
    P.apiPDU.set_varbinds(resp, [(o, theirs) for o, _, theirs in ours])
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, "public")
    P.apiMessage.set_pdu(msg, resp)
    assert asn1_encoder.encode(msg) == data


def test_trap_v2_decodes_in_pyasn1() -> None:
    trap = ber.make_trap_v2(b"public", 9, 12345, (1, 3, 6, 1, 6, 3, 1, 1, 5, 3),
                            [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), ber.integer(7))])
    decoded, _ = asn1_decoder.decode(ber.encode_message(trap), asn1Spec=P.Message())
    pdu = P.apiMessage.get_pdu(decoded)
    assert pdu.tagSet == P.SNMPv2TrapPDU.tagSet
    vbs = [(tuple(o), v) for o, v in P.apiPDU.get_varbinds(pdu)]
    assert vbs[0] == (ber.SYS_UPTIME_0, P.TimeTicks(12345))
    assert vbs[1] == (ber.SNMP_TRAP_OID_0, P.ObjectIdentifier((1, 3, 6, 1, 6, 3, 1, 1, 5, 3)))
    assert int(vbs[2][1]) == 7
    assert ber.decode_message(ber.encode_message(trap)) == trap

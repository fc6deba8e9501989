"""Pure parts of agent.snmp (ber, credentials, pysnmp_session.convert) and agent.poll_once: pysnmp values ->
SnmpValue, the repair of negative unsigned integers in v1/v2c datagrams, protocol names, credentials checks,
and the poll report."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.type import univ
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import rfc1902, rfc1905

from agent.config import AgentConfig, DeviceConfig
from agent.poll_once import UnknownDeviceError, format_report, poll_once
from agent.poller import PollOutcome
from agent.snmp.ber import int_tlv, tlv
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpError
from agent.snmp.pysnmp_session import AUTH_PROTOCOLS, PRIV_PROTOCOLS, auth_data, convert
from agent.snmp.unsigned_repair import repair_unsigned
from agent.snmp.v3_discovery import discovery_request, engine_id_of
from agent.snmp.values import SnmpValue
from hatang import configfile
from hatang.sim import ber
from hatang.sim.ber import Value
from wire.messages import Family, ProfileError, Sample

COUNTER64_MAX = 2**64 - 1
OPAQUE_FLOAT = b"\x9f\x78\x04\x3f\x80\x00\x00"  # net-snmp's opaque-wrapped Float 1.0


# ------------------------------------------------------------------------------------------- convert


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (rfc1902.Integer32(-2147483648), SnmpValue("integer", -(2**31))),
        (rfc1902.Integer32(2147483647), SnmpValue("integer", 2**31 - 1)),
        (rfc1902.Integer(-5), SnmpValue("integer", -5)),
        (rfc1902.OctetString(b"\xff\x00ab"), SnmpValue("octets", b"\xff\x00ab")),
        (rfc1902.OctetString("Trạm Đại Mỗ".encode()), SnmpValue("octets", "Trạm Đại Mỗ".encode())),
        (rfc1902.Bits(b"\x80"), SnmpValue("octets", b"\x80")),
        (rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072.3.2.10"), SnmpValue("oid", "1.3.6.1.4.1.8072.3.2.10")),
        (rfc1902.IpAddress("192.168.1.254"), SnmpValue("ipaddress", "192.168.1.254")),
        (rfc1902.Counter32(4294967295), SnmpValue("counter32", 2**32 - 1)),
        (rfc1902.Gauge32(4294967295), SnmpValue("gauge32", 2**32 - 1)),
        (rfc1902.Unsigned32(7), SnmpValue("gauge32", 7)),  # same tag as Gauge32
        (rfc1902.TimeTicks(123456), SnmpValue("timeticks", 123456)),
        (rfc1902.Counter64(COUNTER64_MAX), SnmpValue("counter64", COUNTER64_MAX)),
        (rfc1902.Opaque(OPAQUE_FLOAT), SnmpValue("opaque", OPAQUE_FLOAT)),
        (rfc1902.Null(""), SnmpValue("null", None)),
        (rfc1905.NoSuchObject(""), SnmpValue("no_such_object", None)),
        (rfc1905.NoSuchInstance(""), SnmpValue("no_such_instance", None)),
        (rfc1905.EndOfMibView(""), SnmpValue("end_of_mib_view", None)),
        (univ.Boolean(True), SnmpValue("unknown", None)),  # not an SNMP type
        ("not even asn1", SnmpValue("unknown", None)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, SnmpValue) else v.kind,
)
def test_convert(value: Any, expected: SnmpValue) -> None:
    converted = convert(value)
    assert converted == expected
    assert type(converted.value) is type(expected.value)  # ints stay ints (Counter64 exact), bytes bytes


# ------------------------------------------------------------------------------------------- repair

OID_A = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1)


def response(*values: Value, version: int = ber.VERSION_2C) -> bytes:
    varbinds = [ber.encode_varbind((*OID_A[:-1], i + 1), v) for i, v in enumerate(values)]
    return ber.encode_message_parts(version, b"public", ber.RESPONSE, 4242, 0, 0, varbinds)


def values_of(datagram: bytes) -> list[Value]:
    return [v for _, v in ber.decode_message(datagram).pdu.varbinds]


def test_repair_negative_counter32_and_friends() -> None:
    raw = response(Value(ber.COUNTER32, -5), ber.integer(-5), Value(ber.GAUGE32, -1),
                   Value(ber.TIMETICKS, -2), Value(ber.COUNTER64, -1), ber.octets(b"x" * 200))
    with pytest.raises(ber.BerError):  # the buggy encoding: a strict decoder refuses it, as pyasn1 does
        ber.decode_message(raw)
    fixed = repair_unsigned(raw)
    assert values_of(fixed) == [ber.counter32(2**32 - 5), ber.integer(-5), ber.gauge32(2**32 - 1),
                                ber.timeticks(2**32 - 2), ber.counter64(COUNTER64_MAX),
                                ber.octets(b"x" * 200)]
    assert ber.decode_message(fixed).pdu.request_id == 4242


def test_repair_in_v1_too() -> None:
    fixed = repair_unsigned(response(Value(ber.COUNTER32, -(2**31)), version=ber.VERSION_1))
    assert values_of(fixed) == [ber.counter32(2**31)]


def test_repair_grows_lengths_across_the_long_form_boundary() -> None:
    # 127 bytes of varbinds before the fix; the fix adds one byte per value: the lengths get long forms
    values = [Value(ber.COUNTER32, -1)] * 20
    raw = response(*values)
    fixed = repair_unsigned(raw)
    assert len(fixed) > len(raw)
    assert values_of(fixed) == [ber.counter32(2**32 - 1)] * 20


def test_repair_leaves_good_and_foreign_datagrams_alone() -> None:
    good = response(ber.counter32(2**32 - 1), ber.counter64(COUNTER64_MAX), ber.integer(-1))
    assert repair_unsigned(good) is good
    # the pattern appears inside a string: checked, nothing to change, same object back
    tricky = response(ber.octets(b"\x41\x04\xff\xff\xff\xff"))
    assert repair_unsigned(tricky) is tricky
    # SNMPv3 (version 3) is authenticated: never touched
    v3ish = b"\x30\x0c\x02\x01\x03" + b"\x41\x04\xff\xff\xff\xfb" + b"\x04\x00"
    assert repair_unsigned(v3ish) is v3ish
    junk = b"\x30\x05\x02\x01\x01\x41\x04\xff"  # truncated
    assert repair_unsigned(junk) is junk


_values = st.one_of(
    st.integers(0, 2**32 - 1).map(ber.counter32),
    st.integers(0, 2**32 - 1).map(ber.gauge32),
    st.integers(0, 2**32 - 1).map(ber.timeticks),
    st.integers(0, COUNTER64_MAX).map(ber.counter64),
    st.integers(-(2**31), 2**31 - 1).map(ber.integer),
    st.binary(max_size=300).map(ber.octets),
)


@given(st.lists(_values, max_size=40))
def test_repair_is_identity_on_correct_messages(values: list[Value]) -> None:
    raw = response(*values)
    assert repair_unsigned(raw) == raw


_BITS = {ber.COUNTER32: 32, ber.GAUGE32: 32, ber.TIMETICKS: 32, ber.COUNTER64: 64}


_negative = st.tuples(st.sampled_from(sorted(_BITS)), st.integers(-(2**63), -1))


@given(st.lists(_negative, min_size=1, max_size=30), st.lists(_values, max_size=10))
def test_repair_reads_negative_values_as_twos_complement(
    bad: list[tuple[int, int]], good: list[Value]
) -> None:
    # a device writes the unsigned number into a signed field of its own width
    bad = [(tag, n if _BITS[tag] == 64 else max(n, -(2**31))) for tag, n in bad]
    raw = response(*(Value(tag, n) for tag, n in bad), *good)
    expected = [Value(tag, n % 2 ** _BITS[tag]) for tag, n in bad] + good
    assert values_of(repair_unsigned(raw)) == expected


# ------------------------------------------------------------------------------------------- discovery


def v3_message(engine_id: bytes) -> bytes:
    header = tlv(0x30, int_tlv(7) + int_tlv(65507) + tlv(0x04, b"\x00") + int_tlv(3))
    empty = tlv(0x04, b"")
    usm = tlv(0x04, tlv(0x30, tlv(0x04, engine_id) + int_tlv(5) + int_tlv(1000) + empty * 3))
    return tlv(0x30, int_tlv(3) + header + usm + tlv(0x30, empty + empty + tlv(0xA8, b"")))


def test_discovery_probe_is_a_valid_snmpv3_message() -> None:
    from pyasn1.codec.ber import decoder
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    message, rest = decoder.decode(discovery_request(0x123456), asn1Spec=SNMPv3Message())
    assert rest == b""
    assert int(message["msgVersion"]) == 3
    assert int(message["msgGlobalData"]["msgID"]) == 0x123456
    assert bytes(message["msgGlobalData"]["msgFlags"]) == b"\x04"  # reportable, noAuthNoPriv
    params, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert bytes(params["msgAuthoritativeEngineId"]) == b""
    assert bytes(params["msgUserName"]) == b""


def test_engine_id_of_a_report() -> None:
    engine_id = bytes.fromhex("80001f88805778b0635cf5056b00000000")
    assert engine_id_of(v3_message(engine_id)) == engine_id
    assert engine_id_of(v3_message(b"")) is None
    assert engine_id_of(discovery_request(1)) is None  # a probe carries an empty engine ID
    assert engine_id_of(b"\x30\x03\x02\x01\x01") is None  # v2c
    assert engine_id_of(v3_message(engine_id)[:20]) is None  # truncated
    assert engine_id_of(b"garbage") is None


# ------------------------------------------------------------------------------------------- credentials


def test_aes192_and_aes256_mean_what_net_snmp_means() -> None:
    assert PRIV_PROTOCOLS["AES192"] == hlapi.USM_PRIV_CFB192_AES_BLUMENTHAL
    assert PRIV_PROTOCOLS["AES256"] == hlapi.USM_PRIV_CFB256_AES_BLUMENTHAL
    assert PRIV_PROTOCOLS["AES192C"] == hlapi.USM_PRIV_CFB192_AES  # Reeder ("AES-192-Cisco")
    assert PRIV_PROTOCOLS["AES256C"] == hlapi.USM_PRIV_CFB256_AES
    assert PRIV_PROTOCOLS["AES"] == PRIV_PROTOCOLS["AES128"] == hlapi.USM_PRIV_CFB128_AES
    assert set(AUTH_PROTOCOLS) == {"MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"}


def test_every_config_protocol_name_is_known() -> None:
    from typing import get_args

    from agent.config import AuthProtocol, PrivProtocol

    assert set(get_args(AuthProtocol)) <= set(AUTH_PROTOCOLS)
    assert set(get_args(PrivProtocol)) <= set(PRIV_PROTOCOLS)


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        (Credentials("3", username="u", auth_protocol="SHA1", auth_password="x" * 8),
         "unknown SNMPv3 authentication protocol 'SHA1'; known: MD5, SHA, SHA224"),
        (Credentials("3", username="u", auth_protocol="SHA", auth_password="x" * 8, priv_protocol="3DES",
                     priv_password="y" * 8), "unknown SNMPv3 privacy protocol '3DES'"),
        (Credentials("3", username="u", priv_protocol="AES", priv_password="y" * 8),
         "privacy needs an authentication protocol"),
        (Credentials("3"), "SNMPv3 needs a user name"),
        (Credentials("2"), "unknown SNMP version '2'"),
    ],
)
def test_bad_credentials_are_refused(creds: Credentials, message: str) -> None:
    with pytest.raises(SnmpError, match=message):
        auth_data(creds)


def test_security_level() -> None:
    assert Credentials("2c").security_level() == "community"
    assert Credentials("3", username="u").security_level() == "noAuthNoPriv"
    assert Credentials("3", username="u", auth_protocol="SHA").security_level() == "authNoPriv"
    full = Credentials("3", username="u", auth_protocol="SHA", priv_protocol="AES")
    assert full.security_level() == "authPriv"


# ------------------------------------------------------------------------------------------- report


def device(**snmp: Any) -> DeviceConfig:
    return configfile.validate(DeviceConfig, {"name": "sw-1", "address": "10.0.0.2", "interval": 60,
                                        "profiles": ["system", "interfaces"],
                                        "snmp": snmp or {"version": "2c"}})


def test_report_of_a_good_poll() -> None:
    families = (
        Family("hatang_device_info", "gauge", "Identity.", (
            Sample((("sys_name", 'Trạm "A"\\B\nC'),), 1),)),
        Family("hatang_interface_in_bytes_total", "counter", "Bytes in\nwith newline.", (
            Sample((("if_index", "1"),), COUNTER64_MAX), Sample((("if_index", "2"),), 0.5))),
    )
    outcome = PollOutcome(ts=1.0, up=True, duration=0.1234, errors=(), families=families)
    report = format_report(device(), outcome, (("agent", "a1"), ("device", "sw-1")))
    assert report == (
        "device sw-1 at 10.0.0.2:161, SNMP v2c, profiles: system, interfaces\n"
        "status: UP (answered)\n"
        "duration: 0.123 s (deadline 54 s; per request 2 s x 2 tries)\n"
        "errors: none\n"
        "would publish 2 metric families, 3 samples:\n"
        "# HELP hatang_device_info Identity.\n"
        "# TYPE hatang_device_info gauge\n"
        'hatang_device_info{agent="a1",device="sw-1",sys_name="Trạm \\"A\\"\\\\B\\nC"} 1\n'
        "# HELP hatang_interface_in_bytes_total Bytes in\\nwith newline.\n"
        "# TYPE hatang_interface_in_bytes_total counter\n"
        f'hatang_interface_in_bytes_total{{agent="a1",device="sw-1",if_index="1"}} {COUNTER64_MAX}\n'
        'hatang_interface_in_bytes_total{agent="a1",device="sw-1",if_index="2"} 0.5\n'
    )


def test_report_of_a_down_device() -> None:
    timeout = ("no answer from 10.0.0.2:161 within 2 s x 2 tries: device down, wrong address/port, or wrong "
               "community (SNMP v1/v2c devices do not answer a wrong community)")
    outcome = PollOutcome(1.0, False, 4.01, (ProfileError("system", timeout),), ())
    report = format_report(device(), outcome)
    assert "status: DOWN (no usable answer)\n" in report
    assert f"errors (1):\n  profile system: {timeout}\n" in report
    assert "  not asked (the device did not answer): interfaces\n" in report
    assert report.endswith("would publish 0 metric families, 0 samples.\n")


def test_report_of_v3_profile_errors_and_deadline() -> None:
    dev = device(version="3", username="mon", auth_protocol="SHA256", auth_password="a" * 8,
                 priv_protocol="AES256", priv_password="p" * 8, timeout=1, retries=0)
    outcome = PollOutcome(1.0, True, 54.0, (
        ProfileError("interfaces", "more than 100000 rows under 1.3.6.1.2.1.2.2.1.2 on 10.0.0.2:161"),
        ProfileError("*", "poll deadline of 54s exceeded")), ())
    report = format_report(dev, outcome)
    assert report.startswith("device sw-1 at 10.0.0.2:161, SNMP v3 user 'mon' authPriv (SHA256/AES256), ")
    assert "per request 1 s x 1 tries" in report
    assert "  profile interfaces: more than 100000 rows" in report
    assert "  whole poll: poll deadline of 54s exceeded\n" in report
    assert "not asked" not in report


def test_unknown_device_lists_the_known_ones(tmp_path: Path) -> None:
    config = configfile.validate(AgentConfig, {
        "agent_id": "a1", "site": {"province": "Hà Nội"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "buffer": {"path": str(tmp_path / "q.db")},
        "devices": [{"name": "sw-1", "address": "10.0.0.2"}, {"name": "ups-2", "address": "10.0.0.3"}],
    })
    path = tmp_path / "agent.yaml"
    with pytest.raises(UnknownDeviceError, match=r"agent.yaml: no device 'sw-9'; known devices: sw-1, ups-2"):
        asyncio.run(poll_once(config, path, "sw-9"))
    empty = dataclasses.replace(config, devices=[])
    with pytest.raises(UnknownDeviceError, match=r"the config has no devices"):
        asyncio.run(poll_once(empty, path, "sw-9"))

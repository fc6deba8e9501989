"""Pure trap decoding: RFC 3584 v1 -> v2 conversion, value rendering, events from varbinds, config checks."""

from __future__ import annotations

import pytest

from agent.snmp.trap_events import (
    SNMP_TRAP_ADDRESS,
    SNMP_TRAP_COMMUNITY,
    SNMP_TRAP_ENTERPRISE,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    MalformedTrap,
    V3User,
    build_event,
    engine_id_bytes,
    render_value,
    trap_name,
    v1_trap_oid,
    v1_varbinds,
)
from agent.snmp.traps import TrapReceiver
from agent.snmp.values import SnmpValue

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX_7 = "1.3.6.1.2.1.2.2.1.1.7"


# ------------------------------------------------------------------------- v1 trap OID (RFC 3584 3.1)


@pytest.mark.parametrize(
    ("generic", "name"),
    [(0, "coldStart"), (1, "warmStart"), (2, "linkDown"), (3, "linkUp"), (4, "authenticationFailure"),
     (5, "egpNeighborLoss")],
)
def test_v1_generic_traps_become_snmp_traps_generic_plus_one(generic: int, name: str) -> None:
    oid = v1_trap_oid("1.3.6.1.4.1.8072", generic, 0)
    assert oid == f"1.3.6.1.6.3.1.1.5.{generic + 1}"
    assert trap_name(oid) == name


def test_v1_generic_trap_ignores_enterprise_and_specific() -> None:
    assert v1_trap_oid("1.3.6.1.4.1.9", 2, 77) == LINK_DOWN


def test_v1_enterprise_specific_trap_is_enterprise_zero_specific() -> None:
    assert v1_trap_oid("1.3.6.1.4.1.318", 6, 5) == "1.3.6.1.4.1.318.0.5"
    assert trap_name("1.3.6.1.4.1.318.0.5") == "apcUpsOnBattery"
    assert v1_trap_oid(".1.3.6.1.4.1.8072.", 6, 0) == "1.3.6.1.4.1.8072.0.0"


@pytest.mark.parametrize("generic", [-1, 7, 255])
def test_v1_generic_trap_out_of_range_is_malformed(generic: int) -> None:
    with pytest.raises(MalformedTrap):
        v1_trap_oid("1.3.6.1.4.1.8072", generic, 0)


def test_trap_names() -> None:
    assert trap_name("1.3.6.1.2.1.33.2.1") == "upsTrapOnBattery"
    assert trap_name("1.3.6.1.4.1.8072.4.0.2") == "nsNotifyShutdown"
    assert trap_name("1.3.6.1.4.1.99999.0.1") == "1.3.6.1.4.1.99999.0.1"  # unknown: the OID itself


def test_v1_varbinds_follow_rfc3584_order_without_the_community() -> None:
    got = v1_varbinds(enterprise="1.3.6.1.4.1.8072", agent_address="10.1.2.3", generic=2, specific=0,
                      timestamp=4200, varbinds=[(IF_INDEX_7, SnmpValue("integer", 7))])
    assert got == [
        (SYS_UPTIME, SnmpValue("timeticks", 4200)),
        (SNMP_TRAP_OID, SnmpValue("oid", LINK_DOWN)),
        (IF_INDEX_7, SnmpValue("integer", 7)),
        (SNMP_TRAP_ADDRESS, SnmpValue("ipaddress", "10.1.2.3")),
        (SNMP_TRAP_ENTERPRISE, SnmpValue("oid", "1.3.6.1.4.1.8072")),
    ]
    assert SNMP_TRAP_COMMUNITY not in [oid for oid, _ in got]


# ------------------------------------------------------------------------- value rendering


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (SnmpValue("octets", "Cổng mạng Hà Nội – tầng 3".encode()), "Cổng mạng Hà Nội – tầng 3"),
        (SnmpValue("octets", b""), ""),
        (SnmpValue("octets", b"tab\tand\r\nnewline"), "tab\tand\r\nnewline"),
        (SnmpValue("octets", b"\x00\x1a\x2b\x3c\x4d\x5e"), "0x001a2b3c4d5e"),  # a MAC address
        (SnmpValue("octets", b"C\xf4ng"), "0x43f46e67"),  # not UTF-8 (Latin-1 / TCVN3-style bytes)
        (SnmpValue("octets", b"bell\x07"), "0x62656c6c07"),  # valid UTF-8 but not printable
        (SnmpValue("opaque", b"\x9f\x78\x04"), "0x9f7804"),
        (SnmpValue("integer", -3), "-3"),
        (SnmpValue("counter64", 2**64 - 1), "18446744073709551615"),
        (SnmpValue("timeticks", 123456), "123456"),
        (SnmpValue("ipaddress", "192.168.1.1"), "192.168.1.1"),
        (SnmpValue("oid", "1.3.6.1.2.1"), "1.3.6.1.2.1"),
        (SnmpValue("null", None), ""),
        (SnmpValue("no_such_instance", None), ""),
    ],
)
def test_render_value(value: SnmpValue, text: str) -> None:
    assert render_value(value) == text


# ------------------------------------------------------------------------- events


Varbinds = list[tuple[str, SnmpValue]]


def _v2(*extra: tuple[str, SnmpValue], trap: str = LINK_DOWN, ticks: int = 12345) -> Varbinds:
    return [(SYS_UPTIME, SnmpValue("timeticks", ticks)), (SNMP_TRAP_OID, SnmpValue("oid", trap)), *extra]


def test_link_down_event_fields() -> None:
    event = build_event(ts=1.5, source="10.0.0.9", version="2c", security_name="communities[0]",
                        varbinds=_v2((IF_INDEX_7, SnmpValue("integer", 7)),
                                     ("1.3.6.1.2.1.2.2.1.2.7", SnmpValue("octets", "Cổng 7".encode()))))
    assert event.ts == 1.5
    assert event.source == "10.0.0.9"
    assert (event.version, event.security_name) == ("2c", "communities[0]")
    assert (event.trap_oid, event.trap_name) == (LINK_DOWN, "linkDown")
    assert event.uptime == pytest.approx(123.45)
    assert event.if_index == "7"
    assert event.inform is False
    assert event.varbinds == (
        (SYS_UPTIME, "timeticks", "12345"),
        (SNMP_TRAP_OID, "oid", LINK_DOWN),
        (IF_INDEX_7, "integer", "7"),
        ("1.3.6.1.2.1.2.2.1.2.7", "octets", "Cổng 7"),
    )


def test_snmp_trap_community_is_never_exposed() -> None:
    event = build_event(ts=0, source="10.0.0.9", version="1", security_name="communities[1]",
                        varbinds=_v2((SNMP_TRAP_COMMUNITY, SnmpValue("octets", b"s3cret-community"))))
    assert all(oid != SNMP_TRAP_COMMUNITY for oid, _, _ in event.varbinds)
    assert "s3cret" not in repr(event)


def test_trap_oid_may_appear_anywhere_and_uptime_is_optional() -> None:
    event = build_event(ts=0, source="h", version="2c", security_name="c",
                        varbinds=[("1.3.6.1.2.1.1.5.0", SnmpValue("octets", b"sw1")),
                                  (SNMP_TRAP_OID, SnmpValue("oid", "1.3.6.1.4.1.99.0.1"))])
    assert (event.trap_oid, event.trap_name, event.uptime, event.if_index) == (
        "1.3.6.1.4.1.99.0.1", "1.3.6.1.4.1.99.0.1", None, None)


def test_missing_or_bad_trap_oid_is_malformed() -> None:
    with pytest.raises(MalformedTrap):
        build_event(ts=0, source="h", version="2c", security_name="c",
                    varbinds=[(SYS_UPTIME, SnmpValue("timeticks", 1))])
    with pytest.raises(MalformedTrap):
        build_event(ts=0, source="h", version="2c", security_name="c",
                    varbinds=[(SNMP_TRAP_OID, SnmpValue("octets", b"1.3.6"))])


def test_if_index_only_from_if_index_column_instances() -> None:
    not_if_index = build_event(ts=0, source="h", version="2c", security_name="c",
                               varbinds=_v2(("1.3.6.1.2.1.2.2.1.10.7", SnmpValue("counter32", 5)),
                                            ("1.3.6.1.2.1.2.2.1.1.7.1", SnmpValue("integer", 9))))
    assert not_if_index.if_index is None
    # The value wins; the instance suffix is the fallback when the value is empty.
    odd = build_event(ts=0, source="h", version="2c", security_name="c",
                      varbinds=_v2(("1.3.6.1.2.1.2.2.1.1.12", SnmpValue("null", None))))
    assert odd.if_index == "12"


def test_v1_pipeline_to_event() -> None:
    varbinds = v1_varbinds(enterprise="1.3.6.1.4.1.318", agent_address="10.9.8.7", generic=6, specific=5,
                           timestamp=100, varbinds=[])
    event = build_event(ts=0, source="10.9.8.7", version="1", security_name="communities[0]",
                        varbinds=varbinds)
    assert (event.trap_oid, event.trap_name, event.uptime) == ("1.3.6.1.4.1.318.0.5", "apcUpsOnBattery", 1.0)


# ------------------------------------------------------------------------- configuration checks


@pytest.mark.parametrize(
    ("text", "raw"),
    [("8000000001020304", bytes.fromhex("8000000001020304")),
     ("0x80001F8880C0FFEE", bytes.fromhex("80001f8880c0ffee")),
     ("80:00:1f:88:80", bytes.fromhex("80001f8880"))],
)
def test_engine_id_formats(text: str, raw: bytes) -> None:
    assert engine_id_bytes(text) == raw


@pytest.mark.parametrize("text", ["xyz", "8000", "80" * 33, ""])
def test_bad_engine_ids(text: str) -> None:
    with pytest.raises(ValueError, match="engine id"):
        engine_id_bytes(text)


def test_v3_user_checks() -> None:
    assert V3User("u").security_level == "noAuthNoPriv"
    assert V3User("u", "SHA256", "authpass1").security_level == "authNoPriv"
    assert V3User("u", "SHA256", "authpass1", "AES", "privpass1").security_level == "authPriv"
    with pytest.raises(ValueError, match="unknown auth_protocol"):
        V3User("u", "SHA1", "authpass1")
    with pytest.raises(ValueError, match="unknown priv_protocol"):
        V3User("u", "SHA", "authpass1", "3DES", "privpass1")
    with pytest.raises(ValueError, match="needs auth_protocol"):
        V3User("u", None, "", "AES", "privpass1")
    with pytest.raises(ValueError, match="at least 8"):
        V3User("u", "SHA", "short")
    with pytest.raises(ValueError, match="engine id"):
        V3User("u", engine_id="nothex")
    with pytest.raises(ValueError, match="username"):
        V3User("")
    assert "authpass1" not in repr(V3User("u", "SHA256", "authpass1", "AES", "privpass1"))


def test_receiver_rejects_bad_listen_addresses() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        TrapReceiver(("trap.example", 162), ["public"], [], lambda event: None)
    with pytest.raises(ValueError, match="port"):
        TrapReceiver(("127.0.0.1", 70000), ["public"], [], lambda event: None)
    with pytest.raises(ValueError, match="empty community"):
        TrapReceiver(("127.0.0.1", 0), [""], [], lambda event: None)
    with pytest.raises(RuntimeError, match="not started"):
        _ = TrapReceiver(("127.0.0.1", 0), ["public"], [], lambda event: None).bound

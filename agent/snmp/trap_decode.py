"""SNMP v1/v2c notifications as bytes: the trap receiver's fast path (no pysnmp). Pure: no I/O.

:func:`decode_notification` reads an SNMPv1 Trap-PDU, an SNMPv2c SNMPv2-Trap-PDU or InformRequest-PDU
straight into an SNMPv2-style varbind list (``(OID text, SnmpValue)``), the v1 trap converted per
RFC 3584 3.1 by :func:`agent.snmp.trap_events.v1_varbinds`. :func:`inform_response` builds the
Response-PDU that acknowledges an inform (RFC 3416 4.2.7: same request-id, error-status and error-index
0, the varbinds echoed). :func:`message_version` peeks at a datagram's version field, so that the
receiver can hand SNMPv3 datagrams to the USM side (:mod:`agent.snmp.trap_v3`), which reads the PDU of
a ScopedPDU with :func:`decode_v2_pdu`. Primitives (TLV headers, values, OIDs) are in
:mod:`agent.snmp.ber`.

It gives the same varbinds as pysnmp with :func:`agent.snmp.unsigned_repair.repair_unsigned` in front (what
the receiver did before this module existed) and refuses what pysnmp refuses: another PDU type, a PDU
that does not fit the message version (an SNMPv2-Trap in a v1 message, a v1 Trap in a v2c one), the
SMIv2-only values (Counter64, noSuchObject, noSuchInstance, endOfMibView) in a v1 message, a request-id
outside Integer32 and a negative error-index in a v2c PDU, a negative specific-trap in a v1
enterpriseSpecific trap (it cannot be an OID arc), bytes after the message.
tests/unit/test_trap_decode.py compares the two on generated and mutated datagrams; the deliberate
differences (as in :mod:`agent.snmp.ber`, which they come from) are: a negative Counter32, Gauge32,
TimeTicks or Counter64 is read as the unsigned number it stands for in every encoding (pysnmp only in
the short forms ``repair_unsigned`` rewrites), and an INTEGER outside Integer32 is read as sent (pysnmp
drops the whole notification).

Anything malformed raises :class:`agent.snmp.ber.BerError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.snmp.ber import BerError, decode_oid_content, decode_value, expect_tlv, int_tlv, tlv
from agent.snmp.trap_events import v1_varbinds
from agent.snmp.values import SnmpValue

TRAP_V1, INFORM, TRAP_V2, RESPONSE = 0xA4, 0xA6, 0xA7, 0xA2
_PDUS_OF_VERSION = {0: frozenset({TRAP_V1}), 1: frozenset({INFORM, TRAP_V2})}
_V2_ONLY_TAGS = frozenset({0x46, 0x80, 0x81, 0x82})  # Counter64, noSuchObject, noSuchInstance, endOfMibView
_INT32 = range(-(1 << 31), 1 << 31)

Varbinds = list[tuple[str, SnmpValue]]


@dataclass(frozen=True, slots=True)
class Notification:
    """One decoded v1/v2c notification."""

    version: int  # 0 = v1, 1 = v2c
    community: bytes
    pdu_type: int  # TRAP_V1, TRAP_V2 or INFORM
    request_id: int  # 0 for a v1 trap (it has none)
    varbinds: Varbinds  # SNMPv2 style: sysUpTime.0, snmpTrapOID.0, ... (v1 converted per RFC 3584)
    varbind_list: bytes = b""  # the raw VarBindList TLV (echoed in an inform's Response-PDU)

    @property
    def inform(self) -> bool:
        return self.pdu_type == INFORM


def message_version(data: bytes) -> int | None:
    """The version field of an SNMP message (0 v1, 1 v2c, 3 v3, ...), None when it cannot be read."""
    try:
        start, end = expect_tlv(data, 0, len(data), 0x30)
        v_start, v_end = expect_tlv(data, start, end, 0x02)
    except BerError:
        return None
    if v_end - v_start > 4:
        return None
    return int.from_bytes(data[v_start:v_end], "big", signed=True)


def _integer(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = expect_tlv(data, pos, end, 0x02)  # no content octets: 0, like pyasn1
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _oid_text(data: bytes, start: int, stop: int) -> str:
    return ".".join(map(str, decode_oid_content(data[start:stop])))


def _varbinds(data: bytes, pos: int, end: int, version: int) -> Varbinds:
    """The varbinds of a VarBindList whose content is ``data[pos:end]``."""
    out: Varbinds = []
    append = out.append
    while pos < end:
        pos, vb_end = expect_tlv(data, pos, end, 0x30)
        o_start, o_end = expect_tlv(data, pos, vb_end, 0x06)
        if o_end + 2 > vb_end:
            raise BerError("varbind without a value")
        tag = data[o_end]
        v_start, v_end = expect_tlv(data, o_end, vb_end, tag)
        if v_end != vb_end:
            raise BerError("varbind length does not match its contents")
        if version == 0 and tag in _V2_ONLY_TAGS:
            raise BerError(f"SMIv2 value (tag 0x{tag:02x}) in an SNMPv1 trap")
        append((_oid_text(data, o_start, o_end), decode_value(tag, data[v_start:v_end])))
        pos = vb_end
    return out


def decode_notification(data: bytes) -> Notification:
    """A v1 Trap-PDU, v2c SNMPv2-Trap-PDU or v2c InformRequest-PDU; :class:`BerError` for anything else."""
    end = len(data)
    pos, stop = expect_tlv(data, 0, end, 0x30)
    if stop != end:
        raise BerError("trailing bytes after the message")
    version, pos = _integer(data, pos, end)
    allowed = _PDUS_OF_VERSION.get(version)
    if allowed is None:
        raise BerError(f"not an SNMP v1/v2c message (version {version})")
    c_start, pos = expect_tlv(data, pos, end, 0x04)
    community = data[c_start:pos]
    if pos >= end:
        raise BerError("truncated")
    pdu_type = data[pos]
    if pdu_type not in allowed:
        raise BerError(f"PDU type 0x{pdu_type:02x} is not a notification of SNMP version {version}")
    pos, pdu_end = expect_tlv(data, pos, end, pdu_type)
    if pdu_end != end:
        raise BerError("trailing bytes after the PDU")
    if pdu_type == TRAP_V1:
        return _v1_trap(data, pos, end, community)
    request_id, varbinds, varbind_list = _v2_pdu_body(data, pos, end)
    return Notification(1, community, pdu_type, request_id, varbinds,
                        varbind_list if pdu_type == INFORM else b"")


def decode_v2_pdu(pdu: bytes) -> tuple[int, int, Varbinds, bytes]:
    """(PDU type, request-id, varbinds, the raw VarBindList TLV) of an SNMPv2-Trap-PDU or InformRequest-PDU
    given as a whole TLV (the PDU of an SNMPv3 ScopedPDU), with the checks of the v2c path."""
    end = len(pdu)
    if not end or pdu[0] not in (TRAP_V2, INFORM):
        raise BerError(f"PDU type 0x{pdu[0] if end else 0:02x} is not an SNMPv2 notification")
    pos, pdu_end = expect_tlv(pdu, 0, end, pdu[0])
    if pdu_end != end:
        raise BerError("trailing bytes after the PDU")
    request_id, varbinds, varbind_list = _v2_pdu_body(pdu, pos, end)
    return pdu[0], request_id, varbinds, varbind_list


def _v2_pdu_body(data: bytes, pos: int, end: int) -> tuple[int, Varbinds, bytes]:
    request_id, pos = _integer(data, pos, end)
    if request_id not in _INT32:
        raise BerError("request-id outside Integer32")
    _, pos = _integer(data, pos, end)  # error-status: any value (pysnmp does not range-check it)
    error_index, pos = _integer(data, pos, end)
    if error_index < 0:
        raise BerError("negative error-index")
    list_start = pos
    pos, list_end = expect_tlv(data, pos, end, 0x30)
    if list_end != end:
        raise BerError("trailing bytes after the varbinds")
    return request_id, _varbinds(data, pos, end, 1), data[list_start:end]


def _v1_trap(data: bytes, pos: int, end: int, community: bytes) -> Notification:
    e_start, pos = expect_tlv(data, pos, end, 0x06)
    enterprise = _oid_text(data, e_start, pos)
    a_start, pos = expect_tlv(data, pos, end, 0x40)  # NetworkAddress: the IpAddress choice
    if pos - a_start != 4:
        raise BerError("agent-addr must be 4 bytes")
    agent_address = ".".join(map(str, data[a_start:pos]))
    generic, pos = _integer(data, pos, end)
    specific, pos = _integer(data, pos, end)
    t_start, pos = expect_tlv(data, pos, end, 0x43)
    ticks = decode_value(0x43, data[t_start:pos]).value
    assert isinstance(ticks, int)
    pos, list_end = expect_tlv(data, pos, end, 0x30)
    if list_end != end:
        raise BerError("trailing bytes after the varbinds")
    if generic == 6 and specific < 0:
        raise BerError("negative specific-trap: not an OID arc")  # snmpTrapOID.0 = enterprise.0.specific
    try:
        varbinds = v1_varbinds(enterprise=enterprise, agent_address=agent_address, generic=generic,
                               specific=specific, timestamp=ticks, varbinds=_varbinds(data, pos, end, 0))
    except ValueError as exc:  # MalformedTrap: generic-trap outside 0..6
        raise BerError(str(exc)) from None
    return Notification(0, community, TRAP_V1, 0, varbinds)


def inform_response(notification: Notification) -> bytes:
    """The Response-PDU acknowledging an inform (RFC 3416 4.2.7)."""
    if not notification.inform:
        raise ValueError("only an InformRequest is acknowledged")
    body = int_tlv(notification.request_id) + b"\x02\x01\x00\x02\x01\x00" + notification.varbind_list
    return tlv(0x30, int_tlv(notification.version) + tlv(0x04, notification.community) + tlv(RESPONSE, body))

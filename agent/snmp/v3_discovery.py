"""SNMPv3 engine-ID discovery (RFC 3414 4): the probe and the engine ID in its answer. Pure."""

from __future__ import annotations

from agent.snmp.ber import BerError, int_tlv, tlv, tlv_header


def discovery_request(msg_id: int) -> bytes:
    """An SNMPv3 engine-ID discovery probe (RFC 3414 4): reportable, noAuthNoPriv, empty USM fields."""
    header = tlv(0x30, int_tlv(msg_id) + int_tlv(65507) + tlv(0x04, b"\x04") + int_tlv(3))
    empty = tlv(0x04, b"")
    usm = tlv(0x04, tlv(0x30, empty + int_tlv(0) + int_tlv(0) + empty + empty + empty))
    pdu = tlv(0xA0, int_tlv(msg_id) + int_tlv(0) + int_tlv(0) + tlv(0x30, b""))
    return tlv(0x30, int_tlv(3) + header + usm + tlv(0x30, empty + empty + pdu))


def engine_id_of(reply: bytes) -> bytes | None:
    """msgAuthoritativeEngineID of an SNMPv3 message (the Report answering a discovery), else None."""
    try:
        tag, start, end = tlv_header(reply, 0, len(reply))
        version_tag, v_start, v_end = tlv_header(reply, start, end)
        if tag != 0x30 or version_tag != 0x02 or reply[v_start:v_end] != b"\x03":
            return None
        _, _, header_end = tlv_header(reply, v_end, end)
        params_tag, p_start, p_end = tlv_header(reply, header_end, end)
        usm_tag, u_start, u_end = tlv_header(reply, p_start, p_end)
        id_tag, i_start, i_end = tlv_header(reply, u_start, u_end)
    except BerError:
        return None
    if (params_tag, usm_tag, id_tag) != (0x04, 0x30, 0x04) or i_end == i_start:
        return None
    return reply[i_start:i_end]

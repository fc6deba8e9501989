"""The SNMPv3 fast path's USM (agent/snmp/usm.py, usm_crypto.py, the message functions of v3_session.py):
RFC 3414 A.3 key vectors, and pysnmp as the oracle for everything else: keys for every auth x priv
protocol (the Blumenthal and Reeder key extensions included), requests we build read back by pyasn1
and pysnmp's own USM services (HMAC checked, ScopedPDU decrypted), and responses pysnmp builds read by us
with the values pysnmp's session gives (:func:`agent.snmp.pysnmp_session.convert`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import HeaderData, ScopedPDU, SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel, UsmSecurityParameters

from agent.snmp import usm, usm_crypto
from agent.snmp.ber import GET, GET_BULK, GET_NEXT, BerError
from agent.snmp.credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS, Credentials
from agent.snmp.errors import SnmpError
from agent.snmp.pysnmp_session import AUTH_PROTOCOLS as PYSNMP_AUTH
from agent.snmp.pysnmp_session import PRIV_PROTOCOLS as PYSNMP_PRIV
from agent.snmp.pysnmp_session import convert
from agent.snmp.v3_session import encode_request, open_message
from agent.snmp.values import OID

ENGINE_ID = bytes.fromhex("000000000000000000000002")  # RFC 3414 A.3
COMBINATIONS = [(a, p) for a in AUTH_PROTOCOLS for p in PRIV_PROTOCOLS]
KEYS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # 1 MB hashes
MESSAGES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pysnmp_auth(auth: str) -> Any:
    return SnmpUSMSecurityModel.AUTH_SERVICES[PYSNMP_AUTH[auth]]


def pysnmp_priv(priv: str) -> Any:
    return SnmpUSMSecurityModel.PRIV_SERVICES[PYSNMP_PRIV[priv]]


def pysnmp_keys(auth: str, auth_password: bytes, priv: str | None, priv_password: bytes,
                engine_id: bytes) -> tuple[bytes, bytes]:
    """The localized keys pysnmp's USM computes for a user (service.py's own steps)."""
    service = pysnmp_auth(auth)
    engine = univ.OctetString(engine_id)
    auth_key = bytes(service.localize_key(service.hash_passphrase(auth_password), engine))
    if priv is None:
        return auth_key, b""
    privacy = pysnmp_priv(priv)
    hashed = privacy.hash_passphrase(PYSNMP_AUTH[auth], priv_password)
    return auth_key, bytes(privacy.localize_key(PYSNMP_AUTH[auth], hashed, engine))


def security(auth: str | None, priv: str | None, user: str = "user", auth_password: str = "auth-pass-1234",
             priv_password: str = "priv-pass-5678") -> usm.UserSecurity:
    return usm.check_credentials(Credentials("3", username=user, auth_protocol=auth,
                                             auth_password=auth_password if auth else "",
                                             priv_protocol=priv, priv_password=priv_password if priv else ""))


# ------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize(("auth", "password_key", "local_key"), [
    ("MD5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),  # A.3.1
    ("SHA", "9fb5cc0381497b3793528939ff788d5d79145211", "6695febc9288e36282235fc7151f128497b38f3f"),  # A.3.2
])
def test_rfc3414_key_vectors(auth: str, password_key: str, local_key: str) -> None:
    hash_name = usm.AUTH[auth][0]
    key = usm.password_key(hash_name, b"maplesyrup")
    assert key.hex() == password_key
    assert usm.localize(hash_name, key, ENGINE_ID).hex() == local_key
    keys = usm.localized_keys(security(auth, None, auth_password="maplesyrup"), ENGINE_ID)
    assert keys.auth.hex() == local_key


def test_every_protocol_name_has_a_meaning() -> None:
    assert tuple(usm.AUTH) == AUTH_PROTOCOLS and tuple(usm.PRIV) == PRIV_PROTOCOLS


@pytest.mark.parametrize(("auth", "priv"), COMBINATIONS, ids=[f"{a}-{p}" for a, p in COMBINATIONS])
def test_keys_match_pysnmp(auth: str, priv: str) -> None:
    mine = usm.localized_keys(security(auth, priv), ENGINE_ID)
    assert (mine.auth, mine.priv) == pysnmp_keys(auth, b"auth-pass-1234", priv, b"priv-pass-5678", ENGINE_ID)


@KEYS
@given(auth=st.sampled_from(AUTH_PROTOCOLS), priv=st.sampled_from(PRIV_PROTOCOLS),
       auth_password=st.binary(min_size=1, max_size=70), priv_password=st.binary(min_size=1, max_size=70),
       engine_id=st.binary(min_size=5, max_size=32))
def test_keys_match_pysnmp_for_any_password_and_engine(auth: str, priv: str, auth_password: bytes,
                                                       priv_password: bytes, engine_id: bytes) -> None:
    user = usm.UserSecurity(b"u", auth, auth_password, priv, priv_password)
    mine = usm.localized_keys(user, engine_id)
    assert (mine.auth, mine.priv) == pysnmp_keys(auth, auth_password, priv, priv_password, engine_id)


def test_blumenthal_and_reeder_differ_only_where_the_key_is_extended() -> None:
    for auth in AUTH_PROTOCOLS:
        for size, blumenthal, reeder in ((24, "AES192", "AES192C"), (32, "AES256", "AES256C")):
            a = usm.localized_keys(security(auth, blumenthal), ENGINE_ID).priv
            b = usm.localized_keys(security(auth, reeder), ENGINE_ID).priv
            extended = len(usm.localize(usm.AUTH[auth][0], b"", b"")) < size
            assert (a != b) == extended, (auth, size)
            assert len(a) == len(b) == size


# ------------------------------------------------------------------------------------------- credentials


def test_credentials_are_checked_with_the_pysnmp_paths_words() -> None:
    def refused(**kwargs: Any) -> str:
        with pytest.raises(SnmpError) as caught:
            usm.check_credentials(Credentials("3", **kwargs))
        return str(caught.value)

    assert refused(username="") == "SNMPv3 needs a user name"
    assert refused(username="u", auth_protocol="SHA1024").startswith(
        "unknown SNMPv3 authentication protocol 'SHA1024'; known: MD5, SHA, SHA224")
    assert refused(username="u", auth_protocol="SHA", priv_protocol="AES512").startswith(
        "unknown SNMPv3 privacy protocol 'AES512'; known: DES, AES")
    assert refused(username="u", priv_protocol="AES", priv_password="x" * 8) == (
        "SNMPv3 privacy needs an authentication protocol too")
    assert security(None, None).flags == usm.FLAG_REPORTABLE
    assert security("SHA", None).flags == usm.FLAG_REPORTABLE | usm.FLAG_AUTH
    assert security("SHA512", "AES256").flags == 7 and security("SHA512", "AES256").mac_length == 48


# ------------------------------------------------------------------------------------------- requests

oids = st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=12).map(lambda t: (1, 3, *t)),
                min_size=1, max_size=5)
levels = st.sampled_from([(None, None)] + [(a, None) for a in AUTH_PROTOCOLS] + COMBINATIONS)


@MESSAGES
@given(level=levels, names=oids, msg_id=st.integers(0, 2**31 - 1), boots=st.integers(0, 2**31 - 1),
       engine_time=st.integers(0, 2**31 - 1), engine_id=st.binary(min_size=5, max_size=32),
       user=st.binary(min_size=1, max_size=32), context=st.binary(max_size=16),
       pdu=st.sampled_from([GET, GET_NEXT, GET_BULK]), salt=st.binary(min_size=8, max_size=8))
def test_requests_read_back_by_pysnmp(level: tuple[str | None, str | None], names: list[OID], msg_id: int,
                                      boots: int, engine_time: int, engine_id: bytes, user: bytes,
                                      context: bytes, pdu: int, salt: bytes) -> None:
    auth, priv = level
    sec = usm.UserSecurity(user, auth, b"auth-pass-1234", priv, b"priv-pass-5678")
    keys = usm.localized_keys(sec, engine_id)
    datagram = encode_request(sec, keys, msg_id, engine_id, boots, engine_time, salt, context,
                              usm.encode_pdu(pdu, msg_id, names, 25))

    message, rest = decoder.decode(datagram, asn1Spec=SNMPv3Message())
    assert not rest and int(message["msgVersion"]) == 3
    header = message["msgGlobalData"]
    assert int(header["msgID"]) == msg_id and int(header["msgSecurityModel"]) == 3
    assert bytes(header["msgFlags"]) == bytes((sec.flags,))
    params, rest = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert not rest
    assert bytes(params["msgAuthoritativeEngineId"]) == engine_id
    assert (int(params["msgAuthoritativeEngineBoots"]), int(params["msgAuthoritativeEngineTime"])) == (
        boots, engine_time)
    assert bytes(params["msgUserName"]) == user
    if auth:  # pysnmp's HMAC check raises when the digest is wrong
        pysnmp_auth(auth).authenticate_incoming_message(univ.OctetString(keys.auth),
                                                        params["msgAuthenticationParameters"], datagram)
    else:
        assert bytes(params["msgAuthenticationParameters"]) == b""
    data = message["msgData"]
    if priv:
        assert bytes(params["msgPrivacyParameters"]) == salt
        plaintext = pysnmp_priv(priv).decrypt_data(
            univ.OctetString(keys.priv), (boots, engine_time, univ.OctetString(salt)), data["encryptedPDU"])
        scoped, _ = decoder.decode(plaintext, asn1Spec=ScopedPDU())  # DES padding is left over
    else:
        scoped = data["plaintext"]
    assert bytes(scoped["contextEngineId"]) == engine_id and bytes(scoped["contextName"]) == context
    body = scoped["data"].getComponent()
    assert int(body[0]) == msg_id  # request-id
    assert [tuple(vb[0]) for vb in body[3]] == names
    if pdu == GET_BULK:
        assert (int(body[1]), int(body[2])) == (0, 25)


def test_a_request_whose_digest_is_tampered_with_fails_pysnmps_check() -> None:
    sec = security("SHA256", "AES")
    keys = usm.localized_keys(sec, ENGINE_ID)
    datagram = encode_request(sec, keys, 7, ENGINE_ID, 1, 2, bytes(8), b"", usm.encode_pdu(GET, 7, [(1, 3)]))
    message = usm.decode_message(datagram)
    assert usm_crypto.verify("sha256", keys.auth, datagram, message.mac_offset, message.mac)
    broken = bytearray(datagram)
    broken[-1] ^= 1
    assert not usm_crypto.verify("sha256", keys.auth, bytes(broken), message.mac_offset, message.mac)


# ------------------------------------------------------------------------------------------- responses

values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(rfc1902.Integer32),
    st.binary(max_size=40).map(rfc1902.OctetString),
    st.integers(0, 2**32 - 1).map(rfc1902.Counter32),
    st.integers(0, 2**32 - 1).map(rfc1902.Gauge32),
    st.integers(0, 2**32 - 1).map(rfc1902.TimeTicks),
    st.integers(0, 2**64 - 1).map(rfc1902.Counter64),
    st.binary(min_size=4, max_size=4).map(rfc1902.IpAddress),
    st.lists(st.integers(0, 2**32 - 1), max_size=6).map(lambda t: rfc1902.ObjectName((1, 3, *t))),
    st.sampled_from([rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView]),
)


def pysnmp_message(sec: usm.UserSecurity, keys: usm.LocalizedKeys, msg_id: int, engine_id: bytes, boots: int,
                   engine_time: int, pdu: Any, salt: bytes) -> bytes:
    """A whole SNMPv3 message built, encrypted and signed by pyasn1 and pysnmp's USM services."""
    scoped = ScopedPDU()
    scoped["contextEngineId"] = engine_id
    scoped["contextName"] = b""
    scoped["data"].setComponentByType(pdu.tagSet, pdu)
    params = UsmSecurityParameters()
    params["msgAuthoritativeEngineId"] = engine_id
    params["msgAuthoritativeEngineBoots"] = boots
    params["msgAuthoritativeEngineTime"] = engine_time
    params["msgUserName"] = sec.user
    params["msgAuthenticationParameters"] = b"\x00" * sec.mac_length
    message = SNMPv3Message()
    message["msgVersion"] = 3
    header = HeaderData()
    header["msgID"] = msg_id
    header["msgMaxSize"] = 65507
    header["msgFlags"] = bytes((sec.flags & 3,))
    header["msgSecurityModel"] = 3
    message["msgGlobalData"] = header
    if sec.priv:
        service = pysnmp_priv(sec.priv)
        if usm.PRIV[sec.priv][0] == "des":
            service.local_int = int.from_bytes(salt[4:], "big")
        else:
            service.local_int = int.from_bytes(salt, "big")
        ciphertext, sent_salt = service.encrypt_data(
            univ.OctetString(keys.priv), (boots, engine_time, univ.OctetString(salt)), encoder.encode(scoped))
        params["msgPrivacyParameters"] = sent_salt
        message["msgData"]["encryptedPDU"] = ciphertext
    else:
        params["msgPrivacyParameters"] = b""
        message["msgData"]["plaintext"] = scoped
    message["msgSecurityParameters"] = encoder.encode(params)
    whole = encoder.encode(message)
    if sec.auth:
        whole = pysnmp_auth(sec.auth).authenticate_outgoing_message(univ.OctetString(keys.auth), whole)
    return bytes(whole)


def response_pdu(request_id: int, varbinds: list[tuple[OID, Any]], *, report: bool = False) -> Any:
    pdu = v2c.ReportPDU() if report else v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(pdu, varbinds)
    return pdu


@MESSAGES
@given(level=levels, msg_id=st.integers(0, 2**31 - 1), boots=st.integers(0, 2**31 - 1),
       engine_time=st.integers(0, 2**31 - 1), engine_id=st.binary(min_size=5, max_size=32),
       answer=st.lists(st.tuples(oids.map(lambda o: o[0]), values), max_size=8),
       salt=st.binary(min_size=8, max_size=8))
def test_responses_built_by_pysnmp_read_by_us(level: tuple[str | None, str | None], msg_id: int, boots: int,
                                              engine_time: int, engine_id: bytes,
                                              answer: list[tuple[OID, Any]], salt: bytes) -> None:
    auth, priv = level
    sec = usm.UserSecurity(b"user", auth, b"auth-pass-1234", priv, b"priv-pass-5678")
    keys = usm.localized_keys(sec, engine_id)
    datagram = pysnmp_message(sec, keys, msg_id, engine_id, boots, engine_time, response_pdu(msg_id, answer),
                              salt)
    message = usm.decode_message(datagram)
    assert (message.msg_id, message.engine_id, message.boots, message.engine_time, message.user) == (
        msg_id, engine_id, boots, engine_time, b"user")
    opened = open_message(sec, keys, engine_id, message)
    assert opened is not None
    pdu_type, pdu = opened
    assert pdu_type == 0xA2 and pdu.request_id == msg_id and pdu.error_status == 0
    assert pdu.varbinds == [(name, convert(value)) for name, value in answer]
    if auth:  # the wrong key (another engine's) opens nothing
        other = usm.localized_keys(sec, engine_id + b"x")
        assert open_message(sec, other, engine_id, message) is None


@pytest.mark.parametrize(("oid", "name"), [((*usm._USM_STATS, n, 0), name) for n, name in enumerate(
    ("unsupportedSecLevel", "notInTimeWindow", "unknownUserName", "unknownEngineID", "wrongDigest",
     "decryptionError"), start=1)])
def test_reports_are_named(oid: OID, name: str) -> None:
    sec = security(None, None)
    datagram = pysnmp_message(sec, usm.LocalizedKeys(b"", b""), 9, ENGINE_ID, 3, 4,
                              response_pdu(0, [(oid, rfc1902.Counter32(5))], report=True), b"")
    opened = open_message(security("SHA", "AES"), usm.localized_keys(security("SHA", "AES"), ENGINE_ID),
                          ENGINE_ID, usm.decode_message(datagram))
    assert opened is not None
    assert opened[0] == usm.REPORT and usm.report_name(opened[1]) == name


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_is_a_ber_error(data: bytes) -> None:
    with contextlib.suppress(BerError):  # nothing else
        usm.decode_message(data)


def test_decryption_with_a_salt_of_the_wrong_size_fails_cleanly() -> None:
    with pytest.raises(ValueError, match="8"):
        usm_crypto.decrypt("aes", bytes(16), 1, 1, b"short", b"data")
    with pytest.raises(ValueError, match="multiple of 8"):
        usm_crypto.decrypt("des", bytes(16), 1, 1, bytes(8), b"seven!!")

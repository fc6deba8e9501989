"""The SNMPv3 fast path (agent/snmp/v3_session.py) against a real net-snmp ``snmpd``, beside the pysnmp
session as the reference: for every auth x priv combination the agent accepts (and authNoPriv,
noAuthNoPriv) a GET and a walk give the same varbinds; wrong passwords, unknown users and a missing
security level give the same error (class, reason and message); a restarted snmpd (engineBoots up),
one with a new engine ID, and a clock estimate out of the time window are recovered from.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.snmp.credentials import AUTH_PROTOCOLS, PRIV_PROTOCOLS, Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError
from agent.snmp.pysnmp_session import PysnmpSession
from agent.snmp.target import SnmpTarget
from agent.snmp.v3_session import V3Session
from tests.support.services import Snmpd, start_snmpd

pytestmark = pytest.mark.integration

AUTH_PASS = "auth-pass-1234"
PRIV_PASS = "priv-pass-5678"
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # several columns of the host's interfaces
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384",
                 "SHA512": "SHA-512"}
NET_SNMP_PRIV = {"DES": "DES", "AES": "AES", "AES128": "AES", "AES192": "AES192", "AES256": "AES256",
                 "AES192C": "AES192C", "AES256C": "AES256C"}
LEVELS: list[tuple[str | None, str | None]] = [(None, None), *((a, None) for a in AUTH_PROTOCOLS),
                                               *((a, p) for a in AUTH_PROTOCOLS for p in PRIV_PROTOCOLS)]


def user_name(auth: str | None, priv: str | None) -> str:
    return f"f_{auth or 'none'}_{priv or 'none'}".lower()


def creds(auth: str | None, priv: str | None, *, user: str | None = None, auth_password: str = AUTH_PASS,
          priv_password: str = PRIV_PASS) -> Credentials:
    return Credentials("3", username=user or user_name(auth, priv), auth_protocol=auth,
                       auth_password=auth_password if auth else "", priv_protocol=priv,
                       priv_password=priv_password if priv else "")


def create_users() -> str:
    lines = []
    for auth, priv in LEVELS:
        name = user_name(auth, priv)
        if auth is None:
            lines += [f"createUser {name}", f"rouser {name} noauth"]
        elif priv is None:
            lines += [f'createUser {name} {NET_SNMP_AUTH[auth]} "{AUTH_PASS}"', f"rouser {name} auth"]
        else:
            priv_part = f'{NET_SNMP_PRIV[priv]} "{PRIV_PASS}"'
            lines += [f'createUser {name} {NET_SNMP_AUTH[auth]} "{AUTH_PASS}" {priv_part}',
                      f"rouser {name} priv"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd-v3-fast"), extra_config=create_users())
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
async def engines() -> AsyncIterator[tuple[SnmpEngine, SnmpEngine]]:
    fast, reference = SnmpEngine(), SnmpEngine(fast_path=False)
    try:
        yield fast, reference
    finally:
        fast.close()
        reference.close()


async def target(engine: SnmpEngine, agent: Snmpd, credentials: Credentials,
                 timeout: float = 1.0) -> SnmpTarget:
    return await engine.target(agent.host, agent.port, credentials, timeout=timeout, retries=1,
                               max_repetitions=7)


@pytest.mark.parametrize(("auth", "priv"), LEVELS, ids=[f"{a}-{p}" for a, p in LEVELS])
async def test_get_and_walk_match_pysnmp(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd,
                                         auth: str | None, priv: str | None) -> None:
    fast, reference = engines
    mine = await target(fast, snmpd, creds(auth, priv))
    theirs = await target(reference, snmpd, creds(auth, priv))
    assert isinstance(mine.session, V3Session) and isinstance(theirs.session, PysnmpSession)
    got = await mine.get([SYS_NAME])
    assert got == await theirs.get([SYS_NAME])
    assert got[0][1].value == b"hatang-test-snmpd"
    rows = await mine.walk(IF_TABLE)
    assert len(rows) > 20  # several columns of lo and the other interfaces: several GETBULKs
    expected = await theirs.walk(IF_TABLE)
    # counters move between the two walks: compare names and the values that do not
    assert [oid for oid, _ in rows] == [oid for oid, _ in expected]
    assert [v for oid, v in rows if oid[9] in (1, 2, 3)] == [v for oid, v in expected if oid[9] in (1, 2, 3)]


async def same_error(engines: tuple[SnmpEngine, SnmpEngine], agent: Snmpd,
                     credentials: Credentials) -> SnmpError:
    """The error the fast path raises, checked to be the pysnmp path's (class, reason, message)."""
    caught: list[SnmpError] = []
    for engine in engines:
        with pytest.raises(SnmpError) as error:
            await (await target(engine, agent, credentials, timeout=0.5)).get([SYS_NAME])
        caught.append(error.value)
    mine, theirs = caught
    assert (type(mine), mine.reason) == (type(theirs), theirs.reason)
    # one deliberate difference: pysnmp counts the answer to its engine-ID discovery among the datagrams
    # that "could not be decoded or matched" when the request itself then times out; we do not
    assert str(mine) == str(theirs).partition("; 1 datagram(s) did arrive")[0]
    return mine


async def test_wrong_auth_password(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA256", "AES", auth_password="not-the-password"))
    assert error.reason == "auth" and "(wrongDigest): wrong authentication password" in str(error)


async def test_wrong_auth_protocol(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA512", "AES256", user=user_name("SHA256", "AES256")))
    assert "wrongDigest" in str(error)


async def test_wrong_priv_password_is_a_timeout(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA512", "AES256", priv_password="not-the-password"))
    assert error.reason == "timeout" and "wrong privacy password or protocol (AES256;" in str(error)


async def test_reeder_key_for_a_blumenthal_user_is_a_timeout(engines: tuple[SnmpEngine, SnmpEngine],
                                                             snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA", "AES256C", user=user_name("SHA", "AES256")))
    assert error.reason == "timeout"


async def test_unknown_user(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA256", "AES", user="nobody"))
    assert "does not know SNMPv3 user 'nobody' (unknownUserName)" in str(error)


async def test_priv_for_a_user_without_privacy(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA", "AES", user=user_name("SHA", None)))
    assert "unsupportedSecLevel" in str(error)


async def test_level_below_what_rouser_requires(engines: tuple[SnmpEngine, SnmpEngine], snmpd: Snmpd) -> None:
    error = await same_error(engines, snmpd, creds("SHA", None, user=user_name("SHA", "AES")))
    assert "authorizationError" in str(error)


async def test_unknown_protocol_refused_before_sending(engines: tuple[SnmpEngine, SnmpEngine],
                                                       snmpd: Snmpd) -> None:
    for engine in engines:
        with pytest.raises(SnmpError, match=r"unknown SNMPv3 privacy protocol 'AES512'; known: DES, AES"):
            await target(engine, snmpd, creds("SHA", "AES512"))


async def test_errors_do_not_poison_the_session_socket(engines: tuple[SnmpEngine, SnmpEngine],
                                                       snmpd: Snmpd) -> None:
    fast, _ = engines
    good = await target(fast, snmpd, creds("SHA512", "AES256"))
    wrong_password = creds("SHA512", "AES256", auth_password="wrong-password")
    for bad in (wrong_password, creds("SHA512", "AES256", user="x")):
        with pytest.raises(SnmpError):
            await (await target(fast, snmpd, bad)).get([SYS_NAME])
        assert (await good.get([SYS_NAME]))[0][1].value == b"hatang-test-snmpd"


async def test_same_user_name_with_other_keys_on_another_device(tmp_path: Path, snmpd: Snmpd) -> None:
    """Each session keeps its own keys: no shared USM table to pin (the pysnmp path's problem)."""
    other = start_snmpd(tmp_path / "other", extra_config=(
        f'createUser {user_name("SHA", "AES")} SHA-512 "other-auth-pass" AES256 "other-priv-pass"\n'
        f'rouser {user_name("SHA", "AES")} priv'))
    engine = SnmpEngine()
    try:
        first = await target(engine, snmpd, creds("SHA", "AES"))
        second = await target(engine, other, creds("SHA512", "AES256", user=user_name("SHA", "AES"),
                                                    auth_password="other-auth-pass",
                                                    priv_password="other-priv-pass"))
        for _ in range(3):
            assert await first.get([SYS_NAME]) == await second.get([SYS_NAME])
        assert isinstance(first.session, V3Session) and isinstance(second.session, V3Session)
        assert first.session.engine_id != second.session.engine_id
    finally:
        engine.close()
        other.stop()


# ------------------------------------------------------------------------------------------- time and engine


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Snmpd]:
    agent = start_snmpd(tmp_path / "restart", extra_config=(
        "engineID hatang-engine-one\n"  # else each start may pick a new one
        f'createUser {user_name("SHA256", "AES")} SHA-256 "{AUTH_PASS}" AES "{PRIV_PASS}"\n'
        f'rouser {user_name("SHA256", "AES")} priv'))
    try:
        yield agent
    finally:
        agent.stop()


async def test_restarted_snmpd_new_boots(restartable: Snmpd) -> None:
    engine = SnmpEngine()
    try:
        tgt = await target(engine, restartable, creds("SHA256", "AES"))
        await tgt.get([SYS_NAME])
        session = tgt.session
        assert isinstance(session, V3Session)
        boots, engine_id = session._boots, session.engine_id
        restartable.stop()
        # snmpd -C reads no config but ours, not even the engineBoots it saved in its persistent dir:
        # name that file too (-c takes a comma-separated list), so that the restart counts boots up
        saved = restartable.persistent_dir / "snmpd.conf"
        restartable.config_path = Path(f"{restartable.config_path},{saved}")
        restartable.start()
        assert (await tgt.get([SYS_NAME]))[0][1].value == b"hatang-test-snmpd"
        assert session.engine_id == engine_id and session._boots > boots
    finally:
        engine.close()


async def test_snmpd_with_a_new_engine_id(restartable: Snmpd) -> None:
    engine = SnmpEngine()
    try:
        tgt = await target(engine, restartable, creds("SHA256", "AES"))
        await tgt.get([SYS_NAME])
        session = tgt.session
        assert isinstance(session, V3Session)
        engine_id = session.engine_id
        restartable.stop()  # a replaced device: another engine ID, the same user
        config = restartable.config_path.read_text()
        restartable.config_path.write_text(config.replace("hatang-engine-one", "hatang-engine-two"))
        shutil.rmtree(restartable.persistent_dir)
        restartable.persistent_dir.mkdir()
        restartable.start()
        assert (await tgt.get([SYS_NAME]))[0][1].value == b"hatang-test-snmpd"
        assert session.engine_id is not None and session.engine_id != engine_id
    finally:
        engine.close()


async def test_clock_estimate_out_of_the_time_window_is_resynchronised(restartable: Snmpd) -> None:
    engine = SnmpEngine()
    try:
        tgt = await target(engine, restartable, creds("SHA256", "AES"))
        await tgt.get([SYS_NAME])
        session = tgt.session
        assert isinstance(session, V3Session)
        real = session._engine_time
        session._engine_time += 1000  # far beyond the 150 s window: snmpd answers notInTimeWindow
        assert (await tgt.get([SYS_NAME]))[0][1].value == b"hatang-test-snmpd"
        assert abs(session._engine_time - real) < 10
    finally:
        engine.close()

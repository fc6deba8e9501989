"""agent.snmp (SnmpEngine, SnmpTarget) against a real net-snmp ``snmpd``: SNMPv1, v2c and v3 with every
authentication and privacy protocol we accept, and the errors wrong credentials produce.

The protocols net-snmp supports are read from ``snmpget -h`` (the tools and snmpd share libnetsnmp).
A combination snmpd lacks is skipped with the reason, after checking that our config still accepts
the name. Debian 12's net-snmp 5.9.3 supports all of them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.config import SnmpConfig
from agent.config import load as load_agent_config
from agent.poll_once import UnknownDeviceError, poll_once
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpAuthError, SnmpError, SnmpTimeout
from agent.snmp.pysnmp_session import AUTH_PROTOCOLS, PRIV_PROTOCOLS, PysnmpSession
from agent.snmp.target import SnmpTarget
from agent.snmp.values import SnmpValue
from hatang import configfile
from tests.support.services import Snmpd, require_binary, snmpget, snmpwalk, start_snmpd, unavailable
from wire.messages import ERROR_REASONS

pytestmark = pytest.mark.integration

AUTH_PASS = "auth-pass-1234"
PRIV_PASS = "priv-pass-5678"
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)

# our name -> net-snmp's name (createUser and snmpget -a/-x)
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384",
                 "SHA512": "SHA-512"}
NET_SNMP_PRIV = {"DES": "DES", "AES": "AES", "AES192": "AES-192", "AES256": "AES-256", "AES192C": "AES192C",
                 "AES256C": "AES256C"}
CREATE_USER_PRIV = {"DES": "DES", "AES": "AES", "AES192": "AES192", "AES256": "AES256", "AES192C": "AES192C",
                    "AES256C": "AES256C"}
CONFIG_PRIV = ("DES", "AES", "AES192", "AES256")  # what agent.config accepts today

AUTH_NAMES = list(NET_SNMP_AUTH)
PRIV_NAMES = list(NET_SNMP_PRIV)
COMBINATIONS = [(a, p) for a in AUTH_NAMES for p in PRIV_NAMES]


def user_name(auth: str | None, priv: str | None) -> str:
    return f"u_{auth or 'none'}_{priv or 'none'}".lower()


def _tool_protocols() -> tuple[set[str], set[str]]:
    """Auth and priv protocol names the installed net-snmp lists in ``snmpget -h``."""
    tool = require_binary("snmpget", "snmp")
    text = subprocess.run([tool, "-h"], capture_output=True, text=True, timeout=10, check=False).stderr
    auth = re.search(r"-a PROTOCOL\s+set authentication protocol \(([^)]*)\)", text)
    priv = re.search(r"-x PROTOCOL\s+set privacy protocol \(([^)]*)\)", text)
    auth_names = set(auth.group(1).split("|")) if auth else set()
    return auth_names, set(priv.group(1).split("|")) if priv else set()


def _priv_supported(priv: str, listed: set[str]) -> bool:
    if priv.endswith("C"):  # the Cisco (Reeder) variants are not listed by -h; net-snmp has them with
        return NET_SNMP_PRIV[priv[:-1]] in listed  # Blumenthal AES-192/256 (--enable-blumenthal-aes)
    return NET_SNMP_PRIV[priv] in listed


@pytest.fixture(scope="module")
def supported() -> tuple[set[str], set[str]]:
    return _tool_protocols()


@pytest.fixture(scope="module")
def v3_snmpd(
    tmp_path_factory: pytest.TempPathFactory, supported: tuple[set[str], set[str]]
) -> Iterator[Snmpd]:
    auth_ok, priv_ok = supported
    lines = []
    for auth in AUTH_NAMES:
        if NET_SNMP_AUTH[auth] not in auth_ok:
            continue
        lines += [f'createUser {user_name(auth, None)} {NET_SNMP_AUTH[auth]} "{AUTH_PASS}"',
                  f"rouser {user_name(auth, None)} auth"]
        for priv in PRIV_NAMES:
            if _priv_supported(priv, priv_ok):
                name = user_name(auth, priv)
                lines += [f'createUser {name} {NET_SNMP_AUTH[auth]} "{AUTH_PASS}" {CREATE_USER_PRIV[priv]} '
                          f'"{PRIV_PASS}"', f"rouser {name} priv"]
    lines += [f"createUser {user_name(None, None)}", f"rouser {user_name(None, None)} noauth"]
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd-v3"), extra_config="\n".join(lines))
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngine]:
    eng = SnmpEngine()
    try:
        yield eng
    finally:
        eng.close()


def v3(user: str, auth: str | None = None, priv: str | None = None, *, auth_password: str = AUTH_PASS,
       priv_password: str = PRIV_PASS) -> Credentials:
    return Credentials(version="3", username=user, auth_protocol=auth,
                       auth_password=auth_password if auth else "", priv_protocol=priv,
                       priv_password=priv_password if priv else "")


async def target(engine: SnmpEngine, snmpd: Snmpd, creds: Credentials, timeout: float = 1.0) -> SnmpTarget:
    return await engine.target(snmpd.host, snmpd.port, creds, timeout=timeout, retries=1)


async def read_sys_name(engine: SnmpEngine, snmpd: Snmpd, creds: Credentials) -> SnmpValue:
    [(oid, value)] = await (await target(engine, snmpd, creds)).get([SYS_NAME])
    assert oid == SYS_NAME
    return value


EXPECTED_NAME = SnmpValue("octets", b"hatang-test-snmpd")


@pytest.mark.parametrize(("auth", "priv"), COMBINATIONS, ids=[f"{a}-{p}" for a, p in COMBINATIONS])
async def test_auth_priv(engine: SnmpEngine, v3_snmpd: Snmpd, supported: tuple[set[str], set[str]],
                         auth: str, priv: str) -> None:
    assert auth in AUTH_PROTOCOLS and priv in PRIV_PROTOCOLS
    if priv in CONFIG_PRIV:  # the config file accepts the name, whatever this snmpd supports
        configfile.validate(SnmpConfig, {"version": "3", "username": "u", "auth_protocol": auth,
                                   "auth_password": "x" * 8, "priv_protocol": priv, "priv_password": "y" * 8})
    auth_ok, priv_ok = supported
    if NET_SNMP_AUTH[auth] not in auth_ok or not _priv_supported(priv, priv_ok):
        unavailable(f"this net-snmp does not support {NET_SNMP_AUTH[auth]}/{NET_SNMP_PRIV[priv]} "
                    f"(snmpget -h lists auth {sorted(auth_ok)}, priv {sorted(priv_ok)}); "
                    "our config accepts the name")
    assert await read_sys_name(engine, v3_snmpd, v3(user_name(auth, priv), auth, priv)) == EXPECTED_NAME


@pytest.mark.parametrize("auth", AUTH_NAMES)
async def test_auth_no_priv(engine: SnmpEngine, v3_snmpd: Snmpd, supported: tuple[set[str], set[str]],
                            auth: str) -> None:
    if NET_SNMP_AUTH[auth] not in supported[0]:
        unavailable(f"this net-snmp does not support {NET_SNMP_AUTH[auth]}")
    assert await read_sys_name(engine, v3_snmpd, v3(user_name(auth, None), auth)) == EXPECTED_NAME


async def test_no_auth_no_priv(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    assert await read_sys_name(engine, v3_snmpd, v3(user_name(None, None))) == EXPECTED_NAME


async def test_v1_and_v2c(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    for version in ("1", "2c"):
        creds = Credentials(version=version, community="public")
        assert await read_sys_name(engine, v3_snmpd, creds) == EXPECTED_NAME


async def test_v3_walk_matches_net_snmp(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    """A GETBULK walk over authPriv returns what snmpwalk (v2c) sees."""
    expected = snmpwalk(v3_snmpd, ".".join(map(str, IF_DESCR)))
    tgt = await target(engine, v3_snmpd, v3(user_name("SHA256", "AES"), "SHA256", "AES"))
    rows = await tgt.walk(IF_DESCR)
    assert {".".join(map(str, oid)): f'"{v.value.decode()}"' for oid, v in rows
            if isinstance(v.value, bytes)} == expected
    assert len(rows) == len(expected) > 0
    v1 = await target(engine, v3_snmpd, Credentials(version="1", community="public"))
    assert await v1.walk(IF_DESCR) == rows  # GETNEXT, ended by the next column (or noSuchName)


async def test_reeder_and_blumenthal_keys_differ_with_short_hashes(
    engine: SnmpEngine, v3_snmpd: Snmpd
) -> None:
    """With SHA-1 the AES-256 key needs extending: net-snmp's AES256 user does not accept the Cisco
    (Reeder) variant. This is why our AES256 means Blumenthal."""
    with pytest.raises(SnmpTimeout, match="wrong privacy password or protocol"):
        await read_sys_name(engine, v3_snmpd, v3(user_name("SHA", "AES256"), "SHA", "AES256C"))


# ------------------------------------------------------------------------------------------- errors


async def test_wrong_auth_password(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    creds = v3(user_name("SHA", "AES"), "SHA", "AES", auth_password="not-the-password")
    with pytest.raises(SnmpAuthError, match=r"wrongDigest\): wrong authentication password or protocol"):
        await read_sys_name(engine, v3_snmpd, creds)


async def test_wrong_auth_protocol(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"wrongDigest"):
        await read_sys_name(engine, v3_snmpd, v3(user_name("SHA", "AES"), "MD5", "AES"))


async def test_unknown_user(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"does not know SNMPv3 user 'nobody' \(unknownUserName\)"):
        await read_sys_name(engine, v3_snmpd, v3("nobody", "SHA", "AES"))


async def test_wrong_priv_password_looks_like_a_timeout_and_says_why(
    engine: SnmpEngine, v3_snmpd: Snmpd
) -> None:
    """net-snmp cannot decrypt the request and drops it without a report."""
    creds = v3(user_name("SHA", "AES"), "SHA", "AES", priv_password="not-the-password")
    with pytest.raises(SnmpTimeout) as caught:
        await read_sys_name(engine, v3_snmpd, creds)
    message = str(caught.value)
    assert f"no answer from {v3_snmpd.host}:{v3_snmpd.port} within 1 s x 2 tries" in message
    assert "wrong privacy password or protocol (AES;" in message


async def test_priv_for_a_user_without_privacy(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"does not support security level authPriv .*"
                                            r"unsupportedSecLevel"):
        await read_sys_name(engine, v3_snmpd, v3(user_name("SHA", None), "SHA", "AES"))


async def test_security_level_below_what_rouser_requires(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    with pytest.raises(SnmpAuthError, match=r"refused access \(authorizationError\).*higher security level "
                                            r"than authNoPriv"):
        await read_sys_name(engine, v3_snmpd, v3(user_name("SHA", "AES"), "SHA"))


async def test_wrong_community(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    creds = Credentials(version="2c", community="not-public")
    with pytest.raises(SnmpTimeout, match=r"wrong community \(SNMP v1/v2c devices do not answer a wrong "
                                          r"community\)"):
        await read_sys_name(engine, v3_snmpd, creds)


async def test_errors_do_not_poison_the_engine(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    """After failures with wrong credentials, the same engine still reads with the right ones, and
    snmpd still answers the real tools."""
    good = v3(user_name("SHA512", "AES256"), "SHA512", "AES256")
    for bad in (v3(user_name("SHA512", "AES256"), "SHA512", "AES256", auth_password="wrong-password"),
                v3("nobody", "SHA512", "AES256")):
        with pytest.raises(SnmpError):
            await read_sys_name(engine, v3_snmpd, bad)
        assert await read_sys_name(engine, v3_snmpd, good) == EXPECTED_NAME
    assert snmpget(v3_snmpd, ".".join(map(str, SYS_NAME))) == '"hatang-test-snmpd"'


async def test_unknown_protocol_names_are_refused_early(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    with pytest.raises(SnmpError, match=r"unknown SNMPv3 privacy protocol 'AES512'; known: DES, AES"):
        await target(engine, v3_snmpd, v3("u", "SHA", "AES512"))
    with pytest.raises(SnmpError, match=r"unknown SNMPv3 authentication protocol 'SHA1024'"):
        await target(engine, v3_snmpd, v3("u", "SHA1024"))


def test_net_snmp_lists_what_we_expect_on_debian_12() -> None:
    """Documents the matrix we verified: if this fails, net-snmp changed; check the module doc."""
    auth, priv = _tool_protocols()
    assert {"MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"} <= auth
    assert {"DES", "AES"} <= priv
    if not {"AES-192", "AES-256"} <= priv:
        unavailable(f"net-snmp here lacks Blumenthal AES-192/256 (lists {sorted(priv)})")


# ------------------------------------------------------------------------------------------- poll_once


def write_agent_config(tmp_path: Path, snmpd: Snmpd, snmp: str, name: str = "core-sw") -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "agent_id: hn-test\n"
        "site: {province: Hà Nội, commune: Đại Mỗ}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1'}\n"
        f"buffer: {{path: {tmp_path / 'buffer.db'}}}\n"
        "devices:\n"
        f"  - name: {name}\n"
        f"    address: {snmpd.host}\n"
        f"    port: {snmpd.port}\n"
        "    interval: 10\n"
        f"    snmp: {snmp}\n"
        "  - name: other-device\n"
        "    address: 127.0.0.1\n",
        encoding="utf-8",
    )
    return path


async def run_poll_once(path: Path, device: str = "core-sw") -> str:
    return await poll_once(load_agent_config(path), path, device)


async def test_poll_once_v2c(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    report = await run_poll_once(write_agent_config(tmp_path, v3_snmpd, "{version: 2c, community: public}"))
    # no profiles configured: auto, chosen by what this net-snmp answers (system first, interfaces among them)
    first = report.splitlines()[0]
    assert first.startswith(f"device core-sw at {v3_snmpd.host}:{v3_snmpd.port}, SNMP v2c, "
                            "profiles: auto: system, "), first
    assert re.search(r"\binterfaces\b.*\(chosen for sysObjectID 1\.3\.6\.1\.4\.1\.8072\.", first), first
    assert "status: UP (answered)\n" in report
    assert "errors: none\n" in report
    base = 'agent="hn-test",device="core-sw",commune="Đại Mỗ",province="Hà Nội"'
    assert re.search(r'^hatang_device_info\{' + re.escape(base) + r',.*sys_name="hatang-test-snmpd".*\} 1$',
                     report, re.MULTILINE), report
    assert "# TYPE hatang_device_info gauge" in report
    # the loopback interface with its counter, read like snmpget reads it
    lo_in = re.search(r'^hatang_interface_in_bytes_total\{[^}]*if_name="lo"[^}]*\} (\d+)$', report,
                      re.MULTILINE)
    assert lo_in is not None, report
    assert int(lo_in.group(1)) > 0


async def test_poll_once_v3_auth_priv_with_password_files(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    (tmp_path / "auth.secret").write_text(AUTH_PASS + "\n")
    (tmp_path / "priv.secret").write_text(PRIV_PASS + "\n")
    snmp = (f"{{version: 3, username: {user_name('SHA256', 'AES256')}, auth_protocol: SHA256, "
            "auth_password_file: auth.secret, priv_protocol: AES256, priv_password_file: priv.secret}")
    report = await run_poll_once(write_agent_config(tmp_path, v3_snmpd, snmp))
    assert "SNMP v3 user 'u_sha256_aes256' authPriv (SHA256/AES256)" in report
    assert "status: UP (answered)\n" in report and "errors: none\n" in report
    assert 'sys_name="hatang-test-snmpd"' in report


async def test_poll_once_wrong_community_says_so(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    snmp = "{version: 2c, community: wrong, timeout: 0.5, retries: 1}"
    report = await run_poll_once(write_agent_config(tmp_path, v3_snmpd, snmp))
    assert "status: DOWN (no usable answer)\n" in report
    # profiles: auto (the default): the device's identity is the first request, for the whole poll
    assert "profiles: auto (none chosen yet: the device did not answer)\n" in report
    assert (f"  whole poll [timeout]: no answer from {v3_snmpd.host}:{v3_snmpd.port} within 0.5 s x 2 "
            "tries: "
            "device down, wrong address/port, or wrong community (SNMP v1/v2c devices do not answer a wrong "
            "community)\n") in report
    # only the problem counter (one sample per reason) is published for a device that does not answer
    assert f"would publish 1 metric families, {len(ERROR_REASONS)} samples:\n" in report
    assert 'reason="timeout"} 1\n' in report


async def test_poll_once_wrong_v3_password_and_unknown_user(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    wrong = (f"{{version: 3, username: {user_name('SHA', 'AES')}, auth_protocol: SHA, "
             f"auth_password: nope-nope, priv_protocol: AES, priv_password: {PRIV_PASS}}}")
    report = await run_poll_once(write_agent_config(tmp_path, v3_snmpd, wrong))
    assert "wrong authentication password or protocol (configured: SHA)" in report
    assert "status: DOWN" in report
    unknown = "{version: 3, username: nobody, auth_protocol: SHA, auth_password: whatever-pass}"
    report = await run_poll_once(write_agent_config(tmp_path, v3_snmpd, unknown))
    assert "does not know SNMPv3 user 'nobody' (unknownUserName)" in report


async def test_poll_once_unknown_device(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    path = write_agent_config(tmp_path, v3_snmpd, "{version: 2c}")
    with pytest.raises(UnknownDeviceError, match=r"no device 'core'; known devices: core-sw, other-device"):
        await run_poll_once(path, "core")


# ------------------------------------------------------------------------------------------- shared user name


@pytest.fixture(params=[True, False], ids=["fast-path", "pysnmp"])
async def both_engines(request: pytest.FixtureRequest) -> AsyncIterator[SnmpEngine]:
    """The agent's own USM (the fast path) and pysnmp's, which needs each user pinned to its engine ID."""
    eng = SnmpEngine(fast_path=request.param)
    try:
        yield eng
    finally:
        eng.close()


async def test_same_user_name_with_different_keys_on_two_devices(
    tmp_path: Path, both_engines: SnmpEngine, v3_snmpd: Snmpd
) -> None:
    """pysnmp keeps one USM entry per user name: without pinning each device's user to its engine ID,
    polls of two devices that share a user name but not its keys fail with wrongDigest when they overlap.
    The agent's own USM keeps keys per (user, engine ID): no pinning needed."""
    engine = both_engines
    other = start_snmpd(tmp_path / "other", extra_config=(
        f'createUser {user_name("SHA", "AES")} SHA256 "other-auth-pass" AES256 "other-priv-pass"\n'
        f'rouser {user_name("SHA", "AES")} priv'))
    try:
        first = await target(engine, v3_snmpd, v3(user_name("SHA", "AES"), "SHA", "AES"))
        second = await target(engine, other, v3(user_name("SHA", "AES"), "SHA256", "AES256",
                                                auth_password="other-auth-pass",
                                                priv_password="other-priv-pass"))

        async def hammer(tgt: SnmpTarget) -> list[int]:
            counts = []
            for _ in range(15):
                assert await tgt.get([SYS_NAME]) == [(SYS_NAME, EXPECTED_NAME)]
                counts.append(len(await tgt.walk(IF_DESCR)))
            return counts

        results = await asyncio.gather(hammer(first), hammer(second))
        assert all(n > 0 for counts in results for n in counts)
        if isinstance(first.session, PysnmpSession):
            assert pinned(first) is not None and pinned(second) is not None
            assert pinned(first) != pinned(second)
    finally:
        other.stop()


def pinned(target: SnmpTarget) -> bytes | None:
    """The engine ID the target's pysnmp session pinned its user to (None: not pinned)."""
    assert isinstance(target.session, PysnmpSession)
    return target.session.engine_id


async def test_same_user_name_with_the_same_keys_needs_no_pinning(v3_snmpd: Snmpd) -> None:
    engine = SnmpEngine(fast_path=False)  # pinning is the pysnmp session's
    try:
        await _same_keys_need_no_pinning(engine, v3_snmpd)
    finally:
        engine.close()


async def _same_keys_need_no_pinning(engine: SnmpEngine, v3_snmpd: Snmpd) -> None:
    creds = v3(user_name("SHA", "AES"), "SHA", "AES")
    one, two = await target(engine, v3_snmpd, creds), await target(engine, v3_snmpd, creds)
    await asyncio.gather(one.get([SYS_NAME]), two.get([SYS_NAME]))
    assert pinned(one) is None and pinned(two) is None

"""SNMPv3 traps and informs on the receiver's own USM against its pysnmp reference, fed by real net-snmp.

Every notification is sent by ``snmptrap -v 3`` / ``snmpinform -v 3`` (explicit uptimes, so that two sends
are alike) to two receivers in this loop: the shipped :class:`TrapReceiver` (SNMPv3 by
agent.snmp.trap_v3) and a subclass that routes SNMPv3 to pysnmp, as before. For each auth x priv
combination the events must be equal (but for the receive time); a wrong key, a wrong user, an unknown
sender engine ID and too low a level are refused by both, counted alike, and informs with a wrong key are
not acknowledged. A receiver with SNMPv3 users never imports pysnmp (in a fresh interpreter).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.snmp.trap_events import TrapEvent, V3User
from agent.snmp.traps import TrapReceiver
from tests.integration.test_traps import LINK_DOWN, LINK_UP, VIETNAMESE, Events, NetSnmp, net_snmp, tool_env
from tests.support.services import LOOPBACK

pytestmark = pytest.mark.integration
__all__ = ["net_snmp", "tool_env"]  # fixtures

REPO = Path(__file__).resolve().parents[2]
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
SENDER = "80001f8880c0ffee0002"  # the sending device's engine ID (traps)
OURS = "80001f8880aabbcc0002"  # the receivers' engine ID (informs), the same for both
AUTH_PASS, PRIV_PASS = "auth-pass-1234", "priv-pass-5678"
NET_SNMP_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384",
                 "SHA512": "SHA-512"}
NET_SNMP_PRIV = {"DES": "DES", "AES": "AES", "AES192": "AES-192", "AES256": "AES-256", "AES256C": "AES256C"}
COMBINATIONS = [("SHA", "AES"), ("SHA256", "AES"), ("SHA512", "AES256"), ("MD5", "DES"), ("SHA224", "AES192"),
                ("SHA384", "AES256C"), ("SHA", None), (None, None)]


class PysnmpV3Receiver(TrapReceiver):
    fast_versions = frozenset({0, 1})  # SNMPv3 to pysnmp


def user(auth: str | None, priv: str | None) -> V3User:
    return V3User(f"u_{auth or 'none'}_{priv or 'none'}".lower(), auth, AUTH_PASS if auth else "", priv,
                  PRIV_PASS if priv else "", engine_id=SENDER)


def tool_args(u: V3User, auth_pass: str = AUTH_PASS, priv_pass: str = PRIV_PASS) -> list[str]:
    args = ["-v3", "-u", u.username, "-l", u.security_level]
    if u.auth_protocol:
        args += ["-a", NET_SNMP_AUTH[u.auth_protocol], "-A", auth_pass]
    if u.priv_protocol:
        args += ["-x", NET_SNMP_PRIV[u.priv_protocol], "-X", priv_pass]
    return args


class Pair:
    def __init__(self, users: list[V3User]) -> None:
        self.fast_events, self.ref_events = Events(), Events()
        self.fast = TrapReceiver((LOOPBACK, 0), ["public"], users, self.fast_events, engine_id=OURS)
        self.ref = PysnmpV3Receiver((LOOPBACK, 0), ["public"], users, self.ref_events, engine_id=OURS)

    def addresses(self) -> tuple[str, str]:
        return (f"{LOOPBACK}:{self.fast.bound[1]}", f"{LOOPBACK}:{self.ref.bound[1]}")

    async def both(self) -> tuple[TrapEvent, TrapEvent]:
        fast, ref = await self.fast_events.next(), await self.ref_events.next()
        return replace(fast, ts=0.0), replace(ref, ts=0.0)

    def counts(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return (self.fast.received, self.fast.rejected), (self.ref.received, self.ref.rejected)


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    auth, priv = request.param
    p = Pair([user(auth, priv), user("SHA256", "AES")])
    await p.fast.start()
    await p.ref.start()
    try:
        yield p
    finally:
        p.fast.close()
        p.ref.close()


@pytest.mark.parametrize("pair", COMBINATIONS, indirect=True, ids=lambda c: f"{c[0]}-{c[1]}")
async def test_v3_trap_and_inform_same_events_as_pysnmp(pair: Pair, net_snmp: NetSnmp,
                                                        request: pytest.FixtureRequest) -> None:
    u = user(*request.node.callspec.params["pair"])
    for address in pair.addresses():
        await net_snmp.ok("snmptrap", *tool_args(u), "-e", f"0x{SENDER}", address, "4711", LINK_DOWN,
                          f"{IF_INDEX}.7", "i", "7", f"{IF_DESCR}.7", "s", VIETNAMESE,
                          "1.3.6.1.2.1.31.1.1.1.6.7", "C", "18446744073709551615",
                          "1.3.6.1.2.1.2.2.1.6.7", "x", "001A2B3C4D5E")
    fast, ref = await pair.both()
    assert fast == ref
    assert (fast.version, fast.security_name, fast.trap_name, fast.if_index, fast.uptime, fast.inform) == (
        "3", u.username, "linkDown", "7", 47.11, False)
    for address in pair.addresses():  # snmpinform exits 0 only when it got an authenticated Response
        await net_snmp.ok("snmpinform", *tool_args(u), "-t", "2", "-r", "0", address, "99", LINK_UP,
                          f"{IF_INDEX}.2", "i", "2")
    fast, ref = await pair.both()
    assert fast == ref
    assert (fast.trap_name, fast.inform, fast.security_name) == ("linkUp", True, u.username)
    assert pair.counts() == ((2, 0), (2, 0))  # engine ID discovery is not a rejection


@pytest.mark.parametrize("pair", [("SHA512", "AES256")], indirect=True, ids=["SHA512-AES256"])
async def test_v3_refusals_counted_like_pysnmp(pair: Pair, net_snmp: NetSnmp) -> None:
    good = user("SHA512", "AES256")
    engine = ("-e", f"0x{SENDER}")
    low = ["-v3", "-u", good.username, "-l", "authNoPriv", "-a", "SHA-512", "-A", AUTH_PASS]
    traps = [
        [*tool_args(good, auth_pass="wrong-auth-pass"), *engine],  # wrong digest
        [*tool_args(good, priv_pass="wrong-priv-pass"), *engine],  # does not decrypt
        [*tool_args(replace(good, username="nobody")), *engine],  # unknown user
        [*tool_args(good), "-e", "0x80001f8880deadbeef"],  # engine ID not configured for the user
        [*low, *engine],  # below the configured level
        ["-v3", "-u", good.username, "-l", "noAuthNoPriv", *engine],
    ]
    for address in pair.addresses():
        for args in traps:
            await net_snmp.ok("snmptrap", *args, address, "5", LINK_DOWN)
        nobody = replace(good, username="nobody")
        informs = ([*tool_args(good, auth_pass="wrong-auth-pass")],
                   [*tool_args(good, priv_pass="wrong-priv-p")], [*tool_args(nobody)], low)
        for args in informs:
            code, out = await net_snmp.run("snmpinform", *args, "-t", "0.5", "-r", "0", address, "5", LINK_UP)
            assert code != 0, f"inform {args} was acknowledged: {out}"
        await net_snmp.ok("snmptrap", *tool_args(good), *engine, address, "6", LINK_UP)
    fast, ref = await pair.both()
    assert fast == ref and fast.trap_name == "linkUp"  # none of the bad ones got through
    assert pair.fast_events.queue.empty() and pair.ref_events.queue.empty()
    assert pair.counts()[0] == pair.counts()[1]
    assert pair.counts() == ((1, 10), (1, 10)), pair.counts()


def test_a_v3_receiver_never_imports_pysnmp(tool_env: dict[str, str]) -> None:
    script = f"""
import asyncio, sys
from agent.snmp.trap_events import V3User
from agent.snmp.traps import TrapReceiver

async def main() -> None:
    got = asyncio.get_running_loop().create_future()
    user = V3User("u", "SHA256", "{AUTH_PASS}", "AES", "{PRIV_PASS}", engine_id="{SENDER}")
    receiver = TrapReceiver(("127.0.0.1", 0), ["public"], [user], got.set_result)
    await receiver.start()
    proc = await asyncio.create_subprocess_exec(
        "snmptrap", "-v3", "-u", "u", "-l", "authPriv", "-a", "SHA-256", "-A", "{AUTH_PASS}", "-x", "AES",
        "-X", "{PRIV_PASS}", "-e", "0x{SENDER}", f"127.0.0.1:{{receiver.bound[1]}}", "1", "{LINK_DOWN}")
    await proc.wait()
    event = await asyncio.wait_for(got, 10)
    receiver.close()
    print(event.trap_name, event.security_name, "pysnmp" in sys.modules, "pyasn1" in sys.modules)

asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False, env=tool_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["linkDown", "u", "False", "False"]


@pytest.mark.parametrize("pair", [("SHA256", "AES")], indirect=True, ids=["SHA256-AES"])
async def test_v3_inform_with_a_stale_clock_resyncs_like_pysnmp(pair: Pair, net_snmp: NetSnmp) -> None:
    u = user("SHA256", "AES")
    for address in pair.addresses():  # boots 1 time 1 (a restarted receiver): a notInTimeWindow Report first
        await net_snmp.ok("snmpinform", *tool_args(u), "-e", f"0x{OURS}", "-Z", "1,1", "-t", "2", "-r", "1",
                          address, "7", LINK_UP)
    fast, ref = await pair.both()
    assert fast == ref and fast.inform
    assert pair.counts() == ((1, 1), (1, 1)), pair.counts()  # the stale request is counted, once

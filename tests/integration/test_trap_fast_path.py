"""The trap receiver's fast path against its pysnmp reference, both fed by the real net-snmp tools.

Every notification is sent by ``snmptrap``/``snmpinform`` (explicit uptimes, so that two sends are alike)
to two receivers in this loop: the shipped :class:`TrapReceiver` (v1/v2c decoded by agent.snmp.trap_decode)
and a subclass that routes every datagram to pysnmp, as before the fast path. Their events must be equal
(but for the receive time). Also: mutated and truncated copies of real datagrams never break the receiver,
and a v1/v2c-only receiver never imports pysnmp (in a fresh interpreter).
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.snmp.trap_events import TrapEvent
from agent.snmp.traps import TrapReceiver
from tests.integration.test_traps import LINK_DOWN, LINK_UP, VIETNAMESE, Events, NetSnmp, net_snmp, tool_env
from tests.support.services import LOOPBACK

pytestmark = pytest.mark.integration
__all__ = ["net_snmp", "tool_env"]  # fixtures

REPO = Path(__file__).resolve().parents[2]
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
COMMUNITIES = ("public", "s3cret-hatang")


class PysnmpReceiver(TrapReceiver):
    fast_versions = frozenset()


class Pair:
    def __init__(self) -> None:
        self.fast_events, self.ref_events = Events(), Events()
        self.fast = TrapReceiver((LOOPBACK, 0), COMMUNITIES, [], self.fast_events)
        self.ref = PysnmpReceiver((LOOPBACK, 0), COMMUNITIES, [], self.ref_events)

    def addresses(self) -> tuple[str, str]:
        return (f"{LOOPBACK}:{self.fast.bound[1]}", f"{LOOPBACK}:{self.ref.bound[1]}")

    async def both(self) -> tuple[TrapEvent, TrapEvent]:
        fast, ref = await self.fast_events.next(), await self.ref_events.next()
        return replace(fast, ts=0.0), replace(ref, ts=0.0)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    await p.fast.start()
    await p.ref.start()
    try:
        yield p
    finally:
        p.fast.close()
        p.ref.close()


async def test_v2c_trap_same_event_as_pysnmp(pair: Pair, net_snmp: NetSnmp) -> None:
    for address in pair.addresses():
        await net_snmp.ok("snmptrap", "-v2c", "-c", "s3cret-hatang", address, "4711", LINK_DOWN,
                          f"{IF_INDEX}.7", "i", "7", f"{IF_DESCR}.7", "s", VIETNAMESE,
                          "1.3.6.1.2.1.2.2.1.10.7", "c", "4294967295", "1.3.6.1.2.1.31.1.1.1.6.7", "C",
                          "18446744073709551615", "1.3.6.1.2.1.4.20.1.1.10.0.0.1", "a", "10.0.0.1",
                          "1.3.6.1.2.1.2.2.1.6.7", "x", "001A2B3C4D5E", "1.3.6.1.2.1.1.2.0", "o",
                          "1.3.6.1.4.1.8072.3.2.10", "1.3.6.1.2.1.2.2.1.5.7", "u", "1000000000")
    fast, ref = await pair.both()
    assert fast == ref
    assert (fast.trap_name, fast.if_index, fast.uptime, fast.security_name) == (
        "linkDown", "7", 47.11, "communities[1]")
    assert "s3cret" not in repr(fast)


async def test_v1_traps_same_event_as_pysnmp(pair: Pair, net_snmp: NetSnmp) -> None:
    for generic, specific, enterprise in (("2", "0", "1.3.6.1.4.1.8072"), ("6", "5", "1.3.6.1.4.1.318")):
        for address in pair.addresses():
            await net_snmp.ok("snmptrap", "-v1", "-c", "public", address, enterprise, "10.9.8.7", generic,
                              specific, "12345", f"{IF_INDEX}.3", "i", "3", f"{IF_DESCR}.3", "s", "uplink")
        fast, ref = await pair.both()
        assert fast == ref
        assert fast.version == "1" and fast.uptime == 123.45
    assert fast.trap_name == "apcUpsOnBattery"


async def test_v2c_inform_acknowledged_same_event_as_pysnmp(pair: Pair, net_snmp: NetSnmp) -> None:
    for address in pair.addresses():  # snmpinform exits 0 only when it got our Response-PDU
        await net_snmp.ok("snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "0", address, "99", LINK_UP,
                          f"{IF_INDEX}.2", "i", "2")
    fast, ref = await pair.both()
    assert fast == ref and fast.inform and fast.trap_name == "linkUp"
    code, _ = await net_snmp.run("snmpinform", "-v2c", "-c", "wrong", "-t", "0.5", "-r", "0",
                                 pair.addresses()[0], "99", LINK_UP)
    assert code != 0  # a wrong community is not acknowledged
    assert (pair.fast.received, pair.fast.rejected) == (1, 1)


async def test_mutated_real_datagrams_never_break_the_receiver(pair: Pair, net_snmp: NetSnmp) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind((LOOPBACK, 0))
        capture.setblocking(False)
        port = capture.getsockname()[1]
        await net_snmp.ok("snmptrap", "-v2c", "-c", "public", f"{LOOPBACK}:{port}", "5", LINK_DOWN,
                          f"{IF_INDEX}.9", "i", "9", f"{IF_DESCR}.9", "s", VIETNAMESE)
        await net_snmp.ok("snmptrap", "-v1", "-c", "public", f"{LOOPBACK}:{port}", "1.3.6.1.4.1.318",
                          LOOPBACK, "6", "5", "7", f"{IF_INDEX}.9", "i", "9")
        async with asyncio.timeout(10):
            real = [await loop.sock_recv(capture, 65535), await loop.sock_recv(capture, 65535)]
    rng = random.Random(19)
    mutated = [d[:cut] for d in real for cut in range(len(d))]
    for data in real:
        for _ in range(300):
            copy = bytearray(data)
            copy[rng.randrange(len(copy))] = rng.randrange(256)
            mutated.append(bytes(copy))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for i, data in enumerate(mutated):
            out.sendto(data, pair.fast.bound)
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the receiver read: stay well under its receive buffer
        out.sendto(real[0], pair.fast.bound)  # handled in order: once this one is out, all are
        while True:
            event = await pair.fast_events.next()
            if pair.fast.datagrams == len(mutated) + 1 and event.if_index == "9" and event.uptime == 0.05:
                break
    assert pair.fast.received + pair.fast.rejected == pair.fast.datagrams


def test_a_v1_v2c_receiver_never_imports_pysnmp() -> None:
    script = """
import asyncio, socket, sys
from agent.snmp.traps import TrapReceiver
from hatang.sim.ber import encode_message, make_trap_v2

async def main() -> None:
    got = asyncio.get_running_loop().create_future()
    receiver = TrapReceiver(("127.0.0.1", 0), ["public"], [], got.set_result)
    await receiver.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        trap = make_trap_v2(b"public", 1, 5, (1, 3, 6, 1, 6, 3, 1, 1, 5, 3))
        s.sendto(encode_message(trap), receiver.bound)
        event = await asyncio.wait_for(got, 10)
    receiver.close()
    print(event.trap_name, "pysnmp" in sys.modules, "pyasn1" in sys.modules)

asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["linkDown", "False", "False"]

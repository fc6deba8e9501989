"""The trap receiver inside the test's event loop, fed by the real net-snmp ``snmptrap``/``snmpinform``.

The tools run as asyncio subprocesses so the loop keeps serving while they send (``snmpinform`` waits
for our acknowledgement). Events are awaited from a queue under a deadline; "not delivered" is shown by
sending a good trap right after the bad datagram: datagrams are handled in arrival order, so once the
good one is out, the bad one has been dealt with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agent.snmp.trap_events import TrapEvent, V3User
from agent.snmp.traps import TrapListenError, TrapReceiver
from hatang.sim import ber
from tests.support.services import LOOPBACK, free_udp_port, require_binary, unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
SENDER_ENGINE_ID = "80001f8880c0ffee0001"  # what a device would be configured with (snmpd: engineID)
V3 = ("-u", "trapuser", "-l", "authPriv", "-a", "SHA-256", "-A", "authpass1", "-x", "AES", "-X", "privpass1")
USER = V3User("trapuser", "SHA256", "authpass1", "AES", "privpass1", engine_id=SENDER_ENGINE_ID)
VIETNAMESE = "Cổng uplink Sở TT&TT Hà Nội – tầng 3"
EVENT_TIMEOUT = 10.0


class Events:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[TrapEvent] = asyncio.Queue()

    def __call__(self, event: TrapEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self, timeout: float = EVENT_TIMEOUT) -> TrapEvent:
        async with asyncio.timeout(timeout):
            return await self.queue.get()


@contextlib.asynccontextmanager
async def receiving(communities: Sequence[str] = ("public",), users: Sequence[V3User] = (USER,),
                    **kwargs: str) -> AsyncIterator[tuple[TrapReceiver, Events, str]]:
    events = Events()
    receiver = TrapReceiver((LOOPBACK, 0), communities, users, events, **kwargs)
    await receiver.start()
    try:
        host, port = receiver.bound
        assert host == LOOPBACK and port > 0
        yield receiver, events, f"{host}:{port}"
    finally:
        receiver.close()


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    state = tmp_path / "net-snmp"
    state.mkdir()
    return dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(state), SNMPCONFPATH=str(state))


@pytest.fixture
def net_snmp(tool_env: dict[str, str]) -> NetSnmp:
    return NetSnmp(tool_env)


class NetSnmp:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def run(self, tool: str, *args: str, timeout: float = 20.0) -> tuple[int, str]:
        binary = require_binary(tool, "snmp")
        proc = await asyncio.create_subprocess_exec(binary, *args, env=self.env, stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            async with asyncio.timeout(timeout):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(errors="replace")

    async def ok(self, tool: str, *args: str) -> None:
        code, out = await self.run(tool, *args)
        assert code == 0, f"{tool} {' '.join(args)} exited {code}: {out}"

    async def trap_v2c(self, address: str, trap_oid: str, *varbinds: str, community: str = "public") -> None:
        await self.ok("snmptrap", "-v2c", "-c", community, address, "", trap_oid, *varbinds)


def send_datagram(address: str, payload: bytes) -> None:
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (host, int(port)))


def varbind(event: TrapEvent, oid: str) -> tuple[str, str]:
    found = [(kind, value) for name, kind, value in event.varbinds if name == oid]
    assert len(found) == 1, f"{oid} not exactly once in {event.varbinds}"
    return found[0]


# ------------------------------------------------------------------------------------------- v1 / v2c


async def test_v2c_link_down_with_if_index_and_vietnamese_text(net_snmp: NetSnmp) -> None:
    async with receiving() as (receiver, events, address):
        await net_snmp.trap_v2c(address, LINK_DOWN, f"{IF_INDEX}.7", "i", "7",
                                f"{IF_DESCR}.7", "s", VIETNAMESE)
        event = await events.next()
        assert event.source == LOOPBACK
        assert (event.version, event.security_name) == ("2c", "communities[0]")
        assert (event.trap_oid, event.trap_name, event.if_index) == (LINK_DOWN, "linkDown", "7")
        assert event.uptime is not None and event.uptime >= 0
        assert event.inform is False
        assert varbind(event, f"{IF_INDEX}.7") == ("integer", "7")
        assert varbind(event, f"{IF_DESCR}.7") == ("octets", VIETNAMESE)
        assert varbind(event, "1.3.6.1.6.3.1.1.4.1.0") == ("oid", LINK_DOWN)
        assert (receiver.received, receiver.rejected) == (1, 0)


async def test_v1_generic_link_down_is_converted(net_snmp: NetSnmp) -> None:
    async with receiving() as (_, events, address):
        await net_snmp.ok("snmptrap", "-v1", "-c", "public", address, "1.3.6.1.4.1.8072", LOOPBACK, "2", "0",
                          "", f"{IF_INDEX}.3", "i", "3")
        event = await events.next()
        assert event.version == "1"
        assert (event.trap_oid, event.trap_name, event.if_index) == (LINK_DOWN, "linkDown", "3")
        assert varbind(event, "1.3.6.1.6.3.18.1.3.0") == ("ipaddress", LOOPBACK)  # snmpTrapAddress
        assert varbind(event, "1.3.6.1.6.3.1.1.4.3.0") == ("oid", "1.3.6.1.4.1.8072")  # snmpTrapEnterprise
        assert all(oid != "1.3.6.1.6.3.18.1.4.0" for oid, _, _ in event.varbinds)  # no snmpTrapCommunity
        assert "public" not in repr(event)


async def test_v1_enterprise_specific_trap(net_snmp: NetSnmp) -> None:
    async with receiving() as (_, events, address):
        await net_snmp.ok("snmptrap", "-v1", "-c", "public", address, "1.3.6.1.4.1.318", LOOPBACK, "6", "5",
                          "4711")
        event = await events.next()
        assert (event.trap_oid, event.trap_name, event.uptime) == ("1.3.6.1.4.1.318.0.5", "apcUpsOnBattery",
                                                                   47.11)


async def test_v2c_inform_is_acknowledged(net_snmp: NetSnmp) -> None:
    async with receiving() as (_, events, address):
        await net_snmp.ok("snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "0", address, "", LINK_UP,
                          f"{IF_INDEX}.2", "i", "2")
        event = await events.next()
        assert (event.trap_name, event.if_index, event.inform, event.version) == ("linkUp", "2", True, "2c")


async def test_second_community_is_reported_by_index(net_snmp: NetSnmp) -> None:
    async with receiving(communities=("public", "s3cret-hatang")) as (_, events, address):
        await net_snmp.trap_v2c(address, LINK_UP, community="s3cret-hatang")
        event = await events.next()
        assert event.security_name == "communities[1]"
        assert "s3cret" not in repr(event)


async def test_wrong_community_is_rejected_and_not_acknowledged(net_snmp: NetSnmp) -> None:
    async with receiving() as (receiver, events, address):
        await net_snmp.trap_v2c(address, LINK_DOWN, community="wrong")
        code, _ = await net_snmp.run("snmpinform", "-v2c", "-c", "wrong", "-t", "0.5", "-r", "0", address, "",
                                     LINK_DOWN)
        assert code != 0, "an inform with a wrong community must not be acknowledged"
        await net_snmp.trap_v2c(address, LINK_UP)
        event = await events.next()
        assert event.trap_name == "linkUp"  # the first event is the good trap: the bad ones were dropped
        assert events.queue.empty()
        assert (receiver.received, receiver.rejected) == (1, 2)


async def test_garbage_is_counted_and_the_receiver_keeps_working(net_snmp: NetSnmp) -> None:
    garbage = [
        b"hello, this is not SNMP",
        b"\x30\x03\x02\x01\x05",  # a SEQUENCE with a bad version: raises inside pysnmp (TypeError)
        b"\x30\x82\xff\xff\x02\x01\x01",  # length beyond the datagram
        b"\xff" * 300,
        b"",
    ]
    async with receiving() as (receiver, events, address):
        for payload in garbage:
            send_datagram(address, payload)
        await net_snmp.trap_v2c(address, LINK_DOWN, f"{IF_INDEX}.9", "i", "9")
        event = await events.next()
        assert event.if_index == "9"
        assert receiver.rejected == len(garbage)
        assert receiver.datagrams == len(garbage) + 1
        assert receiver.received == 1


async def test_malformed_trap_without_trap_oid_is_rejected() -> None:
    no_trap_oid = ber.encode_message_parts(
        ber.VERSION_2C, b"public", ber.SNMPV2_TRAP, 1, 0, 0,
        [ber.encode_varbind(ber.SYS_UPTIME_0, ber.timeticks(5))])
    good = ber.encode_message(ber.make_trap_v2(b"public", 2, 5, (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)))
    async with receiving() as (receiver, events, address):
        send_datagram(address, no_trap_oid)
        send_datagram(address, good)
        assert (await events.next()).trap_name == "coldStart"
        assert (receiver.received, receiver.rejected) == (1, 1)


async def test_negative_counter_from_buggy_device_is_repaired() -> None:
    # A device that encodes Counter32 4294967291 as the negative BER integer -5: pysnmp alone drops it.
    buggy = ber.encode_message(ber.make_trap_v2(
        b"public", 3, 5, (1, 3, 6, 1, 4, 1, 99, 0, 1),
        [((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), ber.Value(0x41, -5))]))
    async with receiving() as (_, events, address):
        send_datagram(address, buggy)
        event = await events.next()
        assert varbind(event, "1.3.6.1.2.1.2.2.1.10.1") == ("counter32", str(2**32 - 5))


# ------------------------------------------------------------------------------------------- SNMPv3


async def test_v3_auth_priv_trap_with_configured_engine_id(net_snmp: NetSnmp) -> None:
    async with receiving() as (receiver, events, address):
        for ifindex in ("4", "5"):  # twice: the second must pass the time-window check too
            await net_snmp.ok("snmptrap", "-v3", "-e", f"0x{SENDER_ENGINE_ID}", *V3, address, "", LINK_DOWN,
                              f"{IF_INDEX}.{ifindex}", "i", ifindex, f"{IF_DESCR}.{ifindex}", "s", VIETNAMESE)
            event = await events.next()
            assert (event.version, event.security_name, event.trap_name) == ("3", "trapuser", "linkDown")
            assert event.if_index == ifindex
            assert varbind(event, f"{IF_DESCR}.{ifindex}") == ("octets", VIETNAMESE)
            assert event.inform is False
        assert receiver.rejected == 0


async def test_v3_auth_priv_inform_needs_no_engine_id(net_snmp: NetSnmp) -> None:
    user = V3User("informer", "SHA256", "authpass1", "AES", "privpass1")  # no engine_id: discovery
    async with receiving(users=[user]) as (receiver, events, address):
        await net_snmp.ok("snmpinform", "-v3", "-u", "informer", "-l", "authPriv", "-a", "SHA-256", "-A",
                          "authpass1", "-x", "AES", "-X", "privpass1", "-t", "2", "-r", "0", address, "",
                          "1.3.6.1.2.1.33.2.1")
        event = await events.next()
        assert (event.version, event.security_name, event.trap_name, event.inform) == (
            "3", "informer", "upsTrapOnBattery", True)
        assert receiver.rejected == 0  # engine-id discovery is not a rejection


async def test_v3_inform_to_fixed_engine_id(net_snmp: NetSnmp) -> None:
    async with receiving(engine_id="0x80001f8880aabbccdd") as (receiver, events, address):
        assert receiver.engine_id == "80001f8880aabbccdd"
        await net_snmp.ok("snmpinform", "-v3", *V3, "-t", "2", "-r", "0", address, "", LINK_UP)
        assert (await events.next()).trap_name == "linkUp"


async def test_v3_trap_rejections(net_snmp: NetSnmp) -> None:
    engine = ("-e", f"0x{SENDER_ENGINE_ID}")
    wrong_auth = ("-u", "trapuser", "-l", "authPriv", "-a", "SHA-256", "-A", "WRONGpass", "-x", "AES", "-X",
                  "privpass1")
    no_auth = ("-u", "trapuser", "-l", "noAuthNoPriv")  # a user configured for authPriv, without auth
    async with receiving() as (receiver, events, address):
        await net_snmp.ok("snmptrap", "-v3", *engine, *wrong_auth, address, "", LINK_DOWN)
        await net_snmp.ok("snmptrap", "-v3", *engine, *no_auth, address, "", LINK_DOWN)
        await net_snmp.ok("snmptrap", "-v3", "-e", "0x80001f8880deadbeef", *V3, address, "", LINK_DOWN)
        await net_snmp.ok("snmptrap", "-v3", *engine, "-u", "nobody", "-l", "noAuthNoPriv", address, "",
                          LINK_DOWN)
        code, _ = await net_snmp.run("snmpinform", "-v3", *no_auth, "-t", "0.5", "-r", "0", address, "",
                                     LINK_DOWN)
        assert code != 0, "an unauthenticated inform for an authPriv user must not be acknowledged"
        await net_snmp.ok("snmptrap", "-v3", *engine, *V3, address, "", LINK_UP)
        event = await events.next()
        assert event.trap_name == "linkUp"  # none of the bad ones got through
        assert events.queue.empty()
        # wrong digest, too low a level (trap and inform), unknown engine id, unknown user
        assert receiver.rejected == 5
        assert receiver.received == 1


# ------------------------------------------------------------------------------------------- binding


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind((LOOPBACK, 0))
        port = holder.getsockname()[1]
        receiver = TrapReceiver((LOOPBACK, port), ["public"], [], lambda event: None)
        with pytest.raises(TrapListenError, match="already listens"):
            await receiver.start()


async def test_close_releases_the_port_and_keeps_counters(net_snmp: NetSnmp) -> None:
    port = free_udp_port()
    events = Events()
    receiver = TrapReceiver((LOOPBACK, port), ["public"], [], events)
    await receiver.start()
    assert receiver.bound == (LOOPBACK, port)
    await net_snmp.trap_v2c(f"{LOOPBACK}:{port}", LINK_DOWN, community="wrong")
    await net_snmp.trap_v2c(f"{LOOPBACK}:{port}", LINK_DOWN)
    await events.next()
    receiver.close()
    receiver.close()  # idempotent
    assert (receiver.received, receiver.rejected) == (1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((LOOPBACK, port))  # free again
    with pytest.raises(RuntimeError, match="starts once"):
        await receiver.start()


async def test_ipv6_loopback(net_snmp: NetSnmp) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        unavailable("no IPv6 loopback here")
    events = Events()
    receiver = TrapReceiver(("::1", 0), ["public"], [], events)
    await receiver.start()
    try:
        await net_snmp.trap_v2c(f"udp6:[::1]:{receiver.bound[1]}", LINK_DOWN)
        event = await events.next()
        assert (event.source, event.trap_name) == ("::1", "linkDown")
    finally:
        receiver.close()


def _in_private_netns(script: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``script`` in a new user+network namespace (nothing it does reaches the host's network
    settings), with unprivileged ports from 1024 and CAP_NET_BIND_SERVICE dropped."""
    unshare, setpriv = require_binary("unshare", "util-linux"), require_binary("setpriv", "util-linux")
    shell = (
        "echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start && ip link set lo up && "
        f'exec {setpriv} --inh-caps=-net_bind_service --bounding-set=-net_bind_service "$0" -c "$1"'
    )
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--net", "sh", "-c", shell, sys.executable,
                           textwrap.dedent(script)], capture_output=True, text=True, cwd=REPO, timeout=60,
                          check=False)
    if proc.returncode != 0 and not proc.stdout and ("unshare" in proc.stderr or "setpriv" in proc.stderr):
        unavailable(f"cannot create user/network namespaces here: {proc.stderr.strip()}")
    return proc


def test_privileged_port_without_capability_is_a_clear_error() -> None:
    proc = _in_private_netns("""
        import asyncio
        from agent.snmp.traps import TrapListenError, TrapReceiver

        async def main() -> None:
            receiver = TrapReceiver(("127.0.0.1", 162), ["public"], [], lambda event: None)
            try:
                await receiver.start()
            except TrapListenError as exc:
                print("ERROR", exc)
            else:
                receiver.close()
                print("BOUND")

        asyncio.run(main())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ERROR cannot listen for SNMP traps on udp 127.0.0.1:162"), proc.stdout
    assert "CAP_NET_BIND_SERVICE" in proc.stdout

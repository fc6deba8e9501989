"""The simulated devices, served over UDP, queried by the real net-snmp tools and by raw datagrams.

The clock is frozen so that what the tools print must equal the device table exactly.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hatang.sim import ber
from hatang.sim.device import IF_ENTRY, IFX_ENTRY, SimulatedDevice, make_router, make_switch
from hatang.sim.responder import SimulatorHandle, answer, serve_devices
from tests.support.services import require_binary

IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)
IFX_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_LOCATION = (1, 3, 6, 1, 2, 1, 1, 6, 0)
PORTS = 24
NOW = 1_750_000_000.0


def dotted(o: tuple[int, ...]) -> str:
    return ".".join(map(str, o))


def tool(name: str) -> str:
    return require_binary(name, "snmp")


async def run(name: str, *args: str) -> tuple[int, str, str]:
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(tool(name), "-t", "2", "-r", "1", *args,
                                                stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


HEX_CONTINUATION = re.compile(r"^([0-9A-F]{2} ?)+$")
END_OF_VIEW = "No more variables left in this MIB View (It is past the end of the MIB tree)"


def parse(output: str) -> list[tuple[tuple[int, ...], tuple[str, object]]]:
    """Parse `-On -Ox` output into (OID, (kind, value)); Hex-STRINGs continue on following lines.

    endOfMibView lines (which snmpbulkwalk prints when a walk reaches the end of the MIB) are left out.
    """
    raw: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("."):
            name, _, rest = line.partition(" = ")
            if rest != END_OF_VIEW:
                raw.append([name, rest])
        elif raw and HEX_CONTINUATION.match(line.strip()):
            raw[-1][1] += " " + line.strip()
    result = []
    for name, rest in raw:
        kind, _, text = rest.partition(": ")
        value: object
        if kind == '""':
            kind, value = "OCTETS", b""
        elif kind == "Hex-STRING":
            kind, value = "OCTETS", bytes.fromhex(text)
        elif kind == "Timeticks":
            value = int(text.split(")")[0].lstrip("("))
        elif kind == "OID":
            value = tuple(int(x) for x in text.strip(".").split("."))
        elif kind in ("INTEGER", "Counter32", "Gauge32", "Counter64"):
            value = int(text)
        else:
            value = rest
        result.append((tuple(int(x) for x in name.strip(".").split(".")), (kind, value)))
    return result


KIND = {ber.INTEGER: "INTEGER", ber.OCTET_STRING: "OCTETS", ber.COUNTER32: "Counter32",
        ber.GAUGE32: "Gauge32", ber.TIMETICKS: "Timeticks", ber.COUNTER64: "Counter64",
        ber.OBJECT_IDENTIFIER: "OID"}


def expected(device: SimulatedDevice, prefix: tuple[int, ...], *, v1: bool = False) -> list[Any]:
    return [(o, (KIND[v.tag], v.value)) for o, v in device.walk(prefix)
            if not (v1 and v.tag == ber.COUNTER64)]


Sim = tuple[SimulatorHandle, SimulatedDevice, SimulatedDevice]


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    switch = make_switch("sw-dai-dinh", ports=PORTS, seed=7, clock=lambda: NOW)
    router = make_router("rt-dai-dinh", seed=7, clock=lambda: NOW)
    async with await serve_devices([switch, router]) as handle:
        yield handle, switch, router


def target(handle: SimulatorHandle, index: int = 0) -> str:
    endpoint = handle.endpoints[index]
    return f"{endpoint.host}:{endpoint.port}"


@pytest.mark.integration
async def test_one_port_per_device_snmpget(sim: Sim) -> None:
    handle, switch, router = sim
    assert [e.name for e in handle.endpoints] == ["sw-dai-dinh", "rt-dai-dinh"]
    assert len({e.port for e in handle.endpoints}) == 2
    for index, device in enumerate((switch, router)):
        rc, out, err = await run("snmpget", "-v2c", "-c", "public", "-On", "-Ox", target(handle, index),
                                 dotted(SYS_NAME), dotted(SYS_LOCATION), "1.3.6.1.2.1.1.3.0")
        assert rc == 0, err
        got = dict(parse(out))
        assert got[SYS_NAME] == ("OCTETS", device.name.encode())
        assert got[SYS_LOCATION] == ("OCTETS", "Phòng máy chủ, UBND xã Đại Đình".encode())
        uptime = device.get((1, 3, 6, 1, 2, 1, 1, 3, 0))
        assert uptime is not None and got[(1, 3, 6, 1, 2, 1, 1, 3, 0)] == ("Timeticks", uptime.value)


@pytest.mark.integration
async def test_snmpget_v2c_exceptions(sim: Sim) -> None:
    handle, _, _ = sim
    rc, out, err = await run("snmpget", "-v2c", "-c", "public", "-On", target(handle),
                             "1.3.6.1.2.1.1.1", "1.3.6.1.2.1.99.0", "1.3.6.1.2.1.2.2.1.10.999")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == ".1.3.6.1.2.1.1.1 = No Such Instance currently exists at this OID"
    assert lines[1] == ".1.3.6.1.2.1.99.0 = No Such Object available on this agent at this OID"
    assert lines[2] == ".1.3.6.1.2.1.2.2.1.10.999 = No Such Instance currently exists at this OID"


@pytest.mark.integration
async def test_snmpbulkwalk_iftable(sim: Sim) -> None:
    handle, switch, _ = sim
    rc, out, err = await run("snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Ox", target(handle),
                             dotted(IF_TABLE))
    assert rc == 0, err
    got = parse(out)
    assert len(got) == 17 * PORTS
    assert got == expected(switch, IF_TABLE)


@pytest.mark.integration
async def test_snmpbulkwalk_ifxtable_counter64_and_vietnamese_alias(
        sim: Sim) -> None:
    handle, switch, _ = sim
    rc, out, err = await run("snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Ox", "-Cr25", target(handle),
                             dotted(IFX_TABLE))
    assert rc == 0, err
    got = parse(out)
    assert got == expected(switch, IFX_TABLE)
    assert out.splitlines()[-1].endswith(END_OF_VIEW)  # ifXTable is the end of this device's MIB
    table = dict(got)
    assert table[(*IFX_ENTRY, 18, PORTS)] == ("OCTETS", "Uplink - Đường truyền số liệu chuyên dùng".encode())
    assert table[(*IFX_ENTRY, 18, 1)] == ("OCTETS", "Bộ phận một cửa".encode())
    hc = table[(*IFX_ENTRY, 6, PORTS)]
    assert hc[0] == "Counter64" and isinstance(hc[1], int) and hc[1] > 2**32
    assert table[(*IFX_ENTRY, 15, PORTS)] == ("Gauge32", 1000)


@pytest.mark.integration
async def test_snmpwalk_v1_hides_counter64_and_stops_at_end_of_mib(
        sim: Sim) -> None:
    handle, _, router = sim
    rc, out, err = await run("snmpwalk", "-v1", "-c", "public", "-On", "-Ox", target(handle, 1),
                             dotted(IFX_TABLE))
    assert rc == 0, err
    got = parse(out)
    assert got == expected(router, IFX_TABLE, v1=True)
    assert len(got) == 4 * 7  # 15 columns, 8 of them Counter64
    assert "End of MIB" in out  # ifAlias is the last column: v1 noSuchName past the end


@pytest.mark.integration
async def test_snmpget_v1_missing_is_nosuchname(sim: Sim) -> None:
    handle, _, _ = sim
    rc, out, err = await run("snmpget", "-v1", "-c", "public", "-On", "-Cf", target(handle),
                             dotted(SYS_NAME), "1.3.6.1.2.1.1.9.0")
    assert rc != 0
    assert "noSuchName" in out + err
    assert "Failed object: .1.3.6.1.2.1.1.9.0" in out + err


@pytest.mark.integration
async def test_snmpbulkget_repetitions_and_end_of_mib(
        sim: Sim) -> None:
    handle, switch, _ = sim
    last = switch.oids[-1]
    rc, out, err = await run("snmpbulkget", "-v2c", "-c", "public", "-On", "-Cn1", "-Cr5", target(handle),
                             "1.3.6.1.2.1.1.1.0", dotted((*IF_ENTRY, 2)), dotted(last))
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(".1.3.6.1.2.1.1.2.0 = OID:")
    descr = [line for line in lines if line.startswith(".1.3.6.1.2.1.2.2.1.2.")]
    assert [line.split(" = ")[0] for line in descr] == [f".1.3.6.1.2.1.2.2.1.2.{i}" for i in range(1, 6)]
    end = [line for line in lines if "No more variables left in this MIB View" in line]
    assert len(end) == 5 and all(line.startswith("." + dotted(last)) for line in end)


@pytest.mark.integration
async def test_wrong_community_gets_no_answer(sim: Sim) -> None:
    handle, _, _ = sim
    proc = await asyncio.create_subprocess_exec(
        tool("snmpget"), "-v2c", "-c", "private", "-t", "0.3", "-r", "0", target(handle), dotted(SYS_NAME),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode != 0
    assert b"Timeout" in out + err
    assert handle.stats(0).bad_community == 1
    assert handle.stats(0).responses == 0


# ---------------------------------------------------------------- raw datagrams (no net-snmp needed)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def exchange(handle: SimulatorHandle, *datagrams: bytes, index: int = 0) -> bytes:
    """Send the datagrams in order and return the first reply (to the last, when only that one answers)."""
    loop = asyncio.get_running_loop()
    endpoint = handle.endpoints[index]
    transport, client = await loop.create_datagram_endpoint(_Client,
                                                            remote_addr=(endpoint.host, endpoint.port))
    try:
        for d in datagrams:
            transport.sendto(d)
        return await asyncio.wait_for(client.replies.get(), timeout=5)
    finally:
        transport.close()


def request(tag: int, *oids: tuple[int, ...], version: int = ber.VERSION_2C, es: int = 0, ei: int = 0,
            community: bytes = b"public") -> bytes:
    pdu = ber.Pdu(tag, 99, es, ei, tuple((o, ber.NULL_VALUE) for o in oids))
    return ber.encode_message(ber.Message(version, community, pdu))


async def test_malformed_and_unsupported_are_counted_and_ignored(
        sim: Sim) -> None:
    handle, switch, _ = sim
    garbage = [b"\x30\x00", b"\x30\x03\x02\x01", b"\xff" * 50, request(ber.GET_REQUEST, SYS_NAME)[:-3]]
    v1_bulk = request(ber.GET_BULK_REQUEST, SYS_NAME, version=ber.VERSION_1, ei=10)
    trap = ber.encode_message(ber.make_trap_v2(b"public", 1, 5, (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)))
    reply = await exchange(handle, *garbage, v1_bulk, trap, request(ber.GET_REQUEST, SYS_NAME))
    assert ber.decode_message(reply).pdu.varbinds == ((SYS_NAME, ber.octets(switch.name)),)
    stats = handle.stats(0)
    assert (stats.malformed, stats.unsupported, stats.responses, stats.errors) == (4, 2, 1, 0)


async def test_getbulk_huge_repetitions_is_capped(sim: Sim) -> None:
    handle, switch, _ = sim
    reply = await exchange(handle, request(ber.GET_BULK_REQUEST, (1, 3), ei=2**31 - 1))
    assert len(reply) <= 65507
    pdu = ber.decode_message(reply).pdu
    assert pdu.error_status == 0
    # Everything, then one endOfMibView for the repeater, then stopped.
    assert [o for o, _ in pdu.varbinds] == [*switch.oids, switch.oids[-1]]
    assert pdu.varbinds[-1][1] == ber.END_OF_MIB_VIEW_VALUE


def test_answer_limits_size_and_reports_too_big() -> None:
    big = make_switch("big", ports=2000, clock=lambda: NOW)
    bulk = ber.decode_message(request(ber.GET_BULK_REQUEST, (*IF_ENTRY, 2), (*IFX_ENTRY, 18), ei=5000))
    reply = answer(big, bulk, max_varbinds=100_000)
    assert reply is not None and len(reply) <= 65507
    vbs = ber.decode_message(reply).pdu.varbinds
    assert 1000 < len(vbs) < 5000
    assert [o for o, _ in vbs[:4]] == [(*IF_ENTRY, 2, 1), (*IFX_ENTRY, 18, 1),
                                       (*IF_ENTRY, 2, 2), (*IFX_ENTRY, 18, 2)]
    capped = answer(big, bulk, max_varbinds=10)
    assert capped is not None and len(ber.decode_message(capped).pdu.varbinds) == 10
    get = ber.decode_message(request(ber.GET_REQUEST, *[(*IF_ENTRY, 2, i) for i in range(1, 101)]))
    too_big = answer(big, get, max_size=1000)
    assert too_big is not None
    pdu = ber.decode_message(too_big).pdu
    assert (pdu.error_status, pdu.varbinds) == (1, ())


def test_answer_v1_getnext_skips_counter64_and_fails_past_end() -> None:
    sw = make_switch("sw", ports=3, clock=lambda: NOW)
    v1_next = ber.decode_message(request(ber.GET_NEXT_REQUEST, (*IFX_ENTRY, 5, 3), version=ber.VERSION_1))
    reply = answer(sw, v1_next)
    assert reply is not None
    assert ber.decode_message(reply).pdu.varbinds[0][0] == (*IFX_ENTRY, 15, 1)
    past_end = ber.decode_message(request(ber.GET_NEXT_REQUEST, SYS_NAME, sw.oids[-1], version=ber.VERSION_1))
    reply = answer(sw, past_end)
    assert reply is not None
    pdu = ber.decode_message(reply).pdu
    assert (pdu.error_status, pdu.error_index) == (2, 2)
    assert pdu.varbinds == past_end.pdu.varbinds

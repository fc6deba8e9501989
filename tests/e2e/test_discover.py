"""``hatang discover`` (the installed command, as a process) sweeping loopback addresses on which recordings
of real devices (PyPI ``snmpsim-data``, replayed with the project's simulator) answer, each on its own
address of 127.0.0.0/8 and the same UDP port, among silent addresses; one silent address is a black hole
that counts the requests it gets.

Expected values come from the recordings, not from the code under test: the names from sysName, the
vendor written here for each recording, and the profiles by the selection rule of docs/profiles.md applied
to the recording (sysObjectID prefixes, sysDescr pattern, ``answers`` subtrees present in it, extended
profiles dropped). The devices: block written with ``--output`` must pass ``hatang check``. An SNMPv3
device is a real net-snmp ``snmpd`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from agent.profiles import Profile, load_profiles
from hatang.sim.ber import BerError, decode_message
from hatang.sim.device import SimulatedDevice
from hatang.sim.responder import answer
from hatang.yaml_loading import parse_yaml
from tests.support import snmprec
from tests.support.hatang import run_hatang
from tests.support.services import start_snmpd, unavailable
from wire.topics import DEVICE_NAME_PATTERN

pytestmark = pytest.mark.integration

SYS_DESCR, SYS_OBJECT_ID, SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0), (
    1, 3, 6, 1, 2, 1, 1, 5, 0)
TIMEOUT = 0.5
CONCURRENCY = 8


@dataclass(frozen=True)
class Recorded:
    host: str
    recording: str
    vendor: str  # from the vendor's enterprise number, written here by hand
    community: str = "public"


DEVICES = (
    Recorded("127.0.0.3", "network/switch/cisco-c3560", "Cisco"),
    Recorded("127.0.0.5", "network/router/huawei-s5720", "Huawei"),
    Recorded("127.0.0.8", "UPS/apc-8641", "APC"),
    Recorded("127.0.0.11", "os/linux/slackware", "Net-SNMP"),
    Recorded("127.0.0.12", "os/windows/server-2003-5-2", "Microsoft"),
    Recorded("127.0.0.17", "network/switch/cisco-c3560", "Cisco"),  # the same sysName twice
    Recorded("127.0.0.19", "network/switch/h3c-e528-1", "H3C", community="office"),  # the second community
)
BLACK_HOLE = "127.0.0.14"  # takes requests and never answers


@pytest.fixture(scope="module")
def data_dir() -> Path:
    found = snmprec.data_dir()
    if found is None:
        unavailable(f"the recordings of real devices need the PyPI package {snmprec.PACKAGE}")
    assert found is not None
    return found


class _Responder(asyncio.DatagramProtocol):
    """One recorded device (or, without one, a black hole) on one address; counts what it gets."""

    def __init__(self, device: SimulatedDevice | None, community: str) -> None:
        self.device = device
        self.community = community.encode()
        self.datagrams = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        if self.device is None or self.transport is None:
            return
        try:
            request = decode_message(data)
        except BerError:
            return
        if request.community == self.community:
            response = answer(self.device, request)
            if response is not None:
                self.transport.sendto(response, addr)


@dataclass
class Office:
    port: int
    responders: dict[str, _Responder]
    recordings: dict[str, snmprec.Recording]


async def _bind(plan: dict[str, tuple[SimulatedDevice | None, str]]) -> tuple[int, dict[str, _Responder]]:
    """Every responder on its own address and one port (the first one's free port); retried when another
    program holds that port on one of the addresses."""
    loop = asyncio.get_running_loop()
    for _ in range(20):
        port, made, transports = 0, {}, []
        try:
            for host, (device, community) in plan.items():
                transport, protocol = await loop.create_datagram_endpoint(
                    functools.partial(_Responder, device, community), local_addr=(host, port))
                transports.append(transport)
                port = port or transport.get_extra_info("sockname")[1]
                made[host] = protocol
            return port, made
        except OSError as exc:
            for transport in transports:
                transport.close()
            if exc.errno != errno.EADDRINUSE:
                raise
    raise AssertionError("no UDP port was free on every address")


@pytest.fixture(scope="module")
def office(data_dir: Path) -> Iterator[Office]:
    recordings = {d.host: snmprec.load_recording(snmprec.find_recording(data_dir, d.recording))
                  for d in DEVICES}
    plan: dict[str, tuple[SimulatedDevice | None, str]] = {
        d.host: (snmprec.device(recordings[d.host]), d.community) for d in DEVICES}
    plan[BLACK_HOLE] = (None, "")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    bound: list[tuple[int, dict[str, _Responder]]] = []

    async def serve() -> None:
        try:
            bound.append(await _bind(plan))
        finally:
            ready.set()
        try:
            await stop.wait()
        finally:
            for responder in bound[0][1].values():
                if responder.transport is not None:
                    responder.transport.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10) and bound, "the recorded devices did not start"
    port, responders = bound[0]
    yield Office(port, responders, recordings)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


# --- what the recordings say, independently of agent/discovery.py and agent/profile_selection.py ------


def _text(rec: snmprec.Recording, oid: tuple[int, ...]) -> str:
    value = rec.get(oid)
    if value is None:
        return ""
    if isinstance(value.value, tuple):
        return ".".join(map(str, value.value))
    return value.value.decode("utf-8", "replace") if isinstance(value.value, bytes) else str(value.value)


def _has_subtree(rec: snmprec.Recording, text: str) -> bool:
    return bool(rec.column(snmprec.parse_oid(text)))


def expected_profiles(rec: snmprec.Recording, profiles: dict[str, Profile]) -> list[str]:
    """docs/profiles.md "Automatic selection" applied to the recording itself."""
    sys_object_id, sys_descr = _text(rec, SYS_OBJECT_ID), _text(rec, SYS_DESCR)
    chosen = set()
    for name, profile in profiles.items():
        match = profile.match
        if match is None:
            continue
        by_oid = match.sys_object_id is not None and any(
            (sys_object_id + ".").startswith(prefix.strip(".") + ".") for prefix in match.sys_object_id)
        by_descr = match.sys_descr is not None and re.search(match.sys_descr, sys_descr) is not None
        identity = by_oid or by_descr or (match.sys_object_id is None and match.sys_descr is None)
        if identity and all(_has_subtree(rec, prefix) for prefix in match.answers):
            chosen.add(name)
    extended: set[str] = set()
    pending = [base for name in chosen for base in profiles[name].extends]
    while pending:
        base = pending.pop()
        if base not in extended:
            extended.add(base)
            pending += profiles[base].extends
    return sorted(chosen - extended)


def _expected(office: Office, hosts: list[str]) -> dict[str, dict[str, Any]]:
    profiles = load_profiles()
    out: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for host in hosts:
        rec = office.recordings[host]
        sys_name = _text(rec, SYS_NAME)
        assert re.fullmatch(DEVICE_NAME_PATTERN, sys_name), "these recordings have names that fit as they are"
        name = sys_name if sys_name not in taken else f"{sys_name}-2"
        taken.add(name)
        vendor = next(d.vendor for d in DEVICES if d.host == host)
        out[host] = {"name": name, "vendor": vendor, "profiles": expected_profiles(rec, profiles)}
    return out


def _table(stdout: str) -> dict[str, list[str]]:
    """ADDRESS -> the cells of its row (columns split on two or more spaces)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if line.strip()]
    assert rows and rows[0] == ["ADDRESS", "NAME", "VENDOR", "MODEL", "PROFILES", "SNMP"], stdout
    return {row[0]: row for row in rows[1:]}


def _seconds(stderr: str) -> float:
    found = re.search(r"asked \d+ address\(es\) in ([\d.]+) s", stderr)
    assert found, stderr
    return float(found.group(1))


AGENT_YAML = """\
agent_id: xa-dai-dinh
site: {{province: "Vĩnh Phúc", commune: "Đại Đình"}}
mqtt: {{url: "mqtt://127.0.0.1:1883"}}
buffer: {{path: "{buffer}"}}
"""


def test_discover_finds_the_recorded_devices_and_writes_a_block_the_agent_accepts(office: Office,
                                                                                   tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "snmp-community").write_text("public\n")
    (secrets / "snmp-community").chmod(0o600)
    output = tmp_path / "devices.yaml"
    before = office.responders[BLACK_HOLE].datagrams
    result = run_hatang(["discover", "127.0.0.1-127.0.0.20", "--port", str(office.port),
                         "--community-file", str(secrets / "snmp-community"), "--community", "office",
                         "--timeout", str(TIMEOUT), "--concurrency", str(CONCURRENCY),
                         "--output", str(output)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert "public" not in result.stdout and "office" not in result.stdout  # no secret printed
    # default: the first community only on an address that does not answer, so the device that answers
    # only the second community is not found, and the black hole got one request
    answering = [d.host for d in DEVICES if d.community == "public"]
    expected = _expected(office, answering)
    table = _table(result.stdout)
    assert sorted(table) == sorted(answering)
    for host, want in expected.items():
        _, name, vendor, model, profiles, version = table[host]
        assert (name, vendor, version) == (want["name"], want["vendor"], "v2c"), table[host]
        assert profiles.split(",") == want["profiles"], host
        descr = _text(office.recordings[host], SYS_DESCR)
        first_line = next(line for line in descr.splitlines() if line.strip())
        assert " ".join(first_line.split()).startswith(model.removesuffix("..."))
    assert office.responders[BLACK_HOLE].datagrams - before == 1
    assert "asked 20 address(es)" in result.stderr and f"{len(answering)} answered" in result.stderr
    assert f"{20 - len(answering)} timed out" in result.stderr and "--thorough" in result.stderr

    assert output.stat().st_mode & 0o077 == 0  # it may hold an inline community
    block = output.read_text(encoding="utf-8")
    devices = {d["address"]: d for d in parse_yaml(block, output)["devices"]}
    assert sorted(devices) == sorted(answering)
    for host, want in expected.items():
        assert devices[host] == {"name": want["name"], "address": host, "port": office.port,
                                 "snmp": {"version": "2c",
                                          "community_file": "${CREDENTIALS_DIRECTORY}/snmp-community"},
                                 "profiles": want["profiles"]}
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(AGENT_YAML.format(buffer=tmp_path / "buffer") + block, encoding="utf-8")
    checked = run_hatang(["check", "-c", str(agent_yaml), "--credentials", str(secrets)])
    assert checked.returncode == 0, checked.stderr
    assert f"with {len(answering)} device(s)" in checked.stdout


def test_thorough_asks_every_community_and_finds_the_device_on_the_second(office: Office,
                                                                          tmp_path: Path) -> None:
    before = office.responders[BLACK_HOLE].datagrams
    output = tmp_path / "devices.yaml"
    result = run_hatang(["discover", "127.0.0.12-20", "--port", str(office.port), "--community", "public",
                         "--community", "office", "--thorough", "--timeout", str(TIMEOUT),
                         "--concurrency", str(CONCURRENCY), "--output", str(output)], timeout=120)
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert sorted(table) == ["127.0.0.12", "127.0.0.17", "127.0.0.19"]
    assert table["127.0.0.19"][1:3] == [_expected(office, ["127.0.0.19"])["127.0.0.19"]["name"], "H3C"]
    assert office.responders[BLACK_HOLE].datagrams - before == 2  # each community once, no retries
    devices = {d["address"]: d for d in parse_yaml(output.read_text(), output)["devices"]}
    assert devices["127.0.0.19"]["snmp"] == {"version": "2c", "community": "office"}
    assert devices["127.0.0.12"]["snmp"] == {"version": "2c", "community": "public"}


def test_a_silent_address_costs_one_timeout(office: Office) -> None:
    """20 silent addresses, three communities, concurrency 8, timeout 0.5 s: about three rounds of one
    timeout (1.5 s); with one retry per community it would be 3 rounds x 3 communities x 2 tries x 0.5 s =
    9 s. --thorough asks each community: about 4.5 s."""
    args = ["discover", "127.0.1.1-20", "--port", str(office.port), "--community", "public", "--community",
            "office", "--community", "third", "--timeout", str(TIMEOUT), "--concurrency", str(CONCURRENCY)]
    started = time.monotonic()
    fast = run_hatang(args)
    wall = time.monotonic() - started
    assert fast.returncode == 0, fast.stderr
    assert "no device answered" in fast.stdout and "20 timed out" in fast.stderr
    rounds = -(-20 // CONCURRENCY)
    swept = _seconds(fast.stderr)
    assert rounds * TIMEOUT * 0.9 <= swept < rounds * TIMEOUT * 2  # one timeout per address, not 2 nor 6
    thorough = run_hatang([*args, "--thorough"])
    assert thorough.returncode == 0, thorough.stderr
    swept_thorough = _seconds(thorough.stderr)
    assert swept_thorough >= rounds * TIMEOUT * 3 * 0.9
    print(f"20 silent addresses, concurrency {CONCURRENCY}, timeout {TIMEOUT} s, 3 communities: "
          f"{swept:.2f} s swept ({wall:.2f} s with the process), --thorough {swept_thorough:.2f} s")


def test_too_many_addresses_are_refused_before_any_packet(office: Office) -> None:
    before = office.responders[BLACK_HOLE].datagrams
    result = run_hatang(["discover", "127.0.0.0/8", "--port", str(office.port)])
    assert result.returncode == 2
    assert "16777214 addresses, more than the limit of 4096" in result.stderr
    assert result.stdout == ""
    smaller = run_hatang(["discover", "127.0.0.1-127.0.0.20", "--max-addresses", "10", "--port",
                          str(office.port)])
    assert smaller.returncode == 2 and "20 addresses, more than the limit of 10" in smaller.stderr
    assert office.responders[BLACK_HOLE].datagrams == before


def test_an_snmpv3_device_is_found_with_its_user_and_the_block_refers_to_the_password_files(
        tmp_path: Path) -> None:
    """A real net-snmp agent whose community is not the one given and whose v3 user is: --thorough asks
    the user after the community timed out; the passwords come from files and stay files."""
    user = 'createUser hatang SHA "auth-pass-1" AES "priv-pass-1"\nrouser hatang priv\n'
    agent = start_snmpd(tmp_path / "snmpd", community="not-guessed", extra_config=user)
    try:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "snmp-v3-auth").write_text("auth-pass-1\n")
        (secrets / "snmp-v3-priv").write_text("priv-pass-1\n")
        for path in secrets.iterdir():
            path.chmod(0o600)
        output = tmp_path / "devices.yaml"
        result = run_hatang(["discover", agent.host, "--port", str(agent.port), "--community", "public",
                             "--v3-user", "hatang", "--auth-protocol", "SHA", "--auth-password-file",
                             str(secrets / "snmp-v3-auth"), "--priv-protocol", "AES", "--priv-password-file",
                             str(secrets / "snmp-v3-priv"), "--thorough", "--timeout", "1",
                             "--output", str(output)], timeout=60)
    finally:
        agent.stop()
    assert result.returncode == 0, result.stderr
    assert "pass-1" not in result.stdout + result.stderr
    [row] = _table(result.stdout).values()
    assert row[0] == agent.host and row[2] == "Net-SNMP" and row[-1] == "v3"
    assert "system" in row[4].split(",") and "interfaces" in row[4].split(",")
    block = output.read_text()
    assert "pass-1" not in block
    [device] = parse_yaml(block, output)["devices"]
    assert device["snmp"] == {"version": "3", "username": "hatang", "auth_protocol": "SHA",
                              "auth_password_file": "${CREDENTIALS_DIRECTORY}/snmp-v3-auth",
                              "priv_protocol": "AES",
                              "priv_password_file": "${CREDENTIALS_DIRECTORY}/snmp-v3-priv"}
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(AGENT_YAML.format(buffer=tmp_path / "buffer") + block, encoding="utf-8")
    checked = run_hatang(["check", "-c", str(agent_yaml), "--credentials", str(secrets)])
    assert checked.returncode == 0, checked.stderr

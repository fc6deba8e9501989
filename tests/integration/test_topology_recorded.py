"""Topology from recordings of two real routers that see each other over LLDP (PyPI ``snmpsim-data``).

``juniper-mx960-16-1r6-7-a`` (LLDP system name re0-SNNU-CA-CORE-2) and ``juniper-mx960-16-1r6-7-b``
(re0-SNNU-YT-CORE-2) were recorded in one network: each one's lldpRemTable has a row naming the other's
lldpLocChassisId. Both are replayed over UDP on 127.0.0.1 and polled by the real agent poller with the
``system`` and ``neighbors`` profiles; the polls go through the collector's real ingest path
(:class:`collector.store.Store`) and ``/metrics`` rendering, where collector/topology.py joins them.
The expected link is computed here from the recordings (LLDP-MIB definitions), not from the profile.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.poller import DevicePoller, PollOutcome
from agent.profiles import load_profiles
from agent.snmp.credentials import Credentials
from agent.snmp.engine import SnmpEngine
from agent.snmp.errors import SnmpError, SnmpTimeout
from collector import exposition
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from hatang.sim.ber import OID
from tests.support import snmprec
from wire.codec import Limits, encode_batch, encode_status
from wire.messages import AgentStatus, PollBatch
from wire.topics import data_topic, status_topic

pytestmark = pytest.mark.integration

AGENT = "xa-test"
SITE = (("province", "Vĩnh Phúc"),)
RECORDINGS = {"core-ca": "network/router/juniper-mx960-16-1r6-7-a",
              "core-yt": "network/router/juniper-mx960-16-1r6-7-b"}
LLDP_LOC_CHASSIS_ID = snmprec.parse_oid("1.0.8802.1.1.2.1.3.2.0")
LLDP_LOC_PORT_ID = snmprec.parse_oid("1.0.8802.1.1.2.1.3.7.1.3")
LLDP_REM = snmprec.parse_oid("1.0.8802.1.1.2.1.4.1.1")
LLDP_REM_CHASSIS_ID = (*LLDP_REM, 5)


def _octets(rec: snmprec.Recording, oid: OID) -> bytes:
    value = rec.get(oid)
    assert value is not None and isinstance(value.value, bytes), oid
    return value.value


def rows_naming(rec: snmprec.Recording, other: snmprec.Recording) -> list[str]:
    """lldpRemTable indices of ``rec`` whose lldpRemChassisId is ``other``'s lldpLocChassisId."""
    chassis = _octets(other, LLDP_LOC_CHASSIS_ID)
    return [index for index, value in rec.column(LLDP_REM_CHASSIS_ID).items() if value.value == chassis]


def local_port(rec: snmprec.Recording, rem_index: str) -> str:
    """lldpLocPortId of the row's lldpRemLocalPortNum (the middle part of timeMark.localPortNum.remIndex)."""
    port_num = int(rem_index.split(".")[1])
    return _octets(rec, (*LLDP_LOC_PORT_ID, port_num)).decode("ascii")


def without_rows(rec: snmprec.Recording, indices: list[str]) -> snmprec.Recording:
    """The recording minus these lldpRemTable rows (every column)."""
    depth = len(LLDP_REM) + 1
    drop = {tuple(int(p) for p in i.split(".")) for i in indices}
    kept = {oid: v for oid, v in rec.values.items() if not (oid[:len(LLDP_REM)] == LLDP_REM
                                                           and oid[depth:] in drop)}
    return snmprec.Recording(rec.name, kept)


@pytest.fixture
def recordings(data_dir: Path) -> dict[str, snmprec.Recording]:
    return {name: snmprec.load_recording(snmprec.find_recording(data_dir, path))
            for name, path in RECORDINGS.items()}


@asynccontextmanager
async def polled(recs: dict[str, snmprec.Recording]) -> AsyncIterator[dict[str, PollOutcome]]:
    handle = await snmprec.serve([snmprec.device(rec) for rec in recs.values()])
    engine = SnmpEngine()
    try:
        profiles = load_profiles()
        outcomes = {}
        for (name, _), endpoint in zip(recs.items(), handle.endpoints, strict=True):
            target = await engine.target("127.0.0.1", endpoint.port, Credentials("2c", "public"),
                                         timeout=2.0, retries=1)
            poller = DevicePoller(name, target, [profiles["system"], profiles["neighbors"]], deadline=60.0,
                                  timeout_errors=(SnmpTimeout,), snmp_errors=(SnmpError,))
            outcomes[name] = await poller.poll()
        yield outcomes
    finally:
        engine.close()
        handle.close()


def ingest(outcomes: dict[str, PollOutcome]) -> Store:
    """The polls through the collector's ingest path, as an agent publishes them."""
    store = Store(CollectorMetrics(), Limits())
    now = time.time()
    status = AgentStatus(AGENT, "b" * 32, True, now, "test", SITE, tuple(outcomes))
    assert store.ingest(status_topic(AGENT), encode_status(status)) == "accepted"
    for seq, (name, outcome) in enumerate(outcomes.items(), start=1):
        assert outcome.up and not outcome.errors, (name, outcome.errors)
        batch = PollBatch(agent=AGENT, boot_id="b" * 32, seq=seq, ts=outcome.ts, device=name, interval=60.0,
                          up=True, duration=outcome.duration, site=SITE, errors=(), families=outcome.families)
        assert store.ingest(data_topic(AGENT, name), encode_batch(batch)) == "accepted"
    return store


def series(store: Store, metric: str) -> list[dict[str, str]]:
    found = []
    for family in text_string_to_metric_families(exposition.render(store, time.time())):
        found += [dict(s.labels) for s in family.samples if s.name == metric and s.value == 1]
    return found


async def test_two_routers_that_see_each_other_make_one_confirmed_link(
        recordings: dict[str, snmprec.Recording]) -> None:
    ca, yt = recordings["core-ca"], recordings["core-yt"]
    [ca_row], [yt_row] = rows_naming(ca, yt), rows_naming(yt, ca)
    async with polled(recordings) as outcomes:
        store = ingest(outcomes)
    # each end's neighbour row, with the local port looked up by the middle part of the index
    neighbors = {(s["device"], s["lldp_index"]): s for s in series(store, "hatang_lldp_neighbor_info")}
    assert neighbors[("core-ca", ca_row)]["if_name"] == local_port(ca, ca_row)
    assert neighbors[("core-yt", yt_row)]["if_name"] == local_port(yt, yt_row)
    assert len(neighbors) == len(ca.column(LLDP_REM_CHASSIS_ID)) + len(yt.column(LLDP_REM_CHASSIS_ID))

    assert series(store, "hatang_link_info") == [{
        "agent": AGENT, "device": "core-ca", "if_name": local_port(ca, ca_row),
        "remote_agent": AGENT, "remote_device": "core-yt", "remote_if_name": local_port(yt, yt_row),
        "confirmed": "true", "province": "Vĩnh Phúc", "remote_province": "Vĩnh Phúc",
    }]
    # the other neighbours (routers not polled here) make no link; the root is the first name of two
    assert series(store, "hatang_device_upstream_info") == [
        {"agent": AGENT, "device": "core-yt", "upstream_device": "core-ca", "province": "Vĩnh Phúc"}]


async def test_a_link_only_one_end_reports_is_shown_unconfirmed(
        recordings: dict[str, snmprec.Recording]) -> None:
    ca, yt = recordings["core-ca"], recordings["core-yt"]
    [ca_row] = rows_naming(ca, yt)
    # core-yt no longer lists core-ca (LLDP receive off on that port): only core-ca reports the link
    recordings["core-yt"] = without_rows(yt, rows_naming(yt, ca))
    remote_port = _octets(ca, (*LLDP_REM, 7, *snmprec.parse_oid(ca_row))).decode("ascii")  # lldpRemPortId
    async with polled(recordings) as outcomes:
        store = ingest(outcomes)
    assert series(store, "hatang_link_info") == [{
        "agent": AGENT, "device": "core-ca", "if_name": local_port(ca, ca_row),
        "remote_agent": AGENT, "remote_device": "core-yt", "remote_if_name": remote_port,
        "confirmed": "false", "province": "Vĩnh Phúc", "remote_province": "Vĩnh Phúc",
    }]


async def test_cdp_neighbours_of_a_recorded_cisco_switch_name_the_local_interface(data_dir: Path) -> None:
    """cisco-c3560 lists CDP neighbours (cdpCacheTable, indexed ifIndex.deviceIndex): the local port is
    IF-MIB ifName of the index's first part; the identity is cdpGlobalDeviceId."""
    rec = snmprec.load_recording(snmprec.find_recording(data_dir, "network/switch/cisco-c3560"))
    cache = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1, 1)
    expected = {}
    for index in rec.column((*cache, 6)):  # cdpCacheDeviceId
        if_name = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, int(index.split(".")[0]))  # ifName of cdpCacheIfIndex
        row = snmprec.parse_oid(index)
        expected[index] = {"if_name": _octets(rec, if_name).decode("ascii"),
                           "remote_device_id": _octets(rec, (*cache, 6, *row)).decode("ascii"),
                           "remote_port": _octets(rec, (*cache, 7, *row)).decode("ascii")}
    assert len(expected) >= 5
    async with polled({"access": rec}) as outcomes:
        store = ingest(outcomes)
    found = {s["cdp_index"]: {k: s[k] for k in ("if_name", "remote_device_id", "remote_port")}
             for s in series(store, "hatang_cdp_neighbor_info")}
    assert found == expected
    [local] = series(store, "hatang_cdp_local_info")
    assert local["device_id"] == _octets(rec, (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 3, 4, 0)).decode("ascii")
    assert series(store, "hatang_link_info") == []  # its neighbours are not polled here

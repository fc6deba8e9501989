"""Tests of DevicePoller's per-device state: the label cache, partial 32-bit fallbacks, boot time and reboots.

A fake device (scriptable tables and sysUpTime) and fake clocks drive the poller; no sleeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from agent.poller import DevicePoller
from agent.profiles import Profile, load_profiles, parse_oid
from agent.snmp.values import OID, SnmpValue
from agent.uptime import WRAP_SECONDS
from tests.support.sequential_walks import SequentialWalks
from wire.messages import Family

SYS_UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")
SYS_NAME = parse_oid("1.3.6.1.2.1.1.5.0")
IF = {name: parse_oid(f"1.3.6.1.2.1.2.2.1.{n}") for name, n in
      (("descr", 2), ("type", 3), ("speed", 5), ("oper", 8), ("last_change", 9), ("in_octets", 10))}
IFX = {name: parse_oid(f"1.3.6.1.2.1.31.1.1.1.{n}") for name, n in
       (("name", 1), ("hc_in", 6), ("hc_out", 10), ("alias", 18))}
LABEL_COLUMNS = {IFX["name"], IFX["alias"], IF["descr"], IF["type"]}
HR_STORAGE = {name: parse_oid(f"1.3.6.1.2.1.25.2.3.1.{n}") for name, n in
              (("type", 2), ("descr", 3), ("units", 4), ("size", 5), ("used", 6))}
START_WALL, START_MONO = 1_790_000_000.0, 1000.0


class Clocks:
    def __init__(self) -> None:
        self.wall, self.mono = START_WALL, START_MONO

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class FakeDevice(SequentialWalks):
    """Tables by column (row index -> value), sysUpTime in seconds; counts requests per OID."""

    def __init__(self, clocks: Clocks, ports: Sequence[int] = (1, 2), uptime: float = 5000.0) -> None:
        self.clocks = clocks
        self.uptime = uptime
        self.columns: dict[OID, dict[int, SnmpValue]] = {}
        self.scalars: dict[OID, SnmpValue] = {SYS_NAME: SnmpValue("octets", "Trạm Tam Đảo".encode())}
        self.walks: Counter[OID] = Counter()
        self.gets: list[list[OID]] = []
        for port in ports:
            self.add_port(port)

    def add_port(self, port: int, alias: str = "", hc: bool = True) -> None:
        def put(column: OID, value: SnmpValue) -> None:
            self.columns.setdefault(column, {})[port] = value
        put(IFX["name"], SnmpValue("octets", f"Gi0/{port}".encode()))
        put(IFX["alias"], SnmpValue("octets", alias.encode()))
        put(IF["descr"], SnmpValue("octets", f"GigabitEthernet0/{port}".encode()))
        put(IF["type"], SnmpValue("integer", 6))
        put(IF["oper"], SnmpValue("integer", 1))
        put(IF["last_change"], SnmpValue("timeticks", 100 * port))
        put(IF["in_octets"], SnmpValue("counter32", 1000 + port))
        if hc:
            put(IFX["hc_in"], SnmpValue("counter64", 2**40 + port))

    def advance(self, seconds: float) -> None:
        self.clocks.advance(seconds)
        self.uptime = (self.uptime + seconds) % WRAP_SECONDS

    async def get(self, oids: Sequence[OID]) -> list[tuple[OID, SnmpValue]]:
        self.gets.append(list(oids))
        out = []
        for oid in oids:
            if oid == SYS_UPTIME:
                out.append((oid, SnmpValue("timeticks", int(self.uptime * 100))))
                continue
            value = self.scalars.get(oid)
            if value is None:
                column, index = oid[:-1], oid[-1]
                value = self.columns.get(column, {}).get(index)
            out.append((oid, value or SnmpValue("no_such_instance", None)))
        return out

    async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
        self.walks[root] += 1
        return [((*root, index), value) for index, value in sorted(self.columns.get(root, {}).items())]


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


def make(device: FakeDevice, profiles: dict[str, Profile], names: Sequence[str] = ("system", "interfaces"),
         **kwargs: float) -> DevicePoller:
    return DevicePoller("sw", device, [profiles[n] for n in names], deadline=30.0,
                        clock=lambda: device.clocks.wall, monotonic=lambda: device.clocks.mono,
                        **kwargs)  # type: ignore[arg-type]


def families(outcome_families: tuple[Family, ...]) -> dict[str, Family]:
    return {f.name: f for f in outcome_families}


def labels_of(family: Family, key: str = "if_index") -> dict[str, dict[str, str]]:
    return {dict(s.labels)[key]: dict(s.labels) for s in family.samples}


def value(fams: tuple[Family, ...], name: str) -> float:
    [sample] = families(fams)[name].samples
    return sample.value


# --- label cache --------------------------------------------------------------------------------------


async def test_labels_are_walked_every_n_polls_and_metrics_every_poll(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    poller = make(device, profiles, label_refresh_polls=3, label_refresh_seconds=1e9)
    label_walks, metric_walks = [], []
    for _ in range(7):
        before = device.walks.copy()
        outcome = await poller.poll()
        device.advance(60)
        walked = device.walks - before
        label_walks.append(sorted(c for c in walked if c in LABEL_COLUMNS))
        metric_walks.append(walked[IF["oper"]])
        assert outcome.errors == ()
        oper = families(outcome.families)["hatang_interface_oper_status"]
        assert labels_of(oper)["2"]["if_name"] == "Gi0/2"
    every_label = sorted(LABEL_COLUMNS)
    assert label_walks == [every_label, [], [], every_label, [], [], every_label]
    assert metric_walks == [1] * 7


async def test_labels_refresh_after_their_max_age(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    poller = make(device, profiles, label_refresh_polls=1000, label_refresh_seconds=900.0)
    counts = []
    for _ in range(5):
        await poller.poll()
        counts.append(device.walks[IFX["alias"]])
        device.advance(400)
    assert counts == [1, 1, 1, 2, 2]  # read at 0 s, reused at 400 and 800, re-read at 1200


async def test_changed_alias_shows_after_the_refresh(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    poller = make(device, profiles, label_refresh_polls=2)
    await poller.poll()
    device.columns[IFX["alias"]][1] = SnmpValue("octets", "Đường truyền số liệu chuyên dùng".encode())
    second = await poller.poll()
    third = await poller.poll()
    assert labels_of(families(second.families)["hatang_interface_in_bytes_total"])["1"]["if_alias"] == ""
    assert labels_of(families(third.families)["hatang_interface_in_bytes_total"])["1"]["if_alias"] == (
        "Đường truyền số liệu chuyên dùng")


async def test_a_new_interface_refreshes_labels_in_the_same_poll(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    poller = make(device, profiles, label_refresh_polls=100)
    await poller.poll()
    device.add_port(7, alias="Camera an ninh")
    outcome = await poller.poll()
    assert device.walks[IFX["alias"]] == 2
    labels = labels_of(families(outcome.families)["hatang_interface_oper_status"])
    assert labels["7"]["if_alias"] == "Camera an ninh"
    assert labels["7"]["if_name"] == "Gi0/7"
    assert labels["7"]["if_type"] == "6"
    await poller.poll()
    assert device.walks[IFX["alias"]] == 2


async def test_a_reboot_refreshes_labels_and_counts_once(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), uptime=86_400.0)
    poller = make(device, profiles, label_refresh_polls=100)
    first = await poller.poll()
    boot = value(first.families, "hatang_device_boot_time_seconds")
    assert boot == pytest.approx(START_WALL - 86_400.0)
    assert value(first.families, "hatang_device_reboots_total") == 0

    device.advance(60)
    device.uptime = 25.0  # restarted 25 s ago; ifIndex 2 renumbered to 1 with other names
    device.columns[IFX["name"]] = {1: SnmpValue("octets", b"Gi0/2"), 2: SnmpValue("octets", b"Gi0/1")}
    second = await poller.poll()
    assert device.walks[IFX["name"]] == 2  # same index set, refreshed because of the reboot
    assert value(second.families, "hatang_device_reboots_total") == 1
    boot_after = value(second.families, "hatang_device_boot_time_seconds")
    assert boot_after == pytest.approx(device.clocks.wall - 25.0)
    assert labels_of(families(second.families)["hatang_interface_oper_status"])["1"]["if_name"] == "Gi0/2"

    device.advance(60)
    third = await poller.poll()
    assert value(third.families, "hatang_device_reboots_total") == 1
    assert device.walks[IFX["name"]] == 2


async def test_an_absent_table_costs_no_label_walks_and_says_the_profile_is_empty(
        profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())  # a switch: no HOST-RESOURCES or UCD objects
    poller = make(device, profiles, names=("host",))
    for _ in range(3):
        outcome = await poller.poll()
        assert [(e.profile, e.reason) for e in outcome.errors] == [("host", "empty_profile")]
        assert "probably does not implement the MIB(s) of profile host" in outcome.errors[0].error
        assert outcome.families == ()
    assert dict(outcome.problems)["empty_profile"] == 3
    assert device.walks[HR_STORAGE["descr"]] == 0
    assert device.walks[HR_STORAGE["units"]] == 0
    assert device.walks[HR_STORAGE["used"]] == 3


async def test_storage_multiplier_is_cached_with_the_labels(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks())
    device.columns.update({
        HR_STORAGE["type"]: {31: SnmpValue("oid", "1.3.6.1.2.1.25.2.1.4")},
        HR_STORAGE["descr"]: {31: SnmpValue("octets", b"/")},
        HR_STORAGE["units"]: {31: SnmpValue("integer", 4096)},
        HR_STORAGE["size"]: {31: SnmpValue("integer", 2164327)},
        HR_STORAGE["used"]: {31: SnmpValue("integer", 1667935)},
    })
    poller = make(device, profiles, names=("host",), label_refresh_polls=5)
    for used in (1667935, 1667999, 1668100):
        device.columns[HR_STORAGE["used"]][31] = SnmpValue("integer", used)
        outcome = await poller.poll()
        [sample] = families(outcome.families)["hatang_host_storage_used_bytes"].samples
        assert sample.value == used * 4096
        assert dict(sample.labels) == {"storage_index": "31", "mount": "/", "storage_type": "fixedDisk"}
    assert (device.walks[HR_STORAGE["units"]], device.walks[HR_STORAGE["used"]]) == (1, 3)


# --- fallbacks ------------------------------------------------------------------------------------------


async def test_rows_without_hc_counters_get_their_32_bit_cells_by_get(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), ports=(1, 2))
    device.add_port(3, hc=False)
    poller = make(device, profiles, names=("interfaces",))
    outcome = await poller.poll()
    in_bytes = {dict(s.labels)["if_index"]: s.value for s in families(outcome.families)[
        "hatang_interface_in_bytes_total"].samples}
    assert in_bytes == {"1": 2**40 + 1, "2": 2**40 + 2, "3": 1003}
    assert device.walks[IF["in_octets"]] == 0  # not walked: only the missing cell was read
    assert [(*IF["in_octets"], 3)] in device.gets


async def test_an_empty_hc_column_walks_the_32_bit_column(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), ports=())
    for port in (1, 2, 3):
        device.add_port(port, hc=False)
    outcome = await make(device, profiles, names=("interfaces",)).poll()
    assert device.walks[IF["in_octets"]] == 1
    assert device.gets == []
    assert sorted(s.value for s in families(outcome.families)["hatang_interface_in_bytes_total"].samples) == [
        1001, 1002, 1003]


# --- boot time, wrap and last change ----------------------------------------------------------------------


async def test_boot_time_is_stable_and_the_wrap_is_not_a_reboot(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), uptime=WRAP_SECONDS - 150.0)
    poller = make(device, profiles, label_refresh_polls=100)
    boots, reboots = [], []
    for _ in range(6):  # wraps between the 3rd and 4th poll
        outcome = await poller.poll()
        boots.append(value(outcome.families, "hatang_device_boot_time_seconds"))
        reboots.append(value(outcome.families, "hatang_device_reboots_total"))
        device.advance(60)
    assert device.uptime < 1000  # it did wrap
    assert boots == [boots[0]] * 6
    assert reboots == [0] * 6
    assert device.walks[IFX["name"]] == 1  # no label refresh either
    state = poller.uptime_state
    assert state is not None and state.wraps == 1


async def test_last_change_is_published_as_unix_time(profiles: dict[str, Profile]) -> None:
    device = FakeDevice(Clocks(), uptime=3600.0)
    outcome = await make(device, profiles).poll()
    boot = value(outcome.families, "hatang_device_boot_time_seconds")
    stamps = {dict(s.labels)["if_index"]: s.value for s in families(outcome.families)[
        "hatang_interface_last_change_timestamp_seconds"].samples}
    assert stamps == {"1": pytest.approx(boot + 1.0), "2": pytest.approx(boot + 2.0)}


async def test_without_the_system_profile_there_is_no_last_change(profiles: dict[str, Profile]) -> None:
    outcome = await make(FakeDevice(Clocks()), profiles, names=("interfaces",)).poll()
    assert "hatang_interface_last_change_timestamp_seconds" not in families(outcome.families)
    assert "hatang_interface_in_bytes_total" in families(outcome.families)


async def test_a_failing_label_walk_leaves_no_half_cache(profiles: dict[str, Profile]) -> None:
    class Flaky(FakeDevice):
        fail = True

        async def walk(self, root: OID, *, max_rows: int = 100_000) -> list[tuple[OID, SnmpValue]]:
            if root == IFX["alias"] and self.fail:
                raise RuntimeError("device reported genErr")
            return await super().walk(root, max_rows=max_rows)

    device = Flaky(Clocks())
    poller = make(device, profiles)
    first = await poller.poll()
    assert [e.profile for e in first.errors] == ["interfaces"]
    assert "hatang_device_boot_time_seconds" in families(first.families)  # system still publishes
    device.fail = False
    second = await poller.poll()
    assert second.errors == ()
    assert labels_of(families(second.families)["hatang_interface_oper_status"])["1"]["if_name"] == "Gi0/1"


def test_refresh_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="label_refresh_polls"):
        DevicePoller("sw", FakeDevice(Clocks()), [], deadline=1.0, label_refresh_polls=0)

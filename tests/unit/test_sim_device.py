"""Tests of simulated devices driven by a fake clock."""

from __future__ import annotations

import pytest

from hatang.sim import ber
from hatang.sim.device import IF_ENTRY, IFX_ENTRY, Flap, SimulatedDevice, make_router, make_switch

SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def col(table: tuple[int, ...], column: int, index: int) -> tuple[int, ...]:
    return (*table, column, index)


def num(device: SimulatedDevice, o: tuple[int, ...]) -> int:
    v = device.get(o)
    assert v is not None, o
    assert isinstance(v.value, int)
    return v.value


def text(device: SimulatedDevice, o: tuple[int, ...]) -> str:
    v = device.get(o)
    assert v is not None and isinstance(v.value, bytes)
    return v.value.decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_basic_table_and_lookup() -> None:
    d = SimulatedDevice("t", {(1, 3, 2): ber.integer(2), (1, 3, 1, 5): lambda t: ber.gauge32(int(t)),
                              (1, 3, 10): ber.octets(b"x")}, clock=lambda: 100.0, start=90.0)
    assert d.oids == [(1, 3, 1, 5), (1, 3, 2), (1, 3, 10)]
    assert d.get((1, 3, 1, 5)) == ber.gauge32(10)
    assert d.get((1, 3, 1)) is None
    assert d.get_next((1, 3)) == ((1, 3, 1, 5), ber.gauge32(10))
    assert d.get_next((1, 3, 1, 5)) == ((1, 3, 2), ber.integer(2))
    assert d.get_next((1, 3, 2, 0)) == ((1, 3, 10), ber.octets(b"x"))
    assert d.get_next((1, 3, 10)) is None
    assert d.get_next((2,)) is None
    assert d.has_prefix((1, 3, 1)) and not d.has_prefix((1, 3, 3))
    assert [o for o, _ in d.walk((1, 3, 1))] == [(1, 3, 1, 5)]


def test_switch_layout(clock: FakeClock) -> None:
    sw = make_switch("sw-dai-dinh", ports=24, seed=1, clock=clock)
    assert num(sw, IF_NUMBER) == 24
    assert text(sw, (1, 3, 6, 1, 2, 1, 1, 5, 0)) == "sw-dai-dinh"
    assert text(sw, (1, 3, 6, 1, 2, 1, 1, 6, 0)) == "Phòng máy chủ, UBND xã Đại Đình"
    rows = dict(sw.walk(IF_ENTRY))
    assert {o[-2] for o in rows} == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 19, 20}
    assert len(rows) == 17 * 24
    xrows = dict(sw.walk(IFX_ENTRY))
    assert {o[-2] for o in xrows} == {*range(1, 14), 15, 18}
    assert len(xrows) == 15 * 24
    aliases = {text(sw, col(IFX_ENTRY, 18, i)) for i in range(1, 25)}
    expected = {"Bộ phận một cửa", "Phòng Văn hoá - Xã hội", "Uplink - Đường truyền số liệu chuyên dùng"}
    assert expected <= aliases
    assert num(sw, col(IF_ENTRY, 7, 23)) == 2  # admin down
    assert num(sw, col(IF_ENTRY, 8, 22)) == 2 and num(sw, col(IF_ENTRY, 7, 22)) == 1  # no cable
    assert num(sw, col(IFX_ENTRY, 15, 24)) == 1000
    hc = sw.get(col(IFX_ENTRY, 6, 1))
    assert hc is not None and hc.tag == ber.COUNTER64


def test_router_10g_wan_clamps_ifspeed(clock: FakeClock) -> None:
    r = make_router("r1", clock=clock)
    assert num(r, IF_NUMBER) == 4
    assert num(r, col(IF_ENTRY, 5, 1)) == 2**32 - 1
    assert num(r, col(IFX_ENTRY, 15, 1)) == 10_000
    assert num(r, col(IF_ENTRY, 3, 3)) == 24  # softwareLoopback


def test_deterministic_per_seed(clock: FakeClock) -> None:
    a = dict(make_switch("sw", seed=3, clock=clock).walk())
    b = dict(make_switch("sw", seed=3, clock=clock).walk())
    c = dict(make_switch("sw", seed=4, clock=clock).walk())
    assert a == b
    assert a != c


def test_uptime_and_counters_grow_with_time(clock: FakeClock) -> None:
    sw = make_switch("sw", clock=clock)
    up0 = num(sw, SYS_UPTIME)
    uplink0 = num(sw, col(IFX_ENTRY, 6, 24))
    access0 = num(sw, col(IFX_ENTRY, 6, 1))
    down0 = num(sw, col(IFX_ENTRY, 6, 23))
    clock.now += 10
    assert num(sw, SYS_UPTIME) - up0 == 1000
    uplink_rate = (num(sw, col(IFX_ENTRY, 6, 24)) - uplink0) * 8 / 10
    access_rate = (num(sw, col(IFX_ENTRY, 6, 1)) - access0) * 8 / 10
    assert 20e6 <= uplink_rate <= 200e6
    assert 1e3 <= access_rate <= 5e6
    assert num(sw, col(IFX_ENTRY, 6, 23)) == down0 == 0
    rates = {num(sw, col(IFX_ENTRY, 10, i)) for i in (1, 3, 4, 5)}
    assert len(rates) == 4  # per-port different


def test_32bit_counters_are_64bit_mod_2_32_and_wrap(clock: FakeClock) -> None:
    sw = make_switch("sw", clock=clock)
    pairs = [(10, 6), (11, 7), (16, 10), (17, 11)]
    xpairs = [(2, 8), (3, 9), (4, 12), (5, 13)]
    wrapped = False
    previous = num(sw, col(IF_ENTRY, 10, 24))
    for _ in range(120):
        clock.now += 7.3
        for c32, c64 in pairs:
            assert num(sw, col(IF_ENTRY, c32, 24)) == num(sw, col(IFX_ENTRY, c64, 24)) % 2**32
        for c32, c64 in xpairs:
            assert num(sw, col(IFX_ENTRY, c32, 24)) == num(sw, col(IFX_ENTRY, c64, 24)) % 2**32
        current = num(sw, col(IF_ENTRY, 10, 24))
        wrapped |= current < previous
        previous = current
    assert wrapped, "a 32-bit octet counter of the uplink should wrap within ~15 minutes"


def test_hc_counters_never_decrease_over_a_day(clock: FakeClock) -> None:
    sw = make_switch("sw", clock=clock, day=3600.0)
    last = [0] * 25
    for _ in range(200):
        clock.now += 37
        for i in range(1, 25):
            v = num(sw, col(IFX_ENTRY, 6, i))
            assert v >= last[i]
            last[i] = v


def test_flapping_interface(clock: FakeClock) -> None:
    sw = make_switch("sw", flap_port=2, flap_period=60, flap_down=20, clock=clock)
    oper, change, octets = col(IF_ENTRY, 8, 2), col(IF_ENTRY, 9, 2), col(IFX_ENTRY, 6, 2)
    boot_ticks = num(sw, SYS_UPTIME)
    assert num(sw, oper) == 1
    first_change = num(sw, change)
    clock.now += 39
    assert num(sw, oper) == 1 and num(sw, change) == first_change
    before_down = num(sw, octets)
    assert before_down > 0
    clock.now += 2  # t = 41: down since t = 40
    assert num(sw, oper) == 2
    assert num(sw, change) == boot_ticks + 4000
    frozen = num(sw, octets)
    clock.now += 18  # t = 59: still down, counters frozen
    assert num(sw, oper) == 2 and num(sw, octets) == frozen
    assert num(sw, col(IF_ENTRY, 10, 2)) == frozen % 2**32
    clock.now += 2  # t = 61: up again since t = 60
    assert num(sw, oper) == 1
    assert num(sw, change) == boot_ticks + 6000
    clock.now += 5
    assert num(sw, octets) > frozen
    # Other ports do not flap.
    assert num(sw, col(IF_ENTRY, 8, 1)) == 1


def test_flap_schedule() -> None:
    f = Flap(60, 20)
    assert [f.is_up(t) for t in (0, 39.9, 40, 59.9, 60, 100)] == [True, True, False, False, True, False]
    assert f.up_time(50) == 40 and f.up_time(70) == 50 and f.up_time(130) == 90
    assert f.last_change(10) is None and f.last_change(45) == 40 and f.last_change(75) == 60


def test_get_next_orders_across_columns_and_ends(clock: FakeClock) -> None:
    sw = make_switch("sw", ports=3, flap_port=None, clock=clock)
    assert sw.get_next(col(IF_ENTRY, 1, 3)) == (col(IF_ENTRY, 2, 1), ber.octets("GigabitEthernet0/1"))
    assert sw.get_next((*IF_ENTRY, 10)) == (col(IF_ENTRY, 10, 1), sw.get(col(IF_ENTRY, 10, 1)))
    after_iftable = sw.get_next(col(IF_ENTRY, 20, 3))
    assert after_iftable is not None and after_iftable[0] == col(IFX_ENTRY, 1, 1)
    walked = []
    o: tuple[int, ...] = ()
    while (nxt := sw.get_next(o)) is not None:
        walked.append(nxt[0])
        o = nxt[0]
    assert walked == sorted(walked) == list(sw.oids)
    assert len(set(walked)) == len(sw)
    assert walked[-1] == col(IFX_ENTRY, 18, 3)
    assert sw.get_next(walked[-1]) is None
    assert sw.get_next((1, 3, 6, 1, 2, 1, 31, 2)) is None


def test_big_table_walks_in_order(clock: FakeClock) -> None:
    sw = make_switch("big", ports=1000, clock=clock)
    assert len(sw) > 30_000
    o = (*IFX_ENTRY, 6)
    for _ in range(2000):
        nxt = sw.get_next(o)
        assert nxt is not None
        o = nxt[0]
    assert o == col(IFX_ENTRY, 7, 1000)


def test_invalid_options() -> None:
    with pytest.raises(ValueError):
        make_switch("x", ports=1)
    with pytest.raises(ValueError):
        make_switch("x", ports=4, flap_port=4)

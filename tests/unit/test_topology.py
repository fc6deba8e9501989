"""collector/topology.py: matching neighbour rows to known devices, confirming links, upstreams, parsing."""

from __future__ import annotations

from agent.index_parts import sub_index
from collector.topology import (
    DeviceFacts,
    End,
    FactsCache,
    Link,
    Neighbor,
    device_facts,
    join,
    render_facts,
    upstreams,
)

SITE = (("province", "Vĩnh Phúc"),)


def dev(device: str, *, agent: str = "xa-a", chassis: str = "", names: tuple[str, ...] = (),
        rows: tuple[Neighbor, ...] = ()) -> DeviceFacts:
    return DeviceFacts(agent, device, SITE, frozenset({chassis} - {""}), frozenset(names), rows)


def lldp(if_name: str, chassis: str = "", sys_name: str = "", port: str = "") -> Neighbor:
    return Neighbor(if_name, chassis, sys_name, port)


def test_sub_index_picks_arcs_of_the_row_index() -> None:
    assert sub_index("1169175.24.1", [2]) == "24"
    assert sub_index("10101.3", [1]) == "10101"
    assert sub_index("5.6.7", [3, 1]) == "7.5"
    assert sub_index("5", [2]) is None


def test_both_ends_reporting_each_other_make_one_confirmed_link() -> None:
    a = dev("sw-a", chassis="aa:aa", rows=(lldp("ge-0/0/1", "bb:bb", "sw-b", "Gi0/24"),))
    b = dev("sw-b", chassis="bb:bb", rows=(lldp("Gi0/24", "aa:aa", "sw-a", "ge-0/0/1"),))
    assert join([b, a]) == [Link(End("xa-a", "sw-a", "ge-0/0/1"), End("xa-a", "sw-b", "Gi0/24"), True)]


def test_one_end_reporting_is_an_unconfirmed_link_from_the_reporting_end() -> None:
    a = dev("sw-a", chassis="aa:aa")
    b = dev("sw-b", chassis="bb:bb", rows=(lldp("Gi0/24", "aa:aa", "", "ge-0/0/1"),))
    assert join([a, b]) == [Link(End("xa-a", "sw-b", "Gi0/24"), End("xa-a", "sw-a", "ge-0/0/1"), False)]


def test_unknown_neighbours_and_the_device_itself_make_no_link() -> None:
    a = dev("sw-a", chassis="aa:aa", rows=(lldp("1", "cc:cc", "phone"), lldp("2", "aa:aa", "sw-a")))
    assert join([a]) == []


def test_names_match_sysname_case_insensitively_then_the_short_host_name() -> None:
    core = dev("core", names=("Core-SW.tinh.vn",))
    access = dev("access", names=("access",),
                 rows=(lldp("uplink", "", "core-sw.TINH.vn", "g1"), lldp("p2", "", "CORE-SW", "g2")))
    links = join([core, access])
    assert [(lk.local.device, lk.local.if_name, lk.remote.device) for lk in links] == [
        ("access", "p2", "core"), ("access", "uplink", "core")]


def test_chassis_id_wins_over_a_name_and_an_ambiguous_name_names_nobody() -> None:
    one, two = dev("one", chassis="11", names=("sw",)), dev("two", chassis="22", names=("sw",))
    seer = dev("seer", rows=(lldp("p1", "22", "sw", "x"), lldp("p2", "", "sw", "y")))
    assert [(lk.local.if_name, lk.remote.device) for lk in join([one, two, seer])] == [("p1", "two")]


def test_a_name_prefers_the_reporting_agents_device() -> None:
    mine, theirs = dev("sw", agent="xa-a", names=("core",)), dev("sw", agent="xa-b", names=("core",))
    seer = dev("seer", agent="xa-a", rows=(lldp("p1", "", "core", "x"),))
    [link] = join([theirs, mine, seer])
    assert (link.remote.agent, link.remote.device) == ("xa-a", "sw")
    # across offices only when the name is unique
    far = dev("far", agent="xa-c", rows=(lldp("p1", "", "core", "x"),))
    assert join([theirs, mine, far]) == []


def test_cdp_on_one_end_and_lldp_on_the_other_are_still_one_confirmed_link() -> None:
    cisco = dev("cisco", names=("cisco.tinh.vn",), rows=(lldp("Gi0/1", "", "huawei", "GE0/0/1"),))
    huawei = dev("huawei", chassis="hh", names=("huawei",),
                 rows=(lldp("GigabitEthernet0/0/1", "", "cisco.tinh.vn", "Gi0/1"),))
    assert join([cisco, huawei]) == [
        Link(End("xa-a", "cisco", "Gi0/1"), End("xa-a", "huawei", "GigabitEthernet0/0/1"), True)]


def test_two_parallel_links_pair_port_by_port() -> None:
    a = dev("a", chassis="A", rows=(lldp("a1", "B", "", "b1"), lldp("a2", "B", "", "b2")))
    b = dev("b", chassis="B", rows=(lldp("b2", "A", "", "a2"),))
    assert [(lk.local.if_name, lk.remote.if_name, lk.confirmed) for lk in join([a, b])] == [
        ("a1", "b1", False), ("a2", "b2", True)]


def _link(a: str, b: str, agent: str = "xa-a", remote_agent: str = "xa-a") -> Link:
    return Link(End(agent, a, "p"), End(remote_agent, b, "p"), True)


def test_upstream_is_the_neighbour_towards_the_best_connected_device() -> None:
    # router - core - access1 - access2, core - access3: core has the most neighbours
    links = [_link("router", "core"), _link("access1", "core"), _link("access1", "access2"),
             _link("access3", "core")]
    assert upstreams(links) == {("xa-a", "router"): "core", ("xa-a", "access1"): "core",
                                ("xa-a", "access3"): "core", ("xa-a", "access2"): "access1"}


def test_upstream_ties_take_the_first_name_and_other_offices_are_apart() -> None:
    links = [_link("b", "a"), _link("x", "y", agent="xa-b", remote_agent="xa-b"),
             _link("a", "z", remote_agent="xa-b")]  # a link between offices is not used
    assert upstreams(links) == {("xa-a", "b"): "a", ("xa-b", "y"): "x"}


def test_upstream_in_a_ring_is_a_shortest_path() -> None:
    ring = [_link("a", "b"), _link("b", "c"), _link("c", "d"), _link("d", "a"), _link("a", "e")]
    assert upstreams(ring) == {("xa-a", "b"): "a", ("xa-a", "d"): "a", ("xa-a", "e"): "a",
                               ("xa-a", "c"): "b"}


def test_facts_are_read_from_the_exposition_lines() -> None:
    base = 'agent="xa-a",device="sw",province="Vĩnh Phúc"'
    blocks = {
        "hatang_lldp_local_info": f'hatang_lldp_local_info{{{base},chassis_id="aa:bb",sys_name="SW"}} 1 5\n'
                                  .encode(),
        "hatang_device_info": f'hatang_device_info{{{base},sys_descr="x",sys_name="sw.tinh"}} 1 5\n'.encode(),
        "hatang_lldp_neighbor_info": (
            f'hatang_lldp_neighbor_info{{{base},if_name="Gi0/1",lldp_index="0.1.1",remote_chassis_id="cc",'
            f'remote_port_id="port \\"q\\" \\\\ x",remote_sys_name="Cổng"}} 1 5\n'
            f'hatang_lldp_neighbor_info{{{base},if_name="Gi0/2",lldp_index="0.2.1",remote_chassis_id="dd",'
            f'remote_port_id="p",remote_sys_name=""}} 1 5\n').encode(),
        "hatang_cdp_neighbor_info": f'hatang_cdp_neighbor_info{{{base},cdp_index="3.1",if_name="Gi0/3",'
                                    f'remote_device_id="R1",remote_port="Fa0"}} 1 5\n'.encode(),
    }
    facts = device_facts("xa-a", "sw", SITE, blocks)
    assert facts.chassis_ids == {"aa:bb"} and facts.names == {"SW", "sw.tinh"}
    assert facts.neighbors == (lldp("Gi0/1", "cc", "Cổng", 'port "q" \\ x'), lldp("Gi0/2", "dd", "", "p"),
                               lldp("Gi0/3", "", "R1", "Fa0"))
    cache = FactsCache()
    first = cache.facts("xa-a", "sw", SITE, blocks)
    assert cache.facts("xa-a", "sw", SITE, blocks) is first  # same block objects: parsed once
    # the next poll repeats the series with a new timestamp: still the same facts, the lines reused
    lines = cache.lines([first])
    next_poll = {name: block.replace(b" 1 5\n", b" 1 65\n") for name, block in blocks.items()}
    assert cache.facts("xa-a", "sw", SITE, next_poll) is first and cache.lines([first]) is lines
    renamed = {**next_poll, "hatang_device_info": next_poll["hatang_device_info"].replace(b"sw.tinh", b"sw2")}
    second = cache.facts("xa-a", "sw", SITE, renamed)
    assert second.names == {"SW", "sw2"} and cache.lines([second]) is not lines


def test_rendered_series_carry_both_ends_and_their_sites() -> None:
    a = DeviceFacts("xa-a", "sw-a", SITE, frozenset({"A"}), frozenset(),
                    (lldp("p1", "B", "", "q1"),))
    b = DeviceFacts("xa-b", "sw-b", (("province", "Hà Nội"),), frozenset({"B"}), frozenset(), ())
    text = "".join(render_facts([a, b]))
    assert ('hatang_link_info{agent="xa-a",confirmed="false",device="sw-a",if_name="p1",'
            'province="Vĩnh Phúc",remote_agent="xa-b",remote_device="sw-b",remote_if_name="q1",'
            'remote_province="Hà Nội"} 1\n') in text
    assert "hatang_device_upstream_info" not in text  # the link joins two offices: no upstream
    assert "".join(render_facts([b])) == ""

"""Link probes against the loopback interface only (127.0.0.0/8): real ICMP and TCP sockets.

The ICMP datagram ("ping socket") path and the no-ICMP fallback are checked in child processes: the
first in a new user+network namespace whose own ``net.ipv4.ping_group_range`` allows our group (the
host's setting is not touched), both with CAP_NET_RAW dropped so that a raw socket cannot be what
answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.probes import ProbeError, ProbeResult, icmp_socket_kind, run_probe
from tests.support.services import LOOPBACK, require_binary, unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def assert_all_answered(result: ProbeResult, count: int) -> None:
    assert (result.sent, result.received, result.loss_ratio, result.up) == (count, count, 0.0, True), result
    assert result.rtt_min is not None and result.rtt_avg is not None and result.rtt_max is not None
    assert 0 < result.rtt_min <= result.rtt_avg <= result.rtt_max < 1.0


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOOPBACK, 0))
        server.listen(16)
        yield int(server.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))  # bound, never listening: connects are refused
        return int(sock.getsockname()[1])


def needs_icmp() -> str:
    kind = icmp_socket_kind()
    if kind is None:
        unavailable("no ICMP socket allowed here (not root, group outside net.ipv4.ping_group_range)")
    return kind


# ------------------------------------------------------------------------------------------- ICMP


async def test_icmp_to_loopback() -> None:
    needs_icmp()
    result = await run_probe(LOOPBACK, count=4, interval=0.02, timeout=1.0, method="icmp")
    assert (result.target, result.method) == (LOOPBACK, "icmp")
    assert_all_answered(result, 4)


async def test_auto_prefers_icmp_when_allowed() -> None:
    needs_icmp()
    result = await run_probe("127.0.0.2", count=2, interval=0.01)  # any 127/8 address answers on Linux
    assert result.method == "icmp"
    assert_all_answered(result, 2)


async def test_concurrent_probes_get_their_own_replies() -> None:
    # Same target, same sequence numbers, at the same time: with raw sockets every probe sees every
    # reply, so only the identifier and token keep them apart (the matching itself is unit-tested).
    needs_icmp()
    results = await asyncio.gather(
        *(run_probe(LOOPBACK, count=20, interval=0.005, timeout=2.0, method="icmp") for _ in range(4)),
        run_probe("127.0.0.3", count=20, interval=0.005, timeout=2.0, method="icmp"),
    )
    for result in results:
        assert_all_answered(result, 20)


def test_icmp_kind_here_matches_privileges() -> None:
    ping_range = Path("/proc/sys/net/ipv4/ping_group_range").read_text().split()
    low, high = int(ping_range[0]), int(ping_range[1])
    dgram_allowed = any(low <= gid <= high for gid in {os.getgid(), *os.getgroups()})
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        raw_allowed = True
    except PermissionError:
        raw_allowed = False
    expected = "dgram" if dgram_allowed else "raw" if raw_allowed else None
    assert icmp_socket_kind() == expected


# ------------------------------------------------------------------------------------------- TCP


async def test_tcp_to_listening_port(listening_port: int) -> None:
    result = await run_probe(LOOPBACK, count=3, interval=0.01, method="tcp", tcp_port=listening_port)
    assert result.method == "tcp"
    assert_all_answered(result, 3)


async def test_tcp_refused_counts_as_reachable(closed_port: int) -> None:
    # A RST proves the host is there: a closed port on a live host is "up" (documented in agent/probes.py).
    result = await run_probe(LOOPBACK, count=3, interval=0.01, method="tcp", tcp_port=closed_port)
    assert_all_answered(result, 3)


async def test_tcp_without_answer_counts_as_loss() -> None:
    # Linux drops SYNs to a listener whose accept queue is full: connects then hang, like a blackhole.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOOPBACK, 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                fillers.append(filler)
                filler.connect_ex((LOOPBACK, port))
            result = await run_probe(LOOPBACK, count=2, interval=0.01, timeout=0.3, method="tcp",
                                     tcp_port=port)
        finally:
            for filler in fillers:
                filler.close()
    assert (result.sent, result.received, result.up, result.loss_ratio) == (2, 0, False, 1.0)
    assert result.rtt_avg is None


async def test_host_name_is_resolved() -> None:
    # "localhost" comes from /etc/hosts; no DNS query leaves the machine for it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOOPBACK, 0))
        server.listen(4)
        result = await run_probe("localhost", count=1, method="tcp", tcp_port=server.getsockname()[1])
    assert (result.target, result.received) == ("localhost", 1)


async def test_icmp_method_refused_for_ipv6() -> None:
    with pytest.raises(ProbeError, match="IPv4 only"):
        await run_probe("::1", method="icmp")


# ------------------------------------------------------------------------------------------- child processes

_CHILD = """
    import asyncio, json, sys
    from agent.probes import icmp_socket_kind, run_probe

    async def main() -> None:
        port = int(sys.argv[1]) if len(sys.argv) > 1 else 443
        results = {"kind": icmp_socket_kind()}
        for name, address in (("loopback", "127.0.0.1"), ("other", "127.0.0.4")):
            result = await run_probe(address, count=3, interval=0.01, timeout=1.0, tcp_port=port)
            results[name] = [result.method, result.sent, result.received, result.rtt_min]
        print(json.dumps(results))

    asyncio.run(main())
"""


def _run_child(prefix: list[str], *args: str) -> dict[str, Any]:
    argv = [*prefix, sys.executable, "-c", textwrap.dedent(_CHILD), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    if proc.returncode != 0 and not proc.stdout and ("unshare" in proc.stderr or "setpriv" in proc.stderr):
        unavailable(f"cannot drop capabilities or create namespaces here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _no_net_raw() -> list[str]:
    setpriv = require_binary("setpriv", "util-linux")
    return [setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"]


def test_unprivileged_ping_socket_in_private_netns() -> None:
    """With the group inside ping_group_range and no CAP_NET_RAW, "auto" uses the ICMP datagram socket."""
    unshare = require_binary("unshare", "util-linux")
    # Only group 0 exists in the new user namespace (mapped to ours): allow exactly that one.
    setup = 'ip link set lo up && echo "0 0" > /proc/sys/net/ipv4/ping_group_range && exec "$@"'
    results = _run_child([unshare, "--user", "--map-root-user", "--net", "sh", "-c", setup, "sh",
                          *_no_net_raw()])
    assert results["kind"] == "dgram"
    for name in ("loopback", "other"):
        method, sent, received, rtt_min = results[name]
        assert (method, sent, received) == ("icmp", 3, 3)
        assert rtt_min > 0


def test_fallback_to_tcp_without_any_icmp_socket() -> None:
    """Outside ping_group_range and without CAP_NET_RAW, "auto" falls back to TCP connects. Run in a
    private network namespace, whose ping_group_range is the kernel default that admits no group, whatever
    the host allows; nothing listens there, so every connect is refused: refused = reachable."""
    unshare = require_binary("unshare", "util-linux")
    setup = 'ip link set lo up && exec "$@"'
    results = _run_child([unshare, "--user", "--map-root-user", "--net", "sh", "-c", setup, "sh",
                          *_no_net_raw()])
    assert results["kind"] is None
    assert results["loopback"][:3] == ["tcp", 3, 3]
    assert results["other"][:3] == ["tcp", 3, 3]  # 127.0.0.4: refused = reachable


def test_unreachable_network_is_loss_not_error() -> None:
    """In a network namespace whose loopback is down nothing is routable: every probe is lost."""
    unshare = require_binary("unshare", "util-linux")
    results = _run_child([unshare, "--user", "--map-root-user", "--net"])
    for name in ("loopback", "other"):
        _, sent, received, rtt_min = results[name]
        assert (sent, received, rtt_min) == (3, 0, None)

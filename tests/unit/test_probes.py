"""Pure probe parts: ICMP packets and checksum, reply matching, statistics; run_probe's choices with fakes."""

from __future__ import annotations

import socket
import struct

import pytest

from agent import probes
from agent.probes import (
    EchoMatcher,
    ProbeError,
    ProbeResult,
    build_echo_request,
    checksum,
    parse_echo_reply,
    run_probe,
    summarize,
)

TOKEN = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def ip_header(source: str, *, protocol: int = socket.IPPROTO_ICMP, options: bytes = b"") -> bytes:
    ihl = (20 + len(options)) // 4
    return (bytes([0x40 | ihl, 0]) + struct.pack("!HHHBBH", 0, 0, 0, 64, protocol, 0)
            + socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + options)


def echo_reply(identifier: int, sequence: int, payload: bytes) -> bytes:
    request = build_echo_request(identifier, sequence, payload)
    body = b"\x00\x00\x00\x00" + request[4:]  # type 0, code 0, checksum to fill
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


# ------------------------------------------------------------------------- checksum and packets


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement): checksum 220d.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_odd_length_pads_with_zero() -> None:
    assert checksum(b"\x01") == checksum(b"\x01\x00") == 0xFEFF
    assert checksum(b"") == 0xFFFF


def test_echo_request_layout_and_checksum() -> None:
    packet = build_echo_request(0x1234, 7, b"hello")
    kind, code, _, identifier, sequence = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code, identifier, sequence, packet[8:]) == (8, 0, 0x1234, 7, b"hello")
    assert checksum(packet) == 0  # a packet with a correct checksum sums to zero


def test_echo_request_wraps_identifier_and_sequence_to_16_bits() -> None:
    packet = build_echo_request(0x1_0005, 0x1_0001, b"")
    assert struct.unpack("!HH", packet[4:8]) == (5, 1)


def test_parse_reply_without_and_with_ip_header() -> None:
    reply = echo_reply(0xBEEF, 3, TOKEN + b"x")
    plain = parse_echo_reply(reply, ip_header=False)
    assert plain is not None
    assert (plain.source, plain.identifier, plain.sequence, plain.payload) == (None, 0xBEEF, 3, TOKEN + b"x")
    raw = parse_echo_reply(ip_header("10.1.2.3") + reply, ip_header=True)
    assert raw is not None and (raw.source, raw.sequence) == ("10.1.2.3", 3)
    options = b"\x01\x01\x01\x00"  # IHL 6: three NOPs and an end-of-options
    with_options = parse_echo_reply(ip_header("10.1.2.3", options=options) + reply, ip_header=True)
    assert with_options is not None and with_options.payload == TOKEN + b"x"


@pytest.mark.parametrize(
    "packet",
    [
        build_echo_request(1, 1, TOKEN),  # our own echo request (type 8) seen on a raw socket
        echo_reply(1, 1, TOKEN)[:7],  # truncated
        echo_reply(1, 1, TOKEN)[:-1] + b"\x00",  # payload changed: bad checksum
        b"\x03\x01" + echo_reply(1, 1, TOKEN)[2:],  # destination unreachable
    ],
)
def test_parse_rejects_non_replies(packet: bytes) -> None:
    assert parse_echo_reply(packet, ip_header=False) is None


def test_parse_rejects_bad_ip_headers() -> None:
    reply = echo_reply(1, 1, TOKEN)
    udp = ip_header("10.0.0.1", protocol=socket.IPPROTO_UDP)
    assert parse_echo_reply(udp + reply, ip_header=True) is None
    assert parse_echo_reply(b"\x60" + ip_header("10.0.0.1")[1:] + reply, ip_header=True) is None  # IPv6
    assert parse_echo_reply(ip_header("10.0.0.1")[:12], ip_header=True) is None


# ------------------------------------------------------------------------- matching replies to a probe


def test_raw_matcher_takes_only_its_identifier_source_and_token() -> None:
    matcher = EchoMatcher("raw", "127.0.0.1", 0x4242, TOKEN)
    mine = ip_header("127.0.0.1") + echo_reply(0x4242, 9, TOKEN + b"pad")
    assert matcher.sequence(mine) == 9
    assert matcher.sequence(ip_header("127.0.0.1") + echo_reply(0x4243, 9, TOKEN)) is None  # other probe
    assert matcher.sequence(ip_header("127.0.0.2") + echo_reply(0x4242, 9, TOKEN)) is None  # other host
    assert matcher.sequence(ip_header("127.0.0.1") + echo_reply(0x4242, 9, b"\x00" * 8)) is None  # stale
    assert matcher.sequence(echo_reply(0x4242, 9, TOKEN)) is None  # raw sockets always have the IP header


def test_dgram_matcher_ignores_identifier_kernel_rewrote_it() -> None:
    matcher = EchoMatcher("dgram", "127.0.0.1", 0, TOKEN)
    assert matcher.sequence(echo_reply(51234, 4, TOKEN)) == 4
    assert matcher.sequence(echo_reply(51234, 4, b"other-tk")) is None


# ------------------------------------------------------------------------- statistics


def test_all_lost_is_down() -> None:
    result = summarize("10.0.0.1", "icmp", 5, [])
    assert result == ProbeResult("10.0.0.1", "icmp", 5, 0, None, None, None)
    assert not result.up
    assert result.loss_ratio == 1.0


def test_partial_loss_and_rtt_stats() -> None:
    result = summarize("10.0.0.1", "tcp", 5, [0.010, 0.030, 0.020])
    assert result.up
    assert result.received == 3
    assert result.loss_ratio == pytest.approx(0.4)
    assert (result.rtt_min, result.rtt_max) == (0.010, 0.030)
    assert result.rtt_avg == pytest.approx(0.020)


def test_nothing_sent_counts_as_full_loss() -> None:
    assert summarize("x", "icmp", 0, []).loss_ratio == 1.0


def test_more_replies_than_probes_is_a_bug() -> None:
    with pytest.raises(ValueError):
        summarize("x", "icmp", 1, [0.1, 0.2])


# ------------------------------------------------------------------------- run_probe with fakes


async def test_run_probe_counts_lost_tcp_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([0.005, None, 0.007, None, None])

    async def fake_attempt(family: int, ip: str, port: int, timeout: float) -> float | None:
        assert (family, ip, port, timeout) == (socket.AF_INET, "192.0.2.10", 22, 0.5)
        return next(answers)

    monkeypatch.setattr(probes, "_tcp_attempt", fake_attempt)
    result = await run_probe("192.0.2.10", method="tcp", tcp_port=22, count=5, interval=0, timeout=0.5)
    assert (result.method, result.sent, result.received) == ("tcp", 5, 2)
    assert result.loss_ratio == pytest.approx(0.6)
    assert (result.rtt_min, result.rtt_max) == (0.005, 0.007)


async def test_run_probe_down_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    async def silent(family: int, ip: str, port: int, timeout: float) -> float | None:
        return None

    monkeypatch.setattr(probes, "_tcp_attempt", silent)
    monkeypatch.setattr(probes, "icmp_socket_kind", lambda: None)
    result = await run_probe("192.0.2.10", count=3, interval=0)  # auto, no ICMP here: TCP
    assert (result.method, result.up, result.loss_ratio) == ("tcp", False, 1.0)


async def test_icmp_required_but_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "icmp_socket_kind", lambda: None)
    with pytest.raises(ProbeError, match="ping_group_range"):
        await run_probe("192.0.2.10", method="icmp")


async def test_ipv6_icmp_is_not_supported_and_auto_uses_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProbeError, match="IPv4 only"):
        await run_probe("2001:db8::1", method="icmp")

    async def answered(family: int, ip: str, port: int, timeout: float) -> float | None:
        assert (family, ip) == (socket.AF_INET6, "2001:db8::1")
        return 0.001

    monkeypatch.setattr(probes, "_tcp_attempt", answered)
    result = await run_probe("2001:db8::1", count=1)
    assert (result.method, result.received) == ("tcp", 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "udp"}, {"count": 0}, {"timeout": 0}, {"interval": -1}, {"tcp_port": 0}, {"tcp_port": 65536}],
)
async def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProbeError):
        await run_probe("127.0.0.1", **kwargs)  # type: ignore[arg-type]


async def test_unresolvable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> object:  # never ask a real resolver in tests
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(ProbeError, match="cannot resolve"):
        await run_probe("router.example.invalid")

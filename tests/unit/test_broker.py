"""hatang/broker.py, shared by the agent's uplink and the collector's subscriber: broker URLs, the TLS
context (checked by TLS handshakes in memory, no sockets) and the reconnect back-off (on a fake clock)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from hatang.broker import Backoff, BrokerAddress, BrokerSettings, parse_broker_url, tls_context

# ---------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker.example", ("broker.example", 1883, False)),
    ("mqtts://broker.example", ("broker.example", 8883, True)),
    ("mqtt://broker.example/", ("broker.example", 1883, False)),
    ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884, False)),
    ("mqtts://broker.example:18883/", ("broker.example", 18883, True)),
    ("mqtts://[::1]:8884", ("::1", 8884, True)),
])
def test_a_broker_url_gives_host_port_and_tls_with_the_default_ports(
    url: str, expected: tuple[str, int, bool]
) -> None:
    assert parse_broker_url(url) == BrokerAddress(*expected)
    assert BrokerSettings(url, "c").address == expected


def test_settings_default_to_no_login_no_client_certificate_and_30_s_keepalive() -> None:
    settings = BrokerSettings("mqtt://b", "c")
    assert (settings.username, settings.password, settings.ca_file, settings.cert_file, settings.key_file,
            settings.keepalive) == (None, None, None, None, None, 30)


# ---------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("broker.example").configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext,
               hostname: str = "broker.example") -> ssl.SSLObject:
    """A TLS handshake between the two contexts through memory buffers; returns the server's end.
    Raises what either side raises (ssl.SSLError, e.g. a certificate that does not verify)."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=hostname)
    server = server_context.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return server
    raise AssertionError("the TLS handshake did not finish")


def test_the_tls_context_trusts_the_ca_file_and_checks_the_broker_name(
    tmp_path: Path, ca: trustme.CA
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = tls_context(BrokerSettings("mqtts://broker.example", "c", ca_file=str(ca_file)))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    server = _handshake(context, _server_context(ca, require_client_cert=False))
    assert server.getpeercert() is None  # no client certificate asked for, none given
    with pytest.raises(ssl.SSLCertVerificationError):  # a certificate for another name
        _handshake(context, _server_context(ca, require_client_cert=False), hostname="other.example")


def test_without_the_ca_file_a_private_ca_is_not_trusted(ca: trustme.CA) -> None:
    context = tls_context(BrokerSettings("mqtts://broker.example", "c"))  # the system's CAs
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, _server_context(ca, require_client_cert=False))


def test_the_tls_context_presents_the_client_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "client.crt", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert = ca.issue_cert("xa-a")
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    settings = BrokerSettings("mqtts://broker.example", "c", ca_file=str(ca_file), cert_file=str(cert_file),
                              key_file=str(key_file))
    server = _handshake(tls_context(settings), _server_context(ca, require_client_cert=True))
    peer = server.getpeercert()
    assert peer is not None and ("DNS", "xa-a") in peer["subjectAltName"]


def test_a_missing_tls_file_fails_when_the_context_is_made(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        tls_context(BrokerSettings("mqtts://b", "c", ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(OSError):
        tls_context(BrokerSettings("mqtts://b", "c", cert_file=str(tmp_path / "missing.crt"),
                                   key_file=str(tmp_path / "missing.key")))


# ---------------------------------------------------------------------------------------------- back-off


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _longest(low: float, high: float) -> float:
    return high


def test_the_steps_double_from_the_initial_one_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 15.0, 10.0, clock=FakeClock(), jitter=_longest)
    assert [backoff.delay() for _ in range(7)] == [1, 2, 4, 8, 15, 15, 15]
    collector = Backoff(cap=10.0, stable_after=0.0, clock=FakeClock(), jitter=_longest)
    assert [collector.delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    assert [Backoff(5.0, 2.0, clock=FakeClock(), jitter=_longest).delay() for _ in range(2)] == [2, 2]


def test_each_wait_is_drawn_between_half_and_all_of_its_step() -> None:
    draws: list[tuple[float, float]] = []

    def jitter(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    backoff = Backoff(1.0, 15.0, 10.0, clock=FakeClock(), jitter=jitter)
    assert [backoff.delay() for _ in range(6)] == [0.5, 1, 2, 4, 7.5, 7.5]
    assert set(draws) == {(0.5, 1.0)}


def test_with_the_default_jitter_the_waits_stay_within_their_bounds_and_vary() -> None:
    backoff = Backoff()
    steps = [1, 2, 4, 8, 15, 15, 15, 15, 15, 15, 15, 15]
    delays = [backoff.delay() for _ in steps]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, steps, strict=True)), delays
    assert len(set(delays[4:])) > 1, "the capped waits are all the same: no jitter"


def test_a_connection_that_stayed_up_resets_the_steps_a_short_or_refused_one_does_not() -> None:
    clock = FakeClock()
    backoff = Backoff(1.0, 15.0, 10.0, clock=clock, jitter=_longest)
    for _ in range(5):
        backoff.delay()
    backoff.up()
    clock.now += 9.9  # dropped before it was stable: the broker accepts and drops; keep backing off
    backoff.down()
    assert backoff.delay() == 15
    backoff.up()
    clock.now += 60  # up for a minute, then the broker refused a message: no reason to hurry back
    backoff.down(usable=False)
    assert backoff.delay() == 15
    backoff.down()  # a failed attempt (no up): the step stays
    assert backoff.delay() == 15
    backoff.up()
    clock.now += 10  # a usable connection of 10 s: the next attempt comes within a second
    backoff.down()
    assert [backoff.delay() for _ in range(3)] == [1, 2, 4]


def test_with_stable_after_zero_every_usable_connection_resets_the_steps() -> None:
    """The collector's subscriber: a connection that subscribed is reason enough to come back at once."""
    clock = FakeClock()
    backoff = Backoff(cap=10.0, stable_after=0.0, clock=clock, jitter=_longest)
    for _ in range(6):
        backoff.delay()
    backoff.up()
    backoff.down()  # at once
    assert backoff.delay() == 1
    backoff.down()  # an attempt that failed: no reset
    assert backoff.delay() == 2

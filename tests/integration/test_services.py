"""The test harness itself: real Mosquitto / snmpd start on free loopback ports, answer, stop by PID,
restart on the same port, and report failures with their logs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support import services
from tests.support.services import (
    Mosquitto,
    ServiceError,
    Snmpd,
    free_tcp_port,
    free_udp_port,
    owns_port,
    pid_alive,
    require_binary,
    snmp_probe,
    snmpget,
    snmpwalk,
    start_mosquitto,
    start_snmpd,
    tcp_port_open,
)
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"


# ---------------------------------------------------------------------------------------------- helpers


def _pgrep(pattern: str) -> list[str]:
    """PIDs of processes whose command line contains ``pattern`` (fixed string, not regex)."""
    proc = subprocess.run(["pgrep", "-f", "-a", "--", pattern], capture_output=True, text=True, check=False)
    return [line for line in proc.stdout.splitlines() if "pgrep" not in line]


def _assert_gone(pid: int, config_path: Path) -> None:
    assert not pid_alive(pid), f"pid {pid} still alive"
    assert not Path(f"/proc/{pid}").exists(), f"/proc/{pid} still exists (unreaped zombie?)"
    assert _pgrep(str(config_path)) == [], "a process still runs with our config"


def _connection_refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def _mqtt_round_trip(broker: Mosquitto, *auth: str) -> str:
    """Subscribe with mosquitto_sub, publish with mosquitto_pub until the subscriber got one message."""
    sub_bin = require_binary("mosquitto_sub", "mosquitto-clients")
    pub_bin = require_binary("mosquitto_pub", "mosquitto-clients")
    topic = f"hatang/test/{uuid.uuid4().hex}"
    payload = f"hello-{uuid.uuid4().hex}"
    target = ["-h", broker.host, "-p", str(broker.port), "-q", "1", *auth]
    sub = subprocess.Popen(
        [sub_bin, *target, "-t", topic, "-C", "1", "-W", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The subscription becomes active at an unknown moment: publish until the subscriber has
        # received one message and exited (no sleep-and-hope).
        def delivered() -> bool:
            subprocess.run([pub_bin, *target, "-t", topic, "-m", payload], check=True, timeout=10)
            return sub.poll() is not None

        wait_until(delivered, 15, interval=0.1, message="mosquitto_sub to receive a message")
        out, err = sub.communicate(timeout=5)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0, err
    return out.strip()


# ---------------------------------------------------------------------------------------------- support


def test_require_binary_finds_sbin_programs() -> None:
    assert require_binary("mosquitto", "mosquitto") == "/usr/sbin/mosquitto"
    assert Path(require_binary("snmpd", "snmpd")).name == "snmpd"


def test_require_binary_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = f"no-such-program-{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package 'pkg-x'"):
        require_binary(missing, "pkg-x")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install pkg-x"):
        require_binary(missing, "pkg-x")


def test_free_ports_are_never_handed_out_twice() -> None:
    tcp = [free_tcp_port() for _ in range(50)]
    udp = [free_udp_port() for _ in range(50)]
    assert len(set(tcp)) == 50
    assert len(set(udp)) == 50
    assert 1883 not in tcp


def test_free_ports_lie_outside_the_kernels_ephemeral_range() -> None:
    """A service restarted on a port from that range can find it taken by a client that connected to
    itself while retrying (TCP self-connect); no port we hand out comes from it."""
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert services.ephemeral_port_range() == (low, high)
    ports = [free_tcp_port() for _ in range(200)] + [free_udp_port() for _ in range(200)]
    inside = [p for p in ports if low <= p <= high]
    assert not inside, f"ports inside {low}-{high}: {inside}"
    assert all(1024 <= p <= 65535 for p in ports)


def test_restart_on_an_ephemeral_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # the kernel picks from the ephemeral range
        port = probe.getsockname()[1]
    assert services.in_ephemeral_range(port)
    broker = start_mosquitto(tmp_path, port=port)  # a first start is allowed (a test's own choice)
    try:
        broker.stop()
        with pytest.raises(ServiceError, match="inside the ephemeral port range"):
            broker.start()
        assert not broker.running
    finally:
        broker.stop()


def test_wait_until_returns_value_and_reports_last_value_on_timeout() -> None:
    seen: list[int] = []

    def grows() -> list[int] | None:
        seen.append(len(seen))
        return list(seen) if len(seen) >= 3 else None

    assert wait_until(grows, 5, interval=0.001) == [0, 1, 2]
    answer = 41
    assert wait_until(lambda: answer, 0.05) == 41
    with pytest.raises(AssertionError, match=r"waiting for the answer; last value: False"):
        wait_until(lambda: answer == 42, 0.05, message="the answer")
    with pytest.raises(AssertionError, match=r"last exception: ConnectionRefusedError"):
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", free_tcp_port())),
            0.1,
            ignore=(ConnectionRefusedError,),
        )


async def test_async_wait_until_accepts_sync_and_async_predicates() -> None:
    counter = {"n": 0}

    async def bump() -> int | None:
        counter["n"] += 1
        await asyncio.sleep(0)
        return counter["n"] if counter["n"] >= 3 else None

    assert await async_wait_until(bump, 5, interval=0.001) == 3
    assert await async_wait_until(lambda: "ok", 1) == "ok"

    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    with pytest.raises(AssertionError, match="the hang"):
        await async_wait_until(hangs, 0.1, message="the hang")


# ---------------------------------------------------------------------------------------------- mosquitto


def test_mosquitto_fixture_round_trip(mosquitto: Mosquitto) -> None:
    assert mosquitto.host == "127.0.0.1"
    assert mosquitto.port != 1883
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert pid_alive(mosquitto.pid)
    assert _mqtt_round_trip(mosquitto).startswith("hello-")
    assert "New client connected" in mosquitto.log()


def test_mosquitto_stop_refuses_connections_and_start_comes_back_on_same_port(mosquitto: Mosquitto) -> None:
    port, old_pid = mosquitto.port, mosquitto.pid
    mosquitto.stop()
    _assert_gone(old_pid, mosquitto.config_path)
    assert _connection_refused(mosquitto.host, port)
    mosquitto.stop()  # idempotent

    mosquitto.start()
    assert mosquitto.port == port
    assert mosquitto.pid != old_pid
    assert tcp_port_open(mosquitto.host, port)
    assert _mqtt_round_trip(mosquitto).startswith("hello-")
    mosquitto.start()  # no-op while running
    assert mosquitto.running


def test_mosquitto_kill_is_abrupt_and_restartable(mosquitto: Mosquitto) -> None:
    old_pid = mosquitto.pid
    mosquitto.kill()
    _assert_gone(old_pid, mosquitto.config_path)
    assert mosquitto._proc is not None and mosquitto._proc.returncode == -9
    mosquitto.start()
    assert tcp_port_open(mosquitto.host, mosquitto.port)


def test_never_started_service_stop_is_harmless(tmp_path: Path) -> None:
    broker = Mosquitto("127.0.0.1", free_tcp_port(), 0, tmp_path / "none.conf", tmp_path / "none.log")
    broker.stop()  # pid 0 must not signal our own process group
    broker.kill()
    assert not broker.running


def test_mosquitto_with_password_file_rejects_anonymous(tmp_path: Path) -> None:
    passwd = require_binary("mosquitto_passwd", "mosquitto")
    password_file = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(password_file), "agent1", "s3cret"], check=True)
    broker = start_mosquitto(tmp_path / "mq", extra_config=f"password_file {password_file}\n")
    try:
        assert "allow_anonymous" not in broker.config_path.read_text()
        assert _mqtt_round_trip(broker, "-u", "agent1", "-P", "s3cret").startswith("hello-")
        pub = require_binary("mosquitto_pub", "mosquitto-clients")
        anon = subprocess.run(
            [pub, "-h", broker.host, "-p", str(broker.port), "-t", "x", "-m", "y"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert anon.returncode != 0
        assert "not authorised" in (anon.stderr + anon.stdout).lower()
    finally:
        broker.stop()
    _assert_gone(broker.pid, broker.config_path)


def test_mosquitto_bad_config_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(
        ServiceError, match=r"(?s)exited with code.*Unknown configuration variable \"no_such_option\""
    ):
        start_mosquitto(tmp_path, extra_config="no_such_option 1")
    assert _pgrep(str(tmp_path / "mosquitto.conf")) == []


def test_mosquitto_on_a_taken_port_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(ServiceError, match="Address already in use"):
            start_mosquitto(tmp_path, port=port)
    assert _pgrep(str(tmp_path / "mosquitto.conf")) == []


def test_auto_chosen_port_that_turns_out_taken_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free-port race: the first port handed out is taken by someone else by the time we bind."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(services, "free_tcp_port", lambda: next(ports, None) or free_tcp_port())
        broker = start_mosquitto(tmp_path)
        try:
            assert broker.port != taken
            assert owns_port(broker.pid, "tcp", broker.port)
            assert "Address already in use" in broker.log()  # the first attempt is in the log
        finally:
            broker.stop()


# ---------------------------------------------------------------------------------------------- snmpd


def test_snmpd_on_a_taken_port_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(ServiceError, match=f'Error opening specified endpoint "udp:127.0.0.1:{port}"'):
            start_snmpd(tmp_path, port=port)
    assert _pgrep(str(tmp_path / "snmpd.conf")) == []


def test_auto_chosen_ports_belong_to_the_started_daemons(mosquitto: Mosquitto, snmpd: Snmpd) -> None:
    assert owns_port(mosquitto.pid, "tcp", mosquitto.port)
    assert owns_port(snmpd.pid, "udp", snmpd.port)
    assert not owns_port(mosquitto.pid, "tcp", 1883)  # the system broker is someone else's


def test_snmpd_answers_sysuptime_and_serves_if_mib_for_lo(snmpd: Snmpd) -> None:
    assert snmpd.address == f"127.0.0.1:{snmpd.port}"
    assert snmpd.community == "public"
    assert int(snmpget(snmpd, SYS_UPTIME)) >= 0
    assert snmpget(snmpd, SYS_NAME) == '"hatang-test-snmpd"'

    descr = snmpwalk(snmpd, IF_DESCR)
    lo_index = next(oid.rsplit(".", 1)[1] for oid, value in descr.items() if value == '"lo"')
    assert snmpwalk(snmpd, IF_NAME)[f"{IF_NAME}.{lo_index}"] == '"lo"'
    hc_in = snmpwalk(snmpd, IF_HC_IN_OCTETS)
    assert f"{IF_HC_IN_OCTETS}.{lo_index}" in hc_in
    before = int(hc_in[f"{IF_HC_IN_OCTETS}.{lo_index}"])
    # Our own SNMP traffic crosses lo, so the 64-bit counter must move.
    after = wait_until(
        lambda: (v := int(snmpget(snmpd, f"{IF_HC_IN_OCTETS}.{lo_index}"))) > before and v,
        10,
        interval=0.2,
        message="ifHCInOctets.lo to increase",
    )
    assert after > before


def test_snmpd_wrong_community_gets_no_answer(snmpd: Snmpd) -> None:
    assert snmp_probe(snmpd.host, snmpd.port, "public")
    assert not snmp_probe(snmpd.host, snmpd.port, "not-the-community", timeout=0.3)
    with pytest.raises(ServiceError, match="Timeout"):
        snmpget(snmpd, SYS_UPTIME, community="not-the-community", timeout=0.3, retries=0)


def test_snmpd_stop_kills_pid_and_start_comes_back_on_same_port(snmpd: Snmpd) -> None:
    port, old_pid = snmpd.port, snmpd.pid
    assert pid_alive(old_pid)
    snmpd.stop()
    _assert_gone(old_pid, snmpd.config_path)
    assert not snmp_probe(snmpd.host, port, timeout=0.3)
    snmpd.stop()  # idempotent

    snmpd.start()
    assert snmpd.port == port and snmpd.pid != old_pid
    assert int(snmpget(snmpd, SYS_UPTIME)) >= 0


def test_snmpd_serves_snmpv3_users_from_extra_config(tmp_path: Path) -> None:
    extra = 'createUser hatang SHA256 "authpass-123" AES "privpass-123"\nrouser hatang priv\n'
    agent = start_snmpd(tmp_path, extra_config=extra, community="c0mmunity")
    try:
        assert snmpget(agent, SYS_NAME, community="c0mmunity") == '"hatang-test-snmpd"'
        tool = require_binary("snmpget", "snmp")
        v3 = [
            tool,
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "hatang",
            "-a",
            "SHA-256",
            "-A",
            "authpass-123",
            "-x",
            "AES",
            "-X",
            "privpass-123",
            "-t",
            "1",
            "-r",
            "1",
            "-Oqv",
            "-Ot",
            agent.address,
            SYS_UPTIME,
        ]
        ok = subprocess.run(v3, capture_output=True, text=True, timeout=15, check=False)
        assert ok.returncode == 0, ok.stderr
        assert int(ok.stdout.strip()) >= 0
        bad = [*v3[:9], "wrong-pass-123", *v3[10:]]
        denied = subprocess.run(bad, capture_output=True, text=True, timeout=15, check=False)
        assert denied.returncode != 0
    finally:
        agent.stop()
    _assert_gone(agent.pid, agent.config_path)
    assert (agent.persistent_dir / "snmpd.conf").exists()  # engineBoots/usmUser state stays in tmp


def test_snmpd_listens_only_on_its_udp_port(snmpd: Snmpd) -> None:
    ss = require_binary("ss", "iproute2")
    out = subprocess.run([ss, "-lntuap"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in out.splitlines() if f"pid={snmpd.pid}," in line]
    assert len(ours) == 1, ours
    assert ours[0].startswith("udp") and f"127.0.0.1:{snmpd.port} " in ours[0]


def test_snmpd_module_fixture_is_shared(snmpd_module: Snmpd) -> None:
    assert snmpd_module.running
    assert int(snmpget(snmpd_module, SYS_UPTIME)) >= 0


def test_snmpd_module_fixture_is_shared_again(snmpd_module: Snmpd) -> None:
    assert snmpd_module.running
    assert snmpget(snmpd_module, SYS_NAME) == '"hatang-test-snmpd"'

"""The pure parts of ``hatang discover`` (agent/discovery.py, hatang/cli_discover.py): target expansion
and the address limit, device names, vendor and model, the devices: YAML (loaded back by the agent's own
config model), the credentials the options make, the rate limit, the refusals that come before any
packet is sent, and which credential the sweep asks when (on a fake engine). The sweep against recorded
devices and a real snmpd is tests/e2e/test_discover.py."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from agent import config as agent_config
from agent.discovery import (
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    Credential,
    Found,
    SweepOptions,
    SweepResult,
    TargetError,
    TokenBucket,
    address_name,
    count_addresses,
    expand_targets,
    model_of,
    name_devices,
    render_devices,
    sanitize_name,
    sweep,
    unique_name,
    value_text,
    vendor_of,
)
from agent.snmp.credentials import Credentials
from agent.snmp.errors import SnmpAuthError, SnmpTimeout
from agent.snmp.target import SnmpTarget
from agent.snmp.values import OID, SnmpValue
from hatang import cli_discover
from hatang.yaml_loading import parse_yaml
from tests.support.hatang import run_subcommand
from wire.topics import DEVICE_NAME_PATTERN


def addresses(*targets: str, limit: int = 4096) -> list[str]:
    return [str(a) for a in expand_targets(list(targets), limit)]


# --------------------------------------------------------------------------------------- targets


def test_an_address_a_range_and_the_short_range() -> None:
    assert addresses("192.168.1.10") == ["192.168.1.10"]
    assert addresses("192.168.1.254-192.168.2.1") == ["192.168.1.254", "192.168.1.255", "192.168.2.0",
                                                      "192.168.2.1"]
    assert addresses("10.0.0.5-7") == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert addresses(" 10.0.0.5 - 10.0.0.6 ") == ["10.0.0.5", "10.0.0.6"]


@pytest.mark.parametrize(("network", "expected"), [
    ("192.168.1.0/24", [f"192.168.1.{n}" for n in range(1, 255)]),  # no .0 (network) nor .255 (broadcast)
    ("192.168.1.77/24", [f"192.168.1.{n}" for n in range(1, 255)]),  # host bits: the network it is in
    ("10.0.0.0/30", ["10.0.0.1", "10.0.0.2"]),
    ("10.0.0.0/31", ["10.0.0.0", "10.0.0.1"]),  # a point-to-point link: both are hosts (RFC 3021)
    ("10.0.0.9/32", ["10.0.0.9"]),
    ("fd00::/126", ["fd00::1", "fd00::2", "fd00::3"]),  # no Subnet-Router anycast address
    ("fd00::/127", ["fd00::", "fd00::1"]),
    ("fd00::5/128", ["fd00::5"]),
])
def test_networks_leave_out_what_is_no_host(network: str, expected: list[str]) -> None:
    assert addresses(network) == expected
    assert count_addresses([network]) == len(expected)


def test_ipaddress_agrees_on_ordinary_networks() -> None:
    for text in ("192.168.8.0/21", "172.16.4.0/29", "fd00:1::/120"):
        assert addresses(text) == [str(h) for h in ipaddress.ip_network(text).hosts()]


def test_duplicates_and_overlaps_count_once_in_order() -> None:
    got = addresses("10.0.0.9", "10.0.0.0/29", "10.0.0.3-10", "fd00::1", "10.0.0.9")
    assert got == [f"10.0.0.{n}" for n in range(1, 11)] + ["fd00::1"]
    assert count_addresses(["10.0.0.0/24", "10.0.0.0/24", "10.0.0.1-254"]) == 254
    assert len(addresses("10.0.0.0/24", "10.0.0.0/24", limit=254)) == 254  # overlaps do not count twice


def test_the_limit_is_checked_before_anything_is_listed() -> None:
    started = time.monotonic()
    with pytest.raises(TargetError) as error:
        expand_targets(["10.0.0.0/8", "192.168.1.1"], 4096)
    assert time.monotonic() - started < 0.5  # 16 million addresses were not built
    message = str(error.value)
    assert "16777215 addresses" in message and "limit of 4096" in message and "--max-addresses" in message
    assert len(addresses("10.0.0.0/20", limit=4094)) == 4094  # exactly at the limit: allowed
    with pytest.raises(TargetError, match="4094 addresses, more than the limit of 4093"):
        expand_targets(["10.0.0.0/20"], 4093)
    with pytest.raises(TargetError, match="more than the limit"):
        expand_targets(["fd00::/64"], 4096)


@pytest.mark.parametrize(("target", "words"), [
    ("router.local", "not an IP address"),
    ("10.0.0.300", "not an IP address"),
    ("10.0.0.0/33", "not a network"),
    ("10.0.0.9-10.0.0.1", "ends before it starts"),
    ("10.0.0.9-3", "ends before it starts"),
    ("10.0.0.1-256", "not an octet"),
    ("10.0.0.1-fd00::1", "mixes IPv4 and IPv6"),
    ("", "empty target"),
])
def test_targets_that_are_refused_say_why(target: str, words: str) -> None:
    with pytest.raises(TargetError, match=words):
        expand_targets([target])


def test_no_target_is_refused() -> None:
    with pytest.raises(TargetError, match="at least one target"):
        expand_targets([])


# ------------------------------------------------------------------------------- names, vendor, model


@pytest.mark.parametrize(("sys_name", "expected"), [
    ("DUMSYS-04", "DUMSYS-04"),
    ("core-sw.tamdao.vinhphuc.gov.vn", "core-sw.tamdao.vinhphuc.gov.vn"),
    ("Switch Đồng Hới tầng 2", "Switch-Dong-Hoi-tang-2"),
    ("  UBND xã Đại Đình  ", "UBND-xa-Dai-Dinh"),
    ("__ups#1", "ups-1"),
    ("sw/1 (core)", "sw-1-core"),
    ("!!!", ""),
    ("", ""),
    ("Đ" * 80, "D" * 63),
])
def test_sys_names_become_device_names(sys_name: str, expected: str) -> None:
    assert sanitize_name(sys_name) == expected
    assert not expected or re.fullmatch(DEVICE_NAME_PATTERN, expected)


def test_names_are_made_unique_case_insensitively() -> None:
    taken: set[str] = set()
    assert [unique_name(n, taken) for n in ("sw1", "SW1", "sw1", "sw1-2")] == ["sw1", "SW1-2", "sw1-3",
                                                                              "sw1-2-2"]
    long = "x" * 63
    assert unique_name(long, taken) == long
    assert unique_name(long, taken) == "x" * 61 + "-2"


def test_devices_without_a_name_are_named_by_address_and_earlier_addresses_keep_the_plain_name() -> None:
    credential = Credential(Credentials("2c", "public"), (("version", "2c"), ("community", "public")))

    def found(address: str, name: str | None) -> Found:
        return Found(address, 161, "", "1.3.6.1.4.1.9.1.1", "Cisco IOS", name, credential, ("system",))

    named = name_devices([found("10.0.0.20", "sw"), found("10.0.0.3", "sw"), found("10.0.0.9", None),
                          found("10.0.0.10", "@@")])
    assert [(d.address, d.name) for d in named] == [("10.0.0.3", "sw"), ("10.0.0.9", "dev-10-0-0-9"),
                                                    ("10.0.0.10", "dev-10-0-0-10"), ("10.0.0.20", "sw-2")]
    assert address_name("fd00::1") == "dev-fd00--1"


@pytest.mark.parametrize(("sys_object_id", "vendor"), [
    ("1.3.6.1.4.1.9.1.617", "Cisco"),
    (".1.3.6.1.4.1.2011.2.23.276", "Huawei"),
    ("1.3.6.1.4.1.25506.1.578", "H3C"),
    ("1.3.6.1.4.1.11.2.3.7.11.107", "HPE"),
    ("1.3.6.1.4.1.47196.4.1.1.1.1", "HPE"),
    ("1.3.6.1.4.1.2636.1.1.1.2.21", "Juniper"),
    ("1.3.6.1.4.1.12356.101.1.30000", "Fortinet"),
    ("1.3.6.1.4.1.14988.1", "MikroTik"),
    ("1.3.6.1.4.1.4881.1.1.10.1.41", "Ruijie"),
    ("1.3.6.1.4.1.3902.3.100.614", "ZTE"),
    ("1.3.6.1.4.1.318.1.3.4.6", "APC"),
    ("1.3.6.1.4.1.8072.3.2.10", "Net-SNMP"),
    ("1.3.6.1.4.1.311.1.1.3.1.2", "Microsoft"),
    ("1.3.6.1.4.1.99999.1", "enterprise 99999"),
    ("1.3.6.1.2.1.1", ""),
    ("1.3.6.1.4.1", ""),
    (None, ""),
])
def test_the_vendor_comes_from_the_enterprise_number(sys_object_id: str | None, vendor: str) -> None:
    assert vendor_of(sys_object_id) == vendor


def test_the_model_is_the_first_line_of_sys_descr_cut() -> None:
    huawei = "S5720-36C-EI-AC \r\nHuawei Versatile Routing Platform Software \r\n VRP (R) software"
    assert model_of(huawei) == "S5720-36C-EI-AC"
    assert model_of("\n\n  Linux  cray 2.6.21 ") == "Linux cray 2.6.21"
    cut = model_of("Cisco IOS Software, C3560 Software (C3560-IPSERVICESK9-M), Version 12.2(55)SE3")
    assert cut == "Cisco IOS Software, C3560 Software (C3560-IPS..." and len(cut) == 48
    assert model_of(None) == model_of("") == ""


def test_values_as_text() -> None:
    raw = "Bộ chuyển mạch\r\n\x01x\x00\x00".encode()
    assert value_text(SnmpValue("octets", raw)) == "Bộ chuyển mạch\r\n x"
    assert value_text(SnmpValue("oid", "1.3.6.1.4.1.9.1.617")) == "1.3.6.1.4.1.9.1.617"
    assert value_text(SnmpValue("no_such_object", None)) is None
    assert value_text(None) is None


# ------------------------------------------------------------------------------------------- YAML


AGENT_YAML = """\
agent_id: xa-dai-dinh
site: {province: Vĩnh Phúc}
mqtt: {url: "mqtt://127.0.0.1:1883"}
buffer: {path: buffer}
"""


def _found() -> list[Found]:
    inline = Credential(Credentials("2c", 'pu"b #: lic'), (("version", "2c"), ("community", 'pu"b #: lic')))
    from_file = Credential(Credentials("2c", "secret"),
                           (("version", "2c"), ("community_file", "${CREDENTIALS_DIRECTORY}/snmp-community")))
    v3 = Credential(Credentials("3", username="hatang", auth_protocol="SHA", auth_password="x" * 8),
                    (("version", "3"), ("username", "hatang"), ("auth_protocol", "SHA"),
                     ("auth_password_file", "${CREDENTIALS_DIRECTORY}/snmp-v3-auth")))
    return name_devices([
        Found("10.0.0.2", 161, "", "1.3.6.1.4.1.2011.2.23.276", "S5720\r\nHuawei # VRP: \"x\"", "Lõi #1",
              inline, ("interfaces", "system")),
        Found("10.0.0.3", 1161, "", None, None, None, from_file, ("system",)),
        Found("10.0.0.4", 161, "", "1.3.6.1.4.1.318.1.3.4.6", "APC Web/SNMP", "Lõi #1", v3,
              ("system", "ups")),
        Found("10.0.0.5", 161, "", None, None, "bare", inline, ()),
    ])


def test_the_devices_block_loads_as_the_agent_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_devices(_found(), ["Written by a test: 4 device(s)\nsecond line"])
    data = parse_yaml(text, tmp_path / "devices.yaml")
    assert data["devices"][0] == {"name": "Loi-1", "address": "10.0.0.2", "port": 161,
                                  "snmp": {"version": "2c", "community": 'pu"b #: lic'},
                                  "profiles": ["interfaces", "system"]}
    assert data["devices"][1]["name"] == "dev-10-0-0-3" and data["devices"][1]["port"] == 1161
    assert data["devices"][1]["snmp"] == {"version": "2c",
                                          "community_file": "${CREDENTIALS_DIRECTORY}/snmp-community"}
    assert data["devices"][2]["name"] == "Loi-1-2"
    assert data["devices"][2]["snmp"]["auth_password_file"] == "${CREDENTIALS_DIRECTORY}/snmp-v3-auth"
    assert data["devices"][3]["profiles"] == "auto"  # nothing matched: the agent chooses at its start
    assert "# Huawei, S5720 (sysObjectID 1.3.6.1.4.1.2011.2.23.276)" in text
    config = tmp_path / "agent.yaml"
    config.write_text(AGENT_YAML + text, encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    agent = agent_config.parse(config)  # the model and the profile names; the secret files are not read
    assert [(d.name, d.address, d.port, d.snmp.version) for d in agent.devices] == [
        ("Loi-1", "10.0.0.2", 161, "2c"), ("dev-10-0-0-3", "10.0.0.3", 1161, "2c"),
        ("Loi-1-2", "10.0.0.4", 161, "3"), ("bare", "10.0.0.5", 161, "2c")]
    assert agent.devices[3].profiles == ["auto"]
    assert agent.devices[1].snmp.community_file == tmp_path / "snmp-community"
    assert agent.devices[0].snmp.community == 'pu"b #: lic'


def test_nothing_found_is_an_empty_block(tmp_path: Path) -> None:
    assert parse_yaml(render_devices([]), tmp_path / "x.yaml") == {"devices": []}


# ------------------------------------------------------------------------------------------- options


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hatang")
    cli_discover.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["discover", "10.0.0.1", *argv])


def test_credentials_in_the_order_given_with_files_referenced(tmp_path: Path) -> None:
    (tmp_path / "snmp-community").write_text("s3cret\nignored\n")
    (tmp_path / "auth").write_text("authpass1\n")
    (tmp_path / "priv").write_text("privpass1\n")
    made = cli_discover.credentials(_args(
        "--community", "office", "--community-file", str(tmp_path / "snmp-community"),
        "--community", "public",
        "--v3-user", "hatang", "--auth-protocol", "SHA", "--auth-password-file", str(tmp_path / "auth"),
        "--priv-protocol", "AES", "--priv-password-file", str(tmp_path / "priv")))
    assert [(c.creds.version, c.creds.community) for c in made[:3]] == [("2c", "office"), ("2c", "s3cret"),
                                                                       ("2c", "public")]
    assert made[1].settings == (("version", "2c"),
                                ("community_file", "${CREDENTIALS_DIRECTORY}/snmp-community"))
    v3 = made[3]
    assert (v3.creds.username, v3.creds.auth_password, v3.creds.priv_password) == ("hatang", "authpass1",
                                                                                   "privpass1")
    assert dict(v3.settings) == {
        "version": "3", "username": "hatang", "auth_protocol": "SHA",
        "auth_password_file": "${CREDENTIALS_DIRECTORY}/auth", "priv_protocol": "AES",
        "priv_password_file": "${CREDENTIALS_DIRECTORY}/priv"}
    assert [c.creds.community for c in cli_discover.credentials(_args())] == ["public"]  # the default
    assert cli_discover.credentials(_args("--snmp-version", "1"))[0].settings == (("version", "1"),
                                                                                ("community", "public"))


@pytest.mark.parametrize(("argv", "words"), [
    (["--auth-protocol", "SHA"], "need --v3-user"),
    (["--v3-user", "u", "--auth-protocol", "SHA"], "--auth-protocol needs --auth-password-file"),
    (["--v3-user", "u", "--community-file", "/nonexistent/c"], "cannot read it"),
])
def test_bad_credential_options_are_refused(argv: list[str], words: str) -> None:
    with pytest.raises(cli_discover.OptionError, match=words):
        cli_discover.credentials(_args(*argv))


def test_the_table_shows_no_secret() -> None:
    shown = cli_discover.table(_found())
    assert "pu\"b" not in shown and "secret" not in shown and "snmp-community" not in shown
    lines = shown.splitlines()
    assert lines[0].split() == ["ADDRESS", "NAME", "VENDOR", "MODEL", "PROFILES", "SNMP"]
    assert lines[1].split()[:3] == ["10.0.0.2", "Loi-1", "Huawei"] and lines[1].endswith("v2c")
    assert lines[3].endswith("v3") and "system,ups" in lines[3]


def test_over_the_limit_is_refused_before_any_packet(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def no_sweep(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep started")

    monkeypatch.setattr(cli_discover, "sweep", no_sweep)
    assert run_subcommand(cli_discover.add_parser, "discover", "10.1.0.0/16", "10.2.0.0/30") == 2
    error = capsys.readouterr().err
    assert "65536 addresses, more than the limit of 4096" in error
    assert run_subcommand(cli_discover.add_parser, "discover", "10.1.0.0/16", "--max-addresses", "70000") == 2
    assert "at most 65536" in capsys.readouterr().err
    assert run_subcommand(cli_discover.add_parser, "discover", "fd00::1") == 2
    assert "IPv4 only" in capsys.readouterr().err


async def test_the_token_bucket_paces_requests() -> None:
    bucket = TokenBucket(rate=200, burst=4)
    started = time.monotonic()
    await asyncio.gather(*(bucket.take() for _ in range(24)))
    elapsed = time.monotonic() - started
    assert elapsed >= (24 - 4) / 200 * 0.9  # the burst, then one token every 5 ms
    assert elapsed < 2


# ------------------------------------------------------------------------ the sweep on a fake engine


@dataclass(frozen=True)
class _Reply:
    varbinds: list[tuple[OID, SnmpValue]]
    error_status: int = 0
    error_index: int = 0
    error_name: str = "noError"


class _FakeSession:
    """Answers as ``behaviour[community]`` says: "ok", "timeout", "auth" or "genErr"."""

    def __init__(self, engine: _FakeEngine, creds: Credentials, host: str, retries: int) -> None:
        self.engine, self.creds, self.host, self.port, self.retries = engine, creds, host, 161, retries

    async def _answer(self, oids: Sequence[OID]) -> _Reply:
        key = self.creds.community if self.creds.version != "3" else self.creds.username
        self.engine.asked.append((self.host, key, self.retries))
        how = self.engine.behaviour.get((self.host, key), "timeout")
        if how == "timeout":
            raise SnmpTimeout(f"{self.host}: no answer")
        if how == "auth":
            raise SnmpAuthError(f"{self.host}: unknown user")
        if how == "genErr":
            return _Reply([(o, SnmpValue("null", None)) for o in oids], 5, 1, "genErr")
        values = {SYS_OBJECT_ID: SnmpValue("oid", "1.3.6.1.4.1.2011.2.23.276"),
                  SYS_NAME: SnmpValue("octets", b"sw-1"), SYS_DESCR: SnmpValue("octets", b"S5720\r\nVRP")}
        return _Reply([(o, values.get(o, SnmpValue("no_such_object", None))) for o in oids])

    async def get(self, oids: Sequence[OID]) -> _Reply:
        return await self._answer(oids)

    async def get_next(self, oid: OID) -> _Reply:
        return _Reply([(oid, SnmpValue("end_of_mib_view", None))])

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int) -> _Reply:
        return await self.get_next(oids[0])


class _FakeEngine:
    def __init__(self, behaviour: dict[tuple[str, str], str]) -> None:
        self.behaviour = behaviour
        self.asked: list[tuple[str, str, int]] = []  # (host, community or user, retries)

    async def target(self, host: str, port: int, creds: Credentials, *, timeout: float,
                     retries: int) -> SnmpTarget:
        return SnmpTarget(_FakeSession(self, creds, host, retries))


def _credentials() -> list[Credential]:
    return [Credential(Credentials("2c", "public"), (("version", "2c"), ("community", "public"))),
            Credential(Credentials("3", username="u"), (("version", "3"), ("username", "u")))]


async def _sweep(behaviour: dict[tuple[str, str], str], thorough: bool = False) -> tuple[SweepResult,
                                                                                        _FakeEngine]:
    engine = _FakeEngine(behaviour)
    addresses = expand_targets(["10.0.0.1-4"])
    result = await sweep(cast(Any, engine), addresses, _credentials(), {},
                         SweepOptions(timeout=0.1, concurrency=2, rate=1000, thorough=thorough))
    return result, engine


async def test_a_timeout_ends_the_address_and_a_refusal_passes_to_the_next_credential() -> None:
    result, engine = await _sweep({("10.0.0.1", "public"): "ok", ("10.0.0.2", "public"): "genErr",
                                   ("10.0.0.2", "u"): "auth", ("10.0.0.3", "u"): "ok"})
    assert [(d.address, d.name, d.credential.version) for d in result.found] == [("10.0.0.1", "sw-1", "2c")]
    assert result.found[0].vendor == "Huawei" and result.found[0].model == "S5720"
    assert (result.asked, result.answered, result.timed_out) == (4, 1, 2)
    assert list(result.errors) == ["10.0.0.2"] and "unknown user" in result.errors["10.0.0.2"]
    first_contacts = sorted((host, key) for host, key, retries in engine.asked if retries == 0)
    # 10.0.0.3 answers only the v3 user, but its silence to the community ended it: one request
    assert first_contacts == [("10.0.0.1", "public"), ("10.0.0.2", "public"), ("10.0.0.2", "u"),
                              ("10.0.0.3", "public"), ("10.0.0.4", "public")]
    assert ("10.0.0.1", "public", 1) in engine.asked  # the identification has one retry


async def test_thorough_asks_every_credential_of_a_silent_address() -> None:
    result, engine = await _sweep({("10.0.0.3", "u"): "ok"}, thorough=True)
    assert [(d.address, d.credential.version) for d in result.found] == [("10.0.0.3", "3")]
    assert (result.timed_out, result.errors) == (3, {})
    assert sum(1 for _, _, retries in engine.asked if retries == 0) == 8  # 4 addresses x 2 credentials

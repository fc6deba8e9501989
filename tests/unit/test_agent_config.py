"""Tests of the agent config loader: valid files, path resolution and errors that name file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import config as agent_config
from agent.config import AgentConfig
from hatang.configfile import ConfigError, read_secret

DOC_EXAMPLE = """\
agent_id: xa-dai-dinh            # unique; [a-z0-9][a-z0-9_-]*; also the MQTT username by default
site:                            # labels on every series
  province: "Vĩnh Phúc"
  district: "Tam Đảo"
  commune: "Đại Đình"
mqtt:
  url: "mqtts://127.0.0.1:8883"
  username: xa-dai-dinh
  password_file: /etc/hatang/mqtt-password
  ca_file: /etc/hatang/ca.pem
  keepalive: 30
buffer:
  path: /var/lib/hatang/buffer
  max_bytes: 268435456
  max_age: 604800
max_concurrent_polls: 32
log_level: info
devices:
  - name: core-switch
    address: 192.0.2.10
    port: 161
    interval: 60
    profiles: [system, interfaces]
    snmp:
      version: 2c
      community: public
      timeout: 2
      retries: 1
  - name: router
    address: 192.0.2.1
    snmp:
      version: 3
      username: hatang
      auth_protocol: SHA256
      auth_password_file: /etc/hatang/snmp-auth
      priv_protocol: AES
      priv_password_file: /etc/hatang/snmp-priv
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "agent_id": "xa-dai-dinh",
        "site": {"province": "Vĩnh Phúc"},
        "mqtt": {"url": "mqtt://broker.example:1883"},
        "buffer": {"path": "buffer"},
        "devices": [{"name": "core-switch", "address": "192.0.2.10"}],
    }
    doc.update(extra)
    return doc


def write_doc(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        agent_config.load(path)
    assert info.value.path == str(path)
    for line in str(info.value).splitlines():
        assert line.startswith(f"{path}: ")
    return info.value.problems


def keys_of(path: Path) -> list[str]:
    return [key for key, _ in problems_of(path)]


def with_snmp(tmp_path: Path, snmp: dict[str, Any]) -> Path:
    return write_doc(tmp_path, minimal(devices=[{"name": "router", "address": "192.0.2.1", "snmp": snmp}]))


# --- valid files -----------------------------------------------------------------------------------


def test_documented_example_loads(tmp_path: Path) -> None:
    config = agent_config.parse(write(tmp_path, DOC_EXAMPLE))  # its /etc/hatang files do not exist here
    assert isinstance(config, AgentConfig)
    assert config.agent_id == "xa-dai-dinh"
    assert config.site.labels() == (
        ("commune", "Đại Đình"), ("district", "Tam Đảo"), ("province", "Vĩnh Phúc"))
    assert config.mqtt.url == "mqtts://127.0.0.1:8883"
    assert config.mqtt.password_file == Path("/etc/hatang/mqtt-password")
    assert config.buffer.path == Path("/var/lib/hatang/buffer")
    assert config.buffer.max_bytes == 268435456
    assert [d.name for d in config.devices] == ["core-switch", "router"]
    switch, router = config.devices
    assert switch.snmp.version == "2c"
    assert switch.snmp.community == "public"
    assert switch.profiles == ["system", "interfaces"]
    assert switch.interval == 60
    assert router.snmp.version == "3"
    assert router.snmp.auth_protocol == "SHA256"
    assert router.snmp.priv_protocol == "AES"
    assert router.snmp.priv_password_file == Path("/etc/hatang/snmp-priv")


def test_defaults_apply_to_a_minimal_config(tmp_path: Path) -> None:
    config = agent_config.load(write_doc(tmp_path, minimal()))
    device = config.devices[0]
    assert device.port == 161
    assert device.interval == 60.0
    assert device.profiles == ["auto"] and device.auto_profiles  # chosen by the device
    assert device.snmp.version == "2c"
    assert config.site.district is None
    assert config.site.labels() == (("province", "Vĩnh Phúc"),)
    assert config.buffer.max_bytes == 256 * 1024 * 1024
    assert config.buffer.max_age == 7 * 86400
    assert config.max_concurrent_polls == 32
    assert config.profiles_dir is None


def test_config_without_devices_loads(tmp_path: Path) -> None:
    doc = minimal()
    del doc["devices"]
    assert agent_config.load(write_doc(tmp_path, doc)).devices == []


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc" / "hatang"
    (conf_dir / "profiles").mkdir(parents=True)
    doc = minimal(profiles_dir="profiles")
    doc["buffer"] = {"path": "../../var/buffer"}
    doc["mqtt"].update(url="mqtts://broker.example:8883", password_file="secrets/mqtt", ca_file="ca.pem",
                       cert_file="agent.crt", key_file="agent.key")
    doc["devices"] = [
        {"name": "sw1", "address": "192.0.2.1", "snmp": {"community_file": "community"}},
        {"name": "r1", "address": "192.0.2.2",
         "snmp": {"version": 3, "username": "hatang", "auth_protocol": "SHA", "auth_password_file": "auth",
                  "priv_protocol": "AES", "priv_password_file": "/abs/priv"}},
    ]
    path = conf_dir / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    config = agent_config.parse(path)
    base = conf_dir.resolve()
    assert config.buffer.path == base / "../../var/buffer"
    assert config.profiles_dir == base / "profiles"
    assert config.mqtt.password_file == base / "secrets/mqtt"
    assert config.mqtt.ca_file == base / "ca.pem"
    assert config.mqtt.cert_file == base / "agent.crt"
    assert config.mqtt.key_file == base / "agent.key"
    assert config.devices[0].snmp.community_file == base / "community"
    assert config.devices[1].snmp.auth_password_file == base / "auth"
    assert config.devices[1].snmp.priv_password_file == Path("/abs/priv")


def test_relative_paths_do_not_depend_on_the_working_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_doc(tmp_path, minimal())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert agent_config.load(Path("..") / "agent.yaml").buffer.path == tmp_path.resolve() / "buffer"


@pytest.mark.parametrize(("given", "expected"), [("2c", "2c"), (1, "1"), (3, "3"), ("1", "1"), ("3", "3")])
def test_snmp_version_accepts_text_and_integers(tmp_path: Path, given: Any, expected: str) -> None:
    snmp: dict[str, Any] = {"version": given}
    if expected == "3":
        snmp["username"] = "hatang"
    assert agent_config.load(with_snmp(tmp_path, snmp)).devices[0].snmp.version == expected


def test_snmp_version_written_bare_in_yaml_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        agent_id: xa
        site: {province: "Vĩnh Phúc"}
        mqtt: {url: "mqtts://broker:8883"}
        buffer: {path: /var/lib/hatang}
        devices:
          - {name: a, address: 192.0.2.1, snmp: {version: 1}}
          - {name: b, address: 192.0.2.2, snmp: {version: 2c}}
          - {name: c, address: 192.0.2.3, snmp: {version: 3, username: u}}
        """)
    assert [d.snmp.version for d in agent_config.load(path).devices] == ["1", "2c", "3"]


@pytest.mark.parametrize("version", [2, "2", "v2c", "4", True])
def test_snmp_version_rejects_unknown_versions(tmp_path: Path, version: Any) -> None:
    assert keys_of(with_snmp(tmp_path, {"version": version})) == ["devices[0].snmp.version"]


# --- error messages --------------------------------------------------------------------------------


def test_misspelt_key_names_file_key_path_and_suggests_the_right_key(tmp_path: Path) -> None:
    doc = minimal()
    doc["devices"] = [
        {"name": "sw1", "address": "192.0.2.1"},
        {"name": "sw2", "address": "192.0.2.2", "snmp": {"comunity": "public"}},
    ]
    path = write_doc(tmp_path, doc)
    problems = problems_of(path)
    assert len(problems) == 1
    key, message = problems[0]
    assert key == "devices[1].snmp.comunity"
    assert "unknown key" in message
    assert "did you mean 'community'?" in message
    with pytest.raises(ConfigError) as info:
        agent_config.load(path)
    assert str(info.value).startswith(
        f"{path}: devices[1].snmp.comunity: unknown key; did you mean 'community'?")


def test_unknown_top_level_key_is_reported_with_a_hint(tmp_path: Path) -> None:
    problems = problems_of(write_doc(tmp_path, minimal(devcies=[])))
    assert problems[0][0] == "devcies"
    assert "did you mean 'devices'?" in problems[0][1]


def test_unknown_key_with_no_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    doc = minimal()
    doc["site"]["xyzzy"] = 1
    [(key, message)] = problems_of(write_doc(tmp_path, doc))
    assert key == "site.xyzzy"
    assert "remove it or check the spelling" in message
    assert "commune, district, province" in message


def test_missing_required_keys_are_each_reported(tmp_path: Path) -> None:
    doc = minimal()
    del doc["agent_id"]
    del doc["mqtt"]["url"]
    doc["devices"] = [{"name": "sw1"}]
    problems = dict(problems_of(write_doc(tmp_path, doc)))
    assert set(problems) == {"agent_id", "mqtt.url", "devices[0].address"}
    assert all(message == "required key is missing; add it" for message in problems.values())


def test_empty_file_reports_every_required_top_level_key(tmp_path: Path) -> None:
    assert sorted(keys_of(write(tmp_path, ""))) == ["agent_id", "buffer", "mqtt", "site"]


def test_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    [(key, message)] = problems_of(write(tmp_path, "- agent_id: xa\n"))
    assert key == ""
    assert "YAML mapping" in message


def test_bad_yaml_syntax_reports_the_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        agent_id: xa
        site:
          province: "Vĩnh Phúc
        mqtt: {url: "mqtt://broker"}
        """)
    [(key, message)] = problems_of(path)
    assert key == ""
    assert message.startswith("invalid YAML: line ")
    assert "column" in message


def test_bad_yaml_indentation_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agent_id: xa\nsite:\n  province: a\n district: b\nmqtt: {}\n")
    [(_, message)] = problems_of(path)
    assert "invalid YAML: line 4," in message


def test_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    [(key, message)] = problems_of(path)
    assert key == ""
    assert "file not found" in message


def test_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"agent_id: xa\nsite: {province: V\xecnh Ph\xfac}\n")  # Latin-1, not UTF-8
    [(_, message)] = problems_of(path)
    assert "cannot read the file" in message


def test_duplicate_device_names_are_rejected(tmp_path: Path) -> None:
    doc = minimal()
    doc["devices"] = [{"name": "sw1", "address": "192.0.2.1"}, {"name": "sw2", "address": "192.0.2.2"},
                      {"name": "sw1", "address": "192.0.2.3"}]
    [(key, message)] = problems_of(write_doc(tmp_path, doc))
    assert key == "devices"
    assert "'sw1' is used twice" in message


def test_unknown_profile_name_is_reported_with_its_position(tmp_path: Path) -> None:
    doc = minimal()
    doc["devices"] = [{"name": "sw1", "address": "192.0.2.1"},
                      {"name": "sw2", "address": "192.0.2.2", "profiles": ["system", "interfaecs"]}]
    [(key, message)] = problems_of(write_doc(tmp_path, doc))
    assert key == "devices[1].profiles[1]"
    assert "unknown profile 'interfaecs'" in message
    assert "interfaces" in message and "system" in message


def test_profile_from_profiles_dir_is_known(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ups.yaml").write_text(textwrap.dedent("""\
        name: ups
        scalars:
          - {name: hatang_ups_battery_charge, type: gauge, oid: 1.3.6.1.2.1.33.1.2.4.0, help: "Charge."}
        """), encoding="utf-8")
    doc = minimal(profiles_dir="profiles")
    doc["devices"][0]["profiles"] = ["system", "ups"]
    assert agent_config.load(write_doc(tmp_path, doc)).devices[0].profiles == ["system", "ups"]


def test_missing_profiles_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile directory not found"):
        agent_config.load(write_doc(tmp_path, minimal(profiles_dir="no-such-dir")))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"agent_id": "Xa-Dai-Dinh"}, "agent_id"),
        ({"agent_id": "xã"}, "agent_id"),
        ({"site": {"province": ""}}, "site.province"),
        ({"mqtt": {"url": "tcp://broker:1883"}}, "mqtt.url"),
        ({"mqtt": {"url": "mqtt://broker:1883/path"}}, "mqtt.url"),
        ({"mqtt": {"url": "mqtt://broker", "keepalive": 1}}, "mqtt.keepalive"),
        ({"buffer": {"path": "b", "max_bytes": 1000}}, "buffer.max_bytes"),
        ({"buffer": {"path": "b", "max_age": 0}}, "buffer.max_age"),
        ({"max_concurrent_polls": 0}, "max_concurrent_polls"),
        ({"log_level": "verbose"}, "log_level"),
        ({"devices": [{"name": "core switch", "address": "192.0.2.1"}]}, "devices[0].name"),
        ({"devices": [{"name": "sw", "address": ""}]}, "devices[0].address"),
        ({"devices": [{"name": "sw", "address": "a", "port": 70000}]}, "devices[0].port"),
        ({"devices": [{"name": "sw", "address": "a", "interval": 0.5}]}, "devices[0].interval"),
        ({"devices": [{"name": "sw", "address": "a", "profiles": []}]}, "devices[0].profiles"),
        ({"devices": [{"name": "sw", "address": "a", "snmp": {"timeout": 0}}]}, "devices[0].snmp.timeout"),
        ({"devices": [{"name": "sw", "address": "a", "snmp": {"retries": 9}}]}, "devices[0].snmp.retries"),
    ],
)
def test_invalid_values_are_reported_at_their_key_path(
    tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    assert keys_of(write_doc(tmp_path, minimal(**change))) == [key]


# --- SNMP credentials ------------------------------------------------------------------------------


def test_snmpv3_requires_username(tmp_path: Path) -> None:
    [(key, message)] = problems_of(with_snmp(tmp_path, {"version": 3, "auth_protocol": "SHA",
                                                        "auth_password": "secret123"}))
    assert key == "devices[0].snmp"
    assert "SNMPv3 needs username" in message


def test_snmpv3_rejects_privacy_without_authentication(tmp_path: Path) -> None:
    [(key, message)] = problems_of(with_snmp(tmp_path, {"version": 3, "username": "u", "priv_protocol": "AES",
                                                        "priv_password": "secret123"}))
    assert key == "devices[0].snmp"
    assert "priv_protocol needs auth_protocol" in message


@pytest.mark.parametrize("kind", ["auth", "priv"])
def test_snmpv3_protocol_needs_a_password_or_password_file(tmp_path: Path, kind: str) -> None:
    snmp: dict[str, Any] = {"version": 3, "username": "u", "auth_protocol": "SHA", "priv_protocol": "AES",
                            "auth_password": "a-secret", "priv_password": "p-secret"}
    del snmp[f"{kind}_password"]
    [(key, message)] = problems_of(with_snmp(tmp_path, snmp))
    assert key == "devices[0].snmp"
    assert f"{kind}_password or {kind}_password_file" in message


@pytest.mark.parametrize("auth", ["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"])
@pytest.mark.parametrize("priv", ["DES", "AES", "AES192", "AES256"])
def test_snmpv3_accepts_every_documented_protocol(tmp_path: Path, auth: str, priv: str) -> None:
    snmp = agent_config.load(with_snmp(tmp_path, {
        "version": 3, "username": "hatang", "auth_protocol": auth, "auth_password": "auth-secret",
        "priv_protocol": priv, "priv_password": "priv-secret"})).devices[0].snmp
    assert (snmp.auth_protocol, snmp.priv_protocol) == (auth, priv)


@pytest.mark.parametrize(("key", "value"), [("auth_protocol", "SHA1"), ("auth_protocol", "sha256"),
                                            ("priv_protocol", "3DES"), ("priv_protocol", "aes")])
def test_snmpv3_rejects_unknown_protocol_names(tmp_path: Path, key: str, value: str) -> None:
    snmp = {"version": 3, "username": "u", "auth_protocol": "SHA", "auth_password": "x" * 8,
            "priv_protocol": "AES", "priv_password": "y" * 8, key: value}
    [(where, message)] = problems_of(with_snmp(tmp_path, snmp))
    assert where == f"devices[0].snmp.{key}"
    assert "SHA256" in message or "AES256" in message


def test_snmpv3_auth_only_and_no_auth_are_accepted(tmp_path: Path) -> None:
    config = agent_config.parse(write_doc(tmp_path, minimal(devices=[
        {"name": "a", "address": "x", "snmp": {"version": 3, "username": "u"}},
        {"name": "b", "address": "x", "snmp": {"version": 3, "username": "u", "auth_protocol": "MD5",
                                               "auth_password_file": "/run/secrets/auth"}},
    ])))
    assert config.devices[1].snmp.priv_protocol is None
    assert config.devices[1].snmp.auth_password_file == Path("/run/secrets/auth")


def test_snmpv3_password_files_resolve_relative_to_the_config(tmp_path: Path) -> None:
    snmp = agent_config.parse(with_snmp(tmp_path, {
        "version": "3", "username": "u", "auth_protocol": "SHA512", "auth_password_file": "secrets/auth",
        "priv_protocol": "AES256", "priv_password_file": "secrets/priv"})).devices[0].snmp
    assert snmp.auth_password_file == tmp_path.resolve() / "secrets/auth"
    assert snmp.priv_password_file == tmp_path.resolve() / "secrets/priv"
    assert snmp.auth_password is None


def test_community_and_community_file_together_are_rejected(tmp_path: Path) -> None:
    [(key, message)] = problems_of(with_snmp(tmp_path, {"community": "public", "community_file": "c"}))
    assert key == "devices[0].snmp"
    assert "either community or community_file" in message


@pytest.mark.parametrize("version", [1, "2c"])
def test_username_on_snmpv1_or_v2c_is_rejected(tmp_path: Path, version: Any) -> None:
    [(key, message)] = problems_of(with_snmp(tmp_path, {"version": version, "username": "u"}))
    assert key == "devices[0].snmp"
    assert "username is for SNMPv3" in message


def test_read_secret_returns_the_first_line_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("  mật-khẩu  \nsecond line\n", encoding="utf-8")
    assert read_secret(secret, tmp_path / "agent.yaml", "mqtt.password_file") == "mật-khẩu"
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    assert read_secret(empty, tmp_path / "agent.yaml", "mqtt.password_file") == ""


def test_read_secret_names_config_and_key_when_the_file_is_missing(tmp_path: Path) -> None:
    config_path = tmp_path / "agent.yaml"
    with pytest.raises(ConfigError) as info:
        read_secret(tmp_path / "missing", config_path, "devices[0].snmp.community_file")
    assert info.value.path == str(config_path)
    [(key, message)] = info.value.problems
    assert key == "devices[0].snmp.community_file"
    assert "cannot read secret file" in message

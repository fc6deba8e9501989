"""The fleet's file formats without a broker: Mosquitto password entries (checked against one that
mosquitto_passwd 2.0.11 wrote), atomic rewrites that keep other entries and the file's mode, and the
enrolment bundle's agent.yaml."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path
from typing import Any

from hatang import cli_fleet
from hatang.fleet import enrolment, mosquitto_passwords
from hatang.yaml_loading import parse_yaml
from tests.support.hatang import run_subcommand

# Written by `mosquitto_passwd -c -b pw alice secret` (Mosquitto 2.0.11, Debian 12).
MOSQUITTO_ENTRY = ("$7$101$kb7GF7OUAc+nvx5h$CIF55Ef3Dv/qgeYFvqn0PqXwx3EezSzHypGjAWxomCP5gWw+VpUvhlaj"
                   "lrKbxNikfcKeruXaResA7Lls2zY6yg==")


def test_an_entry_mosquitto_passwd_wrote_verifies() -> None:
    assert mosquitto_passwords.verify(MOSQUITTO_ENTRY, "secret")
    assert not mosquitto_passwords.verify(MOSQUITTO_ENTRY, "secreT")


def test_our_entries_have_mosquittos_shape_and_verify() -> None:
    encoded = mosquitto_passwords.hash_password("mật khẩu")
    _, seven, iterations, salt, digest = encoded.split("$")
    assert (seven, iterations, len(salt), len(digest)) == ("7", "101", 16, 88)
    assert mosquitto_passwords.verify(encoded, "mật khẩu")
    assert encoded != mosquitto_passwords.hash_password("mật khẩu")  # a fresh salt each time
    assert not mosquitto_passwords.verify("$6$abc$def", "x")
    assert not mosquitto_passwords.verify("$7$101$!!$!!", "x")


def test_rewrites_keep_other_entries_and_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"# comment\nalice:{MOSQUITTO_ENTRY}\n")
    path.chmod(0o640)
    mosquitto_passwords.set_password(path, "xa-a", "p1")
    mosquitto_passwords.set_password(path, "xa-a", "p2")
    entries = mosquitto_passwords.read(path)
    assert list(entries) == ["alice", "xa-a"] and entries["alice"] == MOSQUITTO_ENTRY
    assert mosquitto_passwords.verify(entries["xa-a"], "p2")
    assert not mosquitto_passwords.verify(entries["xa-a"], "p1")
    assert path.stat().st_mode & 0o777 == 0o640
    assert mosquitto_passwords.remove_user(path, "xa-a") and not mosquitto_passwords.remove_user(path, "xa-a")
    assert list(mosquitto_passwords.read(path)) == ["alice"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no temporary file left


def test_the_bundle_holds_what_the_installer_expects() -> None:
    e = enrolment.Enrolment(agent_id="xa-a", site={"province": "Vĩnh Phúc", "commune": "Đại Đình"},
                            broker_url="mqtts://mqtt.example:8883", password="pw", ca_certificate_pem=b"CA",
                            client_certificate_pem=b"CERT", client_key_pem=b"KEY",
                            snmp_secrets=(("snmp-community", b"c\n"),))
    with tarfile.open(fileobj=io.BytesIO(enrolment.bundle(e))) as tar:
        members = {m.name: (m.mode, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                   for m in tar.getmembers()}
    assert members["secrets"][0] == 0o700
    assert members["secrets/mqtt-password"] == (0o600, b"pw\n")
    assert members["secrets/client.key"] == (0o600, b"KEY")
    assert members["secrets/snmp-community"] == (0o600, b"c\n")
    assert members["ca.crt"][1] == b"CA" and members["client.crt"][1] == b"CERT"
    text = enrolment.agent_yaml(e)
    assert 'site: {province: "Vĩnh Phúc", commune: "Đại Đình"}' in text
    assert "password_file: ${CREDENTIALS_DIRECTORY}/mqtt-password" in text
    assert "key_file: ${CREDENTIALS_DIRECTORY}/client.key" in text
    assert "community_file: ${CREDENTIALS_DIRECTORY}/snmp-community" in text
    # the commented example works when uncommented (block style: "${" is not plain inside a {...} mapping)
    example = text.replace("#  - name", "  - name").replace("#    ", "    ").replace("devices: []\n", "")
    example = example.replace("# The office's devices", "devices:\n# The office's devices")
    loaded = load_yaml_text(example)
    assert loaded["devices"][0]["snmp"]["community_file"] == "${CREDENTIALS_DIRECTORY}/snmp-community"
    # the same agent without SNMP secrets or with other ones: the same agent.yaml (a rotation must not
    # make the office's edited copy look outdated)
    assert enrolment.agent_yaml(dataclasses.replace(e, snmp_secrets=())) == text


def load_yaml_text(text: str) -> dict[str, Any]:
    loaded = parse_yaml(text, Path("agent.yaml"))
    assert isinstance(loaded, dict)
    return loaded


def _bundle_yaml(fleet: Path, agent_id: str) -> str:
    with tarfile.open(fleet / "enrol" / f"{agent_id}.tar.gz") as tar:
        member = tar.extractfile("agent.yaml")
        assert member is not None
        return member.read().decode()


def test_rotation_changes_credentials_only(tmp_path: Path) -> None:
    """A rotated bundle's agent.yaml is the one the office has (same buffer path, same text), so the
    installer keeps the office's edited copy without a warning; only the password differs."""
    fleet = tmp_path / "fleet"
    common = ("--fleet", str(fleet))
    assert run_subcommand(cli_fleet.add_parser, "fleet", "init", "--broker-url", "mqtts://broker:8883",
                          "--reload-command", "", *common) == 0
    assert run_subcommand(cli_fleet.add_parser, "fleet", "add-agent", "xa-a", "--site", "province=P",
                          "--buffer-path", "/srv/hatang-buffer", "--no-reload", *common) == 0
    first = _bundle_yaml(fleet, "xa-a")
    entry = mosquitto_passwords.read(fleet / "broker" / "mosquitto.passwd")["xa-a"]
    assert run_subcommand(cli_fleet.add_parser, "fleet", "rotate-agent", "xa-a", "--no-reload", *common) == 0
    assert _bundle_yaml(fleet, "xa-a") == first and '"/srv/hatang-buffer"' in first
    assert mosquitto_passwords.read(fleet / "broker" / "mosquitto.passwd")["xa-a"] != entry

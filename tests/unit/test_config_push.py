"""The centre's side of remote configuration (hatang/fleet/config_push.py): a file is checked before it
is signed (the agent's own rules: managed keys only, no inline secret, a valid configuration with known
profiles), the next revision comes from the broker's retained message and the kept history, and what it
signs is accepted by an agent trusting the centre's key.
"""

from __future__ import annotations

import functools
import json
import re
import stat
from pathlib import Path

import pytest

import agent.profiles
from agent.config import load
from agent.remote_config import RemoteConfig
from hatang import signing
from hatang.config_errors import ConfigError
from hatang.fleet.config_push import check_file, history_revision, keep, retained_revision, sign
from hatang.signing import Signer
from wire.remote_config import decode_body, decode_envelope

AGENT = "xa-dai-dinh"

GOOD = """\
devices:
  - name: core-switch
    address: 10.20.0.1
    profiles: [system, interfaces]
    interval: 30
    snmp: {community_file: secrets/core-switch.community}
  - name: ups
    address: 10.20.0.9
    snmp: {version: 3, username: nms, auth_protocol: SHA, auth_password_file: secrets/nms.auth}
probes:
  - {name: gateway, address: 10.20.0.254, method: tcp}
max_concurrent_polls: 8
"""

_read_profiles = functools.cache(agent.profiles.load_profiles)


@pytest.fixture(autouse=True)
def _profiles_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every config check reads the built-in profiles for their names (about 0.1 s): read them once."""
    monkeypatch.setattr(agent.profiles, "load_profiles",
                        lambda user_dir=None: dict(_read_profiles(user_dir)))


@pytest.fixture
def centre(tmp_path: Path) -> tuple[Signer, Path]:
    """The centre's key pair: the signer, and the public key file (centre.pub)."""
    private, public = signing.generate()
    (tmp_path / "centre.key").write_bytes(private)
    (tmp_path / "centre.pub").write_bytes(public)
    return signing.load_signer(tmp_path / "centre.key"), tmp_path / "centre.pub"


def config_file(tmp_path: Path, text: str, name: str = "xa-dai-dinh.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        check_file(path, AGENT)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value


def keys_of(error: ConfigError) -> list[str]:
    return [key for key, _ in error.problems]


# -------------------------------------------------------------------------------------------- check_file


def test_a_good_file_passes_and_is_returned_as_given(tmp_path: Path) -> None:
    data = check_file(config_file(tmp_path, GOOD), AGENT)
    assert [d["name"] for d in data["devices"]] == ["core-switch", "ups"]
    assert data["max_concurrent_polls"] == 8
    assert set(data) == {"devices", "probes", "max_concurrent_polls"}  # no stand-in key added


def test_secret_files_the_centre_does_not_have_are_left_to_the_office(tmp_path: Path) -> None:
    """The secret files are provisioned at the office: the centre checks the keys, not the files."""
    assert not (tmp_path / "secrets").exists()
    check_file(config_file(tmp_path, GOOD), AGENT)


def test_a_secret_file_in_the_systemd_credentials_directory_passes_at_the_centre(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/remote-config.md: ``${CREDENTIALS_DIRECTORY}`` works as in agent.yaml. systemd sets it for the
    agent at the office; the centre, where ``fleet push`` runs, has none."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = GOOD.replace("secrets/core-switch.community", '"${CREDENTIALS_DIRECTORY}/core-switch.community"')
    data = check_file(config_file(tmp_path, text), AGENT)
    assert data["devices"][0]["snmp"]["community_file"] == "${CREDENTIALS_DIRECTORY}/core-switch.community"


@pytest.mark.parametrize("line", ["agent_id: xa-khac", "mqtt: {url: 'mqtt://10.0.0.1'}",
                                  "buffer: {path: /var/lib/hatang}", "remote_config: {public_key_file: a}",
                                  "site: {province: X}", "log_level: debug"])
def test_a_file_with_a_local_key_is_refused_naming_the_key(tmp_path: Path, line: str) -> None:
    key = line.split(":")[0]
    error = refused(config_file(tmp_path, GOOD + line + "\n"))
    assert keys_of(error) == [key]
    assert f"only the office's agent.yaml sets {key!r}" in str(error)


@pytest.mark.parametrize(("text", "key"), [
    (GOOD.replace("{community_file: secrets/core-switch.community}", "{community: public}"),
     "devices[0].snmp.community"),
    (GOOD.replace("auth_password_file: secrets/nms.auth", "auth_password: secret-pass"),
     "devices[1].snmp.auth_password"),
    (GOOD + "traps: {communities: [public]}\n", "traps.communities"),
    (GOOD + "traps:\n  communities: []\n  users:\n    - {username: nms, auth_protocol: SHA, "
            "auth_password: secret-pass}\n", "traps.users[0].auth_password"),
], ids=["community", "auth_password", "trap communities", "trap user password"])
def test_a_file_with_an_inline_secret_is_refused_naming_the_key_path(tmp_path: Path, text: str,
                                                                      key: str) -> None:
    error = refused(config_file(tmp_path, text))
    assert keys_of(error) == [key]
    assert "a secret may not travel" in str(error)


def test_a_file_with_a_schema_error_is_refused_naming_the_key_path(tmp_path: Path) -> None:
    error = refused(config_file(tmp_path, GOOD.replace("interval: 30", "interval: -1")))
    assert keys_of(error) == ["devices[0].interval"]


def test_a_file_with_an_unknown_profile_is_refused_naming_the_key_path(tmp_path: Path) -> None:
    error = refused(config_file(tmp_path, GOOD.replace("[system, interfaces]", "[system, interfacez]")))
    assert keys_of(error) == ["devices[0].profiles[1]"]
    assert "unknown profile 'interfacez'" in str(error)


def test_a_file_with_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    refused(config_file(tmp_path, GOOD + "max_concurrent_polls: 9\n"))


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}\n", "- devices\n", "just text\n"],
                         ids=["empty", "only a comment", "an empty mapping", "a list", "a string"])
def test_a_file_that_is_not_a_mapping_of_managed_keys_is_refused(tmp_path: Path, text: str) -> None:
    error = refused(config_file(tmp_path, text))
    assert "devices" in str(error)  # names the keys the centre manages


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    refused(tmp_path / "no-such.yaml")


# ------------------------------------------------------------------------------------------- revisions


@pytest.mark.parametrize("payload", [b"", b"junk", b"\xff\xfe", b"{}", b'{"v":1,"type":"config"}',
                                     json.dumps({"v": 1, "type": "status"}).encode()])
def test_the_revision_of_a_retained_payload_that_is_not_a_configuration_is_0(payload: bytes) -> None:
    assert retained_revision(payload) == 0


def test_the_revision_of_a_retained_signed_payload_is_its_revision(centre: tuple[Signer, Path]) -> None:
    signer, _ = centre
    assert retained_revision(sign({"max_concurrent_polls": 3}, AGENT, 41, signer).payload) == 41


def test_history_revision_is_0_without_a_history(tmp_path: Path) -> None:
    assert history_revision(tmp_path / "history", AGENT) == 0


def test_history_revision_is_the_highest_revision_kept(tmp_path: Path, centre: tuple[Signer, Path]) -> None:
    signer, _ = centre
    source = config_file(tmp_path, GOOD)
    history = tmp_path / "history"
    for revision in (1, 3):
        keep(history, AGENT, source, sign({"max_concurrent_polls": revision}, AGENT, revision, signer))
    (history / AGENT / "notes.signed").write_text("not a revision")

    assert history_revision(history, AGENT) == 3
    assert history_revision(history, "xa-khac") == 0  # per agent


def test_keep_stores_the_file_as_given_and_the_message_as_published(tmp_path: Path,
                                                                    centre: tuple[Signer, Path]) -> None:
    signer, _ = centre
    source = config_file(tmp_path, GOOD)
    signed = sign(check_file(source, AGENT), AGENT, 12, signer)

    kept = keep(tmp_path / "history", AGENT, source, signed)

    assert kept == tmp_path / "history" / AGENT / "000012.yaml"
    assert kept.read_text() == GOOD
    assert kept.with_suffix(".signed").read_bytes() == signed.payload
    for path in (kept, kept.with_suffix(".signed")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------------------------------------------- sign


def test_sign_makes_a_document_for_the_agent_with_the_revision(centre: tuple[Signer, Path]) -> None:
    signer, public = centre
    signed = sign({"max_concurrent_polls": 3}, AGENT, 5, signer)
    envelope = decode_envelope(signed.payload)
    document = decode_body(envelope.body)
    assert signed.revision == 5
    assert (document.agent, document.revision, document.config) == (AGENT, 5, {"max_concurrent_polls": 3})
    assert envelope.key_id == signer.key_id
    (verifier,) = signing.load_verifiers(public)
    assert verifier.verify(envelope.body, envelope.signature)


def test_what_sign_makes_of_a_checked_file_is_accepted_by_the_agent(tmp_path: Path,
                                                                    centre: tuple[Signer, Path]) -> None:
    _, public = centre
    office = tmp_path / "office"
    (office / "secrets").mkdir(parents=True)
    (office / "buffer").mkdir()
    for name in ("core-switch.community", "nms.auth"):
        (office / "secrets" / name).write_text("s3cret-pass\n")
        (office / "secrets" / name).chmod(0o600)
    (office / "agent.yaml").write_text(
        f"agent_id: {AGENT}\nsite: {{province: Vĩnh Phúc}}\nmqtt: {{url: 'mqtt://127.0.0.1:1'}}\n"
        f"buffer: {{path: buffer}}\nremote_config: {{public_key_file: {public}}}\n")
    remote = RemoteConfig(load(office / "agent.yaml"), office / "agent.yaml")
    signer = signing.load_signer(public.with_name("centre.key"))

    signed = sign(check_file(config_file(tmp_path, GOOD), AGENT), AGENT, 1, signer)
    accepted = remote.check(signed.payload)

    assert accepted is not None
    assert accepted.revision == 1
    assert [d.name for d in accepted.config.devices] == ["core-switch", "ups"]
    assert accepted.config.devices[0].snmp.community_file == office / "secrets" / "core-switch.community"
    assert [p.name for p in accepted.config.probes] == ["gateway"]


def test_the_documented_example_passes_the_centres_checks(tmp_path: Path) -> None:
    """The configuration shown in docs/remote-config.md and docs/vi/cau-hinh-tu-trung-tam.md is one
    `hatang fleet push` accepts (a flow mapping with an unquoted ${...} would not even be YAML)."""
    root = Path(__file__).resolve().parents[2]
    for doc in ("docs/remote-config.md", "docs/vi/cau-hinh-tu-trung-tam.md"):
        text = (root / doc).read_text(encoding="utf-8")
        examples = [block for block in re.findall(r"```yaml\n(.*?)```", text, re.S) if "devices:" in block]
        assert examples, doc
        for number, example in enumerate(examples):
            path = tmp_path / f"{Path(doc).stem}-{number}.yaml"
            path.write_text(example, encoding="utf-8")
            assert check_file(path, "xa-dai-dinh")["devices"], doc

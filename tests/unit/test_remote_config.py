"""Configuration from the centre, the agent's side (agent/remote_config.py, wire/remote_config.py,
hatang/signing.py): a signed document is accepted only when every check passes, merged over the office's
agent.yaml; each refusal has its reason, its revision and an error a person can act on; a retained
message delivered again is neither applied nor counted twice; the last good configuration is kept on disk
and checked again at start. No sockets, no processes: the documents are signed here with fresh keys.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.profiles
from agent.config import AgentConfig, load, parse
from agent.remote_config import STATE_NAME, Accepted, Rejected, RemoteConfig, document_problems
from hatang import signing
from hatang.configfile import ConfigError
from hatang.signing import Signer, SigningKeyError
from wire.codec import decode_status, encode_status
from wire.messages import AgentStatus, ConfigRejection
from wire.remote_config import (
    MANAGED_KEYS,
    MAX_CONFIG_BYTES,
    REJECT_REASONS,
    ConfigDocument,
    Envelope,
    decode_body,
    decode_envelope,
    encode_body,
    encode_envelope,
)

AGENT = "xa-dai-dinh"
ISSUED = 1795550709.5

# ------------------------------------------------------------------------------------------- harness

_read_profiles = functools.cache(agent.profiles.load_profiles)


@pytest.fixture(autouse=True)
def _profiles_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every config check reads the built-in profiles for their names (about 0.1 s): read them once."""
    monkeypatch.setattr(agent.profiles, "load_profiles",
                        lambda user_dir=None: dict(_read_profiles(user_dir)))



def new_signer() -> tuple[Signer, bytes]:
    """A fresh key pair: the signer and its public key (PEM)."""
    private, public = signing.generate()
    key = serialization.load_pem_private_key(private, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return Signer(key), public


AGENT_YAML = """\
agent_id: xa-dai-dinh
site: {province: Vĩnh Phúc, commune: Đại Đình}
mqtt: {url: "mqtt://127.0.0.1:1", keepalive: 45}
buffer: {path: buffer}
max_concurrent_polls: 7
self_metrics_interval: 30
remote_config: {public_key_file: keys/centre.pub}
devices:
  - {name: old-router, address: 127.0.0.1, snmp: {community: local-only}}
"""


@dataclass
class Office:
    """An office: agent.yaml (in ``directory``), the centre's key it trusts, its secret files."""

    directory: Path
    path: Path
    signer: Signer
    config: AgentConfig

    def remote(self) -> RemoteConfig:
        return RemoteConfig(self.config, self.path)

    def payload(self, config: dict[str, Any], revision: int = 1, *, agent: str = AGENT,
                signer: Signer | None = None) -> bytes:
        return signed(encode_body(ConfigDocument(agent, revision, ISSUED, config)), signer or self.signer)

    def secret(self, relative: str, text: str = "s3cret\n") -> Path:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
        return path


def signed(body: bytes, signer: Signer, *, key_id: str | None = None) -> bytes:
    return encode_envelope(Envelope(key_id or signer.key_id, body, signer.sign(body)))


def make_office(directory: Path, agent_yaml: str = AGENT_YAML, public_keys: bytes | None = None) -> Office:
    signer, public = new_signer()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir()
    (directory / "keys" / "centre.pub").write_bytes(public if public_keys is None else public_keys)
    (directory / "buffer").mkdir()
    path = directory / "agent.yaml"
    path.write_text(agent_yaml)
    return Office(directory, path, signer, load(path))


@pytest.fixture
def office(tmp_path: Path) -> Office:
    return make_office(tmp_path / "office")


def device(name: str = "sw1", **snmp: Any) -> dict[str, Any]:
    return {"name": name, "address": "127.0.0.1", "profiles": ["system", "interfaces"], "interval": 30,
            "snmp": snmp or {"community_file": "secrets/sw1.community"}}


def refusal(remote: RemoteConfig, payload: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        remote.check(payload)
    assert info.value.reason in REJECT_REASONS
    return info.value


def accepted(remote: RemoteConfig, payload: bytes) -> Accepted:
    result = remote.check(payload)
    assert result is not None
    return result


def envelope_doc(payload: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(payload)
    return doc


def with_envelope(payload: bytes, **changes: Any) -> bytes:
    return json.dumps({**envelope_doc(payload), **changes}).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------- accepted, merged


def test_a_document_signed_by_the_trusted_key_is_accepted_with_the_local_settings_kept(
    office: Office,
) -> None:
    office.secret("secrets/sw1.community")
    payload = office.payload({"devices": [device("sw1"), device("sw2")]}, revision=1)

    result = accepted(office.remote(), payload)

    assert (result.revision, result.payload) == (1, payload)
    config = result.config
    assert [d.name for d in config.devices] == ["sw1", "sw2"]  # the pushed devices replace agent.yaml's
    assert config.agent_id == AGENT
    assert (config.mqtt.url, config.mqtt.keepalive) == ("mqtt://127.0.0.1:1", 45)
    assert config.buffer.path == office.directory / "buffer"
    assert config.site.labels() == (("commune", "Đại Đình"), ("province", "Vĩnh Phúc"))
    assert config.remote_config is not None
    assert config.remote_config.public_key_file == office.directory / "keys" / "centre.pub"


def test_a_managed_key_the_document_leaves_out_keeps_the_value_of_agent_yaml(office: Office) -> None:
    probe = {"name": "gateway", "address": "127.0.0.1", "method": "tcp", "tcp_port": 1}
    config = accepted(office.remote(), office.payload({"probes": [probe], "max_concurrent_polls": 3})).config

    assert [p.name for p in config.probes] == ["gateway"]
    assert config.max_concurrent_polls == 3  # given: replaced
    assert [d.name for d in config.devices] == ["old-router"]  # left out: agent.yaml's
    assert config.devices[0].snmp.community == "local-only"
    assert config.self_metrics_interval == 30


def test_relative_secret_files_in_the_document_resolve_against_the_directory_of_agent_yaml(
    office: Office, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = office.secret("secrets/sw1.community")
    monkeypatch.chdir(tmp_path)  # not the office directory: a path resolved against the cwd would not exist
    config = accepted(office.remote(), office.payload({"devices": [device("sw1")]})).config

    assert config.devices[0].snmp.community_file == secret


def test_a_secret_file_in_the_systemd_credentials_directory_is_found_there(
    office: Office, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "sw1.community").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    pushed = device("sw1", community_file="${CREDENTIALS_DIRECTORY}/sw1.community")
    config = accepted(office.remote(), office.payload({"devices": [pushed]})).config
    assert config.devices[0].snmp.community_file == credentials / "sw1.community"


def test_a_document_may_set_every_managed_key(office: Office) -> None:
    office.secret("secrets/sw1.community")
    office.secret("secrets/traps.communities", "one\ntwo\n")
    full = {"devices": [device("sw1")], "probes": [], "critical_interfaces": ["uplink"],
            "traps": {"listen": "127.0.0.1:1162", "communities": [],
                      "communities_file": "secrets/traps.communities"},
            "max_concurrent_polls": 2, "self_metrics_interval": 10}
    assert set(full) == set(MANAGED_KEYS)

    config = accepted(office.remote(), office.payload(full)).config

    assert config.traps is not None
    assert config.traps.communities_file == office.directory / "secrets" / "traps.communities"
    assert (config.max_concurrent_polls, config.self_metrics_interval) == (2, 10)
    assert config.devices[0].critical_interfaces == ["uplink"]


# ------------------------------------------------------------------------------------------ malformed


def _signed_body(body: bytes) -> Callable[[Office], bytes]:
    return lambda office: signed(body, office.signer)


def _document(**fields: Any) -> Callable[[Office], bytes]:
    doc = {"agent": AGENT, "revision": 1, "issued_at": ISSUED, "config": {}, **fields}
    return _signed_body(json.dumps(doc).encode())


MALFORMED: dict[str, tuple[Callable[[Office], bytes], str]] = {
    "not JSON": (lambda office: b'{"v": 1, "type": "config", ', "is not JSON"),
    "not UTF-8": (lambda office: b"\xff\xfe{}", "is not JSON"),
    "a JSON list": (lambda office: b"[]", '"type": "config"'),
    "another message type": (lambda office: with_envelope(office.payload({}), type="status"),
                             '"type": "config"'),
    "another wire version": (lambda office: with_envelope(office.payload({}), v=2), "wire version 2"),
    "body not a string": (lambda office: with_envelope(office.payload({}), body=5), "must be strings"),
    "no signature": (lambda office: json.dumps({k: v for k, v in envelope_doc(office.payload({})).items()
                                                if k != "sig"}).encode(), "must be strings"),
    "body not base64": (lambda office: with_envelope(office.payload({}), body="bm90!!!"), "not base64"),
    "signature not base64": (lambda office: with_envelope(office.payload({}), sig="%%%%"), "not base64"),
    "signature of 63 bytes": (lambda office: with_envelope(office.payload({}), sig=b64(bytes(63))),
                              "63 bytes, not 64"),
    "signature of 65 bytes": (lambda office: with_envelope(office.payload({}), sig=b64(bytes(65))),
                              "65 bytes, not 64"),
    "body larger than the limit": (lambda office: signed(b" " * (MAX_CONFIG_BYTES + 1), office.signer),
                                   "more than"),
    "body not JSON": (_signed_body(b"devices: []"), "the document is not JSON"),
    "body not an object": (_signed_body(b"[1, 2]"), "not a JSON object"),
    "body with NaN": (
        _signed_body(b'{"agent": "xa-dai-dinh", "revision": 1, "issued_at": NaN, "config": {}}'),
        "non-finite"),
    "revision 0": (_document(revision=0), "revision must be a positive integer"),
    "revision -1": (_document(revision=-1), "revision must be a positive integer"),
    "revision true": (_document(revision=True), "revision must be a positive integer"),
    "revision 1.5": (_document(revision=1.5), "revision must be a positive integer"),
    "revision as text": (_document(revision="2"), "revision must be a positive integer"),
    "revision 2**53": (_document(revision=2**53), "revision must be a positive integer"),
    "no revision": (_document(revision=None), "revision must be a positive integer"),
    "agent not an agent id": (_document(agent="Xã Đại Đình"), "agent must be an agent id"),
    "issued_at as text": (_document(issued_at="today"), "issued_at must be a number"),
    "config a list": (_document(config=[]), "config must be an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_payload_is_refused_as_malformed_with_what_is_wrong(office: Office, case: str) -> None:
    make, problem = MALFORMED[case]
    rejected = refusal(office.remote(), make(office))
    assert (rejected.reason, rejected.revision) == ("malformed", 0)
    assert problem in rejected.error


# ------------------------------------------------------------------------------------- who signed it


def test_a_document_signed_by_another_key_pair_is_refused_as_unknown_key(office: Office) -> None:
    other, _ = new_signer()
    remote = office.remote()
    rejected = refusal(remote, office.payload({}, revision=3, signer=other))
    assert (rejected.reason, rejected.revision) == ("unknown_key", 3)  # the revision it claims
    assert other.key_id in rejected.error
    assert "remote_config.public_key_file" in rejected.error
    assert office.signer.key_id in rejected.error  # the keys it trusts, to compare with centre.pub


def test_a_document_with_one_byte_of_its_body_changed_is_refused_as_bad_signature(office: Office) -> None:
    envelope = decode_envelope(office.payload({"max_concurrent_polls": 3}, revision=2))
    altered = envelope.body.replace(b'"max_concurrent_polls":3', b'"max_concurrent_polls":9')
    assert altered != envelope.body and len(altered) == len(envelope.body)

    rejected = refusal(office.remote(), encode_envelope(Envelope(envelope.key_id, altered,
                                                                  envelope.signature)))
    assert (rejected.reason, rejected.revision) == ("bad_signature", 2)  # the revision it claims
    assert office.signer.key_id in rejected.error


def test_a_bad_signature_over_a_body_that_is_no_document_claims_revision_0(office: Office) -> None:
    other, _ = new_signer()
    rejected = refusal(office.remote(), signed(b"[]", other, key_id=office.signer.key_id))
    assert (rejected.reason, rejected.revision) == ("bad_signature", 0)


def test_the_signature_of_another_document_is_refused_as_bad_signature(office: Office) -> None:
    first = decode_envelope(office.payload({"max_concurrent_polls": 3}, revision=1))
    second = decode_envelope(office.payload({"max_concurrent_polls": 4}, revision=2))
    swapped = encode_envelope(Envelope(second.key_id, second.body, first.signature))
    rejected = refusal(office.remote(), swapped)
    assert rejected.reason == "bad_signature"


def test_a_document_signed_by_another_key_under_the_trusted_key_id_is_refused_as_bad_signature(
    office: Office,
) -> None:
    other, _ = new_signer()
    body = encode_body(ConfigDocument(AGENT, 1, ISSUED, {}))
    rejected = refusal(office.remote(), signed(body, other, key_id=office.signer.key_id))
    assert rejected.reason == "bad_signature"


def test_a_document_made_for_another_agent_is_refused_as_wrong_agent(office: Office) -> None:
    rejected = refusal(office.remote(), office.payload({}, revision=4, agent="xa-tam-dao"))
    assert (rejected.reason, rejected.revision) == ("wrong_agent", 4)
    assert "'xa-tam-dao'" in rejected.error and f"'{AGENT}'" in rejected.error


# ------------------------------------------------------------------------------------------ revisions


def test_a_revision_lower_than_the_one_applied_is_refused_as_older_revision(office: Office) -> None:
    remote = office.remote()
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=3)))

    rejected = refusal(remote, office.payload({"max_concurrent_polls": 2}, revision=2))

    assert (rejected.reason, rejected.revision) == ("older_revision", 2)
    assert "revision 2 is not newer than revision 3" in rejected.error
    assert remote.revision == 3


def test_the_applied_revision_with_another_body_is_refused_as_older_revision(office: Office) -> None:
    remote = office.remote()
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=3)))

    rejected = refusal(remote, office.payload({"max_concurrent_polls": 4}, revision=3))

    assert (rejected.reason, rejected.revision) == ("older_revision", 3)


def test_a_revision_newer_than_the_one_applied_is_accepted(office: Office) -> None:
    remote = office.remote()
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=3)))
    result = accepted(remote, office.payload({"max_concurrent_polls": 4}, revision=10))
    assert (result.revision, result.config.max_concurrent_polls) == (10, 4)


# ----------------------------------------------------------------------- what a document may not hold


@pytest.mark.parametrize("key", ["agent_id", "site", "mqtt", "buffer", "remote_config", "status",
                                 "profiles_dir", "log_level"])
def test_a_local_key_in_the_document_is_refused_naming_the_key(office: Office, key: str) -> None:
    values: dict[str, Any] = {"agent_id": AGENT, "site": {"province": "X"}, "mqtt": {"url": "mqtt://x"},
                              "buffer": {"path": "/tmp"}, "remote_config": {"public_key_file": "x.pub"},
                              "status": {"listen": 9109}, "profiles_dir": "p", "log_level": "debug"}
    rejected = refusal(office.remote(), office.payload({"devices": [], key: values[key]}, revision=5))
    assert (rejected.reason, rejected.revision) == ("local_key", 5)
    assert rejected.error.startswith(f"{key}: only the office's agent.yaml sets {key!r}")


INLINE_SECRETS: dict[str, dict[str, Any]] = {
    "devices[0].snmp.community": {"devices": [device("sw1", community="public")]},
    "devices[1].snmp.auth_password": {"devices": [
        device("sw1"),
        device("sw2", version="3", username="nms", auth_protocol="SHA", auth_password="x" * 8)]},
    "devices[0].snmp.priv_password": {"devices": [device(
        "sw1", version="3", username="nms", auth_protocol="SHA", auth_password_file="a",
        priv_protocol="AES", priv_password="y" * 8)]},
    "traps.communities": {"traps": {"communities": ["public"]}},
    "traps.users[0].auth_password": {"traps": {"communities": [], "users": [
        {"username": "nms", "auth_protocol": "SHA", "auth_password": "x" * 8}]}},
    "traps.users[1].priv_password": {"traps": {"communities": [], "users": [
        {"username": "a"}, {"username": "b", "auth_protocol": "SHA", "auth_password_file": "a",
                            "priv_protocol": "AES", "priv_password": "y" * 8}]}},
}


@pytest.mark.parametrize("key", sorted(INLINE_SECRETS))
def test_an_inline_secret_is_refused_naming_its_key_path(office: Office, key: str) -> None:
    rejected = refusal(office.remote(), office.payload(INLINE_SECRETS[key], revision=2))
    assert (rejected.reason, rejected.revision) == ("inline_secret", 2)
    assert rejected.error.startswith(f"{key}: a secret may not travel")
    assert "_file" in rejected.error  # the fix: a file provisioned at the office


def test_an_empty_inline_community_is_refused_too(office: Office) -> None:
    rejected = refusal(office.remote(), office.payload({"devices": [device("sw1", community="")]}))
    assert rejected.reason == "inline_secret"


def test_document_problems_lists_every_problem_with_its_reason_and_key_path() -> None:
    problems = document_problems({"mqtt": {}, "devices": [device("sw1", community="public")],
                                  "traps": {"communities": ["x"]}})
    assert [(reason, key) for reason, key, _ in problems] == [
        ("local_key", "mqtt"), ("inline_secret", "devices[0].snmp.community"),
        ("inline_secret", "traps.communities")]


def test_document_problems_finds_nothing_in_a_document_with_secret_files_only() -> None:
    assert document_problems({"devices": [device("sw1"), "not a device"], "traps": {"communities": []},
                              "probes": []}) == []


# ------------------------------------------------------------------------------------- schema, files


def test_a_schema_error_is_refused_naming_the_key_path(office: Office) -> None:
    office.secret("secrets/sw1.community")
    bad = {**device("sw1"), "interval": -1}
    rejected = refusal(office.remote(), office.payload({"devices": [device("sw0"), bad]}, revision=6))
    assert (rejected.reason, rejected.revision) == ("schema", 6)
    assert "devices[1].interval" in rejected.error


def test_a_device_with_an_unknown_profile_is_refused_as_schema(office: Office) -> None:
    office.secret("secrets/sw1.community")
    unknown = {**device("sw1"), "profiles": ["system", "no-such-profile"]}
    rejected = refusal(office.remote(), office.payload({"devices": [unknown]}))
    assert rejected.reason == "schema"
    assert "devices[0].profiles[1]" in rejected.error and "'no-such-profile'" in rejected.error


def test_a_probe_named_like_a_device_is_refused_as_schema_not_files(office: Office) -> None:
    """A problem of the whole document (no key path) is a schema error: the office's files are fine."""
    office.secret("secrets/sw1.community")
    probe = {"name": "sw1", "address": "127.0.0.1", "method": "tcp"}
    rejected = refusal(office.remote(), office.payload({"devices": [device("sw1")], "probes": [probe]}))
    assert "probe name 'sw1' is already used" in rejected.error
    assert rejected.reason == "schema"


def test_a_managed_key_of_the_wrong_type_is_refused_as_schema(office: Office) -> None:
    rejected = refusal(office.remote(), office.payload({"devices": {"sw1": {}}}))
    assert rejected.reason == "schema" and "devices" in rejected.error


def test_a_secret_file_the_office_does_not_have_is_refused_as_files(office: Office) -> None:
    rejected = refusal(office.remote(), office.payload({"devices": [device("sw1")]}, revision=8))
    assert (rejected.reason, rejected.revision) == ("files", 8)
    assert "devices[0].snmp.community_file" in rejected.error
    assert str(office.directory / "secrets" / "sw1.community") in rejected.error


# ---------------------------------------------------------------------- delivered again, counted once


def test_the_applied_payload_delivered_again_is_not_applied_again(office: Office) -> None:
    remote = office.remote()
    payload = office.payload({"max_concurrent_polls": 3}, revision=2)
    remote.applied(accepted(remote, payload))
    assert remote.check(payload) is None
    assert remote.revision == 2


def test_a_refused_payload_delivered_again_is_counted_once(office: Office) -> None:
    remote = office.remote()
    payload = office.payload({"devices": [{**device("sw1"), "interval": -1}]}, revision=2)
    first = refusal(remote, payload)
    assert remote.rejected(payload, first) is True
    assert remote.rejected(payload, refusal(remote, payload)) is False
    assert remote.rejections == {"schema": 1}
    assert remote.rejection is not None
    assert (remote.rejection.revision, remote.rejection.reason) == (2, "schema")
    assert "devices[0].interval" in remote.rejection.error


def test_a_different_refused_payload_is_counted_by_its_reason(office: Office) -> None:
    remote = office.remote()
    payloads = [office.payload({"devices": [{**device("sw1"), "interval": -1}]}, revision=2),
                office.payload({"devices": [{**device("sw1"), "interval": 0}]}, revision=3),
                office.payload({}, revision=4, agent="xa-tam-dao")]
    assert [remote.rejected(p, refusal(remote, p)) for p in payloads] == [True, True, True]
    assert remote.rejections == {"schema": 2, "wrong_agent": 1}
    assert remote.rejection is not None
    assert (remote.rejection.revision, remote.rejection.reason) == (4, "wrong_agent")


def test_the_rejection_is_cleared_when_a_newer_revision_is_applied(office: Office) -> None:
    remote = office.remote()
    bad = office.payload({"mqtt": {}}, revision=2)
    remote.rejected(bad, refusal(remote, bad))
    assert remote.rejection is not None and remote.rejection.reason == "local_key"

    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=3)))

    assert remote.rejection is None
    assert remote.rejections == {"local_key": 1}  # the count since the start stays


def test_the_rejection_of_a_newer_revision_stays_while_an_older_one_is_applied(office: Office) -> None:
    remote = office.remote()
    bad = office.payload({"mqtt": {}}, revision=5)
    remote.rejected(bad, refusal(remote, bad))
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=4)))
    assert remote.rejection is not None and remote.rejection.revision == 5


def test_a_long_error_is_cut_to_1000_characters_in_the_rejection(office: Office) -> None:
    remote = office.remote()
    payload = office.payload({})
    remote.rejected(payload, Rejected("schema", "x" * 5000, 1))
    assert remote.rejection is not None and len(remote.rejection.error) == 1000


# ----------------------------------------------------------------------------- the last good on disk


def test_applied_keeps_the_payload_on_disk_and_a_new_agent_starts_from_it(office: Office) -> None:
    remote = office.remote()
    payload = office.payload({"max_concurrent_polls": 3}, revision=4)
    remote.applied(accepted(remote, payload))

    state = office.directory / "buffer" / STATE_NAME
    assert remote.state_file == state
    assert state.read_bytes() == payload
    assert sorted(p.name for p in state.parent.iterdir()) == [STATE_NAME]  # no temporary file left

    restarted = office.remote()
    kept = restarted.last_good()
    assert kept is not None
    assert (kept.revision, kept.payload, kept.config.max_concurrent_polls) == (4, payload, 3)
    restarted.applied(kept, save=False)
    assert restarted.check(payload) is None
    assert restarted.rejection is None and restarted.rejections == {}


def test_the_state_file_is_replaced_whole_or_not_at_all(
    office: Office, monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = office.remote()
    first = office.payload({"max_concurrent_polls": 3}, revision=1)
    remote.applied(accepted(remote, first))

    def refuse(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    second = office.payload({"max_concurrent_polls": 4}, revision=2)
    remote.applied(accepted(remote, second))  # applied all the same; only the copy on disk is missing

    assert remote.revision == 2
    assert remote.state_file.read_bytes() == first


def test_applied_without_save_leaves_the_state_file_alone(office: Office) -> None:
    remote = office.remote()
    remote.applied(accepted(remote, office.payload({}, revision=1)), save=False)
    assert not remote.state_file.exists()


def test_a_state_file_setting_names_where_the_last_good_configuration_is_kept(tmp_path: Path) -> None:
    yaml = AGENT_YAML.replace("keys/centre.pub}", "keys/centre.pub, state_file: kept/last.json}")
    office = make_office(tmp_path / "office", yaml)
    (office.directory / "kept").mkdir()
    remote = office.remote()
    payload = office.payload({}, revision=1)
    remote.applied(accepted(remote, payload))
    assert (office.directory / "kept" / "last.json").read_bytes() == payload
    assert not (office.directory / "buffer" / STATE_NAME).exists()


def test_without_a_state_file_last_good_is_none(office: Office) -> None:
    remote = office.remote()
    assert remote.last_good() is None
    assert remote.rejection is None and remote.rejections == {}


def _edit_one_byte_of_the_body(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b'"body":"') + len(b'"body":"') + 10
    data[at] = ord("B") if data[at] != ord("B") else ord("C")
    path.write_bytes(bytes(data))


def test_a_state_file_edited_on_disk_is_refused_and_recorded(office: Office) -> None:
    remote = office.remote()
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=4)))
    _edit_one_byte_of_the_body(remote.state_file)

    restarted = office.remote()
    assert restarted.last_good() is None
    assert restarted.rejections == {"bad_signature": 1}
    assert restarted.rejection is not None and restarted.rejection.reason == "bad_signature"
    assert restarted.revision == 0


def test_a_state_file_signed_by_another_key_is_refused_and_recorded(office: Office) -> None:
    other, _ = new_signer()
    remote = office.remote()
    remote.state_file.write_bytes(office.payload({"max_concurrent_polls": 3}, revision=4, signer=other))

    assert remote.last_good() is None
    assert remote.rejections == {"unknown_key": 1}
    assert remote.rejection is not None and remote.rejection.reason == "unknown_key"


def test_a_state_file_that_is_not_a_configuration_is_refused_as_malformed(office: Office) -> None:
    remote = office.remote()
    remote.state_file.write_bytes(b"")
    assert remote.last_good() is None
    assert remote.rejections == {"malformed": 1}


# ------------------------------------------------------------------------------------ keys, rotation


def test_with_two_public_keys_documents_signed_by_either_are_accepted(tmp_path: Path) -> None:
    old, old_public = new_signer()
    new, new_public = new_signer()
    office = make_office(tmp_path / "office", public_keys=old_public + b"\n" + new_public)
    remote = office.remote()

    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 3}, revision=1, signer=old)))
    remote.applied(accepted(remote, office.payload({"max_concurrent_polls": 4}, revision=2, signer=new)))

    assert remote.revision == 2
    assert refusal(remote, office.payload({}, revision=3)).reason == "unknown_key"  # make_office's own key


def test_load_verifiers_reads_every_key_of_the_file_in_order(tmp_path: Path) -> None:
    signers = [new_signer() for _ in range(3)]
    path = tmp_path / "centre.pub"
    path.write_bytes(b"# the centre's keys\n" + b"".join(public for _, public in signers))
    verifiers = signing.load_verifiers(path)
    assert [v.key_id for v in verifiers] == [s.key_id for s, _ in signers]
    assert verifiers[0].verify(b"x", signers[0][0].sign(b"x"))
    assert not verifiers[1].verify(b"x", signers[0][0].sign(b"x"))


def test_key_id_is_16_hex_digits_shared_by_the_pair() -> None:
    signer, public = new_signer()
    key = serialization.load_pem_public_key(public)
    assert isinstance(key, Ed25519PublicKey)
    verifier = signing.Verifier(key)
    assert signer.key_id == verifier.key_id
    assert len(signer.key_id) == 16 and int(signer.key_id, 16) >= 0


def _ec_public_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "holds no PEM public key"),
    (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n", "holds no PEM public key"),
    (b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", "public key 1 cannot be read"),
], ids=["empty", "an SSH key", "a broken PEM block"])
def test_a_public_key_file_without_a_usable_key_is_refused(
    tmp_path: Path, content: bytes, problem: str,
) -> None:
    path = tmp_path / "centre.pub"
    path.write_bytes(content)
    with pytest.raises(SigningKeyError) as info:
        signing.load_verifiers(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_a_public_key_that_is_not_ed25519_is_refused_naming_its_place(tmp_path: Path) -> None:
    _, public = new_signer()
    path = tmp_path / "centre.pub"
    path.write_bytes(public + _ec_public_pem())
    with pytest.raises(SigningKeyError) as info:
        signing.load_verifiers(path)
    assert f"{path}: public key 2 is not an Ed25519 key" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a key\n"], ids=["empty", "no PEM"])
def test_an_agent_whose_public_key_file_holds_no_key_names_remote_config_public_key_file(
    tmp_path: Path, content: bytes,
) -> None:
    office = make_office(tmp_path / "office")
    (office.directory / "keys" / "centre.pub").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        office.remote()
    assert [key for key, _ in info.value.problems] == ["remote_config.public_key_file"]
    assert str(office.path) in str(info.value)


def test_an_agent_with_an_ec_public_key_names_remote_config_public_key_file(tmp_path: Path) -> None:
    office = make_office(tmp_path / "office", public_keys=_ec_public_pem())
    with pytest.raises(ConfigError) as info:
        office.remote()
    assert info.value.problems[0][0] == "remote_config.public_key_file"
    assert "not an Ed25519 key" in str(info.value)


def test_an_agent_whose_public_key_file_is_missing_names_remote_config_public_key_file(
    tmp_path: Path,
) -> None:
    office = make_office(tmp_path / "office")
    (office.directory / "keys" / "centre.pub").unlink()
    config = parse(office.path)  # the model alone: load() would refuse the missing file already
    with pytest.raises(ConfigError) as info:
        RemoteConfig(config, office.path)
    assert info.value.problems[0][0] == "remote_config.public_key_file"
    assert "cannot read" in str(info.value)


def test_load_signer_refuses_a_public_key_naming_keygen(tmp_path: Path) -> None:
    _, public = new_signer()
    path = tmp_path / "centre.key"
    path.write_bytes(public)
    with pytest.raises(SigningKeyError) as info:
        signing.load_signer(path)
    assert str(path) in str(info.value) and "hatang fleet keygen" in str(info.value)


def test_load_signer_reads_the_private_key_of_generate(tmp_path: Path) -> None:
    private, public = signing.generate()
    path = tmp_path / "centre.key"
    path.write_bytes(private)
    (tmp_path / "centre.pub").write_bytes(public)
    signer = signing.load_signer(path)
    (verifier,) = signing.load_verifiers(tmp_path / "centre.pub")
    assert verifier.verify(b"body", signer.sign(b"body"))


# ------------------------------------------------------------------------------------------- the wire


def test_an_envelope_and_its_document_round_trip() -> None:
    document = ConfigDocument(AGENT, 7, ISSUED, {"devices": [{"name": "Bộ chuyển mạch"}]})
    body = encode_body(document)
    envelope = Envelope("0123456789abcdef", body, bytes(range(64)))
    assert decode_envelope(encode_envelope(envelope)) == envelope
    assert decode_body(body) == document
    assert "Bộ chuyển mạch".encode() in body  # UTF-8, not \\u escapes


@settings(max_examples=50, deadline=None)
@given(revision=st.integers(0, 2**63 - 1), reason=st.sampled_from(REJECT_REASONS),
       error=st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
       ts=st.floats(min_value=1.6e9, max_value=4e9))
def test_a_status_with_a_config_rejection_round_trips(
    revision: int, reason: str, error: str, ts: float,
) -> None:
    status = AgentStatus(AGENT, "boot-1", True, 1795550700.0, "0.1.0", (("province", "Vĩnh Phúc"),),
                         ("sw1",), "7", config_rejected=ConfigRejection(revision, reason, error, ts))
    assert decode_status(encode_status(status)) == status


def test_a_status_without_a_config_rejection_leaves_the_field_out() -> None:
    payload = encode_status(AgentStatus(AGENT, "boot-1", True, 1795550700.0))
    assert "config_rejected" not in json.loads(payload)
    assert decode_status(payload).config_rejected is None

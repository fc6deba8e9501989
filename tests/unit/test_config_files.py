"""What a config names on disk, checked when it is loaded (``hatang check`` and at start): every
``*_file`` key (readable, not empty; secrets not readable by group or others: a warning), the agent's
buffer directory (creatable and writable, nothing left behind), and the MQTT username warning."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import config as agent_config
from agent.config import AgentConfig
from collector.config import CollectorConfig
from hatang import cli, configfile, signing
from hatang.configfile import ConfigError
from tests.support.services import unavailable

NOBODY = 65534

# Every *_file key an agent config can have, with a valid content for it.
AGENT_FILES = {
    "mqtt.password_file": "mat-khau\n",
    "mqtt.ca_file": "-----BEGIN CERTIFICATE-----\n",
    "mqtt.cert_file": "-----BEGIN CERTIFICATE-----\n",
    "mqtt.key_file": "-----BEGIN PRIVATE KEY-----\n",
    "devices[0].snmp.community_file": "cong-dong\n",
    "devices[1].snmp.auth_password_file": "auth-secret\n",
    "devices[1].snmp.priv_password_file": "priv-secret\n",
    "traps.communities_file": "bay-1\nbay-2\n",
    "traps.users[0].auth_password_file": "trap-auth\n",
    "traps.users[0].priv_password_file": "trap-priv\n",
    "remote_config.public_key_file": signing.generate()[1].decode(),
}
SECRETS = [key for key in AGENT_FILES if not key.endswith(("ca_file", "cert_file", "public_key_file"))]
# *_file keys the agent writes (they need not exist): checked by test_every_file_key_has_a_role
AGENT_OUTPUT_FILES = {"remote_config.state_file"}


def file_name(key: str) -> str:
    return key.replace("[", "-").replace("]", "").replace(".", "-")


def agent_doc(directory: Path) -> dict[str, Any]:
    """An agent config using every *_file key, each naming ``directory/<key>``."""
    f = {key: str(directory / file_name(key)) for key in AGENT_FILES}
    v3 = {"version": 3, "username": "hatang", "auth_protocol": "SHA256", "priv_protocol": "AES",
          "auth_password_file": f["devices[1].snmp.auth_password_file"],
          "priv_password_file": f["devices[1].snmp.priv_password_file"]}
    return {
        "agent_id": "xa-dai-dinh",
        "site": {"province": "Vĩnh Phúc"},
        "mqtt": {"url": "mqtts://broker.example:8883", "password_file": f["mqtt.password_file"],
                 "ca_file": f["mqtt.ca_file"], "cert_file": f["mqtt.cert_file"],
                 "key_file": f["mqtt.key_file"]},
        "buffer": {"path": str(directory / "buffer")},
        "devices": [
            {"name": "core-switch", "address": "192.0.2.1",
             "snmp": {"community_file": f["devices[0].snmp.community_file"]}},
            {"name": "router", "address": "192.0.2.2", "snmp": v3},
        ],
        "traps": {"listen": "127.0.0.1:1162", "communities_file": f["traps.communities_file"],
                  "users": [{"username": "bay", "auth_protocol": "SHA", "priv_protocol": "AES",
                             "auth_password_file": f["traps.users[0].auth_password_file"],
                             "priv_password_file": f["traps.users[0].priv_password_file"]}]},
        "remote_config": {"public_key_file": f["remote_config.public_key_file"]},
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory with agent.yaml naming every *_file, each present, mode 600 (secrets) or 644."""
    for key, content in AGENT_FILES.items():
        path = tmp_path / file_name(key)
        path.write_text(content, encoding="utf-8")
        path.chmod(0o600 if key in SECRETS else 0o644)
    write_config(tmp_path, agent_doc(tmp_path))
    return tmp_path


def write_config(directory: Path, doc: dict[str, Any]) -> Path:
    path = directory / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def load(directory: Path) -> tuple[AgentConfig, list[configfile.ConfigWarning]]:
    return agent_config.load_with_warnings(directory / "agent.yaml")


def problems(directory: Path) -> list[tuple[str, str]]:
    path = directory / "agent.yaml"
    with pytest.raises(ConfigError) as info:
        agent_config.load(path)
    assert info.value.path == str(path)
    return info.value.problems


def warned(warnings: list[configfile.ConfigWarning]) -> dict[str, str]:
    return {w.key: w.message for w in warnings}


# --- the guard: every *_file key is known and checked ---------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def file_keys(model: type, prefix: str = "") -> Iterator[str]:
    for name, (annotation, _) in configfile.model_fields(model).items():
        annotation = _unwrap(annotation)
        if typing.get_origin(annotation) is list:
            annotation, name = _unwrap(typing.get_args(annotation)[0]), f"{name}[0]"
        if name.endswith("_file"):
            yield prefix + name
        elif configfile.is_model(annotation):
            yield from file_keys(annotation, f"{prefix}{name}.")


def test_every_file_key_of_the_agent_config_is_tested() -> None:
    assert {k.replace("devices[0].snmp.auth", "devices[1].snmp.auth").replace(
        "devices[0].snmp.priv", "devices[1].snmp.priv") for k in file_keys(AgentConfig)} == {
            *AGENT_FILES, *AGENT_OUTPUT_FILES}


@pytest.mark.parametrize("model", [AgentConfig, CollectorConfig])
def test_every_file_key_has_a_role(model: type) -> None:
    roles = {key: configfile.file_role(key.rpartition(".")[2]) for key in file_keys(model)}
    assert roles and None not in roles.values()
    assert all(role != "output" for key, role in roles.items() if not key.endswith("state_file")), roles
    assert all(role == "output" for key, role in roles.items() if key.endswith("state_file")), roles
    assert all(role in ("secret", "secret_lines") for key, role in roles.items()
               if "password" in key or "communit" in key or (key.endswith("key_file")
               and not key.endswith("public_key_file"))), roles
    assert all(role == "input" for key, role in roles.items() if key.endswith("public_key_file")), roles


def test_all_files_present_and_private_load_without_warnings(site: Path) -> None:
    config, warnings = load(site)
    assert warnings == []
    assert config.mqtt.password_file == site / "mqtt-password_file"


def test_parse_does_not_look_at_files(tmp_path: Path) -> None:
    write_config(tmp_path, agent_doc(tmp_path / "nowhere"))
    assert agent_config.parse(tmp_path / "agent.yaml").devices[1].snmp.version == "3"


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(AGENT_FILES))
def test_a_missing_file_is_an_error_naming_key_and_path(site: Path, key: str) -> None:
    missing = site / file_name(key)
    missing.unlink()
    [(where, message)] = problems(site)
    assert where == key
    assert message.startswith(f"file not found: {missing}; create it")
    assert "or correct the path" in message


def test_every_missing_file_is_reported_at_once_with_the_buffer(site: Path) -> None:
    for key in AGENT_FILES:
        (site / file_name(key)).unlink()
    (site / "buffer").write_text("not a directory", encoding="utf-8")
    assert [key for key, _ in problems(site)] == [*AGENT_FILES, "buffer.path"]


def test_a_relative_secret_path_is_reported_resolved(site: Path) -> None:
    doc = agent_doc(site)
    doc["mqtt"]["password_file"] = "secrets/mqtt"
    write_config(site, doc)
    [(key, message)] = problems(site)
    assert key == "mqtt.password_file"
    assert f"file not found: {site.resolve() / 'secrets/mqtt'};" in message


@pytest.mark.parametrize("key", list(AGENT_FILES))
def test_an_empty_file_is_an_error(site: Path, key: str) -> None:
    (site / file_name(key)).write_text("", encoding="utf-8")
    [(where, message)] = problems(site)
    assert where == key
    assert f"{site / file_name(key)} is empty" in message


@pytest.mark.parametrize(("key", "content"), [("mqtt.password_file", "\nsecond-line\n"),
                                              ("devices[0].snmp.community_file", "   \n"),
                                              ("traps.communities_file", "\n  \n\n")])
def test_a_secret_file_without_a_secret_where_hatang_reads_it_is_an_error(
        site: Path, key: str, content: str) -> None:
    (site / file_name(key)).write_text(content, encoding="utf-8")
    [(where, message)] = problems(site)
    assert where == key and "is empty" in message


def test_a_directory_is_not_a_secret_file(site: Path) -> None:
    path = site / file_name("mqtt.password_file")
    path.unlink()
    path.mkdir()
    [(key, message)] = problems(site)
    assert key == "mqtt.password_file"
    assert message == f"{path} is a directory; give the path of a file"


def test_a_dangling_symlink_is_reported_with_its_target(site: Path) -> None:
    path = site / file_name("mqtt.password_file")
    path.unlink()
    path.symlink_to(site / "gone")
    [(key, message)] = problems(site)
    assert key == "mqtt.password_file"
    assert f"file not found: {path} (a symlink to {site / 'gone'})" in message


def test_a_secret_file_that_is_not_utf8_is_an_error(site: Path) -> None:
    (site / file_name("mqtt.password_file")).write_bytes(b"m\xe2t-kh\xe2u\n")
    [(key, message)] = problems(site)
    assert key == "mqtt.password_file" and "not UTF-8" in message


# --- warnings: secrets others can read ---------------------------------------------------------------------


@pytest.mark.parametrize("key", SECRETS)
@pytest.mark.parametrize(("mode", "who"), [(0o644, "its group and every user"), (0o640, "its group"),
                                           (0o604, "every user")])
def test_a_secret_readable_by_others_is_a_warning(site: Path, key: str, mode: int, who: str) -> None:
    path = site / file_name(key)
    path.chmod(mode)
    _, warnings = load(site)
    assert [(w.path, w.key) for w in warnings] == [(str(site / "agent.yaml"), key)]
    assert warnings[0].message == (f"secret file {path} is readable by {who} (mode {mode:04o}): run "
                                   f"chmod 600 {path} (owned by the user hatang runs as)")
    assert str(warnings[0]) == f"{site / 'agent.yaml'}: {key}: {warnings[0].message}"


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o620, 0o700])
def test_a_secret_only_its_owner_can_read_is_fine(site: Path, mode: int) -> None:
    (site / file_name("mqtt.password_file")).chmod(mode)
    assert load(site)[1] == []


@pytest.mark.parametrize("key", ["mqtt.ca_file", "mqtt.cert_file"])
def test_public_certificates_may_be_world_readable(site: Path, key: str) -> None:
    (site / file_name(key)).chmod(0o644)
    assert load(site)[1] == []


def test_the_mode_of_a_symlinked_secret_is_its_targets(site: Path) -> None:
    """A symlink's own mode is always 777; what others can read is the target."""
    target = site / "vault" / "mqtt"
    target.parent.mkdir()
    target.write_text("mat-khau\n", encoding="utf-8")
    target.chmod(0o600)
    link = site / file_name("mqtt.password_file")
    link.unlink()
    link.symlink_to(target)
    assert load(site)[1] == []
    target.chmod(0o644)
    [warning] = load(site)[1]
    assert warning.key == "mqtt.password_file"
    assert (f"secret file {link} (a symlink to {target}) is readable by its group and every user"
            in warning.message)
    assert f"run chmod 600 {target} " in warning.message


def test_load_is_load_with_warnings_without_the_warnings(site: Path) -> None:
    (site / file_name("mqtt.password_file")).chmod(0o644)
    assert agent_config.load(site / "agent.yaml") == load(site)[0]


# --- the MQTT username --------------------------------------------------------------------------------------


def test_an_mqtt_username_other_than_the_agent_id_is_a_warning(site: Path) -> None:
    doc = agent_doc(site)
    doc["mqtt"]["username"] = "hatang-agent"
    write_config(site, doc)
    _, warnings = load(site)
    message = warned(warnings)["mqtt.username"]
    assert message.startswith("'hatang-agent' differs from agent_id 'xa-dai-dinh': the shipped broker ACL")
    assert "hatang/v1/agents/<username>/#" in message
    assert "remove mqtt.username (it defaults to agent_id) or set it to 'xa-dai-dinh'" in message


@pytest.mark.parametrize("username", [None, "xa-dai-dinh"])
def test_no_warning_when_the_username_is_the_agent_id(site: Path, username: str | None) -> None:
    doc = agent_doc(site)
    if username is not None:
        doc["mqtt"]["username"] = username
    write_config(site, doc)
    assert load(site)[1] == []


# --- the buffer directory -----------------------------------------------------------------------------------


def test_a_missing_buffer_directory_is_fine_and_not_created(site: Path) -> None:
    doc = agent_doc(site)
    doc["buffer"]["path"] = str(site / "var" / "lib" / "buffer")
    write_config(site, doc)
    before = sorted(site.iterdir())
    load(site)
    assert sorted(site.iterdir()) == before


def test_checking_an_existing_buffer_directory_leaves_nothing_in_it(site: Path) -> None:
    (site / "buffer").mkdir()
    load(site)
    assert list((site / "buffer").iterdir()) == []


def test_a_file_where_the_buffer_directory_should_be_is_an_error(site: Path) -> None:
    """Was: FileExistsError traceback at start."""
    (site / "buffer").write_text("", encoding="utf-8")
    [(key, message)] = problems(site)
    assert key == "buffer.path"
    assert message == (f"{site / 'buffer'} (the agent's disk queue) is a file, not a directory: remove or "
                       "rename that file, or set buffer.path to another directory")


def test_a_file_where_a_parent_of_the_buffer_should_be_is_an_error(site: Path) -> None:
    (site / "var").write_text("", encoding="utf-8")
    doc = agent_doc(site)
    doc["buffer"]["path"] = str(site / "var" / "lib" / "buffer")
    write_config(site, doc)
    [(key, message)] = problems(site)
    assert key == "buffer.path"
    assert message.startswith(f"cannot create {site / 'var/lib/buffer'} (the agent's disk queue): "
                              f"{site / 'var'} is a file, not a directory")


def test_a_queue_database_that_is_a_directory_is_an_error(site: Path) -> None:
    (site / "buffer" / "queue.sqlite3").mkdir(parents=True)
    [(key, message)] = problems(site)
    assert key == "buffer.path"
    assert f"cannot write the agent's disk queue {site / 'buffer' / 'queue.sqlite3'}" in message


# --- as a user without rights (tests run as root in CI: the check runs as nobody there) -------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="hatang-config-files-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def check_as_unprivileged(path: Path) -> tuple[int, str]:
    """``agent_config.load(path)`` as an unprivileged user (a forked child that drops root, if root):
    (0, "OK") or (2, the error text)."""
    if sys.platform != "linux":
        unavailable("forks and drops privileges the Linux way: needs Linux")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                agent_config.load(path)
                text, code = "OK", 0
            except ConfigError as exc:
                text, code = str(exc), 2
            os.write(write, text.encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def minimal_config(directory: Path, buffer: Path, **mqtt: Any) -> Path:
    return write_config(directory, {"agent_id": "xa", "site": {"province": "P"},
                                    "mqtt": {"url": "mqtt://127.0.0.1:1883", **mqtt},
                                    "buffer": {"path": str(buffer)}})


def test_the_unprivileged_check_passes_a_good_config(shared_dir: Path) -> None:
    buffer = shared_dir / "buffer"
    buffer.mkdir(mode=0o777)
    buffer.chmod(0o777)
    assert check_as_unprivileged(minimal_config(shared_dir, buffer)) == (0, "OK")


def test_a_read_only_buffer_directory_is_an_error_naming_it(shared_dir: Path) -> None:
    """Was: "unable to open database file" at start, without the path."""
    buffer = shared_dir / "buffer"
    buffer.mkdir()
    buffer.chmod(0o555)
    code, text = check_as_unprivileged(minimal_config(shared_dir, buffer))
    assert code == 2, text
    assert text.startswith(
        f"{shared_dir / 'agent.yaml'}: buffer.path: cannot write in {buffer} (the agent's disk queue) "
        "(Permission denied); make it writable by the user hatang runs as (chown), or set buffer.path to "
        "another directory")


def test_a_buffer_that_cannot_be_created_is_an_error_naming_it(shared_dir: Path) -> None:
    parent = shared_dir / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    code, text = check_as_unprivileged(minimal_config(shared_dir, parent / "buffer"))
    assert code == 2
    assert (f"buffer.path: cannot create {parent / 'buffer'} (the agent's disk queue): cannot create a "
            f"directory in {parent} (Permission denied)") in text


@pytest.mark.parametrize("name", ["queue.sqlite3", "queue.sqlite3-wal", "queue.lock"])
def test_a_queue_file_the_agent_cannot_write_is_an_error(shared_dir: Path, name: str) -> None:
    """E.g. a queue once created by an agent run as root, now run as the hatang user."""
    buffer = shared_dir / "buffer"
    buffer.mkdir()
    buffer.chmod(0o777)
    queue = buffer / name
    queue.write_bytes(b"")
    queue.chmod(0o444)
    code, text = check_as_unprivileged(minimal_config(shared_dir, buffer))
    assert code == 2
    assert f"buffer.path: cannot write the agent's disk queue {queue} (Permission denied)" in text


def test_an_unreadable_secret_is_an_error(shared_dir: Path) -> None:
    buffer = shared_dir / "buffer"
    buffer.mkdir()
    buffer.chmod(0o777)
    secret = shared_dir / "mqtt-password"
    secret.write_text("mat-khau\n", encoding="utf-8")
    secret.chmod(0o600 if os.geteuid() == 0 else 0o000)  # root owns it: nobody cannot read it
    code, text = check_as_unprivileged(minimal_config(shared_dir, buffer, password_file=str(secret)))
    assert code == 2
    assert (f"mqtt.password_file: cannot read {secret}: Permission denied; make it readable by the user "
            "hatang runs as") in text


# --- the collector and the command ---------------------------------------------------------------------


def collector(tmp_path: Path, **mqtt: Any) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({"mqtt": {"url": "mqtt://127.0.0.1:1883", **mqtt}}), encoding="utf-8")
    return path


def test_the_collectors_files_are_checked(tmp_path: Path) -> None:
    secret = tmp_path / "collector-password"
    with pytest.raises(ConfigError) as info:
        cli.load_collector(collector(tmp_path, password_file="collector-password"))
    assert info.value.problems == [("mqtt.password_file", (
        f"file not found: {secret}; create it with the secret on its first line (chmod 600) or correct the "
        "path (relative paths are relative to the config file's directory)"))]
    secret.write_text("mat-khau\n", encoding="utf-8")
    secret.chmod(0o640)
    _, warnings = cli.load_collector(collector(tmp_path, password_file="collector-password"))
    assert [w.key for w in warnings] == ["mqtt.password_file"]
    secret.chmod(0o600)
    assert cli.load_collector(collector(tmp_path, password_file="collector-password"))[1] == []


def test_check_prints_warnings_on_stderr_and_exits_0(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / file_name("traps.communities_file")).chmod(0o644)
    assert cli.main(["check", "-c", str(site / "agent.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out == (f"{site / 'agent.yaml'}: OK: agent config for 'xa-dai-dinh' with 2 device(s); configured "
                   "from the centre (no configuration kept yet) (1 warning(s) on stderr)\n")
    assert err.startswith(f"WARNING: {site / 'agent.yaml'}: traps.communities_file: secret file ")
    assert err.count("\n") == 1


def test_check_refuses_a_public_key_file_without_a_key(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/remote-config.md: the centre's public key is loaded at check time, not first at the agent's
    first configuration."""
    (site / file_name("remote_config.public_key_file")).write_text("not a key\n")
    assert cli.main(["check", "-c", str(site / "agent.yaml")]) == 2
    _, err = capsys.readouterr()
    assert "remote_config.public_key_file:" in err and "holds no PEM public key" in err


def test_check_exits_2_naming_the_file_key_and_fix(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / file_name("devices[0].snmp.community_file")).unlink()
    assert cli.main(["check", "-c", str(site / "agent.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[1].startswith(
        f"{site / 'agent.yaml'}: devices[0].snmp.community_file: file not found: ")


def test_a_new_secret_key_is_checked_by_its_name(tmp_path: Path) -> None:
    """The role comes from the key's name: a future ``*_password_file`` is a secret without more code."""
    assert configfile.file_role("bind_password_file") == "secret"
    assert configfile.file_role("client_key_file") == "secret"
    assert configfile.file_role("bundle_file") == "input"
    assert configfile.file_role("state_file") == "output"
    assert configfile.file_role("inventory") is None
    secret = tmp_path / "s"
    secret.write_text("x\n", encoding="utf-8")
    secret.chmod(0o644)
    error, warning = configfile.check_file(secret, "secret")
    assert error is None and warning is not None and stat.S_IMODE(secret.stat().st_mode) == 0o644


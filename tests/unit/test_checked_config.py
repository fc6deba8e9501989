"""agent/checked_config.py: the configuration checked in a child process equals the one checked in this
process (config, warnings, profiles), and its errors are the same errors. Each child is a real
``python -m agent.checked_config``."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import checked_config
from agent.checked_config import CheckFailed, check_here, check_in_child
from hatang.config_errors import ConfigError

CUSTOM_PROFILE = """
name: ups-rieng
extends: [system]
scalars:
  - {name: hatang_ups_battery_percent, type: gauge, help: Battery charge, oid: 1.3.6.1.2.1.33.1.2.4.0,
     valid: {min: 0, max: 100}, unknown: -1}
"""


def office(tmp_path: Path, **overrides: Any) -> Path:
    """An agent.yaml using most of the format: v2c and v3 devices with secret files, probes, traps with a
    v3 user, the status page, a user profile directory; and two warnings (a username that is not the
    agent id, a community file others can read)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ups-rieng.yaml").write_text(CUSTOM_PROFILE, encoding="utf-8")
    for name, text in (("community", "c0mmunity\n"), ("auth", "auth-pass-1\n"), ("priv", "priv-pass-1\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        (tmp_path / name).chmod(0o600)
    (tmp_path / "community").chmod(0o644)
    doc: dict[str, Any] = {
        "agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc", "commune": "Đại Đình"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "username": "someone-else", "protocol": 5},
        "buffer": {"path": str(tmp_path / "buffer")}, "profiles_dir": "profiles",
        "devices": [
            {"name": "core-sw", "address": "10.0.0.1", "snmp": {"community_file": "community"},
             "profiles": ["system", "interfaces"], "interval": 30, "critical_interfaces": ["^uplink"]},
            {"name": "ups-1", "address": "10.0.0.2", "profiles": ["ups-rieng"],
             "snmp": {"version": 3, "username": "hatang", "auth_protocol": "SHA256",
                      "auth_password_file": "auth", "priv_protocol": "AES", "priv_password_file": "priv"}},
        ],
        "probes": [{"name": "cong-tinh", "address": "10.1.0.1", "method": "tcp", "tcp_port": 443}],
        "traps": {"listen": "127.0.0.1:16200", "users": [
            {"username": "bay", "auth_protocol": "SHA", "auth_password": "auth-pass-2"}]},
        "status": {"listen": 9109},
        **overrides,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_the_child_checks_exactly_as_this_process(tmp_path: Path) -> None:
    path = office(tmp_path)
    here, child = check_here(path), check_in_child(path)
    assert child.config == here.config
    assert child.warnings == here.warnings and {w.key for w in child.warnings} == {
        "mqtt.username", "devices[0].snmp.community_file"}
    assert child.profiles == here.profiles and "ups-rieng" in child.profiles
    # normalised and resolved as by hatang check: short forms, relative paths, defaults
    assert child.config.mqtt.protocol == "5" and child.config.status is not None
    assert child.config.status.listen == "127.0.0.1:9109"
    assert child.config.devices[1].snmp.version == "3"
    assert child.config.devices[0].snmp.community_file == tmp_path / "community"
    ups = child.profiles["ups-rieng"]
    assert [m.name for m in ups.scalars][-1] == "hatang_ups_battery_percent"
    assert ups.scalars[-1].unknown == [-1.0] and ups.scalars[-1].plain is None  # rules kept, caches work


def test_errors_come_back_as_the_same_config_error(tmp_path: Path) -> None:
    path = office(tmp_path, devices=[{"name": "sw", "address": "10.0.0.2", "intervall": 5,
                                      "snmp": {"version": "3"}}], max_concurrent_polls=0)
    with pytest.raises(ConfigError) as here:
        check_here(path)
    with pytest.raises(ConfigError) as child:
        check_in_child(path)
    assert child.value.path == here.value.path == str(path)
    assert child.value.problems == here.value.problems
    keys = [key for key, _ in child.value.problems]
    assert {"devices[0].intervall", "devices[0].snmp", "max_concurrent_polls"} <= set(keys), keys
    assert "did you mean 'interval'?" in str(child.value)


def test_a_merged_document_is_checked_and_its_errors_name_the_source(tmp_path: Path) -> None:
    """What the agent does with a configuration the centre pushed (agent/remote_config.py)."""
    path = office(tmp_path)
    merged = {**yaml.safe_load(path.read_text(encoding="utf-8")),
              "devices": [{"name": "moi", "address": "10.0.0.9", "profiles": ["system"]}]}
    checked = check_in_child(path, merged, source=Path(f"{path} with revision 7 from the centre"))
    assert [d.name for d in checked.config.devices] == ["moi"]
    merged["devices"] = [{"name": "moi", "address": "10.0.0.9", "profiles": ["khong-co"]}]
    with pytest.raises(ConfigError) as error:
        check_in_child(path, merged, source=Path(f"{path} with revision 8 from the centre"))
    assert error.value.path == f"{path} with revision 8 from the centre"
    assert error.value.problems[0][0] == "devices[0].profiles[0]"


def fake_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """``sys.executable`` replaced, for the child, by a shell script."""
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    monkeypatch.setattr(checked_config.sys, "executable", str(python))


def test_a_child_that_fails_is_said_so_with_its_last_words(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake_interpreter(tmp_path, monkeypatch, "echo 'ModuleNotFoundError: No module named agent' >&2\nexit 3")
    with pytest.raises(CheckFailed, match=r"exited with 3\): ModuleNotFoundError: No module named agent"):
        check_in_child(office(tmp_path))


@pytest.mark.parametrize("stdout", ["", "not a pickle"])
def test_a_child_without_an_answer_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              stdout: str) -> None:
    fake_interpreter(tmp_path, monkeypatch, f"cat >/dev/null\nprintf '{stdout}'\nexit 0")
    with pytest.raises(CheckFailed, match=r"gave no usable answer"):
        check_in_child(office(tmp_path))


def test_the_child_answers_on_stdout_only(tmp_path: Path) -> None:
    """What the child writes to stdout while checking (a warning printed by a library, or written to file
    descriptor 1 by C code) goes to stderr, so the pickled answer on stdout stays whole."""
    sitecustomize = tmp_path / "site" / "sitecustomize.py"
    sitecustomize.parent.mkdir()
    sitecustomize.write_text("import os, agent.config\n"
                             "_orig = agent.config.parse\n"
                             "def parse(*a, **k):\n"
                             "    print('noise on stdout', flush=True)\n"
                             "    os.write(1, b'noise on fd 1')\n"
                             "    return _orig(*a, **k)\n"
                             "agent.config.parse = parse\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sitecustomize.parent), *sys.path])}
    request = pickle.dumps((office(tmp_path), None, None))
    done = subprocess.run([sys.executable, "-P", "-m", "agent.checked_config"], input=request,
                          capture_output=True, env=env, timeout=120, check=True)
    assert b"noise on stdout" in done.stderr and b"noise on fd 1" in done.stderr
    answer = pickle.loads(done.stdout)
    assert answer[0] == "ok" and answer[1].config.agent_id == "xa-dai-dinh"


def test_a_child_that_hangs_is_killed_at_the_deadline(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fake_interpreter(tmp_path, monkeypatch, "exec sleep 60")
    monkeypatch.setattr(checked_config, "CHILD_TIMEOUT", 0.5)
    with pytest.raises(CheckFailed, match=r"took over 0.5 s"):
        check_in_child(office(tmp_path))


REMOTE_PROGRAM = """
import json, sys, time
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from agent.checked_config import CheckFailed, check_in_child
from agent.remote_config import Rejected, RemoteConfig
from agent.service import AgentService
from hatang import signing
from wire.remote_config import ConfigDocument, Envelope, encode_body, encode_envelope

office = Path(sys.argv[1])
private, public = signing.generate()
(office / "centre.pub").write_bytes(public)
(office / "agent.yaml").write_text(
    "agent_id: xa-dai-dinh\\nsite: {province: Vĩnh Phúc}\\nmqtt: {url: 'mqtt://127.0.0.1:1'}\\n"
    "buffer: {path: buffer}\\nremote_config: {public_key_file: centre.pub}\\n"
    "devices: [{name: cu, address: 127.0.0.1, profiles: [system]}]\\n", encoding="utf-8")
signer = signing.Signer(serialization.load_pem_private_key(private, password=None))

def payload(revision, config):
    body = encode_body(ConfigDocument("xa-dai-dinh", revision, time.time(), config))
    return encode_envelope(Envelope(signer.key_id, body, signer.sign(body)))

checked = check_in_child(office / "agent.yaml")
service = AgentService(checked.config, office / "agent.yaml", profiles=checked.profiles,
                       checker=check_in_child)
out = {}
accepted = service.remote.check(payload(1, {"devices": [{"name": "moi", "address": "10.0.0.9",
                                                          "profiles": ["interfaces"]}]}))
out["accepted"] = [(d.name, d.profiles) for d in accepted.config.devices]
out["kept_local"] = accepted.config.site.province
try:
    service.remote.check(payload(2, {"devices": [{"name": "moi", "address": "10.0.0.9", "interval": 0}]}))
except Rejected as exc:
    out["schema"] = [exc.reason, exc.error]

def failing(path, data=None, *, source=None):
    raise CheckFailed("the child was killed (-9)")

try:
    RemoteConfig(checked.config, office / "agent.yaml", failing).check(payload(3, {"devices": []}))
except Rejected as exc:
    out["failed"] = [exc.reason, exc.error]
service.queue.close()
out["modules"] = sorted({"yaml", "pydantic", "pydantic_core"} & set(sys.modules))
print(json.dumps(out))
"""


def test_an_agent_with_remote_config_checks_pushes_in_the_child(tmp_path: Path) -> None:
    """What ``hatang agent`` does with remote_config, in a fresh interpreter: the office's file and each
    pushed document are checked (and merged) by the child, so this process loads neither PyYAML nor
    pydantic; a child that fails refuses the document with reason ``apply``, to be checked again."""
    done = subprocess.run([sys.executable, "-c", REMOTE_PROGRAM, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["accepted"] == [["moi", ["interfaces"]]] and out["kept_local"] == "Vĩnh Phúc"
    assert out["schema"][0] == "schema" and "devices[0].interval" in out["schema"][1]
    assert out["failed"] == ["apply", "the agent could not check it: the child was killed (-9)"]
    assert out["modules"] == []

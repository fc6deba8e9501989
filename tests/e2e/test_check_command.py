"""``hatang check`` as a process: configs that used to pass and then fail at start now exit 2 with one
line naming the file, the key path and the fix; what works but is probably wrong or unsafe exits 0 with
a WARNING line on stderr. ``hatang agent``/``hatang collector`` stop at start with the same errors and
log the same warnings. Every path given to the process is absolute (it runs outside the repository)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tests.support.hatang import HatangProcess, run_hatang, write_yaml
from tests.support.waiting import wait_until


def agent_doc(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    secret = tmp_path / "community"
    if not secret.exists():
        secret.write_text("cong-dong\n", encoding="utf-8")
        secret.chmod(0o600)
    doc: dict[str, Any] = {
        "agent_id": "xa-dai-dinh",
        "site": {"province": "Vĩnh Phúc"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "buffer": {"path": str(tmp_path / "buffer")},
        "devices": [{"name": "core-switch", "address": "127.0.0.1", "snmp": {"community_file": str(secret)}}],
    }
    doc.update(changes)
    return doc


def check(path: Path) -> tuple[int, str, str]:
    result = run_hatang(["check", "-c", str(path)])
    return result.returncode, result.stdout, result.stderr


def error_lines(path: Path, stderr: str) -> list[str]:
    """The problem lines of a config error (after 'hatang: config error:'), each starting with the file."""
    lines = stderr.splitlines()
    assert lines[0] == "hatang: config error:", stderr
    assert all(line.startswith(f"{path}: ") for line in lines[1:]), stderr
    return [line.removeprefix(f"{path}: ") for line in lines[1:]]


def test_a_good_agent_config_passes_without_warnings(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "agent.yaml", agent_doc(tmp_path))
    assert check(path) == (0, f"{path}: OK: agent config for 'xa-dai-dinh' with 1 device(s)\n", "")
    assert not (tmp_path / "buffer").exists()  # checked, not created


def test_a_missing_secret_file_fails_the_check(tmp_path: Path) -> None:
    doc = agent_doc(tmp_path)
    doc["devices"][0]["snmp"]["community_file"] = str(tmp_path / "no-such-community")
    path = write_yaml(tmp_path / "agent.yaml", doc)
    code, out, err = check(path)
    assert (code, out) == (2, "")
    assert error_lines(path, err) == [
        f"devices[0].snmp.community_file: file not found: {tmp_path / 'no-such-community'}; create it with "
        "the secret on its first line (chmod 600) or correct the path (relative paths are relative to the "
        "config file's directory)"]


@pytest.mark.parametrize(("changes", "expected"), [
    ({"traps": {"listen": "0.0.0.0:99999"}},
     "traps.listen: port 99999 is out of range: use 1-65535 (SNMP traps are sent to UDP port 162)"),
    ({"buffer": {"replay_rate": math.inf}},
     "buffer.replay_rate: must be a finite number, not .inf (.nan, .inf and -.inf are not allowed): give a "
     "plain number such as the default 20, or remove the key for the default"),
    ({"devices": [{"name": "core-switch", "address": "127.0.0.1", "interval": math.nan}]},
     "devices[0].interval: must be a finite number, not .nan (.nan, .inf and -.inf are not allowed): give a "
     "plain number such as the default 60, or remove the key for the default"),
    ({"mqtt": {"url": "mqtt://127.0.0.1:99999"}},
     "mqtt.url: port 99999 is out of range: use 1-65535 (1883 is MQTT, 8883 MQTT over TLS)"),
], ids=["trap-port", "replay-rate-inf", "interval-nan", "mqtt-port"])
def test_values_that_fail_later_fail_the_check(tmp_path: Path, changes: dict[str, Any],
                                               expected: str) -> None:
    doc = agent_doc(tmp_path)
    for key, value in changes.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path = write_yaml(tmp_path / "agent.yaml", doc)
    code, _, err = check(path)
    assert code == 2
    assert error_lines(path, err) == [expected]


def test_a_file_where_the_buffer_directory_should_be_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "buffer").write_text("", encoding="utf-8")
    path = write_yaml(tmp_path / "agent.yaml", agent_doc(tmp_path))
    code, _, err = check(path)
    assert code == 2
    assert error_lines(path, err) == [
        f"buffer.path: {tmp_path / 'buffer'} (the agent's disk queue) is a file, not a directory: remove or "
        "rename that file, or set buffer.path to another directory"]


def test_a_duplicated_devices_key_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"""\
agent_id: xa-dai-dinh
site: {{province: "Vĩnh Phúc"}}
mqtt: {{url: "mqtt://127.0.0.1:1"}}
buffer: {{path: "{tmp_path / 'buffer'}"}}
devices:
  - {{name: core-switch, address: 127.0.0.1}}
devices:
  - {{name: router, address: 127.0.0.2}}
""", encoding="utf-8")
    code, _, err = check(path)
    assert code == 2
    assert error_lines(path, err) == [
        "devices: key given twice (line 5 and line 7): YAML would silently keep only the second; merge the "
        "two into one 'devices:' or delete one"]


def test_warnings_go_to_stderr_and_the_check_passes(tmp_path: Path) -> None:
    target = tmp_path / "secrets" / "mqtt"
    target.parent.mkdir()
    target.write_text("mat-khau\n", encoding="utf-8")
    target.chmod(0o644)
    link = tmp_path / "mqtt-password"
    link.symlink_to(target)
    path = write_yaml(tmp_path / "agent.yaml", agent_doc(tmp_path, mqtt={
        "url": "mqtt://127.0.0.1:1", "username": "hatang-agent", "password_file": str(link)}))
    code, out, err = check(path)
    assert code == 0, err
    assert out == f"{path}: OK: agent config for 'xa-dai-dinh' with 1 device(s) (2 warning(s) on stderr)\n"
    assert err.splitlines() == [
        f"WARNING: {path}: mqtt.password_file: secret file {link} (a symlink to {target}) is readable by its "
        f"group and every user (mode 0644): run chmod 600 {target} (owned by the user hatang runs as)",
        f"WARNING: {path}: mqtt.username: 'hatang-agent' differs from agent_id 'xa-dai-dinh': the shipped "
        "broker ACL (deploy/mosquitto/hatang.acl) lets an agent write only to hatang/v1/agents/<username>/#, "
        "so the broker would silently drop everything this agent publishes under "
        "hatang/v1/agents/xa-dai-dinh/; remove mqtt.username (it defaults to agent_id) or set it to "
        "'xa-dai-dinh'"]


def test_the_agent_stops_at_start_with_the_same_error(tmp_path: Path) -> None:
    doc = agent_doc(tmp_path, buffer={"path": str(tmp_path / "not-a-directory" / "buffer")})
    (tmp_path / "not-a-directory").write_text("", encoding="utf-8")
    doc["devices"][0]["snmp"]["community_file"] = str(tmp_path / "no-such-community")
    path = write_yaml(tmp_path / "agent.yaml", doc)
    code, _, checked = check(path)
    assert code == 2
    started = run_hatang(["agent", "-c", str(path)], timeout=30)
    assert started.returncode == 2
    assert started.stderr == checked
    assert len(error_lines(path, checked)) == 2
    assert not (tmp_path / "buffer").exists()


def test_the_agent_logs_the_warnings_at_start(tmp_path: Path) -> None:
    secret = tmp_path / "community"
    path = write_yaml(tmp_path / "agent.yaml", agent_doc(tmp_path))
    secret.chmod(0o640)
    agent = HatangProcess(["agent", "-c", str(path)], tmp_path / "agent.log").start()
    try:
        line = wait_until(lambda: next((s for s in agent.log().splitlines() if "WARNING" in s), None), 30,
                          message="the config warning in the agent's log")
        assert line.endswith(
            f" WARNING hatang.config: {path}: devices[0].snmp.community_file: secret file {secret} is "
            f"readable by its group (mode 0640): run chmod 600 {secret} (owned by the user hatang runs "
            "as)"), line
        assert agent.running()
    finally:
        agent.stop()


def test_the_collector_checks_its_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "collector-password"
    path = write_yaml(tmp_path / "collector.yaml", {
        "mqtt": {"url": "mqtt://127.0.0.1:1", "username": "collector.hatang", "password_file": str(secret)},
        "listen": "127.0.0.1:0", "live_grace": math.inf})
    code, _, err = check(path)
    assert code == 2
    assert error_lines(path, err) == [
        "live_grace: must be a finite number, not .inf (.nan, .inf and -.inf are not allowed): give a plain "
        "number such as the default 5, or remove the key for the default"]
    path = write_yaml(path, {"mqtt": {"url": "mqtt://127.0.0.1:1", "username": "collector.hatang",
                                      "password_file": str(secret)}, "listen": "127.0.0.1:0"})
    code, _, err = check(path)
    assert code == 2
    assert error_lines(path, err) == [f"mqtt.password_file: file not found: {secret}; create it with the "
                                      "secret on its first line (chmod 600) or correct the path (relative "
                                      "paths are relative to the config file's directory)"]
    started = run_hatang(["collector", "-c", str(path)], timeout=30)
    assert (started.returncode, started.stderr) == (2, err)
    secret.write_text("mat-khau\n", encoding="utf-8")
    secret.chmod(0o604)
    code, out, err = check(path)
    assert code == 0
    assert out == f"{path}: OK: collector config, serving on 127.0.0.1:0 (1 warning(s) on stderr)\n"
    assert err == (f"WARNING: {path}: mqtt.password_file: secret file {secret} is readable by every user "
                   f"(mode 0604): run chmod 600 {secret} (owned by the user hatang runs as)\n")


def test_skip_files_checks_a_config_written_for_another_machine(tmp_path: Path) -> None:
    doc = agent_doc(tmp_path, mqtt={"url": "mqtt://127.0.0.1:1", "username": "hatang-agent",
                                    "password_file": "/nonexistent/hatang/mqtt-password"})
    path = write_yaml(tmp_path / "agent.yaml", doc)
    assert check(path)[0] == 2
    result = run_hatang(["check", "--skip-files", "-c", str(path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"{path}: OK: agent config for 'xa-dai-dinh' with 1 device(s) (1 warning(s) on "
                             "stderr; files and directories it names not checked)\n")
    assert result.stderr.startswith(f"WARNING: {path}: mqtt.username: ")
    doc["traps"] = {"listen": "0.0.0.0:99999"}  # values are still checked
    result = run_hatang(["check", "--skip-files", "-c", str(write_yaml(path, doc))])
    assert result.returncode == 2 and "traps.listen: port 99999 is out of range" in result.stderr


def test_skip_files_passes_the_shipped_examples() -> None:
    """They name /etc/hatang/... files of the production machine: only --skip-files can pass them here."""
    examples = Path(__file__).resolve().parents[2] / "deploy" / "examples"
    for name, kind in (("agent.yaml", "agent config"), ("collector.yaml", "collector config")):
        result = run_hatang(["check", "--skip-files", "-c", str(examples / name)])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{examples / name}: OK: {kind}")
        assert result.stdout.endswith("(files and directories it names not checked)\n")

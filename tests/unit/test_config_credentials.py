"""``${CREDENTIALS_DIRECTORY}`` in ``*_file`` paths: the directory systemd hands a service its
credentials in (LoadCredential=). Expanded from the environment, for agent and collector alike; unset,
the error names the file, the key and how to check by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config as agent_config
from collector import config as collector_config
from hatang.config_errors import ConfigError

AGENT = """\
agent_id: xa-a
site: {province: P}
mqtt:
  url: mqtts://broker:8883
  password_file: ${CREDENTIALS_DIRECTORY}/mqtt-password
  ca_file: ca.crt
buffer: {path: /var/lib/hatang/buffer}
devices:
  - name: sw
    address: 10.0.0.1
    snmp: {version: 2c, community_file: $CREDENTIALS_DIRECTORY/snmp-community}
"""

COLLECTOR = """\
mqtt:
  url: mqtt://127.0.0.1:1883
  username: collector.hatang
  password_file: ${CREDENTIALS_DIRECTORY}/collector-password
"""


def test_agent_paths_expand_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/hatang-agent.service")
    config = agent_config.parse(path)
    assert config.mqtt.password_file == Path("/run/credentials/hatang-agent.service/mqtt-password")
    community = Path("/run/credentials/hatang-agent.service/snmp-community")
    assert config.devices[0].snmp.community_file == community
    assert config.mqtt.ca_file == tmp_path.resolve() / "ca.crt"  # relative: beside the config, as before


def test_unset_credentials_directory_names_file_key_and_fix(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        agent_config.parse(path)
    message = str(caught.value)
    assert str(path) in message and "mqtt.password_file" in message
    assert "hatang check --credentials /etc/hatang/secrets" in message


def test_collector_paths_expand_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(COLLECTOR)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    config = collector_config.load(path)
    assert config.mqtt.password_file == tmp_path / "creds" / "collector-password"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"mqtt\.password_file"):
        collector_config.load(path)


def test_a_missing_credential_says_where_secrets_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT.replace("  ca_file: ca.crt\n", "")
                    .replace("/var/lib/hatang/buffer", str(tmp_path / "buffer")))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("pw\n")
    (creds / "mqtt-password").chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with pytest.raises(ConfigError) as caught:
        agent_config.load(path)
    message = str(caught.value)
    assert "devices[0].snmp.community_file: credential not found" in message
    assert "mqtt.password_file" not in message
    assert "LoadCredential=snmp-community:/etc/hatang/secrets/snmp-community" in message

"""Tests of the collector config loader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector import config as collector_config
from collector.config import CollectorConfig
from hatang.configfile import ConfigError

DOC_EXAMPLE = """\
mqtt:
  url: "mqtt://127.0.0.1:1883"
  username: collector            # optional
  password_file: /etc/hatang/collector-password   # optional
  client_id: hatang-collector
listen: "127.0.0.1:9108"         # /metrics, /healthz, /readyz
stale_after_intervals: 3         # device series vanish after this many intervals without data
limits:
  max_payload_bytes: 1048576
  max_samples_per_message: 50000
  max_label_length: 1024
log_level: info
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        collector_config.load(path)
    assert info.value.path == str(path)
    assert all(line.startswith(f"{path}: ") for line in str(info.value).splitlines())
    return info.value.problems


def test_documented_example_loads(tmp_path: Path) -> None:
    config = collector_config.load(write(tmp_path, DOC_EXAMPLE))
    assert isinstance(config, CollectorConfig)
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"
    assert config.mqtt.username == "collector"
    assert config.mqtt.password_file == Path("/etc/hatang/collector-password")
    assert config.mqtt.client_id == "hatang-collector"
    assert config.listen_host_port == ("127.0.0.1", 9108)
    assert config.stale_after_intervals == 3
    assert config.limits.max_payload_bytes == 1 << 20
    assert config.limits.max_samples_per_message == 50_000
    assert config.limits.max_label_length == 1024
    assert config.log_level == "info"


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = collector_config.load(write(tmp_path, "mqtt: {url: 'mqtts://broker.example:8883'}\n"))
    assert config.listen_host_port == ("127.0.0.1", 9108)
    assert config.stale_after_intervals == 3.0
    assert config.limits.max_payload_bytes == 4 << 20
    assert config.mqtt.keepalive == 30
    assert config.mqtt.client_id == "hatang-collector"


def test_relative_secret_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        mqtt:
          url: mqtts://broker:8883
          password_file: secrets/collector
          ca_file: /etc/ssl/ca.pem
        """)
    config = collector_config.load(path)
    assert config.mqtt.password_file == tmp_path.resolve() / "secrets/collector"
    assert config.mqtt.ca_file == Path("/etc/ssl/ca.pem")


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        (":9108", ("0.0.0.0", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("collector.tinh.vn:65535", ("collector.tinh.vn", 65535)),
    ],
)
def test_listen_is_parsed_into_host_and_port(tmp_path: Path, listen: str, expected: tuple[str, int]) -> None:
    path = write(tmp_path, f"mqtt: {{url: 'mqtt://b'}}\nlisten: '{listen}'\n")
    assert collector_config.load(path).listen_host_port == expected


@pytest.mark.parametrize("listen", ["9108", "127.0.0.1", "127.0.0.1:", "host:port", "a b:9108", "h:123456",
                                    "127.0.0.1:9108 "])
def test_malformed_listen_is_rejected(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, f"mqtt: {{url: 'mqtt://b'}}\nlisten: '{listen}'\n")
    assert [key for key, _ in problems_of(path)] == ["listen"]


def test_listen_port_above_65535_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt: {url: 'mqtt://b'}\nlisten: '0.0.0.0:99999'\n")
    assert [key for key, _ in problems_of(path)] == ["listen"]


def test_unknown_key_is_reported_with_its_path_and_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        mqtt: {url: 'mqtt://b'}
        limits:
          max_payload_byte: 2048
        """)
    [(key, message)] = problems_of(path)
    assert key == "limits.max_payload_byte"
    assert "unknown key; did you mean 'max_payload_bytes'?" in message


def test_unknown_nested_mqtt_key_is_reported(tmp_path: Path) -> None:
    [(key, message)] = problems_of(write(tmp_path, "mqtt: {url: 'mqtt://b', clientid: x}\n"))
    assert key == "mqtt.clientid"
    assert "did you mean 'client_id'?" in message


def test_agent_keys_in_a_collector_config_are_unknown(tmp_path: Path) -> None:
    keys = [key for key, _ in problems_of(write(tmp_path, "mqtt: {url: 'mqtt://b'}\nagent_id: xa\n"))]
    assert keys == ["agent_id"]


def test_missing_mqtt_section_is_reported(tmp_path: Path) -> None:
    [(key, message)] = problems_of(write(tmp_path, "listen: ':9108'\n"))
    assert key == "mqtt"
    assert message == "required key is missing; add it"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("mqtt: {url: 'http://b'}\n", "mqtt.url"),
        ("mqtt: {url: 'mqtt://b', keepalive: 2}\n", "mqtt.keepalive"),
        ("mqtt: {url: 'mqtt://b'}\nstale_after_intervals: 0.5\n", "stale_after_intervals"),
        ("mqtt: {url: 'mqtt://b'}\nlimits: {max_payload_bytes: 10}\n", "limits.max_payload_bytes"),
        ("mqtt: {url: 'mqtt://b'}\nlimits: {max_samples_per_message: 0}\n", "limits.max_samples_per_message"),
        ("mqtt: {url: 'mqtt://b'}\nlimits: {max_label_length: 8}\n", "limits.max_label_length"),
        ("mqtt: {url: 'mqtt://b'}\nlog_level: trace\n", "log_level"),
    ],
)
def test_invalid_values_are_reported_at_their_key_path(tmp_path: Path, text: str, key: str) -> None:
    assert [k for k, _ in problems_of(write(tmp_path, text))] == [key]


def test_bad_yaml_and_missing_file_are_reported(tmp_path: Path) -> None:
    [(_, message)] = problems_of(write(tmp_path, "mqtt:\n  url: 'mqtt://b\nlisten: x\n"))
    assert message.startswith("invalid YAML: line")
    [(_, message)] = problems_of(tmp_path / "absent.yaml")
    assert "file not found" in message

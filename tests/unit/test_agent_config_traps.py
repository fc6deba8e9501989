"""Agent config: traps and probes sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import config as agent_config
from hatang.configfile import ConfigError


def _write(tmp_path: Path, **extra: Any) -> Path:
    doc = {"agent_id": "xa-a", "site": {"province": "Phú Thọ"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
           "buffer": {"path": "buf"}, "devices": [{"name": "sw", "address": "127.0.0.1"}], **extra}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_traps_and_probes_load_with_defaults(tmp_path: Path) -> None:
    config = agent_config.parse(_write(tmp_path, traps={"users": [
        {"username": "u", "auth_protocol": "SHA256", "auth_password_file": "auth", "priv_protocol": "AES",
         "priv_password": "x", "engine_id": "0x8000000001020304"}]},
        probes=[{"name": "cong-tinh", "address": "10.0.0.1"}]))
    assert config.traps is not None and config.traps.host_port() == ("0.0.0.0", 162)
    assert config.traps.communities == ["public"] and config.traps.repoll
    assert config.traps.users[0].auth_password_file == tmp_path.resolve() / "auth"
    assert config.probes[0].method == "auto" and config.probes[0].interval == 60


@pytest.mark.parametrize(("extra", "expected"), [
    ({"traps": {"users": [{"username": "u", "priv_protocol": "AES", "priv_password": "p"}]}},
     "traps.users[0]: Value error, priv_protocol needs auth_protocol"),
    ({"traps": {"users": [{"username": "u", "auth_password": "p"}]}},
     "auth_password given without auth_protocol"),
    ({"traps": {"listen": "162"}}, "traps.listen"),
    ({"traps": {"comunities": ["x"]}}, "traps.comunities: unknown key; did you mean 'communities'?"),
    ({"probes": [{"name": "sw", "address": "10.0.0.1"}]}, "probe name 'sw' is already used"),
    ({"probes": [{"name": "p", "address": "10.0.0.1", "count": 50, "spacing": 1, "interval": 30}]},
     "count x spacing + timeout must be shorter than interval"),
    ({"probes": [{"name": "p", "address": "10.0.0.1", "method": "udp"}]}, "probes[0].method"),
])
def test_bad_trap_and_probe_settings_name_the_key(
    tmp_path: Path, extra: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        agent_config.load(_write(tmp_path, **extra))
    assert expected in str(err.value)

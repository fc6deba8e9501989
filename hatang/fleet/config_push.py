"""The centre's side of remote configuration (docs/remote-config.md): check a configuration file for one
agent, sign it with the next revision, and keep what was pushed.

What is checked here, before anything is signed: the file is a YAML mapping; it sets only centrally
managed keys and no inline secret (:func:`agent.remote_config.document_problems`, the agent's own
rules); and, merged over a stand-in for the office's local keys, it is a valid agent configuration
whose profile names exist (the agent's own models). What only the office can tell (its secret files,
its own profiles directory) the agent checks again, and reports centrally when it refuses.

History: every push is kept as ``HISTORY/AGENT/REVISION.yaml`` (the file as given) and
``REVISION.signed`` (the message as published). The next revision is one more than the highest of the
history and of the retained message on the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import parse as parse_agent_config
from agent.remote_config import document_problems
from hatang.config_errors import ConfigError
from hatang.config_paths import CREDENTIAL_PREFIXES
from hatang.fleet.layout import FleetError, write_atomic
from hatang.signing import Signer
from hatang.yaml_loading import load_yaml
from wire.remote_config import (
    MANAGED_KEYS,
    ConfigDocument,
    ConfigFormatError,
    Envelope,
    decode_body,
    decode_envelope,
    encode_body,
    encode_envelope,
)


@dataclass(frozen=True)
class Signed:
    revision: int
    payload: bytes


def _stand_in(agent_id: str) -> dict[str, Any]:
    """The keys only an office sets, as placeholders: enough to validate a pushed document alone."""
    return {"agent_id": agent_id, "site": {"province": "-"}, "mqtt": {"url": "mqtt://localhost"},
            "buffer": {"path": "/nonexistent"}}


def check_file(path: Path, agent_id: str) -> dict[str, Any]:
    """The configuration in ``path``, checked as far as the centre can; raises :class:`ConfigError`
    naming the file, each key path and the fix."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(path, [("", "give a YAML mapping of the keys the centre manages: "
                                      f"{', '.join(MANAGED_KEYS)}")])
    problems = document_problems(data)
    if problems:
        raise ConfigError(path, [(key, text) for _, key, text in problems])
    parse_agent_config(path, {**_stand_in(agent_id), **_without_credentials_directory(data)}, source=path)
    return data


def _without_credentials_directory(value: Any) -> Any:
    """``value`` with each ``*_file`` path under ``${CREDENTIALS_DIRECTORY}/`` made relative: systemd sets
    that variable for the agent at the office, not where ``fleet push`` runs, and no file is checked here."""
    if isinstance(value, list):
        return [_without_credentials_directory(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(key, str) and key.endswith("_file") and isinstance(item, str):
            for prefix in CREDENTIAL_PREFIXES:
                item = item.removeprefix(prefix)
            out[key] = item
        else:
            out[key] = _without_credentials_directory(item)
    return out


def retained_revision(payload: bytes) -> int:
    """The revision of the configuration retained on the broker (0: none, or not one of ours)."""
    if not payload:
        return 0
    try:
        return decode_body(decode_envelope(payload).body).revision
    except ConfigFormatError:
        return 0


def history_revision(history: Path, agent_id: str) -> int:
    directory = history / agent_id
    if not directory.is_dir():
        return 0
    return max((int(p.stem) for p in directory.glob("*.signed") if p.stem.isdigit()), default=0)


MAX_REVISION = 2**53 - 1  # what an agent accepts (wire/remote_config.py)


def sign(config: dict[str, Any], agent_id: str, revision: int, signer: Signer) -> Signed:
    if not 1 <= revision <= MAX_REVISION:
        raise FleetError(f"revision {revision} is outside 1..{MAX_REVISION}: the configuration retained on "
                         f"the broker claims a revision no agent accepts (not signed by this centre?); clear "
                         f"it with an empty retained message on hatang/v1/agents/{agent_id}/config")
    body = encode_body(ConfigDocument(agent_id, revision, round(time.time(), 3), config))
    return Signed(revision, encode_envelope(Envelope(signer.key_id, body, signer.sign(body))))


def keep(history: Path, agent_id: str, source: Path, signed: Signed) -> Path:
    """Keep a pushed configuration: the file as given and the message as published."""
    directory = history / agent_id
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = directory / f"{signed.revision:06d}"
    write_atomic(stem.with_suffix(".yaml"), source.read_bytes(), 0o600)
    write_atomic(stem.with_suffix(".signed"), signed.payload, 0o600)
    return stem.with_suffix(".yaml")


__all__ = ["Signed", "check_file", "history_revision", "keep", "retained_revision", "sign"]

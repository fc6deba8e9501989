"""Configuration from the centre (docs/remote-config.md): check a signed document from the agent's
``config`` topic, merge it over the office's agent.yaml, and keep the last good one on disk.

A document is applied only when every check passes, in this order (the first failure is the reason,
wire.remote_config.REJECT_REASONS): the envelope parses; it is signed by a key in
``remote_config.public_key_file``; the signature matches; it names this agent; its revision is newer
than the one applied; it sets only centrally managed keys (MANAGED_KEYS) and no inline secret; merged
over agent.yaml it is a valid agent configuration whose ``*_file`` secrets exist here. Merging: each
managed key the document gives replaces the file's; a key it leaves out keeps the file's value.

The last good document is kept as it arrived (signature included) in ``remote-config.json`` beside the
disk queue (``remote_config.state_file``), written atomically; at start it is checked again like a new
one, so a file edited or damaged on disk is refused, never trusted.

No I/O but that file and the files the configuration names; applying a configuration to the running
agent is agent/service.py's job.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.checked_config import CheckFailed, ConfigChecker, Pushed, check_here
from agent.config import AgentConfig
from hatang.config_errors import ConfigError, ConfigWarning, key_path
from wire.messages import ConfigRejection
from wire.remote_config import MANAGED_KEYS, ConfigFormatError, decode_body, decode_envelope

log = logging.getLogger("hatang.agent.remote_config")

STATE_NAME = "remote-config.json"
# inline secrets a pushed document may not carry: use the *_file keys (provisioned at the office)
_SNMP_SECRETS = ("community", "auth_password", "priv_password")


class Rejected(Exception):
    """A configuration from the centre that is not applied: ``reason`` (REJECT_REASONS) and why."""

    def __init__(self, reason: str, error: str, revision: int = 0) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason, self.error, self.revision = reason, error, revision


@dataclass(frozen=True)
class Accepted:
    """A configuration that passed every check, ready to be applied."""

    revision: int
    config: AgentConfig
    warnings: tuple[ConfigWarning, ...]
    payload: bytes  # as it arrived: what is kept on disk once applied


_AGENT_KEYS = frozenset(f.name for f in dataclasses.fields(AgentConfig))


def document_problems(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(reason, key path, problem) for what a pushed document may never hold: a key only the office sets
    (``local_key``), or a community or password written inline (``inline_secret``). Shared by the agent
    and ``hatang fleet push``."""
    out = []
    for key in config:
        if key not in _AGENT_KEYS:
            close = difflib.get_close_matches(str(key), MANAGED_KEYS, n=1)
            out.append(("schema", str(key), f"unknown key; {f'did you mean {close[0]!r}? ' if close else ''}"
                        f"the centre may set {', '.join(MANAGED_KEYS)}"))
        elif key not in MANAGED_KEYS:
            out.append(("local_key", str(key), f"only the office's agent.yaml sets {key!r}; the centre may "
                        f"set {', '.join(MANAGED_KEYS)}"))

    def inline(loc: tuple[int | str, ...], name: str) -> None:
        out.append(("inline_secret", key_path(loc), f"a secret may not travel in the configuration: give "
                    f"{name}_file, a file provisioned at the office (the enrolment bundle's secrets)"))

    devices = config.get("devices")
    for i, device in enumerate(devices if isinstance(devices, list) else []):
        snmp = device.get("snmp") if isinstance(device, dict) else None
        for name in _SNMP_SECRETS:
            if isinstance(snmp, dict) and snmp.get(name) is not None:
                inline(("devices", i, "snmp", name), name)
    traps = config.get("traps")
    if isinstance(traps, dict):
        if traps.get("communities"):
            inline(("traps", "communities"), "communities")
        users = traps.get("users")
        for i, user in enumerate(users if isinstance(users, list) else []):
            for name in ("auth_password", "priv_password"):
                if isinstance(user, dict) and user.get(name) is not None:
                    inline(("traps", "users", i, name), name)
    return out


def _claimed_revision(body: bytes) -> int:
    """The revision an unverified document claims (only to name it in a refusal; 0 if none)."""
    try:
        return decode_body(body).revision
    except ConfigFormatError:
        return 0


def _summary(exc: ConfigError) -> str:
    return "; ".join(f"{key}: {message}" if key else message for key, message in exc.problems)


class RemoteConfig:
    """The agent's side of central configuration: the keys it trusts, the revision applied, the last
    refusal. ``local``/``local_path``: the office's agent.yaml as loaded at start; ``checker``: how each
    configuration is checked (the running agent: in a child process, agent/checked_config.py)."""

    def __init__(self, local: AgentConfig, local_path: Path, checker: ConfigChecker = check_here) -> None:
        from hatang import signing  # cryptography: only for an agent with remote_config

        settings = local.remote_config
        assert settings is not None
        try:
            verifiers = signing.load_verifiers(settings.public_key_file)
        except signing.SigningKeyError as exc:
            raise ConfigError(local_path, [("remote_config.public_key_file", str(exc))]) from None
        self._verifiers = {v.key_id: v for v in verifiers}
        self.agent_id = local.agent_id
        self.local_path = local_path
        self._checker = checker
        try:  # as at start: the checker merges each document over this text (YAML is parsed there)
            self._local_text = local_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(local_path, [("", f"cannot read the file: {exc}")]) from None
        self.state_file = settings.state_file or local.buffer.path / STATE_NAME
        self.revision = 0  # applied; 0: agent.yaml alone
        self._applied_body_hash = ""
        self.rejection: ConfigRejection | None = None  # the last refusal, until a newer revision applies
        self._rejected_payload_hash = ""
        self.rejections: dict[str, int] = {}  # by reason, since the agent started

    def check(self, payload: bytes) -> Accepted | None:
        """The configuration in ``payload``, checked; None when it is the one applied (a retained message
        delivered again). Raises :class:`Rejected`."""
        try:
            envelope = decode_envelope(payload)
        except ConfigFormatError as exc:
            raise Rejected("malformed", str(exc)) from None
        verifier = self._verifiers.get(envelope.key_id)
        if verifier is None:
            raise Rejected("unknown_key", f"signed with key {envelope.key_id}, which is not in "
                           f"remote_config.public_key_file (trusted: {', '.join(sorted(self._verifiers))})",
                           _claimed_revision(envelope.body))
        if not verifier.verify(envelope.body, envelope.signature):
            raise Rejected("bad_signature", f"the signature does not match the document under key "
                           f"{envelope.key_id}: altered on the way, or signed with another key",
                           _claimed_revision(envelope.body))
        try:
            document = decode_body(envelope.body)
        except ConfigFormatError as exc:
            raise Rejected("malformed", str(exc)) from None
        revision = document.revision
        if document.agent != self.agent_id:
            raise Rejected("wrong_agent", f"made for agent {document.agent!r}, this is {self.agent_id!r}",
                           revision)
        body_hash = hashlib.sha256(envelope.body).hexdigest()
        if revision == self.revision and body_hash == self._applied_body_hash:
            return None
        if revision <= self.revision:
            raise Rejected("older_revision", f"revision {revision} is not newer than revision "
                           f"{self.revision}, which is applied", revision)
        problems = document_problems(document.config)
        if problems:
            raise Rejected(problems[0][0], "; ".join(f"{key}: {text}" for _, key, text in problems), revision)
        source = Path(f"{self.local_path} with revision {revision} from the centre")
        try:
            pushed = Pushed(self._local_text, document.config)
            checked = self._checker(self.local_path, pushed, source=source)
        except CheckFailed as exc:  # the agent's fault, not the document's: checked again if sent again
            raise Rejected("apply", f"the agent could not check it: {exc}", revision) from None
        except ConfigError as exc:
            # a problem without a key path is one of the whole document (a probe named like a device): schema
            files = all(key.endswith("_file") for key, _ in exc.problems)
            raise Rejected("files" if files else "schema", _summary(exc), revision) from None
        return Accepted(revision, checked.config, tuple(checked.warnings), payload)

    def applied(self, accepted: Accepted, *, save: bool = True) -> None:
        """``accepted`` is in service: remember it, and keep it on disk as the last good configuration
        (``save``: unless it came from there)."""
        self.revision = accepted.revision
        self._applied_body_hash = hashlib.sha256(decode_envelope(accepted.payload).body).hexdigest()
        if self.rejection is not None and self.rejection.revision <= accepted.revision:
            self.rejection = None
        if save:
            self._save(accepted.payload)

    def rejected(self, payload: bytes, exc: Rejected) -> bool:
        """Record a refusal; False when this very payload was refused already (delivered again)."""
        digest = hashlib.sha256(payload).hexdigest()
        if digest == self._rejected_payload_hash:
            return False
        self._rejected_payload_hash = digest
        self.rejections[exc.reason] = self.rejections.get(exc.reason, 0) + 1
        self.rejection = ConfigRejection(exc.revision, exc.reason, exc.error[:1000], time.time())
        return True

    def last_good(self) -> Accepted | None:
        """The configuration kept on disk, checked again like a new one; None without one (or when it
        is refused now: logged, and the refusal is recorded)."""
        try:
            payload = self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the last good configuration %s: %s; starting from %s alone",
                        self.state_file, exc, self.local_path)
            return None
        try:
            return self.check(payload)
        except Rejected as exc:
            self.rejected(payload, exc)
            log.warning("the last good configuration %s is refused now (%s); starting from %s alone",
                        self.state_file, exc, self.local_path)
            return None

    def _save(self, payload: bytes) -> None:
        temporary = self.state_file.with_name(f".{self.state_file.name}.tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.state_file)
            directory = os.open(self.state_file.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:  # applied all the same; only a restart without the broker would miss it
            log.warning("cannot keep the configuration on disk in %s: %s; it is applied, but a restart "
                        "while the centre is unreachable would start from %s alone", self.state_file, exc,
                        self.local_path)


__all__ = ["STATE_NAME", "Accepted", "Rejected", "RemoteConfig", "document_problems"]

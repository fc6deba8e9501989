"""The centre's configuration for one agent: the payload of ``hatang/v1/agents/{agent}/config``.

Published retained by ``hatang fleet push``, read by that agent only (the broker's ACL), ignored by the
collector. The payload is an *envelope* around the signed bytes, so that nothing has to be put in a
canonical form before checking the signature::

    {"v": 1, "type": "config", "key": "<key id>", "body": "<base64>", "sig": "<base64>"}

``sig`` is the Ed25519 signature (64 bytes) of exactly the bytes in ``body``, made with the centre's
private key; ``key`` names that key (:func:`hatang.signing.key_id`: the first 16 hex digits of the
SHA-256 of the raw public key), so an agent that trusts several keys (during a key rotation) knows which
one to try. ``body`` is UTF-8 JSON::

    {"agent": "xa-dai-dinh", "revision": 7, "issued_at": 1795550709.5, "config": {"devices": [...]}}

``agent`` binds the document to one agent (a copy moved to another agent's topic is refused);
``revision`` only grows (an older one is refused, so a replayed old document cannot roll an office
back); ``config`` holds the centrally managed keys of agent.yaml (:data:`MANAGED_KEYS`).

Pure and standard library only: the signature itself is checked by :mod:`hatang.signing`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from wire.topics import WIRE_VERSION, is_agent_id

MAX_CONFIG_BYTES = 1 << 20  # a province's largest office config is a few hundred kB
SIGNATURE_BYTES = 64  # Ed25519

# The agent.yaml keys the centre may set. Everything else (agent_id, site, mqtt, buffer, status,
# profiles_dir, log_level, remote_config) is local to the office: a pushed document naming one is refused.
MANAGED_KEYS = ("devices", "probes", "traps", "critical_interfaces", "max_concurrent_polls",
                "self_metrics_interval")

# Why an agent refused a configuration (ConfigRejection.reason, hatang_agent_config_rejections_total).
REJECT_REASONS = (
    "malformed",  # not an envelope, or a body that is not the document above
    "unknown_key",  # signed by a key the agent does not trust
    "bad_signature",  # the signature does not match the body under the named key
    "wrong_agent",  # made for another agent
    "older_revision",  # not newer than the revision applied
    "local_key",  # names a key only the office may set (agent_id, mqtt, buffer, ...)
    "inline_secret",  # a community or password written in the document instead of a *_file
    "schema",  # not a valid agent configuration (the error names the key path)
    "files",  # names a secret file the office does not have, or cannot read
    "apply",  # valid, but could not be put into service (e.g. the trap port is taken)
)


class ConfigFormatError(ValueError):
    """A payload that is not a well-formed configuration envelope or document (reason ``malformed``)."""


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    agent: str
    revision: int
    issued_at: float
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    key_id: str
    body: bytes
    signature: bytes


def encode_body(document: ConfigDocument) -> bytes:
    doc = {"agent": document.agent, "revision": document.revision, "issued_at": document.issued_at,
           "config": document.config}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def encode_envelope(envelope: Envelope) -> bytes:
    doc = {"v": WIRE_VERSION, "type": "config", "key": envelope.key_id,
           "body": base64.b64encode(envelope.body).decode(),
           "sig": base64.b64encode(envelope.signature).decode()}
    return json.dumps(doc, separators=(",", ":")).encode()


def _bad(detail: str) -> ConfigFormatError:
    return ConfigFormatError(detail)


def _json(data: bytes, what: str) -> Any:
    def no_constant(name: str) -> None:
        raise _bad(f"{what}: non-finite number {name}")

    try:
        return json.loads(data, parse_constant=no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _bad(f"{what} is not JSON: {exc}") from None


def decode_envelope(payload: bytes) -> Envelope:
    """The envelope of a config message; raises :class:`ConfigFormatError`."""
    if len(payload) > 2 * MAX_CONFIG_BYTES:
        raise _bad(f"{len(payload)} bytes, more than {2 * MAX_CONFIG_BYTES}")
    doc = _json(payload, "the message")
    if not isinstance(doc, dict) or doc.get("type") != "config":
        raise _bad('not a configuration message (no "type": "config")')
    if doc.get("v") != WIRE_VERSION:
        raise _bad(f"wire version {doc.get('v')!r}, this agent reads {WIRE_VERSION}")
    key, body, sig = doc.get("key"), doc.get("body"), doc.get("sig")
    if not isinstance(key, str) or not isinstance(body, str) or not isinstance(sig, str):
        raise _bad("key, body and sig must be strings")
    try:
        raw_body = base64.b64decode(body, validate=True)
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("body or sig is not base64") from None
    if len(signature) != SIGNATURE_BYTES:
        raise _bad(f"the signature has {len(signature)} bytes, not {SIGNATURE_BYTES}")
    if len(raw_body) > MAX_CONFIG_BYTES:
        raise _bad(f"the document has {len(raw_body)} bytes, more than {MAX_CONFIG_BYTES}")
    return Envelope(key[:64], raw_body, signature)


def decode_body(body: bytes) -> ConfigDocument:
    """The signed document (call it only once the signature is checked); raises :class:`ConfigFormatError`."""
    doc = _json(body, "the document")
    if not isinstance(doc, dict):
        raise _bad("the document is not a JSON object")
    agent, revision, issued, config = (doc.get("agent"), doc.get("revision"), doc.get("issued_at"),
                                       doc.get("config"))
    if not isinstance(agent, str) or not is_agent_id(agent):
        raise _bad("agent must be an agent id")
    if not isinstance(revision, int) or isinstance(revision, bool) or not 1 <= revision < 2**53:
        raise _bad("revision must be a positive integer")
    if not isinstance(issued, int | float) or isinstance(issued, bool) or not math.isfinite(issued):
        raise _bad("issued_at must be a number")
    if not isinstance(config, dict):
        raise _bad("config must be an object (agent.yaml keys)")
    return ConfigDocument(agent, revision, float(issued), config)


__all__ = ["MANAGED_KEYS", "MAX_CONFIG_BYTES", "REJECT_REASONS", "ConfigDocument", "ConfigFormatError",
           "Envelope", "decode_body", "decode_envelope", "encode_body", "encode_envelope"]

"""Ed25519 keys and signatures for the centre's configurations (wire/remote_config.py). The only module
that imports ``cryptography``'s Ed25519 API (hatang/fleet/certificates.py holds its X.509 side).

The centre signs with its private key (PEM, PKCS#8, unencrypted, mode 0600: ``hatang fleet keygen``);
agents verify with the public key (PEM, SubjectPublicKeyInfo). A public key file may hold several keys
one after the other: an agent then trusts each of them, which is how the centre's key is rotated without
stranding an office (docs/remote-config.md).

Imported only by the agents that have ``remote_config`` and by ``hatang fleet``: an office agent
without it never loads ``cryptography`` (its memory is counted, docs/performance.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


class SigningKeyError(ValueError):
    """A key file that cannot be used; the message says which file and why."""


def key_id(public_raw: bytes) -> str:
    """The short name of a public key carried in each envelope: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(_raw(self.key.public_key()))

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@dataclass(frozen=True)
class Verifier:
    key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id(_raw(self.key))

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def generate() -> tuple[bytes, bytes]:
    """A new key pair: (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def load_signer(path: Path) -> Signer:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the centre's private key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key ({exc}); make one with "
                        "`hatang fleet keygen DIR`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key; make one with `hatang fleet keygen DIR`")
    return Signer(key)


def load_verifiers(path: Path) -> tuple[Verifier, ...]:
    """Every public key in the file (PEM blocks one after the other)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    blocks = _PEM_PUBLIC.findall(data)
    if not blocks:
        raise SigningKeyError(f"{path} holds no PEM public key (-----BEGIN PUBLIC KEY-----); copy the "
                              "centre's centre.pub made by `hatang fleet keygen`")
    out = []
    for number, block in enumerate(blocks, 1):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise SigningKeyError(f"{path}: public key {number} cannot be read ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{path}: public key {number} is not an Ed25519 key")
        out.append(Verifier(key))
    return tuple(out)


__all__ = ["Signer", "SigningKeyError", "Verifier", "generate", "key_id", "load_signer", "load_verifiers"]

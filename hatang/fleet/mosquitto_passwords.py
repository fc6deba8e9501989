"""Mosquitto's password file, read and written without ``mosquitto_passwd`` and without hand-editing.

Each line is ``username:$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, base64>``: the format
``mosquitto_passwd`` of Mosquitto 2.0 writes (101 iterations, 12 bytes of salt, 64 bytes of hash), which
the broker reads at start and on SIGHUP. Writes replace the file atomically (temporary file, fsync,
rename) keeping its mode and group, so the broker never reads half a file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from hatang.fleet.layout import write_atomic

ITERATIONS = 101  # mosquitto_passwd's default in 2.0
SALT_BYTES = 12
HASH_BYTES = 64


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The encoded entry of ``password`` (without the ``username:``)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(encoded: str, password: str) -> bool:
    """Whether ``password`` matches an encoded ``$7$`` entry (False for any other format)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


def read(path: Path) -> dict[str, str]:
    """``{username: encoded}`` in file order; an absent file is empty. Blank and ``#`` lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            user, sep, encoded = line.partition(":")
            if sep:
                entries[user] = encoded
    return entries


def write(path: Path, entries: dict[str, str], *, mode: int = 0o640, group: int | None = None) -> None:
    """Replace ``path`` with ``entries``. An existing file's mode and group are kept; a new one gets
    ``mode`` and ``group`` (when given and allowed)."""
    try:
        info = path.stat()
        mode, group = info.st_mode & 0o777, info.st_gid
    except FileNotFoundError:
        pass
    for user in entries:
        if not user or ":" in user or "\n" in user:
            raise ValueError(f"not a valid Mosquitto username: {user!r}")
    text = "".join(f"{user}:{encoded}\n" for user, encoded in entries.items())
    write_atomic(path, text.encode(), mode, group)


def set_password(path: Path, user: str, password: str, *, group: int | None = None) -> None:
    entries = read(path)
    entries[user] = hash_password(password)
    write(path, entries, group=group)


def remove_user(path: Path, user: str) -> bool:
    """Remove ``user``'s entry; False when it had none."""
    entries = read(path)
    if entries.pop(user, None) is None:
        return False
    write(path, entries)
    return True

"""Checks of one file or directory a config names, which a model cannot see but a service needs at
start: a file is readable and not empty (a warning when a secret file is readable by group or others),
a directory the service writes in can be created and written. No pydantic here: walking a loaded model
for its ``*_file`` keys is :func:`hatang.configfile.check_files`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Literal

from hatang.config_errors import ConfigError

FileRole = Literal["secret", "secret_lines", "input", "output"]

# How a ``*_file`` key is checked, by its name. Any other ``*_file`` key is an input file: it must exist,
# be readable and not empty. A new key that hatang writes (not reads) must be added to OUTPUT_FILE_KEYS.
SECRET_FILE_SUFFIXES = ("password_file", "community_file", "key_file", "token_file")  # secret: first line
SECRET_LINES_FILE_KEYS = ("communities_file",)  # one secret per line
OUTPUT_FILE_KEYS = ("state_file",)  # written by hatang: may not exist yet
PUBLIC_FILE_KEYS = ("public_key_file",)  # ends like a secret's key, but anyone may read it


# systemd hands a service its credentials (LoadCredential=) as files in this directory and names it in the
# environment. A ``*_file`` path may start with ${CREDENTIALS_DIRECTORY}/ (docs/configuration.md).
CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"
CREDENTIAL_PREFIXES = ("${CREDENTIALS_DIRECTORY}/", "$CREDENTIALS_DIRECTORY/")


def resolve(base: Path, path: Path, *, config_path: Path | str, key: str) -> Path:
    """The absolute path a config's ``key`` names: ``${CREDENTIALS_DIRECTORY}/NAME`` in the directory
    systemd gives the service, a relative path in ``base`` (the config file's directory). Raises
    :class:`ConfigError` when the credentials directory is named but not set."""
    text = str(path)
    for prefix in CREDENTIAL_PREFIXES:
        if text.startswith(prefix):
            directory = os.environ.get(CREDENTIALS_VARIABLE, "")
            if not directory:
                raise ConfigError(config_path, [(key, (
                    f"{text} names a systemd credential, but ${CREDENTIALS_VARIABLE} is not set: systemd "
                    "sets it for the service from its LoadCredential= lines; to check the file by hand, give "
                    "the directory that holds the secrets: hatang check --credentials /etc/hatang/secrets -c "
                    f"{config_path}"))])
            return Path(directory) / text[len(prefix):]
    return path if path.is_absolute() else base / path


def file_role(key: str) -> FileRole | None:
    """How the file named by a config key ``key`` is checked (None: not a ``*_file`` key)."""
    if not key.endswith("_file"):
        return None
    if key in OUTPUT_FILE_KEYS:
        return "output"
    if key in PUBLIC_FILE_KEYS:
        return "input"
    if key in SECRET_LINES_FILE_KEYS:
        return "secret_lines"
    if key.endswith(SECRET_FILE_SUFFIXES):
        return "secret"
    return "input"


def _readers(mode: int) -> str:
    who = [name for bit, name in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "every user")) if mode & bit]
    return " and ".join(who)


def check_file(path: Path, role: FileRole) -> tuple[str | None, str | None]:
    """(error, warning) about a file a config names; both None when it is fine. ``path`` is absolute."""
    if role == "output":
        return None, None
    shown = str(path)
    try:
        if path.is_symlink():
            shown = f"{path} (a symlink to {os.path.realpath(path)})"
        info = path.stat()  # follows symlinks: the mode that matters is the target's
    except FileNotFoundError:
        credentials = os.environ.get(CREDENTIALS_VARIABLE, "")
        if credentials and path.parent == Path(credentials):
            return (f"credential not found: {shown}; put the file in /etc/hatang/secrets/{path.name} (root, "
                    f"chmod 600) and give it to the service with LoadCredential={path.name}:/etc/hatang/"
                    f"secrets/{path.name} (install-agent.sh lists the enrolment's files in "
                    "hatang-agent.service.d/credentials.conf)"), None
        what = {"secret": " with the secret on its first line (chmod 600)",
                "secret_lines": " with one community per line (chmod 600)"}.get(role, "")
        return (f"file not found: {shown}; create it{what} or correct the path (relative paths are "
                "relative to the config file's directory)"), None
    except OSError as exc:
        return f"cannot read {shown}: {exc.strerror or exc}; check the path and its directories", None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        return f"{shown} is {kind}; give the path of a file", None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return (f"cannot read {shown}: {exc.strerror or exc}; make it readable by the user hatang runs as "
                f"(chown that user, chmod 600) and run hatang check as that user"), None
    if role in ("secret", "secret_lines"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"{shown} is not UTF-8 text; write the secret as UTF-8 text", None
        lines = text.splitlines()
        if role == "secret" and not (lines and lines[0].strip()):
            return f"{shown} is empty (hatang uses its first line): write the secret on the first line", None
        if role == "secret_lines" and not any(line.strip() for line in lines):
            return f"{shown} is empty: write one community per line", None
    elif not data:
        return f"{shown} is empty; give the path of the right file", None
    warning = None
    if role in ("secret", "secret_lines") and info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        target = os.path.realpath(path)
        warning = (f"secret file {shown} is readable by {_readers(info.st_mode)} "
                   f"(mode {stat.S_IMODE(info.st_mode):04o}): run chmod 600 {target} (owned by the user "
                   "hatang runs as)")
    return None, warning


def writable_directory_problem(directory: Path, key: str = "", what: str = "") -> str | None:
    """Why hatang could not create ``directory`` or write in it (None: it can), for config key ``key``
    (``what``: what the directory is for). Leaves nothing behind: a missing directory is not created,
    only a temporary one in its nearest existing parent, removed at once."""
    named = f"{directory} ({what})" if what else str(directory)
    other = f"set {key} to another directory" if key else "choose another directory"
    existing = directory
    while True:
        try:
            info = existing.stat()
            break
        except (FileNotFoundError, NotADirectoryError):
            if existing.parent == existing:
                return f"cannot create {named}: no part of the path exists; {other}"
            existing = existing.parent
        except OSError as exc:
            return (f"cannot create or open {named}: cannot look into {existing} ({exc.strerror or exc}); "
                    f"{other}")
    if not stat.S_ISDIR(info.st_mode):
        if existing == directory:
            return f"{named} is a file, not a directory: remove or rename that file, or {other}"
        return (f"cannot create {named}: {existing} is a file, not a directory; remove or rename that file, "
                f"or {other}")
    try:
        if existing == directory:
            fd, name = tempfile.mkstemp(prefix=".hatang-check-", dir=directory)
            os.close(fd)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".hatang-check-", dir=existing))
    except OSError as exc:
        action = f"write in {named}" if existing == directory else (
            f"create {named}: cannot create a directory in {existing}")
        return (f"cannot {action} ({exc.strerror or exc}); make it writable by the user hatang runs as "
                f"(chown), or {other}")
    return None


def read_secret(path: Path, config_path: Path, key: str) -> str:
    """Read a password/community from a file (first line, stripped), with a config-style error."""
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise ConfigError(config_path, [(key, f"cannot read secret file {path}: {exc}")]) from None

"""Writing files under ROOT: owners and modes (``set_owner``, ``make_dir``), what a daemon's user may
reach (``blocked_for``), and the ``Installer``, which treats the files it installs like dpkg treats
configuration files, by the checksums it keeps in ROOT/var/lib/hatang-central/installed.json:

* a file unchanged since it installed it is replaced by the new shipped version;
* a file it installed and an operator changed since is kept: the new version is written next to it as
  ``FILE.hatang-new``;
* a file it never installed (Debian's own prometheus.yml, say) is saved as ``FILE.hatang-old`` before it
  is replaced.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from central_configs import REPO
from central_messages import PROG


def is_root() -> bool:
    return os.geteuid() == 0


def uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def set_owner(path: Path, user: str | None, group: str | None, mode: int) -> None:
    """chmod always; chown (without following links) only as root and for users/groups that exist."""
    if not path.is_symlink():
        os.chmod(path, mode)
    if not is_root():
        return
    uid = uid_of(user) if user else None
    gid = gid_of(group) if group else None
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)


def make_dir(path: Path, user: str | None = "root", group: str | None = "root", mode: int = 0o755,
             enforce: bool = False) -> None:
    """Create ``path`` (and its parents) with this owner and mode; an existing directory is left as it
    is unless ``enforce`` (directories whose owner and mode a daemon depends on)."""
    if path.is_dir() and not enforce:
        return
    path.mkdir(parents=True, exist_ok=True)
    set_owner(path, user, group, mode)


def blocked_for(user: str, path: Path, want_write: bool = False) -> str | None:
    """Why ``user`` cannot reach (read, or write with ``want_write``) ``path`` (symlinks followed), or
    None when it can. Checks the classic mode bits only (no ACLs)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return f"there is no user {user}"
    uid = entry.pw_uid
    gids = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}

    def allowed(st: os.stat_result, bit: int) -> bool:  # bit: 4 read, 2 write, 1 execute/search
        if uid == 0:
            return True
        if st.st_uid == uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid in gids:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)

    real = path.resolve()
    for parent in reversed(real.parents):
        st = parent.stat()
        if not allowed(st, 1):
            return (f"{parent} (mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}) is not "
                    f"searchable by user {user}")
    st = real.stat()
    if not allowed(st, 2 if want_write else 4):
        return (f"{real} (mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid}) is not "
                f"{'writable' if want_write else 'readable'} by user {user}")
    if real.is_dir() and not allowed(st, 1):
        return f"{real} is not searchable by user {user}"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Installer:
    """Writes files under ROOT with dpkg-like conffile handling and remembers what changed."""

    root: Path
    manifest_path: Path
    manifest: dict[str, str] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # services whose files changed
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0, "kept": 0})

    @classmethod
    def load(cls, root: Path) -> Installer:
        path = root / "var/lib/hatang-central/installed.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            manifest = {}
        return cls(root, path, manifest)

    def save(self) -> None:
        make_dir(self.manifest_path.parent, mode=0o755)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def file(self, dest: Path, data: str | bytes, *, service: str, user: str = "root", group: str = "root",
             mode: int = 0o644) -> None:
        """Install ``data`` as ``dest`` (see the module doc for files changed locally or not ours)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        key = str(dest)
        if not dest.parent.exists():
            make_dir(dest.parent, mode=0o755)
        if dest.exists():
            current = dest.read_bytes()
            if current == raw:
                self.counts["unchanged"] += 1
                self.manifest[key] = sha256(raw)
                set_owner(dest, user, group, mode)
                return
            if key in self.manifest and self.manifest[key] != sha256(current):
                new = dest.with_name(dest.name + ".hatang-new")
                self._write(new, raw, user, group, mode)
                self.counts["kept"] += 1
                self.notes.append(f"kept {dest}: changed here since {PROG} installed it; the shipped "
                                  f"version is {new.name} next to it (merge by hand, then run {PROG} again)")
                set_owner(dest, user, group, mode)
                return
            if key not in self.manifest:
                old = dest.with_name(dest.name + ".hatang-old")
                shutil.copy2(dest, old)
                self.notes.append(f"replaced {dest} (not installed by {PROG}); the previous one is "
                                  f"{old.name}")
            self.counts["updated"] += 1
        else:
            self.counts["new"] += 1
        self._write(dest, raw, user, group, mode)
        self.manifest[key] = sha256(raw)
        self.changed.add(service)

    def copy_if_absent(self, dest: Path, source: Path, *, user: str, group: str, mode: int) -> None:
        """Secrets: installed once from an example, never overwritten."""
        if not dest.exists():
            self._write(dest, source.read_bytes(), user, group, mode)
            self.counts["new"] += 1
            self.notes.append(f"{dest}: placeholder from {source.relative_to(REPO)}; put the real secret "
                              "there")
        else:
            set_owner(dest, user, group, mode)

    def remove(self, dest: Path, *, service: str) -> None:
        """Remove a file this command installed before and no longer needs (unless changed here)."""
        key = str(dest)
        if key not in self.manifest or not dest.exists():
            return
        if sha256(dest.read_bytes()) == self.manifest.pop(key):
            dest.unlink()
            self.changed.add(service)
            self.notes.append(f"removed {dest} (no longer needed)")
        else:
            self.notes.append(f"{dest} is no longer needed but was changed here: kept; remove it by hand")

    @staticmethod
    def _write(dest: Path, raw: bytes, user: str, group: str, mode: int) -> None:
        tmp = dest.with_name(f".{dest.name}.central-up")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        set_owner(tmp, user, group, mode)
        os.replace(tmp, dest)

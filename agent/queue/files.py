"""The buffer directory of the disk queue, and the files in it other than the database's contents.

The directory is private (0700; files 0600), locked for the life of the queue (``flock`` on
``queue.lock``, with the owner's pid in it), and holds besides the database the reserve file (deleted
to make room on a full disk, made again when space returns) and up to ``KEEP_CORRUPT`` corrupt
databases moved aside. No SQLite here: these are plain file operations, used by agent/queue/recovery.py
and agent/queue/disk_queue.py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("hatang.agent.queue")

DB_NAME = "queue.sqlite3"
LOCK_NAME = "queue.lock"
RESERVE_NAME = "queue.reserve"
CORRUPT_MARK = ".corrupt-"  # queue.sqlite3.corrupt-20260509T073525Z (+ -wal, -shm)
KEEP_CORRUPT = 3  # corrupt databases kept for a post-mortem (they take disk space)
RESERVE_BYTES = 1024 * 1024  # deleted to make room for deleting acknowledged rows on a full disk


class QueueLocked(Exception):
    """Another process (another hatang agent) holds the buffer directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        owner = f"another hatang agent (pid {pid})" if pid is not None else "another hatang agent"
        super().__init__(
            f"the buffer directory {directory} is in use by {owner}: it holds the lock "
            f"{directory / LOCK_NAME}. Two agents cannot share a buffer (their messages would go out "
            f"under each other's agent id): give each agent its own buffer.path, or stop the other agent"
        )


def is_own_file(name: str) -> bool:
    return (name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME,
                     RESERVE_NAME, f"{RESERVE_NAME}.tmp")
            or name.startswith(DB_NAME + CORRUPT_MARK))


def private_directory(directory: Path) -> None:
    """Create the buffer directory 0700, or check an existing one: tighten it to 0700 if it holds only
    queue files (an earlier hatang created it 0755), else warn if other users can enter it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    else:
        return
    st = directory.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if st.st_uid == os.geteuid() and all(is_own_file(name) for name in os.listdir(directory)):
        os.chmod(directory, mode & 0o700)
        log.info("buffer directory %s was accessible to other users (mode %o): now %o", directory, mode,
                 mode & 0o700)
        return
    log.warning("buffer directory %s is accessible to other users (mode %o): the queued polls in it "
                "include device names and interface descriptions; chmod 700 it, or give buffer.path a "
                "directory of the agent's own", directory, mode)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, else take away group/other access."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    else:
        os.close(fd)


def lock_directory(directory: Path) -> int:
    """Lock the directory for this process's lifetime (flock on queue.lock, with our pid in it)."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise QueueLocked(directory, pid) from None
        raise
    with contextlib.suppress(OSError):  # the pid is for the error message only (the disk may be full)
        os.fchmod(fd, 0o600)
        data = f"{os.getpid()}\n".encode()
        os.pwrite(fd, data.ljust(16), 0)  # overwrite in place: no new block needed on a full disk
    return fd


def free_space(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def move_corrupt_aside(path: Path, stamp: str) -> Path:
    """Rename the database ``path`` (with its -wal and -shm) to ``queue.sqlite3.corrupt-<stamp>`` (with
    ``.1``, ``.2`` ... if taken); returns the new name of the database file."""
    target = path.with_name(f"{DB_NAME}{CORRUPT_MARK}{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{DB_NAME}{CORRUPT_MARK}{stamp}.{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{target}{suffix}")
    return target


def prune_corrupt(directory: Path) -> None:
    """Delete all but the newest ``KEEP_CORRUPT`` corrupt databases moved aside (each with its WAL)."""
    sets = sorted({p.name.removesuffix("-wal").removesuffix("-shm")
                   for p in directory.glob(f"{DB_NAME}{CORRUPT_MARK}*")})
    for old in sets[:-KEEP_CORRUPT]:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / f"{old}{suffix}")


def write_reserve(path: Path, size: int) -> None:
    """Write the reserve file: ``size`` bytes allocated on the disk (through a temporary file, fsync'd,
    then renamed). Raises OSError (the temporary file removed) when it cannot."""
    tmp = path.with_name(RESERVE_NAME + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                chunk = os.urandom(64 * 1024)  # not zeros: a compressing filesystem would keep none
                for offset in range(0, size, len(chunk)):
                    os.pwrite(fd, chunk[: size - offset], offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

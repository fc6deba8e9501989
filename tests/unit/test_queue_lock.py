"""Two agents on one buffer directory: the second queue is refused with a message naming the directory,
the other agent's pid and the fix (one buffer.path per agent), also across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.queue import DiskQueue, QueueLocked

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024

_HOLDER = """
import sys
from pathlib import Path
from agent.queue import DiskQueue
q = DiskQueue(Path(sys.argv[1]), max_bytes=1 << 20, max_age=86400)
q.append("sw", b"from the first agent")
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
q.close()
"""


def _holder(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory)], cwd=REPO, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_a_queue_held_by_another_process_is_refused_with_its_pid(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    holder = _holder(directory)
    try:
        with pytest.raises(QueueLocked) as raised:
            DiskQueue(directory, max_bytes=MIB, max_age=86400)
        message = str(raised.value)
        owner = f"is in use by another hatang agent (pid {holder.pid})"
        assert f"the buffer directory {directory} {owner}" in message
        assert "give each agent its own buffer.path" in message
        assert raised.value.pid == holder.pid
        assert (directory / "queue.lock").read_text().strip() == str(holder.pid)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    q = DiskQueue(directory, max_bytes=MIB, max_age=86400)  # released when that process ended
    try:
        assert [m.payload for m in q.peek(10)] == [b"from the first agent"]
        assert (directory / "queue.lock").read_text().strip() == str(os.getpid())
    finally:
        q.close()


def test_the_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    directory = tmp_path / "buffer"
    holder = _holder(directory)
    holder.kill()
    holder.wait(timeout=60)
    q = DiskQueue(directory, max_bytes=MIB, max_age=86400)  # no stale lock after kill -9
    try:
        assert q.stats().depth == 1
    finally:
        q.close()

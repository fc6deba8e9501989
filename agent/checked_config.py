"""The agent's configuration and profiles, checked here or in a short-lived child process.

Checking a file takes pydantic (hatang/configfile.py), and a process that imports pydantic keeps about
12 MB more for the rest of its life (docs/performance.md, the commune agent's memory). The long-running
agent (``hatang agent``) therefore has every configuration checked by a child process,
``python -m agent.checked_config``: at start, and for each configuration the centre pushes
(agent/remote_config.py). The child loads and checks exactly as ``hatang check`` does and answers with
the checked dataclasses (agent/config.py, agent/profiles.py), pickled; a :class:`ConfigError` comes back
as the same error, naming file, key and fix. Commands that run briefly (``check``, ``poll``, the demo)
and the tests check in their own process (:func:`check_here`).

A :data:`ConfigChecker` is either function: ``check(path, data=None, source=None)`` reads ``path`` (or
validates ``data``, the file merged with the centre's configuration, with errors naming ``source``) and
returns a :class:`Checked`.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.profiles import Profile
from hatang.config_errors import ConfigError, ConfigWarning

# Seconds the child may take: loading a large config and every profile takes about a second on an
# office's small box; a child that hangs must not hang the agent's start for ever.
CHILD_TIMEOUT = 300.0


@dataclass(frozen=True)
class Checked:
    """A configuration that passed every check, its warnings, and the profiles it can use."""

    config: AgentConfig
    warnings: list[ConfigWarning]
    profiles: dict[str, Profile]


ConfigChecker = Callable[..., Checked]
"""``check(path, data=None, *, source=None) -> Checked``: :func:`check_here` or :func:`check_in_child`."""


class CheckFailed(RuntimeError):
    """The child process could not check the configuration at all (it crashed, or timed out)."""


def check_here(path: Path, data: Any = None, *, source: Path | None = None) -> Checked:
    """Load and check in this process (imports pydantic). Raises :class:`ConfigError`."""
    from agent.config import load_with_warnings
    from agent.profiles import load_profiles

    config, warnings = load_with_warnings(path, data, source=source)
    return Checked(config, warnings, load_profiles(config.profiles_dir))


def check_in_child(path: Path, data: Any = None, *, source: Path | None = None) -> Checked:
    """:func:`check_here` in a child process, so that this one never imports pydantic. Raises
    :class:`ConfigError` as :func:`check_here` would, :class:`CheckFailed` when the child fails."""
    # -P: the child finds the agent where this process did, never in the working directory
    command = [sys.executable, "-P", "-m", "agent.checked_config"]
    returncode, stdout, stderr, timed_out = _run(command, pickle.dumps((path, data, source)))
    if timed_out:
        raise CheckFailed(f"checking {source or path} took over {CHILD_TIMEOUT:g} s ({' '.join(command)})")
    if returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise CheckFailed(f"checking {source or path} failed ({' '.join(command)} exited with "
                          f"{returncode}): {' | '.join(detail) or 'no message'}")
    answer = pickle.loads(stdout)  # our own child's answer, on a pipe
    if answer[0] == "error":
        raise ConfigError(answer[1], answer[2])
    checked: Checked = answer[1]
    return checked


def _run(command: list[str], request: bytes) -> tuple[int, bytes, bytes, bool]:
    """Run the child to its end: (exit code, stdout, stderr, killed for taking over CHILD_TIMEOUT).

    The deadline is a timer that kills the child, not ``subprocess.run(timeout=...)``: that one waits for
    the exit in ``time.sleep`` steps, which fail (EINVAL) under a shifted wall clock (libfaketime with a
    negative offset, tests/e2e/test_clock_faults.py); here the wait is a plain blocking ``waitpid``."""
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as child:
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            child.kill()

        watchdog = threading.Timer(CHILD_TIMEOUT, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            stdout, stderr = child.communicate(request)
        finally:
            watchdog.cancel()
        return child.returncode, stdout, stderr, expired.is_set()


def main() -> int:
    """The child: a pickled ``(path, data, source)`` on stdin, a pickled answer on stdout."""
    path, data, source = pickle.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    with contextlib.redirect_stdout(sys.stderr):  # nothing printed may corrupt the answer
        try:
            answer: tuple[Any, ...] = ("ok", check_here(path, data, source=source))
        except ConfigError as exc:
            answer = ("error", exc.path, exc.problems)
    out.write(pickle.dumps(answer))
    out.flush()
    return 0


if __name__ == "__main__":
    # run as agent.checked_config, not __main__: the answer's classes must pickle under their real names
    from agent.checked_config import main as child_main

    sys.exit(child_main())

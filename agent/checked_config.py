"""The agent's configuration and profiles, checked here or in a short-lived child process.

Checking a file takes pydantic (hatang/configfile.py), and a process that imports pydantic keeps about
12 MB more for the rest of its life (docs/performance.md, the commune agent's memory). The long-running
agent (``hatang agent``) therefore has every configuration checked by a child process,
``python -m agent.checked_config``: at start, and for each configuration the centre pushes
(agent/remote_config.py). The child loads and checks exactly as ``hatang check`` does and answers with
the checked dataclasses (agent/config.py, agent/profiles.py), pickled; a :class:`ConfigError` comes back
as the same error, naming file, key and fix. Commands that run briefly (``check``, ``poll``, the demo)
and the tests check in their own process (:func:`check_here`).

A :class:`ConfigChecker` is either function: ``check(path, data=None, source=None)`` reads ``path`` (or
validates ``data``: a document, or :class:`Pushed`, the centre's configuration over the file's text) with
errors naming ``source`` (default ``path``), and returns a :class:`Checked`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Pushed:
    """A configuration from the centre (its document's keys) over the office's agent.yaml as the agent read
    it at start (``local_text``): merged where it is checked, so YAML is parsed there, not in the agent."""

    local_text: str
    config: dict[str, Any]


class ConfigChecker(Protocol):
    """:func:`check_here` or :func:`check_in_child`."""

    def __call__(self, path: Path, data: Any = None, *, source: Path | None = None) -> Checked: ...


class CheckFailed(RuntimeError):
    """The child process could not check the configuration at all (it crashed, or timed out)."""


def check_here(path: Path, data: Any = None, *, source: Path | None = None) -> Checked:
    """Load and check in this process (imports pydantic). Raises :class:`ConfigError`."""
    from agent.config import load_with_warnings
    from agent.profiles import load_profiles

    if isinstance(data, Pushed):
        from hatang.yaml_loading import parse_yaml

        local = parse_yaml(data.local_text, path)
        data = {**(local if isinstance(local, dict) else {}), **data.config}
    config, warnings = load_with_warnings(path, data, source=source)
    return Checked(config, warnings, load_profiles(config.profiles_dir))


def check_in_child(path: Path, data: Any = None, *, source: Path | None = None) -> Checked:
    """:func:`check_here` in a child process, so that this one never imports pydantic. Raises
    :class:`ConfigError` as :func:`check_here` would, :class:`CheckFailed` when the child fails."""
    # The interpreter of this process, with its installed agent; -P: the working directory is not put on
    # sys.path, so a directory named ``agent`` there cannot stand in for it.
    command = [sys.executable, "-P", "-m", "agent.checked_config"]
    returncode, stdout, stderr, timed_out = _run(command, pickle.dumps((path, data, source)))
    what = f"checking {source or path}"
    if returncode != 0:
        if timed_out:
            raise CheckFailed(f"{what} took over {CHILD_TIMEOUT:g} s ({' '.join(command)})")
        detail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise CheckFailed(f"{what} failed ({' '.join(command)} exited with {returncode}): "
                          f"{' | '.join(detail) or 'no message'}")
    try:
        answer = pickle.loads(stdout)  # our own child's answer, on a pipe
        if answer[0] == "error":
            error = ConfigError(answer[1], answer[2])
        elif answer[0] == "ok" and isinstance(answer[1], Checked):
            return answer[1]
        else:
            raise ValueError(f"unexpected answer {answer[0]!r}")
    except Exception as exc:  # whatever came out, it is not an answer
        raise CheckFailed(f"{what}: {' '.join(command)} gave no usable answer ({type(exc).__name__}: "
                          f"{exc}; {len(stdout)} bytes)") from None
    raise error


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
    # The answer gets its own copy of stdout; anything else written there (print, a C library) goes to
    # stderr, so nothing can corrupt it.
    sys.stdout.flush()
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    path, data, source = pickle.loads(sys.stdin.buffer.read())  # from the parent
    try:
        answer: tuple[Any, ...] = ("ok", check_here(path, data, source=source))
    except ConfigError as exc:
        answer = ("error", exc.path, exc.problems)
    with os.fdopen(answer_fd, "wb") as out:
        out.write(pickle.dumps(answer))
    return 0


if __name__ == "__main__":
    # run as agent.checked_config, not __main__: the answer's classes must pickle under their real names
    from agent.checked_config import main as child_main

    sys.exit(child_main())

"""What loading a config file reports: :class:`ConfigError` (cannot be used), :class:`ConfigWarning`
(works, probably not as meant) and :func:`key_path`, the way both name a key (``devices[2].snmp``).

The lowest of the config modules: :mod:`hatang.yaml_loading` and :mod:`hatang.configfile` import it;
it imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is the message to print, one problem per line."""

    def __init__(self, path: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = [f"{self.path}: {key}: {msg}" if key else f"{self.path}: {msg}" for key, msg in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A config that works but probably not as meant (or not safely). ``str()`` is the line to print."""

    path: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message}" if self.key else f"{self.path}: {self.message}"


def key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out

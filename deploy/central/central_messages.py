"""What ``scripts/central-up`` tells the operator: its name (``PROG``), the error that stops it with a
message (``CentralUpError``) and ``say``, which prints one ``central-up: ...`` line."""

from __future__ import annotations

import sys
from typing import TextIO

PROG = "central-up"


class CentralUpError(Exception):
    """Something the operator has to fix; ``str()`` says what and how."""


def say(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROG}: {message}", file=stream or sys.stdout, flush=True)

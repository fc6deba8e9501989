"""The systemd units in deploy/systemd link no document that does not exist where they run."""

from __future__ import annotations

import re
from pathlib import Path

UNITS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "systemd").glob("*.service"))


def test_units_link_no_web_page() -> None:
    """The project has no web site and ``pip install .`` installs no documents: a unit may only point
    at a manual page or a local file (Documentation= takes man:, info:, file: and http(s): URIs)."""
    assert UNITS
    for unit in UNITS:
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            assert not re.search(r"https?://", line), f"{unit.name}: {line}"
            if line.startswith("Documentation="):
                for uri in line.partition("=")[2].split():
                    assert uri.split(":", 1)[0] in ("man", "info", "file"), f"{unit.name}: {uri}"

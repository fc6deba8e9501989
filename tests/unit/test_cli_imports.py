"""The daemons' command lines do not load the centre's availability tools nor ``hatang discover`` (their
memory is counted); every other command line offers them."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from hatang import cli
code = cli.main({argv!r})
print(code, "hatang.availability" in sys.modules, "agent.discovery" in sys.modules)
"""


def _run(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK.format(argv=argv)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout.strip().splitlines()[-1]  # the last line: the command prints before it


def test_a_daemon_command_line_does_not_import_the_report_tools() -> None:
    # a config that does not exist: the command stops at loading it (exit 2), after parsing
    assert _run(["agent", "-c", "/nonexistent/agent.yaml"]) == "2 False False"
    assert _run(["collector", "-c", "/nonexistent/collector.yaml"]) == "2 False False"


def test_other_command_lines_offer_them() -> None:
    assert _run(["maintenance", "list", "--file", "/nonexistent/maintenance.yaml"]) == "0 True True"

"""What an agent loads: pysnmp (and the cryptography it pulls in, about 11 MB of a v2c agent's memory)
only when a feature needs it: an SNMPv3 device, SNMP with the fast path off, or the trap receiver (issue
#19, goal 5). Each case runs in a fresh interpreter, so nothing another test imported counts."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PROGRAM = """
import asyncio, sys
import agent.service, hatang.cli  # what `hatang agent` imports
from agent.snmp.engine import SnmpEngine
from agent.snmp.credentials import Credentials

async def main() -> None:
    engine = SnmpEngine(fast_path={fast_path})
    await engine.target("127.0.0.1", 161, Credentials(version="{version}", community="public",
                        username="u", auth_protocol="SHA", auth_password="12345678"), timeout=1, retries=0)
    engine.close()

asyncio.run(main())
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"pysnmp", "pyasn1", "cryptography"}}))
"""


def loaded(version: str, fast_path: bool = True) -> str:
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(version=version, fast_path=fast_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_v2c_agent_never_loads_pysnmp() -> None:
    assert loaded("2c") == "[]"
    assert loaded("1") == "[]"


def test_snmpv3_and_the_slow_path_load_it_when_needed() -> None:
    assert "pysnmp" not in loaded("3") and "cryptography" in loaded("3")  # the v3 fast path: own USM
    assert "pysnmp" in loaded("3", fast_path=False)
    assert "pysnmp" in loaded("2c", fast_path=False)

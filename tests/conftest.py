"""Shared fixtures: real Mosquitto and snmpd on free loopback ports, stopped by PID at teardown.

Imports use the ``tests.`` package prefix (``tests/``, ``tests/unit/``, ``tests/integration/`` and
``tests/support/`` all have ``__init__.py``), so ``python -m pytest`` and plain ``pytest`` from the repo
root both work and same-named test modules in different folders do not collide.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import Mosquitto, Snmpd, start_mosquitto, start_snmpd, stop_all

_LOG_TAIL_CHARS = 8000
_reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_reports_key, {})[report.when] = report
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_reports_key, {})
    return any(r.failed for r in reports.values())


def _dump_log_on_failure(request: pytest.FixtureRequest, name: str, log: str) -> None:
    """Print the component's log tail to stderr; pytest shows it under the failed test's teardown."""
    if request.scope == "function" and _test_failed(request):
        tail = log[-_LOG_TAIL_CHARS:]
        sys.stderr.write(f"\n----- {name} log (last {len(tail)} chars) -----\n{tail}\n")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: stop any component a test started directly and forgot to stop."""
    stop_all()


@pytest.fixture
def mosquitto(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """A Mosquitto broker (anonymous access) on a free 127.0.0.1 port; stopped at teardown."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()
        _dump_log_on_failure(request, "mosquitto", broker.log())


@pytest.fixture
def snmpd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Snmpd]:
    """A net-snmp agent (v2c community "public") on a free 127.0.0.1 UDP port; stopped at teardown."""
    agent = start_snmpd(tmp_path / "snmpd")
    try:
        yield agent
    finally:
        agent.stop()
        _dump_log_on_failure(request, "snmpd", agent.log())


@pytest.fixture(scope="module")
def snmpd_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One net-snmp agent shared by a test module (read-only use: do not stop it in a test)."""
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd-module"))
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the event loop's exception handler (e.g. a callback failing on a cancelled or done
    future): tests assert it stays empty."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)

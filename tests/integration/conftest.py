"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import snmprec
from tests.support.services import unavailable


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The snmpsim-data recordings of real devices (skipped without them, failed when CI=true)."""
    found = snmprec.data_dir()
    if found is None:
        message = (f"the recordings of real devices need the PyPI package {snmprec.PACKAGE} "
                   f"(pip install {snmprec.PACKAGE}; it belongs in the test extras)")
        unavailable(message)
    return found

"""Fixtures shared by the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import snmprec


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The snmpsim-data recordings of real devices (skipped without them, failed when CI=true)."""
    found = snmprec.data_dir()
    if found is None:
        message = (f"the recordings of real devices need the PyPI package {snmprec.PACKAGE} "
                   f"(pip install {snmprec.PACKAGE}; it belongs in the test extras)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found

"""Every third-party package the code imports is a declared runtime dependency (pyproject.toml).

A package that arrives only as a dependency of a dependency (paho-mqtt through aiomqtt, pydantic-core
through pydantic) or through the test extras (cryptography through trustme) works in the test venv and
breaks a user's install the day the other package changes. The runtime install itself is exercised by
tests/e2e/test_runtime_install.py; this test names the import and the missing declaration.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "collector", "wire", "hatang")
# Imported by a dependency only when a feature is used, so no import statement of ours shows them.
LAZY = {"cryptography": "pysnmp imports it for SNMPv3 privacy (DES/AES) at the first authPriv request"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_normalize(match.group(0)))
    return names


def _imported_top_level_names() -> dict[str, set[str]]:
    """{top-level module name: files importing it} for absolute imports in our packages."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.partition(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {}
    third_party = set()
    for name, files in _imported_top_level_names().items():
        if name in sys.stdlib_module_names or name in PACKAGES or name == "__future__":
            continue
        providers = {_normalize(d) for d in distributions.get(name, [])}
        assert providers, f"no installed distribution provides {name!r} (imported by {sorted(files)})"
        third_party.add(name)
        if not providers & declared:
            undeclared[name] = (sorted(providers), sorted(files))
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    assert {"pysnmp", "aiomqtt", "paho", "pydantic", "yaml"} <= third_party  # the scan sees imports


def test_lazily_imported_dependencies_are_declared() -> None:
    declared = _declared()
    missing = {name: why for name, why in LAZY.items() if _normalize(name) not in declared}
    assert not missing, f"not in [project] dependencies: {missing}"

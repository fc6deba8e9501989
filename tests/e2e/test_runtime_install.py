"""A user's install is not the test environment: what ``pip install .`` alone gives must run.

``scripts/test`` builds a runtime venv with only ``pip install .`` (no test extras) and exports its
``bin/hatang`` as ``HATANG_BIN``; every ``hatang`` process of the test suite runs from it, in a working
directory outside the repository (tests/support/hatang.py). The tests here check the install itself:
every module imports, every package file is there, and the lazily imported dependency of SNMPv3 privacy
(``cryptography``, which pysnmp only imports at the first authPriv request) is installed with it.
Without ``HATANG_BIN`` they fail under ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hatang import REPO, hatang_env, outside_cwd, run_hatang, runtime_bin, write_yaml
from tests.support.services import Snmpd, start_snmpd, unavailable

pytestmark = pytest.mark.integration

PACKAGES = ("agent", "collector", "wire", "hatang")
V3_USER = "hatang-v3"
AUTH_PASS = "auth-pass-1234"
PRIV_PASS = "priv-pass-5678"

# Imports every module (``__main__`` modules would run the command: only found); prints {name: file}.
_IMPORT_ALL = """
    import importlib, importlib.util, json, pkgutil, sys
    names = sys.argv[1:]
    found = {}
    for name in names:
        package = importlib.import_module(name)
        found[name] = package.__file__
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            if info.name.rpartition(".")[2] == "__main__":
                found[info.name] = importlib.util.find_spec(info.name).origin
            else:
                found[info.name] = importlib.import_module(info.name).__file__
    print(json.dumps(found))
"""


def _runtime_python() -> Path:
    binary = runtime_bin()
    if binary is None:
        unavailable("HATANG_BIN is not set: the runtime install is built by scripts/test")
    python = binary.parent / "python"
    assert python.exists(), f"no python beside {binary}"
    return python


def _source_modules() -> set[str]:
    """Module names of the checkout's packages, from their files."""
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _package_files(root: Path) -> set[str]:
    """Files of the packages under ``root`` (relative paths), without caches."""
    return {str(p.relative_to(root)) for package in PACKAGES for p in (root / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_runtime_install_imports_every_module_from_outside_the_checkout() -> None:
    """Fails when a module imports a package that ``pip install .`` does not bring (a dependency
    missing from pyproject.toml), or when a module of the checkout is not in the install."""
    python = _runtime_python()
    proc = subprocess.run([str(python), "-c", textwrap.dedent(_IMPORT_ALL), *PACKAGES],
                          capture_output=True, text=True, timeout=120, check=False, cwd=outside_cwd(),
                          env=hatang_env(runtime=True))
    assert proc.returncode == 0, f"importing every module in the runtime install failed:\n{proc.stderr}"
    imported: dict[str, str] = json.loads(proc.stdout)
    assert set(imported) == _source_modules()
    outside = {name: file for name, file in imported.items() if Path(file).resolve().is_relative_to(REPO)}
    assert not outside, f"imported from the checkout, not from the install: {outside}"


def test_runtime_install_carries_every_package_file() -> None:
    """Every file of the packages (profile YAMLs and any other data read at run time) is installed."""
    python = _runtime_python()
    where = "import agent, pathlib; print(pathlib.Path(agent.__file__).parent)"
    proc = subprocess.run([str(python), "-c", where], capture_output=True, text=True, timeout=60,
                          check=False, cwd=outside_cwd(), env=hatang_env(runtime=True))
    assert proc.returncode == 0, proc.stderr
    site = Path(proc.stdout.strip()).parent
    assert not site.resolve().is_relative_to(REPO)
    missing = _package_files(REPO) - _package_files(site)
    assert not missing, f"files of the checkout's packages missing from the install: {sorted(missing)}"
    assert {p.name for p in (site / "agent" / "profiles").glob("*.yaml")} >= {
        "system.yaml", "interfaces.yaml", "host.yaml", "ups.yaml", "sensors.yaml"}


@pytest.fixture
def v3_snmpd(tmp_path: Path) -> Iterator[Snmpd]:
    """net-snmp with one SNMPv3 user that requires authPriv (tests/integration/test_snmpv3.py and
    tests/integration/test_services.py check such users against net-snmp's own tools)."""
    agent = start_snmpd(tmp_path / "snmpd", extra_config=(
        f'createUser {V3_USER} SHA-256 "{AUTH_PASS}" AES "{PRIV_PASS}"\nrouser {V3_USER} priv'))
    try:
        yield agent
    finally:
        agent.stop()


def test_hatang_poll_reads_an_snmpv3_auth_priv_device(tmp_path: Path, v3_snmpd: Snmpd) -> None:
    """``hatang poll`` of the runtime install over SNMPv3 authPriv (SHA-256/AES) against net-snmp prints
    the device's values. pysnmp imports ``cryptography`` only here: without it in the install the poll
    reports "Ciphering services not available" and the device DOWN."""
    _runtime_python()
    (tmp_path / "auth.secret").write_text(AUTH_PASS + "\n", encoding="utf-8")
    (tmp_path / "priv.secret").write_text(PRIV_PASS + "\n", encoding="utf-8")
    path = write_yaml(tmp_path / "agent.yaml", {
        "agent_id": "xa-dai-dinh", "site": {"province": "Vĩnh Phúc", "commune": "Đại Đình"},
        "mqtt": {"url": "mqtt://127.0.0.1:1"}, "buffer": {"path": str(tmp_path / "buffer")},
        "devices": [{"name": "core-router", "address": v3_snmpd.host, "port": v3_snmpd.port,
                     "snmp": {"version": 3, "username": V3_USER, "auth_protocol": "SHA256",
                              "auth_password_file": "auth.secret", "priv_protocol": "AES",
                              "priv_password_file": "priv.secret", "timeout": 1, "retries": 1},
                     "profiles": ["system", "interfaces"]}],
    })
    result = run_hatang(["poll", "-c", str(path), "--device", "core-router"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"SNMP v3 user '{V3_USER}' authPriv (SHA256/AES)" in out, out
    assert "status: UP (answered)" in out and "errors: none" in out, out
    assert 'sys_name="hatang-test-snmpd"' in out
    lo_in = re.search(r'^hatang_interface_in_bytes_total\{[^}]*if_name="lo"[^}]*\} (\d+)$', out, re.MULTILINE)
    assert lo_in is not None and int(lo_in.group(1)) > 0, out

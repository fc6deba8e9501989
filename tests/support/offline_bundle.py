"""The offline agent bundle for tests: built once per session (tests/e2e/conftest.py) from the wheelhouse
that scripts/test downloads ($HATANG_TEST_WHEELHOUSE), with the network switched off: in a new network
namespace with no interfaces when ``unshare`` can make one, and always with pip's index pointed at a
closed loopback port and no proxies, so any download attempt fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.hatang import outside_cwd
from tests.support.services import unavailable

WHEELHOUSE_VARIABLE = "HATANG_TEST_WHEELHOUSE"
CLOSED_PORT_URL = "http://127.0.0.1:9/"  # discard port, nothing listens: any download attempt fails
BUILD_TIMEOUT = 600



@cache
def _no_network_prefix() -> tuple[str, ...]:
    """argv prefix that runs a command in a new network namespace (no interfaces up), when possible."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "--net"), (unshare, "--net", "--map-root-user")):
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return (*prefix, "--")
    return ()


def offline_env(**extra: str) -> dict[str, str]:
    """Our environment without pip settings and proxies; pip told to use no index, and an index URL on a
    closed loopback port in case anything still asks for one."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and not k.lower().endswith("_proxy")
           and k not in ("PYTHONPATH", "PYTHONHOME", "HATANG_PYTHON")}
    env.update(PIP_NO_INDEX="1", PIP_INDEX_URL=CLOSED_PORT_URL, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def run_offline(argv: list[str], timeout: float, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_no_network_prefix(), *argv], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=cwd or outside_cwd(), env=env or offline_env())


@dataclass(frozen=True)
class Bundle:
    archive: Path  # hatang-agent-offline-<version>.tar.gz
    root: Path  # the unpacked bundle (holds install-agent.sh)
    version: str

    @property
    def installer(self) -> Path:
        return self.root / "install-agent.sh"


def version_of(checkout: Path) -> str:
    text = (checkout / "hatang" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    assert match, "no __version__ in hatang/__init__.py"
    return match.group(1)


def build_bundle(checkout: Path, wheelhouse: Path, out: Path) -> Bundle:
    out.mkdir(parents=True, exist_ok=True)
    argv = ["bash", str(checkout / "scripts" / "offline-bundle"), "--wheelhouse", str(wheelhouse),
            "--pip", sys.executable, "--output", str(out)]
    proc = run_offline(argv, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, f"offline-bundle failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    version = version_of(checkout)
    archive = out / f"hatang-agent-offline-{version}.tar.gz"
    assert proc.stdout.strip().splitlines()[-1] == str(archive), proc.stdout
    assert archive.is_file()
    unpacked = out / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="tar")
    return Bundle(archive, unpacked / f"hatang-agent-offline-{version}", version)


def wheelhouse_dir() -> Path:
    """$HATANG_TEST_WHEELHOUSE (fails under CI=true when unset, else skips)."""
    value = os.environ.get(WHEELHOUSE_VARIABLE)
    if not value:
        unavailable(f"{WHEELHOUSE_VARIABLE} is not set: scripts/test downloads the wheelhouse "
                    "(scripts/offline-bundle --download-only --wheelhouse DIR) and exports it")
    path = Path(value)
    assert path.is_dir() and any(path.glob("*.whl")), f"{WHEELHOUSE_VARIABLE}={value} holds no wheels"
    return path

"""The Ansible role and playbook (deploy/ansible/) roll agents out from the offline bundle, for real.

``ansible-playbook`` (Debian's ``ansible-core``) runs deploy/ansible/agents.yml against this machine
(``ansible_connection=local``) with ``hatang_root`` set to a temporary prefix, so every path the installer
writes lies under it and no service is started (``--no-start``). The offline bundle is built once per
session by ``scripts/offline-bundle`` from the wheels that ``scripts/test`` downloads (HATANG_TEST_WHEELHOUSE,
so pip never needs the network); the office's enrolment bundle comes from ``hatang fleet add-agent``.

Checked: the playbook passes ``--syntax-check`` and the example inventory parses; a first run installs an
agent that works (``hatang --version``, the role's post-check ``hatang check``) and leaves no copy of the
enrolment bundle (the office's secrets) on the box; a second run changes nothing (``changed=0`` in the PLAY
RECAP); a rotated enrolment (``hatang fleet rotate-agent``) is copied, installed and deleted again; a newer
bundle replaces the old one on the box; removing twice changes nothing the second time; and a broken bundle
stops a rolling roll-out at the first office (the canary).
Without ansible-playbook or the wheelhouse: fail under ``CI=true``, skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hatang import __version__
from tests.support.hatang import REPO, outside_cwd, run_hatang
from tests.support.offline_bundle import Bundle
from tests.support.services import require_binary

pytestmark = pytest.mark.integration

ANSIBLE_DIR = REPO / "deploy" / "ansible"
PLAYBOOK = ANSIBLE_DIR / "agents.yml"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory.example.yml"
OFFLINE_BUNDLE_SCRIPT = REPO / "scripts" / "offline-bundle"
WHEELHOUSE_VARIABLE = "HATANG_TEST_WHEELHOUSE"
AGENT_ID = "xa-dai-dinh"
SITE = "province=Vĩnh Phúc,district=Tam Đảo,commune=Đại Đình"

PLAYBOOK_TIMEOUT = 900  # the first run creates a venv and installs the wheels
BUNDLE_TIMEOUT = 900

_RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
    r"\s+ignored=(?P<ignored>\d+)\s*$"
)


@dataclass(frozen=True)
class Run:
    """One ``ansible-playbook`` run: exit code, output and PLAY RECAP ({host: {ok: n, changed: n, ...}})."""

    returncode: int
    output: str
    recap: dict[str, dict[str, int]]

    def explain(self) -> str:
        return f"ansible-playbook exited {self.returncode}; its output (end):\n{self.output[-12000:]}"


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ``ansible-playbook`` output: {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    _, marker, tail = output.rpartition("PLAY RECAP")
    assert marker, "no PLAY RECAP in the output"
    recap: dict[str, dict[str, int]] = {}
    for line in tail.splitlines()[1:]:
        match = _RECAP_LINE.match(line.strip())
        if match:
            host = match.group("host")
            recap[host] = {key: int(value) for key, value in match.groupdict().items() if key != "host"}
    return recap


def test_parse_recap_reads_every_host() -> None:
    output = (
        "TASK [x] ***\nok: [a]\n\nPLAY RECAP *********************************************************\n"
        "a                          : ok=15   changed=7    unreachable=0    failed=0    skipped=5    "
        "rescued=0    ignored=0   \n"
        "b.example                  : ok=3    changed=0    unreachable=1    failed=2    skipped=0    "
        "rescued=0    ignored=1   \n"
    )
    assert parse_recap(output) == {
        "a": {"ok": 15, "changed": 7, "unreachable": 0, "failed": 0, "skipped": 5, "rescued": 0,
              "ignored": 0},
        "b.example": {"ok": 3, "changed": 0, "unreachable": 1, "failed": 2, "skipped": 0, "rescued": 0,
                      "ignored": 1},
    }


# --------------------------------------------------------------------------------------------------
# running ansible


def _ansible_binary(name: str) -> str:
    return require_binary(name, "ansible-core")


def _target_python() -> str:
    """A Python 3.11 for the modules Ansible runs on the "office box" (this machine)."""
    for candidate in ("/usr/bin/python3.11", "/usr/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("python3.11") or sys.executable


def _ansible_env(work: Path) -> dict[str, str]:
    """Our environment for ansible, with its home and temporary directories under ``work`` (nothing in
    ~/.ansible) and the repository's ansible.cfg."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("ANSIBLE_")}
    home = work / "ansible-home"
    for name in ("tmp-local", "tmp-remote"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update({
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp-local"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PYTHONNOUSERSITE": "1",
    })
    return env


def run_playbook(work: Path, inventory: Path, extra_vars: dict[str, Any], *args: str) -> Run:
    """``ansible-playbook -i INVENTORY agents.yml -e @VARS ARGS`` from deploy/ansible; its recap."""
    playbook = _ansible_binary("ansible-playbook")
    vars_file = work / "extra-vars.json"
    vars_file.write_text(json.dumps(extra_vars), encoding="utf-8")
    proc = subprocess.run(
        [playbook, "-i", str(inventory), str(PLAYBOOK), "-e", f"@{vars_file}", *args],
        capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, check=False, cwd=ANSIBLE_DIR,
        env=_ansible_env(work),
    )
    output = proc.stdout + ("\n--- stderr ---\n" + proc.stderr if proc.stderr else "")
    recap = parse_recap(proc.stdout) if "PLAY RECAP" in proc.stdout else {}
    return Run(proc.returncode, output, recap)


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    """An inventory of "office boxes" that are all this machine (connection local), in hatang_agents."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": _target_python()}
    data = {"all": {"children": {"hatang_agents": {
        "hosts": {name: {**local, **host_vars} for name, host_vars in hosts.items()}}}}}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# The tests run as whoever runs pytest, on this machine: no sudo (the playbook's `become: true` is for
# real office boxes reached over SSH).
NO_BECOME = {"ansible_become": False}


# --------------------------------------------------------------------------------------------------
# bundles


@pytest.fixture(scope="session")
def offline_bundle(bundle: Bundle) -> Path:
    """hatang-agent-offline-<version>.tar.gz built once per session from the checkout by
    scripts/offline-bundle, offline (tests/e2e/conftest.py)."""
    _ansible_binary("ansible-playbook")  # no point in an install run without ansible
    return bundle.archive


def enrol(fleet: Path, agent_id: str, root: Path, command: str = "add-agent") -> Path:
    """The enrolment bundle of ``agent_id`` made by ``hatang fleet`` (in ``fleet``/enrol), with the agent's
    buffer under the test's prefix ``root``; ``command`` "rotate-agent" gives it a new password."""
    if not (fleet / "fleet.yaml").exists():
        proc = run_hatang(["fleet", "init", "--fleet", str(fleet), "--broker-url", "mqtts://127.0.0.1:8883",
                           "--reload-command", ""])
        assert proc.returncode == 0, f"hatang fleet init failed:\n{proc.stdout}\n{proc.stderr}"
    site = ["--site", SITE] if command == "add-agent" else []
    proc = run_hatang(["fleet", command, agent_id, "--fleet", str(fleet), *site, "--no-reload",
                       "--buffer-path", str(root / "var/lib/hatang/buffer")])
    assert proc.returncode == 0, f"hatang fleet {command} failed:\n{proc.stdout}\n{proc.stderr}"
    bundle = fleet / "enrol" / f"{agent_id}.tar.gz"
    assert bundle.is_file(), f"no enrolment bundle at {bundle}:\n{proc.stdout}"
    return bundle


def enrolment_member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(name)
        assert member is not None, name
        return member.read()


def checksum_prefix(bundle: Path) -> str:
    """The first 12 hex digits of the bundle's SHA-1: the role names its unpacked directory by them."""
    return hashlib.sha1(bundle.read_bytes()).hexdigest()[:12]


def broken_bundle(directory: Path, name: str) -> Path:
    """An "offline bundle" whose installer fails, as a bad release would."""
    installer = directory / "broken" / "install-agent.sh"
    installer.parent.mkdir(parents=True)
    installer.write_text("#!/bin/sh\necho 'install-agent.sh: this release is broken' >&2\nexit 1\n",
                         encoding="utf-8")
    installer.chmod(0o755)
    bundle = directory / name
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(installer, arcname="install-agent.sh")
    return bundle


@pytest.fixture
def work() -> Iterator[Path]:
    """The test's directory outside the repository (the prefix, the fleet, ansible's home)."""
    path = outside_cwd()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# tests


def test_playbook_passes_syntax_check_and_example_inventory_parses(work: Path) -> None:
    proc = subprocess.run(
        [_ansible_binary("ansible-playbook"), "--syntax-check", "-i", str(EXAMPLE_INVENTORY), str(PLAYBOOK)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ANSIBLE_DIR, env=_ansible_env(work))
    assert proc.returncode == 0, f"--syntax-check failed:\n{proc.stdout}\n{proc.stderr}"

    proc = subprocess.run(
        [_ansible_binary("ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ANSIBLE_DIR, env=_ansible_env(work))
    assert proc.returncode == 0, f"ansible-inventory failed:\n{proc.stdout}\n{proc.stderr}"
    inventory = json.loads(proc.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert len(hostvars) >= 2, inventory
    for host, host_vars in hostvars.items():
        assert str(host_vars["hatang_offline_bundle"]).endswith(".tar.gz"), (host, host_vars)
        assert host_vars["hatang_enrolment_dir"], (host, host_vars)
    # every host is reached through the group the playbook targets (possibly via district groups)
    members: set[str] = set()
    pending = ["hatang_agents"]
    while pending:
        group = inventory.get(pending.pop(), {})
        members.update(group.get("hosts", []))
        pending.extend(group.get("children", []))
    assert members == set(hostvars), (members, set(hostvars))


def test_roll_out_installs_then_a_second_run_changes_nothing(work: Path, offline_bundle: Path) -> None:
    root = work / "root"
    root.mkdir()
    fleet = work / "fleet"
    enrolment = enrol(fleet, AGENT_ID, root)
    inventory = write_inventory(work / "inventory.yml", {AGENT_ID: {"hatang_root": str(root)}})
    extra = {**NO_BECOME, "hatang_offline_bundle": str(offline_bundle),
             "hatang_enrolment_dir": str(fleet / "enrol")}

    first = run_playbook(work, inventory, extra)
    assert first.returncode == 0, first.explain()
    assert first.recap[AGENT_ID]["failed"] == 0 and first.recap[AGENT_ID]["unreachable"] == 0, first.explain()
    assert first.recap[AGENT_ID]["changed"] > 0, first.explain()
    assert "Check the installed agent's configuration" in first.output, first.explain()

    hatang = root / "opt/hatang/venv/bin/hatang"
    proc = subprocess.run([str(hatang), "--version"], capture_output=True, text=True, timeout=60, check=False,
                          cwd=outside_cwd(), env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0 and proc.stdout.strip() == f"hatang {__version__}", (proc.stdout, proc.stderr)
    config = yaml.safe_load((root / "etc/hatang/agent.yaml").read_text(encoding="utf-8"))
    assert config["agent_id"] == AGENT_ID
    password = root / "etc/hatang/secrets/mqtt-password"
    assert password.read_bytes() == enrolment_member(enrolment, "secrets/mqtt-password")
    cache = root / "var/cache/hatang-bundles"
    assert not list(cache.glob("enrol-*")), "the enrolment bundle (the office's secrets) is left on the box"

    second = run_playbook(work, inventory, extra)
    assert second.returncode == 0, second.explain()
    assert second.recap[AGENT_ID]["failed"] == 0, second.explain()
    assert second.recap[AGENT_ID]["changed"] == 0, second.explain()
    assert not list(cache.glob("enrol-*"))

    # A rotated password (hatang fleet rotate-agent): the new enrolment bundle is copied, installed, deleted.
    enrol(fleet, AGENT_ID, root, "rotate-agent")
    rotated = run_playbook(work, inventory, extra)
    assert rotated.returncode == 0 and rotated.recap[AGENT_ID]["failed"] == 0, rotated.explain()
    assert rotated.recap[AGENT_ID]["changed"] > 0, rotated.explain()
    assert password.read_bytes() == enrolment_member(enrolment, "secrets/mqtt-password")
    assert not list(cache.glob("enrol-*"))

    # An upgrade is the same run with a newer bundle: it is copied and unpacked next to the old one, the
    # installer runs from it, and the old one is removed from the box. (Same content under a newer name
    # here: the installer itself has nothing to change.)
    newer = work / f"hatang-agent-offline-{__version__}.post1.tar.gz"
    shutil.copyfile(offline_bundle, newer)
    upgrade = run_playbook(work, inventory, {**extra, "hatang_offline_bundle": str(newer)})
    assert upgrade.returncode == 0 and upgrade.recap[AGENT_ID]["failed"] == 0, upgrade.explain()
    assert upgrade.recap[AGENT_ID]["changed"] > 0, upgrade.explain()
    kept = sorted(p.name for p in cache.iterdir())
    assert [name for name in kept if name.startswith("hatang-agent-offline-")] == [
        f"hatang-agent-offline-{__version__}.post1-{checksum_prefix(newer)}", newer.name], kept
    assert subprocess.run([str(hatang), "--version"], capture_output=True, timeout=60, check=False,
                          cwd=outside_cwd()).returncode == 0

    # Removing (and purging) twice: the second run finds nothing left to do.
    remove = {**extra, "hatang_offline_bundle": str(newer), "hatang_state": "absent", "hatang_purge": True}
    removed = run_playbook(work, inventory, remove)
    assert removed.returncode == 0 and removed.recap[AGENT_ID]["failed"] == 0, removed.explain()
    assert removed.recap[AGENT_ID]["changed"] > 0, removed.explain()
    assert not hatang.exists(), removed.explain()
    assert not (root / "etc/hatang").exists(), removed.explain()
    assert not (root / "var/cache/hatang-bundles").exists(), removed.explain()
    again = run_playbook(work, inventory, remove)
    assert again.returncode == 0 and again.recap[AGENT_ID]["failed"] == 0, again.explain()
    assert again.recap[AGENT_ID]["changed"] == 0, again.explain()


def test_a_broken_bundle_stops_the_roll_out_at_the_first_office(work: Path) -> None:
    """The playbook rolls out one office first, then batches: a bundle whose installer fails on that first
    office leaves every other office untouched."""
    bundle = broken_bundle(work, "hatang-agent-offline-9.9.9.tar.gz")
    offices = ["office-a", "office-b", "office-c"]
    inventory = write_inventory(work / "inventory.yml",
                                {name: {"hatang_root": str(work / name)} for name in offices})
    run = run_playbook(work, inventory, {**NO_BECOME, "hatang_offline_bundle": str(bundle)})
    assert run.returncode != 0, run.explain()
    assert "this release is broken" in run.output, run.explain()
    assert set(run.recap) == {"office-a"}, run.explain()
    assert run.recap["office-a"]["failed"] == 1, run.explain()
    assert not (work / "office-b").exists() and not (work / "office-c").exists(), run.explain()

"""The offline agent bundle (scripts/offline-bundle) and its installer (deploy/offline/install-agent.sh).

The bundle is built once per session from the wheelhouse that ``scripts/test`` downloads
(``$HATANG_TEST_WHEELHOUSE``, made by ``scripts/offline-bundle --download-only``); without it the tests
fail under ``CI=true`` and are skipped otherwise. The build and every install run with the network
switched off: in a new network namespace with no interfaces when ``unshare`` can make one, and always
with pip's index pointed at a closed loopback port and no proxies, so any download attempt fails.

Installs go into a temporary root (``--root``): the files written, their modes, the systemd unit and
its credentials drop-in, idempotence (a second run changes no mtime), upgrade, removal, and the
installer's messages on a system it cannot serve.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hatang import REPO, hatang_command, hatang_env, outside_cwd
from tests.support.offline_bundle import (
    Bundle,
    build_bundle,
    offline_env,
    run_offline,
)
from tests.support.services import unavailable

pytestmark = pytest.mark.integration

TARGETS = {  # target -> (Python, machine); cp311 = Debian 12, cp312 = Ubuntu 24.04
    "cp311-x86_64": ("3.11", "x86_64"),
    "cp311-aarch64": ("3.11", "aarch64"),
    "cp312-x86_64": ("3.12", "x86_64"),
    "cp312-aarch64": ("3.12", "aarch64"),
}
SITE = "province=Vĩnh Phúc,district=Tam Đảo,commune=Đại Đình"
AGENT_ID = "xa-dai-dinh"
# Secrets of the enrolment bundle besides mqtt-password (the fleet's SNMP files).
SNMP_SECRETS = {"snmp-community": "cong-dong-rieng\n", "snmp-v3-auth": "auth-key-1234\n"}
INSTALL_TIMEOUT = 300


# --------------------------------------------------------------------------------------------------
# bundles


def _copy_checkout(destination: Path) -> None:
    """The checkout's tracked and untracked (not ignored) files, without .git."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, check=False)
    if listing.returncode != 0:  # not a git checkout
        shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
        return
    for name in listing.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _bumped(version: str) -> str:
    """0.1.0 -> 0.1.1: the last number plus one."""
    return re.sub(r"(\d+)(?!.*\d)", lambda m: str(int(m[1]) + 1), version, count=1)


@pytest.fixture(scope="session")
def newer_bundle(bundle: Bundle, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A bundle built from a copy of the checkout whose __version__ is one step newer."""
    work = tmp_path_factory.mktemp("newer")
    checkout = work / "checkout"
    _copy_checkout(checkout)
    init = checkout / "hatang" / "__init__.py"
    newer = _bumped(bundle.version)
    init.write_text(init.read_text().replace(f'"{bundle.version}"', f'"{newer}"'))
    built = build_bundle(checkout, wheelhouse, work / "out")
    assert built.version == newer
    return built


# --------------------------------------------------------------------------------------------------
# enrolment bundles


@dataclass(frozen=True)
class Fleet:
    """A fleet directory made by the real ``hatang fleet init``, holding the SNMP secrets of SNMP_SECRETS."""

    root: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*hatang_command(), "fleet", *args, "--fleet", str(self.root)],
                              capture_output=True, text=True, timeout=120, check=False, cwd=outside_cwd(),
                              env=hatang_env())
        assert proc.returncode == 0, f"hatang fleet {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    @classmethod
    def create(cls, work: Path) -> Fleet:
        fleet = cls(work / "fleet")
        fleet.run("init", "--broker-url", "mqtts://127.0.0.1:8883", "--server-name", "localhost",
                  "--server-ip", "127.0.0.1", "--reload-command", "true")
        fleet.run("keygen", str(fleet.root))  # the bundle then carries centre.pub (remote_config on)
        for name, text in SNMP_SECRETS.items():
            (fleet.root / "snmp" / name).write_text(text)
        return fleet

    def enrol(self, command: str, output: Path, buffer_path: Path, *extra: str) -> Path:
        """``hatang fleet add-agent`` or ``rotate-agent`` for AGENT_ID: its enrolment bundle at ``output``."""
        site = ["--site", SITE] if command == "add-agent" else []
        self.run(command, AGENT_ID, *site, "--buffer-path", str(buffer_path), "--output", str(output), *extra)
        return output


def _fleet_enrolment(work: Path, buffer_path: Path) -> Path:
    """The enrolment bundle of ``hatang fleet add-agent`` (the real command), with a client certificate."""
    return Fleet.create(work).enrol("add-agent", work / f"{AGENT_ID}.tar.gz", buffer_path, "--client-cert")


def make_enrolment(work: Path, root: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    return _fleet_enrolment(work, root / "var" / "lib" / "hatang" / "buffer")


def members(enrolment: Path) -> dict[str, bytes]:
    """The regular files of an enrolment bundle: {name: content}."""
    with tarfile.open(enrolment) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


# --------------------------------------------------------------------------------------------------
# running the installer


def install(bundle: Bundle, root: Path, *args: str, env: dict[str, str] | None = None,
            expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
    proc = run_offline([str(bundle.installer), "--root", str(root), *args], timeout=INSTALL_TIMEOUT,
                        cwd=bundle.root, env=env)
    assert proc.returncode == expect_rc, (
        f"install-agent.sh {' '.join(args)} exited {proc.returncode}, expected {expect_rc}:\n"
        f"{proc.stdout}\n{proc.stderr}")
    return proc


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout.strip().splitlines()[-1]


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root: (mtime_ns, mode, size), links not followed."""
    found = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_mode, st.st_size)
    return found


def run_installed(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run([str(root / "opt/hatang/venv/bin/hatang"), *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=outside_cwd(), env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass(frozen=True)
class Installed:
    root: Path
    enrolment: Path
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def installed(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The checkout's bundle installed once, with an enrolment bundle, into a temporary root."""
    work = tmp_path_factory.mktemp("installed")
    root = work / "root"
    enrolment = make_enrolment(work / "enrol", root)
    return Installed(root, enrolment, install(bundle, root, "--enrol", str(enrolment)))


# --------------------------------------------------------------------------------------------------
# the bundle


def _pip_platforms(machine: str) -> list[str]:
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    return [*platforms, f"manylinux2014_{machine}"]


def test_bundle_holds_the_installer_the_unit_and_wheels_for_every_target(bundle: Bundle) -> None:
    """Each target's wheel set resolves from the bundle alone: pip's own resolver with the target's
    platform, Python version and ABI, no index (pip install --dry-run --target)."""
    with tarfile.open(bundle.archive) as tar:
        names = tar.getnames()
    top = f"hatang-agent-offline-{bundle.version}"
    assert all(n == top or n.startswith(top + "/") for n in names), "members outside the bundle's directory"
    for member in ("install-agent.sh", "hatang-agent.service", "SHA256SUMS", "BUNDLE-INFO", "DOC-TRUOC.txt",
                   "README.txt"):
        assert (bundle.root / member).is_file(), member
    assert os.access(bundle.installer, os.X_OK)
    assert (bundle.root / "hatang-agent.service").read_bytes() == \
        (REPO / "deploy/systemd/hatang-agent.service").read_bytes()
    assert len(list((bundle.root / "pip").glob("pip-*-py3-none-any.whl"))) == 1
    assert "ĐỌC TRƯỚC" in (bundle.root / "DOC-TRUOC.txt").read_text(encoding="utf-8")
    assert "READ ME" in (bundle.root / "README.txt").read_text(encoding="utf-8")

    wheels = {p.name for p in (bundle.root / "wheels").glob("*.whl")}
    assert f"hatang-{bundle.version}-py3-none-any.whl" in wheels
    sums = (bundle.root / "SHA256SUMS").read_text().splitlines()
    listed_in_sums = {line.split("  ", 1)[1] for line in sums}
    assert {f"wheels/{w}" for w in wheels} <= listed_in_sums
    assert "install-agent.sh" in listed_in_sums

    for target, (python, machine) in TARGETS.items():
        listed = (bundle.root / "targets" / f"{target}.txt").read_text().split()
        assert set(listed) <= wheels, f"{target}: listed wheels missing from the bundle"
        glibc = (bundle.root / "targets" / f"{target}.glibc").read_text().strip()
        assert tuple(map(int, glibc.split("."))) <= (2, 36), f"{target} needs glibc {glibc} (Debian 12: 2.36)"
        report = bundle.root.parent / f"report-{target}.json"
        argv = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed",
                "--no-index", "--find-links", str(bundle.root / "wheels"), "--only-binary=:all:",
                "--python-version", python, "--implementation", "cp",
                "--abi", f"cp{python.replace('.', '')}", "--abi", "abi3", "--abi", "none",
                *[arg for p in _pip_platforms(machine) for arg in ("--platform", p)],
                "--target", str(bundle.root.parent / f"target-{target}"), "--report", str(report),
                f"hatang=={bundle.version}"]
        proc = run_offline(argv, timeout=300)
        assert proc.returncode == 0, f"{target} does not resolve:\n{proc.stdout}\n{proc.stderr}"
        resolved = {urllib.parse.unquote(item["download_info"]["url"].rsplit("/", 1)[1])
                    for item in json.loads(report.read_text())["install"]}
        assert resolved <= wheels
        assert f"hatang-{bundle.version}-py3-none-any.whl" in resolved
        native = [w for w in resolved if not w.endswith("-any.whl")]
        assert native and all(machine in w for w in native), f"{target}: {native}"
        abi = f"-cp{python.replace('.', '')}-"
        assert all(abi in w or "-abi3-" in w for w in native), f"{target}: {native}"


# --------------------------------------------------------------------------------------------------
# install


def test_install_with_enrolment_offline(installed: Installed, bundle: Bundle) -> None:
    root = installed.root
    assert last_line(installed.first) == "HATANG-INSTALL: changed"
    assert "không tạo người dùng hatang" in installed.first.stdout  # a root other than /: no user

    version = run_installed(root, "--version")
    assert version.returncode == 0, version.stderr
    assert bundle.version in version.stdout
    venv = root / "opt/hatang/venv"
    assert venv.is_symlink() and (venv / "bin/python").exists()
    assert not list((venv / "bin").glob("pip*")), "the agent's venv needs no pip"

    check = run_installed(root, "check", "--credentials", str(root / "etc/hatang/secrets"),
                          "-c", str(root / "etc/hatang/agent.yaml"))
    assert check.returncode == 0, f"hatang check failed:\n{check.stdout}\n{check.stderr}"

    unit = root / "etc/systemd/system/hatang-agent.service"
    assert unit.read_bytes() == (bundle.root / "hatang-agent.service").read_bytes()
    exec_start = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert exec_start and exec_start[0].startswith("ExecStart=/opt/hatang/venv/bin/hatang "), exec_start
    assert (root / "var/lib/hatang").is_dir() and mode(root / "var/lib/hatang") == 0o700


def test_config_and_secrets_files_and_modes(installed: Installed) -> None:
    etc = installed.root / "etc/hatang"
    enrol = members(installed.enrolment)
    assert (etc / "agent.yaml").read_bytes() == enrol["agent.yaml"]
    assert "centre.pub" in enrol and b"remote_config: {public_key_file: centre.pub}" in enrol["agent.yaml"]
    for public in ("ca.crt", "client.crt", "centre.pub"):
        if public in enrol:
            assert (etc / public).read_bytes() == enrol[public]
            assert mode(etc / public) == 0o644
    assert mode(etc / "agent.yaml") == 0o640
    secrets = etc / "secrets"
    assert mode(secrets) == 0o700
    names = sorted(p.name for p in secrets.iterdir())
    assert names == sorted(n.removeprefix("secrets/") for n in enrol if n.startswith("secrets/"))
    assert {"mqtt-password", *SNMP_SECRETS} <= set(names)
    for path in secrets.iterdir():
        assert mode(path) == 0o600, path
        assert path.read_bytes() == enrol[f"secrets/{path.name}"]


def test_credentials_drop_in_lists_the_enrolment_secrets_but_mqtt_password(installed: Installed) -> None:
    dropin = installed.root / "etc/systemd/system/hatang-agent.service.d/credentials.conf"
    lines = [line for line in dropin.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "[Service]"
    secrets = installed.root / "etc/hatang/secrets"
    others = sorted(p.name for p in secrets.iterdir() if p.name != "mqtt-password")
    assert others, "the enrolment bundle has secrets besides mqtt-password"
    assert lines[1:] == [f"LoadCredential={name}:/etc/hatang/secrets/{name}" for name in others]


def test_second_run_changes_nothing(installed: Installed, bundle: Bundle) -> None:
    before = snapshot(installed.root)
    again = install(bundle, installed.root, "--enrol", str(installed.enrolment))
    assert "không thay đổi / unchanged" in again.stdout
    assert last_line(again) == "HATANG-INSTALL: unchanged"
    assert snapshot(installed.root) == before


def test_upgrade_installs_the_new_version_and_keeps_the_config(
        bundle: Bundle, newer_bundle: Bundle, tmp_path: Path) -> None:
    root = tmp_path / "root"
    enrolment = make_enrolment(tmp_path / "enrol", root)
    install(bundle, root, "--enrol", str(enrolment))
    agent_yaml = root / "etc/hatang/agent.yaml"
    edited = agent_yaml.read_text() + "# thiết bị thêm tại văn phòng / added at the office\n"
    agent_yaml.write_text(edited)
    secrets_before = {p.name: p.read_bytes() for p in (root / "etc/hatang/secrets").iterdir()}
    old_release = (root / "opt/hatang/venv").readlink()

    upgraded = install(newer_bundle, root)
    assert last_line(upgraded) == "HATANG-INSTALL: changed"
    assert newer_bundle.version in run_installed(root, "--version").stdout
    assert agent_yaml.read_text() == edited
    assert {p.name: p.read_bytes() for p in (root / "etc/hatang/secrets").iterdir()} == secrets_before
    assert not (root / "opt/hatang" / old_release).exists(), "the previous release is left behind"

    # The same enrolment bundle again (as Ansible passes it on every run): the office's edits stay.
    again = install(newer_bundle, root, "--enrol", str(enrolment))
    assert last_line(again) == "HATANG-INSTALL: unchanged"
    assert agent_yaml.read_text() == edited
    assert not list(agent_yaml.parent.glob("agent.yaml.bak-*"))


# A device added on the box (docs/configuration.md), in place of the enrolment's "devices: []".
DEVICES = """devices:
  - name: core-switch
    address: 192.0.2.10
    snmp:
      version: 2c
      community_file: ${CREDENTIALS_DIRECTORY}/snmp-community
"""


def test_rotation_keeps_the_devices_added_on_the_box_and_installs_the_new_password(
        bundle: Bundle, tmp_path: Path) -> None:
    """agent.yaml is written only when absent or never edited on the box; the enrolment's secrets always."""
    root = tmp_path / "root"
    etc = root / "etc/hatang"
    agent_yaml, enrolled, secrets = etc / "agent.yaml", etc / "agent.yaml.enrolled", etc / "secrets"
    buffer = root / "var/lib/hatang/buffer"
    fleet = Fleet.create(tmp_path)
    first = fleet.enrol("add-agent", tmp_path / "first.tar.gz", buffer)
    install(bundle, root, "--enrol", str(first))
    assert "devices: []\n" in agent_yaml.read_text()
    edited = agent_yaml.read_text().replace("devices: []\n", DEVICES)
    agent_yaml.write_text(edited)

    def check_passes(devices: int) -> None:
        check = run_installed(root, "check", "--credentials", str(secrets), "-c", str(agent_yaml))
        assert check.returncode == 0, f"hatang check failed:\n{check.stdout}\n{check.stderr}"
        assert f"with {devices} device(s)" in check.stdout, check.stdout

    check_passes(1)

    # A rotation: a new password, the same agent.yaml. The office keeps its devices, the new password works.
    rotated = fleet.enrol("rotate-agent", tmp_path / "rotated.tar.gz", buffer)
    new = members(rotated)
    assert new["secrets/mqtt-password"] != members(first)["secrets/mqtt-password"]
    proc = install(bundle, root, "--enrol", str(rotated))
    assert last_line(proc) == "HATANG-INSTALL: changed"
    assert agent_yaml.read_text() == edited
    assert (secrets / "mqtt-password").read_bytes() == new["secrets/mqtt-password"]
    check_passes(1)

    # A re-enrolment whose agent.yaml differs (a client certificate now): the office's agent.yaml is kept, the
    # new copy goes to agent.yaml.enrolled, the difference is shown; certificates and secrets are installed.
    with_cert = fleet.enrol("rotate-agent", tmp_path / "with-cert.tar.gz", buffer, "--client-cert")
    new = members(with_cert)
    assert new["agent.yaml"] != enrolled.read_bytes()
    proc = install(bundle, root, "--enrol", str(with_cert))
    assert last_line(proc) == "HATANG-INSTALL: changed"
    assert agent_yaml.read_text() == edited, "the devices added on the box were replaced"
    assert enrolled.read_bytes() == new["agent.yaml"]
    for name in ("secrets/mqtt-password", "secrets/client.key", "client.crt"):
        assert (etc / name).read_bytes() == new[name], name
    assert "GIỮ NGUYÊN" in proc.stderr and "KEPT" in proc.stderr, proc.stderr
    assert "+  cert_file: client.crt" in proc.stderr, proc.stderr
    assert "--replace-config" in proc.stderr
    assert not list(etc.glob("agent.yaml.bak-*"))
    check_passes(1)
    dropin = root / "etc/systemd/system/hatang-agent.service.d/credentials.conf"
    assert "LoadCredential=client.key:/etc/hatang/secrets/client.key" in dropin.read_text()
    assert last_line(install(bundle, root, "--enrol", str(with_cert))) == "HATANG-INSTALL: unchanged"
    assert agent_yaml.read_text() == edited

    # --replace-config: the office's file is saved as agent.yaml.bak-<time>, the enrolment's replaces it.
    proc = install(bundle, root, "--enrol", str(with_cert), "--replace-config")
    assert last_line(proc) == "HATANG-INSTALL: changed"
    backups = list(etc.glob("agent.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == edited
    assert agent_yaml.read_bytes() == new["agent.yaml"]
    check_passes(0)

    # An agent.yaml not edited on the box follows the next enrolment, without a backup.
    moved = fleet.enrol("rotate-agent", tmp_path / "moved.tar.gz", root / "var/lib/hatang/buffer2")
    install(bundle, root, "--enrol", str(moved))
    assert agent_yaml.read_bytes() == members(moved)["agent.yaml"] == enrolled.read_bytes()
    assert "buffer2" in agent_yaml.read_text()
    assert len(list(etc.glob("agent.yaml.bak-*"))) == 1


def test_remove_keeps_the_config_and_purge_deletes_it(bundle: Bundle, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(bundle, root, "--enrol", str(make_enrolment(tmp_path / "enrol", root)))

    removed = install(bundle, root, "--remove")
    assert last_line(removed) == "HATANG-INSTALL: changed"
    assert not (root / "opt/hatang").exists()
    assert not (root / "etc/systemd/system/hatang-agent.service").exists()
    assert not (root / "etc/systemd/system/hatang-agent.service.d").exists()
    assert (root / "etc/hatang/agent.yaml").is_file()
    assert (root / "etc/hatang/secrets/mqtt-password").is_file()
    assert (root / "var/lib/hatang").is_dir()
    assert last_line(install(bundle, root, "--remove")) == "HATANG-INSTALL: unchanged"

    purged = install(bundle, root, "--remove", "--purge")
    assert last_line(purged) == "HATANG-INSTALL: changed"
    assert not (root / "etc/hatang").exists() and not (root / "var/lib/hatang").exists()
    assert not (root / "var/lib/hatang-install").exists()
    assert last_line(install(bundle, root, "--remove", "--purge")) == "HATANG-INSTALL: unchanged"


# The central host's own hatang files (it sometimes runs an agent too): the agent's installer leaves them.
CENTRAL_FILES = {
    "etc/hatang/collector.yaml": 'mqtt: {url: "mqtt://127.0.0.1:1883"}\n',
    "etc/hatang/secrets/collector-password": "mat-khau-collector\n",
    "etc/hatang/fleet/fleet.yaml": "broker_url: mqtts://127.0.0.1:8883\n",
    "etc/systemd/system/hatang-collector.service": (
        "[Service]\nExecStart=/opt/hatang/venv/bin/hatang collector\n"),
}


def test_purge_deletes_only_what_the_installer_wrote(bundle: Bundle, tmp_path: Path) -> None:
    """On a box that also holds the collector and the fleet: the drop-in loads only the enrolment's secrets,
    --purge deletes only the files in the installer's manifest, keeps the venv the collector runs from, and
    refuses to delete the user hatang, saying why."""
    root = tmp_path / "root"
    for name, text in CENTRAL_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "etc/hatang/secrets").chmod(0o700)
    (root / "etc/hatang/secrets/collector-password").chmod(0o640)
    enrolment = make_enrolment(tmp_path / "enrol", root)
    install(bundle, root, "--enrol", str(enrolment))

    dropin = root / "etc/systemd/system/hatang-agent.service.d/credentials.conf"
    loaded = [line for line in dropin.read_text().splitlines() if line.startswith("LoadCredential=")]
    delivered = sorted(n.removeprefix("secrets/") for n in members(enrolment) if n.startswith("secrets/"))
    assert loaded == [f"LoadCredential={name}:/etc/hatang/secrets/{name}"
                      for name in delivered if name != "mqtt-password"]
    assert mode(root / "etc/hatang/secrets/collector-password") == 0o640, "another service's secret changed"

    purged = install(bundle, root, "--remove", "--purge")
    assert last_line(purged) == "HATANG-INSTALL: changed"
    for name, text in CENTRAL_FILES.items():
        assert (root / name).read_text() == text, name
    etc = root / "etc/hatang"
    assert sorted(p.name for p in etc.iterdir()) == ["collector.yaml", "fleet", "secrets"]
    assert sorted(p.name for p in (etc / "secrets").iterdir()) == ["collector-password"]
    assert not (root / "etc/systemd/system/hatang-agent.service").exists()
    assert not (root / "var/lib/hatang").exists() and not (root / "var/lib/hatang-install").exists()
    assert (root / "opt/hatang/venv/bin/hatang").exists(), "the collector's program was deleted"
    assert "không xoá người dùng hatang" in purged.stderr, purged.stderr
    assert "not deleting the user hatang: another hatang service on this machine uses it" in purged.stderr
    assert "/etc/systemd/system/hatang-collector.service" in purged.stderr


def test_install_without_enrolment_then_enrol(bundle: Bundle, tmp_path: Path) -> None:
    """The program first (no config yet), the office's enrolment later."""
    root = tmp_path / "root"
    first = install(bundle, root)
    assert last_line(first) == "HATANG-INSTALL: changed"
    assert not (root / "etc/hatang/agent.yaml").exists()
    dropin = root / "etc/systemd/system/hatang-agent.service.d/credentials.conf"
    assert not [line for line in dropin.read_text().splitlines() if line.startswith("LoadCredential=")]
    enrolled = install(bundle, root, "--enrol", str(make_enrolment(tmp_path / "enrol", root)))
    assert last_line(enrolled) == "HATANG-INSTALL: changed"
    assert "LoadCredential=snmp-community:" in dropin.read_text()


def test_real_python_3_12_installs_the_cp312_wheels(bundle: Bundle, tmp_path: Path) -> None:
    """Ubuntu 24.04's Python version, when this machine has one (pyenv): the cp312 set installs and runs."""
    candidates = [*map(str, sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))),
                  *filter(None, [shutil.which("python3.12")])]
    python = next((c for c in candidates if subprocess.run(
        [c, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout.startswith(
            "Python 3.12")), None)
    if python is None:
        unavailable("no Python 3.12 on this machine (Debian 12 has 3.11; pyenv provides one; the cp312 "
                    "set is also resolved without it above)")
    root = tmp_path / "root"
    proc = install(bundle, root, env=offline_env(HATANG_PYTHON=python))
    assert "cp312-" in proc.stdout
    assert bundle.version in run_installed(root, "--version").stdout


# --------------------------------------------------------------------------------------------------
# systems the bundle cannot serve


def _fake_python(directory: Path, version: str, probe: str = "") -> Path:
    """A ``python3`` that prints ``Python VERSION`` for --version and ``probe`` for anything else."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "python3"
    path.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo "Python {version}"; '
                    f'else echo "{probe}"; fi\n')
    path.chmod(0o755)
    return path


def _path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH of one directory linking every program of the system's bin directories but ``missing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            name = entry.name
            if name in missing or name.startswith("python3") or (bin_dir / name).exists():
                continue
            (bin_dir / name).symlink_to(entry.path)
    return str(bin_dir)


def test_python_older_than_3_11_is_refused_with_the_exact_message(bundle: Bundle, tmp_path: Path) -> None:
    fake = _fake_python(tmp_path / "old", "3.9.2")
    root = tmp_path / "root"
    env = offline_env(PATH=f"{fake.parent}:{os.environ['PATH']}")
    proc = install(bundle, root, env=env, expect_rc=1)
    assert (f"LỖI: Python 3.9.2 ({fake}) quá cũ: hatang cần Python 3.11 trở lên (Debian 12 hoặc Ubuntu 24.04)"
            in proc.stderr), proc.stderr
    assert (f"ERROR: Python 3.9.2 ({fake}) is too old: hatang needs Python 3.11 or newer "
            "(Debian 12 or Ubuntu 24.04)") in proc.stderr
    assert last_line(proc) == "HATANG-INSTALL: failed"
    assert not root.exists() or not any(root.iterdir()), "nothing is written when a check fails"

    # The same through HATANG_PYTHON, the installer's variable for the interpreter.
    via_variable = install(bundle, root, env=offline_env(HATANG_PYTHON=str(fake)), expect_rc=1)
    assert f"Python 3.9.2 ({fake}) is too old" in via_variable.stderr


@pytest.mark.parametrize(("version", "probe", "expected"), [
    ("3.13.1", "cpython 3.13 linux-x86_64 glibc 2.41",
     "this bundle has no wheels for Python 3.13 on x86_64"),
    ("3.11.2", "cpython 3.11 linux-armv7l glibc 2.36",
     "this bundle has no wheels for Python 3.11 on armv7l"),
    ("3.12.3", "cpython 3.12 linux-x86_64 glibc 2.31",
     "glibc 2.31 is too old: the wheels for cp312-x86_64 need glibc"),
    ("3.11.4", "cpython 3.11 linux-x86_64 musl 1.2",
     "does not use glibc (musl)"),
])
def test_a_system_without_wheels_in_the_bundle_is_named(
        bundle: Bundle, tmp_path: Path, version: str, probe: str, expected: str) -> None:
    fake = _fake_python(tmp_path / "py", version, probe)
    proc = install(bundle, tmp_path / "root", env=offline_env(HATANG_PYTHON=str(fake)), expect_rc=1)
    assert expected in proc.stderr, proc.stderr
    assert "LỖI:" in proc.stderr
    if "no wheels" in expected:
        assert "cp311-x86_64 cp311-aarch64 cp312-x86_64 cp312-aarch64" in proc.stderr


def test_missing_python_tar_and_sha256sum_are_all_named(bundle: Bundle, tmp_path: Path) -> None:
    path = _path_without(tmp_path, "tar", "sha256sum")
    proc = install(bundle, tmp_path / "root", env=offline_env(PATH=path), expect_rc=1)
    assert "không tìm thấy python3" in proc.stderr and "python3 not found" in proc.stderr, proc.stderr
    assert "the command 'tar' is missing" in proc.stderr
    assert "the command 'sha256sum' is missing" in proc.stderr


def test_a_damaged_bundle_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle.root, copy, copy_function=os.link)
    victim = sorted((copy / "wheels").glob("pydantic_core-*.whl"))[0]
    data = victim.read_bytes()
    victim.unlink()  # a new file: the original bundle's (hard-linked) one stays whole
    victim.write_bytes(data[: len(data) // 2])
    damaged = Bundle(bundle.archive, copy, bundle.version)
    root = tmp_path / "root"
    proc = install(damaged, root, expect_rc=1)
    assert victim.name in proc.stderr
    assert "gói bị hỏng" in proc.stderr and "the bundle is damaged" in proc.stderr
    assert not (root / "opt").exists()


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
                link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o600
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


# name -> (hostile members as (name, kind, link), what the refusal says)
HOSTILE_ENROLMENTS: dict[str, tuple[list[tuple[str, bytes, str]], str]] = {
    "symlink": ([("ca.crt", tarfile.SYMTYPE, "/etc/shadow")], "something other than plain files"),
    "hardlink": ([("secrets/snmp-community", tarfile.LNKTYPE, "agent.yaml")],
                 "something other than plain files"),
    "dot-dot": ([("secrets/../../x", tarfile.REGTYPE, "")], "invalid secret file name"),
    "secrets-symlink": ([("secrets", tarfile.SYMTYPE, "/tmp")], "something other than plain files"),
    "dash-rf": ([("secrets/-rf", tarfile.REGTYPE, "")], "invalid secret file name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ENROLMENTS))
def test_a_hostile_enrolment_bundle_is_refused_and_nothing_is_written(
        bundle: Bundle, tmp_path: Path, case: str) -> None:
    hostile, refusal = HOSTILE_ENROLMENTS[case]
    enrolment = tmp_path / "hostile.tar.gz"
    with tarfile.open(enrolment, "w:gz") as tar:
        for name, kind, link in hostile:  # first: a "secrets" link must come before the files under it
            _tar_member(tar, name, b"x\n", kind, link)
        _tar_member(tar, "agent.yaml", b"agent_id: xa-dai-dinh\n")
        _tar_member(tar, "secrets/mqtt-password", b"mat-khau\n")
    root = tmp_path / "root"
    proc = install(bundle, root, "--enrol", str(enrolment), expect_rc=1)
    assert refusal in proc.stderr and "LỖI:" in proc.stderr, proc.stderr
    assert last_line(proc) == "HATANG-INSTALL: failed"
    assert not root.exists() or not any(root.iterdir()), "something was written for a refused enrolment"
    assert not [p for p in tmp_path.rglob("x")], "a member escaped"


def test_a_failure_half_way_is_reported_in_both_languages(bundle: Bundle, tmp_path: Path) -> None:
    """A command failing under set -e (here: --root is a file, so no directory can be made in it) ends
    with the failing command in both languages and the last line for Ansible."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    proc = install(bundle, not_a_directory, expect_rc=1)
    assert "LỖI: trình cài dừng giữa chừng (dòng " in proc.stderr, proc.stderr
    assert "ERROR: the installer stopped half-way (line " in proc.stderr
    assert re.search(r"half-way \(line \d+, code 1: mkdir ", proc.stderr), proc.stderr
    assert last_line(proc) == "HATANG-INSTALL: failed"


# --------------------------------------------------------------------------------------------------
# the real root, /, in a private mount namespace


# Run inside the namespace: /etc, /opt and /var become overlays on this machine's (so nothing reaches the
# real ones); with FAKE_SYSTEMD set, /run is a fresh tmpfs holding /run/systemd/system (systemd "runs").
_OVERLAY_SCRIPT = """
set -eu
for d in etc opt var; do
  mkdir -p "$WORK/$d/upper" "$WORK/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$WORK/$d/upper,workdir=$WORK/$d/work" "/$d"
done
if [ -n "${FAKE_SYSTEMD:-}" ]; then
  mount -t tmpfs tmpfs /run
  mkdir -p /run/systemd/system
fi
exec bash "$@"
"""

# A systemctl that records its calls and keeps the unit's state in files; start/restart also record the
# release the "running agent" was started from.
_SYSTEMCTL_STUB = """#!/bin/sh
printf '%s\\n' "$*" >>"$SYSTEMCTL_LOG"
state=$SYSTEMCTL_STATE
case "$1" in
  is-active) [ -e "$state/active" ] ;;
  is-enabled) [ -e "$state/enabled" ] ;;
  enable) touch "$state/enabled" ;;
  disable) rm -f "$state/enabled"; if [ "$2" = --now ]; then rm -f "$state/active"; fi ;;
  start|restart) touch "$state/active"; readlink /opt/hatang/venv >"$state/running" ;;
  stop) rm -f "$state/active" ;;
  daemon-reload) ;;
  *) echo "systemctl stub: unexpected: $*" >&2; exit 1 ;;
esac
"""


def _host_user() -> str:
    return subprocess.run(["getent", "passwd", "hatang"], capture_output=True, text=True, check=False,
                          timeout=30).stdout


def _namespace() -> list[str]:
    """argv prefix of a private mount (and network) namespace; fails under CI=true when there is none
    (CI runs as root, with unshare and overlayfs)."""
    if os.geteuid() != 0:
        unavailable("installing into / needs root (even in a private mount namespace)")
    unshare = shutil.which("unshare")
    namespace = [unshare or "unshare", "--mount", "--propagation", "private", "--net"]
    if unshare is None or subprocess.run([*namespace, "true"], capture_output=True, timeout=30,
                                         check=False).returncode != 0:
        unavailable("unshare --mount --net is not available here")
    return namespace


def _in_namespace(tmp_path: Path, steps: str, report: Path, cwd: Path,
                  **env: str) -> subprocess.CompletedProcess[str]:
    """Run the bash ``steps`` in a new namespace with overlays on /etc, /opt, /var (see _OVERLAY_SCRIPT)."""
    namespace = _namespace()
    script, inner = tmp_path / "in-namespace.sh", tmp_path / "steps.sh"
    script.write_text(_OVERLAY_SCRIPT)
    inner.write_text("set -euo pipefail\n" + steps)
    proc = subprocess.run([*namespace, "--", "sh", str(script), str(inner)], capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT * 5, check=False, cwd=cwd,
                          env=offline_env(WORK=str(tmp_path / "overlay"), REPORT=str(report), **env))
    if proc.returncode != 0 and "mount" in proc.stderr and not report.exists():
        unavailable(f"overlay or tmpfs mounts are not available here: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def test_install_into_slash_creates_the_user_and_sets_owners(
        bundle: Bundle, installed: Installed, tmp_path: Path) -> None:
    """Without --root, in a private mount namespace whose /etc, /opt and /var are overlays on this
    machine's (so nothing reaches the real ones): the hatang user is made (in the group hatang that exists
    already), the config files belong to root:hatang, the state directory to hatang; without systemd
    running the unit is only installed. Installed twice (the second changes nothing), then removed with
    --purge (the user goes too)."""
    if Path("/run/systemd/system").exists():
        unavailable("systemd runs here: the installer would start the agent on this machine; run this "
                    "test where systemd does not run (a container, CI)")
    report = tmp_path / "report.txt"
    steps = f"""
groupadd --system hatang
echo "group=$(getent group hatang | cut -d: -f3)" >"$REPORT"
"{bundle.installer}" --enrol "{installed.enrolment}"
"{bundle.installer}" --enrol "{installed.enrolment}"
getent passwd hatang >>"$REPORT"
stat -c "%U:%G %a %n" /etc/hatang/agent.yaml /etc/hatang/secrets /etc/hatang/secrets/mqtt-password \\
  /var/lib/hatang /opt/hatang/venv/bin/hatang >>"$REPORT"
"{bundle.installer}" --remove --purge
{{ getent passwd hatang || echo no-user; }} >>"$REPORT"
"""
    host_user = _host_user()
    proc = _in_namespace(tmp_path, steps, report, bundle.root)
    assert _host_user() == host_user, "the machine's own /etc was changed"
    finals = [line for line in proc.stdout.splitlines() if line.startswith("HATANG-INSTALL: ")]
    assert finals == [f"HATANG-INSTALL: {w}" for w in ("changed", "unchanged", "changed")], proc.stdout
    assert "systemd is not running here" in proc.stderr
    lines = report.read_text().splitlines()
    group = lines[0].removeprefix("group=")
    user = lines[1].split(":")
    assert user[0] == "hatang" and user[5:] == ["/var/lib/hatang", "/usr/sbin/nologin"], lines
    assert user[3] == group, "the user is not in the group hatang that existed before"
    assert lines[2:7] == [
        "root:hatang 640 /etc/hatang/agent.yaml",
        "root:root 700 /etc/hatang/secrets",
        "root:root 600 /etc/hatang/secrets/mqtt-password",
        "hatang:hatang 700 /var/lib/hatang",
        "root:root 755 /opt/hatang/venv/bin/hatang",
    ]
    assert lines[7] == "no-user", "--purge deletes the user"


def test_systemd_calls_of_an_install_an_upgrade_and_a_removal(
        bundle: Bundle, newer_bundle: Bundle, installed: Installed, tmp_path: Path) -> None:
    """In the namespace with a stub systemctl and /run/systemd/system on a tmpfs: the calls of a first
    install, an unchanged rerun, an upgrade with --no-start (the release the running agent uses stays),
    the upgrade run again (restart, then the old release goes), and a purge on a box that also has the
    collector (the user stays)."""
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir()
    (stub_dir / "systemctl").write_text(_SYSTEMCTL_STUB)
    (stub_dir / "systemctl").chmod(0o755)
    state = tmp_path / "systemctl-state"
    state.mkdir()
    log = tmp_path / "systemctl.log"
    report = tmp_path / "report.txt"
    old, new = bundle.installer, newer_bundle.installer
    steps = f"""
[ "$(command -v systemctl)" = "{stub_dir}/systemctl" ] || {{ echo "systemctl is not the stub" >&2; exit 1; }}
step() {{ echo "== $1" >>"$SYSTEMCTL_LOG"; }}
step install; "{old}" --enrol "{installed.enrolment}"
step again; "{old}" --enrol "{installed.enrolment}"
step no-start; "{new}" --no-start
echo "after-no-start $(ls /opt/hatang/releases | tr '\\n' ' ')" >"$REPORT"
echo "running-after-no-start $(cat "$SYSTEMCTL_STATE/running")" >>"$REPORT"
step upgrade; "{new}"
echo "after-upgrade $(ls /opt/hatang/releases | tr '\\n' ' ')" >>"$REPORT"
echo "running-after-upgrade $(cat "$SYSTEMCTL_STATE/running")" >>"$REPORT"
echo "venv $(readlink /opt/hatang/venv)" >>"$REPORT"
touch /etc/systemd/system/hatang-collector.service
step purge; "{new}" --remove --purge
{{ getent passwd hatang || echo no-user; }} >>"$REPORT"
"""
    host_user = _host_user()
    proc = _in_namespace(tmp_path, steps, report, bundle.root, FAKE_SYSTEMD="1",
                         PATH=f"{stub_dir}:{os.environ['PATH']}", SYSTEMCTL_LOG=str(log),
                         SYSTEMCTL_STATE=str(state))
    assert _host_user() == host_user, "the machine's own /etc was changed"
    finals = [line for line in proc.stdout.splitlines() if line.startswith("HATANG-INSTALL: ")]
    expected = ("changed", "unchanged", "changed", "changed", "changed")
    assert finals == [f"HATANG-INSTALL: {w}" for w in expected], proc.stdout

    calls: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        if line.startswith("== "):
            calls[line[3:]] = []
        elif not line.startswith(("is-active ", "is-enabled ")):  # the questions; the changes are kept
            calls[list(calls)[-1]].append(line)
    unit = "hatang-agent.service"
    assert calls == {
        "install": ["daemon-reload", f"enable {unit}", f"start {unit}"],
        "again": [],
        "no-start": [],
        "upgrade": [f"restart {unit}"],
        "purge": [f"disable --now {unit}", "daemon-reload"],
    }, log.read_text()

    facts = dict(line.split(" ", 1) for line in report.read_text().splitlines() if " " in line)
    running_old = facts["running-after-no-start"].removeprefix("releases/")
    assert running_old in facts["after-no-start"].split(), \
        "--no-start deleted the release the running agent uses"
    assert "kept the previous release" in proc.stdout
    current = facts["venv"].removeprefix("releases/")
    assert facts["after-upgrade"].split() == [current], "the old release stays after the restart"
    assert facts["running-after-upgrade"] == facts["venv"]
    assert newer_bundle.version in current
    assert report.read_text().splitlines()[-1].startswith("hatang:"), "the user was deleted"
    assert "not deleting the user hatang" in proc.stderr

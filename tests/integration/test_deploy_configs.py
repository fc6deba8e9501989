"""Every file in deploy/ is checked by the program that reads it (issue 15).

``CHECKS`` maps each file (or glob) under deploy/ to its checker; a file that no row covers fails
:func:`test_every_file_in_deploy_has_a_checker`, so a new config cannot arrive unchecked. The checkers:

* hatang configs: ``hatang check -c FILE`` (``$HATANG_BIN``) on a copy in which only the paths of the
  production host (secrets, CA certificates, buffer and state paths) point at stand-ins in a temporary
  directory; ``${CREDENTIALS_DIRECTORY}/NAME`` paths stay and ``--credentials`` names the stand-ins'
  directory. The unchanged file also passes ``hatang check --skip-files``.
* Prometheus: ``promtool check config`` on a copy whose ``rule_files`` (/etc/prometheus/rules/NAME, where
  the rules are installed or mounted) name the repository's rule files; ``promtool check rules`` and
  ``promtool test rules``.
* Alertmanager: ``amtool check-config`` of the shipped file and of the layout the compose container sees.
* Mosquitto: the shipped hatang.conf is STARTED (ports, bind address and file paths rewritten into a
  temporary directory, certificates from trustme, the password file from ``mosquitto_passwd``, the
  shipped ACL as it is) and a client logs in over TLS.
* systemd units: ``systemd-analyze verify`` in a temporary root (a stub at /opt/hatang/venv/bin/hatang),
  plus the hardening the issue asks for.
* Grafana provisioning: YAML, and the paths and URLs it names agree with the compose file.
* Compose: ``docker-compose config -q``; the VictoriaMetrics scrape config: ``victoria-metrics
  -promscrape.config.dryRun`` and ``promtool check config``.
* Ansible: ``ansible-playbook --syntax-check``, ``ansible-inventory --list``.
* Shell scripts: ``bash -n`` / ``sh -n``; Markdown: relative links resolve; Python: compiles.
"""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import json
import os
import py_compile
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.support.alerting import amtool
from tests.support.hatang import run_hatang
from tests.support.services import (
    LOOPBACK,
    Mosquitto,
    ServiceError,
    free_tcp_port,
    owns_port,
    require_binary,
    unavailable,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules"
RULES_MOUNT = "/etc/prometheus/rules/"  # where prometheus.yml expects the rules (installed or mounted)
HATANG_VENV_BIN = "/opt/hatang/venv/bin/hatang"  # the install layout of the fleet spec


# --------------------------------------------------------------------------------------------------
# which files


def deploy_files() -> list[str]:
    """Every file under deploy/ that belongs to the project (repository-relative, POSIX): tracked and
    untracked files that git does not ignore (an operator's secrets in deploy/compose/secrets/ are
    ignored); without git, every file except those the secrets directory's .gitignore keeps out."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "deploy"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
        ).stdout.splitlines()
        return sorted(f for f in listed if (REPO / f).is_file())
    except (OSError, subprocess.CalledProcessError):
        files = []
        for path in DEPLOY.rglob("*"):
            rel = path.relative_to(REPO).as_posix()
            if not path.is_file() or "__pycache__" in rel:
                continue
            if rel.startswith("deploy/compose/secrets/") and path.name not in (".gitignore", "README.md"):
                continue
            files.append(rel)
        return sorted(files)


# --------------------------------------------------------------------------------------------------
# helpers


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def assert_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, (
        f"{what}: exit {result.returncode}\n{' '.join(map(str, result.args))}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_yaml(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class StandIns:
    """Files that stand in for a production host's in a test directory."""

    root: Path
    ca: trustme.CA

    def secret(self, name: str) -> Path:
        path = self.root / "secrets" / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(f"stand-in {name}\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    def ca_file(self, name: str) -> Path:
        path = self.root / "certs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def cert_file(self, name: str) -> Path:
        path = self.root / "certs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ca.issue_cert("client.hatang").cert_chain_pems[0].write_to_path(str(path))
        return path

    def output(self, name: str) -> Path:
        """A path hatang writes (buffer, state): its directory exists, the path does not."""
        path = self.root / "var" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def stand_in_paths(doc: Any, stand_ins: StandIns, where: str = "") -> None:
    """Point every absolute path of a hatang config at a stand-in. ``${CREDENTIALS_DIRECTORY}/...``
    paths are left as they are (``--credentials`` supplies them). An absolute path under a key this
    function does not know fails the test: decide what stands in for it."""
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            stand_in_paths(item, stand_ins, f"{where}[{i}]")
        return
    if not isinstance(doc, dict):
        return
    for key, value in list(doc.items()):
        here = f"{where}.{key}" if where else str(key)
        if not (isinstance(value, str) and value.startswith("/")):
            stand_in_paths(value, stand_ins, here)
            continue
        name = here.replace("[", "-").replace("]", "").replace(".", "-")
        if key == "ca_file":
            doc[key] = str(stand_ins.ca_file(f"{name}.pem"))
        elif key == "cert_file":
            doc[key] = str(stand_ins.cert_file(f"{name}.pem"))
        elif key.endswith("_file") and key != "state_file":  # password/community/key files: secrets
            doc[key] = str(stand_ins.secret(name))
        elif key == "state_file" or here == "buffer.path":
            doc[key] = str(stand_ins.output(name))
        elif key == "inventory":
            doc[key] = str(DEPLOY / "examples" / "inventory.yaml")  # the shipped example inventory
        else:
            raise AssertionError(f"{here}: {value} is a path of the production host that this test has no "
                                 "stand-in for: add one to stand_in_paths()")


def credential_names(doc: Any) -> Iterator[str]:
    """NAME of every ``${CREDENTIALS_DIRECTORY}/NAME`` path in a config."""
    if isinstance(doc, dict):
        for value in doc.values():
            yield from credential_names(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from credential_names(item)
    elif isinstance(doc, str):
        match = re.fullmatch(r"\$\{?CREDENTIALS_DIRECTORY\}?/(.+)", doc)
        if match:
            yield match.group(1)


# --------------------------------------------------------------------------------------------------
# checkers: each takes the files of its row(s) and a temporary directory

Checker = Callable[[list[Path], Path], None]


def check_hatang_configs(files: list[Path], tmp: Path) -> None:
    stand_ins = StandIns(tmp, trustme.CA())
    for path in files:
        shipped = run_hatang(["check", "--skip-files", "-c", str(path)])
        assert_ok(shipped, f"hatang check --skip-files {path}")
        doc = load_yaml(path)
        stand_in_paths(doc, stand_ins)
        credentials = tmp / f"credentials-{path.parent.name}-{path.stem}"
        credentials.mkdir(mode=0o700)
        for name in credential_names(doc):
            (credentials / name).write_text(f"stand-in {name}\n", encoding="utf-8")
            (credentials / name).chmod(0o600)
        copy = write_yaml(tmp / f"{path.parent.name}-{path.name}", doc)
        result = run_hatang(["check", "--credentials", str(credentials), "-c", str(copy)])
        assert_ok(result, f"hatang check of {path} (paths of the production host replaced by stand-ins)")
        assert f"{copy}: OK: " in result.stdout, result.stdout
        assert "WARNING" not in result.stderr, result.stderr


def check_inventories(files: list[Path], tmp: Path) -> None:
    from collector.inventory import load

    for path in files:
        inventory = load(path)
        assert inventory.sites, f"{path}: no site"


def check_prometheus_config(files: list[Path], tmp: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    for path in files:
        doc = load_yaml(path)
        rule_files = doc.get("rule_files", [])
        for i, name in enumerate(rule_files):
            assert name.startswith(RULES_MOUNT), f"{path}: rule file {name} is not under {RULES_MOUNT}"
            local = RULES / name.removeprefix(RULES_MOUNT)
            assert local.is_file(), f"{path} names {name}, but the repository has no {local}"
            rule_files[i] = str(local)
        copy = write_yaml(tmp / path.name, doc)
        result = run([promtool, "check", "config", str(copy)])
        assert_ok(result, f"promtool check config {path} (rule_files pointed at {RULES})")
        assert "SUCCESS" in result.stdout + result.stderr


def check_rules(files: list[Path], tmp: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    for path in files:
        assert_ok(run([promtool, "check", "rules", str(path)]), f"promtool check rules {path}")


def check_rule_tests(files: list[Path], tmp: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    for path in files:
        assert_ok(run([promtool, "test", "rules", path.name], cwd=path.parent), f"promtool test rules {path}")


def check_alertmanager(files: list[Path], tmp: Path) -> None:
    """The shipped file, and the layout of the compose container: hatang.yml, templates/ and the secrets
    (from secrets.example/) in one directory, as /etc/alertmanager is there."""
    tool = amtool()
    templates = sorted((DEPLOY / "alertmanager" / "templates").glob("*.tmpl"))
    for path in files:
        layout = tmp / "etc-alertmanager"
        shutil.copytree(path.parent / "templates", layout / "templates")
        shutil.copytree(path.parent / "secrets.example", layout / "secrets")
        shutil.copy(path, layout / path.name)
        for config in (path, layout / path.name):
            result = run([tool, "check-config", str(config)])
            assert_ok(result, f"amtool check-config {config}")
            assert "SUCCESS" in result.stdout, result.stdout
            assert f"{len(templates)} templates" in result.stdout, result.stdout


def check_alertmanager_secret_examples(files: list[Path], tmp: Path) -> None:
    """Each example is a file the config names (relative to its directory) and holds a placeholder."""
    doc = load_yaml(DEPLOY / "alertmanager" / "hatang.yml")
    named = {doc["global"]["smtp_auth_password_file"]}
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            named.add(hook["http_config"]["authorization"]["credentials_file"])
    for path in files:
        assert f"secrets/{path.name}" in named, f"{path}: hatang.yml names no secrets/{path.name} ({named})"
        assert "THAY_BANG" in path.read_text(encoding="utf-8"), f"{path}: not a placeholder"


def check_alertmanager_templates(files: list[Path], tmp: Path) -> None:
    """Loaded by ``amtool check-config`` of hatang.yml (templates/*.tmpl): counted there."""
    doc = load_yaml(DEPLOY / "alertmanager" / "hatang.yml")
    assert "templates/*.tmpl" in doc["templates"]
    check_alertmanager([DEPLOY / "alertmanager" / "hatang.yml"], tmp)


def _mqtt_connect(port: int, ca: Path, username: str, password: str) -> int:
    """MQTT 3.1.1 CONNECT over TLS to 127.0.0.1:``port``; the CONNACK return code (0: accepted)."""
    def field(text: str) -> bytes:
        data = text.encode()
        return len(data).to_bytes(2, "big") + data

    body = field("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big") + field("deploy-check")
    body += field(username) + field(password)
    assert len(body) < 128
    packet = bytes([0x10, len(body)]) + body
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
        tls.sendall(packet)
        reply = b""
        while len(reply) < 4:
            chunk = tls.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
        if reply[3:4] == b"\x00":
            tls.sendall(b"\xe0\x00")  # DISCONNECT
        with contextlib.suppress(OSError):
            tls.unwrap()  # TLS close_notify: the broker logs no "unexpected eof"
    assert reply[:2] == b"\x20\x02", f"no CONNACK: {reply!r}"
    return reply[3]


def check_mosquitto(files: list[Path], tmp: Path) -> None:
    """Start the shipped hatang.conf (paths and ports rewritten only) with the shipped ACL."""
    binary = require_binary("mosquitto", "mosquitto")
    passwd_tool = require_binary("mosquitto_passwd", "mosquitto")
    conf = DEPLOY / "mosquitto" / "hatang.conf"
    acl = DEPLOY / "mosquitto" / "hatang.acl"
    assert sorted(files) == sorted([conf, acl])
    ca = trustme.CA()
    server = ca.issue_cert(LOOPBACK, "localhost")
    work = tmp / "mosquitto"
    (work / "data").mkdir(parents=True)
    server.cert_chain_pems[0].write_to_path(str(work / "server.crt"))
    server.private_key_pem.write_to_path(str(work / "server.key"))
    ca.cert_pem.write_to_path(str(work / "ca.crt"))
    assert_ok(run([passwd_tool, "-b", "-c", str(work / "passwd"), "collector.hatang", "mật-khẩu"]),
              "mosquitto_passwd")
    stand_ins = {"certfile": work / "server.crt", "keyfile": work / "server.key", "cafile": work / "ca.crt",
                 "password_file": work / "passwd", "acl_file": acl, "persistence_location": work / "data"}
    plain, tls = free_tcp_port(), free_tcp_port()
    listeners = iter([plain, tls])
    lines, seen = [], set()
    for line in conf.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            lines.append(line)
        elif words[0] == "listener":
            port = next(listeners, None)
            assert port is not None, f"{conf}: more than two listeners; extend this test"
            lines.append(f"listener {port} {LOOPBACK}")
        elif words[0] in stand_ins:
            seen.add(words[0])
            target = str(stand_ins[words[0]]) + ("/" if words[0] == "persistence_location" else "")
            lines.append(f"{words[0]} {target}")
        else:
            assert not any(w.startswith("/") for w in words[1:]), (
                f"{conf}: {line!r} names a path this test does not stand in for")
            lines.append(line)
    assert seen == set(stand_ins), f"{conf} no longer names {set(stand_ins) - seen}"
    lines += [f"log_dest file {work / 'mosquitto.log'}", "log_type all"]
    if os.geteuid() == 0:
        lines.append("user root")  # see tests/support/services.py: root would drop to user mosquitto
    config = work / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    broker = Mosquitto(LOOPBACK, plain, 0, config, work / "mosquitto.log", binary=binary)
    try:
        broker.start()
    except ServiceError as exc:
        raise AssertionError(f"the shipped {conf} does not start:\n{exc}") from None
    try:
        wait_until(lambda: owns_port(broker.pid, "tcp", tls), 10, message=f"the TLS listener on {tls}")
        assert _mqtt_connect(tls, work / "ca.crt", "collector.hatang", "mật-khẩu") == 0, broker.log()
        assert _mqtt_connect(tls, work / "ca.crt", "collector.hatang", "sai") != 0, broker.log()
        assert broker.running, broker.log()
    finally:
        broker.stop()
    assert "Error" not in broker.log(), broker.log()


def _unit_settings(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> every value (systemd allows a key more than once)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a Key=Value line: {raw!r}"
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def _exec_path(value: str) -> str:
    return value.lstrip("-@:+!").split()[0]


def check_systemd_units(files: list[Path], tmp: Path) -> None:
    """``systemd-analyze verify`` (works without a running systemd) in a root holding the system's unit
    directory, the units, a stub at the hatang path they run, and the other programs they run, copied
    from this host. Then the hardening issue 15 asks for."""
    analyze = require_binary("systemd-analyze", "systemd")
    root = tmp / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for path in files:
        settings = _unit_settings(path)
        for key, values in settings.items():
            if key.startswith("Service.Exec"):
                for value in values:
                    program = _exec_path(value)
                    target = root / program.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if program == HATANG_VENV_BIN:
                        target.write_text("#!/bin/sh\nexit 0\n")
                        target.chmod(0o755)
                    else:
                        assert Path(program).is_file(), f"{path}: {key} runs {program}, not on this host"
                        shutil.copy(Path(program).resolve(), target)
        shutil.copy(path, units / path.name)
    for path in files:
        result = run([analyze, "verify", f"--root={root}", "--man=no", str(units / path.name)])
        assert_ok(result, f"systemd-analyze verify {path}")
        assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr

        settings = _unit_settings(path)
        one = {key: values[-1] for key, values in settings.items()}
        assert one.get("Service.User") == "hatang" and one.get("Service.Group") == "hatang", path
        assert one.get("Service.ProtectSystem") == "strict", path
        assert one.get("Service.NoNewPrivileges") == "true", path
        assert one.get("Service.StateDirectory", "").startswith("hatang"), path
        assert settings.get("Service.LoadCredential"), f"{path}: secrets must come by LoadCredential="
        start, pre = one["Service.ExecStart"], settings.get("Service.ExecStartPre", [])
        assert _exec_path(start) == HATANG_VENV_BIN, start
        assert any(_exec_path(p) == HATANG_VENV_BIN and p.split()[1:3] == ["check", "-c"] for p in pre), pre
        assert "http" not in path.read_text(encoding="utf-8"), f"{path}: no URLs in the units"
        # capabilities only where needed: the agent binds UDP 162 (traps) and sends ICMP (probes)
        wanted = {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"} if "agent" in path.name else set()
        for key in ("Service.CapabilityBoundingSet", "Service.AmbientCapabilities"):
            assert key in settings, f"{path}: {key} must be set (empty for none)"
            assert set(one[key].split()) == wanted, (path, key, one[key])


def check_grafana_provisioning(files: list[Path], tmp: Path) -> None:
    """The data source points at Prometheus as compose starts it, and the dashboard provider reads the
    directory compose mounts dashboards/ at (and the JSON there parses)."""
    compose = load_yaml(DEPLOY / "compose" / "docker-compose.yml")
    prometheus_flags = compose["services"]["prometheus"]["command"]
    listen = next(f.split("=", 1)[1] for f in prometheus_flags if f.startswith("--web.listen-address="))
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    for path in files:
        doc = load_yaml(path)
        assert doc["apiVersion"] == 1, path
        for source in doc.get("datasources", []):
            assert source["type"] == "prometheus" and source["url"] == f"http://{listen}", (path, source)
        for provider in doc.get("providers", []):
            assert provider["type"] == "file", (path, provider)
            where = provider["options"]["path"]
            assert grafana_mounts.get(where) == "../../dashboards", (
                f"{path}: the provider reads {where}; compose mounts dashboards/ at another place")
            boards = sorted((REPO / "dashboards").glob("*.json"))
            assert boards, "dashboards/ has no generated JSON"
            for board in boards:
                assert json.loads(board.read_text(encoding="utf-8"))["uid"], board
        assert doc.get("datasources") or doc.get("providers"), f"{path}: provisions nothing"


def _compose_env(tmp: Path) -> tuple[dict[str, str], Path]:
    fleet, secrets = tmp / "fleet", tmp / "compose-secrets"
    for path in (fleet / "broker" / "mosquitto.passwd", fleet / "secrets" / "collector-password",
                 secrets / "smtp-password", secrets / "webhook-token", secrets / "grafana-admin-password"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stand-in\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATANG_", "COMPOSE_"))}
    env.update(HATANG_FLEET_DIR=str(fleet), HATANG_SECRETS_DIR=str(secrets))
    env_file = tmp / "empty.env"
    env_file.write_text("")
    return env, env_file


def check_compose_files(files: list[Path], tmp: Path) -> None:
    """``docker-compose config -q``: the base file alone, and each override on top of it (the details:
    tests/integration/test_compose_file.py)."""
    binary = require_binary("docker-compose", "docker-compose")
    env, env_file = _compose_env(tmp)
    base = DEPLOY / "compose" / "docker-compose.yml"
    assert base in files
    for path in files:
        stack = [base] if path == base else [base, path]
        argv = [binary, "--env-file", str(env_file)]
        for f in stack:
            argv += ["-f", str(f)]
        result = run([*argv, "config", "-q"], cwd=tmp, env=env)
        assert_ok(result, f"docker-compose config -q of {[str(f) for f in stack]}")
        assert not result.stderr.strip(), result.stderr


def check_scrape_config(files: list[Path], tmp: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    vm = require_binary("victoria-metrics", "victoria-metrics")
    for path in files:
        assert_ok(run([promtool, "check", "config", str(path)]), f"promtool check config {path}")
        result = run([vm, f"-promscrape.config={path}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                     cwd=tmp)
        assert_ok(result, f"victoria-metrics -promscrape.config.dryRun {path}")


def check_gitignore_keeps_secrets_out(files: list[Path], tmp: Path) -> None:
    for path in files:
        directory = path.parent.relative_to(REPO).as_posix()
        for name, ignored in (("smtp-password", True), ("collector-password", True), ("README.md", False)):
            result = run(["git", "check-ignore", "-q", "--no-index", f"{directory}/{name}"], cwd=REPO)
            if result.returncode == 128:
                unavailable(f"not a git checkout: {result.stderr.strip()}")
            assert (result.returncode == 0) == ignored, f"{path}: {name} ignored={not ignored}"


def check_dockerfile(files: list[Path], tmp: Path) -> None:
    """Static: every base image pinned to an exact version, the image runs as a non-root user, hatang is
    installed with pip from the checkout (the build context)."""
    for path in files:
        instructions = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                        if line.strip() and not line.lstrip().startswith("#")]
        froms = [line.split()[1] for line in instructions if line.upper().startswith("FROM ")]
        assert froms, path
        stages = {line.split()[3] for line in instructions
                  if line.upper().startswith("FROM ") and len(line.split()) == 4}
        for image in froms:
            name, _, tag = image.partition(":")
            assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9.-]+)?", tag), f"{path}: FROM {image} is not pinned"
            assert name not in stages
        users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path}: runs as root"
        text = "\n".join(instructions)
        assert "COPY . /src" in text and "pip install /src" in text, path


def check_ansible(files: list[Path], tmp: Path) -> None:
    """Every playbook (a YAML list of plays at the top of deploy/ansible/) passes ``--syntax-check``,
    which loads the roles; every inventory example parses; every other YAML file parses."""
    playbook_tool = require_binary("ansible-playbook", "ansible-core")
    inventory_tool = require_binary("ansible-inventory", "ansible-core")
    base = DEPLOY / "ansible"
    env = dict(os.environ, ANSIBLE_CONFIG=str(base / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
               ANSIBLE_HOME=str(tmp / "home"))
    for path in files:
        if path.name == "ansible.cfg":
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(path, encoding="utf-8")
            assert parser.has_section("defaults"), path
        elif path.suffix in (".yml", ".yaml"):
            load_yaml(path)
    inventories = [p for p in files if p.parent == base and p.name.startswith("inventory")]
    for inventory in inventories:
        result = run([inventory_tool, "-i", str(inventory), "--list"], cwd=base, env=env)
        assert_ok(result, f"ansible-inventory -i {inventory} --list")
    playbooks = [p for p in files if p.parent == base and p.suffix == ".yml" and p not in inventories
                 and isinstance(load_yaml(p), list)]
    assert playbooks, "no playbook in deploy/ansible/"
    # --syntax-check loads the roles a playbook names: every role must be named by one
    used = {role if isinstance(role, str) else role.get("role", role.get("name"))
            for playbook in playbooks for play in load_yaml(playbook) for role in play.get("roles", [])}
    roles = {p.relative_to(base / "roles").parts[0] for p in files if p.is_relative_to(base / "roles")}
    assert roles <= used, f"roles no playbook uses (so --syntax-check never loads them): {roles - used}"
    for playbook in playbooks:
        argv = [playbook_tool, "--syntax-check", str(playbook)]
        if inventories:
            argv[1:1] = ["-i", str(inventories[0])]
        assert_ok(run(argv, cwd=base, env=env), f"ansible-playbook --syntax-check {playbook}")


def check_bash(files: list[Path], tmp: Path) -> None:
    for path in files:
        assert_ok(run(["bash", "-n", str(path)]), f"bash -n {path}")


def check_posix_sh(files: list[Path], tmp: Path) -> None:
    """Scripts for the Alpine/busybox containers: POSIX sh (dash -n where it exists)."""
    shell = shutil.which("dash") or "sh"
    for path in files:
        assert_ok(run([shell, "-n", str(path)]), f"{shell} -n {path}")
        assert path.read_text(encoding="utf-8").startswith("#!/bin/sh\n"), path


def check_python(files: list[Path], tmp: Path) -> None:
    for path in files:
        py_compile.compile(str(path), cfile=str(tmp / f"{path.stem}.pyc"), doraise=True)


def check_text(files: list[Path], tmp: Path) -> None:
    for path in files:
        text = path.read_bytes().decode("utf-8")
        assert text.strip(), f"{path} is empty"


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def check_markdown(files: list[Path], tmp: Path) -> None:
    """Every relative link resolves to a file or directory of the repository."""
    for path in files:
        for target in _LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            local = (path.parent / target.split("#", 1)[0]).resolve()
            assert local.exists(), f"{path}: broken link {target}"


# --------------------------------------------------------------------------------------------------
# the table: every file under deploy/ -> its checker (first matching row; fnmatch, "*" spans "/")

CHECKS: list[tuple[str, Checker]] = [
    ("deploy/Dockerfile", check_dockerfile),
    ("deploy/*.md", check_markdown),  # every README, in every directory
    # hatang configs
    ("deploy/examples/agent.yaml", check_hatang_configs),
    ("deploy/examples/collector.yaml", check_hatang_configs),
    ("deploy/examples/collector-group.yaml", check_hatang_configs),
    ("deploy/compose/collector*.yaml", check_hatang_configs),
    ("deploy/central/collector.yaml", check_hatang_configs),
    ("deploy/examples/inventory.*", check_inventories),
    # Prometheus, Alertmanager, VictoriaMetrics
    ("deploy/prometheus/prometheus.yml", check_prometheus_config),
    ("deploy/prometheus/rules/*.rules.yml", check_rules),
    ("deploy/prometheus/rules/*.rules.test.yml", check_rule_tests),
    ("deploy/alertmanager/hatang.yml", check_alertmanager),
    ("deploy/alertmanager/templates/*.tmpl", check_alertmanager_templates),
    ("deploy/alertmanager/secrets.example/*", check_alertmanager_secret_examples),
    ("deploy/compose/victoria-metrics/scrape.yml", check_scrape_config),
    # Mosquitto
    ("deploy/mosquitto/hatang.conf", check_mosquitto),
    ("deploy/mosquitto/hatang.acl", check_mosquitto),
    # systemd
    ("deploy/systemd/*.service", check_systemd_units),
    # Grafana
    ("deploy/grafana/provisioning/*.yaml", check_grafana_provisioning),
    # compose
    ("deploy/compose/docker-compose*.yml", check_compose_files),
    ("deploy/compose/mosquitto-entrypoint.sh", check_posix_sh),
    ("deploy/compose/secrets/.gitignore", check_gitignore_keeps_secrets_out),
    # the centre without containers (scripts/central-up)
    ("deploy/central/*.py", check_python),
    # Ansible
    ("deploy/ansible/*", check_ansible),
    # the offline installer
    ("deploy/offline/*.sh", check_bash),
    ("deploy/offline/*.txt", check_text),
]


def checker_of(path: str) -> Checker | None:
    for pattern, checker in CHECKS:
        if fnmatch.fnmatchcase(path, pattern):
            return checker
    return None


def _groups() -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for rel in deploy_files():
        checker = checker_of(rel)
        if checker is not None:
            groups.setdefault(checker.__name__, []).append(REPO / rel)
    return groups


CHECKERS = {checker.__name__: checker for _, checker in CHECKS}
GROUPS = _groups()


def test_every_file_in_deploy_has_a_checker() -> None:
    files = deploy_files()
    assert "deploy/prometheus/prometheus.yml" in files, files  # the listing works
    unchecked = [f for f in files if checker_of(f) is None]
    assert not unchecked, (f"files in deploy/ that no test checks: {unchecked}; add a row to CHECKS in "
                           f"{Path(__file__).relative_to(REPO)}")


def test_every_row_of_the_table_matches_a_file() -> None:
    """A row that matches nothing is a typo or a file that moved (its checks would silently stop)."""
    files = deploy_files()
    idle = [pattern for pattern, _ in CHECKS if not any(fnmatch.fnmatchcase(f, pattern) for f in files)]
    assert not idle, f"rows of CHECKS that match no file: {idle}"


@pytest.mark.parametrize("checker", sorted(GROUPS), ids=str)
def test_config_files(checker: str, tmp_path: Path) -> None:
    files = GROUPS[checker]
    CHECKERS[checker](files, tmp_path)

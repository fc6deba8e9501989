"""deploy/compose/: the central stack's compose files, validated by Debian's docker-compose 1.29.

The stack cannot be started here (no image registry, the Dockerfile is not built): ``docker-compose
config`` validates and resolves the files, with the operator's secrets and the fleet directory stood in
by files in a temporary directory (through HATANG_SECRETS_DIR and HATANG_FLEET_DIR) and an empty env
file (an operator's .env next to the compose file must not change what is tested). On the resolved
configuration the tests check what docker-compose does not: pinned images, that every file mounted
from the repository exists and is the repository's own (never a copy), that the shipped configs and the
compose file agree on ports and paths, and the Prometheus flags.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support.services import require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose"
BASE = COMPOSE / "docker-compose.yml"
VICTORIA = COMPOSE / "docker-compose.victoria-metrics.yml"
STACKS = {"base": [BASE], "victoria-metrics": [BASE, VICTORIA]}
EXACT_VERSION = re.compile(r"v?\d+\.\d+\.\d+(-[a-z0-9.-]+)?")


@dataclass
class Stand:
    """Stand-ins for the operator's files, outside the repository."""

    root: Path
    fleet: Path
    secrets: Path
    env_file: Path


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Stand:
    root = tmp_path_factory.mktemp("compose")
    fleet, secrets = root / "fleet", root / "secrets"
    broker = fleet / "broker"
    for path in (broker / "server.crt", broker / "server.key", broker / "ca.crt", broker / "mosquitto.passwd",
                 fleet / "secrets" / "collector-password", secrets / "smtp-password",
                 secrets / "webhook-token", secrets / "grafana-admin-password"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"stand-in {path.name}\n", encoding="utf-8")
    env_file = root / "empty.env"
    env_file.write_text("", encoding="utf-8")
    return Stand(root, fleet, secrets, env_file)


def compose(stand: Stand, files: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATANG_", "COMPOSE_"))}
    env.update(HATANG_FLEET_DIR=str(stand.fleet), HATANG_SECRETS_DIR=str(stand.secrets))
    argv = [binary, "--env-file", str(stand.env_file)]
    for path in files:
        argv += ["-f", str(path)]
    return subprocess.run([*argv, *args], cwd=stand.root, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module", params=sorted(STACKS), ids=str)
def resolved(request: pytest.FixtureRequest, stand: Stand) -> dict[str, Any]:
    """``docker-compose config`` of one stack (the base file, or base + VictoriaMetrics), as YAML."""
    result = compose(stand, STACKS[request.param], "config")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    doc["x-stack"] = request.param
    return doc


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    mode: str


def mounts(service: dict[str, Any]) -> list[Mount]:
    out = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"long volume syntax not expected from docker-compose 1.29: {volume}"
        parts = volume.split(":")
        assert len(parts) in (2, 3), volume
        out.append(Mount(parts[0], parts[1], parts[2] if len(parts) == 3 else "rw"))
    return out


def bind_mounts(service: dict[str, Any]) -> dict[str, Mount]:
    """target -> mount, for mounts of a host path (not a named volume)."""
    return {m.target: m for m in mounts(service) if m.source.startswith("/")}


def flag(command: list[str], name: str) -> str | None:
    values = [c.split("=", 1)[1] for c in command if c.startswith(f"{name}=")]
    assert len(values) <= 1, (name, command)
    return values[0] if values else None


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(STACKS), ids=str)
def test_docker_compose_config_accepts_the_files(stand: Stand, stack: str) -> None:
    result = compose(stand, STACKS[stack], "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_every_image_is_pinned_to_an_exact_version(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        if "build" in service:
            assert "image" not in service, f"{name}: built here; no image name to pull"
            continue
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
        assert tag != "latest" and EXACT_VERSION.fullmatch(tag), f"{name}: {image!r} is not an exact version"
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.upper().startswith("FROM "):
            image = line.split()[1]
            tag = image.partition(":")[2]
            assert re.fullmatch(r"\d+\.\d+\.\d+-slim-[a-z]+", tag), f"deploy/Dockerfile: FROM {image}"


def test_every_host_path_exists_and_mounts_from_the_repository_are_its_own(
    resolved: dict[str, Any], stand: Stand
) -> None:
    """A moved or renamed file under deploy/ or dashboards/ breaks this test; a host path outside the
    repository may only be the fleet directory."""
    declared = set(resolved.get("volumes", {}))
    for name, service in resolved["services"].items():
        for mount in mounts(service):
            if not mount.source.startswith("/"):
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"
                continue
            source = Path(mount.source)
            if source.is_relative_to(REPO):
                assert source.exists(), f"{name}: mounts {source}, which is not in the repository"
                top = source.relative_to(REPO).parts[0]
                assert top in ("deploy", "dashboards"), f"{name}: mounts {source}"
                assert mount.mode == "ro", f"{name}: {mount} must be read-only"
            else:
                assert source.is_relative_to(stand.fleet), (
                    f"{name}: mounts {source} from outside the repository")
                assert source.exists(), f"{name}: {source}"
                assert mount.mode == "ro", f"{name}: {mount} must be read-only"
        if "build" in service:
            context = Path(service["build"]["context"])
            assert context == REPO, service["build"]
            assert (context / service["build"]["dockerfile"]) == DEPLOY / "Dockerfile"
    for secret, spec in resolved["secrets"].items():
        path = Path(spec["file"])
        assert path.is_file(), f"secret {secret}: {path}"
        assert not path.is_relative_to(REPO), f"secret {secret} must come from the operator's files: {path}"


def test_rules_dashboards_and_alertmanager_files_are_mounted_from_deploy(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    prometheus = bind_mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"].source == str(DEPLOY / "prometheus/prometheus.yml")
    assert prometheus["/etc/prometheus/rules"].source == str(DEPLOY / "prometheus/rules")
    for rule_file in load_yaml(DEPLOY / "prometheus/prometheus.yml")["rule_files"]:
        assert PurePosixPath(rule_file).parent == PurePosixPath("/etc/prometheus/rules"), rule_file
        assert (DEPLOY / "prometheus/rules" / PurePosixPath(rule_file).name).is_file(), rule_file

    alertmanager = bind_mounts(services["alertmanager"])
    config = flag(services["alertmanager"]["command"], "--config.file")
    assert config is not None
    assert alertmanager[config].source == str(DEPLOY / "alertmanager/hatang.yml")
    config_dir = PurePosixPath(config).parent
    assert alertmanager[str(config_dir / "templates")].source == str(DEPLOY / "alertmanager/templates")
    # the secrets land where hatang.yml's relative *_file paths point (relative to its directory)
    shipped = load_yaml(DEPLOY / "alertmanager/hatang.yml")
    wanted = {str(config_dir / shipped["global"]["smtp_auth_password_file"])}
    for receiver in shipped["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            wanted.add(str(config_dir / hook["http_config"]["authorization"]["credentials_file"]))
    targets = {s.get("target") for s in services["alertmanager"]["secrets"]}
    assert wanted <= targets, (wanted, targets)

    grafana = bind_mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"].source == str(DEPLOY / "grafana/provisioning")
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/hatang.yaml")["providers"][0]
    boards = grafana[provider["options"]["path"]]
    assert boards.source == str(REPO / "dashboards"), boards
    assert sorted((REPO / "dashboards").glob("*.json")), "dashboards/ holds no generated JSON"
    secret_file = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert secret_file == "/run/secrets/grafana-admin-password"
    assert {s["source"] for s in services["grafana"]["secrets"]} == {"grafana-admin-password"}


def test_mosquitto_runs_the_shipped_conf_with_the_fleet_directory(
    resolved: dict[str, Any], stand: Stand
) -> None:
    service = resolved["services"]["mosquitto"]
    binds = bind_mounts(service)
    assert binds["/etc/mosquitto/hatang"].source == str(DEPLOY / "mosquitto")
    entrypoint_target = service["entrypoint"][-1]
    assert binds[entrypoint_target].source == str(COMPOSE / "mosquitto-entrypoint.sh")
    script = (COMPOSE / "mosquitto-entrypoint.sh").read_text(encoding="utf-8")
    assert 'exec /usr/sbin/mosquitto -c "$shipped/hatang.conf"' in script
    assert "shipped=/etc/mosquitto/hatang " in script

    conf: dict[str, list[str]] = {}
    for line in (DEPLOY / "mosquitto/hatang.conf").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            conf.setdefault(words[0], []).append(" ".join(words[1:]))
    # every broker file hatang.conf names is in the mounted fleet directory's broker/ ...
    broker = binds["/etc/hatang/fleet/broker"]
    assert broker.source == str(stand.fleet / "broker")
    for key in ("certfile", "keyfile", "cafile", "password_file"):
        (path,) = conf[key]
        assert PurePosixPath(path).parent == PurePosixPath(broker.target), (key, path)
        assert (stand.fleet / "broker" / PurePosixPath(path).name).is_file(), (key, path)
    # ... the ACL is the shipped one, linked where hatang.conf names it ...
    (acl,) = conf["acl_file"]
    assert f'ln -sf "$shipped/hatang.acl" {acl}' in script, acl
    # ... and the persistence directory is a volume
    (store,) = conf["persistence_location"]
    assert any(m.target == store.rstrip("/") and not m.source.startswith("/") for m in mounts(service))
    assert "require_certificate" not in conf or conf["require_certificate"] == ["false"]
    assert any(listener.split()[0] == "8883" for listener in conf["listener"])


def test_every_service_uses_the_host_network_and_the_shipped_ports(resolved: dict[str, Any]) -> None:
    """The shipped configs name 127.0.0.1 ports: the compose services listen exactly there."""
    services = resolved["services"]
    for name, service in services.items():
        assert service.get("network_mode") == "host", name
        assert "ports" not in service, name

    prometheus_listen = flag(services["prometheus"]["command"], "--web.listen-address")
    assert prometheus_listen == "127.0.0.1:9090"
    datasource = load_yaml(DEPLOY / "grafana/provisioning/datasources/hatang.yaml")["datasources"][0]
    assert datasource["url"] == f"http://{prometheus_listen}"
    shipped = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    alert_targets = shipped["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert flag(services["alertmanager"]["command"], "--web.listen-address") in alert_targets
    assert flag(services["alertmanager"]["command"], "--cluster.listen-address") == ""

    collector_file = bind_mounts(services["collector"])["/etc/hatang/collector.yaml"].source
    collector = load_yaml(Path(collector_file))
    scrape_targets = shipped["scrape_configs"][0]["static_configs"][0]["targets"]
    assert collector["listen"] in scrape_targets
    assert f"http://{prometheus_listen}/api/v1/write" in [w["url"] for w in collector["remote_write"]]
    assert collector["mqtt"]["url"] == "mqtt://127.0.0.1:1883"
    listeners = [line.split()[1:] for line in (DEPLOY / "mosquitto/hatang.conf").read_text().splitlines()
                 if line.startswith("listener ")]
    assert ["1883", "127.0.0.1"] in listeners, listeners


def test_prometheus_has_the_remote_write_receiver_and_the_out_of_order_window(
    resolved: dict[str, Any]
) -> None:
    command = resolved["services"]["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in command
    assert flag(command, "--config.file") == "/etc/prometheus/prometheus.yml"
    assert flag(command, "--storage.tsdb.path") == "/prometheus"
    assert flag(command, "--storage.tsdb.retention.time") == "400d"
    window = load_yaml(DEPLOY / "prometheus/prometheus.yml")["storage"]["tsdb"]["out_of_order_time_window"]
    assert window, "prometheus.yml sets no out-of-order window"


def test_collector_checks_its_config_and_reads_its_password_as_a_secret(
    resolved: dict[str, Any], stand: Stand
) -> None:
    service = resolved["services"]["collector"]
    assert service["environment"]["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    assert [s["source"] for s in service["secrets"]] == ["collector-password"]
    secret_file = Path(resolved["secrets"]["collector-password"]["file"])
    assert secret_file == stand.fleet / "secrets/collector-password"
    config = load_yaml(Path(bind_mounts(service)["/etc/hatang/collector.yaml"].source))
    assert config["mqtt"]["password_file"] == "${CREDENTIALS_DIRECTORY}/collector-password"
    assert config["mqtt"]["username"] == "collector.hatang"
    state = PurePosixPath(config["state_file"])
    assert any(m.target == str(state.parent) and not m.source.startswith("/") for m in mounts(service))
    command = " ".join(service["command"])
    check = command.index("hatang check -c /etc/hatang/collector.yaml")
    assert check < command.index("exec hatang collector -c /etc/hatang/collector.yaml")
    assert "&&" in command[check:]


def test_victoria_metrics_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    collector = load_yaml(Path(bind_mounts(services["collector"])["/etc/hatang/collector.yaml"].source))
    urls = [w["url"] for w in collector["remote_write"]]
    if resolved["x-stack"] == "base":
        assert "victoria-metrics" not in services
        assert urls == ["http://127.0.0.1:9090/api/v1/write"]
        return
    vm = services["victoria-metrics"]
    listen = flag(vm["command"], "-httpListenAddr")
    assert listen == "127.0.0.1:8428"
    assert flag(vm["command"], "-dedup.minScrapeInterval") == "1ms"  # deploy/victoria-metrics/README.md
    assert f"http://{listen}/api/v1/write" in urls and "http://127.0.0.1:9090/api/v1/write" in urls
    scrape = flag(vm["command"], "-promscrape.config")
    assert bind_mounts(vm)[str(scrape)].source == str(COMPOSE / "victoria-metrics/scrape.yml")
    job = load_yaml(COMPOSE / "victoria-metrics/scrape.yml")["scrape_configs"][0]
    shipped_job = load_yaml(DEPLOY / "prometheus/prometheus.yml")["scrape_configs"][0]
    for key in ("honor_labels", "static_configs", "metric_relabel_configs"):
        assert job[key] == shipped_job[key], key


def test_dockerignore_sends_what_pip_install_needs() -> None:
    """The build context of deploy/Dockerfile (``COPY . /src``, ``pip install /src``) as .dockerignore
    leaves it: pyproject.toml, its readme and every package directory it installs; not .git or .venv."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:
        parts = path.split("/")
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").removeprefix("**/")
            prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            names = parts if pattern.lstrip("!").startswith("**/") else []
            if any(fnmatch.fnmatchcase(p, bare) for p in prefixes) or any(
                    fnmatch.fnmatchcase(n, bare) for n in names):
                keep = negate
        return keep

    pyproject = (REPO / "pyproject.toml").read_text()
    includes = re.search(r'include = \[([^\]]*)\]', pyproject)
    assert includes is not None
    packages = sorted({p.strip().strip('"').rstrip("*") for p in includes.group(1).split(",")})
    for package in packages:
        modules = [p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py")
                   if "__pycache__" not in p.parts]
        assert modules and all(sent(m) for m in modules), package
    for path in ("pyproject.toml", "README.md", "agent/profiles/system.yaml"):
        assert (REPO / path).exists() and sent(path), path
    for path in (".git/config", ".venv/bin/python", "tests/conftest.py", "hatang.egg-info/PKG-INFO",
                 "hatang/__pycache__/cli.cpython-311.pyc", "deploy/compose/secrets/smtp-password"):
        assert not sent(path), path

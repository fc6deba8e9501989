"""The install step: the fleet directory (``hatang fleet init`` when it has none, permissions for the
broker), the shipped files copied under ROOT with their substitutions and owners, the files
``scripts/central-up`` writes itself, and the checks of what was installed (the daemons' own tools,
``hatang check``, the files the Mosquitto config names)."""

from __future__ import annotations

import ipaddress
import json
import shlex
from pathlib import Path

from central_configs import (
    DEFAULT_PORTS,
    DEPLOY,
    MOSQUITTO_DROPIN,
    REPO,
    Layout,
    alertmanager_args,
    check_mosquitto_listeners,
    default_file,
    mosquitto_files,
    program_dropin,
    prometheus_args,
    reload_command,
    rewrite,
    unit_program,
)
from central_debian import find_program, run
from central_files import Installer, make_dir, set_owner
from central_messages import PROG, CentralUpError, say


def collector_config() -> str:
    return (DEPLOY / "central" / "collector.yaml").read_text(encoding="utf-8")


def init_fleet(layout: Layout, hatang: str, names: list[str], ports: dict[str, int],
               use_systemd: bool) -> None:
    fleet_yaml = layout.fleet / "fleet.yaml"
    if fleet_yaml.exists():
        try:
            url = json.loads(fleet_yaml.read_text(encoding="utf-8")).get("broker_url", "?")
        except (OSError, ValueError):
            url = "?"
        say(f"fleet directory {layout.fleet} exists (broker URL {url}): kept")
        if names:
            wanted = f"mqtts://{names[0]}:{ports['mqtts']}"
            if url != wanted:
                say(f"note: --broker-name/--ports give {wanted}, the fleet says {url}; the fleet is not "
                    "changed (agents already enrolled use its URL)")
        return
    if not names:
        raise CentralUpError(f"{layout.fleet} has no fleet.yaml: give --broker-name NAME (the DNS name or "
                             "IP address the offices use to reach this host) so that it can be created")
    argv = [hatang, "fleet", "init", "--fleet", str(layout.fleet),
            "--broker-url", f"mqtts://{names[0]}:{ports['mqtts']}",
            "--reload-command", reload_command(layout, use_systemd)]
    for name in names:
        try:
            ipaddress.ip_address(name)
            argv += ["--server-ip", name]
        except ValueError:
            argv += ["--server-name", name]
    make_dir(layout.fleet.parent, mode=0o755)
    run(argv, "creating the fleet directory")
    say(f"fleet directory {layout.fleet} created ({shlex.join(argv[2:])})")


def fleet_permissions(layout: Layout) -> None:
    """The broker (user mosquitto) reads the fleet's password file and server key in place: it may
    search the fleet directory (not list it) and read broker/; everything else there stays root's."""
    fleet = layout.fleet
    owner_bits = fleet.stat().st_mode & 0o700
    set_owner(fleet, None, "mosquitto", owner_bits | 0o010)
    set_owner(fleet / "broker", None, "mosquitto", 0o750)
    for name, mode in (("mosquitto.passwd", 0o640), ("server.key", 0o640), ("server.crt", 0o644)):
        path = fleet / "broker" / name
        if not path.exists():
            raise CentralUpError(f"{path} is missing: the fleet directory is incomplete (hatang fleet init)")
        set_owner(path, None, "mosquitto", mode)


def install(layout: Layout, hatang: str, broker_names: list[str], subst_ports: dict[str, int] | None,
            use_systemd: bool) -> Installer:
    """Install everything under ``layout.root``; ``subst_ports`` (--ports) None: the shipped ports stay as
    they are."""
    ports: dict[str, int] = subst_ports or dict(DEFAULT_PORTS)
    inst = Installer.load(layout.root)
    make_dir(layout.at("/etc/hatang"), mode=0o755)

    init_fleet(layout, hatang, broker_names, ports, use_systemd)
    fleet_permissions(layout)

    # Mosquitto
    conf = (DEPLOY / "mosquitto/hatang.conf").read_text(encoding="utf-8")
    check_mosquitto_listeners(conf)
    make_dir(layout.at("/etc/mosquitto"), mode=0o755)
    inst.file(layout.mosquitto_conf, rewrite(conf, layout.root, subst_ports, layout.fleet),
              service="mosquitto")
    inst.file(layout.at("/etc/mosquitto/hatang.acl"), (DEPLOY / "mosquitto/hatang.acl").read_bytes(),
              service="mosquitto", group="mosquitto", mode=0o640)
    make_dir(layout.at("/var/lib/mosquitto"), user="mosquitto", group="mosquitto", mode=0o750, enforce=True)

    # Prometheus
    make_dir(layout.at("/etc/prometheus"), mode=0o755)
    make_dir(layout.at("/etc/prometheus/rules"), mode=0o755)
    inst.file(layout.prometheus_conf,
              rewrite((DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8"), layout.root,
                      subst_ports, layout.fleet), service="prometheus")
    for rules in sorted((DEPLOY / "prometheus/rules").glob("*.rules.yml")):
        inst.file(layout.at(f"/etc/prometheus/rules/{rules.name}"), rules.read_bytes(), service="prometheus")
    make_dir(layout.prometheus_data, user="prometheus", group="prometheus", mode=0o750, enforce=True)
    # Files systemd reads (units, drop-ins, /etc/default) name the host's own paths: no ROOT in them.
    inst.file(layout.at("/etc/default/prometheus"), default_file("prometheus", prometheus_args(ports)),
              service="prometheus")

    # Alertmanager (layout of deploy/alertmanager/README.md: relative paths resolve next to hatang.yml)
    am = layout.at("/etc/prometheus/alertmanager")
    for d in (am, am / "templates", am / "secrets"):
        make_dir(d, group="prometheus", mode=0o750, enforce=True)
    inst.file(layout.alertmanager_conf, (DEPLOY / "alertmanager/hatang.yml").read_bytes(),
              service="prometheus-alertmanager", group="prometheus", mode=0o640)
    for tmpl in sorted((DEPLOY / "alertmanager/templates").glob("*.tmpl")):
        inst.file(am / "templates" / tmpl.name, tmpl.read_bytes(), service="prometheus-alertmanager",
                  group="prometheus", mode=0o640)
    for secret in sorted((DEPLOY / "alertmanager/secrets.example").iterdir()):
        inst.copy_if_absent(am / "secrets" / secret.name, secret, user="root", group="prometheus", mode=0o640)
    make_dir(layout.alertmanager_data, user="prometheus", group="prometheus", mode=0o750, enforce=True)
    inst.file(layout.at("/etc/default/prometheus-alertmanager"),
              default_file("prometheus-alertmanager", alertmanager_args(ports)),
              service="prometheus-alertmanager")

    # collector
    inst.file(layout.collector_conf, rewrite(collector_config(), layout.root, subst_ports, layout.fleet),
              service="hatang-collector", group="hatang", mode=0o640)
    make_dir(layout.secrets, mode=0o700, enforce=True)
    inst.file(layout.secrets / "collector-password",
              (layout.fleet / "secrets/collector-password").read_bytes(), service="hatang-collector",
              mode=0o600)
    make_dir(layout.at("/var/lib/hatang-collector"), user="hatang", group="hatang", mode=0o700, enforce=True)
    make_dir(layout.at("/etc/systemd/system"), mode=0o755)
    unit = DEPLOY / "systemd/hatang-collector.service"
    inst.file(layout.at("/etc/systemd/system/hatang-collector.service"), unit.read_bytes(),
              service="hatang-collector")
    unit_text = unit.read_text(encoding="utf-8")
    hatang_in_unit = unit_program(unit_text)
    program_conf = layout.at("/etc/systemd/system/hatang-collector.service.d/hatang-program.conf")
    if hatang_in_unit and hatang_in_unit != hatang:
        inst.file(program_conf, program_dropin(unit_text, hatang_in_unit, hatang), service="hatang-collector")
    else:
        inst.remove(program_conf, service="hatang-collector")
    inst.file(layout.at("/etc/systemd/system/mosquitto.service.d/hatang.conf"), MOSQUITTO_DROPIN,
              service="mosquitto")

    # Grafana (only when installed)
    if layout.at("/etc/grafana").is_dir():
        for kind in ("dashboards", "datasources"):
            src = DEPLOY / f"grafana/provisioning/{kind}/hatang.yaml"
            make_dir(layout.at(f"/etc/grafana/provisioning/{kind}"), mode=0o755)
            inst.file(layout.at(f"/etc/grafana/provisioning/{kind}/hatang.yaml"),
                      rewrite(src.read_text(encoding="utf-8"), layout.root, subst_ports, layout.fleet),
                      service="grafana-server")
        boards = layout.at("/var/lib/grafana/dashboards/hatang")
        make_dir(boards, mode=0o755)
        for board in sorted((REPO / "dashboards").glob("*.json")):
            inst.file(boards / board.name, board.read_bytes(), service="grafana-server")
    else:
        say(f"{layout.at('/etc/grafana')} does not exist: Grafana provisioning skipped")

    inst.save()
    check_mosquitto_files(layout.mosquitto_conf)
    check_installed(layout, hatang)
    return inst


def check_installed(layout: Layout, hatang: str) -> None:
    """The installed configs, checked by the daemons' own tools (and hatang's)."""
    promtool = find_program("promtool")
    amtool = find_program("amtool")
    if promtool:
        run([promtool, "check", "config", str(layout.prometheus_conf)], "promtool check config")
    if amtool:
        run([amtool, "check-config", str(layout.alertmanager_conf)], "amtool check-config")
    check = [hatang, "check", "-c", str(layout.collector_conf)]
    if "--credentials" in run([hatang, "check", "--help"], "hatang check --help"):
        check[2:2] = ["--credentials", str(layout.secrets)]
    run(check, "hatang check of the collector's config")
    say("configs checked: promtool check config, amtool check-config, hatang check")



def check_mosquitto_files(conf: Path) -> None:
    named = mosquitto_files(conf.read_text(encoding="utf-8"))
    missing = [str(path) for path, _ in named if not path.exists()]
    if missing:
        raise CentralUpError(f"{conf} names files that do not exist: {', '.join(missing)} (the fleet "
                             "directory is incomplete, or deploy/mosquitto/hatang.conf names a path that "
                             f"{PROG} does not install)")

"""``hatang fleet``: the centre's fleet of agents. ``init`` makes the fleet directory (CA, broker
certificate, the broker's password file with the collector's entry); ``add-agent`` gives an office its
broker credentials and an enrolment bundle; ``rotate-agent`` replaces them; ``revoke-agent`` removes the
office's access; ``list`` shows them. Layout and formats: :mod:`hatang.fleet`. docs/operations.md
"Fleet" tells the whole procedure."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import secrets
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from hatang import cli_fleet_config
from hatang.fleet import certificates, enrolment, mosquitto_passwords
from hatang.fleet.broker_reload import reload_broker
from hatang.fleet.layout import (
    CENTRE_USER,
    AgentRecord,
    FleetDir,
    FleetError,
    FleetSettings,
    broker_group,
    write_atomic,
)

SITE_KEYS = ("province", "district", "commune")
_AGENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # wire.topics.AGENT_ID_PATTERN
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a valid systemd credential name


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = sub.add_parser("fleet", help="the centre's agents: broker credentials, enrolment bundles",
                           description="Enrol, rotate and revoke the offices' agents (docs/operations.md, "
                                       "Fleet).")
    commands = fleet.add_subparsers(dest="fleet_command", required=True)

    Action = Callable[[argparse.Namespace], int]

    def command(name: str, helptext: str, func: Action) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--fleet", metavar="DIR",
                       help="the fleet directory (default $HATANG_FLEET_DIR, else /etc/hatang/fleet)")
        p.set_defaults(func=_guarded(func))
        return p

    p = command("init", "create the fleet directory: CA, broker certificate, broker password file", _init)
    p.add_argument("--broker-url", required=True, help="the broker as the agents reach it: mqtts://HOST:8883")
    p.add_argument("--server-name", action="append", default=[], metavar="NAME",
                   help="a DNS name in the broker's certificate (repeat; default: the broker URL's host)")
    p.add_argument("--server-ip", action="append", default=[], metavar="IP",
                   help="an IP address in the broker's certificate (repeat)")
    p.add_argument("--reload-command", default="systemctl reload mosquitto",
                   help="run after the password file changes so the broker reads it (default: %(default)s; "
                        "'' to print a reminder instead)")
    p.add_argument("--ca-days", type=int, default=3650, help="validity of the CA (default %(default)s days)")
    p.add_argument("--broker-group", default="mosquitto",
                   help="the group the broker reads its key and password file as (default %(default)s); "
                        "without it on this host the files stay root-only")

    p = command("add-agent", "give an office's agent broker credentials and an enrolment bundle", _add_agent)
    _agent_options(p)
    p.add_argument("--site", required=True, metavar="KEY=VALUE,...",
                   help="where the agent is: province=...[,district=...][,commune=...]")

    p = command("rotate-agent", "new credentials (and certificate) and a new enrolment bundle for an agent",
                _rotate_agent)
    _agent_options(p)

    p = command("revoke-agent", "remove an agent's access to the broker", _revoke_agent)
    p.add_argument("agent_id", metavar="ID")
    p.add_argument("--no-reload", action="store_true", help="do not run the broker's reload command")

    p = command("renew-broker", "a new certificate for the broker from the centre's CA (before it expires)",
                _renew_broker)
    p.add_argument("--server-name", action="append", default=[], metavar="NAME",
                   help="DNS names for the new certificate (default: those of the current one)")
    p.add_argument("--server-ip", action="append", default=[], metavar="IP",
                   help="IP addresses for the new certificate (default: those of the current one)")
    p.add_argument("--no-reload", action="store_true", help="do not run the broker's reload command")

    command("list", "the enrolled agents, and when the broker's certificate and the CA expire", _list)
    cli_fleet_config.add_commands(command)


def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("agent_id", metavar="ID", help="the agent id (its MQTT username): a-z, 0-9, - and _")
    p.add_argument("--client-cert", action="store_true",
                   help="also issue a client certificate from the centre's CA (for a broker that requires "
                        "one)")
    p.add_argument("--buffer-path",
                   help=f"the agent's disk buffer (default: as before for rotate-agent, else "
                        f"{enrolment.DEFAULT_BUFFER})")
    p.add_argument("-o", "--output", help="where to write the enrolment bundle (default DIR/enrol/ID.tar.gz)")
    p.add_argument("--no-reload", action="store_true", help="do not run the broker's reload command")


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except FleetError as exc:
            print(f"hatang fleet: {exc}", file=sys.stderr)
            return 1
        except PermissionError as exc:
            print(f"hatang fleet: permission denied: {exc.filename}: the fleet directory belongs to root; "
                  "run the command as root (sudo)", file=sys.stderr)
            return 1
    return run


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _init(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    url = args.broker_url
    match = re.fullmatch(r"mqtts://(\[[^\]]+\]|[^:/]+)(?::(\d+))?/?", url)
    if not match:
        raise FleetError(f"--broker-url {url!r}: give mqtts://HOST[:PORT] (agents reach the broker over TLS)")
    host = match.group(1).strip("[]")
    names, ips = list(args.server_name), list(args.server_ip)
    try:
        ipaddress.ip_address(host)
        ips = ips or [host]
    except ValueError:
        names = names or [host]
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise FleetError(f"--server-ip {ip!r} is not an IP address") from None
    with fleet.locked():
        if fleet.exists():
            raise FleetError(f"{fleet.root} is already a fleet directory; it keeps the CA and every agent's "
                             "access: back it up, never re-create it")
        for sub in ("ca", "broker", "secrets", "snmp", "agents", "enrol"):
            (fleet.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        group = broker_group(args.broker_group)
        if group is None:
            print(f"WARNING: no group {args.broker_group!r} here: the broker's key and password file stay "
                  "root-only; create the group first (e.g. groupadd --system mosquitto) or give "
                  "--broker-group", file=sys.stderr)
        ca = certificates.new_ca("hatang centre CA", days=args.ca_days)
        write_atomic(fleet.ca_key, ca.key_pem, 0o600)
        write_atomic(fleet.ca_cert, ca.certificate_pem, 0o644)
        write_atomic(fleet.broker_ca_cert, ca.certificate_pem, 0o644)  # the broker's cafile (ca/ is closed)
        server = certificates.issue(ca.certificate_pem, ca.key_pem, names[0] if names else ips[0],
                                    server=True, dns_names=tuple(names), ip_addresses=tuple(ips))
        write_atomic(fleet.server_cert, server.certificate_pem, 0o644)
        write_atomic(fleet.server_key, server.key_pem, 0o640, group)  # the broker reads it as its group
        if group is not None:  # ... through the fleet directory (traverse only) and broker/
            os.chown(fleet.root, -1, group)
            os.chmod(fleet.root, 0o710)
            os.chown(fleet.root / "broker", -1, group)
            os.chmod(fleet.root / "broker", 0o750)
        reload_command = shlex.split(args.reload_command) or None
        settings = FleetSettings(broker_url=url, reload_command=reload_command)
        password = secrets.token_urlsafe(24)
        write_atomic(fleet.collector_password, password.encode() + b"\n", 0o600)
        mosquitto_passwords.write(fleet.password_file,
                                  {settings.collector_user: mosquitto_passwords.hash_password(password)},
                                  group=group)
        cli_fleet_config.set_centre_password(fleet)
        fleet.save_settings(settings)
    print(f"fleet directory {fleet.root} created:\n"
          f"  CA certificate (give it to the broker as cafile):   {fleet.ca_cert}\n"
          f"  broker certificate and key (certfile, keyfile):      {fleet.server_cert}, {fleet.server_key}\n"
          f"  broker password file (password_file):                {fleet.password_file}\n"
          f"  collector's MQTT password ({settings.collector_user}): {fleet.collector_password}\n"
          f"  MQTT password of {CENTRE_USER} (fleet push):      {fleet.centre_password}\n"
          f"  SNMP secrets for every office go into:               {fleet.snmp_dir}/\n"
          f"Next: hatang fleet add-agent ID --site province=...,commune=... --fleet {fleet.root}")
    return 0


def _parse_site(text: str) -> dict[str, str]:
    site: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in SITE_KEYS or not value:
            raise FleetError(f"--site {text!r}: give KEY=VALUE pairs separated by commas, KEY one of "
                             f"{', '.join(SITE_KEYS)} (province is required), e.g. "
                             "province=Vĩnh Phúc,commune=Đại Đình")
        if key in site:
            raise FleetError(f"--site {text!r}: {key} is given twice")
        site[key] = value
    if "province" not in site:
        raise FleetError(f"--site {text!r}: province is required (district and commune are optional)")
    return {key: site[key] for key in SITE_KEYS if key in site}


def _check_agent_id(agent_id: str, settings: FleetSettings) -> None:
    if not _AGENT_ID.fullmatch(agent_id):
        raise FleetError(f"agent id {agent_id!r}: use 1-63 characters a-z, 0-9, - and _, starting with a "
                         "letter or digit (it is the agent's MQTT username and part of its topics)")
    if agent_id == settings.collector_user:
        raise FleetError(f"agent id {agent_id!r} is the collector's username")


def _snmp_secrets(fleet: FleetDir) -> tuple[tuple[str, bytes], ...]:
    out = []
    for path in fleet.snmp_secrets():
        if not _SECRET_NAME.fullmatch(path.name) or path.name in (enrolment.PASSWORD_SECRET,
                                                                  enrolment.CLIENT_KEY_SECRET):
            raise FleetError(f"{path}: rename it: SNMP secret file names use A-Z, a-z, 0-9, '.', '-', '_' "
                             f"and cannot be {enrolment.PASSWORD_SECRET} or {enrolment.CLIENT_KEY_SECRET}")
        out.append((path.name, path.read_bytes()))
    return tuple(out)


def _validate_agent_yaml(text: str, agent_id: str) -> None:
    """The bundle's agent.yaml must load as an agent config (a site value the model refuses, say)."""
    import tempfile

    from agent import config as agent_config
    from hatang.config_errors import ConfigError

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "agent.yaml"
        path.write_text(text, encoding="utf-8")
        saved = os.environ.get("CREDENTIALS_DIRECTORY")
        os.environ["CREDENTIALS_DIRECTORY"] = directory
        try:
            agent_config.parse(path)
        except ConfigError as exc:
            raise FleetError(f"the agent config for {agent_id} would not load:\n{exc}") from None
        finally:
            if saved is None:
                del os.environ["CREDENTIALS_DIRECTORY"]
            else:
                os.environ["CREDENTIALS_DIRECTORY"] = saved


def _issue(fleet: FleetDir, settings: FleetSettings, record: AgentRecord, args: argparse.Namespace,
           action: str) -> int:
    """New password (and certificate) for ``record``: password file, bundle, record, broker reload."""
    password = secrets.token_urlsafe(24)
    # A rotation changes the credentials only: the agent.yaml it carries stays what the office has.
    buffer_path = args.buffer_path or record.buffer_path or enrolment.DEFAULT_BUFFER
    cert: certificates.Issued | None = None
    if args.client_cert:
        cert = certificates.issue(fleet.ca_cert.read_bytes(), fleet.ca_key.read_bytes(), record.agent_id,
                                  server=False)
    e = enrolment.Enrolment(
        agent_id=record.agent_id, site=record.site, broker_url=settings.broker_url, password=password,
        ca_certificate_pem=fleet.ca_cert.read_bytes(),
        client_certificate_pem=cert.certificate_pem if cert else None,
        client_key_pem=cert.key_pem if cert else None,
        snmp_secrets=_snmp_secrets(fleet), buffer_path=buffer_path,
        centre_public_key_pem=(fleet.centre_public_key.read_bytes() if fleet.centre_public_key.exists()
                               else None))
    _validate_agent_yaml(enrolment.agent_yaml(e), record.agent_id)
    # The fleet's copy is always the current one (tools such as the Ansible role read enrol/); -o writes
    # another copy where asked.
    data = enrolment.bundle(e)
    output = fleet.enrol_dir / f"{record.agent_id}.tar.gz"
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(output, data, 0o600)
    if args.output:
        output = Path(args.output)
        write_atomic(output, data, 0o600)
    mosquitto_passwords.set_password(fleet.password_file, record.agent_id, password)
    now = _now()
    record.updated_at, record.revoked_at = now, None
    record.buffer_path = None if buffer_path == enrolment.DEFAULT_BUFFER else buffer_path
    record.client_certificate = cert is not None
    record.certificate_serial = format(cert.serial, "x") if cert else None
    record.certificate_not_after = cert.not_after.isoformat(timespec="seconds") if cert else None
    record.history.append(f"{now} {action}")
    fleet.save_record(record)
    print(f"{action}: {record.agent_id} ({', '.join(record.site.values())})\n"
          f"enrolment bundle (secret: hand it to the office, then delete copies): {output}")
    reload_broker(settings, args.no_reload)
    return 0


def _add_agent(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    settings = fleet.require()
    _check_agent_id(args.agent_id, settings)
    site = _parse_site(args.site)
    with fleet.locked():
        existing = fleet.record(args.agent_id)
        if existing is not None and existing.revoked_at is None:
            raise FleetError(f"agent {args.agent_id} is already enrolled (since {existing.created_at}); "
                             f"hatang fleet rotate-agent {args.agent_id} gives it new credentials")
        now = _now()
        record = existing or AgentRecord(agent_id=args.agent_id, site=site, created_at=now, updated_at=now)
        record.site = site
        return _issue(fleet, settings, record, args, "enrolled" if existing is None else "re-enrolled")


def _rotate_agent(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    settings = fleet.require()
    _check_agent_id(args.agent_id, settings)
    with fleet.locked():
        record = fleet.record(args.agent_id)
        if record is None:
            raise FleetError(f"agent {args.agent_id} is not enrolled; hatang fleet add-agent enrols it")
        if record.revoked_at is not None:
            raise FleetError(f"agent {args.agent_id} was revoked at {record.revoked_at}; enrol it again with "
                             "hatang fleet add-agent")
        args.client_cert = args.client_cert or record.client_certificate
        return _issue(fleet, settings, record, args, "rotated")


def _revoke_agent(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    settings = fleet.require()
    _check_agent_id(args.agent_id, settings)
    with fleet.locked():
        record = fleet.record(args.agent_id)
        removed = mosquitto_passwords.remove_user(fleet.password_file, args.agent_id)
        if record is None and not removed:
            raise FleetError(f"agent {args.agent_id} is not enrolled here and has no password entry")
        if record is not None:
            now = _now()
            record.revoked_at = record.revoked_at or now
            record.history.append(f"{now} revoked")
            fleet.save_record(record)
        (fleet.enrol_dir / f"{args.agent_id}.tar.gz").unlink(missing_ok=True)
    print(f"revoked: {args.agent_id}: its password entry is removed"
          + (" (a client certificate it holds is useless without it)" if record and record.client_certificate
             else ""))
    reload_broker(settings, args.no_reload)
    return 0


EXPIRY_WARNING_DAYS = 60


def _expiry(what: str, pem_path: Path, command: str) -> str:
    described = certificates.describe(pem_path.read_bytes())
    days = (described.not_after - datetime.datetime.now(datetime.UTC)).days
    line = f"{what}: valid until {described.not_after.date().isoformat()} ({days} days)"
    if days < EXPIRY_WARNING_DAYS:
        line += f": WARNING, renew it now: {command}"
    return line


def _renew_broker(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    settings = fleet.require()
    with fleet.locked():
        current = certificates.describe(fleet.server_cert.read_bytes())
        names = tuple(args.server_name) or current.dns_names
        ips = tuple(args.server_ip) or current.ip_addresses
        for ip in ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise FleetError(f"--server-ip {ip!r} is not an IP address") from None
        if not names and not ips:
            raise FleetError("the current certificate names no host: give --server-name or --server-ip")
        server = certificates.issue(fleet.ca_cert.read_bytes(), fleet.ca_key.read_bytes(),
                                    names[0] if names else ips[0], server=True, dns_names=names,
                                    ip_addresses=ips)
        group = fleet.server_key.stat().st_gid
        write_atomic(fleet.server_key, server.key_pem, 0o640, group)
        write_atomic(fleet.server_cert, server.certificate_pem, 0o644)
    print(f"broker certificate renewed for {', '.join(names + ips)}: valid until "
          f"{server.not_after.date().isoformat()} ({fleet.server_cert}); agents keep working: it is signed "
          "by the same CA")
    reload_broker(settings, args.no_reload)
    return 0


def _list(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    fleet.require()
    print(_expiry("broker certificate", fleet.server_cert, "hatang fleet renew-broker"))
    print(_expiry("centre CA", fleet.ca_cert, "a new fleet directory and a new enrolment of every office"))
    entries = mosquitto_passwords.read(fleet.password_file)
    rows = [("AGENT", "STATE", "SITE", "ENROLLED", "LAST CHANGE", "CERT")]
    for r in fleet.records():
        state = "revoked" if r.revoked_at else ("active" if r.agent_id in entries else "NO PASSWORD ENTRY")
        rows.append((r.agent_id, state, ", ".join(r.site.values()), r.created_at[:10], r.updated_at[:10],
                     f"until {r.certificate_not_after[:10]}" if r.certificate_not_after else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0

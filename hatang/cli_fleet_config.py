"""``hatang fleet keygen | push | status | centre-user``: configuration from the centre
(docs/remote-config.md). ``keygen`` makes the centre's signing key pair; ``push`` checks, signs and
publishes one agent's configuration (retained, on its ``config`` topic); ``status`` shows every agent's
version, applied revision and refusals from a collector; ``centre-user`` gives the broker user that
publishes configurations a (new) password."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatang.broker import BrokerSettings
from hatang.config_errors import ConfigError
from hatang.fleet import config_push, mosquitto_passwords
from hatang.fleet.broker_reload import reload_broker
from hatang.fleet.layout import CENTRE_USER, FleetDir, FleetError, write_atomic
from wire.topics import config_topic, is_agent_id

Action = Callable[[argparse.Namespace], int]
Command = Callable[[str, str, Action], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    """Add the commands to ``hatang fleet`` (``command`` makes a subcommand with --fleet)."""
    p = command("keygen", "write the centre's signing key pair DIR/centre.key (0600) and DIR/centre.pub",
                _keygen)
    p.add_argument("directory", metavar="DIR", help="where to write them (e.g. the fleet directory)")

    p = command("push", "check, sign and publish an agent's configuration (retained on its config topic)",
                _push)
    p.add_argument("agent_id", metavar="AGENT_ID")
    p.add_argument("file", metavar="FILE",
                   help="YAML with the keys the centre manages (devices, probes, traps, critical_interfaces, "
                        "max_concurrent_polls, self_metrics_interval)")
    p.add_argument("--key", metavar="KEYFILE",
                   help="the centre's private key (default: centre.key in the fleet directory)")
    p.add_argument("--mqtt", metavar="URL", help="the broker (default: the fleet's broker URL)")
    p.add_argument("--username", metavar="U", help=f"MQTT user (default {CENTRE_USER})")
    p.add_argument("--password-file", metavar="F",
                   help="file with its password (default: secrets/centre-password in the fleet directory)")
    p.add_argument("--ca-file", metavar="F", help="CA of the broker's certificate (default: the fleet's CA)")
    p.add_argument("--history", metavar="DIR",
                   help="where pushed configurations are kept (default: pushed/ beside the key)")
    p.add_argument("--wait", type=float, default=2.0, metavar="S",
                   help="seconds to wait for the configuration retained on the broker, whose revision the "
                        "new one must exceed (default %(default)s)")
    p.add_argument("--check", action="store_true", help="only check FILE; sign and publish nothing")

    p = command("status", "every agent: version, applied configuration revision, last seen, backlog, "
                          "drops, refusals (from a collector)", _status)
    p.add_argument("--collector", required=True, metavar="URL",
                   help="the collector, e.g. http://127.0.0.1:9108")

    command("centre-user", f"give the broker user {CENTRE_USER} (it publishes configurations) a new password",
            _centre_user)


def _keygen(args: argparse.Namespace) -> int:
    from hatang import signing

    directory = Path(args.directory)
    private, public = directory / "centre.key", directory / "centre.pub"
    if private.exists() or public.exists():
        raise FleetError(f"{private} or {public} exists already: a new key is a key rotation "
                         "(docs/remote-config.md); write it to another directory")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_pem, public_pem = signing.generate()
    write_atomic(private, private_pem, 0o600)
    write_atomic(public, public_pem, 0o644)
    key_id = signing.load_verifiers(public)[0].key_id
    print(f"the centre's signing key {key_id}:\n  private (keep it here, back it up): {private}\n"
          f"  public (every agent's remote_config.public_key_file):  {public}")
    return 0


def _password(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise FleetError(f"cannot read the MQTT password from {path}: {exc}") from None


def _broker(args: argparse.Namespace, fleet: FleetDir) -> BrokerSettings:
    settings = fleet.require() if args.mqtt is None else None
    url = args.mqtt or (settings.broker_url if settings is not None else "")
    password_file = Path(args.password_file) if args.password_file else (
        fleet.centre_password if fleet.exists() else None)
    ca = args.ca_file or (str(fleet.ca_cert) if fleet.exists() and url.startswith("mqtts://") else None)
    return BrokerSettings(url=url, client_id=f"hatang-push-{os.getpid()}",
                          username=args.username or CENTRE_USER,
                          password=_password(password_file) if password_file is not None else None,
                          ca_file=ca)


async def _publish(broker: BrokerSettings, topic: str, wait: float,
                   signed_for: Callable[[int], config_push.Signed]) -> config_push.Signed:
    """Read the retained configuration (up to ``wait`` s), sign the next revision, publish it retained."""
    from agent.mqtt_client import MqttError, make_connection

    try:
        async with make_connection(broker, protocol="5", will=None) as client:
            retained = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    async for payload in client.receive(topic):
                        retained = payload
                        break
            signed = signed_for(config_push.retained_revision(retained))
            ack = await client.publish_acked(topic, signed.payload, retain=True)
    except (MqttError, OSError) as exc:
        raise FleetError(f"broker {broker.url}: {exc}; check --mqtt, the user {broker.username!r} and its "
                         "password, and that the broker's ACL lets it write agents' config topics "
                         "(deploy/mosquitto/hatang.acl)") from None
    if not ack.accepted:
        raise FleetError(f"the broker refused the configuration: {ack.name} (0x{ack.code:02X}); its ACL must "
                         f"let {broker.username!r} write {topic} (deploy/mosquitto/hatang.acl)")
    return signed


def _push(args: argparse.Namespace) -> int:
    from hatang import signing

    agent_id, source = args.agent_id, Path(args.file)
    if not is_agent_id(agent_id):
        raise FleetError(f"{agent_id!r} is not an agent id")
    fleet = FleetDir.chosen(args.fleet)
    try:
        config = config_push.check_file(source, agent_id)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        print(f"{source}: a valid configuration for {agent_id}")
        return 0
    key = Path(args.key) if args.key else fleet.centre_key
    try:
        signer = signing.load_signer(key)
    except signing.SigningKeyError as exc:
        raise FleetError(str(exc)) from None
    history = Path(args.history) if args.history else key.parent / "pushed"

    def signed_for(retained: int) -> config_push.Signed:
        revision = max(retained, config_push.history_revision(history, agent_id)) + 1
        return config_push.sign(config, agent_id, revision, signer)

    signed = asyncio.run(_publish(_broker(args, fleet), config_topic(agent_id), args.wait, signed_for))
    kept = config_push.keep(history, agent_id, source, signed)
    print(f"revision {signed.revision} for {agent_id} published (retained) and kept as {kept}; see whether "
          f"the agent applied it: hatang fleet status --collector URL")
    return 0


def _fetch(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FleetError(f"cannot read {url}: {exc}") from None
    if not isinstance(data, dict):
        raise FleetError(f"{url} did not answer with a JSON object")
    return data


def _age(timestamp: float | None, now: float) -> str:
    if not timestamp:
        return "never"
    seconds = max(0, int(now - timestamp))
    return f"{seconds} s ago" if seconds < 120 else (f"{seconds // 60} min ago" if seconds < 7200
                                                      else f"{seconds // 3600} h ago")


def _status(args: argparse.Namespace) -> int:
    data = _fetch(args.collector.rstrip("/") + "/api/offices")
    now = float(data.get("generated") or time.time())
    rows = [("AGENT", "STATE", "VERSION", "CONFIG", "LAST SEEN", "BACKLOG", "DROPPED", "REFUSED")]
    for office in data.get("offices", []):
        rejected = office.get("config_rejected") or {}
        refused = (f"revision {rejected.get('revision')}: {rejected.get('reason')}: "
                   f"{rejected.get('error', '')}" if rejected else "-")
        buffer = office.get("buffer") or {}
        rows.append((str(office.get("agent")), str(office.get("state")), office.get("version") or "-",
                     office.get("config_version") or "-", _age(office.get("last_seen"), now),
                     str(int(buffer.get("depth", 0))), str(int(buffer.get("dropped", 0))), refused))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
    return 0


def _centre_user(args: argparse.Namespace) -> int:
    fleet = FleetDir.chosen(args.fleet)
    settings = fleet.require()
    with fleet.locked():
        set_centre_password(fleet)
    reload_broker(settings, False)
    print(f"{CENTRE_USER}: new password in {fleet.centre_password}, (created {datetime.date.today()})")
    return 0


def set_centre_password(fleet: FleetDir) -> None:
    """A new password for the centre's publishing user, in the broker's password file and in secrets/."""
    password = secrets.token_urlsafe(24)
    entries = mosquitto_passwords.read(fleet.password_file)
    entries[CENTRE_USER] = mosquitto_passwords.hash_password(password)
    write_atomic(fleet.centre_password, password.encode() + b"\n", 0o600)
    mosquitto_passwords.write(fleet.password_file, entries, group=_group_of(fleet.password_file))


def _group_of(path: Path) -> int | None:
    try:
        return path.stat().st_gid
    except OSError:
        return None


__all__ = ["add_commands", "set_centre_password"]

"""The fleet directory at the centre (default /etc/hatang/fleet; keep it root-only and back it up):

```
fleet.yaml                 broker URL the agents use, collector username, broker reload command
ca/ca.crt, ca/ca.key       the centre's CA (ca.key 0600)
broker/server.crt, .key    the broker's TLS certificate (Mosquitto's certfile/keyfile)
broker/ca.crt              a copy of ca/ca.crt for the broker (cafile)
broker/mosquitto.passwd    the broker's password file (password_file): collector and agents
secrets/collector-password the collector's MQTT password
secrets/centre-password    the MQTT password of centre.hatang, which publishes the agents' configurations
centre.key, centre.pub     the centre's signing key pair (`hatang fleet keygen`; centre.key 0600)
pushed/<id>/<rev>.yaml     every configuration pushed to an agent, and .signed: the message published
snmp/                      SNMP secret files handed to every office (community, v3 keys ...)
agents/<id>.json           one record per enrolled agent (site, dates, certificate, revoked)
enrol/<id>.tar.gz          the enrolment bundle last made for an agent (0600)
.lock                      held (flock) by every command that changes the directory
```
All state is in files: no database. Records are JSON; fleet.yaml is JSON too (valid YAML), written by
``hatang fleet init`` and readable by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_DIR = Path("/etc/hatang/fleet")
ENV_DIR = "HATANG_FLEET_DIR"
COLLECTOR_USER = "collector.hatang"  # not a valid agent id (deploy/mosquitto/hatang.acl)
CENTRE_USER = "centre.hatang"  # writes the agents' config topics: `hatang fleet push` (hatang.acl)
T = TypeVar("T")
RESTORE = "restore it from the backup of the fleet directory"
BROKER_GROUP = "mosquitto"  # the broker reads the password file and its key as this group


class FleetError(Exception):
    """A fleet command that cannot be done; ``str()`` says why and what to do."""


@dataclass(slots=True)
class FleetSettings:
    broker_url: str
    collector_user: str = COLLECTOR_USER
    reload_command: list[str] | None = None  # run after the password file changes (None: say so)


@dataclass(slots=True)
class AgentRecord:
    agent_id: str
    site: dict[str, str]
    created_at: str
    updated_at: str
    client_certificate: bool = False
    certificate_serial: str | None = None
    certificate_not_after: str | None = None
    revoked_at: str | None = None
    buffer_path: str | None = None  # None: enrolment.DEFAULT_BUFFER
    history: list[str] = field(default_factory=list)  # "<time> <action>", oldest first


def write_atomic(path: Path, data: bytes, mode: int = 0o600, group: int | None = None) -> None:
    """Write ``path`` whole or not at all (temporary file, fsync, rename) with ``mode``."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if group is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), -1, group)
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def broker_group(name: str = BROKER_GROUP) -> int | None:
    """The gid of the broker's group when it exists here (the Debian mosquitto package makes it)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of the fleet directory; a damaged one is a :class:`FleetError` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except PermissionError:
        raise FleetError(f"cannot read {path}: permission denied; run as root (the fleet directory is "
                         "root-only)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FleetError(f"{path} is damaged ({exc}); {RESTORE}") from None


def _load(kind: type[T], path: Path) -> T:
    try:
        return kind(**_read_json(path))
    except TypeError as exc:
        raise FleetError(f"{path} is damaged ({exc}); {RESTORE}") from None


class FleetDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def chosen(cls, option: str | None) -> FleetDir:
        return cls(Path(option or os.environ.get(ENV_DIR) or DEFAULT_DIR))

    @property
    def settings_file(self) -> Path:
        return self.root / "fleet.yaml"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca/ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca/ca.key"

    @property
    def broker_ca_cert(self) -> Path:
        return self.root / "broker" / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.root / "broker/server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "broker/server.key"

    @property
    def password_file(self) -> Path:
        return self.root / "broker/mosquitto.passwd"

    @property
    def collector_password(self) -> Path:
        return self.root / "secrets/collector-password"

    @property
    def centre_password(self) -> Path:
        return self.root / "secrets/centre-password"

    @property
    def centre_key(self) -> Path:
        return self.root / "centre.key"

    @property
    def centre_public_key(self) -> Path:
        return self.root / "centre.pub"

    @property
    def snmp_dir(self) -> Path:
        return self.root / "snmp"

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    @property
    def enrol_dir(self) -> Path:
        return self.root / "enrol"

    def exists(self) -> bool:
        return self.settings_file.exists()

    def require(self) -> FleetSettings:
        if not self.exists():
            raise FleetError(f"{self.root} is not a fleet directory (no fleet.yaml): create it with "
                             f"hatang fleet init --fleet {self.root} --broker-url mqtts://HOST:8883, or give "
                             f"the right one with --fleet DIR or ${ENV_DIR}")
        return _load(FleetSettings, self.settings_file)

    def save_settings(self, settings: FleetSettings) -> None:
        write_atomic(self.settings_file, (json.dumps(asdict(settings), indent=2) + "\n").encode(), 0o600)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive ``flock`` on ``.lock``: two commands never interleave their read-modify-writes."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record_path(self, agent_id: str) -> Path:
        return self.agents_dir / f"{agent_id}.json"

    def record(self, agent_id: str) -> AgentRecord | None:
        path = self.record_path(agent_id)
        return _load(AgentRecord, path) if path.exists() else None

    def records(self) -> list[AgentRecord]:
        return [_load(AgentRecord, p) for p in sorted(self.agents_dir.glob("*.json"))]

    def save_record(self, record: AgentRecord) -> None:
        self.agents_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.record_path(record.agent_id),
                     (json.dumps(asdict(record), indent=2, ensure_ascii=False) + "\n").encode(), 0o600)

    def snmp_secrets(self) -> list[Path]:
        """The SNMP secret files handed to every office, by name."""
        if not self.snmp_dir.is_dir():
            return []
        return sorted(p for p in self.snmp_dir.iterdir() if p.is_file() and not p.name.startswith("."))

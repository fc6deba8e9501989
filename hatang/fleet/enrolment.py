"""An office's enrolment bundle: one tar.gz with agent.yaml (site and broker filled in), the CA
certificate, and the secrets as files (MQTT password, client key, the fleet's SNMP secrets) that the
agent reads through systemd credentials. Pure: builds bytes; the caller writes them.

Members (no leading directory), as the offline installer (deploy/offline/install-agent.sh) expects:
``agent.yaml``, ``ca.crt``, ``client.crt`` (optional), ``centre.pub`` (optional: the centre's public
signing key, when the fleet has one; agent.yaml then turns ``remote_config`` on), ``secrets/<name>``
(0600), ``DOC-TRUOC.txt``.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass

PASSWORD_SECRET = "mqtt-password"
CLIENT_KEY_SECRET = "client.key"
DEFAULT_BUFFER = "/var/lib/hatang/buffer"


@dataclass(frozen=True, slots=True)
class Enrolment:
    agent_id: str
    site: dict[str, str]
    broker_url: str
    password: str
    ca_certificate_pem: bytes
    client_certificate_pem: bytes | None = None
    client_key_pem: bytes | None = None
    snmp_secrets: tuple[tuple[str, bytes], ...] = ()
    buffer_path: str = DEFAULT_BUFFER
    centre_public_key_pem: bytes | None = None  # `hatang fleet keygen FLEET_DIR` made one


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML string


def agent_yaml(e: Enrolment) -> str:
    site = ", ".join(f"{key}: {_q(value)}" for key, value in e.site.items())
    lines = [
        f"# hatang agent for {e.agent_id}, made by `hatang fleet add-agent` at the centre.",
        "# Check it on this machine with:",
        "#   hatang check --credentials /etc/hatang/secrets -c /etc/hatang/agent.yaml",
        "# Secrets are files in /etc/hatang/secrets (root only); the service reads them through systemd",
        "# credentials (LoadCredential=), hence ${CREDENTIALS_DIRECTORY} below.",
        f"agent_id: {_q(e.agent_id)}",
        f"site: {{{site}}}",
        "mqtt:",
        f"  url: {_q(e.broker_url)}",
        f"  password_file: ${{CREDENTIALS_DIRECTORY}}/{PASSWORD_SECRET}",
        "  ca_file: ca.crt",
    ]
    if e.client_certificate_pem is not None:
        lines += ["  cert_file: client.crt", f"  key_file: ${{CREDENTIALS_DIRECTORY}}/{CLIENT_KEY_SECRET}"]
    # The text depends only on the agent's identity, never on the fleet's SNMP files: a rotated bundle
    # differs from the installed agent.yaml only where the agent's identity changed.
    lines.append(f"buffer: {{path: {_q(e.buffer_path)}}}")
    if e.centre_public_key_pem is not None:
        lines += ["# Devices, probes and traps may also come from the centre, signed by its key",
                  "# (`hatang fleet push`, docs/remote-config.md); the last good one is kept in the buffer.",
                  "remote_config: {public_key_file: centre.pub}"]
    lines += [
              "# The office's devices (docs/configuration.md). The centre's SNMP secrets are files in",
              "# /etc/hatang/secrets (e.g. snmp-community). For example:",
              "#  - name: core-switch",
              "#    address: 192.168.1.1",
              "#    snmp:",
              "#      version: 2c",
              "#      community_file: ${CREDENTIALS_DIRECTORY}/snmp-community"]
    lines.append("devices: []")
    return "\n".join(lines) + "\n"


README = """\
HATANG — GÓI ĐĂNG KÝ ĐIỂM {agent_id}
====================================

Tệp này chứa cấu hình và mật khẩu của agent cho điểm {agent_id}. Giữ kín: ai có tệp này có thể gửi
số liệu thay cho điểm.

Cài đặt (trên máy của điểm, cùng với gói cài đặt ngoại tuyến hatang-agent-offline-*.tar.gz):

    sudo ./install-agent.sh --enrol {agent_id}.tar.gz

Sau đó kiểm tra:
    sudo /opt/hatang/venv/bin/hatang check --credentials /etc/hatang/secrets -c /etc/hatang/agent.yaml

English: the enrolment bundle of agent {agent_id} (agent.yaml, CA certificate, secrets). Keep it secret.
Install it with the offline bundle's installer: sudo ./install-agent.sh --enrol {agent_id}.tar.gz
"""


def bundle(e: Enrolment) -> bytes:
    """The tar.gz bytes of the bundle (deterministic member order; mtime now)."""
    now = time.time()
    members: list[tuple[str, bytes, int]] = [
        ("agent.yaml", agent_yaml(e).encode(), 0o640),
        ("ca.crt", e.ca_certificate_pem, 0o644),
        ("DOC-TRUOC.txt", README.format(agent_id=e.agent_id).encode(), 0o644),
        (f"secrets/{PASSWORD_SECRET}", e.password.encode() + b"\n", 0o600),
    ]
    if e.centre_public_key_pem is not None:
        members.append(("centre.pub", e.centre_public_key_pem, 0o644))
    if e.client_certificate_pem is not None and e.client_key_pem is not None:
        members += [("client.crt", e.client_certificate_pem, 0o644),
                    (f"secrets/{CLIENT_KEY_SECRET}", e.client_key_pem, 0o600)]
    members += [(f"secrets/{name}", data, 0o600) for name, data in e.snmp_secrets]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        directory = tarfile.TarInfo("secrets")
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o700, int(now)
        tar.addfile(directory)
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(now)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()

"""Field types shared by the config models (agent, collector): numbers that must be finite, ports, the
MQTT broker URL, listen addresses. Each rejects a bad value with a message that says the allowed range.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AllowInfNan, StringConstraints
from pydantic_core import PydanticCustomError

FiniteFloat = Annotated[float, AllowInfNan(False)]
"""A float that is a number: ``.nan``, ``.inf`` and ``-.inf`` are rejected before any range check."""

PORT_RANGE = "1-65535"


def check_port(port: int, hint: str = "") -> int:
    """``port`` if it is a usable TCP/UDP port, else a validation error saying which range (and ``hint``)."""
    if not 1 <= port <= 65535:
        raise PydanticCustomError("port", "port {port} is out of range: use {range}{hint}",
                                  {"port": port, "range": PORT_RANGE, "hint": f" ({hint})" if hint else ""})
    return port


Port = Annotated[int, AfterValidator(check_port)]
"""A TCP or UDP port number (1-65535)."""


def _url_port(value: str) -> str:
    rest = value.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if sep and host and port.isdigit():
        check_port(int(port), "1883 is MQTT, 8883 MQTT over TLS")
    return value


MqttUrl = Annotated[str, StringConstraints(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$"), AfterValidator(_url_port)]
"""``mqtt://host[:port]`` or ``mqtts://host[:port]`` with a port in 1-65535."""


def listen_port(value: str, hint: str = "") -> str:
    """Validator for ``HOST:PORT`` / ``[IPv6]:PORT`` listen addresses: the port must be 1-65535."""
    check_port(int(value.rpartition(":")[2]), hint)
    return value

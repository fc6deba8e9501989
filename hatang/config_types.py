"""Field types and rules shared by the config models (agent, collector, profiles): numbers that must be
finite, ports, the MQTT broker URL, listen addresses. Each rejects a bad value with a message that says
the allowed range.

Importing this module does not import pydantic: the agent's config and profile classes are plain
dataclasses that carry these rules in ``Annotated`` metadata (:class:`Constraints`, :class:`Before`,
:class:`After`), and pydantic reads them only where a file is validated (:mod:`hatang.configfile`). So
the long-running agent process, which receives its configuration already checked
(agent/checked_config.py), never loads pydantic (docs/performance.md, the agent's memory).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

# The pydantic config of every strict config dataclass: unknown keys are errors, and no float may be
# .nan or .inf (even one declared plain ``float`` by mistake).
STRICT: dict[str, Any] = {"extra": "forbid", "allow_inf_nan": False}


class Constraints:
    """Constraints on a field, by the names of pydantic's ``Field`` (``ge``, ``gt``, ``le``, ``lt``,
    ``min_length``, ``pattern``, ``allow_inf_nan``): the same checks and messages as ``Field(...)``.
    They apply to the type itself: put them first in ``Annotated``, before any :class:`After` or
    :class:`Before`."""

    __slots__ = ("rules",)

    def __init__(self, **rules: Any) -> None:
        self.rules = rules

    def __repr__(self) -> str:
        return f"Constraints({', '.join(f'{k}={v!r}' for k, v in self.rules.items())})"

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import Field

        return handler(Annotated[source, Field(**self.rules)])


class Before:
    """A function applied to the raw value before it is checked against the field's type (to normalise
    short forms: ``5`` -> ``"5"``, ``auto`` -> ``[auto]``); a ``ValueError`` is the error shown."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import BeforeValidator

        # wraps what comes before it in Annotated, in pydantic's order (the last Before runs first)
        return BeforeValidator(self.function).__get_pydantic_core_schema__(source, handler)


class After:
    """A function applied to the value once it has the field's type; it returns the value (possibly
    changed) or raises ``ValueError`` with the message to show."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import AfterValidator

        # wraps what comes before it in Annotated: runs after the type and its Constraints, in order
        return AfterValidator(self.function).__get_pydantic_core_schema__(source, handler)


FiniteFloat = Annotated[float, Constraints(allow_inf_nan=False)]
"""A float that is a number: ``.nan``, ``.inf`` and ``-.inf`` are rejected before any range check."""

PORT_RANGE = "1-65535"


def check_port(port: int, hint: str = "") -> int:
    """``port`` if it is a usable TCP/UDP port, else a validation error saying which range (and ``hint``).
    Called while pydantic validates (so pydantic_core is loaded already)."""
    if not 1 <= port <= 65535:
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError("port", "port {port} is out of range: use {range}{hint}",
                                  {"port": port, "range": PORT_RANGE, "hint": f" ({hint})" if hint else ""})
    return port


Port = Annotated[int, After(check_port)]
"""A TCP or UDP port number (1-65535)."""


def _url_port(value: str) -> str:
    rest = value.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if sep and host and port.isdigit():
        check_port(int(port), "1883 is MQTT, 8883 MQTT over TLS")
    return value


MqttUrl = Annotated[str, Constraints(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$"), After(_url_port)]
"""``mqtt://host[:port]`` or ``mqtts://host[:port]`` with a port in 1-65535."""


def listen_port(value: str, hint: str = "") -> str:
    """Validator for ``HOST:PORT`` / ``[IPv6]:PORT`` listen addresses: the port must be 1-65535."""
    check_port(int(value.rpartition(":")[2]), hint)
    return value

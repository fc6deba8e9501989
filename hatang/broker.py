"""How the agent and the collector reach the MQTT broker: settings, URL, TLS and reconnect back-off.

Shared by the agent's uplink (agent/uplink.py, agent/mqtt_client.py) and the collector's subscriber
(collector/subscriber.py); standard library only. Each side keeps its own aiomqtt adapter and adds its
own settings to :class:`BrokerSettings` (``UplinkSettings``, ``SubscriberSettings``).

- :class:`BrokerSettings`: where the broker is and how to log in (URL, client id, credentials, TLS
  files, keepalive).
- :func:`parse_broker_url`: ``mqtt://host[:port]`` (default port 1883) or ``mqtts://host[:port]`` (TLS,
  default port 8883) into a :class:`BrokerAddress`.
- :func:`tls_context`: the TLS context of an ``mqtts://`` connection: the system's CAs or ``ca_file``,
  and a client certificate (mutual TLS) when ``cert_file`` is set.
- :class:`Backoff`: the waits between connection attempts (jittered exponential, capped, reset after a
  connection that stayed up long enough).
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

MQTT_PORT = 1883
MQTTS_PORT = 8883
DEFAULT_HOST = "127.0.0.1"  # a URL without a host name (the config models do not let one through)


class BrokerAddress(NamedTuple):
    host: str
    port: int
    tls: bool  # mqtts://


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]``; the port defaults to 1883, or 8883 with TLS."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    port = parts.port or (MQTTS_PORT if tls else MQTT_PORT)
    return BrokerAddress(parts.hostname or DEFAULT_HOST, port, tls)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the broker is and how to log in: what the agent and the collector have in common. Each side
    extends it with its own settings (the MQTT protocol version among them: the agent's default is
    "auto", the collector's "5")."""

    url: str  # mqtt://host[:port] or mqtts://host[:port]
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # mqtts://: the CA of the broker's certificate (default: the system's)
    cert_file: str | None = None  # mqtts://: client certificate (mutual TLS), optional
    key_file: str | None = None  # its private key (with cert_file)
    keepalive: int = 30  # seconds

    @property
    def address(self) -> BrokerAddress:
        return parse_broker_url(self.url)


def tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """A client TLS context that checks the broker's certificate against ``ca_file`` (default: the
    system's CAs) and presents ``cert_file``/``key_file`` when they are set. Raises :class:`OSError` or
    :class:`ssl.SSLError` when a file cannot be read."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class Backoff:
    """Waits between connection attempts: jittered exponential, ``initial`` doubling up to ``cap``.

    Each wait is drawn between half and all of the current step (jitter: clients that lost the same
    broker do not come back in step). The step goes back to ``initial`` only when a usable connection
    ended after lasting ``stable_after`` seconds: a broker that accepts and drops at once sees the steps
    grow, and a client whose long-lived connection broke retries within a second. ``stable_after=0``
    resets the step at every usable connection.

    The defaults are the agent's (1 s to 15 s, reset after 10 s up); the collector's subscriber uses
    a cap of 10 s and ``stable_after=0``.
    """

    def __init__(self, initial: float = 1.0, cap: float = 15.0, stable_after: float = 10.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[float, float], float] = random.uniform) -> None:
        self._initial = min(initial, cap)
        self._cap = cap
        self._stable_after = stable_after
        self._clock = clock
        self._jitter = jitter
        self._step = self._initial
        self._up_since: float | None = None

    def up(self) -> None:
        """A usable connection started (the agent: the broker accepted the birth message; the collector:
        the subscriptions were made)."""
        self._up_since = self._clock()

    def down(self, *, usable: bool = True) -> None:
        """The connection ended (``usable`` False: it ended because the broker refused a message). Without
        :meth:`up` since the last call (the attempt failed), the step is kept."""
        if self._up_since is not None and usable and self._clock() - self._up_since >= self._stable_after:
            self._step = self._initial
        self._up_since = None

    def delay(self) -> float:
        """The wait before the next attempt; the step then doubles (up to the cap)."""
        wait = self._step * self._jitter(0.5, 1.0)
        self._step = min(self._step * 2, self._cap)
        return wait

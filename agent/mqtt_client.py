"""The agent's MQTT client: the only agent module that imports aiomqtt (and paho, beneath it).

:class:`MqttConnection` is aiomqtt's client with what agent/uplink.py needs besides (PUBACK reason codes,
a future for the connection's end, no unread futures); :func:`make_connection` builds one from the
broker settings; :class:`Connection` is what the uplink uses of it (a fake in unit tests). aiomqtt's
errors are passed on as they are: :class:`MqttError` (any failure of a connection: refused, lost, no
PUBACK in time) and :class:`MqttConnectError` (the broker answered CONNECT with a refusal), which
:func:`refuses_mqtt5` tells apart for the uplink's fall-back to MQTT 3.1.1.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt import MqttCodeError, MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hatang.broker import BrokerSettings, tls_context

__all__ = ["Connection", "MqttConnectError", "MqttConnection", "MqttError", "PubAck", "make_connection",
           "refuses_mqtt5"]

UNSUPPORTED_PROTOCOL = (0x84, 1)  # MQTT 5 "Unsupported protocol version"; MQTT 3.1.1 CONNACK code 1
CONNECT_TIMEOUT = 10  # seconds, and the default wait for a PUBACK


@dataclass(frozen=True, slots=True)
class PubAck:
    """What the broker answered to one QoS 1 PUBLISH."""

    code: int  # MQTT 5 reason code; always 0 under MQTT 3.1.1
    name: str  # e.g. "Success", "No matching subscribers", "Not authorized"

    @property
    def accepted(self) -> bool:
        return self.code < 0x80

    @property
    def reason(self) -> str:
        """The name as a metric label value: "not_authorized", "quota_exceeded", ..."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or f"code_{self.code}"


class Connection(Protocol):
    """What draining needs from a connected client (:class:`MqttConnection`, or a fake in unit tests)."""

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> PubAck: ...

    @property
    def lost(self) -> asyncio.Future[None]: ...

    def receive(self, topic: str) -> AsyncIterator[bytes]: ...


def refuses_mqtt5(exc: MqttConnectError) -> bool:
    """The broker refused the CONNECT because it does not speak the MQTT version asked for."""
    code = getattr(exc.rc, "value", exc.rc)
    return code in UNSUPPORTED_PROTOCOL


def make_connection(settings: BrokerSettings, *, protocol: str, will: tuple[str, bytes] | None,
                    probe: bool = False) -> MqttConnection:
    """A client for one connection (``async with`` it to connect): MQTT ``protocol`` "5" or "3.1.1", a
    clean session every time (MQTT 5: clean start and no session expiry; the agent only publishes, and
    the uplink owns the retries), ``will`` as (topic, payload) sent retained with QoS 1 (None: no will,
    e.g. ``hatang fleet push``). ``probe``: a
    bare connection, anonymous and without a will. Reads the TLS files (``OSError``, ``ssl.SSLError``)."""
    address = settings.address
    v5 = protocol == "5"
    return MqttConnection(
        address.host,
        address.port,
        identifier=settings.client_id,
        username=None if probe else settings.username,
        password=None if probe else settings.password,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        **({"clean_start": True} if v5 else {"clean_session": True}),
        will=None if probe or will is None else aiomqtt.Will(will[0], will[1], qos=1, retain=True),
        keepalive=settings.keepalive,
        tls_context=tls_context(settings) if address.tls else None,
        timeout=CONNECT_TIMEOUT,
    )


class MqttConnection(aiomqtt.Client):
    """aiomqtt's client with what the uplink needs besides (aiomqtt 2.5 internals; pinned < 3):

    - :meth:`publish_acked`: a QoS 1 publish that returns the PUBACK's reason code (aiomqtt's
      ``publish`` drops it) and fails as soon as the connection is lost (aiomqtt's waits for its
      timeout, 10 s, and then leaves the connection's error unread).
    - :attr:`lost`: completes when the connection is gone, so an idle uplink notices at once.
    - no "Future exception was never retrieved": when the broker closes the connection right after
      CONNACK, aiomqtt's ``__aenter__`` replaces its failed ``_disconnected`` future without reading it
      and returns a dead connection. Here the replaced future is read and ``__aenter__`` raises. A
      connection closed before CONNACK fails at once instead of after the connect timeout.
    - :attr:`session_present`: CONNACK's session-present flag.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._closed_early: BaseException | None = None
        self._acks: dict[int, PubAck] = {}
        self.session_present: bool | None = None
        super().__init__(*args, **kwargs)

    # aiomqtt assigns ``self._disconnected`` in __init__ and, in __aenter__, replaces it when it is already
    # done: intercept that to read the error of the connection that died during __aenter__.
    @property
    def _disconnected(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.__dict__["_lost_future"]
        return future

    @_disconnected.setter
    def _disconnected(self, future: asyncio.Future[None]) -> None:
        old: asyncio.Future[None] | None = self.__dict__.get("_lost_future")
        if old is not None and old.done():
            error = None if old.cancelled() else old.exception()  # read: never "not retrieved"
            self._closed_early = error or MqttError("connection closed")
        self.__dict__["_lost_future"] = future

    @property
    def lost(self) -> asyncio.Future[None]:
        return self._disconnected

    def _raise_if_lost(self) -> None:
        lost = self._disconnected
        if lost.done():
            error = None if lost.cancelled() else lost.exception()
            raise MqttError(f"connection lost: {error}" if error else "connection closed") from error

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if self._closed_early is not None or not self._client.is_connected():
            error = self._closed_early
            self._lock.release()  # __aexit__ is not called when __aenter__ raises
            raise MqttError(f"the broker closed the connection right after CONNACK: {error}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        lost = self._disconnected
        if lost.done() and not lost.cancelled():
            lost.exception()  # the uplink has seen it already: mark it read
        await super().__aexit__(exc_type, exc, tb)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None = None) -> None:
        self.session_present = bool(flags.session_present)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None = None) -> None:
        if not self._connected.done() and self._lock.locked():  # closed before CONNACK, during __aenter__
            self._connected.set_exception(MqttCodeError(
                reason_code, "the broker closed the connection before CONNACK"))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        if mid in self._pending_publishes:
            self._acks[mid] = PubAck(int(reason_code.value), str(reason_code))
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def receive(self, topic: str) -> AsyncIterator[bytes]:
        """Subscribe to ``topic`` with QoS 1 and yield the payload of each message on it (its retained
        message first). Raises :class:`MqttError` when the broker refuses the subscription (MQTT 5
        SUBACK reason code >= 0x80, or 0x80 under 3.1.1: its ACL does not let this user read it)."""
        granted = await self.subscribe(topic, qos=1)
        codes = [code if isinstance(code, int) else int(code.value) for code in granted]
        if not codes or any(code >= 0x80 for code in codes):
            raise MqttError(f"the broker refused the subscription to {topic} (SUBACK {codes})")
        async for message in self.messages:
            if message.topic.matches(topic) and isinstance(message.payload, bytes | bytearray):
                yield bytes(message.payload)

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> PubAck:
        """Publish with QoS 1 and return the broker's PUBACK. Raises :class:`MqttError` when the
        connection is lost before it, or after ``timeout`` seconds (default: the client's)."""
        self._raise_if_lost()
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._raise_if_lost()
            raise MqttCodeError(info.rc, "Could not publish message")
        wait = self.timeout if timeout is None else timeout
        confirmation = asyncio.Event()
        with self._pending_call(info.mid, confirmation, self._pending_publishes):
            waiter = asyncio.ensure_future(confirmation.wait())
            try:
                await asyncio.wait((waiter, self._disconnected), timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        ack = self._acks.pop(info.mid, None)
        if ack is not None:
            return ack
        self._raise_if_lost()
        raise MqttError(f"no PUBACK within {wait:g} s")

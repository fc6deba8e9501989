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
import contextlib
import re
import socket
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
# QoS 1 messages paho sends before their PUBACKs (its default, 20, made a pipelined batch of the uplink
# wait for round trips); Mosquitto accepts up to 65,535 (max_inflight_messages in its config is 20 for
# messages it sends, not for those it receives)
MAX_INFLIGHT = 1000
KEEPALIVE_SLACK = 0.05  # seconds past a keep-alive deadline, so that paho sees it as passed
NO_DEADLINE_RECHECK = 1.0  # seconds: paho's housekeeping before CONNACK or with no deadline ahead (aiomqtt's)


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
        max_inflight_messages=MAX_INFLIGHT,
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
    - paho's housekeeping (:meth:`_misc_loop`) at the keep-alive deadlines instead of every second.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._closed_early: BaseException | None = None
        self._ack_waiters: dict[int, asyncio.Future[PubAck]] = {}  # message id -> its PUBACK, to come
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
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # paho leaves Nagle on: a pipelined batch waited for TCP ACKs
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        waiters, self._ack_waiters = self._ack_waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(MqttError(f"connection lost: {reason_code}"))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        waiter = self._ack_waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(PubAck(int(reason_code.value), str(reason_code)))
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def _misc_loop(self) -> None:
        """paho's housekeeping (``loop_misc``: a PINGREQ when nothing was sent or received for a
        keep-alive period, the connection's end when its PINGRESP does not come within another) at the
        moments it can act, not every second as aiomqtt does: an idle agent woke 60 times a minute for
        nothing, and on a virtual machine each wake-up after a long sleep costs a few hundred
        microseconds of CPU or more (benchmarks/agent_footprint.py)."""
        while self._client.loop_misc() == paho.MQTT_ERR_SUCCESS:
            await asyncio.sleep(self._misc_delay())

    def _misc_delay(self) -> float:
        """Seconds until paho's next keep-alive deadline (sending a message or receiving bytes moves it
        later, so waking early only finds nothing to do). Until CONNACK, aiomqtt's second: an MQTT 5
        broker may shorten the keep-alive in it (Server Keep Alive)."""
        client = self._client
        keepalive = client.keepalive
        if not client.is_connected():
            return NO_DEADLINE_RECHECK
        if keepalive <= 0:  # no keep-alive: loop_misc has nothing to do but notice a closed socket
            return float(CONNECT_TIMEOUT)
        deadline = min(client._last_msg_out, client._last_bytes_received) + keepalive
        if client._ping_t > 0:  # a PINGREQ waits for its PINGRESP
            deadline = min(deadline, client._ping_t + keepalive)
        delay = deadline - paho.time_func()
        return min(float(keepalive), delay + KEEPALIVE_SLACK) if delay > 0 else NO_DEADLINE_RECHECK

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
        # One future per message, completed by paho's PUBACK callback or failed when the connection is
        # lost (_on_disconnect): a pipelined batch costs no event, task or asyncio.wait per message.
        waiter: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._ack_waiters[info.mid] = waiter
        try:
            async with asyncio.timeout(wait):
                return await waiter
        except TimeoutError:
            self._raise_if_lost()
            raise MqttError(f"no PUBACK within {wait:g} s") from None
        finally:
            self._ack_waiters.pop(info.mid, None)

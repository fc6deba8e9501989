"""The collector's MQTT side: the only collector module that imports aiomqtt.

Subscribes to every agent's topics with QoS 1 and hands each message to a callback; reconnects with
jittered exponential backoff (:class:`hatang.broker.Backoff`, shared with the agent: 1 s doubling to
``max_backoff``, back to 1 s once a connection subscribed) and logs once per state change. The broker
settings (URL, credentials, TLS with an optional client certificate) are :class:`hatang.broker.BrokerSettings`
and the collector's own in :class:`SubscriberSettings`.

In a shared group (``shared_group``, MQTT 5) the data topics are subscribed as a shared subscription
(``$share/GROUP/...``: the broker hands each message to one member of the group) and the status topic
as an ordinary one, so every member sees every birth, last will and retained status.

With ``manual_ack`` a QoS 1 message is acknowledged (PUBACK) once it is handled: at once when the
callback returns, or, when the callback returns a :class:`Completion`, once that completes; always in
the order the messages arrived (MQTT 5 section 4.6) and on the connection that received it.
aiomqtt 2.5 has no public switch for this (aiomqtt issue #345, draft PR #346); paho-mqtt >= 2.0 has
``manual_ack_set`` and ``ack``, reached through aiomqtt's paho client here and nowhere else. Messages
not acknowledged when the connection ends are sent again by the broker (persistent session).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiomqtt
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.redact import redact_url
from hatang.broker import Backoff, BrokerSettings, tls_context
from wire.topics import ROOT, TopicKind, subscription

log = logging.getLogger("hatang.collector.subscriber")


@dataclass(frozen=True, slots=True)
class SubscriberSettings(BrokerSettings):
    """The broker settings of the collector: :class:`hatang.broker.BrokerSettings` and these."""

    session_expiry: int = 86400  # seconds; 0 = clean session
    protocol: str = "5"  # or "3.1.1"
    shared_group: str | None = None  # MQTT 5 shared subscription group of several collectors
    manual_ack: bool = False  # PUBACK only when the message's ``ack`` is called
    receive_maximum: int | None = None  # MQTT 5: unacknowledged QoS 1 messages the broker may send


Ack = Callable[[], None]
# Unsubscribed from on a clean stop only for the broker's answer (Subscriber.settle); never subscribed
# ('@' starts no agent id).
SETTLE_FILTER = f"{ROOT}/@settle"


@runtime_checkable
class Completion(Protocol):
    """Returned by the message callback when handling goes on after it returned (remote write)."""

    def then(self, callback: Callable[[], None]) -> None: ...


# (topic, payload, retained) -> anything; a Completion delays the acknowledgement (manual_ack) until it
# completes. ``retained``: the broker's retained copy sent at subscribe time (possibly old), not a message
# forwarded as it was published.
OnMessage = Callable[[str, bytes, bool], object]


def subscriptions(shared_group: str | None) -> list[str]:
    """Topic filters to subscribe to. In a shared group every kind but ``status`` is shared; the status
    topic stays an ordinary subscription so that each member knows every agent's birth and will."""
    if shared_group is None:
        return [subscription()]
    shared = [f"$share/{shared_group}/{ROOT}/+/{kind.value}/#" for kind in TopicKind
              if kind not in (TopicKind.STATUS, TopicKind.CONFIG)]
    return [f"{ROOT}/+/{TopicKind.STATUS.value}", *shared]


def _paho(client: aiomqtt.Client) -> PahoClient:
    """aiomqtt's underlying paho client (private attribute; see the module docstring)."""
    paho: PahoClient = client._client
    return paho


def _ignore() -> None:
    return None


@dataclass(slots=True)
class _Unacked:
    mid: int
    qos: int
    handled: bool = False


class AckQueue:
    """PUBACKs of one connection, sent in the order the messages arrived, each once its message is
    handled. After ``close`` (the connection ended) nothing more is sent: the broker redelivers."""

    def __init__(self, send: Callable[[int, int], object]) -> None:
        self._send = send
        self._waiting: deque[_Unacked] = deque()
        self.closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def track(self, mid: int, qos: int) -> Ack:
        if qos == 0:
            return _ignore
        entry = _Unacked(mid, qos)
        self._waiting.append(entry)

        def ack() -> None:
            if not entry.handled:
                entry.handled = True
                self._flush()

        return ack

    def _flush(self) -> None:
        while self._waiting and self._waiting[0].handled:
            entry = self._waiting.popleft()
            if not self.closed:
                self._send(entry.mid, entry.qos)

    def close(self) -> None:
        self.closed = True
        self._waiting.clear()


class Subscriber:
    def __init__(
        self,
        settings: SubscriberSettings,
        on_message: OnMessage,
        on_connection: Callable[[bool], None],
        *,
        max_backoff: float = 10.0,
    ) -> None:
        self._settings = settings
        self._on_message = on_message
        self._on_connection = on_connection
        self._backoff = Backoff(cap=max_backoff, stable_after=0.0)  # a connection that subscribed resets it
        self.connected = False
        self._current: aiomqtt.Client | None = None
        self._acks: AckQueue | None = None
        self._paused = False
        # The broker kept our session at the last connect (CONNACK session present): it may deliver
        # messages it queued while we were away, so arrival times say little for a while.
        self.session_present = False

    def _client(self) -> aiomqtt.Client:
        """MQTT v5; with ``session_expiry`` a persistent session (fixed client id, clean_start false),
        so the broker queues what agents publish while the collector restarts."""
        address = self._settings.address
        persistent = self._settings.session_expiry > 0
        v5 = self._settings.protocol == "5"
        properties = None
        if v5 and (persistent or self._settings.receive_maximum):
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if persistent:
                properties.SessionExpiryInterval = self._settings.session_expiry
            if self._settings.receive_maximum:
                properties.ReceiveMaximum = self._settings.receive_maximum
        session: dict[str, Any] = (
            {"clean_start": not persistent} if v5 else {"clean_session": not persistent}
        )
        client = aiomqtt.Client(
            address.host,
            address.port,
            identifier=self._settings.client_id,
            username=self._settings.username,
            password=self._settings.password,
            keepalive=self._settings.keepalive,
            tls_context=tls_context(self._settings) if address.tls else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            properties=properties,
            **session,
            max_queued_incoming_messages=0,  # unbounded: never drop silently (see FIELD-NOTES)
            timeout=10,
        )
        if self._settings.manual_ack:
            _paho(client).manual_ack_set(True)
        paho = _paho(client)
        on_connect = paho.on_connect

        def remember_session(*args: Any) -> None:  # paho: (client, userdata, flags, reason, properties)
            flags = args[2] if len(args) > 2 else None
            self.session_present = bool(getattr(flags, "session_present", False))
            if on_connect is not None:
                on_connect(*args)

        paho.on_connect = remember_session
        return client

    def pending(self) -> int:
        """Messages received from the broker and not yet handled (aiomqtt's incoming queue)."""
        return len(self._current.messages) if self._current is not None else 0

    def unacknowledged(self) -> int:
        """Messages of the current connection handed on and not yet acknowledged (manual_ack)."""
        return len(self._acks) if self._acks is not None else 0

    def pause(self) -> None:
        """Stop handing messages on (clean stop): the connection stays up, so acknowledgements of what
        was already handed on still reach the broker; what arrives now is left unacknowledged and
        comes again after the restart."""
        self._paused = True

    async def settle(self, timeout: float) -> bool:
        """Clean stop in push mode, once every handled message was acknowledged: make sure the broker has
        read those PUBACKs before the connection ends. The broker reads a client's packets in order, so
        its answer to one more request (UNSUBSCRIBE of a filter never subscribed: it changes nothing, not
        even the persistent session) comes after it has read them. Without this a PUBACK still in the
        broker's receive buffer can be lost: closing a socket that has unread incoming data (messages
        the paused subscriber no longer reads) sends a reset, and the broker drops what it had not read
        yet; the message then goes to another member and is written twice. False if not connected or no
        answer in ``timeout`` seconds."""
        client = self._current
        if client is None or not self.connected:
            return False
        try:
            async with asyncio.timeout(timeout):
                await client.unsubscribe(SETTLE_FILTER)
        except (aiomqtt.MqttError, TimeoutError):
            return False
        return True

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._on_connection(connected)

    async def run(self) -> None:
        reported = False  # one log line per state change, not per retry
        while True:
            try:
                async with self._client() as client:
                    self._current = client
                    acks = self._acks = AckQueue(_paho(client).ack)
                    try:
                        for topic_filter in subscriptions(self._settings.shared_group):
                            await client.subscribe(topic_filter, qos=1)
                        self._set_connected(True)
                        log.info("connected to broker %s%s", redact_url(self._settings.url),
                                 f" (shared group {self._settings.shared_group})"
                                 if self._settings.shared_group else "")
                        self._backoff.up()
                        reported = False
                        async for message in client.messages:
                            if self._paused:
                                continue  # stopping: never acknowledged, so the broker sends it again
                            payload = message.payload
                            if not isinstance(payload, bytes | bytearray):
                                payload = str(payload or "").encode()
                            retained = bool(message.retain)
                            if not self._settings.manual_ack:
                                self._on_message(message.topic.value, bytes(payload), retained)
                                continue
                            ack = acks.track(message.mid, message.qos)
                            result = self._on_message(message.topic.value, bytes(payload), retained)
                            if isinstance(result, Completion):
                                result.then(ack)
                            else:
                                ack()
                    finally:
                        acks.close()
            except aiomqtt.MqttError as exc:
                error = str(exc) or type(exc).__name__
                if not reported:
                    log.warning("broker %s unreachable: %s; retrying with backoff",
                                redact_url(self._settings.url), error)
                    reported = True
                else:
                    log.debug("broker %s still unreachable: %s", redact_url(self._settings.url), error)
            self._backoff.down()
            self._set_connected(False)
            await asyncio.sleep(self._backoff.delay())

"""The collector's MQTT side: the only collector module that imports aiomqtt.

Subscribes to every agent's topics with QoS 1 and hands each message to a callback; reconnects with
jittered exponential backoff and logs once per state change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wire.topics import subscription

log = logging.getLogger("hatang.collector.subscriber")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    keepalive: int = 30
    session_expiry: int = 86400  # seconds; 0 = clean session
    protocol: str = "5"  # or "3.1.1"


class Subscriber:
    def __init__(
        self,
        settings: BrokerSettings,
        on_message: Callable[[str, bytes], object],
        on_connection: Callable[[bool], None],
        *,
        max_backoff: float = 10.0,
    ) -> None:
        self._settings = settings
        self._on_message = on_message
        self._on_connection = on_connection
        self._max_backoff = max_backoff
        self.connected = False
        self._current: aiomqtt.Client | None = None

    def _client(self) -> aiomqtt.Client:
        """MQTT v5; with ``session_expiry`` a persistent session (fixed client id, clean_start false),
        so the broker queues what agents publish while the collector restarts."""
        parts = urlsplit(self._settings.url)
        tls = parts.scheme == "mqtts"
        persistent = self._settings.session_expiry > 0
        v5 = self._settings.protocol == "5"
        properties = None
        if v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._settings.session_expiry
        session: dict[str, Any] = (
            {"clean_start": not persistent} if v5 else {"clean_session": not persistent}
        )
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            identifier=self._settings.client_id,
            username=self._settings.username,
            password=self._settings.password,
            keepalive=self._settings.keepalive,
            tls_context=ssl.create_default_context(cafile=self._settings.ca_file) if tls else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            properties=properties,
            **session,
            max_queued_incoming_messages=0,  # unbounded: never drop silently (see FIELD-NOTES)
            timeout=10,
        )

    def pending(self) -> int:
        """Messages received from the broker and not yet handled (aiomqtt's internal queue)."""
        client = self._current
        queue = getattr(client, "_queue", None) if client is not None else None
        return queue.qsize() if queue is not None else 0

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._on_connection(connected)

    async def run(self) -> None:
        backoff = 1.0
        reported = False  # one log line per state change, not per retry
        while True:
            try:
                async with self._client() as client:
                    self._current = client
                    await client.subscribe(subscription(), qos=1)
                    self._set_connected(True)
                    log.info("connected to broker %s", self._settings.url)
                    backoff, reported = 1.0, False
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload or "").encode()
                        self._on_message(message.topic.value, bytes(payload))
            except aiomqtt.MqttError as exc:
                error = str(exc) or type(exc).__name__
                if not reported:
                    log.warning("broker %s unreachable: %s; retrying with backoff", self._settings.url, error)
                    reported = True
                else:
                    log.debug("broker %s still unreachable: %s", self._settings.url, error)
            self._set_connected(False)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff)

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
from urllib.parse import urlsplit

import aiomqtt

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


class Subscriber:
    def __init__(
        self,
        settings: BrokerSettings,
        on_message: Callable[[str, bytes], object],
        on_connection: Callable[[bool], None],
        *,
        max_backoff: float = 30.0,
    ) -> None:
        self._settings = settings
        self._on_message = on_message
        self._on_connection = on_connection
        self._max_backoff = max_backoff
        self.connected = False

    def _client(self) -> aiomqtt.Client:
        parts = urlsplit(self._settings.url)
        tls = parts.scheme == "mqtts"
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            identifier=self._settings.client_id,
            username=self._settings.username,
            password=self._settings.password,
            keepalive=self._settings.keepalive,
            tls_context=ssl.create_default_context(cafile=self._settings.ca_file) if tls else None,
            timeout=10,
        )

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._on_connection(connected)

    async def run(self) -> None:
        backoff = 1.0
        last_error = ""
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(subscription(), qos=1)
                    self._set_connected(True)
                    log.info("connected to broker %s", self._settings.url)
                    backoff, last_error = 1.0, ""
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload or "").encode()
                        self._on_message(message.topic.value, bytes(payload))
            except aiomqtt.MqttError as exc:
                error = str(exc)
                if self.connected or error != last_error:
                    log.warning("broker %s unreachable: %s; retrying with backoff", self._settings.url, error)
                last_error = error
            self._set_connected(False)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff)

"""The agent's MQTT uplink: the only agent module that imports aiomqtt.

Connects with a retained birth message and a last will (both on the agent's status topic), drains the
disk queue oldest-first with QoS 1 (a message is acked in the queue only after the broker's PUBACK),
and reconnects with jittered exponential backoff, logging once per state change, not per retry.
Retries are owned here only: a message that was not acknowledged stays in the queue and is sent again;
the receiver drops duplicates by (agent, boot id, sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt

from agent.queue import DiskQueue, QueuedMessage
from wire.topics import data_topic, status_topic

log = logging.getLogger("hatang.agent.uplink")

DRAIN_BATCH = 100


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str  # mqtt://host:port or mqtts://host:port
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    keepalive: int = 30

    @property
    def host_port_tls(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


class Uplink:
    def __init__(
        self,
        settings: BrokerSettings,
        agent_id: str,
        queue: DiskQueue,
        *,
        birth: Callable[[], bytes],
        will: bytes,
        live_window: Callable[[str], float],
        max_backoff: float = 60.0,
    ) -> None:
        self._settings = settings
        self._agent = agent_id
        self._queue = queue
        self._birth = birth
        self._will = will
        self._live_window = live_window  # device -> seconds within which a message counts as live
        self._max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self.connected = False
        self.published = 0

    def notify(self) -> None:
        """Something was appended to the queue."""
        self._wakeup.set()

    def _make_client(self) -> aiomqtt.Client:
        host, port, tls = self._settings.host_port_tls
        tls_context = None
        if tls:
            tls_context = ssl.create_default_context(cafile=self._settings.ca_file)
        return aiomqtt.Client(
            host,
            port,
            identifier=self._settings.client_id,
            username=self._settings.username,
            password=self._settings.password,
            will=aiomqtt.Will(status_topic(self._agent), self._will, qos=1, retain=True),
            keepalive=self._settings.keepalive,
            tls_context=tls_context,
            timeout=10,
        )

    async def run(self) -> None:
        backoff = 1.0
        last_error = ""
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    await client.publish(status_topic(self._agent), self._birth(), qos=1, retain=True)
                    self.connected = True
                    log.info("connected to broker %s", self._settings.url)
                    last_error = ""
                    backoff = 1.0
                    await self._drain(client)
            except aiomqtt.MqttError as exc:
                error = str(exc)
                if self.connected or error != last_error:
                    log.warning("broker %s unreachable: %s; retrying with backoff", self._settings.url, error)
                last_error = error
            finally:
                self._client = None
                self.connected = False
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff)

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            self._wakeup.clear()
            batch = self._queue.peek(DRAIN_BATCH)
            if not batch:
                await self._wakeup.wait()
                continue
            for message in batch:
                await client.publish(self._topic(message), message.payload, qos=1)
                self._queue.ack([message.id])
                self.published += 1

    def _topic(self, message: QueuedMessage) -> str:
        late = time.time() - message.created > self._live_window(message.device)
        return data_topic(self._agent, message.device, replay=late)

    async def say_goodbye(self, payload: bytes) -> None:
        """Publish the offline status on a clean shutdown (the will covers unclean ones)."""
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(status_topic(self._agent), payload, qos=1, retain=True, timeout=2)

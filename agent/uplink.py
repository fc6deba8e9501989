"""The agent's MQTT uplink: the only agent module that imports aiomqtt.

Connects with a retained birth message and a last will (both on the agent's status topic) and drains
the disk queue with QoS 1: a message is deleted from the queue only after the broker's PUBACK. Live
messages go first; the backlog an outage left behind follows oldest-first at a bounded rate, on the
``replay`` topic. Reconnects use jittered exponential backoff and log once per state change.

Retries are owned here only: a message that was not acknowledged stays in the queue and is sent again
by this loop (each connection uses a fresh client, so paho never resends on its own); the receiver
drops the rare duplicate by (agent, boot id, sequence).
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
from wire.topics import data_topic, events_topic, self_topic, status_topic

log = logging.getLogger("hatang.agent.uplink")

DRAIN_BATCH = 100
SELF_CHANNEL = "@self"  # queue channel of the agent's own metrics (device names cannot start with '@')
EVENTS_CHANNEL = "@events"  # queue channel of traps


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str  # mqtt://host:port or mqtts://host:port
    client_id: str
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS), optional
    key_file: str | None = None
    keepalive: int = 30

    @property
    def host_port_tls(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


def tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class ReplayPacer:
    """Token bucket: at most ``rate`` backlog messages per second, in bursts of at most one second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(rate, 1.0)  # below one message per second, still one message at a time
        self._clock = clock
        self._tokens = self._burst
        self._last = clock()

    def available(self) -> int:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        return int(self._tokens)

    def spend(self, count: int) -> None:
        self._tokens -= count

    def wait_time(self) -> float:
        return max(0.0, (1 - self._tokens) / self._rate)


class Uplink:
    def __init__(
        self,
        settings: BrokerSettings,
        agent_id: str,
        queue: DiskQueue,
        *,
        birth: Callable[[], bytes],
        will: bytes,
        replay_rate: float = 20.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._settings = settings
        self._agent = agent_id
        self._queue = queue
        self._birth = birth
        self._will = will
        self._replay_rate = replay_rate
        self._max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._goodbye: bytes | None = None  # set by finish(): publish this last, then stop
        self._finished = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self.connected = False
        self.published = 0
        self.replayed = 0
        self.connects = 0

    def notify(self) -> None:
        """Something was appended to the queue."""
        self._wakeup.set()

    def _make_client(self) -> aiomqtt.Client:
        host, port, tls = self._settings.host_port_tls
        return aiomqtt.Client(
            host,
            port,
            identifier=self._settings.client_id,
            username=self._settings.username,
            password=self._settings.password,
            will=aiomqtt.Will(status_topic(self._agent), self._will, qos=1, retain=True),
            keepalive=self._settings.keepalive,
            tls_context=tls_context(self._settings) if tls else None,
            timeout=10,
        )

    async def run(self) -> None:
        backoff = 1.0
        reported = False  # the current outage was logged already: one line per state change
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    await client.publish(status_topic(self._agent), self._birth(), qos=1, retain=True)
                    self.connected = True
                    self.connects += 1
                    log.info("connected to broker %s; %d message(s) queued", self._settings.url,
                             self._queue.stats().depth)
                    reported = False
                    backoff = 1.0
                    await self._drain(client)
            except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                error = str(exc) or type(exc).__name__
                if not reported:
                    log.warning("broker %s unreachable: %s; buffering on disk and retrying",
                                self._settings.url, error)
                    reported = True
                else:
                    log.debug("broker %s still unreachable: %s", self._settings.url, error)
            finally:
                self._client = None
                self.connected = False
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff)

    async def _drain(self, client: aiomqtt.Client) -> None:
        pacer = ReplayPacer(self._replay_rate)
        while True:
            if self._goodbye is not None:  # finishing: the offline status is the last message sent
                await client.publish(status_topic(self._agent), self._goodbye, qos=1, retain=True, timeout=2)
                self._finished.set()
                await asyncio.Event().wait()  # stay connected until cancelled: no will after the goodbye
            self._wakeup.clear()
            now = time.time()
            live = self._queue.peek_live(now, DRAIN_BATCH)
            if live:
                for message in live:
                    await self._send(client, message, replay=False)
                continue
            allowed = pacer.available()
            backlog = self._queue.peek_backlog(now, min(DRAIN_BATCH, allowed)) if allowed else []
            if backlog:
                for message in backlog:
                    await self._send(client, message, replay=True)
                pacer.spend(len(backlog))
                continue
            if allowed or not self._queue.peek_backlog(now, 1):
                await self._wakeup.wait()  # nothing to send until the next poll
            else:
                with contextlib.suppress(TimeoutError):  # backlog waits for the pacer or new live data
                    await asyncio.wait_for(self._wakeup.wait(), timeout=pacer.wait_time())

    async def _send(self, client: aiomqtt.Client, message: QueuedMessage, *, replay: bool) -> None:
        if message.device == SELF_CHANNEL:
            topic = self_topic(self._agent)
        elif message.device == EVENTS_CHANNEL:
            topic = events_topic(self._agent)
        else:
            topic = data_topic(self._agent, message.device, replay=replay)
        await client.publish(topic, message.payload, qos=1)
        self._queue.ack([message.id])
        self.published += 1
        self.replayed += replay

    async def finish(self, goodbye: bytes, timeout: float = 5.0) -> None:
        """On a clean stop, after the producers stopped: publish ``goodbye`` (the offline status) as the
        last message, after the message in flight. Returns at once when not connected (the broker then
        publishes the will when it notices)."""
        self._goodbye = goodbye
        self._wakeup.set()
        if self.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), timeout)

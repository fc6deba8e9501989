"""The agent's MQTT uplink: the only agent module that imports aiomqtt.

Connects with a retained birth message and a small last will (both on the agent's status topic) and
drains the disk queue with QoS 1. Live messages go first; the backlog an outage left behind follows
oldest-first at a bounded rate, on the ``replay`` topic. One log line per state change (connected,
unreachable, refused).

What a PUBACK means. The uplink speaks MQTT 5 (``protocol`` "auto" asks the broker once, with a bare
CONNECT, and uses 3.1.1 if it refuses version 5, as the demo's embedded broker does; "5" and "3.1.1" do
not ask). MQTT 5 says in every PUBACK whether the broker took the message: reason codes below 0x80
(0x00, and 0x10 "no matching subscribers") mean accepted; 0x87 "not authorized" (e.g. a username the
ACL does not let write the agent's topics) and every other failure mean refused. A refused message stays
queued, is counted by reason (``rejected``) and logged once per episode; the uplink then disconnects and
retries after its back-off. MQTT 3.1.1 cannot refuse: a broker acknowledges and drops what its ACL
denies.

Redelivery after a broker crash. A broker persists what it acknowledged only every few seconds
(Mosquitto: ``autosave_interval``), so a crash loses what it accepted since its last save. An accepted
message is therefore not deleted but kept as *delivered* for ``redeliver_window`` seconds; when a
connection ends (and when the agent starts), every kept message becomes pending again and is sent on the
next connection (a clean stop of the agent leaves them kept: the next start sends them again if they
are still in the window). The collector drops the duplicates by (agent, boot id, sequence). CONNACK's
session-present flag cannot tell whether this is needed: the agent only publishes and uses clean
sessions (a fresh client per connection, no session expiry), so the flag is always false; and a broker
restarted from its last save would report a restored session as present all the same.

Retries are owned here only: a message that was not accepted stays in the queue and is sent again by
this loop (each connection uses a fresh client, so paho never resends on its own).

Reconnects use jittered exponential back-off (:class:`Backoff`): 1 s doubling to ``max_backoff``, reset
only after a connection stayed up ``stable_after`` seconds, so a broker that accepts and drops at once is
not hammered and an agent is never offline for more than ``max_backoff`` after the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.queue import DiskQueue, QueuedMessage
from wire.topics import data_topic, events_topic, self_topic, status_topic

log = logging.getLogger("hatang.agent.uplink")

DRAIN_BATCH = 100
SELF_CHANNEL = "@self"  # queue channel of the agent's own metrics (device names cannot start with '@')
EVENTS_CHANNEL = "@events"  # queue channel of traps

PROTOCOLS = ("auto", "5", "3.1.1")
# seconds: well above the broker's save interval (deploy/mosquitto/hatang.conf: autosave_interval 10) plus
# the time to notice a dead connection (1.5 x keepalive)
DEFAULT_REDELIVER_WINDOW = 120.0
DEFAULT_MAX_BACKOFF = 15.0
DEFAULT_STABLE_AFTER = 10.0
UNSUPPORTED_PROTOCOL = (0x84, 1)  # MQTT 5 "Unsupported protocol version"; MQTT 3.1.1 CONNACK code 1
NOT_AUTHORIZED = 0x87


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
    protocol: str = "auto"  # "5", "3.1.1", or "auto": 5, falling back to 3.1.1 if the broker refuses 5

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


class PublishRejected(Exception):
    """The broker refused a message (PUBACK reason code >= 0x80)."""

    def __init__(self, topic: str, ack: PubAck) -> None:
        super().__init__(f"{ack.name} (0x{ack.code:02X}) for a message on {topic}")
        self.topic = topic
        self.ack = ack


class Connection(Protocol):
    """What draining needs from a connected client (:class:`MqttConnection`, or a fake in unit tests)."""

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> PubAck: ...

    @property
    def lost(self) -> asyncio.Future[None]: ...


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
            self._closed_early = error or aiomqtt.MqttError("connection closed")
        self.__dict__["_lost_future"] = future

    @property
    def lost(self) -> asyncio.Future[None]:
        return self._disconnected

    def _raise_if_lost(self) -> None:
        lost = self._disconnected
        if lost.done():
            error = None if lost.cancelled() else lost.exception()
            raise aiomqtt.MqttError(f"connection lost: {error}" if error else "connection closed") from error

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if self._closed_early is not None or not self._client.is_connected():
            error = self._closed_early
            self._lock.release()  # __aexit__ is not called when __aenter__ raises
            raise aiomqtt.MqttError(f"the broker closed the connection right after CONNACK: {error}")
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
            self._connected.set_exception(aiomqtt.MqttCodeError(
                reason_code, "the broker closed the connection before CONNACK"))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        if mid in self._pending_publishes:
            self._acks[mid] = PubAck(int(reason_code.value), str(reason_code))
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False,
                            timeout: float | None = None) -> PubAck:
        """Publish with QoS 1 and return the broker's PUBACK. Raises :class:`aiomqtt.MqttError` when the
        connection is lost before it, or after ``timeout`` seconds (default: the client's)."""
        self._raise_if_lost()
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._raise_if_lost()
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
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
        raise aiomqtt.MqttError(f"no PUBACK within {wait:g} s")


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


class Backoff:
    """Waits between connection attempts: jittered exponential, ``initial`` doubling up to ``cap``.

    Each wait is drawn between half and all of the current step (jitter: agents that lost the same broker
    do not come back in step). The step goes back to ``initial`` only when a usable connection ended after
    lasting ``stable_after`` seconds: a broker that accepts and drops at once sees the steps grow, and an
    agent whose long-lived connection broke retries within a second.
    """

    def __init__(self, initial: float = 1.0, cap: float = DEFAULT_MAX_BACKOFF,
                 stable_after: float = DEFAULT_STABLE_AFTER, *,
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
        """A usable connection started (the broker accepted the birth message)."""
        self._up_since = self._clock()

    def down(self, *, usable: bool = True) -> None:
        """The connection ended (``usable`` False: it ended because the broker refused a message)."""
        if self._up_since is not None and usable and self._clock() - self._up_since >= self._stable_after:
            self._step = self._initial
        self._up_since = None

    def delay(self) -> float:
        """The wait before the next attempt; the step then doubles (up to the cap)."""
        wait = self._step * self._jitter(0.5, 1.0)
        self._step = min(self._step * 2, self._cap)
        return wait


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
        redeliver_window: float = DEFAULT_REDELIVER_WINDOW,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        stable_after: float = DEFAULT_STABLE_AFTER,
    ) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {settings.protocol!r}")
        self._settings = settings
        self._agent = agent_id
        self._queue = queue
        self._birth = birth
        self._will = will
        self._replay_rate = replay_rate
        self._redeliver_window = redeliver_window
        self._backoff = Backoff(cap=max_backoff, stable_after=stable_after)
        self._protocol = "3.1.1" if settings.protocol == "3.1.1" else "5"
        self._negotiated = settings.protocol != "auto"
        self._wakeup = asyncio.Event()
        self._goodbye: bytes | None = None  # set by finish(): publish this last, then stop
        self._finished = asyncio.Event()
        self._state = "starting"  # connected | unreachable | refused: logged when it changes
        self._acked = False  # something was acknowledged since the last requeue
        self.connected = False
        self.published = 0
        self.replayed = 0
        self.redelivered = 0  # acknowledged messages sent again after a connection ended
        self.connects = 0
        self.rejected: dict[str, int] = {}  # refused messages by reason ("not_authorized", ...)

    @property
    def protocol(self) -> str:
        """The MQTT version in use: "5" or "3.1.1"."""
        return self._protocol

    def notify(self) -> None:
        """Something was appended to the queue."""
        self._wakeup.set()

    def _make_client(self, *, probe: bool = False) -> MqttConnection:
        """The connection of the agent, or (``probe``) a bare one: anonymous and without a will."""
        host, port, tls = self._settings.host_port_tls
        v5 = self._protocol == "5"
        return MqttConnection(
            host,
            port,
            identifier=self._settings.client_id,
            username=None if probe else self._settings.username,
            password=None if probe else self._settings.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # A clean session every time (MQTT 5: clean start and no session expiry): the agent only
            # publishes, and retries are owned by this loop.
            **({"clean_start": True} if v5 else {"clean_session": True}),
            will=None if probe else aiomqtt.Will(status_topic(self._agent), self._will, qos=1, retain=True),
            keepalive=self._settings.keepalive,
            tls_context=tls_context(self._settings) if tls else None,
            timeout=10,
        )

    def _requeue(self) -> None:
        """The broker may not have saved what it accepted lately: send it again."""
        count = self._queue.requeue_delivered()
        self._acked = False
        if count:
            self.redelivered += count
            log.debug("%d message(s) the broker accepted in the last %g s will be sent again", count,
                      self._redeliver_window)

    async def run(self) -> None:
        if self._redeliver_window > 0:
            self._requeue()  # kept by an earlier run: the broker may have crashed while we were away
        while True:
            usable = True
            try:
                if not self._negotiated:
                    await self._negotiate()  # once: MQTT 5, or 3.1.1 for a broker without it
                client = self._make_client()
                async with client:
                    await self._publish(client, status_topic(self._agent), self._birth(), retain=True)
                    self.connected = True
                    self.connects += 1
                    self._backoff.up()
                    self._connected(client)
                    await self._drain(client)
            except PublishRejected as exc:
                usable = False
                self._refused(exc)
            except MqttConnectError as exc:
                if self._fall_back(exc):
                    continue  # at once, with MQTT 3.1.1
                self._unreachable(exc)
            except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                self._unreachable(exc)
            finally:
                if self.connected:
                    self._backoff.down(usable=usable)
                self.connected = False
            if self._acked:  # the connection ended (not the agent: that cancels run), maybe by a crash
                self._requeue()
            await asyncio.sleep(self._backoff.delay())

    def _connected(self, client: Connection) -> None:
        if self._state == "refused":  # the birth went through; the episode ends when a message does
            return
        if self._state != "connected":
            session = getattr(client, "session_present", None)
            log.info("connected to broker %s (MQTT %s%s); %d message(s) queued", self._settings.url,
                     self._protocol, ", session present" if session else "", self._queue.stats().depth)
        self._state = "connected"

    def _unreachable(self, exc: BaseException) -> None:
        error = str(exc) or type(exc).__name__
        if self._state != "unreachable":
            log.warning("broker %s unreachable: %s; buffering on disk and retrying", self._settings.url,
                        error)
            self._state = "unreachable"
        else:
            log.debug("broker %s still unreachable: %s", self._settings.url, error)

    def _refused(self, exc: PublishRejected) -> None:
        reason = exc.ack.reason
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if self._state == "refused":
            log.debug("broker %s still refuses messages: %s", self._settings.url, exc)
            return
        self._state = "refused"
        hint = ""
        if exc.ack.code == NOT_AUTHORIZED:
            hint = (f"; the broker's ACL lets each agent write only hatang/v1/agents/<its MQTT username>/#: "
                    f"check that mqtt.username (here {self._settings.username!r}) is the agent id "
                    f"{self._agent!r} and that the broker's ACL and password file know it")
        log.warning("broker %s refuses the agent's messages: %s; they stay queued and are retried with "
                    "back-off (counted in hatang_agent_publish_rejected_total)%s", self._settings.url, exc,
                    hint)

    async def _negotiate(self) -> None:
        """Protocol "auto": ask the broker once whether it speaks MQTT 5, with a bare MQTT 5 CONNECT
        (anonymous, no will). Any CONNACK in MQTT 5, a refusal of the anonymous login included, says it
        does; "unsupported protocol version" says it does not. Bare, because a broker that knows only
        3.1.1 (amqtt, the demo's) reads an MQTT 5 CONNECT as a 3.1.1 one: with a will or a username in
        it, the fields shift and it waits for bytes that never come instead of refusing the version."""
        try:
            async with self._make_client(probe=True):
                pass
        except MqttConnectError as exc:
            self._fall_back(exc)  # or refused in MQTT 5 (anonymous login): MQTT 5 it is
        self._negotiated = True

    def _fall_back(self, exc: MqttConnectError) -> bool:
        """A broker without MQTT 5 refused the connection: use 3.1.1 when the protocol is "auto"."""
        code = getattr(exc.rc, "value", exc.rc)
        if self._settings.protocol != "auto" or self._protocol != "5" or code not in UNSUPPORTED_PROTOCOL:
            return False
        self._protocol = "3.1.1"
        log.info("broker %s does not speak MQTT 5; using MQTT 3.1.1, under which the broker cannot say that "
                 "it refused a message (set mqtt.protocol to silence this)", self._settings.url)
        return True

    async def _publish(self, client: Connection, topic: str, payload: bytes, *, retain: bool = False,
                       timeout: float | None = None) -> None:
        ack = await client.publish_acked(topic, payload, retain=retain, timeout=timeout)
        if not ack.accepted:
            raise PublishRejected(topic, ack)

    async def _idle(self, client: Connection, timeout: float | None) -> None:
        """Wait for new data, the connection's end, or ``timeout``; raise if the connection ended."""
        wakeup = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait((wakeup, client.lost), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wakeup.cancel()
        if client.lost.done():
            error = None if client.lost.cancelled() else client.lost.exception()
            raise aiomqtt.MqttError(f"connection lost: {error}" if error else "connection closed")

    async def _drain(self, client: Connection) -> None:
        pacer = ReplayPacer(self._replay_rate)
        while True:
            if self._goodbye is not None:  # finishing: the offline status is the last message sent
                with contextlib.suppress(PublishRejected):
                    await self._publish(client, status_topic(self._agent), self._goodbye, retain=True,
                                        timeout=2)
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
                await self._idle(client, None)  # nothing to send until the next poll
            else:  # backlog waits for the pacer or new live data
                await self._idle(client, pacer.wait_time())

    async def _send(self, client: Connection, message: QueuedMessage, *, replay: bool) -> None:
        if message.device == SELF_CHANNEL:
            topic = self_topic(self._agent)
        elif message.device == EVENTS_CHANNEL:
            topic = events_topic(self._agent)
        else:
            topic = data_topic(self._agent, message.device, replay=replay)
        await self._publish(client, topic, message.payload)
        self._queue.ack([message.id], keep_for=self._redeliver_window)
        self._acked = self._acked or self._redeliver_window > 0
        if self._state == "refused":
            log.info("broker %s accepts the agent's messages again", self._settings.url)
            self._state = "connected"
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

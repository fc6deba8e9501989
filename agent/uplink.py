"""The agent's MQTT uplink: drains the disk queue to the broker and owns reconnects and retries.

It does not import aiomqtt: agent/mqtt_client.py is the agent's MQTT client (a connection that reports
PUBACK reason codes), and hatang/broker.py holds the broker settings, TLS and back-off that the agent
shares with the collector.

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

Reconnects use jittered exponential back-off (:class:`hatang.broker.Backoff`): 1 s doubling to
``max_backoff``, reset only after a connection stayed up ``stable_after`` seconds, so a broker that
accepts and drops at once is not hammered and an agent is never offline for more than ``max_backoff``
after the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.mqtt_client import (
    Connection,
    MqttConnectError,
    MqttConnection,
    MqttError,
    PubAck,
    make_connection,
    refuses_mqtt5,
)
from agent.queue import DiskQueue, QueuedMessage
from hatang.broker import Backoff, BrokerSettings
from wire.topics import config_topic, data_topic, events_topic, self_topic, status_topic

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
NOT_AUTHORIZED = 0x87


@dataclass(frozen=True, slots=True)
class UplinkSettings(BrokerSettings):
    """The broker settings of the agent: :class:`hatang.broker.BrokerSettings` and the MQTT version."""

    protocol: str = "auto"  # "5", "3.1.1", or "auto": 5, falling back to 3.1.1 if the broker refuses 5


class PublishRejected(Exception):
    """The broker refused a message (PUBACK reason code >= 0x80)."""

    def __init__(self, topic: str, ack: PubAck) -> None:
        super().__init__(f"{ack.name} (0x{ack.code:02X}) for a message on {topic}")
        self.topic = topic
        self.ack = ack


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
        settings: UplinkSettings,
        agent_id: str,
        queue: DiskQueue,
        *,
        birth: Callable[[], bytes],
        will: bytes | Callable[[], bytes],
        replay_rate: float = 20.0,
        redeliver_window: float = DEFAULT_REDELIVER_WINDOW,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        stable_after: float = DEFAULT_STABLE_AFTER,
        on_config: Callable[[bytes], None] | None = None,
    ) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {settings.protocol!r}")
        self._settings = settings
        self._agent = agent_id
        self._queue = queue
        self._birth = birth
        self._will = will if callable(will) else lambda: will  # made at each connection (the revision)
        self._on_config = on_config  # the agent's config topic is followed while connected
        self._config_refused = False  # the broker refused the subscription (logged once)
        self._replay_rate = replay_rate
        self._redeliver_window = redeliver_window
        self._backoff = Backoff(cap=max_backoff, stable_after=stable_after)
        self._protocol = "3.1.1" if settings.protocol == "3.1.1" else "5"
        self._negotiated = settings.protocol != "auto"
        self._wakeup = asyncio.Event()
        self._goodbye: bytes | None = None  # set by finish(): publish this last, then stop
        self._birth_due = False  # refresh_birth(): publish the birth again on the current connection
        self._finished = asyncio.Event()
        self._state = "starting"  # connected | unreachable | refused: logged when it changes
        self.state_since = time.time()  # when the state last changed (the local status page shows it)
        self.last_error: str | None = None  # why the last connection failed or ended, or a refusal
        self.last_error_ts: float | None = None
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

    def refresh_birth(self) -> None:
        """What the birth says changed (a device's profiles were chosen): publish it again, retained, on
        the current connection (a new connection publishes it anyway)."""
        self._birth_due = True
        self._wakeup.set()

    def _make_client(self, *, probe: bool = False) -> MqttConnection:
        """The connection of the agent, or (``probe``) a bare one: anonymous and without a will."""
        return make_connection(self._settings, protocol=self._protocol,
                               will=(status_topic(self._agent), self._will()), probe=probe)

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
                    self._birth_due = False
                    await self._publish(client, status_topic(self._agent), self._birth(), retain=True)
                    self.connected = True
                    self.connects += 1
                    self._backoff.up()
                    self._connected(client)
                    follow = (asyncio.ensure_future(self._follow_config(client, self._on_config))
                              if self._on_config is not None else None)
                    try:
                        await self._drain(client)
                    finally:
                        if follow is not None:
                            follow.cancel()
            except PublishRejected as exc:
                usable = False
                self._refused(exc)
            except MqttConnectError as exc:
                if self._fall_back(exc):
                    continue  # at once, with MQTT 3.1.1
                self._unreachable(exc)
            except (MqttError, ssl.SSLError, OSError) as exc:
                self._unreachable(exc)
            finally:
                if self.connected:
                    self._backoff.down(usable=usable)
                self.connected = False
            if self._acked:  # the connection ended (not the agent: that cancels run), maybe by a crash
                self._requeue()
            await asyncio.sleep(self._backoff.delay())

    async def _follow_config(self, client: Connection, on_config: Callable[[bytes], None]) -> None:
        """Hand every message of the agent's config topic to ``on_config`` while the connection lasts
        (the retained one arrives at each connection). Never raises: a lost connection ends the drain."""
        topic = config_topic(self._agent)
        try:
            async for payload in client.receive(topic):
                on_config(payload)
        except MqttError as exc:
            if not client.lost.done() and not self._config_refused:
                self._config_refused = True
                log.warning("the agent cannot follow its configuration from the centre: %s; the broker's ACL "
                            "must let user %r read %s (deploy/mosquitto/hatang.acl)", exc,
                            self._settings.username, topic)

    def _connected(self, client: Connection) -> None:
        if self._state == "refused":  # the birth went through; the episode ends when a message does
            return
        if self._state != "connected":
            session = getattr(client, "session_present", None)
            log.info("connected to broker %s (MQTT %s%s); %d message(s) queued", self._settings.url,
                     self._protocol, ", session present" if session else "", self._queue.stats().depth)
        self._set_state("connected")

    @property
    def state(self) -> str:
        """starting (no connection tried to its end yet), connected, unreachable or refused."""
        return self._state

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self._state:
            self._state, self.state_since = state, time.time()
        if error is not None:
            self.last_error, self.last_error_ts = error, time.time()

    def _unreachable(self, exc: BaseException) -> None:
        error = str(exc) or type(exc).__name__
        if self._state != "unreachable":
            log.warning("broker %s unreachable: %s; buffering on disk and retrying", self._settings.url,
                        error)
        else:
            log.debug("broker %s still unreachable: %s", self._settings.url, error)
        self._set_state("unreachable", error)

    def _refused(self, exc: PublishRejected) -> None:
        reason = exc.ack.reason
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.last_error, self.last_error_ts = str(exc), time.time()
        if self._state == "refused":
            log.debug("broker %s still refuses messages: %s", self._settings.url, exc)
            return
        self._set_state("refused")
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
        if self._settings.protocol != "auto" or self._protocol != "5" or not refuses_mqtt5(exc):
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
            raise MqttError(f"connection lost: {error}" if error else "connection closed")

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
            if self._birth_due:
                self._birth_due = False
                await self._publish(client, status_topic(self._agent), self._birth(), retain=True)
            now = time.time()
            live = self._queue.peek_live(now, DRAIN_BATCH)
            if live:
                await self._send(client, live, replay=False)
                continue
            allowed = pacer.available()
            backlog = self._queue.peek_backlog(now, min(DRAIN_BATCH, allowed)) if allowed else []
            if backlog:
                await self._send(client, backlog, replay=True)
                pacer.spend(len(backlog))
                continue
            if allowed or not self._queue.peek_backlog(now, 1):
                await self._idle(client, None)  # nothing to send until the next poll
            else:  # backlog waits for the pacer or new live data
                await self._idle(client, pacer.wait_time())

    def _topic(self, message: QueuedMessage, replay: bool) -> str:
        if message.device == SELF_CHANNEL:
            return self_topic(self._agent)
        if message.device == EVENTS_CHANNEL:
            return events_topic(self._agent)
        return data_topic(self._agent, message.device, replay=replay)

    async def _send(self, client: Connection, messages: list[QueuedMessage], *, replay: bool) -> None:
        """Publish a batch pipelined (sent in order, then the PUBACKs awaited: not one round trip per
        message). The messages before the first failure (a refusal, a lost connection) leave the queue;
        that failure is raised, and the rest stay queued in order (one the broker took after it is sent
        twice: the collector drops the duplicate by its sequence number)."""
        topics = [self._topic(m, replay) for m in messages]
        results = await asyncio.gather(*(client.publish_acked(topic, m.payload)
                                         for topic, m in zip(topics, messages, strict=True)),
                                       return_exceptions=True)
        settled = next((i for i, r in enumerate(results) if not (isinstance(r, PubAck) and r.accepted)),
                       len(results))
        accepted = [m.id for m in messages[:settled]]
        if accepted:
            self._queue.ack(accepted, keep_for=self._redeliver_window)
            self._acked = self._acked or self._redeliver_window > 0
            self.published += len(accepted)
            self.replayed += len(accepted) if replay else 0
        if settled < len(results):
            failure = results[settled]
            if isinstance(failure, BaseException):
                raise failure
            raise PublishRejected(topics[settled], failure)
        if self._state == "refused":
            log.info("broker %s accepts the agent's messages again", self._settings.url)
            self._set_state("connected")

    async def finish(self, goodbye: bytes, timeout: float = 5.0) -> None:
        """On a clean stop, after the producers stopped: publish ``goodbye`` (the offline status) as the
        last message, after the message in flight. Returns at once when not connected (the broker then
        publishes the will when it notices)."""
        self._goodbye = goodbye
        self._wakeup.set()
        if self.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), timeout)

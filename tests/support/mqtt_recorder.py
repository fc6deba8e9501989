"""A paho MQTT client for tests, on its own network thread, recording what the broker answered (CONNACK,
SUBACK and PUBACK reason codes) and the messages delivered to it. Used where a test must see exactly what
a broker lets through (tests/integration/test_broker_acl.py, tests/e2e/test_remote_config.py)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.services import Mosquitto
from tests.support.waiting import wait_until

TIMEOUT = 10.0


class Client:
    """A paho MQTT client (v5 unless told otherwise) on its own network thread, recording what the broker
    answered: CONNACK, SUBACK and PUBACK reason codes, and the messages delivered to it."""

    def __init__(self, broker: Mosquitto, username: str | None, password: str | None = None, *,
                 protocol: MQTTProtocolVersion = mqtt.MQTTv5, client_id: str | None = None) -> None:
        self.broker = broker
        self.username = username
        self.protocol = protocol
        client_id = client_id or f"test-{username}-{uuid.uuid4().hex[:8]}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._lock = threading.Lock()
        self._threaded = False
        self.connack: int | None = None
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self._messages: list[tuple[str, bytes]] = []
        self.disconnects: list[int] = []  # reason codes of disconnections the broker caused
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # paho callbacks (network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        with self._lock:
            self.connack = reason.value

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        with self._lock:
            self.disconnects.append(reason.value)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        with self._lock:
            self.acks[mid] = reason.value

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode],
                      props: Any) -> None:
        with self._lock:
            self.subacks[mid] = [r.value for r in reasons]

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, bytes(message.payload)))

    # test side
    def connect(self, *, threaded: bool = True, persistent: bool = False) -> int:
        """Connect and return the CONNACK reason code (0 on success; paho maps 3.1.1 codes to v5 ones).
        ``threaded`` False pumps the network loop here instead, so that a refused client does not sit in
        paho's reconnect backoff. ``persistent``: an MQTT 5 session kept for 5 minutes (no clean start),
        else a clean start."""
        if persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 300
            self._client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=False,
                                 properties=properties)
        else:
            self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        if threaded:
            self._client.loop_start()
            self._threaded = True

        def connack() -> tuple[int] | None:
            if not threaded:
                self._client.loop(timeout=0.05)
            return (self.connack,) if self.connack is not None else None

        return wait_until(connack, TIMEOUT, interval=0.01, message=f"CONNACK for {self.username}")[0]

    def close(self) -> None:
        self._client.disconnect()
        if self._threaded:
            self._client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        _, mid = self._client.subscribe(topic, qos=qos)
        assert mid is not None
        return wait_until(lambda: self.subacks.get(mid), TIMEOUT, message=f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> int:
        """Publish and return the PUBACK reason code (QoS 1; always 0 under MQTT 3.1.1). With QoS 0 there
        is no PUBACK: paho reports 0 once the packet is written."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        mid = info.mid
        return wait_until(lambda: (self.acks[mid],) if mid in self.acks else None, TIMEOUT,
                          message=f"PUBACK for {topic}")[0]

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, topic: str, payload: bytes) -> None:
        wait_until(lambda: (topic, payload) in self.messages(), TIMEOUT,
                   message=f"{self.username} to receive {payload!r} on {topic}")

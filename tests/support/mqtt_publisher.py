"""A test-side MQTT publisher: paho on its own network thread, MQTT 5, QoS 1."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.services import Mosquitto
from tests.support.waiting import wait_until


class Publisher:
    """Publishes with QoS 1; :meth:`publish` waits for every PUBACK, so nothing is silently lost."""

    def __init__(self, broker: Mosquitto, name: str, *, inflight: int = 100) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port, keepalive=60)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, message=f"{name} to connect")

    def publish(self, messages: list[tuple[str, bytes]], timeout: float = 30) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), f"no PUBACK within {timeout}s (rc {info.rc})"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

"""Subscriber.settle against a real Mosquitto: the broker answers (so it has read the PUBACKs sent before),
and the persistent session keeps its subscriptions (a collector that stops still gets what arrived
meanwhile after its restart). The race it closes (a PUBACK lost to a reset when the socket closes with
unread data) is exercised by tests/e2e/test_scale_out.py's SIGTERM case."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from collector.subscriber import Subscriber, SubscriberSettings
from tests.support.services import Mosquitto
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


async def test_settle_gets_the_brokers_answer_and_keeps_the_session(mosquitto: Mosquitto) -> None:
    received: list[str] = []
    settings = SubscriberSettings(url=mosquitto.url, client_id="settle-test", session_expiry=3600,
                                  manual_ack=True)
    subscriber = Subscriber(settings, lambda topic, payload, retained: received.append(topic),
                            lambda up: None)
    assert await subscriber.settle(1.0) is False  # not connected: nothing to confirm
    task = asyncio.create_task(subscriber.run())
    try:
        await async_wait_until(lambda: subscriber.connected, 10.0, message="subscriber connected")
        assert await subscriber.settle(5.0) is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # the session still holds the subscription: a message published while the subscriber is away is kept
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="settle-publisher") as publisher:
        await publisher.publish("hatang/v1/agents/xa-a/data/sw", b"{}", qos=1)
    task = asyncio.create_task(subscriber.run())
    try:
        await async_wait_until(lambda: received == ["hatang/v1/agents/xa-a/data/sw"], 10.0,
                               message="the message kept for the session")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The collector's subscriber over TLS against a real Mosquitto that requires a client certificate
(mutual TLS, the username taken from the certificate's CN): the shared TLS helper (hatang/broker.py)
gives the collector the agent's client-certificate support."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import trustme

from collector.subscriber import Subscriber, SubscriberSettings
from tests.support.services import Mosquitto, free_tcp_port, start_mosquitto
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

STATUS_TOPIC = "hatang/v1/agents/xa-a/status"


@pytest.fixture
def mutual_tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, dict[str, Path]]]:
    """A plain listener (for the test's publisher) and a TLS listener that requires a client certificate."""
    ca = trustme.CA()
    files = {name: tmp_path / name for name in ("ca.pem", "server.pem", "server.key", "collector.pem",
                                                "collector.key")}
    ca.cert_pem.write_to_path(str(files["ca.pem"]))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(files["server.pem"]))
    server.private_key_pem.write_to_path(str(files["server.key"]))
    client = ca.issue_cert("collector.hatang", common_name="collector.hatang")
    client.cert_chain_pems[0].write_to_path(str(files["collector.pem"]))
    client.private_key_pem.write_to_path(str(files["collector.key"]))
    tls_port = free_tcp_port()
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=(
        "per_listener_settings true\nallow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\nallow_anonymous true\ncafile {files['ca.pem']}\n"
        f"certfile {files['server.pem']}\nkeyfile {files['server.key']}\n"
        "require_certificate true\nuse_identity_as_username true\n"))
    try:
        yield broker, tls_port, files
    finally:
        broker.stop()


async def test_the_subscriber_logs_in_with_its_client_certificate(
    mutual_tls_broker: tuple[Mosquitto, int, dict[str, Path]]
) -> None:
    broker, tls_port, files = mutual_tls_broker
    received: list[tuple[str, bytes, bool]] = []
    subscriber = Subscriber(
        SubscriberSettings(f"mqtts://127.0.0.1:{tls_port}", "collector-tls-test",
                           ca_file=str(files["ca.pem"]), cert_file=str(files["collector.pem"]),
                           key_file=str(files["collector.key"]), session_expiry=0),
        lambda topic, payload, retained: received.append((topic, payload, retained)),
        lambda connected: None,
    )
    task = asyncio.create_task(subscriber.run(), name="subscriber")
    try:
        await async_wait_until(lambda: subscriber.connected, 20, message="the subscriber to connect")
        async with aiomqtt.Client(broker.host, broker.port, identifier="publisher") as publisher:
            await publisher.publish(STATUS_TOPIC, b'{"online": true}', qos=1)
        await async_wait_until(lambda: received, 20, message="the message to arrive")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert received == [(STATUS_TOPIC, b'{"online": true}', False)]
    assert "u'collector.hatang'" in broker.log()  # the username came from the certificate


async def test_without_a_client_certificate_the_broker_refuses_the_subscriber(
    mutual_tls_broker: tuple[Mosquitto, int, dict[str, Path]]
) -> None:
    _, tls_port, files = mutual_tls_broker
    subscriber = Subscriber(
        SubscriberSettings(f"mqtts://127.0.0.1:{tls_port}", "collector-tls-test",
                           ca_file=str(files["ca.pem"]), session_expiry=0),
        lambda topic, payload, retained: None,
        lambda connected: None,
        max_backoff=0.2,
    )
    task = asyncio.create_task(subscriber.run(), name="subscriber")
    try:
        await asyncio.sleep(2)
        assert not subscriber.connected
        assert not task.done()  # it keeps trying
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The agent's MQTT connection runs paho's housekeeping at the keep-alive deadlines, not every second
(agent/mqtt_client.py, issue #19 goal 5): an idle connection still pings a real Mosquitto in time to stay
up, and a broker that stops answering is still noticed within two keep-alive periods."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from agent.mqtt_client import MqttConnection, make_connection
from hatang.broker import BrokerSettings
from tests.support.services import Mosquitto, start_mosquitto
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

KEEPALIVE = 4  # seconds; Mosquitto drops a client silent for 1.5 keep-alive periods (6 s)


def _connection(url: str) -> MqttConnection:
    settings = BrokerSettings(url=url, client_id="keepalive-test", keepalive=KEEPALIVE)
    return make_connection(settings, protocol="3.1.1", will=None)


def _count_housekeeping(client: MqttConnection) -> dict[str, int]:
    """Counts paho's loop_misc calls and the PINGREQs it sends."""
    counts = {"misc": 0, "pings": 0}
    paho = client._client
    loop_misc, send_pingreq = paho.loop_misc, paho._send_pingreq

    def counted_loop_misc() -> object:
        counts["misc"] += 1
        return loop_misc()

    def counted_send_pingreq() -> object:
        counts["pings"] += 1
        return send_pingreq()

    paho.loop_misc = counted_loop_misc  # type: ignore[method-assign, assignment]
    paho._send_pingreq = counted_send_pingreq  # type: ignore[method-assign, assignment]
    return counts


async def test_an_idle_connection_pings_at_the_deadlines_and_stays_up(mosquitto: Mosquitto) -> None:
    client = _connection(mosquitto.url)
    counts = _count_housekeeping(client)
    async with client:
        # three pings answered take three keep-alive periods (12 s): twice Mosquitto's 6 s limit
        await async_wait_until(lambda: counts["pings"] >= 3 and client._client._ping_t == 0,
                               4 * KEEPALIVE, message="three PINGREQs sent and answered")
        assert not client.lost.done(), "the broker dropped an idle connection: no PINGREQ in time"
        # once a second (aiomqtt's cadence) would be about 12 calls; at the deadlines about one per ping
        assert counts["misc"] <= 2 * counts["pings"] + 2, counts
        ack = await client.publish_acked("hatang/v1/test/keepalive", b"still here")
        assert ack.accepted


async def _silent_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers CONNECT with CONNACK (MQTT 3.1.1, accepted), then reads and never answers."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.read(1024)
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        while await reader.read(1024):
            pass
    writer.close()


async def test_a_broker_that_stops_answering_is_noticed_within_two_keepalive_periods() -> None:
    server = await asyncio.start_server(_silent_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = _connection(f"mqtt://127.0.0.1:{port}")
        counts = _count_housekeeping(client)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            async with client:
                started = loop.time()
                await async_wait_until(lambda: client.lost.done(), 2 * KEEPALIVE + 3,
                                       message="the silent broker noticed")
                elapsed = loop.time() - started
        assert counts["pings"] == 1, counts
        assert KEEPALIVE <= elapsed <= 2 * KEEPALIVE + 1.5, elapsed
    finally:
        server.close()
        await server.wait_closed()


async def test_a_keepalive_shortened_by_the_broker_in_connack_is_kept(tmp_path: Path) -> None:
    """MQTT 5: a broker with a lower ``max_keepalive`` tells the client its keep-alive in CONNACK (Server
    Keep Alive); the housekeeping pings at that one, not at the one the client asked for."""
    server_keepalive = 10  # Mosquitto's smallest max_keepalive
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config=f"max_keepalive {server_keepalive}\n")
    try:
        settings = BrokerSettings(url=broker.url, client_id="keepalive-test", keepalive=60)
        client = make_connection(settings, protocol="5", will=None)
        counts = _count_housekeeping(client)
        async with client:
            assert client._client.keepalive == server_keepalive
            await async_wait_until(lambda: counts["pings"] >= 1 and client._client._ping_t == 0,
                                   server_keepalive + 3, message="a PINGREQ at the broker's keep-alive")
            assert not client.lost.done()
    finally:
        broker.stop()

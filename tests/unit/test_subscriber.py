"""The collector's subscriber without a broker: its reconnect back-off (hatang.broker.Backoff with the
collector's settings: 1 s doubling to 10 s, back to 1 s once a connection subscribed), its count of
received messages not yet handled, and its settings (a client certificate among them) from the config."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

import collector.subscriber as subscriber_module
from collector import config as collector_config
from collector.service import CollectorService
from collector.subscriber import Subscriber, SubscriberSettings
from hatang.broker import BrokerSettings
from hatang.configfile import ConfigError


class _Stop(Exception):
    """No more connection attempts scripted: ends the run."""


class FakeClient:
    """Connects (``ok``) and subscribes, then loses the connection at once; or refuses to connect."""

    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self._client = types.SimpleNamespace(ack=lambda mid, qos: None)  # paho's, for the PUBACK queue
        self.messages = self

    async def __aenter__(self) -> FakeClient:
        if not self.ok:
            raise aiomqtt.MqttError("[code:134] Bad user name or password")
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __aiter__(self) -> FakeClient:
        return self

    async def __anext__(self) -> Any:
        raise aiomqtt.MqttError("[code:7] The connection was lost.")


async def _waits(monkeypatch: pytest.MonkeyPatch, attempts: list[bool]) -> tuple[list[float], list[bool]]:
    """Run a subscriber through ``attempts`` (True: connects and subscribes, then the connection drops);
    return the waits between them and what ``on_connection`` was told."""
    waits: list[float] = []
    script = iter(attempts)

    async def sleep(delay: float) -> None:
        waits.append(delay)

    def client() -> FakeClient:
        try:
            return FakeClient(next(script))
        except StopIteration:
            raise _Stop from None

    fake_asyncio = types.SimpleNamespace(**{n: getattr(asyncio, n) for n in dir(asyncio)
                                            if not n.startswith("__")})
    fake_asyncio.sleep = sleep
    monkeypatch.setattr(subscriber_module, "asyncio", fake_asyncio)
    states: list[bool] = []
    subscriber = Subscriber(SubscriberSettings("mqtt://127.0.0.1:1", "c"), lambda *a: None, states.append)
    monkeypatch.setattr(subscriber, "_client", client)
    with pytest.raises(_Stop):
        await subscriber.run()
    return waits, states


async def test_the_waits_double_up_to_10_s_and_start_again_at_1_s_after_a_connection(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = [False] * 6 + [True] + [False] * 2
    waits, states = await _waits(monkeypatch, attempts)
    steps = [1, 2, 4, 8, 10, 10, 1, 2, 4]
    assert len(waits) == len(steps)
    assert all(step / 2 <= wait <= step for wait, step in zip(waits, steps, strict=True)), waits
    assert states == [True, False]


async def test_pending_counts_the_received_messages_not_yet_handled() -> None:
    subscriber = Subscriber(SubscriberSettings("mqtt://127.0.0.1:1", "c"), lambda *a: None, lambda c: None)
    assert subscriber.pending() == 0  # never connected
    client = aiomqtt.Client("127.0.0.1", 1)
    subscriber._current = client
    assert subscriber.pending() == 0
    for mid in range(1, 4):  # what aiomqtt does with each incoming message
        client._queue.put_nowait(aiomqtt.Message("hatang/v1/agents/xa-a/status", b"{}", 1, False, mid, None))
    assert subscriber.pending() == 3


def test_the_collector_settings_extend_the_shared_ones_with_a_persistent_mqtt_5_session() -> None:
    settings = SubscriberSettings("mqtts://broker.example", "hatang-collector", cert_file="c.crt",
                                  key_file="c.key")
    assert isinstance(settings, BrokerSettings)
    assert settings.address == ("broker.example", 8883, True)
    assert (settings.protocol, settings.session_expiry, settings.shared_group, settings.manual_ack,
            settings.receive_maximum) == ("5", 86400, None, False, None)


def test_the_mqtt_config_reaches_the_subscriber_with_a_client_certificate(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text("mqtt: {url: 'mqtts://broker.example', client_id: c1, username: collector,\n"
                    "       password: pw, ca_file: ca.pem, cert_file: tls/collector.crt,\n"
                    "       key_file: tls/collector.key, keepalive: 45, session_expiry: 600}\n",
                    encoding="utf-8")
    service = CollectorService(collector_config.load(path), path)
    base = tmp_path.resolve()
    assert service.subscriber._settings == SubscriberSettings(
        url="mqtts://broker.example", client_id="c1", username="collector", password="pw",
        ca_file=str(base / "ca.pem"), cert_file=str(base / "tls/collector.crt"),
        key_file=str(base / "tls/collector.key"), keepalive=45, session_expiry=600, protocol="5",
        shared_group=None, manual_ack=False, receive_maximum=None)


@pytest.mark.parametrize(("mqtt", "problem"), [
    ("{url: 'mqtts://b', cert_file: c.crt}", "cert_file and key_file together"),
    ("{url: 'mqtts://b', key_file: c.key}", "cert_file and key_file together"),
    ("{url: 'mqtt://b', cert_file: c.crt, key_file: c.key}", "needs an mqtts:// url"),
])
def test_a_client_certificate_needs_its_key_and_tls(tmp_path: Path, mqtt: str, problem: str) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(f"mqtt: {mqtt}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        collector_config.load(path)
    assert any(problem in message for _, message in caught.value.problems), caught.value.problems

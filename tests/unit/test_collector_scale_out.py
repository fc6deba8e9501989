"""Shared groups and acknowledge-after-write (no sockets): config checks, topic filters, the PUBACK
queue, receipts through the remote-write queues, and the collector's message handler."""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path

import pytest

from collector import config as collector_config
from collector.remote_write import EndpointQueue, Receipt, RemoteWriter, Series, encode_write_request
from collector.service import CollectorService
from collector.subscriber import AckQueue, Completion, subscriptions
from hatang.configfile import ConfigError
from wire.codec import encode_batch, encode_status
from wire.messages import AgentStatus, Family, PollBatch, Sample
from wire.topics import data_topic, parse_topic, status_topic


def _load(tmp_path: Path, text: str) -> collector_config.CollectorConfig:
    path = tmp_path / "collector.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return collector_config.load(path)


def _problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value.problems


# --- config ---------------------------------------------------------------------------------------


def test_shared_group_config_loads(tmp_path: Path) -> None:
    config = _load(tmp_path, """\
        mqtt: {url: "mqtt://127.0.0.1:1883", client_id: hatang-collector-1, shared_group: hatang}
        mode: push
        remote_write: [{url: "http://127.0.0.1:8428/api/v1/write"}]
        """)
    assert config.mqtt.shared_group == "hatang"
    assert config.mqtt.receive_maximum == 200
    assert _load(tmp_path, "mqtt: {url: 'mqtt://h'}\n").mqtt.shared_group is None


def test_example_group_member_config_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    config = collector_config.load(root / "deploy/examples/collector-group.yaml")
    assert config.mqtt.shared_group == "hatang" and config.mode == "push"
    assert config.mqtt.client_id != collector_config.DEFAULT_CLIENT_ID


PUSH = "mode: push\nremote_write: [{url: 'http://127.0.0.1:8428/api/v1/write'}]\n"


def test_shared_group_needs_push_mode(tmp_path: Path) -> None:
    [(key, message)] = _problems(tmp_path, "mqtt: {url: 'mqtt://h', client_id: c1, shared_group: g}\n")
    assert key == "" and message.startswith("mqtt.shared_group: ") and "mode: push" in message


def test_shared_group_needs_mqtt_5(tmp_path: Path) -> None:
    mqtt = 'mqtt: {url: "mqtt://h", client_id: c1, shared_group: hatang, protocol: "3.1.1"}\n'
    problems = _problems(tmp_path, mqtt + PUSH)
    assert len(problems) == 1
    key, message = problems[0]
    assert key == "mqtt.shared_group"
    assert "MQTT 5" in message and 'protocol: "3.1.1"' in message


def test_shared_group_needs_an_own_client_id(tmp_path: Path) -> None:
    [(key, message)] = _problems(tmp_path, "mqtt: {url: 'mqtt://h', shared_group: hatang}\n" + PUSH)
    assert key == "mqtt.shared_group"
    assert "mqtt.client_id" in message and "hatang-collector-1" in message


@pytest.mark.parametrize("group", ["a/b", "a+", "#", "", "x" * 65])
def test_shared_group_name_is_one_topic_level(tmp_path: Path, group: str) -> None:
    [(key, _)] = _problems(tmp_path, f"mqtt: {{url: 'mqtt://h', client_id: c1, shared_group: '{group}'}}\n"
                                     + PUSH)
    assert key == "mqtt.shared_group"


# --- topic filters --------------------------------------------------------------------------------


def _matches(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return len(t) >= i
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def test_without_a_group_one_filter_for_everything() -> None:
    assert subscriptions(None) == ["hatang/v1/agents/#"]


def test_group_shares_every_kind_but_status() -> None:
    filters = subscriptions("g")
    assert filters[0] == "hatang/v1/agents/+/status"
    assert all(f.startswith("$share/g/hatang/v1/agents/+/") for f in filters[1:])
    topics = [status_topic("a"), data_topic("a", "sw"), data_topic("a", "sw", replay=True),
              "hatang/v1/agents/a/events", "hatang/v1/agents/a/self"]
    for topic in topics:
        parse_topic(topic)  # all valid contract topics
        matching = [f for f in filters if _matches(f, topic)]
        assert len(matching) == 1, (topic, matching)  # delivered once per member, never twice
        assert matching[0].startswith("$share/") == (topic != status_topic("a"))


# --- PUBACK order ---------------------------------------------------------------------------------


def test_acks_go_out_in_arrival_order() -> None:
    sent: list[int] = []
    acks = AckQueue(lambda mid, qos: sent.append(mid))
    first, second, third = acks.track(1, 1), acks.track(2, 1), acks.track(3, 1)
    second()
    third()
    assert sent == [] and len(acks) == 3  # message 1 is not handled yet
    first()
    assert sent == [1, 2, 3] and len(acks) == 0
    first()  # idempotent
    assert sent == [1, 2, 3]


def test_qos0_needs_no_ack_and_closed_connection_sends_nothing() -> None:
    sent: list[int] = []
    acks = AckQueue(lambda mid, qos: sent.append(mid))
    acks.track(7, 0)()
    pending = acks.track(8, 1)
    acks.close()  # the connection ended: the broker will send message 8 again
    pending()
    assert sent == []


# --- receipts through the remote-write queues ------------------------------------------------------


def _series(n: int, samples: int = 1) -> list[Series]:
    return [Series((("__name__", "m"), ("i", str(i))), tuple((1.0, t) for t in range(samples)))
            for i in range(n)]


def test_receipt_completes_when_every_endpoint_is_done() -> None:
    done: list[str] = []
    writer = RemoteWriter(["http://a", "http://b"], post=None)  # type: ignore[arg-type]
    receipt = Receipt()
    writer.submit(_series(3), receipt)
    receipt.seal()
    receipt.then(lambda: done.append("acked"))
    a, b = writer.queues
    batch = a.take()
    a.finish(batch)
    assert done == []  # endpoint b still has them
    b.finish(b.take())
    assert done == ["acked"]


def test_receipt_waits_for_the_last_batch_of_its_message() -> None:
    queue = EndpointQueue("http://a", max_samples=10_000, batch_samples=2)
    done: list[int] = []
    receipt = Receipt()
    queue.put(_series(5), receipt)
    receipt.seal()
    receipt.then(lambda: done.append(1))
    first = queue.take()
    assert len(first) == 2
    queue.put_back(first)  # the store was down: retried later, nothing completes
    queue.finish(queue.take())
    queue.finish(queue.take())
    assert done == []
    queue.finish(queue.take())
    assert done == [1] and not queue.items


def test_dropped_samples_release_their_receipt() -> None:
    queue = EndpointQueue("http://a", max_samples=3, batch_samples=10)
    done: list[int] = []
    old = Receipt()
    queue.put(_series(2), old)
    old.seal()
    old.then(lambda: done.append(1))
    queue.put(_series(2))  # over max_samples: the oldest are dropped (and counted)
    assert queue.dropped == 1 and done == []
    queue.put(_series(1))
    assert queue.dropped == 2 and done == [1]


def test_empty_receipt_is_done_at_once() -> None:
    receipt = Receipt()
    receipt.seal()
    calls: list[int] = []
    receipt.then(lambda: calls.append(1))
    assert receipt.done and calls == [1]


# --- the collector's handler (push mode) ----------------------------------------------------------


def _poll(seq: int) -> bytes:
    return encode_batch(PollBatch(
        agent="xa-a", boot_id="b" * 32, seq=seq, ts=1_795_550_709.0 + seq, device="sw", interval=60.0,
        up=True, duration=0.1, site=(("province", "P"),),
        families=(Family("hatang_device_uptime_seconds", "gauge", "Up.", (Sample((), 1.0 + seq),)),),
    ))


@pytest.fixture
def push_service(tmp_path: Path) -> CollectorService:
    path = tmp_path / "collector.yaml"
    path.write_text(
        "mqtt: {url: 'mqtt://127.0.0.1:1', client_id: c1, shared_group: g}\n"
        "mode: push\nremote_write: [{url: 'http://127.0.0.1:1/api/v1/write'}]\n", encoding="utf-8")
    return CollectorService(collector_config.load(path), path)


def _handle(service: CollectorService, topic: str, payload: bytes, acked: list[str], name: str) -> None:
    """What the subscriber does with manual_ack: acknowledge at once, or when the completion completes."""
    result = service._on_message(topic, payload)
    if isinstance(result, Completion):
        result.then(lambda: acked.append(name))
    else:
        acked.append(name)


def test_push_mode_acks_after_the_samples_are_written(push_service: CollectorService) -> None:
    acked: list[str] = []
    topic = data_topic("xa-a", "sw")
    _handle(push_service, topic, _poll(1), acked, "1")
    status = encode_status(AgentStatus(agent="xa-a", boot_id="b" * 32, online=True, ts=1_795_550_700.0))
    _handle(push_service, status_topic("xa-a"), status, acked, "status")
    _handle(push_service, topic, b"not json", acked, "bad")
    assert acked == ["status", "bad"]  # nothing to write: handled at once (the PUBACK order is the
    # AckQueue's business); the poll waits for the store
    assert push_service.remote_writer is not None
    queue = push_service.remote_writer.queues[0]
    queue.finish(queue.take())
    assert acked == ["status", "bad", "1"]


def test_a_redelivered_copy_is_acked_only_with_the_first(push_service: CollectorService) -> None:
    acked: list[str] = []
    topic, payload = data_topic("xa-a", "sw"), _poll(1)
    _handle(push_service, topic, payload, acked, "first")
    # The connection dropped before the PUBACK; the broker sends the message again. For the store it is
    # a duplicate (nothing to write), but its samples are not in the store yet.
    _handle(push_service, topic, payload, acked, "again")
    assert acked == []
    assert push_service.remote_writer is not None
    queue = push_service.remote_writer.queues[0]
    queue.finish(queue.take())
    assert acked == ["first", "again"]
    _handle(push_service, topic, payload, acked, "late copy")  # already written: handled at once
    assert acked == ["first", "again", "late copy"]
    assert not push_service._writing


# --- remote-write encoding ------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, bytes | int]]:
    """(field number, bytes or fixed64 as int) of one protobuf message: only wire types 0, 1, 2."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, pos = _read_varint(data, pos)
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire_type == 1:
            out.append((number, int.from_bytes(data[pos:pos + 8], "little")))
            pos += 8
        else:
            assert wire_type == 0
            value, pos = _read_varint(data, pos)
            out.append((number, value))
    return out


def _decode_write_request(data: bytes) -> list[tuple[list[tuple[str, str]], list[tuple[float, int]]]]:
    out = []
    for number, ts_bytes in _fields(data):
        assert number == 1 and isinstance(ts_bytes, bytes)
        labels, samples = [], []
        for field, payload in _fields(ts_bytes):
            assert isinstance(payload, bytes)
            if field == 1:
                pair = dict(_fields(payload))
                name, value = pair.get(1, b""), pair.get(2, b"")
                assert isinstance(name, bytes) and isinstance(value, bytes)
                labels.append((name.decode(), value.decode()))
            else:
                parts = dict(_fields(payload))
                raw, stamp = parts[1], parts.get(2, 0)
                assert isinstance(raw, int) and isinstance(stamp, int)
                value_f = struct.unpack("<d", raw.to_bytes(8, "little"))[0]
                samples.append((value_f, stamp - (1 << 64) if stamp >= 1 << 63 else stamp))
        out.append((labels, samples))
    return out


def test_write_request_round_trips() -> None:
    series = [
        Series((("device", "sw"), ("__name__", "m"), ("if_alias", "Đường truyền " * 20), ("empty", ""),
                ("agent", "xa-a")), ((1.5, 1_795_550_709_450), (2.0**64 - 1, 1_795_550_769_450))),
        Series((("__name__", "n"),), ((-0.0, 0), (1e300, 127), (3.0, 128), (4.0, -5))),
    ]
    decoded = _decode_write_request(encode_write_request(series))
    assert decoded == [(sorted(s.labels), list(s.samples)) for s in series]

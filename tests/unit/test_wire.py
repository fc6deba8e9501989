"""Tests of the wire contract: topics, message models and the JSON codec."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wire import (
    WIRE_VERSION,
    AgentStatus,
    DecodeError,
    Family,
    Limits,
    PollBatch,
    ProfileError,
    Sample,
    Topic,
    TopicError,
    TopicKind,
    decode_batch,
    decode_status,
    encode_batch,
    encode_status,
    parse_topic,
)
from wire.codec import RESERVED_LABELS
from wire.topics import data_topic, events_topic, status_topic, subscription

COUNTER64_MAX = 2**64 - 1
ALIAS_VI = "Đường truyền số liệu chuyên dùng"
SITE_VI = (("commune", "Đại Đình"), ("district", "Tam Đảo"), ("province", "Vĩnh Phúc"))


def make_batch(**overrides: Any) -> PollBatch:
    fields: dict[str, Any] = {
        "agent": "xa-dai-dinh",
        "boot_id": "6ebf76ee001e404198571c9db1f3b7b6",
        "seq": 42,
        "ts": 1795550709.45,
        "device": "core-switch",
        "interval": 60.0,
        "up": True,
        "duration": 0.048,
        "site": SITE_VI,
        "errors": (ProfileError("interfaces", "no response (timeout)"),),
        "families": (
            Family("hatang_device_uptime_seconds", "gauge", "Seconds since the SNMP agent started.",
                   (Sample((), 1234.56),)),
            Family(
                "hatang_interface_in_bytes_total",
                "counter",
                "Bytes received on the interface.",
                (
                    Sample((("if_alias", ALIAS_VI), ("if_descr", "GigabitEthernet0/1"), ("if_index", "1"),
                            ("if_name", "Gi0/1")), COUNTER64_MAX),
                    Sample((("if_alias", ""), ("if_descr", "Vlan1"), ("if_index", "2"), ("if_name", "Vl1")),
                           0),
                ),
            ),
        ),
    }
    fields.update(overrides)
    return PollBatch(**fields)


def batch_doc(**overrides: Any) -> dict[str, Any]:
    """A valid poll payload as a JSON document; overrides replace top-level fields."""
    doc: dict[str, Any] = json.loads(encode_batch(make_batch(), compact=False))
    doc.update(overrides)
    return doc


def status_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_status(AgentStatus("xa-dai-dinh", "boot-1", True, 1795550700.0)))
    doc.update(overrides)
    return doc


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def with_sample(labels: dict[str, str], value: Any = 1, *, name: str = "hatang_test") -> dict[str, Any]:
    return batch_doc(metrics=[{"name": name, "type": "gauge", "help": "",
                               "samples": [{"labels": labels, "value": value}]}])


DEFAULT_LIMITS = Limits()


def reason_of(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(DecodeError) as info:
        decode_batch(payload, limits)
    return info.value.reason


# --- topics ---------------------------------------------------------------------------------------


def test_topic_builders_follow_the_documented_scheme() -> None:
    assert status_topic("xa-dai-dinh") == "hatang/v1/agents/xa-dai-dinh/status"
    assert events_topic("xa-dai-dinh") == "hatang/v1/agents/xa-dai-dinh/events"
    assert data_topic("xa-dai-dinh", "core-switch") == "hatang/v1/agents/xa-dai-dinh/data/core-switch"
    assert data_topic("xa", "ups.1", replay=True) == "hatang/v1/agents/xa/replay/ups.1"
    assert subscription() == "hatang/v1/agents/#"


@pytest.mark.parametrize(
    "topic",
    [
        Topic(TopicKind.STATUS, "xa-dai-dinh"),
        Topic(TopicKind.EVENTS, "xa_2"),
        Topic(TopicKind.DATA, "xa-dai-dinh", "core-switch"),
        Topic(TopicKind.REPLAY, "0", "Router_1.lan"),
        Topic(TopicKind.DATA, "a" * 63, "D" * 63),
    ],
)
def test_topic_string_parses_back_to_the_same_topic(topic: Topic) -> None:
    assert parse_topic(str(topic)) == topic


def test_built_topics_parse_to_their_parts() -> None:
    assert parse_topic(data_topic("xa", "sw1")) == Topic(TopicKind.DATA, "xa", "sw1")
    assert parse_topic(data_topic("xa", "sw1", replay=True)) == Topic(TopicKind.REPLAY, "xa", "sw1")
    assert parse_topic(status_topic("xa")) == Topic(TopicKind.STATUS, "xa")
    assert parse_topic(events_topic("xa")) == Topic(TopicKind.EVENTS, "xa")


@pytest.mark.parametrize(
    "topic",
    [
        "hatang/v1/agents/XA/status",  # upper case agent id
        "hatang/v1/agents/-xa/status",  # must start with a letter or digit
        "hatang/v1/agents/_xa/status",
        "hatang/v1/agents/xã/status",  # non-ASCII
        "hatang/v1/agents/xa.b/status",  # dots are for device names only
        "hatang/v1/agents/" + "a" * 64 + "/status",  # too long
        "hatang/v1/agents//status",  # empty
        "hatang/v1/agents/+/status",  # wildcards
        "hatang/v1/agents/#",
        "hatang/v1/agents/xa/data/+",
        "hatang/v1/agents/xa/data/#",
        "hatang/v1/agents/xa/+",
        "hatang/v1/agents/xa/status/extra",  # extra levels
        "hatang/v1/agents/xa/status/",
        "hatang/v1/agents/xa/events/sw1",
        "hatang/v1/agents/xa/data/sw1/extra",
        "hatang/v1/agents/xa/data",  # missing device
        "hatang/v1/agents/xa/data/",
        "hatang/v1/agents/xa/replay/-sw1",  # bad device name
        "hatang/v1/agents/xa/data/sw 1",
        "hatang/v1/agents/xa/data/" + "d" * 64,
        "hatang/v1/agents/xa/metrics/sw1",  # unknown kinds
        "hatang/v1/agents/xa/STATUS",
        "hatang/v1/agents/xa",
        "hatang/v2/agents/xa/status",  # wrong version prefix
        "hatang/v0/agents/xa/status",
        "hatang/agents/xa/status",
        "/hatang/v1/agents/xa/status",
        "hatang/v1/agent/xa/status",
        "",
    ],
)
def test_parse_topic_rejects_topics_outside_the_contract(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_topic_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown topic kind"):
        parse_topic("hatang/v1/agents/xa/metrics")


# --- encode / decode round trips ------------------------------------------------------------------


def test_batch_round_trip_is_identity() -> None:
    batch = make_batch()
    assert decode_batch(encode_batch(batch)) == batch


def test_vietnamese_labels_travel_as_raw_utf8() -> None:
    payload = encode_batch(make_batch())
    assert ALIAS_VI.encode("utf-8") in payload
    assert "Vĩnh Phúc".encode() in payload
    decoded = decode_batch(payload)
    assert dict(decoded.site) == {"commune": "Đại Đình", "district": "Tam Đảo", "province": "Vĩnh Phúc"}
    assert dict(decoded.families[1].samples[0].labels)["if_alias"] == ALIAS_VI


def test_counter64_max_survives_round_trip_exactly() -> None:
    payload = encode_batch(make_batch())
    assert b"18446744073709551615" in payload
    value = decode_batch(payload).families[1].samples[0].value
    assert isinstance(value, int)
    assert value == COUNTER64_MAX


def test_decoded_labels_are_sorted_tuples() -> None:
    doc = with_sample({"z": "1", "a": "2", "m": "3"})
    labels = decode_batch(dumps(doc)).families[0].samples[0].labels
    assert labels == (("a", "2"), ("m", "3"), ("z", "1"))


def test_empty_batch_of_a_down_device_round_trips() -> None:
    batch = make_batch(up=False, errors=(ProfileError("*", "poll deadline of 54s exceeded"),), families=(),
                       site=())
    assert decode_batch(encode_batch(batch)) == batch


def test_status_round_trip_is_identity() -> None:
    status = AgentStatus("xa-dai-dinh", "6ebf76ee", False, 1795550700.5, "0.1.0", SITE_VI,
                         ("core-switch", "ups"))
    payload = encode_status(status)
    assert "Đại Đình".encode() in payload
    assert decode_status(payload) == status


def test_status_decoder_refuses_a_poll_payload_and_vice_versa() -> None:
    with pytest.raises(DecodeError) as info:
        decode_status(encode_batch(make_batch()))
    assert info.value.reason == "schema"
    with pytest.raises(DecodeError) as info:
        decode_batch(encode_status(AgentStatus("xa", "b", True, 1.0)))
    assert info.value.reason == "schema"


def test_encoded_payload_carries_version_and_type() -> None:
    doc = json.loads(encode_batch(make_batch()))
    assert doc["v"] == WIRE_VERSION
    assert doc["type"] == "poll"
    assert json.loads(encode_status(AgentStatus("xa", "b", True, 1.0)))["type"] == "status"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    doc = batch_doc(future_field={"nested": [1, 2, 3]}, compression="none")
    doc["metrics"][0]["unit"] = "seconds"
    doc["metrics"][0]["samples"][0]["exemplar"] = {"trace_id": "abc"}
    doc["errors"][0]["code"] = 17
    assert decode_batch(dumps(doc)) == make_batch()
    status = status_doc(uptime=3, features=["events"])
    assert decode_status(dumps(status)).agent == "xa-dai-dinh"


def test_optional_fields_may_be_missing() -> None:
    doc = batch_doc()
    for key in ("site", "errors", "metrics"):
        del doc[key]
    batch = decode_batch(dumps(doc))
    assert (batch.site, batch.errors, batch.families) == ((), (), ())


# --- rejects: json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"not json",
        b"{'v': 1}",  # Python, not JSON
        b'{"v": 1,}',
        b"\xff\xfe{}",  # invalid UTF-8 (a UTF-16 BOM)
        '{"v":1,"type":"poll","agent":"xa","device":"sw"}'.encode("utf-16"),
        b'{"v":1,"type":"poll","agent":"xa","device":"sw\xc3"}',  # truncated UTF-8 sequence
        b'{"v":1,"type":"poll","agent":"xa","device":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate
        b'{"v":1,"type":"poll","agent":"xa","boot":"\xc0\xaf"}',  # overlong encoding
    ],
)
def test_decode_rejects_payloads_that_are_not_utf8_json(payload: bytes) -> None:
    assert reason_of(payload) == "json"
    with pytest.raises(DecodeError) as info:
        decode_status(payload)
    assert info.value.reason == "json"


def test_decode_rejects_100000_nested_lists_without_recursion_error() -> None:
    depth = 100_000
    assert reason_of(b"[" * depth + b"]" * depth) == "json"


def test_decode_rejects_deep_nesting_inside_an_ignored_field() -> None:
    depth = 100_000
    payload = dumps(batch_doc())[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    assert reason_of(payload) == "json"


def test_decode_rejects_deeply_nested_objects() -> None:
    depth = 100_000
    assert reason_of(b'{"a":' * depth + b"1" + b"}" * depth) == "json"


def test_decode_rejects_integers_with_too_many_digits_as_json() -> None:
    payload = dumps(batch_doc())[:-1] + b',"x":' + b"9" * 5000 + b"}"
    assert reason_of(payload) == "json"


# --- rejects: version ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, "1", None, [1], 1.5])
def test_decode_rejects_other_wire_versions(version: Any) -> None:
    assert reason_of(dumps(batch_doc(v=version))) == "version"
    with pytest.raises(DecodeError) as info:
        decode_status(dumps(status_doc(v=version)))
    assert info.value.reason == "version"


def test_decode_rejects_a_missing_version() -> None:
    doc = batch_doc()
    del doc["v"]
    assert reason_of(dumps(doc)) == "version"


def test_decode_rejects_boolean_true_as_wire_version() -> None:
    # JSON true is not the number 1 (Python's True == 1 must not let it through).
    assert reason_of(dumps(batch_doc(v=True))) == "version"


# --- rejects: schema -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"[]", b"1", b'"poll"', b"null", b"true"])
def test_decode_rejects_json_that_is_not_an_object(payload: bytes) -> None:
    assert reason_of(payload) == "schema"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_decode_rejects_nan_and_infinity_literals(literal: str) -> None:
    text = dumps(with_sample({}, 0)).decode().replace('"value": 0', f'"value": {literal}')
    assert literal in text
    assert reason_of(text.encode()) == "schema"
    text = dumps(batch_doc()).decode().replace('"ts": 1795550709.45', f'"ts": {literal}')
    assert reason_of(text.encode()) == "schema"


def test_decode_rejects_float_overflow_to_infinity() -> None:
    text = dumps(with_sample({}, 0)).decode().replace('"value": 0', '"value": 1e999')
    assert reason_of(text.encode()) == "schema"


@pytest.mark.parametrize("key", ["ts", "interval", "duration"])
@pytest.mark.parametrize("value", [True, False, "1", None, [1], {}])
def test_decode_rejects_non_numbers_where_numbers_are_expected(key: str, value: Any) -> None:
    assert reason_of(dumps(batch_doc(**{key: value}))) == "schema"


@pytest.mark.parametrize("value", [True, False, "1", None, [1]])
def test_decode_rejects_non_number_sample_values(value: Any) -> None:
    assert reason_of(dumps(with_sample({}, value))) == "schema"


def test_decode_rejects_a_sample_without_value() -> None:
    doc = with_sample({})
    del doc["metrics"][0]["samples"][0]["value"]
    assert reason_of(dumps(doc)) == "schema"


@pytest.mark.parametrize("seq", [0, -1, 1.0, 1.5, "1", True, None])
def test_decode_rejects_seq_that_is_not_a_positive_integer(seq: Any) -> None:
    assert reason_of(dumps(batch_doc(seq=seq))) == "schema"


@pytest.mark.parametrize("up", [1, 0, "true", None])
def test_decode_rejects_up_that_is_not_a_boolean(up: Any) -> None:
    assert reason_of(dumps(batch_doc(up=up))) == "schema"


@pytest.mark.parametrize("label", sorted(RESERVED_LABELS))
def test_decode_rejects_reserved_labels_in_samples(label: str) -> None:
    assert reason_of(dumps(with_sample({label: "x"}))) == "schema"


def test_decode_rejects_agent_and_device_labels_in_samples() -> None:
    assert reason_of(dumps(with_sample({"agent": "other-agent"}))) == "schema"
    assert reason_of(dumps(with_sample({"if_index": "1", "device": "other"}))) == "schema"


@pytest.mark.parametrize("name", ["1abc", "if-index", "if index", "", "__name__", "__x", "nhãn", "a.b"])
def test_decode_rejects_bad_label_names(name: str) -> None:
    assert reason_of(dumps(with_sample({name: "x"}))) == "schema"


@pytest.mark.parametrize("value", [1, None, True, ["x"], {"a": "b"}])
def test_decode_rejects_label_values_that_are_not_strings(value: Any) -> None:
    assert reason_of(dumps(with_sample({"x": value}))) == "schema"


@pytest.mark.parametrize("name", ["1metric", "hatang-device-up", "", "hatang up", "độ_trễ", "a.b", "a{b}"])
def test_decode_rejects_bad_metric_names(name: str) -> None:
    assert reason_of(dumps(with_sample({}, name=name))) == "schema"


def test_decode_accepts_colons_and_underscores_in_metric_names() -> None:
    batch = decode_batch(dumps(with_sample({}, name="_ns:sub_metric:total")))
    assert batch.families[0].name == "_ns:sub_metric:total"


@pytest.mark.parametrize("mtype", ["histogram", "summary", "info", "untyped", "", None, 1])
def test_decode_rejects_unsupported_metric_types(mtype: Any) -> None:
    doc = with_sample({})
    doc["metrics"][0]["type"] = mtype
    assert reason_of(dumps(doc)) == "schema"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agent", "XA-Dai-Dinh"),
        ("agent", "xa/dai"),
        ("agent", "+"),
        ("agent", 7),
        ("device", "core switch"),
        ("device", "#"),
        ("device", None),
        ("boot", 123),
        ("site", ["province"]),
        ("site", {"province": 1}),
        ("errors", {"profile": "x"}),
        ("errors", ["timeout"]),
        ("errors", [{"profile": "x"}]),
        ("metrics", {"name": "x"}),
        ("metrics", ["hatang_x"]),
        ("metrics", [{"name": "x", "type": "gauge", "help": 5, "samples": []}]),
        ("metrics", [{"name": "x", "type": "gauge", "samples": {}}]),
        ("metrics", [{"name": "x", "type": "gauge", "samples": [1]}]),
        ("metrics", [{"name": "x", "type": "gauge", "samples": [{"labels": [], "value": 1}]}]),
        ("type", "status"),
        ("type", None),
    ],
)
def test_decode_rejects_fields_of_the_wrong_shape(key: str, value: Any) -> None:
    assert reason_of(dumps(batch_doc(**{key: value}))) == "schema"


def test_decode_rejects_missing_required_fields() -> None:
    for key in ("agent", "boot", "seq", "ts", "device", "interval", "up", "duration", "type"):
        doc = batch_doc()
        del doc[key]
        assert reason_of(dumps(doc)) == "schema", key


def test_decode_rejects_label_values_over_the_length_limit() -> None:
    limits = Limits(max_label_length=16)

    def doc(value: str) -> bytes:
        return dumps({**with_sample({"x": value}), "boot": "b", "errors": []})

    assert decode_batch(doc("đ" * 16), limits).families[0].samples[0].labels == (("x", "đ" * 16),)
    assert reason_of(doc("đ" * 17), limits) == "schema"


def test_decode_rejects_lone_surrogate_escapes_that_cannot_be_re_encoded() -> None:
    # "\ud800" is valid JSON syntax but no Unicode scalar value: the label could never be written out
    # as UTF-8 again (the collector's /metrics body is encoded to UTF-8).
    payload = dumps(with_sample({})).replace(b'"labels": {}', b'"labels": {"if_alias": "\\ud800"}')
    assert b"\\ud800" in payload
    assert reason_of(payload) in ("json", "schema")


def test_status_rejects_bad_fields() -> None:
    for key, value in [("agent", "Bad Agent"), ("online", 1), ("devices", "sw1"), ("devices", [1]),
                       ("version", 1), ("ts", True), ("site", {"province": 1})]:
        with pytest.raises(DecodeError) as info:
            decode_status(dumps(status_doc(**{key: value})))
        assert info.value.reason == "schema", key


# --- rejects: limits -------------------------------------------------------------------------------


def test_decode_rejects_payload_over_max_bytes_before_parsing() -> None:
    payload = encode_batch(make_batch())
    assert decode_batch(payload, Limits(max_payload_bytes=len(payload))) == make_batch()
    assert reason_of(payload, Limits(max_payload_bytes=len(payload) - 1)) == "too_large"
    assert reason_of(b"[" * 2000, Limits(max_payload_bytes=1000)) == "too_large"
    with pytest.raises(DecodeError) as info:
        decode_status(b" " * 2000, Limits(max_payload_bytes=1000))
    assert info.value.reason == "too_large"


def test_default_limit_is_four_mebibytes() -> None:
    assert reason_of(b" " * ((4 << 20) + 1)) == "too_large"


def test_decode_rejects_too_many_samples_over_all_families() -> None:
    samples = [{"labels": {"i": str(j)}, "value": 1} for j in range(3)]
    metrics = [{"name": f"m{i}", "type": "gauge", "help": "", "samples": samples} for i in range(4)]
    payload = dumps(batch_doc(metrics=metrics))
    assert len(decode_batch(payload, Limits(max_samples=12)).families) == 4
    assert reason_of(payload, Limits(max_samples=11)) == "too_many_samples"


def test_decode_error_carries_reason_and_detail() -> None:
    with pytest.raises(DecodeError) as info:
        decode_batch(dumps(batch_doc(v=2)))
    assert info.value.reason == "version"
    assert "2" in info.value.detail
    assert str(info.value).startswith("version: ")
    assert isinstance(info.value, ValueError)


# --- properties ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

_FIELD_VALUES = st.one_of(
    json_values,
    st.sampled_from(["xa", "sw1", "gauge", "counter", "poll", "status"]),
    st.integers(min_value=-2, max_value=3),
)

poll_like_docs = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 1, 2, True, "1"]),
        "type": st.sampled_from(["poll", "poll", "status", None]),
        "agent": _FIELD_VALUES,
        "boot": _FIELD_VALUES,
        "seq": _FIELD_VALUES,
        "ts": _FIELD_VALUES,
        "device": _FIELD_VALUES,
        "interval": _FIELD_VALUES,
        "up": _FIELD_VALUES,
        "duration": _FIELD_VALUES,
        "site": _FIELD_VALUES,
        "errors": _FIELD_VALUES,
        "metrics": st.lists(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": _FIELD_VALUES,
                        "type": _FIELD_VALUES,
                        "help": _FIELD_VALUES,
                        "samples": st.lists(
                            st.one_of(json_values, st.fixed_dictionaries(
                                {}, optional={"labels": json_values, "value": _FIELD_VALUES})),
                            max_size=3,
                        ),
                    },
                ),
            ),
            max_size=3,
        ),
    },
)


def _decode_or_error(payload: bytes) -> None:
    try:
        result = decode_batch(payload)
    except DecodeError as exc:
        assert exc.reason in ("json", "version", "schema", "too_large", "too_many_samples")
    else:
        assert isinstance(result, PollBatch)
    try:
        status = decode_status(payload)
    except DecodeError:
        pass
    else:
        assert isinstance(status, AgentStatus)


@given(st.binary(max_size=512))
def test_decode_of_arbitrary_bytes_returns_a_batch_or_raises_decode_error(payload: bytes) -> None:
    _decode_or_error(payload)


@given(json_values)
def test_decode_of_arbitrary_json_values_returns_a_batch_or_raises_decode_error(value: Any) -> None:
    _decode_or_error(json.dumps(value).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(poll_like_docs)
def test_decode_of_poll_shaped_documents_returns_a_batch_or_raises_decode_error(doc: dict[str, Any]) -> None:
    _decode_or_error(json.dumps(doc).encode())


_label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: not n.startswith("__") and n not in RESERVED_LABELS
)
_texts = st.text(st.characters(codec="utf-8"), max_size=40)
_labels = st.dictionaries(_label_names, _texts, max_size=4).map(lambda d: tuple(sorted(d.items())))
_values = st.one_of(
    st.integers(min_value=0, max_value=COUNTER64_MAX),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
)
_families = st.builds(
    Family,
    name=st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True),
    type=st.sampled_from(["gauge", "counter"]),
    help=_texts,
    samples=st.lists(st.builds(Sample, labels=_labels, value=_values), max_size=4,
                     unique_by=lambda sample: sample.labels).map(tuple),
)
valid_batches = st.builds(
    PollBatch,
    agent=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True),
    boot_id=_texts,
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    ts=st.floats(min_value=1e9, max_value=4e9),
    device=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", fullmatch=True),
    interval=st.floats(min_value=1, max_value=86400),
    up=st.booleans(),
    duration=st.floats(min_value=0, max_value=86400),
    site=st.dictionaries(st.sampled_from(["province", "district", "commune"]), _texts.filter(bool)).map(
        lambda d: tuple(sorted(d.items()))),
    errors=st.lists(st.builds(ProfileError, profile=_texts, error=_texts), max_size=3).map(tuple),
    families=st.lists(_families, max_size=4, unique_by=lambda family: family.name).map(tuple),
)


@given(valid_batches)
def test_encode_then_decode_is_identity_for_valid_batches(batch: PollBatch) -> None:
    decoded = decode_batch(encode_batch(batch))
    assert decoded == batch
    for got, sent in zip(decoded.families, batch.families, strict=True):
        for got_sample, sent_sample in zip(got.samples, sent.samples, strict=True):
            assert type(got_sample.value) is type(sent_sample.value)


@given(st.builds(
    AgentStatus,
    agent=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True),
    boot_id=_texts,
    online=st.booleans(),
    ts=st.floats(min_value=1e9, max_value=4e9),
    version=st.text(st.characters(codec="utf-8"), max_size=64),
    site=st.dictionaries(st.sampled_from(["province", "district", "commune"]), _texts).map(
        lambda d: tuple(sorted(d.items()))),
    devices=st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True), max_size=4).map(
        tuple),
))
def test_encode_then_decode_is_identity_for_valid_statuses(status: AgentStatus) -> None:
    assert decode_status(encode_status(status)) == status


# --- the compact poll form (what the agent sends) ---------------------------------------------------


def compact_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_batch(make_batch()))
    doc.update(overrides)
    return doc


def test_compact_and_verbose_forms_decode_to_the_same_batch() -> None:
    compact, verbose = encode_batch(make_batch()), encode_batch(make_batch(), compact=False)
    assert decode_batch(compact) == decode_batch(verbose) == make_batch()
    doc = json.loads(compact)
    # each label set once; the uptime family's sample has no labels of its own
    assert doc["label_sets"] == [{}, {"if_alias": ALIAS_VI, "if_descr": "GigabitEthernet0/1", "if_index": "1",
                                      "if_name": "Gi0/1"},
                                 {"if_alias": "", "if_descr": "Vlan1", "if_index": "2", "if_name": "Vl1"}]
    assert doc["metrics"][1]["series"] == [1, 2] and doc["metrics"][1]["values"] == [COUNTER64_MAX, 0]
    assert len(compact) < len(verbose)


def test_compact_form_shares_label_sets_between_families() -> None:
    labels = (("if_index", "1"),), (("if_index", "2"),)
    families = tuple(Family(f"m{n}", "gauge", "", tuple(Sample(lab, n) for lab in labels)) for n in range(5))
    doc = json.loads(encode_batch(make_batch(families=families)))
    assert len(doc["label_sets"]) == 2
    assert all(f["series"] == [0, 1] for f in doc["metrics"])
    assert decode_batch(dumps(doc)).families == families


def _compact_family(series: Any, values: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "hatang_test", "type": "gauge", "help": "", "series": series, "values": values, **extra}


@pytest.mark.parametrize(
    ("label_sets", "family"),
    [
        ([{"a": "1"}], _compact_family([1], [1])),  # index out of range
        ([{"a": "1"}], _compact_family([-1], [1])),
        ([{"a": "1"}], _compact_family([True], [1])),  # a bool is no index
        ([{"a": "1"}], _compact_family([0.0], [1])),
        ([{"a": "1"}], _compact_family([0], [1, 2])),  # lengths differ
        ([{"a": "1"}], _compact_family(0, [1])),
        ([{"a": "1"}], _compact_family([0], [True])),
        ([{"a": "1"}], _compact_family([0], [float("nan")])),
        ([{"a": "1"}], _compact_family([0], [2**64])),
        ([{"a": "1"}], _compact_family([0, 0], [1, 2])),  # one series twice
        ([{"a": "1"}, {"a": "1"}], _compact_family([0, 1], [1, 2])),  # two sets with the same labels
        ([{"a": "1"}], _compact_family([0], [1], samples=[])),  # both forms at once
        ([{"agent": "x"}], _compact_family([0], [1])),  # reserved label, even if the set were unused
        ([{"a": 1}], _compact_family([0], [1])),
        ({"a": "1"}, _compact_family([0], [1])),  # label_sets not a list
    ],
)
def test_compact_form_rejects(label_sets: Any, family: dict[str, Any]) -> None:
    doc = compact_doc(label_sets=label_sets, metrics=[family])
    assert reason_of(json.dumps(doc, ensure_ascii=False, allow_nan=True).encode()) == "schema"


def test_compact_form_counts_values_against_the_sample_limit() -> None:
    limits = Limits(max_samples=3)
    doc = compact_doc(label_sets=[{"a": str(i)} for i in range(4)],
                      metrics=[_compact_family([0, 1, 2, 3], [1, 2, 3, 4])])
    assert reason_of(dumps(doc), limits) == "too_many_samples"
    doc = compact_doc(label_sets=[{"a": str(i)} for i in range(4)], metrics=[])
    assert reason_of(dumps(doc), limits) == "too_many_samples"  # label sets are bounded too

"""Golden payloads of wire v1 (tests/golden/wire-v1): every collector must keep decoding them.

Offices are upgraded one by one, so a collector meets agents of older releases for months. The files in
tests/golden/wire-v1 are payloads exactly as today's agent sends them (and a few written by hand: every
optional field left out, unknown fields added); tests/golden/wire-v1/index.yaml says, written by hand,
on which topic each is published, what the wire decoder must return for it and which samples the
collector must serve (or remote-write) for it. Nothing here regenerates the files or derives an
expectation from the code under test; docs/wire.md, "Versioning rules", says what may change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collector import exposition
from collector.remote_write import Series
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from wire.codec import (
    DecodeError,
    Limits,
    decode_batch,
    decode_status,
    decode_trap,
    encode_batch,
    encode_status,
    encode_trap,
)
from wire.messages import AgentStatus, PollBatch, TrapMessage
from wire.topics import WIRE_VERSION, TopicKind, parse_topic, subscription

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "wire-v1"
INDEX: dict[str, Any] = yaml.safe_load((GOLDEN / "index.yaml").read_text(encoding="utf-8"))
PAYLOADS: dict[str, dict[str, Any]] = INDEX["payloads"]
NAMES = sorted(PAYLOADS)
# Series about the agent as a whole. The collector's clock bookkeeping is never compared; up and info
# only for status messages (what a poll or trap does to them is not part of its payload's meaning).
CLOCK_SERIES = frozenset({"hatang_agent_last_seen_timestamp_seconds", "hatang_agent_clock_offset_seconds"})
STATUS_SERIES = frozenset({"hatang_agent_up", "hatang_agent_info", "hatang_agent_config_rejected"})
AGENT_SERIES = CLOCK_SERIES | STATUS_SERIES

# (sample name, labels, value as float, timestamp in ms or None)
SampleKey = tuple[str, frozenset[tuple[str, str]], float, int | None]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def payload_of(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def decode(kind: str, payload: bytes) -> PollBatch | AgentStatus | TrapMessage:
    if kind == "poll":
        return decode_batch(payload)
    if kind == "status":
        return decode_status(payload)
    if kind == "trap":
        return decode_trap(payload)
    raise AssertionError(f"unknown message type {kind!r} in index.yaml")


# --- the decoded message as plain data, to compare with index.yaml ------------------------------------


def facts(message: PollBatch | AgentStatus | TrapMessage) -> dict[str, Any]:
    if isinstance(message, PollBatch):
        return {
            "agent": message.agent, "boot": message.boot_id, "seq": message.seq, "ts": message.ts,
            "device": message.device, "interval": message.interval, "up": message.up,
            "duration": message.duration, "kind": message.kind, "site": dict(message.site),
            "errors": [{"profile": e.profile, "error": e.error, "reason": e.reason} for e in message.errors],
            "families": [
                {"name": f.name, "type": f.type, "help": f.help,
                 "samples": [[dict(s.labels), s.value] for s in f.samples]}
                for f in message.families
            ],
        }
    if isinstance(message, AgentStatus):
        optional: dict[str, Any] = {"profiles": {d: list(names) for d, names in message.profiles}
                                    } if message.profiles else {}
        if message.config_rejected is not None:
            rejected = message.config_rejected
            optional["config_rejected"] = {"revision": rejected.revision, "reason": rejected.reason,
                                           "error": rejected.error, "ts": rejected.ts}
        return {
            "agent": message.agent, "boot": message.boot_id, "online": message.online, "ts": message.ts,
            "version": message.version, "site": dict(message.site), "devices": list(message.devices),
            "config_version": message.config_version, "buffer": dict(message.buffer), **optional,
        }
    return {
        "agent": message.agent, "boot": message.boot_id, "seq": message.seq, "ts": message.ts,
        "device": message.device, "source": message.source, "version": message.version,
        "trap_oid": message.trap_oid, "trap_name": message.trap_name, "if_index": message.if_index,
        "uptime": message.uptime, "varbinds": [list(v) for v in message.varbinds], "site": dict(message.site),
    }


def same_values(actual: Any, expected: Any) -> bool:
    """Equal, and numbers of the same kind where it matters: an integer value (a Counter64) must stay
    an exact integer, not become a float that only looks equal."""
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and actual.keys() == expected.keys()
                and all(same_values(actual[k], expected[k]) for k in expected))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(same_values(a, e) for a, e in zip(actual, expected, strict=True)))
    if isinstance(expected, int) and not isinstance(expected, bool) and expected > 2**53:
        return type(actual) is int and actual == expected
    return bool(actual == expected) and isinstance(actual, bool) == isinstance(expected, bool)


def check_decoded(name: str, payload: bytes) -> None:
    entry = PAYLOADS[name]
    actual = facts(decode(entry["type"], payload))
    assert same_values(actual, entry["decoded"]), (
        f"{name}: decoded\n{json.dumps(actual, ensure_ascii=False, indent=1)}\n"
        f"expected\n{json.dumps(entry['decoded'], ensure_ascii=False, indent=1)}")


# --- what the collector makes of it ------------------------------------------------------------------


def samples_of(text: str) -> set[SampleKey]:
    """The samples of Prometheus text (with or without HELP/TYPE lines), values as floats."""
    out: set[SampleKey] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            ts = None if sample.timestamp is None else round(float(sample.timestamp) * 1000)
            key = (sample.name, frozenset(sample.labels.items()), float(sample.value), ts)
            assert key not in out, f"sample repeated: {key}"
            out.add(key)
    return out


def series_samples(written: Iterable[Series]) -> set[SampleKey]:
    out: set[SampleKey] = set()
    for series in written:
        labels = dict(series.labels)
        name = labels.pop("__name__")
        for value, ts_ms in series.samples:
            out.add((name, frozenset(labels.items()), float(value), ts_ms))
    return out


def show(samples: Iterable[SampleKey]) -> str:
    return "\n".join(f"  {name}{dict(sorted(labels))} {value} {ts}"
                     for name, labels, value, ts in sorted(samples, key=repr))


def ingest(name: str, payload: bytes) -> tuple[Store, str, list[Series]]:
    """A new collector store at the entry's time, fed this one message."""
    entry = PAYLOADS[name]
    written: list[Series] = []
    store = Store(CollectorMetrics(), Limits(), clock=FakeClock(float(entry["collector"]["now"])),
                  late_sink=written.extend)
    result = store.ingest(entry["topic"], payload)
    return store, result, written


def check_collector(name: str, payload: bytes) -> None:
    entry = PAYLOADS[name]
    expected = entry["collector"]
    store, result, written = ingest(name, payload)
    assert result == expected["result"], f"{name}: ingest returned {result!r}"
    served = samples_of(exposition.render(store, store.clock()))
    if entry["type"] == "status":
        compared = {s for s in served if s[0] in STATUS_SERIES}
        assert not {s for s in served if s[0] not in AGENT_SERIES}, f"{name}: a status made other series"
    else:
        compared = {s for s in served if s[0] not in AGENT_SERIES}
    want = samples_of(expected["exposition"])
    assert compared == want, (f"{name}: /metrics differs\nmissing:\n{show(want - compared)}\n"
                              f"unexpected:\n{show(compared - want)}")
    want_written = samples_of(expected.get("remote_write", ""))
    got_written = series_samples(written)
    assert got_written == want_written, (f"{name}: remote write differs\nmissing:\n"
                                         f"{show(want_written - got_written)}\n"
                                         f"unexpected:\n{show(got_written - want_written)}")


# --- the golden set itself ---------------------------------------------------------------------------


def test_the_index_describes_exactly_the_golden_files() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.json")) == NAMES
    assert len(NAMES) >= 17
    for name, entry in PAYLOADS.items():
        assert entry["type"] in {"poll", "status", "trap"}, name
        assert entry["origin"] in {"agent", "hand"}, name
        assert (entry["type"] == "poll") == ("form" in entry), name
        assert entry.get("same_as", name) in PAYLOADS, name
    kinds = {(e["type"], e.get("form"), e["origin"]) for e in PAYLOADS.values()}
    assert {("poll", "compact", "agent"), ("poll", "verbose", "agent"), ("status", None, "agent"),
            ("trap", None, "agent")} <= kinds


@pytest.mark.parametrize("name", NAMES)
def test_golden_files_are_never_edited(name: str) -> None:
    """README.md: a golden file is fixed bytes. A new optional field gets a new file, never an edit."""
    assert hashlib.sha256(payload_of(name)).hexdigest() == PAYLOADS[name]["sha256"], (
        f"{name} was changed; golden payloads are never edited (tests/golden/wire-v1/README.md)")


@pytest.mark.parametrize("name", NAMES)
def test_topic_is_a_v1_topic_of_the_right_kind(name: str) -> None:
    entry = PAYLOADS[name]
    topic = parse_topic(entry["topic"])
    assert topic.agent == entry["decoded"]["agent"]
    expected_kinds = {"poll": {TopicKind.DATA, TopicKind.REPLAY, TopicKind.SELF},
                      "status": {TopicKind.STATUS}, "trap": {TopicKind.EVENTS}}[entry["type"]]
    assert topic.kind in expected_kinds
    if topic.kind in (TopicKind.DATA, TopicKind.REPLAY):
        assert topic.device == entry["decoded"]["device"]
    assert json.loads(payload_of(name))["v"] == WIRE_VERSION == 1


# --- every golden payload decodes, and the collector serves what it says ------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_decodes_with_the_wire_decoder(name: str) -> None:
    check_decoded(name, payload_of(name))


@pytest.mark.parametrize("name", NAMES)
def test_collector_ingests_it_to_the_expected_samples(name: str) -> None:
    check_collector(name, payload_of(name))


@pytest.mark.parametrize("name", [n for n in NAMES if PAYLOADS[n]["type"] == "status"])
def test_collector_keeps_the_status_as_decoded(name: str) -> None:
    store, result, _ = ingest(name, payload_of(name))
    assert result == "accepted"
    agent = store.agents[PAYLOADS[name]["decoded"]["agent"]]
    assert agent.online is PAYLOADS[name]["decoded"]["online"]
    assert agent.status is not None
    assert same_values(facts(agent.status), PAYLOADS[name]["decoded"])


@pytest.mark.parametrize("name", [n for n in NAMES if "same_as" in PAYLOADS[n]])
def test_other_forms_of_a_message_give_identical_results(name: str) -> None:
    """Compact and verbose forms of one poll, and a payload with unknown fields added, are the same
    message: the same decoded value and byte-identical /metrics."""
    original = PAYLOADS[name]["same_as"]
    kind = PAYLOADS[name]["type"]
    assert decode(kind, payload_of(name)) == decode(kind, payload_of(original))
    renders = []
    for each in (name, original):
        store, result, written = ingest(each, payload_of(each))
        renders.append((result, exposition.render(store, store.clock()), written))
    assert renders[0] == renders[1]


def test_compact_and_verbose_golden_polls_are_the_same_poll() -> None:
    compact, verbose = payload_of("poll-compact.json"), payload_of("poll-verbose.json")
    assert b'"label_sets"' in compact and b'"series"' in compact and b'"samples"' not in compact
    assert b'"label_sets"' not in verbose and b'"samples"' in verbose and b'"series"' not in verbose
    assert decode_batch(compact) == decode_batch(verbose)


@pytest.mark.parametrize("name", NAMES)
def test_encoding_the_decoded_message_again_decodes_to_the_same(name: str) -> None:
    message = decode(PAYLOADS[name]["type"], payload_of(name))
    if isinstance(message, PollBatch):
        for compact in (True, False):
            assert decode_batch(encode_batch(message, compact=compact)) == message
    elif isinstance(message, AgentStatus):
        assert decode_status(encode_status(message)) == message
    else:
        assert decode_trap(encode_trap(message)) == message


# --- the checks above can fail ----------------------------------------------------------------------

MUTATIONS = [
    ("poll-compact.json", '"boot":', '"boot_id":'),  # a required field renamed: rejected
    ("poll-compact.json", '"values":', '"vals":'),  # decodes, but every family is empty (all renamed)
    ("poll-compact.json", '"reason":"timeout"}],"label_sets"', '"why":"timeout"}],"label_sets"'),  # optional
    ("poll-compact.json", '"help":"Bytes', '"description":"Bytes'),  # optional field renamed
    ("poll-compact.json", '"series":[1,2],"values":[1,2]', '"series":[2,1],"values":[1,2]'),
    ("poll-verbose.json", '"value":1234.56', '"value":"1234.56"'),  # a changed type: rejected
    ("poll-replay.json", '"ts":1795550120.0', '"ts":1795550120000'),  # a changed unit: rejected
    ("poll-device-down.json", '"up":false', '"up":0'),
    ("self.json", '"device":"self"', '"device":"agent"'),
    ("status-birth.json", '"online":true', '"up":true'),
    ("status-birth.json", '"version":"0.1.0"', '"agent_version":"0.1.0"'),
    ("trap-linkdown.json", '"if_index":"2"', '"ifIndex":"2"'),
    ("trap-linkdown.json", '"trap_name":', '"name":'),
    ("trap-unknown-device.json", '"v":1', '"v":2'),
]


@pytest.mark.parametrize(("name", "old", "new"), MUTATIONS)
def test_a_changed_payload_fails_the_golden_checks(name: str, old: str, new: str) -> None:
    """The checks above are not vacuous: a renamed field, a changed type or meaning fails them."""
    text = payload_of(name).decode("utf-8")
    assert old in text, f"{old!r} not in {name}"
    mutated = text.replace(old, new).encode("utf-8")  # every occurrence
    with pytest.raises((AssertionError, DecodeError)):
        check_decoded(name, mutated)
        check_collector(name, mutated)


# --- what today's collector does with what v1 does not define (docs/wire.md, "Versioning rules") -----


@pytest.mark.parametrize("name", ["poll-compact.json", "status-birth.json", "trap-linkdown.json"])
@pytest.mark.parametrize("version", ['"v":2', '"v":"1"', '"v":1.5', '"v":true', '"v":null', ""])
def test_a_payload_of_another_wire_version_is_rejected_not_guessed(name: str, version: str) -> None:
    text = payload_of(name).decode("utf-8")
    mutated = (text.replace('"v":1,', f"{version}," if version else "", 1)).encode("utf-8")
    with pytest.raises(DecodeError) as caught:
        decode(PAYLOADS[name]["type"], mutated)
    assert caught.value.reason == "version"
    store, result, written = ingest(name, mutated)
    assert result == "rejected:version"
    assert not store.devices and not store.traps and not written
    assert not store.agents  # not even a status: the agent stays unknown


def test_a_float_v_of_one_is_still_v1() -> None:
    """The decoder compares ``v`` as a number, so "v": 1.0 equals 1 and is read as v1 (docs/wire.md)."""
    mutated = payload_of("status-birth.json").replace(b'"v":1,', b'"v":1.0,', 1)
    assert decode_status(mutated) == decode_status(payload_of("status-birth.json"))


def test_the_config_topic_is_ignored_not_counted_as_a_reject() -> None:
    """The centre's signed configuration for an agent (docs/remote-config.md) is on the agent's
    ``config`` topic: not for the collector, which ignores it without counting a reject."""
    store, _, _ = ingest("status-birth.json", payload_of("status-birth.json"))
    assert store.ingest("hatang/v1/agents/xa-dai-dinh/config", b'{"v":1,"type":"config"}') == "ignored"
    assert store.ingest("hatang/v1/agents/xa-dai-dinh/config", b"", retained=True) == "ignored"
    assert store.ingest("hatang/v1/agents/xa-dai-dinh/configuration", b"{}") == "rejected:topic"  # can fail


def test_unknown_topics_are_rejected_and_counted() -> None:
    """A topic kind v1 does not know, under hatang/v1/agents/, is counted as a reject (reason
    ``topic``): a new topic there needs the collector to be upgraded first. Other trees are not
    even subscribed to."""
    birth = payload_of("status-birth.json")
    store, _, _ = ingest("status-birth.json", birth)
    assert store.ingest("hatang/v1/agents/xa-dai-dinh/configuration", birth) == "rejected:topic"
    assert store.ingest("hatang/v1/agents/xa-dai-dinh/status/extra", birth) == "rejected:topic"
    assert store.ingest("hatang/v2/agents/xa-dai-dinh/status", birth) == "rejected:topic"
    assert subscription() == "hatang/v1/agents/#"


def test_an_unknown_poll_kind_is_rejected() -> None:
    """``kind`` is an optional field with a closed set of values: a new value is a schema reject in
    today's collector (so it needs the collector first, like a new topic)."""
    mutated = payload_of("poll-probe.json").replace(b'"kind":"probe"', b'"kind":"dns"', 1)
    with pytest.raises(DecodeError) as caught:
        decode_batch(mutated)
    assert caught.value.reason == "schema"
    assert ingest("poll-probe.json", mutated)[1] == "rejected:schema"


def test_unknown_fields_inside_label_maps_are_not_ignored() -> None:
    """Unknown keys are ignored in the objects of the message (envelope, family, error, sample), not in
    the maps whose keys are data: a new site label is a schema reject, a new sample label a new series."""
    site = payload_of("poll-compact.json").replace(b'"site":{', b'"site":{"ward":"1",', 1)
    with pytest.raises(DecodeError):
        decode_batch(site)
    status = payload_of("status-birth.json").replace(b'"buffer":{', b'"buffer":{"state":"ok",', 1)
    with pytest.raises(DecodeError):
        decode_status(status)

"""A real collector behind a real Mosquitto under a flood of hostile payloads, next to one good agent.

What the collector promises (docs/wire.md "Limits and rejects", collector/logguard.py ``RejectLog``): every
message it cannot use is rejected and counted by reason in ``hatang_collector_rejected_messages_total``;
the log gets the first reject of each reason at once, then at most one line per reason per minute (with
the number suppressed), each line truncated (topic to 200, detail to 300 characters), in memory bounded by
the fixed set of reasons. (docs/wire.md still says "logs once per (reason, topic)".) A bad message never
affects another agent's data.

The flood is generated from a fixed seed: random JSON and bytes, valid messages with one field replaced
by random JSON, and hand-made attacks (NaN/Infinity literals, 1e308 and 2**200, 100,000 nested arrays,
invalid UTF-8, lone-surrogate escapes, 10 MB blobs, thousands of labels, long label values, reserved
labels and metric names, identity spoofs, odd topic levels). The expected verdict of each message comes
from an in-process ``Store`` (the same decoding code): the test checks the running collector counts
exactly those rejects, keeps serving a parseable /metrics with the good agent's current values, stays
within bounded memory, and bounds its log. Messages the in-process store cannot even handle (it raises)
are sent last: the collector must survive them too.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import random
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.logguard import LOG_EVERY
from collector.selfmetrics import REJECT_REASONS, CollectorMetrics
from collector.store import Store
from tests.e2e.conftest import Collector
from tests.support.hatang import Series, find, one, parse, scrape, wait_for_series
from tests.support.mqtt_publisher import Publisher
from tests.support.services import Mosquitto, start_mosquitto
from tests.support.waiting import wait_until
from wire.codec import DEFAULT_LIMITS, encode_batch, encode_status, encode_trap
from wire.messages import AgentStatus, Family, MetricType, PollBatch, Sample, TrapMessage
from wire.topics import data_topic, events_topic, self_topic, status_topic

pytestmark = pytest.mark.integration

SEED = 20_240_611
HOSTILE_MESSAGES = 3_000
CHUNK = 250  # published, then waited for: the counts stay exact and there is a scrape in between
RSS_CHECKPOINT = 1_000
MAX_RSS_BYTES = 300 * 2**20
MAX_RSS_GROWTH_AFTER_CHECKPOINT = 60 * 2**20  # from 1,000 to 3,000 messages; linear growth would be 2x
MAX_REJECT_LOG_LINE = 1_000  # "rejected message on %.200s: %s: %.300s (N more ...)" plus the log prefix
GOOD_AGENT, GOOD_DEVICE = "xa-tot", "sw"
GOOD_INTERVAL = 10  # live for 15 s (interval + live_grace), fresh for 30 s: a busy collector keeps it


@pytest.fixture
def mosquitto(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """Overrides the shared broker: anonymous, with deploy/mosquitto/hatang.conf's queue size, so the broker
    never drops a message for the collector while it is busy (the default is 1,000)."""
    broker = start_mosquitto(tmp_path / "mosquitto", extra_config="max_queued_messages 100000\n")
    try:
        yield broker
    finally:
        broker.stop()
        if request.session.testsfailed:
            print(f"\n----- mosquitto log -----\n{broker.log()[-4000:]}")


# ------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Hostile:
    kind: str  # what the attack is, for failure messages
    topic: str
    payload: bytes


SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
ODD_CHARS = ['"', "\\", "\n", "\t", "\x00", "\x7f", "Đ", "ạ", "€", "\u2028", "\ufeff", "😀", " ", "{", "}"]


def rand_text(rng: random.Random, max_len: int = 12) -> str:
    pool = [*ODD_CHARS, *SURROGATES, "a", "b", "_", "1"]
    return "".join(rng.choice(pool) if rng.random() < 0.5 else chr(rng.randrange(32, 0x3000))
                   for _ in range(rng.randrange(max_len + 1)))


def rand_number(rng: random.Random) -> Any:
    return rng.choice([
        rng.randrange(-(2**70), 2**70), 2**64 - 1, 2**64, 2**200, -(2**200), 10**400, 1e308, -1e308, 5e-324,
        float("nan"), float("inf"), float("-inf"), rng.uniform(-1e9, 1e9), 0, -0.0, True, False,
    ])


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.55:
        return rng.choice([None, rand_number(rng), rand_text(rng), rand_number(rng), rand_text(rng)])
    if roll < 0.78:
        return [rand_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rand_text(rng, 6): rand_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def dumps(doc: Any, rng: random.Random | None = None) -> bytes:
    """JSON with NaN/Infinity literals allowed; lone surrogates as \\udXXX escapes or, when not ASCII-only,
    as invalid UTF-8 bytes."""
    ensure_ascii = True if rng is None else rng.random() < 0.7
    return json.dumps(doc, allow_nan=True, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


def valid_batch(agent: str, device: str, seq: int, *, boot: str = "hostile", labels: int = 1,
                label_value: str = "x") -> dict[str, Any]:
    samples = [Sample(tuple(sorted((f"l{i}_{j}", label_value) for j in range(labels))), float(i))
               for i in range(2)]
    doc: dict[str, Any] = json.loads(encode_batch(compact=False, batch=PollBatch(
        agent=agent, boot_id=boot, seq=seq, ts=time.time(), device=device, interval=60, up=True, duration=0.1,
        site=(("province", "Vĩnh Phúc"),),
        families=(Family("hatang_hostile_test", "gauge", "Hostile test.", tuple(samples)),),
    )))
    return doc


def valid_status(agent: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_status(AgentStatus(
        agent=agent, boot_id="hostile", online=True, ts=time.time(), version="0.1.0", devices=("sw",),
        buffer=(("depth", 0.0),))))
    return doc


def valid_trap(agent: str, seq: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_trap(TrapMessage(
        agent=agent, boot_id="hostile-trap", seq=seq, ts=time.time(), device="sw", source="192.0.2.1",
        version="2c", trap_oid="1.3.6.1.6.3.1.1.5.3", trap_name="linkDown",
        varbinds=(("1.3.6.1.2.1.2.2.1.1.2", "integer", "2"),),
    )))
    return doc


def _mutate(rng: random.Random, doc: Any) -> Any:
    """Replace, delete or add one field anywhere in ``doc`` (in place); return ``doc``."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, prefix: tuple[Any, ...]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            paths.append((*prefix, key))
            walk(value, (*prefix, key))

    walk(doc, ())
    path = rng.choice(paths)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    action = rng.random()
    if action < 0.7:
        parent[path[-1]] = rand_json(rng)
    elif action < 0.85:
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[rand_text(rng, 8)] = rand_json(rng)
    else:
        parent.append(rand_json(rng))
    return doc


def build_corpus(rng: random.Random, count: int) -> list[Hostile]:
    """``count`` hostile messages, shuffled so that every chunk has a bit of everything."""
    out: list[Hostile] = []
    seq = iter(range(1, 10**9))

    def agent() -> str:  # many distinct topics for rejects
        return f"xa-h{rng.randrange(400)}"

    def stable_agent() -> str:  # a small pool for messages that may be accepted: state is replaced, not added
        return f"xa-s{rng.randrange(8)}"

    def add(kind: str, topic: str, payload: bytes) -> None:
        out.append(Hostile(kind, topic, payload))

    # Hand-made attacks.
    for _ in range(4):
        blob = rng.randbytes(10 * 2**20)
        add("10 MB random blob", data_topic(agent(), "sw"), blob)
    for i in range(20):
        depth = 100_000
        nested = ("[" * depth + "]" * depth) if i % 2 else ('{"a":' * depth + "1" + "}" * depth)
        if i % 4 == 0:
            nested = '{"v":1,"type":"poll","metrics":' + "[" * depth + "]" * depth + "}"
        add("100,000 nested levels", data_topic(agent(), "sw"), nested.encode())
    for literal in ("NaN", "Infinity", "-Infinity"):
        for key in ("ts", "interval", "duration", "seq", "value", "v"):
            for _ in range(3):
                s = agent()
                text = json.dumps(valid_batch(s, "sw", next(seq)))
                if key == "value":
                    text = text.replace('"value": 0.0', f'"value": {literal}', 1)
                else:
                    text = text.replace(f'"{key}": ', f'"{key}": {literal}, "_was": ', 1)
                add(f"{literal} literal in {key}", data_topic(s, "sw"), text.encode())
    for big in ("1e308", "-1e308", "1e999", str(2**200), str(-(2**200)), str(2**64), "9" * 5000, "1e-400"):
        for key in ("value", "ts", "interval", "duration", "seq"):
            s = stable_agent()
            doc = valid_batch(s, "sw", next(seq))
            placeholder = "__BIG__"
            if key == "value":
                doc["metrics"][0]["samples"][0]["value"] = placeholder
            else:
                doc[key] = placeholder
            add(f"huge number {big[:12]} in {key}", data_topic(s, "sw"),
                json.dumps(doc).replace(f'"{placeholder}"', big).encode())
    for i in range(60):
        s = agent()
        good = json.dumps(valid_batch(s, "sw", next(seq), label_value="ĐĐ")).encode()
        bad = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"][i % 5]
        add("invalid UTF-8", data_topic(s, "sw"), good.replace("ĐĐ".encode(), bad, 1))
    for i in range(60):
        s = stable_agent()
        doc = valid_batch(s, "sw", next(seq))
        where = i % 5
        surrogate = SURROGATES[i % 4]
        if where == 0:
            doc["metrics"][0]["samples"][0]["labels"]["l0_0"] = surrogate
        elif where == 1:
            doc["metrics"][0]["help"] = "help " + surrogate
        elif where == 2:
            doc["boot"] = surrogate
        elif where == 3:
            doc["site"]["province"] = surrogate
        else:
            doc = valid_status(s)
            doc["buffer"] = {surrogate: 1}
            add("lone surrogate escape in status", status_topic(s), json.dumps(doc).encode())
            continue
        add("lone surrogate escape", data_topic(s, "sw"), json.dumps(doc).encode())  # ensure_ascii: \udXXX
    for i in range(30):
        # Valid ones are accepted (the contract has no label count limit) and served: one agent, one
        # series, so that a scrape stays small enough for promtool (quadratic in labels per line).
        s = "xa-big" if i % 3 == 0 else agent()
        doc = valid_batch(s, "big", next(seq), labels=3_000 if i % 3 == 0 else 2_000)
        del doc["metrics"][0]["samples"][1:]
        labels = doc["metrics"][0]["samples"][0]["labels"]
        if i % 3 == 1:
            labels["job"] = "x"  # one reserved label among thousands
        elif i % 3 == 2:
            labels["1bad"] = "x"  # one bad name among thousands
        add("thousands of labels", data_topic(s, "big"), json.dumps(doc).encode())
    for i in range(40):
        s = stable_agent()
        length = [1_025, 5_000, 100_000, 1_024][i % 4]
        doc = valid_batch(s, "long", next(seq), label_value="ạ" * length)
        add(f"label value of {length} chars", data_topic(s, "long"), json.dumps(doc).encode())
    for i, name in enumerate(["agent", "device", "province", "district", "commune", "job", "instance",
                              "__name__", "__meta", "le-x", "", "a b", "é"] * 4):
        s = agent()
        doc = valid_batch(s, "sw", next(seq))
        doc["metrics"][0]["samples"][i % 2]["labels"][name] = "x"
        add(f"reserved or bad label {name!r}", data_topic(s, "sw"), json.dumps(doc).encode())
    for name in ["hatang_agent_up", "hatang_device_up", "hatang_collector_x", "process_cpu_seconds_total",
                 "python_info", "0abc", "a-b", "", "a b", "Đ"] * 3:
        s = agent()
        doc = valid_batch(s, "sw", next(seq))
        doc["metrics"][0]["name"] = name
        add(f"reserved or bad metric name {name!r}", data_topic(s, "sw"), json.dumps(doc).encode())
    for _ in range(10):
        s = agent()
        doc = valid_batch(s, "sw", next(seq))
        doc["metrics"][0]["samples"] = [0] * (DEFAULT_LIMITS.max_samples + 1)
        add("one sample over the limit", data_topic(s, "sw"), json.dumps(doc).encode())
    for i in range(100):
        s, other = agent(), agent()
        if i % 3 == 0:
            doc, topic = valid_batch(other + "x", "sw", next(seq)), data_topic(s, "sw")
        elif i % 3 == 1:
            doc, topic = valid_batch(s, "router", next(seq)), data_topic(s, "sw")
        else:
            doc, topic = valid_status(other + "x"), status_topic(s)
        add("identity spoof", topic, json.dumps(doc).encode())
    for i in range(300):
        s = agent()
        suffix = f"{i}{rng.randrange(10**6)}"
        topic = rng.choice([
            f"hatang/v1/agents/XA-{suffix}/data/sw", f"hatang/v1/agents/{s}/data",
            f"hatang/v1/agents/{s}/data/sw/{suffix}", f"hatang/v1/agents/{s}/bogus{suffix}",
            f"hatang/v1/agents/{s}/status/{suffix}", f"hatang/v1/agents//data/{suffix}",
            f"hatang/v1/agents/{s}/data/Đại-Đình-{suffix}", f"hatang/v1/agents/{s}/data/{'d' * 300}{suffix}",
            f"hatang/v1/agents/{'a' * 64}{suffix}/status", f"hatang/v1/agents/{s}/data/sw {suffix}",
            f"hatang/v1/agents/{s}/data/.{suffix}", f"hatang/v1/agents/{s}/data/@self{suffix}",
            f"hatang/v1/agents/{s}/self/{suffix}", f"hatang/v1/agents/{s}/events/{suffix}",
            f"hatang/v1/agents/{s}", f"hatang/v1/agents/{s}/replay/a/b/c/{suffix}",
            f"hatang/v1/agents/{suffix}/",
        ])
        add("odd topic levels", topic, json.dumps(valid_batch(s, "sw", next(seq))).encode())
    for _ in range(40):
        s = agent()
        version = rng.choice([0, 2, "1", 1.5, None, [1], True])
        doc = {**valid_batch(s, "sw", next(seq)), "v": version}
        add("wrong version", data_topic(s, "sw"), json.dumps(doc).encode())
    # Random documents, random bytes, and valid messages with one field replaced by random JSON.
    while len(out) < count:
        roll = rng.random()
        s = agent()
        if roll < 0.15:
            topic = rng.choice([data_topic(s, "sw"), status_topic(s), events_topic(s), self_topic(s)])
            add("random JSON", topic, dumps(rand_json(rng), rng))
        elif roll < 0.22:
            add("random bytes", data_topic(s, "sw"), rng.randbytes(rng.randrange(1, 300)))
        elif roll < 0.32:
            keys = rng.sample(["agent", "boot", "seq", "ts", "device", "metrics", "site", "up"], 4)
            doc = {"v": 1, "type": "poll", **{k: rand_json(rng) for k in keys}}
            add("random JSON with a poll envelope", data_topic(s, "sw"), dumps(doc, rng))
        elif roll < 0.70:
            s = stable_agent()
            device = rng.choice(["sw", "ups"])
            add("mutated poll", data_topic(s, device),
                dumps(_mutate(rng, valid_batch(s, device, rng.randrange(1, 10**6))), rng))
        elif roll < 0.85:
            s = stable_agent()
            add("mutated status", status_topic(s), dumps(_mutate(rng, valid_status(s)), rng))
        else:
            s = stable_agent()
            doc = _mutate(rng, valid_trap(s, rng.randrange(1, 10**6)))
            add("mutated trap", events_topic(s), dumps(doc, rng))
    rng.shuffle(out)
    # Last, in this order: a jump in seq after a poll of the same boot is counted as a gap.
    finale = []
    for small, huge in ((1, 2**64), (2, 2**200), (3, 2**1100)):
        for number, kind in ((small, "valid poll"), (huge, f"seq of {huge.bit_length()} bits")):
            doc = valid_batch("xa-seq", "sw", number)
            finale.append(Hostile(kind, data_topic("xa-seq", "sw"), json.dumps(doc).encode()))
    return out[: count - len(finale)] + finale


@dataclass
class Oracle:
    """What the collector should make of the corpus, from the same decoding code run in-process."""

    sendable: list[Hostile] = field(default_factory=list)
    crashers: list[tuple[Hostile, str]] = field(default_factory=list)  # the in-process store raised
    rejects_after: list[Counter[str]] = field(default_factory=list)  # cumulative, after each sendable


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def predict(corpus: list[Hostile]) -> Oracle:
    oracle = Oracle()
    with _quiet("hatang.collector.store"):
        probe = Store(CollectorMetrics(), DEFAULT_LIMITS)
        for message in corpus:
            try:
                probe.ingest(message.topic, message.payload)
            except Exception as exc:
                oracle.crashers.append((message, f"{type(exc).__name__}: {exc}"[:200]))
            else:
                oracle.sendable.append(message)
        while True:  # replay what the collector will see, in its order; a new crasher goes to the end too
            store = Store(CollectorMetrics(), DEFAULT_LIMITS)
            totals: Counter[str] = Counter()
            oracle.rejects_after = []
            for i, message in enumerate(oracle.sendable):
                try:
                    verdict = store.ingest(message.topic, message.payload)
                except Exception as exc:
                    oracle.crashers.append((oracle.sendable.pop(i), f"{type(exc).__name__}: {exc}"[:200]))
                    break
                if verdict.startswith("rejected:"):
                    totals[verdict.removeprefix("rejected:")] += 1
                oracle.rejects_after.append(Counter(totals))
            else:
                return oracle


# ------------------------------------------------------------------------------------------- MQTT clients


@dataclass(frozen=True)
class Sent:
    ts: float
    uptime: float
    in_bytes: int


class GoodAgent(threading.Thread):
    """Publishes a valid, live poll every 0.2 s and remembers exactly what it sent."""

    def __init__(self, broker: Mosquitto) -> None:
        super().__init__(name="good-agent", daemon=True)
        self.publisher = Publisher(broker, "good-agent")
        self.sent: dict[int, Sent] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.boot = uuid.uuid4().hex

    def batch(self, seq: int) -> tuple[bytes, Sent]:
        sent = Sent(time.time(), seq * 1.5, seq * 1_000 + 2**40)
        payload = encode_batch(PollBatch(
            agent=GOOD_AGENT, boot_id=self.boot, seq=seq, ts=sent.ts,
            device=GOOD_DEVICE, interval=GOOD_INTERVAL, up=True, duration=0.05,
            site=(("commune", "Đại Đình"), ("province", "Vĩnh Phúc")),
            families=(
                Family("hatang_device_uptime_seconds", "gauge", "Uptime.", (Sample((), sent.uptime),)),
                Family("hatang_interface_in_bytes_total", "counter", "Bytes in.",
                       (Sample((("if_index", "1"), ("if_alias", 'Đường "chuyên" dùng\\')), sent.in_bytes),)),
            ),
        ))
        return payload, sent

    def run(self) -> None:
        seq = 0
        try:
            while not self.stop.is_set():
                seq += 1
                payload, sent = self.batch(seq)
                with self._lock:
                    self.sent[seq] = sent
                self.publisher.publish([(data_topic(GOOD_AGENT, GOOD_DEVICE), payload)], timeout=30)
                self.stop.wait(0.2)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def snapshot(self) -> dict[int, Sent]:
        with self._lock:
            return dict(self.sent)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=35)
        self.publisher.close()


# ------------------------------------------------------------------------------------------- checks


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


REJECTED_LINE = re.compile(r'^hatang_collector_rejected_messages_total\{reason="([a-z_]+)"\} (\S+)$', re.M)


def rejected(text: str) -> Counter[str]:
    """Rejects by reason, read straight from the text (cheap: no full parse while polling)."""
    return Counter({reason: int(float(value)) for reason, value in REJECTED_LINE.findall(text)})


def check_exposition(text: str, *, strict: bool = False) -> Series:
    """Parse with prometheus_client; with ``strict``, also with promtool's Go parser (expfmt) when it is
    installed (it is quadratic in labels per line: a few seconds for the 3,000-label series)."""
    list(text_string_to_metric_families(text))
    promtool = shutil.which("promtool")
    if strict and promtool is not None:
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                timeout=60, check=False)
        assert "parsing error" not in result.stdout + result.stderr, (result.stdout + result.stderr)[:2000]
    return parse(text)


def check_good_agent(series: Series, agent: GoodAgent) -> int:
    """The good device's series equal one poll it sent, consistently; return that poll's seq."""
    sent = agent.snapshot()
    uptime = one(series, "hatang_device_uptime_seconds", agent=GOOD_AGENT, device=GOOD_DEVICE)
    assert uptime is not None, "the good agent's series vanished"
    seq = round(uptime / 1.5)
    assert seq in sent and sent[seq].uptime == uptime, f"uptime {uptime} was never sent"
    in_bytes = one(series, "hatang_interface_in_bytes_total", agent=GOOD_AGENT, if_index="1")
    assert in_bytes is not None and float(in_bytes) == float(sent[seq].in_bytes), (in_bytes, sent[seq])
    last_poll = one(series, "hatang_device_last_poll_timestamp_seconds", agent=GOOD_AGENT, device=GOOD_DEVICE)
    assert last_poll == sent[seq].ts, f"poll {seq}: timestamp {last_poll} != sent {sent[seq].ts}"
    assert one(series, "hatang_device_up", agent=GOOD_AGENT, device=GOOD_DEVICE) == 1
    assert one(series, "hatang_agent_up", agent=GOOD_AGENT) == 1
    return seq


def reject_log_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "rejected message on " in line]


def caught_up(url: str, want: Counter[str]) -> bool:
    return rejected(scrape(url)) == want


def serves_poll(url: str, agent: GoodAgent, seq: int) -> bool:
    return check_good_agent(parse(scrape(url)), agent) >= seq


def metric_is(url: str, value: float, name: str, **labels: str) -> bool:
    return one(parse(scrape(url)), name, **labels) == value


def max_reject_lines(reasons: int, seconds: float) -> int:
    """RejectLog: the first of each reason at once, then at most one per reason per LOG_EVERY."""
    return reasons * (1 + math.ceil(seconds / LOG_EVERY))


# ------------------------------------------------------------------------------------------- tests


def test_a_flood_of_hostile_payloads_leaves_the_collector_serving_the_good_agent(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    started = time.monotonic()
    corpus = build_corpus(random.Random(SEED), HOSTILE_MESSAGES)
    oracle = predict(corpus)
    kinds = Counter(m.kind for m in corpus)
    assert kinds["10 MB random blob"] == 4 and kinds["100,000 nested levels"] == 20
    assert len({m.topic for m in corpus}) > 500, "the flood should hit many distinct topics"
    sendable = oracle.sendable
    assert len(sendable) >= HOSTILE_MESSAGES * 0.9, [c[1] for c in oracle.crashers[:5]]
    expected = oracle.rejects_after[-1]
    # The corpus exercises every documented reason (the oracle is the collector's own code).
    documented = {"too_large", "json", "version", "schema", "too_many_samples", "identity", "topic"}
    assert documented <= set(expected), expected

    collector = start_collector()
    pid = collector.process.pid
    good = GoodAgent(mosquitto)
    good.start()
    hostile = Publisher(mosquitto, "hostile")
    try:
        wait_for_series(collector.url, "hatang_device_uptime_seconds", timeout=15, agent=GOOD_AGENT)
        flood_started = time.monotonic()
        base = rejected(scrape(collector.url))
        rss_at: dict[int, int] = {0: rss_bytes(pid)}
        seen_seqs: list[int] = []
        for start in range(0, len(sendable), CHUNK):
            chunk = sendable[start : start + CHUNK]
            hostile.publish([(m.topic, m.payload) for m in chunk])
            done = start + len(chunk)
            want = base + oracle.rejects_after[done - 1]
            try:
                wait_until(functools.partial(caught_up, collector.url, want), 30, interval=0.1,
                           message=f"rejects {dict(want)}")
            except AssertionError:
                got = rejected(scrape(collector.url))
                raise AssertionError(f"after {done} hostile messages the collector counted "
                                     f"{dict(got - base)} rejects, expected {dict(want - base)}; "
                                     f"running: {collector.process.running()}") from None
            assert good.error is None, good.error
            checkpoint = start < RSS_CHECKPOINT <= done or done == len(sendable)
            series = check_exposition(scrape(collector.url), strict=checkpoint)
            seen_seqs.append(check_good_agent(series, good))
            if checkpoint:
                rss_at[RSS_CHECKPOINT if done < len(sendable) else len(sendable)] = rss_bytes(pid)

        # Counted by reason, exactly as the collector's own code says, and nothing else counted.
        final = rejected(scrape(collector.url))
        assert final - base == expected
        assert set(final) <= set(REJECT_REASONS)
        # The good agent's data kept flowing: always one of its polls, never older than the one before.
        assert seen_seqs == sorted(seen_seqs) and seen_seqs[-1] > seen_seqs[0], seen_seqs
        latest = max(good.snapshot())
        wait_until(lambda: check_good_agent(parse(scrape(collector.url)), good) >= latest, 10,
                   message=f"the good agent's poll {latest} to be served")
        # Bounded memory: below the ceiling, and not growing with the number of messages.
        rss_end = rss_at[len(sendable)]
        assert rss_end < MAX_RSS_BYTES, f"RSS {rss_end / 2**20:.0f} MiB"
        growth = rss_end - rss_at[RSS_CHECKPOINT]
        assert growth < MAX_RSS_GROWTH_AFTER_CHECKPOINT, (
            f"RSS grew {growth / 2**20:.0f} MiB from message {RSS_CHECKPOINT} to {len(sendable)} "
            f"(start {rss_at[0] / 2**20:.0f} MiB, at {RSS_CHECKPOINT}: "
            f"{rss_at[RSS_CHECKPOINT] / 2**20:.0f} MiB)")
        # Bounded log: rate-limited per reason; every reason still shows up; every line truncated.
        lines = reject_log_lines(collector.process.log())
        bound = max_reject_lines(len(expected), time.monotonic() - flood_started)
        assert len(lines) <= bound, f"{len(lines)} reject log lines for {sum(expected.values())} rejects"
        logged = {reason for reason in expected if any(f": {reason}: " in line for line in lines)}
        assert logged == set(expected), "the first reject of every reason should be logged"
        longest = max(len(line) for line in lines)
        assert longest <= MAX_REJECT_LOG_LINE, f"a reject log line of {longest} characters"
        assert collector.process.running()

        # Last, what the in-process store could not handle: the collector must survive it all the same.
        for message, error in oracle.crashers:
            hostile.publish([(message.topic, message.payload)])
            latest = max(good.snapshot())
            try:
                wait_until(functools.partial(serves_poll, collector.url, good, latest), 10,
                           message="the good agent's poll after a crasher", ignore=(OSError,))
            except AssertionError:
                raise AssertionError(
                    f"the collector died on {message.kind!r} ({error}); topic {message.topic}, payload "
                    f"{message.payload[:300]!r}; {len(oracle.crashers)} of {len(corpus)} hostile messages "
                    "raise in Store.ingest") from None
    finally:
        good.close()
        hostile.close()
    assert time.monotonic() - started < 120


MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "kind is a list": lambda doc: doc.update(kind=[]),
    "kind is an object": lambda doc: doc.update(kind={"device": 1}),
    "metric type is a list": lambda doc: doc["metrics"][0].update(type=["gauge"]),
    "ts is 2**1100": lambda doc: doc.update(ts=2**1100),
    "interval is 10**400": lambda doc: doc.update(interval=10**400),
    "sample value is 2**1024": lambda doc: doc["metrics"][0]["samples"][0].update(value=2**1024),
}


def test_malformed_fields_that_raise_in_the_store_are_schema_rejects(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    """Store.ingest runs in the subscriber's message loop and catches only DecodeError/TopicError: any
    other exception from decoding ends the subscriber task and, through the TaskGroup, the process. These
    inputs raised TypeError (unhashable ``kind``/``type``) or OverflowError (``now - ts`` with an int
    beyond float64) before wire/validation.py checked them."""
    collector = start_collector()
    publisher = Publisher(mosquitto, "one-bad")
    try:
        for seq, mutate in enumerate(MALFORMED.values(), start=1):
            doc = valid_batch("xa-a", "sw", seq)
            mutate(doc)
            publisher.publish([(data_topic("xa-a", "sw"), json.dumps(doc).encode())])
        # Was a bug (wire/validation.py seq_field had no upper bound): after seq 1, seq 2**1100 of the same
        # boot is a gap of 2**1100 - 2, and CollectorMetrics.gap -> prometheus_client Counter.inc(float +
        # int) raised OverflowError out of Store.ingest.
        for seq in (1, 2**1100):
            payload = json.dumps(valid_batch("xa-c", "sw", seq)).encode()
            publisher.publish([(data_topic("xa-c", "sw"), payload)])
        publisher.publish([(data_topic("xa-b", "sw"), json.dumps(valid_batch("xa-b", "sw", 1)).encode())])
        try:
            series = wait_for_series(collector.url, "hatang_hostile_test", timeout=10, agent="xa-b")
        except AssertionError:
            raise AssertionError(f"the collector stopped serving (running: {collector.process.running()})"
                                 f"; log tail:\n{collector.process.log()[-1500:]}") from None
        assert one(series, "hatang_collector_rejected_messages_total", reason="schema") == len(MALFORMED) + 1
        assert not find(series, "hatang_hostile_test", agent="xa-a")
    finally:
        publisher.close()


def retained_growth(pid: int, rounds: list[Callable[[], None]]) -> list[int]:
    """RSS growth over each round after the first. RSS after one round is mostly the allocator's high-water
    mark (freed memory is kept for reuse); more rounds of the same size grow it again only if something
    is retained, so later rounds tell retention from a peak."""
    rounds[0]()
    sizes = [rss_bytes(pid)]
    for publish in rounds[1:]:
        publish()
        sizes.append(rss_bytes(pid))
    return [b - a for a, b in itertools.pairwise(sizes)]


def test_reject_logging_stays_bounded_on_distinct_long_topics_and_is_never_silenced(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    """MQTT allows 65,535-byte topics. Rejects on many distinct long topics must neither accumulate in
    memory nor flood the log; and a reject of another reason afterwards is still logged at once."""
    collector = start_collector()
    publisher = Publisher(mosquitto, "long-topics")
    per_round, level, rounds, step = 300, 60_000, 3, 100
    started = time.monotonic()

    def flood(r: int) -> Callable[[], None]:
        def publish() -> None:  # paced, so that no more than a step waits in the collector's queue
            for start in range(r * per_round, (r + 1) * per_round, step):
                publisher.publish([(f"hatang/v1/agents/xa-a/data/{i:06d}{'x' * level}", b"{}")
                                   for i in range(start, start + step)])
                wait_until(functools.partial(metric_is, collector.url, start + step,
                                             "hatang_collector_rejected_messages_total", reason="topic"),
                           30, interval=0.05, message=f"{start + step} topic rejects")
        return publish

    try:
        growth = retained_growth(collector.process.pid, [flood(r) for r in range(rounds)])
        per_round_bytes = per_round * level
        assert max(growth) < per_round_bytes / 3, (
            f"RSS grew {[g // 2**20 for g in growth]} MiB over rounds of {per_round} rejects on distinct "
            f"{level}-byte topics ({per_round_bytes // 2**20} MiB of topic names each): topics are retained")
        spoof = data_topic("xa-real", "core")
        publisher.publish([(spoof, json.dumps(valid_batch("xa-other", "core", 1)).encode())])
        wait_until(lambda: rejected(scrape(collector.url))["identity"] == 1, 10,
                   message="the identity reject")
        log = collector.process.log()
        lines = reject_log_lines(log)
        assert len(lines) <= max_reject_lines(2, time.monotonic() - started), len(lines)
        assert f"rejected message on {spoof}: identity" in log, "a new reason was not logged at once"
        assert max(len(line) for line in lines) <= MAX_REJECT_LOG_LINE
    finally:
        publisher.close()


def _family_batch(agent: str, seq: int, families: list[tuple[str, MetricType, list[float]]]) -> bytes:
    return encode_batch(PollBatch(
        agent=agent, boot_id="b", seq=seq, ts=time.time(), device="sw", interval=60, up=True, duration=0.1,
        families=tuple(
            Family(name, mtype, "h", tuple(Sample((("i", str(k)),), v) for k, v in enumerate(values)))
            for name, mtype, values in families
        ),
    ))


def test_one_agent_cannot_poison_the_metric_type_of_another(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    """BUG collector/store.py Store._ingest_batch (``self.metric_types``): the first agent to send a metric
    name fixes its type for every agent, for the life of the process. A compromised or misconfigured
    office that sends ``hatang_interface_in_bytes_total`` as a gauge (e.g. right after a collector
    restart) gets every other office's interface counters rejected as ``schema``."""
    collector = start_collector()
    publisher = Publisher(mosquitto, "poison")
    try:
        name = "hatang_interface_in_bytes_total"
        evil = _family_batch("xa-evil", 1, [(name, "gauge", [1])])
        publisher.publish([(data_topic("xa-evil", "sw"), evil)])
        publisher.publish([(data_topic(GOOD_AGENT, "sw"),
                            _family_batch(GOOD_AGENT, 1, [(name, "counter", [42]),
                                                          ("hatang_device_uptime_seconds", "gauge", [7])]))])
        series = wait_for_series(collector.url, "hatang_device_uptime_seconds", timeout=10, agent=GOOD_AGENT)
    except AssertionError:
        rejects = rejected(scrape(collector.url))
        raise AssertionError(f"the good agent's poll was not served after another agent sent {name} as a "
                             f"gauge; rejects: {dict(rejects)}") from None
    finally:
        publisher.close()
    assert one(series, name, agent=GOOD_AGENT, i="0") == 42


def test_rejected_polls_leave_no_metric_names_behind(
    mosquitto: Mosquitto, start_collector: Callable[..., Collector]
) -> None:
    """BUG collector/store.py Store._ingest_batch: ``metric_types.setdefault`` runs for each family before
    the type check fails, and nothing ever removes a name. A poll of thousands of families with no samples
    (free under the per-agent series cap) whose last family contradicts a known type is rejected, yet
    leaves every other name in memory for good: one agent can grow the collector without bound. (Whether
    such a poll is rejected or, after a fix, accepted, the names of polls that are gone must not stay.)"""
    collector = start_collector()
    publisher = Publisher(mosquitto, "names")
    per_round, per_message, width, rounds, step = 40, 3_500, 200, 3, 4
    try:
        first = _family_batch("xa-a", 1, [("hatang_known", "gauge", [1])])
        publisher.publish([(data_topic("xa-a", "sw"), first)])
        wait_for_series(collector.url, "hatang_known", timeout=10, agent="xa-a")

        def flood(r: int) -> Callable[[], None]:
            def publish() -> None:  # paced, so that no more than a step waits in the collector's queue
                for m in range(r * per_round, (r + 1) * per_round):
                    families: list[tuple[str, MetricType, list[float]]] = [
                        (f"hatang_{m:03d}_{i:05d}_{'n' * width}", "gauge", []) for i in range(per_message)]
                    payload = _family_batch("xa-a", m + 2, [*families, ("hatang_known", "counter", [1])])
                    assert len(payload) < DEFAULT_LIMITS.max_payload_bytes
                    publisher.publish([(data_topic("xa-a", "sw"), payload)])
                    if (m + 1) % step == 0:
                        handled = 1 + m + 1  # counted after the identity check, before the type check
                        wait_until(functools.partial(metric_is, collector.url, handled,
                                                     "hatang_collector_messages_total", kind="data"),
                                   30, interval=0.05, message=f"{handled} data messages handled")
            return publish

        growth = retained_growth(collector.process.pid, [flood(r) for r in range(rounds)])
        names = per_round * per_message
        assert max(growth) < names * width / 2, (
            f"RSS grew {[g // 2**20 for g in growth]} MiB over rounds of {per_round} rejected polls, "
            f"each round carrying {names} new {width}-character metric names: the names stay in "
            "Store.metric_types")
    finally:
        publisher.close()

"""Prometheus remote write (protocol 1.0): protobuf + snappy, with retry and a bounded queue.

Used for samples that arrive too late to be scraped (replayed after an outage) and, in push mode, for
every sample. The protobuf encoding of ``WriteRequest`` is small enough to write by hand (no protobuf
dependency); snappy block compression comes from ``cramjam`` (this is the only module importing it).
Each endpoint has its own queue and task, so one slow store never holds up another.

A :class:`Receipt` follows the samples of one MQTT message through every endpoint's queue: it
completes once each endpoint has stored them, refused them as bad input (4xx) or dropped them (queue
full). The collector acknowledges the message to the broker only then (push mode), so a collector
killed with samples still queued gets the message again after its restart.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import cramjam

from collector.redact import redact_url, scrub, strip_userinfo, url_secrets
from wire.messages import Labels

log = logging.getLogger("hatang.collector.remote_write")


@dataclass(frozen=True, slots=True)
class Series:
    """One time series with its samples: labels include ``__name__``; timestamps in milliseconds."""

    labels: Labels
    samples: tuple[tuple[float, int], ...]  # (value, timestamp ms)


# --- protobuf encoding (pure) ---------------------------------------------------------------------

_SMALL = [bytes([i]) for i in range(0x80)]  # one-byte varints
_MASK64 = 0xFFFFFFFFFFFFFFFF
_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


class _LabelFields(dict[tuple[str, str], bytes]):
    """``TimeSeries.labels`` field (1) holding one ``Label``, by (name, value). Cached: the same label
    pairs (agent, device, site, interface names) repeat in every poll, and this is most of the encoding
    cost. A dict with ``__missing__`` so that ``map`` looks up a whole series' labels in C."""

    def __missing__(self, label: tuple[str, str]) -> bytes:
        name, value = label
        field = _field_bytes(1, _field_bytes(1, name.encode()) + _field_bytes(2, value.encode()))
        if len(self) >= MAX_LABEL_FIELDS:
            self.clear()
        self[label] = field
        return field


MAX_LABEL_FIELDS = 1 << 17
_label_fields = _LabelFields()
_join = b"".join


def _sample_parts(timestamp_ms: int) -> tuple[bytes, bytes]:
    """What comes before and after the value in a ``TimeSeries.samples`` field (2) of this timestamp:
    the field's tag and length (a Sample is at most 1 + 8 + 11 bytes: one length byte) and
    Sample.value's tag (field 1, double: fixed 64-bit little endian); then Sample.timestamp (field 2,
    int64 varint)."""
    tail = b"\x10" + _varint(timestamp_ms & _MASK64)
    return b"\x12" + _SMALL[9 + len(tail)] + b"\x09", tail


def encode_write_request(series: Iterable[Series]) -> bytes:
    """Serialize a ``prometheus.WriteRequest``. Labels are sorted by name, as the protocol requires."""
    field = _label_fields.__getitem__
    stamps: dict[int, tuple[bytes, bytes]] = {}
    out: list[bytes] = []
    append = out.append
    for s in series:
        parts = list(map(field, sorted(s.labels)))
        for value, ts in s.samples:
            head_tail = stamps.get(ts)
            if head_tail is None:
                head_tail = stamps[ts] = _sample_parts(ts)
            parts += (head_tail[0], _double(float(value)), head_tail[1])
        body = _join(parts)
        size = len(body)
        if size < 0x4000:  # WriteRequest.timeseries: field 1, then the length as a varint
            append(b"\x0a" + _SMALL[size] if size < 0x80 else bytes((0x0A, (size & 0x7F) | 0x80, size >> 7)))
        else:
            append(b"\x0a" + _varint(size))
        append(body)
    return _join(out)


def compress(payload: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(payload))


HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "hatang-collector",
}

@dataclass(frozen=True, slots=True)
class Endpoint:
    """One remote-write endpoint: what is requested, and what may be shown of it.

    ``url`` is requested as is (never with ``user:password@``: :meth:`of` moves those into a basic auth
    header); ``name`` is the URL redacted, for labels and log lines; ``secrets`` are scrubbed from any
    error text that is logged."""

    url: str
    name: str
    headers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    max_samples: int | None = None  # None: the writer's default
    timeout: float | None = None

    @classmethod
    def of(cls, url: str, *, username: str | None = None, password: str | None = None,
           bearer_token: str | None = None, max_samples: int | None = None,
           timeout: float | None = None) -> Endpoint:
        secrets = url_secrets(url)
        plain, url_user, url_password = strip_userinfo(url)
        if url_user is not None and username is None:
            username, password = url_user, url_password or ""
        headers: list[tuple[str, str]] = []
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {token}"))
            secrets += [token, *([password] if password else [])]
        if bearer_token is not None:
            headers.append(("Authorization", f"Bearer {bearer_token}"))
            secrets.append(bearer_token)
        return cls(plain, redact_url(url), tuple(headers), tuple(s for s in secrets if len(s) >= 3),
                   max_samples, timeout)


# (url, body, headers, timeout) -> (HTTP status, response text); raises OSError/TimeoutError on failure
PostFn = Callable[[str, bytes, dict[str, str], float], Awaitable[tuple[int, str]]]


class Receipt:
    """Completion of one message's samples across all endpoints.

    ``hold`` once per endpoint queue that took samples, ``release`` when that queue is done with them,
    ``seal`` when no more samples will be added; callbacks registered with ``then`` run once, when the
    receipt is sealed and nothing is held (at once if that is already the case).
    """

    __slots__ = ("_callbacks", "_held", "_sealed")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._held = 0
        self._sealed = False

    @property
    def done(self) -> bool:
        return self._sealed and self._held == 0

    def hold(self) -> None:
        if self._sealed:
            raise RuntimeError("receipt already sealed")
        self._held += 1

    def release(self) -> None:
        self._held -= 1
        self._fire()

    def seal(self) -> None:
        self._sealed = True
        self._fire()

    def then(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self._callbacks.append(callback)

    def _fire(self) -> None:
        if self.done:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()


# A queued series; the receipt rides on the last series of its message in each queue (queues are FIFO,
# so when that series is done, so are the message's earlier ones).
Item = tuple[Series, Receipt | None]


class EndpointQueue:
    """Series waiting for one endpoint; bounded by samples, dropping the oldest when full."""

    def __init__(self, url: str, *, max_samples: int, batch_samples: int,
                 endpoint: Endpoint | None = None) -> None:
        self.endpoint = endpoint if endpoint is not None else Endpoint.of(url)
        self.url = self.endpoint.name  # redacted: this is what labels and logs show
        self.headers = {**HEADERS, **dict(self.endpoint.headers)}
        self.max_samples = max_samples
        self.batch_samples = batch_samples
        self.items: deque[Item] = deque()
        self.samples = 0
        self.dropped = 0
        self.sent = 0
        self.rejected = 0
        self.failures = 0
        self.inflight = 0  # samples taken and being posted
        self.wakeup = asyncio.Event()

    def put(self, series: Sequence[Series], receipt: Receipt | None = None) -> None:
        if receipt is not None and series:
            receipt.hold()
        last = len(series) - 1
        for i, s in enumerate(series):
            self.items.append((s, receipt if i == last else None))
            self.samples += len(s.samples)
        while self.samples > self.max_samples and self.items:
            old, old_receipt = self.items.popleft()
            self.samples -= len(old.samples)
            self.dropped += len(old.samples)
            if old_receipt is not None:  # lost and counted: holding the message back would not help
                old_receipt.release()
        self.wakeup.set()

    def take(self) -> list[Item]:
        batch: list[Item] = []
        count = 0
        while self.items and count < self.batch_samples:
            item = self.items.popleft()
            batch.append(item)
            count += len(item[0].samples)
        self.samples -= count
        return batch

    def put_back(self, batch: list[Item]) -> None:
        self.items.extendleft(reversed(batch))
        self.samples += sum(len(s.samples) for s, _ in batch)

    @staticmethod
    def finish(batch: list[Item]) -> None:
        """The endpoint is done with ``batch`` (stored or refused): release the receipts riding on it."""
        for _, receipt in batch:
            if receipt is not None:
                receipt.release()


class RemoteWriter:
    def __init__(
        self,
        urls: Sequence[str | Endpoint],
        post: PostFn,
        *,
        max_samples: int = 1_000_000,
        batch_samples: int = 2_000,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
    ) -> None:
        endpoints = [u if isinstance(u, Endpoint) else Endpoint.of(u) for u in urls]
        self.queues = [EndpointQueue(e.name, endpoint=e, batch_samples=batch_samples,
                                     max_samples=e.max_samples or max_samples) for e in endpoints]
        self._post = post
        self._timeout = timeout
        self._max_backoff = max_backoff

    def submit(self, series: Sequence[Series], receipt: Receipt | None = None) -> None:
        """Queue ``series`` for every endpoint; ``receipt`` (if any) completes when all are done."""
        if series:
            for queue in self.queues:
                queue.put(series, receipt)

    def pending(self) -> int:
        return sum(q.samples for q in self.queues)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for queue in self.queues:
                group.create_task(self._run_endpoint(queue), name=f"remote-write:{queue.url}")

    async def _run_endpoint(self, queue: EndpointQueue) -> None:
        backoff = 0.5
        failing = False
        while True:
            if not queue.items:
                queue.wakeup.clear()
                await queue.wakeup.wait()
                continue
            batch = queue.take()
            body = compress(encode_write_request(s for s, _ in batch))
            samples = sum(len(s.samples) for s, _ in batch)
            queue.inflight = samples
            endpoint = queue.endpoint
            try:
                status, text = await self._post(endpoint.url, body, queue.headers,
                                                endpoint.timeout or self._timeout)
            except (OSError, TimeoutError) as exc:
                status, text = 0, str(exc) or type(exc).__name__
            finally:
                queue.inflight = 0
            text = scrub(text, endpoint.secrets)  # an error may quote the URL or a header
            if 200 <= status < 300:
                queue.sent += samples
                queue.finish(batch)
                if failing:
                    log.info("remote write to %s works again", queue.url)
                failing, backoff = False, 0.5
                continue
            if status in (0, 429) or status >= 500:  # the store is down or busy: keep the data, retry
                queue.put_back(batch)
                queue.failures += 1
                if not failing:
                    log.warning("remote write to %s failed (%s %s); retrying with backoff",
                                queue.url, status or "connection", text[:200])
                failing = True
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
                continue
            queue.rejected += samples  # 4xx: the store refuses these samples (too old, malformed)
            queue.finish(batch)  # bad input: sending it again would not help
            log.warning("remote write to %s rejected %d samples: %s %s", queue.url, samples, status,
                        text[:200])

    async def flush(self, timeout: float) -> bool:
        """Wait until every queue is empty (on shutdown); False if ``timeout`` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(q.items or q.inflight for q in self.queues):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

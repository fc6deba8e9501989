"""The collector's HTTP server on a real loopback socket (in-process aiohttp): connections bounded with
the oldest idle one closed for a new one, half-sent requests and slow readers cut by their time-outs,
so /healthz keeps answering (collector/http.py; the full-process load test is test_metrics_load.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from collector.http import HttpLimits, HttpServer, make_app
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from wire.codec import Limits, encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import data_topic

pytestmark = pytest.mark.integration


async def server(limits: HttpLimits, samples: int = 10) -> HttpServer:
    store = Store(CollectorMetrics(), Limits(max_samples=200_000, max_payload_bytes=64 << 20))
    family = Family("hatang_interface_in_bytes_total", "counter", "Bytes.", tuple(
        Sample((("if_index", str(i)), ("if_alias", "Đường truyền số liệu chuyên dùng " * 2)), i)
        for i in range(samples)))
    assert store.ingest(data_topic("a", "sw"), encode_batch(PollBatch(
        agent="a", boot_id="b", seq=1, ts=time.time(), device="sw", interval=600, up=True, duration=0.1,
        families=(family,)))) == "accepted"
    http = HttpServer(make_app(store, lambda: True, limits), "127.0.0.1", 0, limits)
    await http.start()
    return http


@pytest.fixture
async def servers() -> AsyncIterator[list[HttpServer]]:
    started: list[HttpServer] = []
    yield started
    for http in started:
        await http.stop()


async def healthz(port: int) -> float:
    t0 = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 1)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n"), answer
    return time.monotonic() - t0


async def test_half_open_connections_beyond_the_bound_never_block_healthz(servers: list[HttpServer]) -> None:
    http = await server(HttpLimits(max_connections=8, request_timeout=30))
    servers.append(http)
    held = []
    for _ in range(40):
        reader, writer = await asyncio.open_connection("127.0.0.1", http.bound_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        held.append((reader, writer))
    await asyncio.sleep(0.1)
    assert await healthz(http.bound_port) < 1.0
    assert len(http._open) <= 8
    assert http.evicted >= 32
    closed = 0
    for reader, writer in held:  # the oldest ones were closed for the newer
        with contextlib.suppress(TimeoutError):
            closed += await asyncio.wait_for(reader.read(), 0.2) == b""
        writer.close()
    assert closed >= 32


async def test_a_half_sent_request_is_closed_after_the_request_timeout(servers: list[HttpServer]) -> None:
    http = await server(HttpLimits(max_connections=8, request_timeout=0.5))
    servers.append(http)
    reader, writer = await asyncio.open_connection("127.0.0.1", http.bound_port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.4 < time.monotonic() - t0 < 3
    writer.close()


async def test_a_reader_that_never_reads_is_cut_after_the_write_timeout(servers: list[HttpServer]) -> None:
    http = await server(HttpLimits(max_connections=8, write_timeout=1.0), samples=60_000)
    servers.append(http)
    _, writer = await asyncio.open_connection("127.0.0.1", http.bound_port, limit=1024)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    assert len(http._open) == 1
    await asyncio.sleep(2.5)  # the page (~6 MB) cannot fit in the socket buffers: the server gave up
    assert len(http._open) == 0
    assert await healthz(http.bound_port) < 1.0
    writer.close()


async def test_concurrent_scrapes_get_the_same_complete_page(servers: list[HttpServer]) -> None:
    http = await server(HttpLimits(), samples=5000)
    servers.append(http)

    async def scrape() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.bound_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data.partition(b"\r\n\r\n")[2]

    pages = await asyncio.gather(*(scrape() for _ in range(30)))
    assert all(page.count(b"hatang_interface_in_bytes_total{") == 5000 for page in pages)
    assert len({page.split(b"# HELP hatang_collector_")[0] for page in pages}) == 1

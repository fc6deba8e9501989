"""/metrics under load: a real ``hatang collector`` started with a low open-file limit (``prlimit
--nofile=256``) serving 10,000 device series (100,000 under ``-m soak``) to 50 concurrent scrapers, 100
slow readers (a byte every 10 ms) and 1,000 half-sent requests at once, more than its file limit. Its
memory stays bounded, /healthz answers within a second throughout, and its log grows by lines, not
megabytes (collector/http.py, collector/logguard.py). The figures are printed (pytest -s)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.hatang import HatangProcess, hatang_command, hatang_env, outside_cwd, write_yaml
from tests.support.mqtt_publisher import Publisher
from tests.support.services import Mosquitto, _spawn, free_tcp_port, require_binary
from tests.support.waiting import wait_until
from wire.codec import encode_batch
from wire.messages import Family, PollBatch, Sample
from wire.topics import data_topic

pytestmark = pytest.mark.integration

FILE_LIMIT = 256
SAMPLES_PER_DEVICE = 1000


@dataclass(eq=False)
class LimitedProcess(HatangProcess):
    """``hatang ARGS`` under ``prlimit --nofile=N:N`` (tests/support/hatang.py's HatangProcess cannot
    prefix a command yet)."""

    file_limit: int = FILE_LIMIT

    def start(self) -> LimitedProcess:
        prlimit = require_binary("prlimit", "util-linux")
        self.proc = _spawn([prlimit, f"--nofile={self.file_limit}:{self.file_limit}", "--", *hatang_command(),
                            *self.args], self.log_path, env=hatang_env(), cwd=outside_cwd())
        return self


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} for pid {pid}")


def load_series(mosquitto: Mosquitto, devices: int) -> None:
    publisher = Publisher(mosquitto, "load")
    try:
        messages = []
        for d in range(devices):
            samples = tuple(Sample((("if_index", str(i)), ("if_name", f"GigabitEthernet0/{i}")),
                                   float(i * 1000)) for i in range(SAMPLES_PER_DEVICE))
            family = Family("hatang_interface_in_bytes_total", "counter", "Bytes received.", samples)
            messages.append((data_topic("xa-tai", f"sw-{d}"), encode_batch(PollBatch(
                agent="xa-tai", boot_id="b", seq=d + 1, ts=time.time(), device=f"sw-{d}", interval=3600,
                up=True, duration=0.1, families=(family,)))))
        publisher.publish(messages, timeout=120)
    finally:
        publisher.close()


def get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


@dataclass
class Load:
    base: str
    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    scrapes: int = 0
    scrape_errors: int = 0
    slow_bytes: int = 0
    half_open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _spawn(self, target: object, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
            thread.start()
            self.threads.append(thread)

    def scraper(self) -> None:
        while not self.stop.is_set():
            try:
                get(self.base + "/metrics", 30)
                with self.lock:
                    self.scrapes += 1
            except (OSError, urllib.error.URLError):
                with self.lock:
                    self.scrape_errors += 1
                time.sleep(0.05)

    def slow_reader(self) -> None:
        with contextlib.suppress(OSError):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            while not self.stop.is_set():
                if not sock.recv(1):
                    break
                with self.lock:
                    self.slow_bytes += 1
                time.sleep(0.01)
            sock.close()

    def half_opener(self, count: int) -> None:
        for _ in range(count):
            if self.stop.is_set():
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(2)
            try:
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
            except OSError:
                sock.close()
                continue
            with self.lock:
                self.sockets.append(sock)
                self.half_open += 1

    def start(self, scrapers: int, slow: int, half_open: int) -> None:
        self._spawn(self.scraper, scrapers)
        self._spawn(self.slow_reader, slow)
        per = half_open // 10
        for _ in range(10):
            thread = threading.Thread(target=self.half_opener, args=(per,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def limited(tmp_path: Path, processes: list[HatangProcess]) -> Iterator[list[LimitedProcess]]:
    started: list[LimitedProcess] = []
    yield started
    processes.extend(started)  # stopped (and their logs shown on failure) by the e2e conftest


def run_load(tmp_path: Path, mosquitto: Mosquitto, limited: list[LimitedProcess], *, devices: int,
             seconds: float, max_growth_mb: float, max_rss_mb: float | None = None) -> None:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    config = write_yaml(tmp_path / "collector.yaml", {
        "mqtt": {"url": mosquitto.url}, "listen": f"127.0.0.1:{port}",
        "http": {"request_timeout": 5, "write_timeout": 30}})
    collector = LimitedProcess(["collector", "-c", str(config)], tmp_path / "collector.log").start()
    limited.append(collector)
    wait_until(lambda: get(base + "/healthz", 2), timeout=30, ignore=(OSError,), message="/healthz")
    assert Path(f"/proc/{collector.pid}/limits").read_text().count(f"{FILE_LIMIT}") >= 1
    load_series(mosquitto, devices)
    series = devices * SAMPLES_PER_DEVICE
    name = b"hatang_interface_in_bytes_total{"
    body = wait_until(lambda: (b := get(base + "/metrics", 30)) and b.count(name) >= series and b,
                      timeout=120, ignore=(OSError,), message=f"{series} series on /metrics")
    for _ in range(3):
        get(base + "/metrics", 30)
    baseline = rss_mb(collector.pid)
    log_before = collector.log_path.stat().st_size

    load = Load(base, port)
    peak = baseline
    latencies: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    load.start(scrapers=50, slow=100, half_open=1000)
    try:
        while time.monotonic() - started < seconds:
            t0 = time.monotonic()
            try:
                assert get(base + "/healthz", 1.0) == b"ok\n"
                latencies.append(time.monotonic() - t0)
            except (OSError, urllib.error.URLError) as exc:
                failures.append(f"{time.monotonic() - started:.1f}s: {exc!r}")
            peak = max(peak, rss_mb(collector.pid))
            time.sleep(0.1)
    finally:
        load.close()
    assert collector.running(), collector.log()[-3000:]
    hwm = rss_mb(collector.pid, "VmHWM")
    growth = collector.log_path.stat().st_size - log_before
    after = get(base + "/metrics", 30)
    latencies.sort()
    latencies = latencies or [float("inf")]
    print(f"\n{series} series, /metrics {len(body) / 1e6:.1f} MB: RSS baseline {baseline:.0f} MB, "
          f"peak sampled {peak:.0f} MB, VmHWM {hwm:.0f} MB; /healthz {len(latencies)} probes, p50 "
          f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
          f"{len(failures)} failed; {load.scrapes} full scrapes ({load.scrape_errors} cut), "
          f"{load.half_open} half-open connections made, slow readers read {load.slow_bytes} B; "
          f"log +{growth} B")
    assert not failures, failures[:10]
    assert latencies[-1] < 1.0
    assert load.scrapes >= 50, "concurrent scrapers got their pages"
    assert load.half_open >= 900, "the half-open connections were made (more than the file limit)"
    assert after.count(b"hatang_interface_in_bytes_total{") == series  # still serving everything
    assert peak - baseline < max_growth_mb, (baseline, peak)
    if max_rss_mb is not None:
        assert hwm < max_rss_mb, hwm
    assert growth < 64 * 1024, collector.log()[-5000:]  # lines, not megabytes


def test_metrics_survives_scrapers_slow_readers_and_half_open_connections(
    tmp_path: Path, mosquitto: Mosquitto, limited: list[LimitedProcess],
) -> None:
    run_load(tmp_path, mosquitto, limited, devices=10, seconds=15, max_growth_mb=80)


@pytest.mark.soak
def test_metrics_load_at_full_size(tmp_path: Path, mosquitto: Mosquitto,
                                   limited: list[LimitedProcess]) -> None:
    run_load(tmp_path, mosquitto, limited, devices=100, seconds=60, max_growth_mb=300, max_rss_mb=500)

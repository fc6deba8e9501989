"""A real VictoriaMetrics single node (Debian package ``victoria-metrics``) on a free loopback port.

Started with its own ``-storageDataPath`` under the caller's work directory and stopped by PID, like
the other services in tests/support/services.py. ``-dedup.minScrapeInterval=1ms`` is on by default, as
deploy/victoria-metrics/README.md recommends for hatang: a poll written twice (the broker sent a
message again after a collector restart) is stored once.

Checked by hand with VictoriaMetrics 1.79 (Debian 12): without the flag a sample written twice is
stored twice (``/api/v1/export`` returns both, ``count_over_time`` counts both); with it both return
one. Written samples become searchable within about a second; ``/internal/force_flush`` makes them
searchable at once.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import ServiceError, _Service, free_tcp_port, require_binary

READY_TIMEOUT = 30.0
START_ATTEMPTS = 3  # fresh ports when an auto-chosen one turned out to be taken
DEDUP = "1ms"


@dataclass(eq=False)
class VictoriaMetrics(_Service):
    host: str
    port: int
    pid: int
    config_path: Path  # VictoriaMetrics has no config file here; the data directory stands in for it
    log_path: Path
    data_dir: Path
    dedup: str | None = DEDUP
    binary: str = field(default="/usr/bin/victoria-metrics", repr=False)
    _proc: Any = field(default=None, repr=False)
    _ready_timeout: float = field(default=READY_TIMEOUT, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def _argv(self) -> list[str]:
        argv = [
            self.binary, f"-storageDataPath={self.data_dir}", f"-httpListenAddr={self.host}:{self.port}",
            "-loggerLevel=WARN", "-retentionPeriod=100y",
        ]
        if self.dedup:
            argv.append(f"-dedup.minScrapeInterval={self.dedup}")
        return argv

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _get(self, path: str, params: list[tuple[str, str]]) -> bytes:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
            body: bytes = response.read()
            return body

    def flush(self) -> None:
        """Make every sample written so far searchable now (instead of within about a second)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10) as response:
            response.read()

    def query(self, promql: str, time: float | None = None) -> Any:
        params = [("query", promql)] + ([("time", f"{time:.3f}")] if time is not None else [])
        doc = json.loads(self._get("/api/v1/query", params))
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def export(self, selector: str, start: float | None = None, end: float | None = None,
               ) -> list[tuple[dict[str, str], list[int], list[float]]]:
        """Stored raw samples of every series matching ``selector``: (labels, timestamps in ms, values).
        ``start``/``end`` in unix seconds."""
        params = [("match[]", selector)]
        if start is not None:
            params.append(("start", f"{start:.3f}"))
        if end is not None:
            params.append(("end", f"{end:.3f}"))
        out = []
        for line in self._get("/api/v1/export", params).splitlines():
            if line.strip():
                doc = json.loads(line)
                out.append((doc["metric"], [int(t) for t in doc["timestamps"]],
                            [float(v) for v in doc["values"]]))
        return out

    def metric(self, name: str) -> float:
        """Sum of one of VictoriaMetrics' own metrics (its /metrics page), e.g. vm_rows_inserted_total."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def start_victoria_metrics(workdir: Path, dedup: str | None = DEDUP) -> VictoriaMetrics:
    """VictoriaMetrics on a free 127.0.0.1 port with its data under ``workdir``; waits for /health.
    When ``CI=true`` a missing binary fails the test instead of skipping it."""
    binary = require_binary("victoria-metrics", "victoria-metrics")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"

    for attempt in range(START_ATTEMPTS):
        vm = VictoriaMetrics(
            host="127.0.0.1", port=free_tcp_port(), pid=0, config_path=data_dir,
            log_path=workdir / f"victoria-metrics-{attempt}.log", data_dir=data_dir, dedup=dedup,
            binary=binary,
        )
        try:
            vm.start()
            return vm
        except ServiceError as exc:
            # VictoriaMetrics says "bind: address already in use" (services.py looks for "Address ...")
            if "address already in use" not in str(exc).lower() or attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")

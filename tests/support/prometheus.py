"""A real Prometheus (Debian package ``prometheus``) on a free loopback port: scraping for the backfill
tests (:func:`start_prometheus`), or serving history written beforehand with ``promtool tsdb
create-blocks-from openmetrics`` (:func:`create_blocks`, :func:`start_prometheus_on_blocks`) for the
availability report's tests and benchmark."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import (
    _Service,
    _start_with_port_retry,
    free_tcp_port,
    require_binary,
)

READY_TIMEOUT = 30.0


@dataclass(eq=False)
class Prometheus(_Service):
    host: str
    port: int
    pid: int
    config_path: Path
    log_path: Path
    data_dir: Path
    binary: str = field(default="/usr/bin/prometheus", repr=False)
    _proc: Any = field(default=None, repr=False)
    _ready_timeout: float = field(default=READY_TIMEOUT, repr=False)
    extra_args: tuple[str, ...] = field(default=(), repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def _argv(self) -> list[str]:
        return [
            self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}", "--web.enable-remote-write-receiver",
            "--log.level=warn", *self.extra_args,
        ]

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            doc = json.loads(response.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def raw_samples(
        self, selector: str, start: float, end: float
    ) -> list[tuple[dict[str, str], list[float], list[float]]]:
        """Stored samples (not interpolated) of each series matching ``selector`` in [start, end]:
        (labels, timestamps in seconds, values)."""
        window = max(1, int(end - start + 1))
        data = self.api("query", query=f"{selector}[{window}s]", time=f"{end:.3f}")
        out = []
        for series in data["result"]:
            points = [(float(t), float(v)) for t, v in series["values"] if float(t) >= start]
            out.append((series["metric"], [t for t, _ in points], [v for _, v in points]))
        return out


def start_prometheus(workdir: Path, scrape_targets: list[str], scrape_interval: str = "1s") -> Prometheus:
    """Prometheus scraping ``scrape_targets`` like deploy/prometheus/prometheus.yml (honor_labels,
    job/instance dropped), with the remote-write receiver and an out-of-order window for backfill."""
    binary = require_binary("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        "storage:\n"
        "  tsdb:\n"
        "    out_of_order_time_window: 2h\n"
        "scrape_configs:\n"
        "  - job_name: hatang\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: {json.dumps(scrape_targets)}}}]\n"
        "    metric_relabel_configs:\n"
        "      - {action: labeldrop, regex: 'instance|job'}\n",
        encoding="utf-8",
    )

    def make(port: int) -> Prometheus:
        return Prometheus(
            host="127.0.0.1", port=port, pid=0, config_path=config, log_path=workdir / "prometheus.log",
            data_dir=workdir / "data", binary=binary,
        )

    return _start_with_port_retry(make, None, free_tcp_port)


LONG_RETENTION = "100y"  # history written by promtool may be months old: keep every block


def create_blocks(openmetrics: Path, data_dir: Path, timeout: float = 600) -> str:
    """Write TSDB blocks from an OpenMetrics file (``# EOF`` last, samples of a series in time order)
    into ``data_dir`` with ``promtool tsdb create-blocks-from openmetrics``; its output. Fails with the
    tool's output when it exits non-zero."""
    promtool = require_binary("promtool", "prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(openmetrics),
                           str(data_dir)], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"promtool create-blocks-from openmetrics failed ({done.returncode}):\n"
                             f"{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def start_prometheus_on_blocks(workdir: Path, data_dir: Path, retention: str = LONG_RETENTION,
                               extra_args: tuple[str, ...] = ()) -> Prometheus:
    """Prometheus serving the TSDB in ``data_dir`` (e.g. made by :func:`create_blocks`), scraping nothing,
    with a retention long enough that old blocks are kept. Stop it with ``.stop()`` (by PID)."""
    binary = require_binary("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")

    def make(port: int) -> Prometheus:
        return Prometheus(
            host="127.0.0.1", port=port, pid=0, config_path=config, log_path=workdir / "prometheus.log",
            data_dir=data_dir, binary=binary,
            extra_args=(f"--storage.tsdb.retention.time={retention}", *extra_args),
        )

    return _start_with_port_retry(make, None, free_tcp_port)

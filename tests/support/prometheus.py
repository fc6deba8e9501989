"""A real Prometheus (Debian package ``prometheus``) on a free loopback port, for backfill tests."""

from __future__ import annotations

import json
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
            "--log.level=warn",
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

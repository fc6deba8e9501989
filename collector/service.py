"""Collector composition root."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from collector.config import CollectorConfig
from collector.http import HttpServer, make_app
from collector.selfmetrics import CollectorMetrics
from collector.store import Store
from collector.subscriber import BrokerSettings, Subscriber
from hatang.configfile import read_secret
from wire.codec import Limits

log = logging.getLogger("hatang.collector")


class CollectorService:
    def __init__(self, config: CollectorConfig, config_path: Path) -> None:
        self.config = config
        self.metrics = CollectorMetrics()
        limits = config.limits
        self.store = Store(
            self.metrics,
            Limits(limits.max_payload_bytes, limits.max_samples_per_message, limits.max_label_length),
            stale_after_intervals=config.stale_after_intervals,
        )
        mqtt = config.mqtt
        password = mqtt.password
        if mqtt.password_file is not None:
            password = read_secret(mqtt.password_file, config_path, "mqtt.password_file")
        self.metrics.broker_connected(False)
        self.subscriber = Subscriber(
            BrokerSettings(mqtt.url, mqtt.client_id, mqtt.username, password,
                           str(mqtt.ca_file) if mqtt.ca_file else None, mqtt.keepalive),
            self.store.ingest,
            self.metrics.broker_connected,
        )
        host, port = config.listen_host_port
        self.http = HttpServer(make_app(self.store, lambda: self.subscriber.connected), host, port)

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        await self.http.start()
        host, _ = self.config.listen_host_port
        log.info("collector serving http://%s:%d/metrics", host, self.http.bound_port)
        if started is not None:
            started.set()
        task = asyncio.create_task(self.subscriber.run(), name="subscriber")
        try:
            await stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.http.stop()
            log.info("collector stopped")

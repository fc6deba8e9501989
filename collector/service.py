"""Collector composition root.

Push mode acknowledges each MQTT message only after its samples were remote-written (or refused as bad
input by every endpoint): a collector killed with samples still queued gets the message again from the
broker after its restart, and the store keeps one copy (VictoriaMetrics with
``-dedup.minScrapeInterval``; Prometheus ignores an identical sample). Scrape mode acknowledges on
arrival (what is served is scraped, there is nothing to wait for).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from collector import config as collector_config
from collector import inventory as inventory_file
from collector import logguard, state
from collector.config import CollectorConfig
from collector.http import HttpLimits, HttpPoster, HttpServer, make_app, tls_context
from collector.remote_write import Endpoint, Receipt, RemoteWriter, Series
from collector.selfmetrics import CollectorMetrics
from collector.status_history import TrafficHistory
from collector.store import Store
from collector.subscriber import Subscriber, SubscriberSettings
from hatang.configfile import ConfigError, read_secret
from wire.codec import Limits

log = logging.getLogger("hatang.collector")

FLUSH_TIMEOUT = 10.0  # seconds to finish remote writes on a clean stop
SETTLE_TIMEOUT = 5.0  # seconds for the broker to confirm it read the last acknowledgements (push mode)
STATE_SAVE_INTERVAL = 30.0  # seconds between writes of the state file


def remote_write_endpoints(config: CollectorConfig, config_path: Path,
                           ) -> tuple[list[Endpoint], dict[str, ssl.SSLContext]]:
    """Each remote_write entry with its credentials read from their files (errors name file and key)."""
    endpoints: list[Endpoint] = []
    contexts: dict[str, ssl.SSLContext] = {}
    for i, rw in enumerate(config.remote_write):
        key = f"remote_write[{i}]"
        username = password = token = None
        if rw.basic_auth is not None:
            username = rw.basic_auth.username
            password = read_secret(rw.basic_auth.password_file, config_path,
                                   f"{key}.basic_auth.password_file")
        if rw.bearer_token_file is not None:
            token = read_secret(rw.bearer_token_file, config_path, f"{key}.bearer_token_file")
        endpoint = Endpoint.of(rw.url, username=username, password=password, bearer_token=token,
                               max_samples=rw.max_pending_samples, timeout=rw.timeout)
        if rw.tls is not None:
            tls = rw.tls
            try:
                contexts[endpoint.url] = tls_context(tls.ca_file, tls.cert_file, tls.key_file,
                                                     tls.insecure_skip_verify)
            except (OSError, ssl.SSLError) as exc:
                which = "cert_file" if tls.cert_file is not None and "PEM" in str(exc) else "ca_file"
                raise ConfigError(config_path, [(f"{key}.tls.{which}", f"cannot load the TLS files: {exc}")]
                                  ) from None
            if tls.insecure_skip_verify:
                log.warning("remote write to %s does not check the server's certificate "
                            "(tls.insecure_skip_verify)", endpoint.name)
        endpoints.append(endpoint)
    return endpoints, contexts


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def _limits(config: CollectorConfig) -> Limits:
    limits = config.limits
    return Limits(limits.max_payload_bytes, limits.max_samples_per_message, limits.max_label_length)


class CollectorService:
    def __init__(self, config: CollectorConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.metrics = CollectorMetrics()
        self.log_guard = logguard.LogGuard()
        endpoints, contexts = remote_write_endpoints(config, config_path)
        for endpoint in endpoints:
            self.log_guard.add_secrets(endpoint.secrets)
        self.poster = HttpPoster(contexts)
        self.remote_writer: RemoteWriter | None = None
        self._receipt: Receipt | None = None  # of the message being ingested
        # Messages whose samples are still on their way to the store, by (topic, payload): a copy the
        # broker sends again meanwhile (reconnect) is a duplicate for the store but must not be
        # acknowledged before the first copy's samples are written.
        self._writing: dict[tuple[str, bytes], Receipt] = {}
        if endpoints:
            self.remote_writer = RemoteWriter(endpoints, self.poster.post)
            self.metrics.watch_remote_write(self.remote_writer)
        self.store = Store(
            self.metrics,
            _limits(config),
            stale_after_intervals=config.stale_after_intervals,
            live_grace=config.live_grace,
            late_sink=self._write if self.remote_writer is not None else None,
            push=config.mode == "push",
            inventory=inventory_file.load(config.inventory) if config.inventory is not None else None,
            max_series_per_agent=config.limits.max_series_per_agent,
            # in a shared group each member sees a share of every agent: the rest are no gaps
            track_gaps=config.mqtt.shared_group is None,
            clock_offset_threshold=config.clock_offset_threshold,
        )
        # the status pages' short traffic history, fed by every live poll (collector/status_history.py)
        self.history = TrafficHistory(alive=lambda: self.store.devices)
        self.store.on_live_poll = self.history.observe
        if config.state_file is not None:
            restored = state.load(self.store, config.state_file)
            if restored:
                log.info("restored %d agent(s) from %s", restored, config.state_file)
        mqtt = config.mqtt
        password = mqtt.password
        if mqtt.password_file is not None:
            password = read_secret(mqtt.password_file, config_path, "mqtt.password_file")
        self.metrics.broker_connected(False)
        self.store.set_connected(False)
        push = config.mode == "push"
        self.subscriber = Subscriber(
            SubscriberSettings(
                url=mqtt.url,
                client_id=mqtt.client_id,
                username=mqtt.username,
                password=password,
                ca_file=_path(mqtt.ca_file),
                cert_file=_path(mqtt.cert_file),
                key_file=_path(mqtt.key_file),
                keepalive=mqtt.keepalive,
                session_expiry=mqtt.session_expiry,
                protocol=mqtt.protocol,
                shared_group=mqtt.shared_group,
                manual_ack=push,
                receive_maximum=mqtt.receive_maximum if push else None,
            ),
            self._on_message,
            self._on_connection,
        )
        self.store.backlog = self.subscriber.pending
        self.metrics.watch_incoming(self.subscriber.pending)
        self.metrics.watch_unacknowledged(self.subscriber.unacknowledged)
        self.log_guard.add_secrets([password] if password else [])
        host, port = config.listen_host_port
        http = config.http
        limits = HttpLimits(http.max_connections, http.request_timeout, http.write_timeout)
        app = make_app(self.store, lambda: self.subscriber.connected, limits, history=self.history,
                       grafana=lambda: self.config.grafana_url)
        self.http = HttpServer(app, host, port, limits)

    def _write(self, series: list[Series]) -> None:
        """The store's sink: remote write, tied to the receipt of the message being ingested."""
        assert self.remote_writer is not None
        self.remote_writer.submit(series, self._receipt)

    def _on_message(self, topic: str, payload: bytes, retained: bool = False) -> Receipt | None:
        """Ingest one message. Returns the receipt of its samples' remote write while that is not
        done (the subscriber acknowledges the message when it completes), else None (handled)."""
        receipt = self._receipt = Receipt()
        try:
            self.store.ingest(topic, payload, retained)
        finally:
            self._receipt = None
            receipt.seal()
        key = (topic, payload)
        if not receipt.done:
            self._writing[key] = receipt
            receipt.then(lambda: self._forget(key))
            return receipt
        return self._writing.get(key)  # a copy of a message still being written: done with it

    def _forget(self, key: tuple[str, bytes]) -> None:
        self._writing.pop(key, None)

    def reload(self) -> None:
        """SIGHUP: re-read the config file and the inventory; keep all state. Settings that need a new
        connection or socket (mqtt, listen, remote_write, mode, http) are only applied by a restart."""
        try:
            new = collector_config.load(self.config_path)
            inventory = inventory_file.load(new.inventory) if new.inventory is not None else None
        except Exception as exc:  # a bad file must not stop a running collector: keep the old settings
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        for key in ("mqtt", "listen", "remote_write", "mode", "http"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("reload: '%s' changed; it takes effect after a restart", key)
        store = self.store
        store.set_inventory(inventory)
        store.limits = _limits(new)
        store.max_series_per_agent = new.limits.max_series_per_agent
        store.stale_after_intervals = new.stale_after_intervals
        store.live_grace = new.live_grace
        store.clocks.threshold = new.clock_offset_threshold
        self.config = new.model_copy(update={k: getattr(self.config, k)
                                             for k in ("mqtt", "listen", "remote_write", "mode", "http")})
        log.info("reloaded %s (inventory: %s)", self.config_path,
                 f"{len(inventory.sites)} sites" if inventory is not None else "none")

    def save_state(self) -> None:
        if self.config.state_file is not None:
            try:
                state.save(self.store, self.config.state_file)
            except OSError as exc:
                log.warning("cannot write state file %s: %s", self.config.state_file, exc)

    async def _save_state_periodically(self) -> None:
        while True:
            await asyncio.sleep(STATE_SAVE_INTERVAL)
            self.save_state()

    def _on_connection(self, connected: bool) -> None:
        self.store.set_connected(connected, self.subscriber.session_present)
        self.metrics.broker_connected(connected)

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        remove_guard = logguard.install(self.log_guard)
        try:
            await self._run(stop, started)
        finally:
            remove_guard()

    async def _run(self, stop: asyncio.Event, started: asyncio.Event | None) -> None:
        await self.http.start()
        host, _ = self.config.listen_host_port
        log.info("collector serving http://%s:%d/metrics (%s mode)", host, self.http.bound_port,
                 self.config.mode)
        if started is not None:
            started.set()
        try:
            async with asyncio.TaskGroup() as group:  # a crashed task stops the service, loudly
                subscriber = group.create_task(self.subscriber.run(), name="subscriber")
                writer = None
                if self.remote_writer is not None:
                    writer = group.create_task(self.remote_writer.run(), name="remote-write")
                saver = group.create_task(self._save_state_periodically(), name="state")
                await stop.wait()
                saver.cancel()
                # Stop taking messages first, then finish writing what we have. In push mode the
                # connection stays up meanwhile, so the messages written now are still acknowledged (and
                # what arrives is left unacknowledged). In scrape mode the library acknowledges on
                # arrival: disconnect at once so that nothing more is acknowledged and then dropped.
                push = self.config.mode == "push"
                if push:
                    self.subscriber.pause()
                else:
                    subscriber.cancel()
                if self.remote_writer is not None and not await self.remote_writer.flush(FLUSH_TIMEOUT):
                    log.warning("stopping with %d samples not yet remote-written",
                                self.remote_writer.pending())
                if push and not await self.subscriber.settle(SETTLE_TIMEOUT):
                    log.warning("stopping without the broker's confirmation that it has every "
                                "acknowledgement: a message may be written again by another collector")
                subscriber.cancel()
                if writer is not None:
                    writer.cancel()
        finally:
            self.save_state()
            await self.poster.close()
            await self.http.stop()
            log.info("collector stopped")

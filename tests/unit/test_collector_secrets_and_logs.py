"""Remote-write credentials (config, headers, redaction) and the collector's log guard (rate limit,
secret scrubbing). No sockets: tests/e2e/test_collector_remote_write_auth.py runs them for real."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from collector import config as collector_config
from collector.logguard import LogGuard
from collector.redact import redact_url, scrub, strip_userinfo, url_secrets
from collector.remote_write import HEADERS, Endpoint, EndpointQueue, RemoteWriter
from collector.selfmetrics import CollectorMetrics
from collector.service import remote_write_endpoints
from hatang.configfile import ConfigError


@pytest.mark.parametrize(("url", "shown"), [
    ("http://127.0.0.1:9090/api/v1/write", "http://127.0.0.1:9090/api/v1/write"),
    ("https://user:p%40ss@vm.example:8428/api/v1/write", "https://***@vm.example:8428/api/v1/write"),
    ("https://user@vm.example/write", "https://***@vm.example/write"),
    ("http://h/write?tenant=a&token=abc123&X-Api-Key=k3y&sig=zz9", "http://h/write?tenant=a&token=***&X-Api-Key=***&sig=***"),
    ("http://h/write?access_token=t0k&flag", "http://h/write?access_token=***&flag"),
])
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_secrets_of_a_url_and_scrubbing() -> None:
    url = "https://hatang:p%40ss-w0rd@vm.example/write?token=t0k3n-value"
    secrets = url_secrets(url)
    assert {"p%40ss-w0rd", "p@ss-w0rd", "t0k3n-value"} <= set(secrets)
    text = f"POST {url} failed; p@ss-w0rd"
    assert "p@ss" not in scrub(text, secrets) and "t0k3n" not in scrub(text, secrets)
    assert strip_userinfo(url) == ("https://vm.example/write?token=t0k3n-value", "hatang", "p@ss-w0rd")


def test_an_endpoint_sends_credentials_as_a_header_and_shows_none() -> None:
    endpoint = Endpoint.of("http://u:secret-pw@127.0.0.1:9/w")
    assert endpoint.url == "http://127.0.0.1:9/w"
    assert endpoint.name == "http://***@127.0.0.1:9/w"
    assert dict(endpoint.headers) == {"Authorization": "Basic " + base64.b64encode(b"u:secret-pw").decode()}
    assert "secret-pw" in endpoint.secrets
    bearer = Endpoint.of("https://vm/w", bearer_token="tok-123")
    assert dict(bearer.headers) == {"Authorization": "Bearer tok-123"}
    queue = EndpointQueue("ignored", max_samples=10, batch_samples=10, endpoint=endpoint)
    assert queue.url == endpoint.name and queue.headers["Authorization"].startswith("Basic ")
    assert queue.headers["Content-Encoding"] == HEADERS["Content-Encoding"]


def test_the_remote_write_label_is_the_redacted_url() -> None:
    metrics = CollectorMetrics()

    async def never(*_: object) -> tuple[int, str]:
        raise AssertionError

    metrics.watch_remote_write(RemoteWriter(["http://u:hunter22@127.0.0.1:9/w?token=abcdef"], never))
    text = metrics.render().decode()
    assert 'url="http://***@127.0.0.1:9/w?token=***"' in text
    assert "hunter22" not in text and "abcdef" not in text


def write_config(tmp_path: Path, remote_write: list[dict[str, object]]) -> Path:
    import yaml

    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump({"mqtt": {"url": "mqtt://127.0.0.1:1883"}, "remote_write": remote_write}))
    return path


def test_auth_options_load_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "tok").write_text("t0ken\n")
    path = write_config(tmp_path, [
        {"url": "https://vm/w", "basic_auth": {"username": "hatang", "password_file": "pw"},
         "tls": {"insecure_skip_verify": True}},
        {"url": "http://vm2/w", "bearer_token_file": "tok", "max_pending_samples": 5000, "timeout": 3},
    ])
    config = collector_config.load(path)
    assert config.remote_write[0].basic_auth is not None
    assert config.remote_write[0].basic_auth.password_file == tmp_path / "pw"
    endpoints, contexts = remote_write_endpoints(config, path)
    expected = "Basic " + base64.b64encode(b"hatang:s3cret").decode()
    assert dict(endpoints[0].headers)["Authorization"] == expected
    assert dict(endpoints[1].headers)["Authorization"] == "Bearer t0ken"
    assert (endpoints[1].max_samples, endpoints[1].timeout) == (5000, 3)
    assert set(contexts) == {"https://vm/w"}


@pytest.mark.parametrize(("entry", "message"), [
    ({"url": "http://u:p@vm/w", "basic_auth": {"username": "u", "password_file": "pw"}},
     "one way to authenticate"),
    ({"url": "http://vm/w", "basic_auth": {"username": "u", "password_file": "pw"},
      "bearer_token_file": "pw"}, "one way to authenticate"),
    ({"url": "http://vm/w", "tls": {"insecure_skip_verify": True}}, "tls needs an https:// url"),
    ({"url": "https://vm/w", "tls": {"cert_file": "c.pem"}}, "cert_file and key_file together"),
    ({"url": "https://vm/w", "basic_auth": {"username": "u", "password": "inline"}},
     "remote_write[0].basic_auth"),
])
def test_bad_auth_options_are_config_errors_with_the_key_path(tmp_path: Path, entry: dict[str, object],
                                                              message: str) -> None:
    with pytest.raises(ConfigError) as error:
        collector_config.load(write_config(tmp_path, [entry]))
    assert message in str(error.value), str(error.value)


def test_an_unreadable_secret_names_its_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"url": "http://vm/w", "bearer_token_file": "missing-token"}])
    with pytest.raises(ConfigError) as error:
        remote_write_endpoints(collector_config.load(path), path)
    assert "remote_write[0].bearer_token_file" in str(error.value)
    assert str(tmp_path / "missing-token") in str(error.value)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(message: str, *args: object, level: int = logging.WARNING, name: str = "hatang.x",
           exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, message, args, exc_info)


def test_repeated_lines_pass_once_a_minute_with_a_count() -> None:
    clock = Clock()
    guard = LogGuard(clock=clock)
    passed = [guard.filter(record("accept failed: %s", "EMFILE")) for _ in range(1000)]
    assert passed.count(True) == 1
    assert guard.filter(record("another line"))  # other lines are not held back
    clock.now = 61
    again = record("accept failed: %s", "EMFILE")
    assert guard.filter(again)
    assert again.getMessage() == "accept failed: EMFILE (999 similar line(s) suppressed in the last 60 s)"


def test_identical_tracebacks_are_one_key_whatever_their_details() -> None:
    guard = LogGuard(clock=Clock())
    first = record("Error handling request", level=logging.ERROR, exc=OSError(24, "Too many open files"))
    assert guard.filter(first)
    for _ in range(100):
        assert not guard.filter(record("Error handling request", level=logging.ERROR,
                                       exc=OSError(24, "Too many open files")))
    assert guard.filter(record("Error handling request", level=logging.ERROR, exc=ValueError("other")))


def test_distinct_agents_lines_are_not_suppressed() -> None:
    guard = LogGuard(clock=Clock())
    assert all(guard.filter(record("agent %s: its clock is off", f"xa-{i}")) for i in range(50))


def test_secrets_are_scrubbed_from_messages_and_tracebacks() -> None:
    guard = LogGuard(clock=Clock())
    guard.add_secrets(["hunter22"])
    line = record("POST %s failed", "http://u:hunter22@vm/w")
    assert guard.filter(line)
    assert line.getMessage() == "POST http://u:***@vm/w failed"
    try:
        raise ValueError("bad password hunter22")
    except ValueError as exc:
        traced = logging.LogRecord("hatang.x", logging.ERROR, __file__, 1, "boom", (), (ValueError, exc,
                                                                                           exc.__traceback__))
    assert guard.filter(traced)
    formatted = logging.Formatter().format(traced)
    assert "hunter22" not in formatted and "bad password ***" in formatted

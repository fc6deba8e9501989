"""The report's Prometheus HTTP API client: instant queries and chunked range queries. The only network
code of ``hatang report``; standard library only (urllib).

A range query is split into requests of at most :data:`MAX_POINTS` steps (one day of minutes), so the
memory and the response size of one request stay bounded however long the period and however many
series a province has; the caller folds each chunk before the next is fetched.

Every failure is a :class:`PrometheusError` whose text names the URL and what to do: the server cannot
be reached, did not answer within the timeout, answered with an HTTP error (the API's ``errorType`` and
``error`` are quoted), or answered something that is not the Prometheus API.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hatang import __version__

MAX_POINTS = 1440  # steps per range request: one day at one minute
DEFAULT_TIMEOUT = 60.0


class PrometheusError(Exception):
    """Prometheus could not answer a query; ``str()`` is the message for the person running the report."""


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range-query result: its labels and its ``[timestamp, "value"]`` points."""

    labels: dict[str, str]
    points: list[list[Any]]


def check_url(url: str) -> str:
    """The base URL without a trailing slash; ValueError when it is not http(s)://host[:port][/prefix]."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--prometheus {url!r} is not an http:// or https:// URL "
                         "(e.g. http://127.0.0.1:9090, the address Grafana uses)")
    if parsed.query or parsed.fragment or parsed.path.rstrip("/").endswith("/api/v1"):
        raise ValueError(f"--prometheus {url!r}: give the server's base URL (e.g. http://127.0.0.1:9090), "
                         "without /api/v1 or a query")
    return url.strip().rstrip("/")


def chunks(start: int, end: int, step: int, max_points: int = MAX_POINTS) -> Iterator[tuple[int, int]]:
    """``(first, last)`` evaluation instants of each request covering ``start, start+step, ..., end``."""
    if max_points < 1 or step < 1:
        raise ValueError("max_points and step must be positive")
    first = start
    while first <= end:
        last = min(first + (max_points - 1) * step, end)
        yield first, last
        first = last + step


class PrometheusClient:
    """Queries one Prometheus server (or anything with its HTTP API, e.g. VictoriaMetrics)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, max_points: int = MAX_POINTS) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.max_points = max_points  # steps per range request

    def instant(self, expr: str, at: float) -> list[tuple[dict[str, str], str]]:
        """``(labels, value)`` of each series of an instant vector at ``at`` (Unix seconds)."""
        data = self._get("query", {"query": expr, "time": _seconds(at)})
        if data.get("resultType") != "vector":
            raise self._not_api(f"an instant query gave a {data.get('resultType')!r} result, not a vector")
        return [(_labels(item), str(item["value"][1])) for item in _result(self, data, "value")]

    def query_range(self, expr: str, start: int, end: int, step: int) -> Iterator[list[RangeSeries]]:
        """The series of each chunk of the range query (at most ``max_points`` steps, one request each),
        one list per chunk, in time order; a series without a value in a chunk is not in its list."""
        for first, last in chunks(start, end, step, self.max_points):
            data = self._get("query_range", {"query": expr, "start": _seconds(first), "end": _seconds(last),
                                             "step": str(step)})
            if data.get("resultType") != "matrix":
                raise self._not_api(f"a range query gave a {data.get('resultType')!r} result, not a matrix")
            yield [RangeSeries(_labels(item), item["values"]) for item in _result(self, data, "values")]

    def _get(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        address = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(address, headers={
            "Accept": "application/json", "User-Agent": f"hatang-report/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, params.get("query", "")) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timeout() from None
            raise self._unreachable(exc.reason) from None
        except TimeoutError:
            raise self._timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        try:
            document = json.loads(body)
        except ValueError:
            raise self._not_api(f"the answer to /api/v1/{endpoint} is not JSON") from None
        if not isinstance(document, dict) or document.get("status") != "success" \
                or not isinstance(document.get("data"), dict):
            raise self._not_api(f"unexpected answer to /api/v1/{endpoint}: {str(document)[:200]}")
        data: dict[str, Any] = document["data"]
        return data

    def _timeout(self) -> PrometheusError:
        return PrometheusError(
            f"Prometheus at {self.url} did not answer within {self.timeout:g} s: check that it is running "
            "and not overloaded, or give it longer with --timeout")

    def _unreachable(self, reason: object) -> PrometheusError:
        return PrometheusError(
            f"cannot reach Prometheus at {self.url}: {reason}. Check the --prometheus URL (the address "
            "Grafana uses for its Prometheus data source, e.g. http://127.0.0.1:9090) and that Prometheus "
            "is running and reachable from this machine")

    def _not_api(self, what: str) -> PrometheusError:
        return PrometheusError(
            f"{self.url} does not answer like the Prometheus HTTP API ({what}). Check the --prometheus "
            "URL: the server's base URL, e.g. http://127.0.0.1:9090 (with its path prefix if it has one)")

    def _http_error(self, exc: urllib.error.HTTPError, expr: str) -> PrometheusError:
        detail = ""
        try:
            document = json.loads(exc.read())
            detail = f" ({document.get('errorType', '')}): {document.get('error', '')}"
        except (ValueError, AttributeError, OSError):
            pass
        if exc.code == 404:
            fix = "check the --prometheus URL: the server's base URL, without /api/v1"
        elif exc.code in (401, 403):
            fix = "this Prometheus needs authentication, which hatang report does not do: use an address " \
                  "without it (e.g. on the server itself)"
        elif exc.code >= 500:
            fix = "see Prometheus's log; a query over too many series may need a shorter period"
        else:
            fix = f"the query was {expr!r}"
        return PrometheusError(f"Prometheus at {self.url} refused the query: HTTP {exc.code}{detail}; {fix}")


def _seconds(moment: float) -> str:
    return f"{moment:.3f}".rstrip("0").rstrip(".")


def _labels(item: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in item["metric"].items()}


def _result(client: PrometheusClient, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The result list, each item checked for the shape the API documents: ``metric`` an object and
    ``key`` (``value``: one ``[time, "value"]`` pair; ``values``: a list of them). The points of a range
    are checked where they are folded (hatang/cli_report.py), not twice."""
    result = data.get("result")
    if not isinstance(result, list):
        raise client._not_api("no result list in the answer")
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict) \
                or not isinstance(item.get(key), list) or (key == "value" and len(item[key]) != 2):
            raise client._not_api(f"a result item is not a series with {key!r}: {str(item)[:200]}")
        item.setdefault("metric", {})
    return result

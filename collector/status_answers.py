"""The answers of the status pages' routes (``/``, ``/office/<agent>[/device/<device>]`` and the same
under ``/api/``), computed from the store and shared between requests. Pure: collector/http.py turns an
:class:`Answer` into a response.

A page costs milliseconds of the event loop that also ingests and serves /metrics (an office of four
48-port switches about 18 ms), so requests must not be able to stall it:

- **Shared.** An answer is computed again only when the store changed and it is older than ``MIN_AGE``
  seconds, or once it is ``MAX_AGE`` old (the ages it shows move on). A burst of requests for one page
  costs one computation per ``MIN_AGE``.
- **Budgeted.** At most ``BUDGET`` seconds of computing per second of wall time, over all paths. Past
  it, a path that has an answer gets that one (a little older), and one that has none gets 503 with
  ``Retry-After``: cycling through many distinct paths cannot take more than that share of the loop.
- **Bounded.** At most ``MAX_ENTRIES`` answers are kept (the least recently used go).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector import status_model, status_pages
from collector.status_history import TrafficHistory
from collector.view import DeviceT, StoreView
from hatang import __version__

MIN_AGE = 1.0  # seconds an answer is shared even while the store changes
MAX_AGE = 5.0  # seconds after which it is computed again even without a change
BUDGET = 0.25  # seconds of computing allowed per second
MAX_ENTRIES = 256  # answers kept


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    kind: str  # "html" or "json"
    body: bytes


@dataclass(slots=True)
class _Kept:
    answer: Answer
    version: int
    made: float  # monotonic


def _json(data: object, status: int = 200) -> Answer:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Answer(status, "json", body.encode("utf-8"))


def _html(page: str, status: int = 200) -> Answer:
    return Answer(status, "html", page.encode("utf-8"))


class StatusAnswers:
    def __init__(self, store: StoreView[DeviceT], history: TrafficHistory | None,
                 grafana: Callable[[], str | None], now: Callable[[], float],
                 version: Callable[[], int], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store, self._history, self._grafana = store, history, grafana
        self._now, self._version, self._monotonic = now, version, monotonic
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._spent = 0.0  # seconds of computing in the current second
        self._second = 0.0  # monotonic start of the current second

    def get(self, path: str, agent: str | None = None, device: str | None = None) -> Answer:
        """The answer for a route's ``path`` (``agent``/``device``: its match, for the office routes)."""
        clock = self._monotonic()
        kept = self._kept.get(path)
        if kept is not None:
            self._kept.move_to_end(path)
            age = clock - kept.made
            if age < MIN_AGE or (age < MAX_AGE and kept.version == self._version()):
                return kept.answer
        if clock - self._second >= 1.0:
            self._second, self._spent = clock, 0.0
        if self._spent >= BUDGET:
            if kept is not None:
                return kept.answer
            return _json({"error": "busy", "retry_after": 1}, 503) if path.startswith("/api/") else \
                _html(status_pages.busy_page(__version__, self._now()), 503)
        version = self._version()
        answer = self._compute(path, agent, device)
        self._spent += self._monotonic() - clock
        self._kept[path] = _Kept(answer, version, clock)
        self._kept.move_to_end(path)
        while len(self._kept) > MAX_ENTRIES:
            self._kept.popitem(last=False)
        return answer

    def not_found(self, path: str) -> Answer:
        if path.startswith("/api/"):
            return _json({"error": "not_found", "path": path}, 404)
        return _html(status_pages.not_found_page(path, __version__, self._now()), 404)

    def _compute(self, path: str, agent: str | None, device: str | None) -> Answer:
        api = path.startswith("/api/")
        now = self._now()
        if agent is None:
            data: dict[str, Any] | None = status_model.province(self._store, now, self._grafana())
        else:
            data = status_model.office(self._store, self._history, agent, now, self._grafana(), device)
        if data is None:
            return self.not_found(path)
        if api:
            return _json(data)
        page = status_pages.province_page if agent is None else status_pages.office_page
        return _html(page(data, __version__))

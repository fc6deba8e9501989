"""A log filter for the collector's handlers: repeated lines rate-limited, secrets scrubbed.

Repeated lines: one line per key per ``every`` seconds gets through; the others are counted, and the next
line of that key that gets through says how many were suppressed. The key is the logger, the level and
the message (for a record with a traceback: the first line of the message and the exception type), so
a flood of identical tracebacks (a peer hammering a socket, file descriptors running out) costs one line
a minute instead of megabytes, while distinct lines (another agent, another endpoint) still pass.

Secrets: every registered secret (remote-write passwords and tokens) is replaced by ``***`` in the
message and the traceback before any handler formats it.

:class:`RejectLog` rate-limits the store's lines about rejected messages at the source (one per reason
per minute, with a count), under the store's logger name so that log filters written for it still match.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from collector.redact import scrub

log = logging.getLogger("hatang.collector.store")  # RejectLog writes as the store (its caller)

EVERY = 60.0  # seconds between lines of one key
LOG_EVERY = 60.0  # seconds between log lines about rejected messages of one reason
MAX_KEYS = 1000  # keys remembered (least recently used forgotten)


class LogGuard(logging.Filter):
    def __init__(self, every: float = EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self._clock = clock
        self._last: OrderedDict[tuple[str, int, str], float] = OrderedDict()
        self._suppressed: dict[tuple[str, int, str], int] = {}
        self._secrets: list[str] = []
        self.suppressed_total = 0

    def add_secrets(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def _key(self, record: logging.LogRecord, message: str) -> tuple[str, int, str]:
        if record.exc_info and record.exc_info[0] is not None:
            first = message.splitlines()[0] if message else ""
            return record.name, record.levelno, f"{first[:200]}|{record.exc_info[0].__name__}"
        return record.name, record.levelno, message[:500]

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hatang_guarded", False):  # seen by another handler's copy of this filter
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        key = self._key(record, message)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            self.suppressed_total += 1
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > MAX_KEYS:
            old, _ = self._last.popitem(last=False)
            self._suppressed.pop(old, None)
        more = self._suppressed.pop(key, 0)
        if more:
            message += f" ({more} similar line(s) suppressed in the last {self.every:.0f} s)"
        if self._secrets or more:
            record.msg, record.args = scrub(message, self._secrets), None
            if record.exc_info:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), self._secrets)
                record.exc_info = None
        record._hatang_guarded = True
        return True


def install(guard: LogGuard) -> Callable[[], None]:
    """Put ``guard`` on every handler of the root logger; returns a function that takes it off."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(guard)

    def remove() -> None:
        for handler in handlers:
            handler.removeFilter(guard)

    return remove


class RejectLog:
    """Log rejected messages rate-limited: the first of each reason at once, then one summary line per
    reason per minute. Memory is bounded by the (fixed) set of reasons."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, topic: str, detail: str) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < LOG_EVERY:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        more = self._suppressed.pop(reason, 0)
        self._last[reason] = now
        suffix = f" ({more} more rejected for {reason} in the last minute)" if more else ""
        log.warning("rejected message on %.200s: %s: %.300s%s", topic, reason, detail, suffix)

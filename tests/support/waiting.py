"""Wait on a condition with a deadline instead of sleeping and hoping.

``wait_until`` calls a predicate until it returns a truthy value, then returns that value. On timeout it
raises ``AssertionError`` carrying ``message`` and the last value (or exception) observed, so a failing
test says *what* it was waiting for and *what it saw instead*.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast, overload

T = TypeVar("T")

__all__ = ["async_wait_until", "wait_until"]


def _timeout_error(
    message: str, timeout: float, attempts: int, last: object, last_exc: BaseException | None
) -> AssertionError:
    what = message or "condition"
    observed = f"last exception: {last_exc!r}" if last_exc is not None else f"last value: {last!r}"
    return AssertionError(
        f"timed out after {timeout:.2f}s ({attempts} attempts) waiting for {what}; {observed}"
    )


def wait_until(
    predicate: Callable[[], T | bool | None],
    timeout: float,
    interval: float = 0.05,
    message: str = "",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` every ``interval`` seconds until it returns a truthy value; return that value.

    The predicate is always called at least once, and once more at the deadline. Exceptions of the
    types in ``ignore`` count as "not yet" (e.g. ``ConnectionRefusedError`` while a server starts);
    any other exception propagates at once. Note the truthiness rule: a predicate whose success value
    may be falsy (``0``, ``""``, ``[]``) must wrap it, e.g. ``lambda: (value,) if ready else None``.
    """
    if timeout < 0:
        raise ValueError("timeout must be >= 0")
    deadline = time.monotonic() + timeout
    attempts = 0
    last: object = None
    last_exc: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = predicate()
        except ignore as exc:
            last_exc = exc
        else:
            last_exc = None
            last = result
            if result:
                return cast(T, result)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout_error(message, timeout, attempts, last, last_exc)
        time.sleep(min(interval, remaining))


@overload
async def async_wait_until(
    predicate: Callable[[], Awaitable[T | bool | None]],
    timeout: float,
    interval: float = 0.05,
    message: str = "",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T: ...


@overload
async def async_wait_until(
    predicate: Callable[[], T | bool | None],
    timeout: float,
    interval: float = 0.05,
    message: str = "",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T: ...


async def async_wait_until(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.05,
    message: str = "",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> object:
    """Async twin of :func:`wait_until`: ``predicate`` may be sync or return an awaitable.

    Sleeps with ``asyncio.sleep`` between attempts so the event loop (and the code under test) keeps
    running. An awaited predicate that itself hangs is cut off at the deadline.
    """
    if timeout < 0:
        raise ValueError("timeout must be >= 0")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempts = 0
    last: object = None
    last_exc: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = predicate()
            if inspect.isawaitable(result):
                remaining = max(deadline - loop.time(), 0.001)
                try:
                    async with asyncio.timeout(remaining):
                        result = await result
                except TimeoutError as exc:
                    raise _timeout_error(message, timeout, attempts, last, exc) from None
        except ignore as exc:
            last_exc = exc
        else:
            last_exc = None
            last = result
            if result:
                return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise _timeout_error(message, timeout, attempts, last, last_exc)
        await asyncio.sleep(min(interval, remaining))

"""A small Alertmanager API v2 client for the silences of planned maintenance (standard library only).

``hatang maintenance add`` creates one silence per window: matchers ``agent="<site>"`` and, for one
device or link, ``device="<device>"`` (exact, equality), from the window's start to its end in UTC, the
operator as ``createdBy`` and the reason with the window id as comment. ``remove`` expires it again.
Every failure is an :class:`AlertmanagerError` whose message names the URL and what to do.

Requests to localhost or a loopback address never go through an HTTP proxy from the environment (what
Go's ProxyFromEnvironment, and so amtool, does too); other addresses honour ``http_proxy``/``no_proxy``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hatang.availability.windows import MaintenanceWindow

API = "/api/v2"
TIMEOUT_SECONDS = 10.0
_UNKNOWN_SILENCE = (404, 422)  # 422: the id is not even a UUID (e.g. edited by hand)
_FIX_URL = ("check --alertmanager (or HATANG_ALERTMANAGER_URL), e.g. http://127.0.0.1:9093, and that "
            "Alertmanager is running")


class AlertmanagerError(Exception):
    """Alertmanager could not do what was asked; ``str()`` names the URL and what to do."""


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence as Alertmanager reports it; ``state`` is ``pending``, ``active`` or ``expired``."""

    id: str
    matchers: tuple[SilenceMatcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str


def window_matchers(window: MaintenanceWindow) -> tuple[SilenceMatcher, ...]:
    """``agent=<site>``, and ``device=<device>`` for a window on one device or link."""
    agent = SilenceMatcher("agent", window.site)
    return (agent,) if window.device is None else (agent, SilenceMatcher("device", window.device))


def window_comment(window: MaintenanceWindow) -> str:
    return f"{window.reason} [hatang maintenance {window.id}]"


def rfc3339(moment: datetime) -> str:
    """``2026-11-03T01:00:00.000Z``: UTC with milliseconds, as Alertmanager writes times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time from Alertmanager (Go may write up to nanoseconds; Python reads microseconds)."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00"))


class AlertmanagerClient:
    """Silences through ``<base_url>/api/v2`` (``base_url`` includes any ``--web.route-prefix``)."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlsplit(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AlertmanagerError(f"{base_url!r} is not an Alertmanager URL: give http://HOST:PORT, "
                                    "e.g. http://127.0.0.1:9093")
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = timeout
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parsed.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)

    def create_silence(self, matchers: Sequence[SilenceMatcher], starts_at: datetime, ends_at: datetime,
                       created_by: str, comment: str) -> str:
        """POST a new silence; its id."""
        body = {"matchers": [m.to_api() for m in matchers], "startsAt": rfc3339(starts_at),
                "endsAt": rfc3339(ends_at), "createdBy": created_by, "comment": comment}
        reply = self._request("POST", f"{API}/silences", body)
        if not isinstance(reply, dict) or not isinstance(reply.get("silenceID"), str):
            raise AlertmanagerError(f"{self.base_url}{API}/silences answered {reply!r}, not a silence id: "
                                    f"is this an Alertmanager? {_FIX_URL}")
        silence_id: str = reply["silenceID"]
        return silence_id

    def create_window_silence(self, window: MaintenanceWindow) -> str:
        """The silence of a maintenance window: its id."""
        return self.create_silence(window_matchers(window), window.start, window.end,
                                   window.created_by or "hatang", window_comment(window))

    def expire_silence(self, silence_id: str) -> bool:
        """Expire a silence: True when it was pending or active, False when it was already expired or is
        unknown to Alertmanager (nothing left to do, not an error)."""
        path = f"{API}/silence/{urllib.parse.quote(silence_id, safe='')}"
        try:
            self._request("DELETE", path)
        except _HttpStatusError as exc:
            if exc.status in _UNKNOWN_SILENCE:
                self._confirm_api()  # a 404 from a wrong URL is not "already expired"
                return False
            # Alertmanager 0.25 answers 500 "silence ... already expired" for an expired silence.
            current = self.get_silence(silence_id)
            if current is None or current.state == "expired":
                return False
            raise AlertmanagerError(str(exc)) from None
        return True

    def get_silence(self, silence_id: str) -> Silence | None:
        """One silence, or None when Alertmanager does not know it."""
        try:
            reply = self._request("GET", f"{API}/silence/{urllib.parse.quote(silence_id, safe='')}")
        except _HttpStatusError as exc:
            if exc.status in _UNKNOWN_SILENCE:
                self._confirm_api()
                return None
            raise AlertmanagerError(str(exc)) from None
        return self._silence(reply)

    def _confirm_api(self) -> None:
        """Raise unless ``base_url`` is an Alertmanager API v2 (its ``/status`` names its version): a
        wrong path prefix or another server answers 404 for every silence, which must not read as "that
        silence is unknown"."""
        try:
            status = self._request("GET", f"{API}/status")
        except AlertmanagerError as exc:
            raise AlertmanagerError(f"{self.base_url} does not answer like an Alertmanager API v2 "
                                    f"({exc}): {_FIX_URL}") from None
        if not isinstance(status, dict) or "versionInfo" not in status:
            raise AlertmanagerError(f"{self.base_url}{API}/status answered {str(status)[:200]!r}, not an "
                                    f"Alertmanager status: {_FIX_URL}")

    def list_silences(self) -> list[Silence]:
        """Every silence Alertmanager keeps (expired ones too, until its retention drops them)."""
        reply = self._request("GET", f"{API}/silences")
        if not isinstance(reply, list):
            raise AlertmanagerError(f"{self.base_url}{API}/silences answered {reply!r}, not a list: "
                                    f"is this an Alertmanager? {_FIX_URL}")
        return [self._silence(item) for item in reply]

    def _silence(self, item: Any) -> Silence:
        try:
            return Silence(
                id=str(item["id"]),
                matchers=tuple(SilenceMatcher(str(m["name"]), str(m["value"]), bool(m.get("isRegex")),
                                              bool(m.get("isEqual", True))) for m in item["matchers"]),
                starts_at=parse_rfc3339(item["startsAt"]), ends_at=parse_rfc3339(item["endsAt"]),
                created_by=str(item.get("createdBy", "")), comment=str(item.get("comment", "")),
                state=str(item["status"]["state"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AlertmanagerError(f"{self.base_url}: cannot read the silence {item!r} ({exc}): is this "
                                    f"an Alertmanager API v2? {_FIX_URL}") from None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw: bytes = response.read()
        except urllib.error.HTTPError as exc:
            raise _HttpStatusError(method, url, exc.code, _error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise AlertmanagerError(f"cannot reach Alertmanager at {url} ({reason}): {_FIX_URL}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AlertmanagerError(f"{method} {url} answered something that is not JSON "
                                    f"({raw[:200]!r}): is this an Alertmanager? {_FIX_URL}") from None


class _HttpStatusError(AlertmanagerError):
    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        self.status = status
        hint = {400: "Alertmanager refused the request as invalid",
                422: "Alertmanager refused the request as invalid",
                401: "Alertmanager (or a proxy before it) wants credentials",
                403: "Alertmanager (or a proxy before it) refused access",
                404: "no such thing there: is the URL's path (route prefix) right?"}.get(
            status, "see Alertmanager's log")
        super().__init__(f"{method} {url} failed with HTTP {status}: {message or '(no message)'} ({hint})")


def _error_message(error: urllib.error.HTTPError) -> str:
    """The message in an error reply: a JSON string (Alertmanager 0.25), ``{"message": ...}`` or text."""
    try:
        raw = error.read()
    except OSError:
        return ""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        decoded = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(decoded, dict):
        decoded = decoded.get("message") or decoded.get("error") or text
    return str(decoded)[:500]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""Secrets out of logs and labels: URLs shown with ``***`` for credentials. Pure.

A URL may carry credentials in two places: ``user:password@host`` and query parameters such as
``?token=...``. Whatever reaches a log line or a metric label goes through :func:`redact_url`;
:func:`url_secrets` lists the values to scrub from free text (error messages that quote the URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# query parameter names that carry credentials (matched anywhere in the name, case-insensitive)
_SECRET_PARAMETER = re.compile(
    r"token|secret|passw|pwd|auth|key|sig|credential|session|jwt|bearer|code", re.IGNORECASE)
MIN_SECRET_LENGTH = 3  # shorter values would scrub ordinary text


def _query_items(query: str) -> list[tuple[str, str | None]]:
    items: list[tuple[str, str | None]] = []
    for part in query.split("&") if query else []:
        name, eq, value = part.partition("=")
        items.append((name, value if eq else None))
    return items


def redact_url(url: str) -> str:
    """``url`` with ``user:password@`` and credential-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        name if value is None else f"{name}={MASK if _SECRET_PARAMETER.search(unquote(name)) else value}"
        for name, value in _query_items(parts.query))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without ``user:password@``, username, password), percent-decoded."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return (urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), unquote(user),
            unquote(password) if colon else None)


def url_secrets(url: str) -> list[str]:
    """The credential values in ``url`` (raw and percent-decoded), to scrub from free text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        _, colon, password = userinfo.partition(":")
        found += [userinfo]
        if colon:
            found += [password, unquote(password)]
    for name, value in _query_items(parts.query):
        if value and _SECRET_PARAMETER.search(unquote(name)):
            found += [value, unquote(value)]
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET_LENGTH]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so no part of one is left)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text

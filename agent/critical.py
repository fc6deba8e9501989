"""Critical interfaces: which interfaces of a device matter enough to page on (pure; no I/O).

A device's ``critical_interfaces`` (or the agent's, or :data:`DEFAULT_PATTERNS`) are regular expressions
searched case-insensitively in each interface's ``ifName`` and ``ifAlias`` (both NFC-normalised, so a
Vietnamese alias typed in decomposed form still matches). Each matching interface gets one sample of
``hatang_interface_critical`` (always 1) with exactly the labels of its other ``hatang_interface_*``
series, so rules and dashboards can join ``and on(agent, device, if_index) hatang_interface_critical``.
See docs/configuration.md and docs/metrics.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from wire.messages import Family, Labels, Sample

__all__ = ["CRITICAL_METRIC", "DEFAULT_PATTERNS", "compile_patterns", "critical_family", "is_critical",
           "pattern_problem"]

CRITICAL_METRIC = "hatang_interface_critical"
INTERFACE_PREFIX = "hatang_interface_"
# Uplinks, WAN ports, the government dedicated data network (mạng truyền số liệu chuyên dùng, TSLCD) and
# Internet links, as commune offices usually name them in ifAlias (with or without diacritics).
DEFAULT_PATTERNS: tuple[str, ...] = (
    "uplink|wan|chuyên dùng|chuyen dung|truyền số liệu|truyen so lieu|tslcd|internet",
)
HELP = ("1 for an interface whose ifName or ifAlias matches the device's critical_interfaces patterns "
        "(docs/configuration.md); same labels as the interface's other series.")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used (for a config error), or None if it compiles."""
    try:
        re.compile(_nfc(pattern), re.IGNORECASE)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        return (f"invalid regular expression {pattern!r}: {exc.msg}{where}; write a Python regular "
                "expression (searched case-insensitively in ifName and ifAlias), escape special characters "
                r"such as ( ) [ ] + * ? with a backslash (e.g. 'Gi0/1 \(uplink\)'), or remove the entry")
    return None


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile validated patterns (raises :class:`re.error` on an invalid one)."""
    return tuple(re.compile(_nfc(p), re.IGNORECASE) for p in patterns)


def is_critical(patterns: Sequence[re.Pattern[str]], if_name: str, if_alias: str) -> bool:
    """Whether any pattern is found in the interface's name or alias."""
    texts = (_nfc(if_name), _nfc(if_alias))
    return any(p.search(text) for p in patterns for text in texts)


MAX_REMEMBERED = 100_000  # label sets whose verdict a poller keeps between polls


def critical_family(families: Iterable[Family], patterns: Sequence[re.Pattern[str]],
                    known: dict[Labels, bool] | None = None) -> Family | None:
    """``hatang_interface_critical`` for the interfaces among ``families`` that match ``patterns``: one
    sample per distinct label set of the ``hatang_interface_*`` families (rows carry ``if_index``), in
    first-seen order; None when no interface matches (or there are no patterns). ``known``: verdicts kept
    by the caller between polls (an interface's labels rarely change), so a poll matches only new ones."""
    if not patterns:
        return None
    if known is None:
        known = {}
    elif len(known) > MAX_REMEMBERED:  # interfaces renamed many times over: start again
        known.clear()
    checked: dict[Labels, bool] = {}  # label set -> critical, in this poll's order
    for family in families:
        if not family.name.startswith(INTERFACE_PREFIX) or family.name == CRITICAL_METRIC:
            continue
        for sample in family.samples:
            if sample.labels in checked:
                continue
            verdict = known.get(sample.labels)
            if verdict is None:
                labels = dict(sample.labels)
                verdict = known[sample.labels] = "if_index" in labels and is_critical(
                    patterns, labels.get("if_name", ""), labels.get("if_alias", ""))
            checked[sample.labels] = verdict
    samples = tuple(Sample(labels, 1) for labels, critical in checked.items() if critical)
    return Family(CRITICAL_METRIC, "gauge", HELP, samples) if samples else None

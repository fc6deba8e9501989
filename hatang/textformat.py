"""The Prometheus text exposition format (0.0.4): escaping, label sets, values, sample lines, headers.

Pure text helpers shared by the collector's ingest path (collector/ingest.py), store (collector/store.py)
and /metrics renderer (collector/exposition.py), and by the report of ``hatang poll`` (agent/poll_once.py).
A leaf: it imports only the wire contract.
"""

from __future__ import annotations

from collections.abc import Iterable

from wire.messages import Family, Labels


def escape(value: str) -> str:
    """A label value as it goes between the quotes: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    """``{a="1",b="2"}`` in the order given (callers sort when they need to); empty when there are none."""
    inner = ",".join(f'{name}="{escape(value)}"' for name, value in labels)
    return "{" + inner + "}" if inner else ""


def format_value(value: float) -> str:
    """An int as its digits, anything else as the repr of a float."""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render_lines(family: Family, base: Labels, ts_ms: int | None = None) -> list[str]:
    """Sample lines of a family, ``base`` labels first; with ``ts_ms`` each line carries the poll time
    (milliseconds). The reference for the fast path of collector/ingest.py."""
    stamp = f" {ts_ms}" if ts_ms is not None else ""
    return [f"{family.name}{format_labels((*base, *s.labels))} {format_value(s.value)}{stamp}"
            for s in family.samples]


def header(name: str, mtype: str, help_text: str) -> str:
    """The ``# HELP`` and ``# TYPE`` lines of a metric name (help text: backslash and newline escaped)."""
    help_escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_escaped}\n# TYPE {name} {mtype}\n"

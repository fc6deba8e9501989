"""hatang/textformat.py: the Prometheus text format helpers shared by ingest, store and /metrics."""

from __future__ import annotations

import ast
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hatang.textformat import escape, format_labels, format_value, header, render_lines
from wire.messages import Family, Sample


def test_escape_label_values() -> None:
    assert escape("plain") == "plain"
    assert escape("a\\b") == "a\\\\b"
    assert escape('say "hi"') == 'say \\"hi\\"'
    assert escape("two\nlines") == "two\\nlines"
    # the backslash first: an escaped quote or newline is not escaped twice
    assert escape('\\"\n') == '\\\\\\"\\n'
    assert escape("Phòng một cửa\ttab") == "Phòng một cửa\ttab"  # only the three specials change


def test_format_labels_keeps_the_given_order_and_escapes_values() -> None:
    assert format_labels(()) == ""
    assert format_labels([("b", "2"), ("a", "1")]) == '{b="2",a="1"}'
    assert format_labels([("alias", 'x"\\\ny')]) == '{alias="x\\"\\\\\\ny"}'


def test_format_value() -> None:
    assert format_value(3) == "3"
    assert format_value(-(2**63)) == "-9223372036854775808"
    assert format_value(2**64 - 1) == "18446744073709551615"
    assert format_value(1.5) == "1.5"
    assert format_value(1e20) == "1e+20"
    assert format_value(True) == "True"  # bool is an int (the wire never carries one as a value)


def test_render_lines_puts_base_labels_first_and_the_timestamp_last() -> None:
    family = Family("m", "gauge", "h", (Sample((("if", "1"),), 7), Sample((), 0.25)))
    base = (("agent", "xa"), ("device", "sw"))
    assert render_lines(family, base) == ['m{agent="xa",device="sw",if="1"} 7',
                                          'm{agent="xa",device="sw"} 0.25']
    assert render_lines(family, (), 1700000000123) == ['m{if="1"} 7 1700000000123', "m 0.25 1700000000123"]


def test_header_escapes_backslash_and_newline_but_not_quotes() -> None:
    assert header("m", "counter", 'a "b"\\c\nd') == '# HELP m a "b"\\\\c\\nd\n# TYPE m counter\n'


def test_rendered_text_parses_back_to_the_same_values() -> None:
    value = 'C:\\dir "x"\nend'
    family = Family("m", "gauge", "help \\ with\nnewline", (Sample((("path", value),), 1),))
    text = header(family.name, family.type, family.help) + "".join(
        line + "\n" for line in render_lines(family, (("agent", "xa"),), 5000))
    [parsed] = list(text_string_to_metric_families(text))
    assert parsed.documentation == family.help
    [sample] = parsed.samples
    assert sample.labels == {"agent": "xa", "path": value}
    assert sample.value == 1
    assert sample.timestamp == 5


def test_textformat_is_a_leaf() -> None:
    """It imports only the wire contract (so the collector's store, ingest and exposition, and the agent's
    ``hatang poll`` report, can all use it)."""
    tree = ast.parse(Path(__file__).parents[2].joinpath("hatang", "textformat.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert {m.split(".")[0] for m in imported if m} <= {"__future__", "collections", "wire"}, imported

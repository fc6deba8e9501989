#!/usr/bin/env python3
"""Generate the hatang Grafana dashboards (dashboards/*.json) from code.

Plain Python, standard library only (and hatang/availability/definitions.py of this checkout, itself
standard library only). Run from anywhere:

    python dashboards/build.py           # (re)write the JSON files next to this script
    python dashboards/build.py --check   # exit 1 if a JSON file on disk differs from what this writes

The files are committed together with this script; tests/unit/test_dashboards.py checks that the JSON on
disk equals this generator's output, so nobody edits one without the other. `hatang-tong-quan.json` (the
first, hand-written overview) is not generated here and is left alone.

Layout: this file is only the command line, `boards()` and `render()`; the boards are built by the package
next to it, dashboards/hatang_dashboards/:
* `promql.py`: the metric contract (`labels_of`), `Scope` (a board's chained variables as selector
  filters), the shared PromQL expressions, threshold steps and value mappings;
* `model.py`: `Board` (grid layout, panel ids, the dashboard JSON), variables, `target`, panel option
  presets, table helpers, the board uids and the links between boards;
* one module per board: `province.py` (Toàn tỉnh), `office.py` (Điểm), `port.py` (Cổng mạng), `link.py`
  (Đường truyền chuyên dùng), `server.py` (Máy chủ), `system.py` (Hệ thống giám sát).

Conventions (see dashboards/README.md):
* every panel and variable uses the `datasource` variable (`${datasource}`), never a fixed data source;
* query variables are named after the label they filter and chained: datasource -> province ->
  district -> commune -> agent -> device -> if_name; "All" is `.*`, so it also matches series without
  the label (the district level was abolished in 2025);
* only metric names and labels from docs/metrics.md;
* titles in Vietnamese (NFC), descriptions in Vietnamese then English.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The package lives next to this file: make it importable however this file is run or loaded (as a script
# from any directory, or by importlib from tests/unit/test_dashboards.py).
if sys.path[:1] != [str(HERE)]:
    sys.path.insert(0, str(HERE))
# The availability panels evaluate hatang/availability/definitions.py (standard library only) from the
# checkout this file is in.
if str(HERE.parent) not in sys.path:
    sys.path.append(str(HERE.parent))

from hatang_dashboards.link import link_board  # noqa: E402
from hatang_dashboards.model import Board, J  # noqa: E402
from hatang_dashboards.office import office_board  # noqa: E402
from hatang_dashboards.port import port_board  # noqa: E402
from hatang_dashboards.province import province_board  # noqa: E402
from hatang_dashboards.server import server_board  # noqa: E402
from hatang_dashboards.system import system_board  # noqa: E402

# every generated board, in the order boards() returns (and main() writes) them
BOARDS: tuple[Callable[[], Board], ...] = (
    province_board, office_board, port_board, link_board, server_board, system_board,
)


def boards() -> dict[str, J]:
    """File name -> dashboard JSON, for every generated board."""
    out = {}
    for make in BOARDS:
        board = make()
        out[f"{board.uid}.json"] = board.render()
    return out


def render(board: J) -> str:
    return json.dumps(board, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for name, board in boards().items():
        path = args.out / name
        text = render(board)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(name)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date (run python dashboards/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {', '.join(stale) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

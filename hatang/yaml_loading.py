"""Reading a YAML config file: a key given twice in one mapping is an error (YAML would keep the last
one silently), and every error names the file, the line and the key path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hatang.config_errors import ConfigError, key_path

# libyaml's parser when PyYAML was built with it (the wheels are): about 10x faster than the pure-Python
# one, which made loading the built-in profiles most of the cost of checking a config (agent start,
# each pushed configuration, hatang check). Same nodes, marks and constructors.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a key given twice in one mapping is an error (not a silent replace)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [("", "file not found; pass the right path with -c/--config")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc}")]) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load(text)`` that rejects duplicated mapping keys, with errors naming ``path``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicated_keys(loader, node, (), set()))
        if duplicates:
            raise ConfigError(path, duplicates)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [("", f"invalid YAML: {where}{problem}")]) from None
    finally:
        loader.dispose()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicated_keys(loader: Any, node: yaml.Node, loc: tuple[int | str, ...],
                     seen: set[int]) -> Iterator[tuple[str, str]]:
    """(key path, message) for every key given twice in one mapping, anywhere under ``node``."""
    if id(node) in seen:  # an alias of a node already walked (or a recursive one)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicated_keys(loader, item, (*loc, i), seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[Any, tuple[int, int]] = {}  # key -> (line, column) where it was first given
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: explicit keys override merged ones by design
                continue
            here_at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            earlier = None
            if isinstance(key_node, yaml.ScalarNode):  # scalar keys are hashable; 1 and 1.0 are one key
                earlier = first.setdefault(loader.construct_object(key_node), here_at)
                earlier = None if earlier == here_at else earlier
                key = str(key_node.value)  # as written
            else:  # a complex key (rare; the constructor may refuse it): not compared
                key = "?"
            here = (*loc, key)
            if earlier is not None:
                yield (key_path(here), (
                    f"key given twice ({_positions(earlier, here_at)}): YAML would silently keep only "
                    f"the second; merge the two into one '{key}:' or delete one"))
            yield from _duplicated_keys(loader, value_node, here, seen)


def _positions(first: tuple[int, int], second: tuple[int, int]) -> str:
    if first[0] != second[0]:
        return f"line {first[0]} and line {second[0]}"
    return f"line {first[0]}, columns {first[1]} and {second[1]}"


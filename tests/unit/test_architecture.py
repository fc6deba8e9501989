"""The layout rules of docs/architecture.md, checked on the source (an AST walk; nothing is imported).

- No import cycle between the project's modules, imports under ``if TYPE_CHECKING:`` and inside
  functions included (a type-only import is still a dependency a reader has to follow).
- ``agent`` and ``collector`` never import each other; ``wire`` imports only the standard library.
- Each third-party library is imported by its adapter modules only (the table below is the one in
  docs/architecture.md).
- No production module (nor a module of the dashboards' generator) over 400 lines unless its docstring
  says why (a paragraph starting ``Why this module is long:``).
- A public class or type alias is defined once: two modules never define the same public name.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "collector", "wire", "hatang")
MAX_LINES = 400
LONG_REASON = "Why this module is long:"

# third-party top-level module -> the project modules allowed to import it
ADAPTERS: dict[str, frozenset[str]] = {
    "pysnmp": frozenset({"agent.snmp.pysnmp_session", "agent.snmp.traps"}),
    "pyasn1": frozenset({"agent.snmp.pysnmp_session", "agent.snmp.traps"}),
    "aiomqtt": frozenset({"agent.mqtt_client", "collector.subscriber"}),
    "paho": frozenset({"agent.mqtt_client", "collector.subscriber"}),
    "cramjam": frozenset({"collector.remote_write"}),
    "prometheus_client": frozenset({"collector.selfmetrics"}),
    "aiohttp": frozenset({"collector.http", "agent.status_page"}),
    "amqtt": frozenset({"hatang.demo_broker"}),
    "pydantic": frozenset({"agent.config", "collector.config", "collector.inventory", "agent.profiles",
                           "hatang.configfile", "hatang.config_types"}),
    "yaml": frozenset({"hatang.yaml_loading"}),
    "cryptography": frozenset({"hatang.fleet.certificates", "hatang.signing", "agent.snmp.usm_crypto"}),
}


def _module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _module_files()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def _project_target(imported: str) -> str | None:
    """The project module an import refers to (the longest known prefix), or None for other code."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported, _ in _imports(name, path):
            target = _project_target(imported)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_the_project() -> None:
    graph = _graph()
    assert {"agent.snmp.target", "agent.snmp.session", "collector.store", "wire.codec"} <= set(graph)
    assert "agent.snmp.session" in graph["agent.snmp.target"]  # edges are found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # and cycles


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    shown = "; ".join(" <-> ".join(c) for c in cycles)
    assert not cycles, f"import cycles (type-only imports count): {shown}"


@pytest.mark.parametrize(("importer", "forbidden"), [("agent", "collector"), ("collector", "agent")])
def test_agent_and_collector_never_import_each_other(importer: str, forbidden: str) -> None:
    wrong = [f"{name}:{line} imports {imported}" for name, path in MODULES.items()
             if name.split(".")[0] == importer
             for imported, line in _imports(name, path) if imported.split(".")[0] == forbidden]
    assert not wrong


def test_wire_imports_only_the_standard_library() -> None:
    wrong = [f"{name}:{line} imports {imported}" for name, path in MODULES.items()
             if name.split(".")[0] == "wire"
             for imported, line in _imports(name, path)
             if imported.split(".")[0] != "wire" and imported.split(".")[0] not in sys.stdlib_module_names
             and imported != "__future__"]
    assert not wrong


def test_third_party_libraries_are_imported_by_their_adapters_only() -> None:
    wrong = [f"{name}:{line} imports {imported} (allowed in {sorted(ADAPTERS[imported.split('.')[0]])})"
             for name, path in MODULES.items()
             for imported, line in _imports(name, path)
             if imported.split(".")[0] in ADAPTERS and name not in ADAPTERS[imported.split(".")[0]]]
    assert not wrong


def test_every_adapter_exists() -> None:
    missing = sorted(m for allowed in ADAPTERS.values() for m in allowed if m not in MODULES)
    assert not missing


def test_long_modules_say_why() -> None:
    long = []
    generator = {f"dashboards.{p.stem}": p for p in sorted((ROOT / "dashboards").rglob("*.py"))}
    for name, path in {**MODULES, **generator}.items():
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and LONG_REASON not in doc:
            long.append(f"{name} ({lines} lines)")
    assert not long, f"over {MAX_LINES} lines without '{LONG_REASON}' in the module docstring: {long}"


def _public_definitions(path: Path) -> Iterator[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield node.name
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            is_alias = isinstance(value, ast.Subscript | ast.BinOp) or (
                isinstance(node, ast.AnnAssign) and isinstance(node.annotation, ast.Name)
                and node.annotation.id == "TypeAlias")
            for target in targets:
                if (isinstance(target, ast.Name) and is_alias and target.id[:1].isupper()
                        and not target.id.isupper()):
                    yield target.id


def test_public_classes_and_type_aliases_are_defined_once() -> None:
    where: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        if name.startswith("hatang.sim"):  # the simulator is the agent's test oracle: its own BER types
            continue
        for defined in _public_definitions(path):
            where.setdefault(defined, []).append(name)
    twice = {defined: modules for defined, modules in where.items() if len(modules) > 1}
    assert not twice, f"defined in more than one module: {twice}"


def test_metric_name_rule_is_written_once() -> None:
    pattern = re.compile(re.escape("[a-zA-Z_:][a-zA-Z0-9_:]*"))
    holders = [name for name, path in MODULES.items() if pattern.search(path.read_text())]
    assert len(holders) == 1, holders


def test_version_is_written_once() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'(?m)^version\s*=', pyproject) is None, "pyproject.toml: use dynamic version"
    assert 'attr = "hatang.__version__"' in pyproject

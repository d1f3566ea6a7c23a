"""Imports flow one way (STYLE §1, §2): intake -> pipeline -> policy -> apply ->
storage/outbound, and ``parsers``/``policy`` stay pure.

The graph is read from the source (``ast``), module-level and function-level
imports alike: an import hidden in a function is still an arrow. Imports under
``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> the package it is installed as (pyproject package-dir).
PACKAGES = {"maild": "maild", "parsers": "maild.parsers", "storage": "maild.storage"}
IO_MODULES = frozenset(
    {
        "socket",
        "smtplib",
        "imaplib",
        "sqlite3",
        "peewee",
        "psycopg2",
        "aiohttp",
        "aiosmtpd",
        "imapclient",
    }
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _import_nodes_of(child))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    yield from _import_nodes(node)


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports: ours resolved to the module (``from
    maild.storage import tickets`` is ``maild.storage.tickets``), others by name."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.add(sub if sub in known else base)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _ours(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Arrows between our own modules; a package's ``__init__`` arrow to its own
    submodules (re-exports) is not a dependency of the submodules on each other."""
    return {
        name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "maild.pipeline" in graph and "maild.parsers.message" in graph
    assert "maild.policy.table" in graph["maild.pipeline"]


def test_no_import_cycle() -> None:
    assert _cycles(_ours(_graph())) == []


def test_parsers_import_nothing_of_maild_but_parsers() -> None:
    wrong = {
        (name, target)
        for name, targets in _graph().items()
        if name.startswith("maild.parsers")
        for target in targets
        if _top(target) == "maild" and not target.startswith("maild.parsers")
    }
    assert wrong == set()


def test_policy_imports_no_storage_and_no_io() -> None:
    wrong = {
        (name, target)
        for name, targets in _graph().items()
        if name.startswith("maild.policy")
        for target in targets
        if target.startswith("maild.storage") or _top(target) in IO_MODULES
    }
    assert wrong == set()


def test_the_checks_see_a_cycle_and_a_function_level_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    import socket\n")
    assert [n.names[0].name for n in _import_nodes(tree)] == ["socket"]  # type: ignore[union-attr]


# The message's way, top down: nothing below imports what is above it.
PIPELINE_STAGES = ("maild.intake", "maild.recovery", "maild.pipeline", "maild.context")
BELOW_THE_PIPELINE = (
    "maild.policy",
    "maild.apply",
    "maild.apply_steps",
    "maild.agents",
    "maild.outbound",
    "maild.storage",
    "maild.parsers",
)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_imports_flow_one_way_from_intake_to_storage() -> None:
    graph = _graph()
    upward = {
        (name, target)
        for name, targets in graph.items()
        if _within(name, BELOW_THE_PIPELINE)
        for target in targets
        if _within(target, PIPELINE_STAGES)
    }
    assert upward == set()
    stages = list(PIPELINE_STAGES)
    backward = {
        (name, target)
        for name, targets in graph.items()
        for target in targets
        if _within(name, PIPELINE_STAGES)
        and _within(target, PIPELINE_STAGES)
        and _stage(name, stages) > _stage(target, stages)
    }
    assert backward == set()


def _stage(name: str, stages: list[str]) -> int:
    return next(i for i, prefix in enumerate(stages) if _within(name, (prefix,)))

"""The import graph of ``pipeline/`` and its size facts, read from the source with ``ast`` (nothing imported).

An edge ``a -> b`` is any import of ``b`` inside ``a``: at module level or inside a function (a lazy
import still ties the modules together). ``python tools/import_graph.py`` prints the facts the
architecture promises (``tests/test_import_graph.py`` asserts each of them):

- the import cycles (strongly connected modules); the only one allowed is ``mlflow_model`` <->
  ``inference``: MLflow calls ``mlflow_model._load_pyfunc``, which lazily imports the checkpoint
  loader of ``inference``, the module that reads the model format;
- whether a module of ``pipeline.tune`` reaches ``pipeline.report`` (it must not: the report reads
  the sweep's outputs, the sweep does not read the report);
- whether ``pipeline.models`` or ``pipeline.objectives`` reach ``train``, ``tune`` or ``tracking``;
- the modules over ``MAX_MODULE_LINES`` lines and the functions over ``MAX_FUNCTION_LINES`` lines.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 80
ALLOWED_CYCLES = [{"pipeline.mlflow_model", "pipeline.inference"}]


@dataclass(frozen=True)
class Module:
    name: str
    path: Path


def modules(root: Path = ROOT, package: str = "pipeline") -> dict[str, Module]:
    """``dotted name -> Module`` for every ``.py`` file of the package (a package is its ``__init__``)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = Module(".".join(parts), path)
    return found


def _owner(name: str, known: dict[str, Module]) -> str | None:
    """The module that defines ``name``: itself, else its longest known prefix."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: Module, known: dict[str, Module]) -> set[str]:
    targets = set()
    is_package = module.path.name == "__init__.py"
    for node in ast.walk(ast.parse(module.path.read_text(), str(module.path))):
        if isinstance(node, ast.Import):
            targets |= {_owner(alias.name, known) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")[: len(module.name.split(".")) - node.level + is_package]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                targets.add(full if full in known else _owner(source, known))
    return {t for t in targets if t and t != module.name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> the pipeline modules it imports`` (module level and inside functions)."""
    known = modules(root)
    return {name: _imported(module, known) for name, module in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def reaches(graph: dict[str, set[str]], source: str, target: str) -> dict[str, set[str]]:
    """``module of source -> the modules of target it reaches`` (only those that reach one)."""
    inside = lambda name, package: name == package or name.startswith(package + ".")  # noqa: E731
    hits = {}
    for name in graph:
        if inside(name, source):
            found = {m for m in reached(graph, name) if inside(m, target)}
            if found:
                hits[name] = found
    return hits


def long_modules(root: Path = ROOT, limit: int = MAX_MODULE_LINES) -> list[tuple[str, int]]:
    """``(path, lines)`` of every module over ``limit`` lines, longest first."""
    sizes = [(str(m.path.relative_to(root)), len(m.path.read_text().splitlines())) for m in modules(root).values()]
    return sorted((s for s in sizes if s[1] > limit), key=lambda s: -s[1])


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """``(path:qualified name, lines)`` of every function over ``limit`` lines (``def`` to its last line)."""
    found = []
    for module in modules(root).values():
        def walk(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef) and child.end_lineno - child.lineno + 1 > limit:
                        found.append((f"{module.path.relative_to(root)}:{name}", child.end_lineno - child.lineno + 1))
                    walk(child, f"{name}.")

        walk(ast.parse(module.path.read_text()), "")
    return sorted(found, key=lambda f: -f[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (default: this checkout)")
    args = parser.parse_args()
    graph = import_graph(args.root)
    print(f"{len(graph)} modules, {sum(len(t) for t in graph.values())} import edges")
    for component in cycles(graph):
        allowed = " (allowed: the MLflow loader)" if component in ALLOWED_CYCLES else ""
        print(f"cycle: {' <-> '.join(sorted(component))}{allowed}")
    for source, target in (("pipeline.tune", "pipeline.report"), ("pipeline.models", "pipeline.train"),
                           ("pipeline.models", "pipeline.tune"), ("pipeline.models", "pipeline.tracking"),
                           ("pipeline.objectives", "pipeline.train"), ("pipeline.objectives", "pipeline.tune"),
                           ("pipeline.objectives", "pipeline.tracking")):
        hits = reaches(graph, source, target)
        print(f"{source} reaches {target}: " + ("no" if not hits else
              "; ".join(f"{m} -> {', '.join(sorted(t))}" for m, t in sorted(hits.items()))))
    print(f"modules over {MAX_MODULE_LINES} lines:")
    for path, lines in long_modules(args.root):
        print(f"  {lines:5d}  {path}")
    print(f"functions over {MAX_FUNCTION_LINES} lines:")
    for name, lines in long_functions(args.root):
        print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()

"""dvc.yaml's deps cannot drift from the code: every module a stage imports (its whole import closure,
imports inside functions included) is a dep of that stage, so a code change, and a changed default in
``pipeline/config.py``, never leaves ``dvc repro`` saying "up to date"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of a ``pipeline`` module or package (its ``__init__.py``), None for other modules."""
    if name != "pipeline" and not name.startswith("pipeline."):
        return None
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reachable(tree: ast.Module, path: Path, stage: str) -> list[ast.AST]:
    """The nodes of a module a stage can run. In ``pipeline/cli.py``, which dispatches one command, that is
    its module-level code, ``main`` and the functions they call, where of the ``cmd_*`` handlers (all named
    in the parser) only the stage's own ``cmd_<stage>`` counts; in every other module, all of it."""
    if path != ROOT / "pipeline" / "cli.py":
        return list(ast.walk(tree))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    kept, todo = [], [node for node in tree.body if not isinstance(node, ast.FunctionDef)]
    todo += [functions["main"], functions[f"cmd_{stage}"]]
    seen = set()
    while todo:
        node = todo.pop()
        for inner in ast.walk(node):
            kept.append(inner)
            name = getattr(inner, "id", None)
            if name in functions and name not in seen and not name.startswith("cmd_"):
                seen.add(name)
                todo.append(functions[name])
    return kept


def imported_files(path: Path, stage: str) -> set[Path]:
    """The pipeline files ``path`` imports (anywhere in it, as the stage can reach it), with the
    ``__init__.py`` of every package on the way; a package that imports each of its modules by name
    (``pkgutil.iter_modules(__path__)``, the registries) imports its whole folder."""
    text = path.read_text()
    found = set(path.parent.glob("*.py")) if "pkgutil.iter_modules(__path__)" in text else set()  # a registry
    for node in reachable(ast.parse(text), path, stage):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]  # a name may be a module
        else:
            continue
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:depth]))
                if file is not None:
                    found.add(file)
    return found


def import_closure(script: Path, stage: str) -> set[Path]:
    seen, todo = set(), [script]
    while todo:
        for file in imported_files(todo.pop(), stage) - seen:
            seen.add(file)
            todo.append(file)
    return seen


def covered(file: Path, deps: list[str]) -> bool:
    relative = file.relative_to(ROOT).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage):
    script = ROOT / "stages" / f"{stage}.py"
    deps = STAGES[stage]["deps"]
    closure = import_closure(script, stage)
    assert ROOT / "pipeline" / "config.py" in closure  # the defaults: a changed one re-runs the stage
    missing = sorted(file.relative_to(ROOT).as_posix() for file in closure if not covered(file, deps))
    assert not missing, f"dvc.yaml: stage {stage} imports {missing} but does not list them in its deps"
    assert covered(script, deps)
    code = [dep for dep in deps if dep.startswith(("pipeline", "stages"))]
    unused = [dep for dep in code if not any(covered(file, [dep]) for file in closure | {script})]
    assert not unused, f"dvc.yaml: stage {stage} lists {unused} in its deps but does not import them"


def test_the_closure_follows_imports_inside_functions_and_only_the_stages_command():
    evaluate = import_closure(ROOT / "stages" / "evaluate.py", "evaluate")
    assert ROOT / "pipeline" / "report" / "evaluate.py" in evaluate  # imported inside cmd_evaluate
    assert ROOT / "pipeline" / "upscale.py" not in evaluate  # only cmd_upscale imports it
    assert ROOT / "pipeline" / "cli.py" not in import_closure(ROOT / "pipeline" / "config.py", "evaluate")
    assert ROOT / "pipeline" / "models" / "edsr_arch.py" in import_closure(ROOT / "stages" / "sweep.py", "sweep")

"""The architecture's import facts hold (``tools/import_graph.py`` reads them from the source)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from import_graph import (ALLOWED_CYCLES, MAX_FUNCTION_LINES, MAX_MODULE_LINES, cycles,  # noqa: E402
                          import_graph, long_functions, long_modules, reaches)

GRAPH = import_graph(ROOT)


def test_the_only_import_cycle_is_the_mlflow_loader():
    found = cycles(GRAPH)
    assert all(component in ALLOWED_CYCLES for component in found), f"import cycles: {found}"


def test_the_sweep_does_not_import_the_report():
    assert reaches(GRAPH, "pipeline.tune", "pipeline.report") == {}


def test_networks_and_losses_import_no_trainer_sweep_or_tracking():
    for source in ("pipeline.models", "pipeline.objectives"):
        for target in ("pipeline.train", "pipeline.tune", "pipeline.tracking"):
            assert reaches(GRAPH, source, target) == {}, f"{source} reaches {target}"


def test_no_module_and_no_function_is_longer_than_the_limits():
    assert long_modules(ROOT) == [], f"modules over {MAX_MODULE_LINES} lines: split them by job"
    assert long_functions(ROOT) == [], f"functions over {MAX_FUNCTION_LINES} lines: split them"


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_graph_sees_relative_lazy_and_package_imports_and_finds_a_cycle(tmp_path):
    root = _package(tmp_path, {
        "pipeline/__init__.py": "",
        "pipeline/a.py": "from .b import thing\n",
        "pipeline/b.py": "def thing():\n    from pipeline import c\n",
        "pipeline/c.py": "import pipeline.sub.d\n",
        "pipeline/sub/__init__.py": "from . import d\n",
        "pipeline/sub/d.py": "from ..a import x\n",
    })
    graph = import_graph(root)
    assert graph == {"pipeline": set(), "pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.c"},
                     "pipeline.c": {"pipeline.sub.d"}, "pipeline.sub": {"pipeline.sub.d"},
                     "pipeline.sub.d": {"pipeline.a"}}
    assert cycles(graph) == [{"pipeline.a", "pipeline.b", "pipeline.c", "pipeline.sub.d"}]
    assert reaches(graph, "pipeline.sub", "pipeline.c") == {"pipeline.sub": {"pipeline.c"},
                                                           "pipeline.sub.d": {"pipeline.c"}}


def test_size_facts_count_lines_of_modules_and_functions(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    root = _package(tmp_path, {"pipeline/__init__.py": "",
                               "pipeline/big.py": f"class K:\n    def method(self):\n{body.replace('    ', '        ')}\n"
                                                  f"def short():\n    pass\n" + "\n" * 270})
    assert long_functions(root, limit=80) == [("pipeline/big.py:K.method", 81)]
    assert long_modules(root, limit=350) == [("pipeline/big.py", 355)]

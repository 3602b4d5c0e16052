"""`dvc repro` and `dvc exp run` on a fresh copy of this checkout with a tiny study (all four stages), as a
user without network and without ../shared would run it: the shipped benchmarks, Set5/Set14 unreachable."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.data.conftest import closed_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # about two minutes: two full pipelines and one experiment


def run(args: list[str], cwd: Path, pythonpath: Path | None = None, fails: bool = False) -> str:
    """Run a command in ``cwd`` offline, importing the code in ``pythonpath`` (default: ``cwd``'s); assert that it
    succeeds (or, with ``fails``, that it fails)."""
    offline = f"http://127.0.0.1:{closed_port()}"  # every download fails at once, as on an offline machine
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(pythonpath or cwd),
           "OMP_NUM_THREADS": "1", "http_proxy": offline, "https_proxy": offline, "HTTP_PROXY": offline,
           "HTTPS_PROXY": offline, "no_proxy": "127.0.0.1,localhost", "DVC_NO_ANALYTICS": "1",
           "COLUMNS": "120"}  # a 120-column terminal: what the README promises dvc exp show fits in
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert (done.returncode != 0) == fails, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def tiny_study(params: dict) -> dict:
    """The shipped params.yaml shrunk to seconds: two objectives, 1-block EDSR, 8 iterations, the shipped
    benchmarks."""
    params["prepare"].update(val_count=1, cache_dir=".cache/downloads")
    params["degrade"]["scales"] = [2]
    params["model"]["args"] = {"n_blocks": 1, "n_feats": 8}
    params["train"].update(iterations=8, batch_size=2, patch_size=16, val_every=4, checkpoint_every=4, progress=False)
    params["tracking"]["log_model"] = False
    objectives = params["sweep"]["objectives"]
    params["sweep"].update(objectives={"l1": objectives["l1"], "grad2": objectives["grad2"]}, seeds=1, reports=2)
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git checkout of this project's tracked files with the tiny study committed as params.yaml."""
    base = tmp_path_factory.mktemp("dvc")
    project = base / "project"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, project / name)
    assert not (project.parent / "shared").exists()
    params = tiny_study(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "srloss tests"],
                    ["git", "config", "user.email", "tests@srloss.invalid"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "tiny study"]):  # dvc exp commits with the repository's identity
        subprocess.run(command, cwd=project, check=True)
    return project


def test_repro_builds_the_study_offline_and_a_second_repro_does_nothing(project):
    log = run(["dvc", "repro"], project)
    assert log.count("optional benchmarks Set14, Set5 skipped (used when available): could not reach") == 1
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert sorted(metrics) == sorted(f"Builtin/x2/{name}/{metric}" for name in ("bicubic", "l1", "grad2")
                                     for metric in ("psnr", "ssim"))
    leaderboard = (project / "results" / "leaderboard.md").read_text()
    assert "## Builtin x2" in leaderboard and "ΔPSNR vs l1 [95% CI]" in leaderboard
    # one seed per objective, both far below bicubic: the first screen names no winner and says why
    assert leaderboard.startswith("# Leaderboard\n\n## The answer across benchmarks\n")
    assert "(winner)" not in leaderboard
    assert "none can be, with 1 seed per objective" in leaderboard and "**better**" not in leaderboard
    claims = (project / "results" / "claims.md").read_text()
    statuses = [line.split(" | ")[2] for line in claims.splitlines() if line[:4] in {f"| {n} " for n in range(1, 7)}]
    assert len(statuses) == 6 and not any(s.startswith(("supported", "contradicted")) for s in statuses)
    assert "## 1. Trainable loss weights beat unweighted L1" in claims
    assert "from commit" in claims and "with uncommitted changes" not in claims  # its staging folder is ignored
    assert "not testable here: the study evaluated no `tlw` at Builtin x2" in claims
    assert {path.suffix for path in (project / "results" / "plots").iterdir()} == {".png"}
    again = run(["dvc", "repro"], project)
    assert "Running stage" not in again
    assert "up to date" in run(["dvc", "status"], project)
    # bytecode that any python command leaves inside the stages' code folders is no change (.dvcignore)
    (project / "pipeline" / "tune" / "__pycache__").mkdir(exist_ok=True)
    (project / "pipeline" / "tune" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"\0")
    assert "up to date" in run(["dvc", "status"], project)
    # what the README asks for: the results are committed with dvc.lock, the rest is ignored
    run(["git", "add", "dvc.lock", "results"], project)
    committed = run(["git", "diff", "--cached", "--name-only"], project).split()
    assert sorted(committed) == ["dvc.lock", "results/claims.md", "results/curves.csv", "results/image_scores.csv",
                                 "results/leaderboard.md", "results/metrics.json", "results/scores.json",
                                 "results/summary.md", "results/verdicts.json"]
    run(["git", "commit", "-qm", "baseline results"], project)
    assert run(["git", "status", "--porcelain"], project) == ""


def test_changing_one_loss_weight_changes_only_the_sweep_stage(project):
    if not (project / "results" / "metrics.json").is_file():
        run(["dvc", "repro"], project)
    params_file = project / "params.yaml"
    committed = params_file.read_text()
    params = yaml.safe_load(committed)
    params["sweep"]["objectives"]["grad2"]["loss"]["terms"]["grad2"] = 0.3
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = json.loads(run(["dvc", "status", "--json"], project))
    finally:
        params_file.write_text(committed)
    assert set(changed) == {"sweep"}  # evaluate follows through the models the sweep rewrites


def files_below(folder: Path, skip: tuple[str, ...] = (".git", ".dvc/tmp")) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.relative_to(folder).as_posix().startswith(skip)}


def test_a_failing_evaluate_keeps_the_last_reports(project, tmp_path):
    """Issue 19: DVC deleted evaluate's six uncached reports before the stage failed; they are ``persist`` now,
    and evaluate moves a new report in only once it is whole."""
    run(["dvc", "repro"], project)  # nothing to do after the first test; the whole study when run alone
    before = files_below(project / "results")
    assert "metrics.json" in before and any(name.startswith("plots/") for name in before)
    shutil.move(project / "models", tmp_path / "models")
    try:
        log = run(["dvc", "repro", "-s", "evaluate"], project, fails=True)
    finally:
        shutil.move(tmp_path / "models", project / "models")
    assert "models" in log
    assert files_below(project / "results") == before
    assert "up to date" in run(["dvc", "status"], project)


def test_a_changed_default_in_the_code_makes_dvc_status_report_the_stages(project):
    """A default params.yaml does not set (train.betas) is part of what DVC compares: pipeline/config.py is a dep
    of every stage that loads params (tests/test_dvc_deps.py keeps every stage's import closure in its deps)."""
    run(["dvc", "repro"], project)  # nothing to do after the first test; the whole study when run alone
    config = project / "pipeline" / "config.py"
    original = config.read_text()
    assert "betas" not in yaml.safe_load((project / "params.yaml").read_text())["train"]
    config.write_text(original.replace("Field((0.9, 0.99), ", "Field((0.9, 0.98), "))
    try:
        changed = json.loads(run(["dvc", "status", "--json"], project))
    finally:
        config.write_text(original)
    assert set(changed) == {"prepare", "degrade", "sweep", "evaluate"}
    assert all(any(item.get("changed deps", {}).get("pipeline/config.py") == "modified" for item in entry)
               for entry in changed.values()), changed
    assert "up to date" in run(["dvc", "status"], project)


def test_a_copied_project_works_on_itself_not_on_the_original(project, tmp_path):
    """Issue 19: ``cp -a study variant`` ran the original's params and replaced its sweep folder, models and
    results, because the project was where the (editable) package was installed; here the copy imports
    the original's code (PYTHONPATH, as its editable install would) and works on itself alone. Its copied
    MLflow store keeps the original's artifact folder, so the copy is refused until it names its own
    experiment."""
    run(["dvc", "repro"], project)  # nothing to do after the first test; the whole study when run alone
    original = files_below(project)
    variant = tmp_path / "variant"
    shutil.copytree(project, variant, symlinks=True)
    params = yaml.safe_load((variant / "params.yaml").read_text())
    params["sweep"]["only"] = ["l1"]
    (variant / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    refused = run(["dvc", "repro"], variant, pythonpath=project, fails=True)  # its copied MLflow store
    assert (f"error: MLflow experiment 'srloss' in sqlite:///{variant}/mlflow.db keeps its artifacts in "
            f"{project}/mlartifacts, not in this project's {variant}/mlartifacts (was the store copied from another "
            "project?); set tracking.experiment to a new name") in refused
    assert files_below(project) == original
    params["tracking"]["experiment"] = "variant"
    (variant / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], variant, pythonpath=project)
    assert str(project) not in log.replace(str(variant), "")
    with (variant / "results" / "sweep" / "trials.csv").open() as handle:
        assert [trial["objective"] for trial in csv.DictReader(handle)] == ["l1"]
    assert files_below(project) == original
    outside = run(["python", "-m", "pipeline", "config"], tmp_path, pythonpath=project, fails=True)
    assert outside.endswith(f"error: '{tmp_path}' is not inside a project: neither it nor a folder above it holds "
                            "params.yaml; run the command in the project folder or pass --params PATH\n")


def test_exp_run_samples_a_loss_weight_rerunning_only_sweep_and_evaluate(project):
    if not (project / "results" / "metrics.json").is_file():
        run(["dvc", "repro"], project)
    log = run(["dvc", "exp", "run", "-n", "grad2-weights", "-S", "sweep.num_samples=2",
               "-S", "+sweep.space.grad2={loss.terms.grad2: {loguniform: [0.01, 1.0]}}",
               "-S", "sweep.only=[grad2]"], project)
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}
    assert ran == {"sweep", "evaluate"}
    with (project / "results" / "sweep" / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert [trial["objective"] for trial in trials] == ["grad2", "grad2"]
    weights = {float(trial["loss.terms.grad2"]) for trial in trials}
    assert len(weights) == 2 and all(0.01 <= weight <= 1.0 for weight in weights)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project))
    names = [exp.get("name") for commit in shown for exp in (commit.get("experiments") or [])]
    assert "grad2-weights" in names
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project))["results/metrics.json"]
    assert "Builtin/x2/grad2/psnr" in diff and diff["Builtin/x2/grad2/psnr"]["old"] is not None
    table = run(["dvc", "exp", "show", "--no-pager", "--only-changed", "--drop",
                 "Created|State|Executor|models|.*/ssim|Set5/.*|Set14/.*"], project)  # the README's command
    assert "grad2-weights" in table and "Builtin/x2/grad2/psnr" in table and " ! " not in table
    assert "Builtin/x2/bicubic/psnr" not in table  # unchanged columns are left out
    assert max(len(line) for line in table.splitlines()) <= 120
    changes = run(["dvc", "exp", "diff", "--no-path", "HEAD", "grad2-weights"], project)  # the README's next one
    assert {"sweep.num_samples", "sweep.only", "sweep.space.grad2.loss.terms.grad2.loguniform",
            "Builtin/x2/grad2/psnr"} <= {line.split()[0] for line in changes.splitlines() if line.strip()}
    assert max(len(line) for line in changes.splitlines()) <= 120

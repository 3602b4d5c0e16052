"""Each model's training FLOPs and step time on the leaderboard, and the budget protocol on the claims page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.report.claims import render_claims
from pipeline.report.leaderboard import COST_HEADERS, render_leaderboard
from pipeline.report.per_image import PerImageScores
from pipeline.report.sweep_outputs import TrainedObjective
from pipeline.report.training_cost import TrainingCost, budget_line, budget_record, cost_of, training_cost
from pipeline.train.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from pipeline.train.flops import step_flops_of

from .conftest import study_params
from .test_leaderboard import _rows, _study

ITERATIONS = {"by": "iterations", "flops": None}
FLOPS = {"by": "flops", "flops": 2054356992000.0}


def _objective(name: str, train: dict[str, Any], folder: Path | None = None, metas: dict[int, dict] | None = None,
               info: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> TrainedObjective:
    """A model record as ``find_trained_objectives`` returns it; with ``metas``, one checkpoint per seed."""
    seeds = {}
    for seed, meta in (metas or {}).items():
        seeds[seed] = folder / name / "seeds" / f"{seed}.pt"
        save_checkpoint(seeds[seed], {"meta": {"format": CHECKPOINT_FORMAT, **meta}})
    best = next(iter(seeds.values()), Path("best.pt"))
    return TrainedObjective(name=name, scale=2, best=best, seeds=seeds, trained_with={**(params or {}), "train": train},
                            network_parameters=0, info=info or {})


def test_the_claims_page_states_the_equal_iterations_protocol():
    trained = [_objective(name, {"iterations": 600, "budget": ITERATIONS}) for name in ("l1", "cs")]
    assert budget_line(trained) == "Budget: equal iterations (600 per model)."
    claims = render_claims(PerImageScores(), PerImageScores(), [], {}, "Generated on X.", None, budget_line(trained))
    assert claims.startswith("# The seed papers' claims, tested\n\nGenerated on X.\n\n"
                             "Budget: equal iterations (600 per model).\n\nEach line is a paired difference")


def test_the_claims_page_states_the_equal_flops_protocol_with_each_objectives_iterations():
    trained = [_objective("l1", {"iterations": 600, "budget": FLOPS}),
               _objective("cs", {"iterations": 339, "budget": FLOPS})]
    line = "Budget: equal training FLOPs (2.05e12 per model; iterations per objective: l1 600, cs 339)."
    assert budget_line(trained) == line
    claims = render_claims(PerImageScores(), PerImageScores(), [], {}, "Generated on X.", None, line)
    assert f"Generated on X.\n\n{line}\n\n" in claims
    assert budget_record(trained) == {"by": "flops", "flops": 2054356992000.0,
                                      "iterations": {"l1": 600, "cs": 339}, "text": line}


def test_unequal_or_mixed_budgets_are_not_called_equal():
    unequal = [_objective("l1", {"iterations": 600, "budget": ITERATIONS}),
               _objective("cs", {"iterations": 300})]  # params from before train.budget: by iterations
    assert budget_line(unequal) == "Budget: by iterations, not equal (l1 600, cs 300)."
    mixed = [_objective("l1", {"iterations": 600, "budget": ITERATIONS}),
             _objective("cs", {"iterations": 339, "budget": FLOPS})]
    assert budget_line(mixed) == "Budget: differs between objectives: l1 600 iterations; cs 2.05e12 FLOPs (339 iterations)."
    assert budget_record(mixed)["by"] == "mixed"


def test_training_flops_are_flops_per_step_times_the_iterations_each_model_ran(tmp_path):
    meta = {"params": {"train": {"iterations": 339}},
            "budget": {"by": "flops", "iterations": 339, "flops_per_step": 6_000_000_000}}
    cs = _objective("cs", {"iterations": 339, "budget": FLOPS}, tmp_path,
                    {0: {**meta, "step_ms": 40.0}, 1: {**meta, "step_ms": 50.0}},
                    info={"seeds": [{"seed": 0, "iteration": 339}, {"seed": 1, "iteration": 300}]})  # seed 1 stopped
    cost = training_cost(cs)
    assert cost == TrainingCost(6_000_000_000, (339, 300), (40.0, 50.0))
    assert cost.flops == 6e9 * 319.5 and cost.mean_step_ms == 45.0


def test_by_iterations_the_flops_per_step_are_counted_on_the_params_it_trained_with(tmp_path):
    params = study_params(tmp_path).model_dump(mode="json")
    l1 = _objective("l1", params["train"], tmp_path, {3: {"params": params}}, params=params)
    cost = training_cost(l1)  # no info.json iterations, no step time recorded (a model from before step_ms)
    assert cost == TrainingCost(step_flops_of(study_params(tmp_path)), (6,), (None,))
    broken = _objective("old", params["train"], tmp_path, {0: {"params": params}}, params={**params, "gone": 1})
    assert training_cost(broken).flops is None  # params of another schema: unknown, not a guess


def test_the_leaderboard_shows_training_flops_and_step_time_per_objective():
    tree, scores = _study({"l1": 1.0, "cs": 0.2}, noise=0.01)
    costs = {"l1": TrainingCost(3_424_000_000, (600, 600), (12.2, 12.4)),
             "cs": TrainingCost(6_000_000_000, (339, 300), (40.0, None))}
    plain = render_leaderboard(tree, scores, [], "statement", {}, [], {"l1": 2})
    text = render_leaderboard(tree, scores, [], "statement", {}, [], {"l1": 2}, costs=costs)
    header = next(line for line in text.splitlines() if line.startswith("| rank |"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells[-4:] == [*COST_HEADERS, "models", "MLflow runs"] == ["train FLOPs", "step (ms)", "models",
                                                                      "MLflow runs"]
    plain_header = next(line for line in plain.splitlines() if line.startswith("| rank |"))
    assert header.count("|") == plain_header.count("|") + 2  # two columns more, no other change
    assert len(header) - len(plain_header) == len(" train FLOPs | step (ms) |")
    l1, cs, bicubic = _rows(text)
    assert l1[-4:-2] == ["2.05e12", "12.3"] and cs[-4:-2] == ["1.92e12", "40.0"] and bicubic[-4:-2] == ["–", "–"]
    assert "*train FLOPs* are each model's training FLOPs" in text and "*train FLOPs*" not in plain
    assert cost_of(costs, "cs@anchor") is costs["cs"] and cost_of(costs, "l1+") is costs["l1"]
    assert cost_of(costs, "bicubic") is None

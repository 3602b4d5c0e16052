"""The search space: forms, grid variants, namespaced sampling, Optuna's define-by-run space, the
params of a trial, and errors that name the bad key (all without starting Ray)."""

from __future__ import annotations

import optuna
import pytest
from pydantic import ValidationError
from ray.tune.search.variant_generator import generate_variants

from pipeline.config import SweepConfig
from pipeline.errors import ConfigError
from pipeline.tune.space import SearchSpace, TrialChoice, trial_choice
from pipeline.tune.trial import run_name

OBJECTIVES = {"l1": {"loss": {"terms": {"l1": 1.0}}},
              "fcs": {"loss": {"objective": "fcs", "args": {"lowpass": {"kind": "gaussian", "sigma": 1.0}},
                               "terms": {}},
                      "train": {"lr": 1e-3}}}


LR_RANGE = {"loguniform": [1e-4, 1e-2]}


def space_of(search: str = "random", seeds: int = 1, **space) -> SearchSpace:
    return SearchSpace(SweepConfig(objectives=OBJECTIVES, space=space, search=search, seeds=seeds))


def test_grid_values_multiply_only_their_own_objective():
    space = space_of(fcs={"loss.args.lowpass.sigma": {"grid": [0.5, 1.0, 2.0]}, "train.lr": LR_RANGE},
                     l1={"train.batch_size": {"grid": [2, 4]}})
    assert space.grid_variants() == [
        {"objective": "l1", "grid": {"train.batch_size": 2}}, {"objective": "l1", "grid": {"train.batch_size": 4}},
        *({"objective": "fcs", "grid": {"loss.args.lowpass.sigma": s}} for s in (0.5, 1.0, 2.0))]


def test_objectives_without_sampled_keys_are_named_as_repeated_by_num_samples():
    space = space_of(fcs={"train.lr": LR_RANGE}, l1={"train.batch_size": {"grid": [2, 4]}})
    assert space.repeated_identically(1) == []
    assert space.repeated_identically(8) == ["l1"]
    assert space_of("grid", fcs={"train.lr": {"choice": [1e-3, 1e-4]}}).repeated_identically(2) == ["l1", "fcs"]
    assert space_of("optuna", fcs={"train.lr": LR_RANGE}).repeated_identically(8) == []


def test_only_runs_a_subset_of_the_objectives_and_rejects_unknown_names():
    assert list(SearchSpace(SweepConfig(objectives=OBJECTIVES, only=["fcs"])).objectives) == ["fcs"]
    with pytest.raises(ConfigError, match="sweep.only names objective.s. l2 that sweep.objectives lacks"):
        SearchSpace(SweepConfig(objectives=OBJECTIVES, only=["l2"]))
    with pytest.raises(ConfigError, match="sweep.only is empty"):
        SearchSpace(SweepConfig(objectives=OBJECTIVES, only=[]))


def test_sampled_values_are_shared_by_the_seeds_of_a_configuration():
    space = space_of(seeds=3, fcs={"train.lr": LR_RANGE, "loss.args.lowpass.sigma": {"uniform": [0.5, 2]}},
                     l1={"train.batch_size": {"randint": [2, 3]}})
    configs = [config for _, config in generate_variants(space.tune_param_space(), constant_grid_search=True,
                                                         random_state=0)]
    choices = [trial_choice(config) for config in configs]
    assert sorted((c.objective, c.seed_index) for c in choices) == [("fcs", 0), ("fcs", 1), ("fcs", 2),
                                                                    ("l1", 0), ("l1", 1), ("l1", 2)]
    for objective in ("fcs", "l1"):
        assert len({c.configuration for c in choices if c.objective == objective}) == 1
    fcs = next(c for c in choices if c.objective == "fcs")
    assert set(fcs.values) == {"train.lr", "loss.args.lowpass.sigma"} and 1e-4 <= fcs.values["train.lr"] <= 1e-2
    assert next(c for c in choices if c.objective == "l1").values["train.batch_size"] in (2, 3)


def test_randint_includes_both_bounds():
    space = space_of(l1={"train.batch_size": {"randint": [2, 3]}})
    choices = [trial_choice(config) for seed in range(30)
               for _, config in generate_variants(space.tune_param_space(), random_state=seed)]
    assert {choice.values["train.batch_size"] for choice in choices if choice.objective == "l1"} == {2, 3}


def test_optuna_suggests_the_objective_then_only_its_keys():
    space = space_of(search="optuna", fcs={"loss.args.lowpass.sigma": {"grid": [0.5, 1.0]}, "train.lr": LR_RANGE},
                     l1={"train.batch_size": {"randint": [2, 4]}})
    expected = {"fcs": {"space/fcs/loss.args.lowpass.sigma", "space/fcs/train.lr"}, "l1": {"space/l1/train.batch_size"}}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        space.optuna_space(trial)
        objective = trial.params["objective"]
        seen.add(objective)
        assert {key for key in trial.params if key != "objective"} == expected[objective]
        study.tell(trial, 0.0)
    assert seen == {"fcs", "l1"}
    choice = trial_choice({"objective": "fcs", "space": {"fcs": {"train.lr": 0.001}}, "__trial_index__": 2})
    assert choice == TrialChoice("fcs", {"train.lr": 0.001}, 2)


def test_trial_params_merge_sections_replace_free_form_values_and_set_the_reports(tiny_data):
    tiny_data.sweep = SweepConfig(objectives=OBJECTIVES, reports=4, metric="val/ssim", mode="max")
    tiny_data.loss.terms = {"l1": 1.0, "tv": 0.1}
    tiny_data.train.iterations = 10
    space = SearchSpace(tiny_data.sweep)
    choice = TrialChoice("fcs", {"loss.args.lowpass.sigma": 2.0, "train.batch_size": 2}, 1)
    params = space.trial_params(tiny_data, choice)
    assert params.loss.objective == "fcs" and params.loss.terms == {}  # replaced, not merged with l1 + tv
    assert params.loss.args == {"lowpass": {"kind": "gaussian", "sigma": 2.0}}
    assert params.train.lr == 1e-3 and params.train.batch_size == 2 and params.train.patch_size == 32  # merged
    assert params.seed == tiny_data.seed + 1
    assert (params.train.val_every, params.train.checkpoint_every) == (2, 2)
    assert (params.train.select_metric, params.train.select_mode, params.train.progress) == ("val/ssim", "max", False)
    assert space.fragment(TrialChoice("fcs", {"loss.args.lowpass.sigma": 2.0}, 0))["loss"]["args"]["lowpass"] == {
        "kind": "gaussian", "sigma": 2.0}
    assert OBJECTIVES["fcs"]["loss"]["args"]["lowpass"]["sigma"] == 1.0  # the declared fragment is left alone


def test_check_against_returns_the_most_validations_of_a_trial(tiny_data):
    tiny_data.train.iterations = 10
    tiny_data.sweep = SweepConfig(objectives=OBJECTIVES, reports=3,
                                  space={"l1": {"train.iterations": {"choice": [10, 12]}}})
    assert SearchSpace(tiny_data.sweep).check_against(tiny_data) == 4  # 10 iterations, every 3: 3, 6, 9, 10


@pytest.mark.parametrize("space, match", [
    ({"l1": {"train.lrr": {"choice": [1e-3]}}}, r"sweep.objectives.l1 with .*unknown key 'train.lrr'"),
    ({"l1": {"train.lr.value": {"choice": [1e-3]}}}, r"'train.lr.value' goes inside 'train.lr', which is a value"),
    ({"l1": {"train.lr": {"between": [1, 2]}}}, r"sweep.space.l1.train.lr must be a mapping with one form"),
    ({"l1": {"train.lr": {"loguniform": [0, 1e-3]}}}, r"loguniform needs 0 < low < high \(got \[0, 0.001\]\)"),
    ({"l1": {"train.batch_size": {"randint": [2.5, 4]}}}, r"randint needs integers low < high"),
    ({"l1": {"train.lr": {"choice": [-1.0]}}}, r"'train.lr': Input should be greater than 0"),
    ({"fcs": {"loss.args.sigmaa": {"choice": [1.0]}}}, r"sweep.objectives.fcs with .*no option 'sigmaa'"),
    ({"edsr": {"train.lr": {"choice": [1e-3]}}}, r"sweep.space names objective\(s\) edsr that sweep.objectives lacks"),
])
def test_a_bad_space_fails_on_the_driver_naming_the_key(tiny_data, space, match):
    tiny_data.sweep = SweepConfig(objectives=OBJECTIVES, space=space)
    with pytest.raises(ConfigError, match=match):
        SearchSpace(tiny_data.sweep).check_against(tiny_data)


def test_search_specific_limits_are_config_errors():
    with pytest.raises(ConfigError, match="search 'grid' tries finite lists only"):
        space_of(search="grid", l1={"train.lr": {"uniform": [1e-4, 1e-3]}})
    assert space_of(search="grid", l1={"train.lr": {"choice": [1e-4, 1e-3]}}).dimensions["l1"][0].exhaustive
    with pytest.raises(ConfigError, match="Optuna chooses among numbers, strings and booleans only"):
        space_of(search="optuna", l1={"loss.args.anchors": {"choice": [[0, 1], [1, 2]]}})
    with pytest.raises(ConfigError, match="PBT cannot mutate 'loss.args.lowpass.sigma'.*train.lr"):
        space_of(fcs={"loss.args.lowpass.sigma": {"uniform": [0.5, 2]}}).pbt_mutations()
    with pytest.raises(ValidationError, match="'bad/name' is not a plain folder name"):  # the schema's FolderName
        SearchSpace(SweepConfig(objectives={"bad/name": {}}))


def test_a_wrong_fragment_names_its_objective(tiny_data):
    tiny_data.sweep = SweepConfig(objectives={"broken": {"train": {"iterationz": 5}}})
    with pytest.raises(ConfigError, match=r"sweep.objectives.broken: unknown key 'train.iterationz'"):
        SearchSpace(tiny_data.sweep).check_against(tiny_data)
    tiny_data.sweep = SweepConfig(objectives={"many": {}}, reports=20)
    with pytest.raises(ConfigError, match="sweep.reports 20 is more than the 12 training iterations"):
        SearchSpace(tiny_data.sweep).check_against(tiny_data)


def test_pbt_mutates_only_the_sampled_keys_of_each_objective():
    space = space_of(l1={"train.lr": {"loguniform": [1e-4, 1e-2]}, "train.batch_size": {"grid": [2, 4]}})
    mutations = space.pbt_mutations()
    assert list(mutations["space"]) == ["l1"] and list(mutations["space"]["l1"]) == ["train.lr"]


def test_a_trial_run_is_named_by_its_objective_searched_values_and_seed():
    assert run_name(TrialChoice("l1", {}, 1), 1) == "l1 seed1"
    choice = TrialChoice("grad2", {"loss.terms.grad2": 0.123456, "train.batch_size": 4}, 0)
    assert run_name(choice, 7) == "grad2 grad2=0.123 batch_size=4 seed7"


def test_the_most_expensive_objectives_start_first():
    from pipeline.params_file import validate
    from pipeline.tune.cost import TRIAL_COST

    base = validate({"train": {"iterations": 10}, "sweep": {"objectives": OBJECTIVES}})
    space = space_of(seeds=2)
    costs = space.costs(base)
    assert costs == {"l1": TRIAL_COST["regression"] * 10, "fcs": TRIAL_COST["fcs"] * 10}
    assert [v["objective"] for v in space.grid_variants(costs)] == ["fcs", "l1"]
    started = [trial_choice(config) for _, config in generate_variants(space.tune_param_space(costs),
                                                                         constant_grid_search=True, random_state=0)]
    assert [(c.objective, c.seed_index) for c in started] == [("fcs", 0), ("fcs", 1), ("l1", 0), ("l1", 1)]

"""GPU placement checked without GPUs: a local Ray cluster declares 2 fake GPUs, and trial functions
that record what Ray gave them (assigned resources, GPU ids, ``CUDA_VISIBLE_DEVICES``) run through the
sweep's own ``Tuner``: fractional ``sweep.resources.gpu`` packs trials onto a shared GPU, and a
data-parallel trial's workers each hold their own GPU and see their node's GPUs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pipeline.tune import sweep as sweep_module
from pipeline.tune.ddp import run_ddp_trial
from pipeline.tune.storage import Storage
from pipeline.tune.space import SearchSpace
from pipeline.tune.trial import SweepRun
from tests.tune.sweep_params import sweep_params

RECORDS = "SRLOSS_TEST_RECORDS"


def record(name: str) -> None:
    """Write what this Ray worker was given to ``$SRLOSS_TEST_RECORDS/<name>.json``."""
    import ray

    context = ray.get_runtime_context()
    given = {"resources": context.get_assigned_resources(), "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    (Path(os.environ[RECORDS]) / f"{name}.json").write_text(json.dumps(given))


REPORT = {"val/psnr": 0.0, "iteration": 1, "iterations": 1, "validations": 1}  # what the sweep's Tuner expects


def recording_trial(config, sweep):
    from ray import tune

    record(tune.get_context().get_trial_id())
    tune.report(REPORT)


def recording_worker(setup):
    from ray import train

    record(f"{setup['trial_id']}-rank{train.get_context().get_world_rank()}")
    train.report(REPORT)


def recording_ddp_trial(config, sweep):
    run_ddp_trial(config, sweep, worker=recording_worker, backend="gloo")  # gloo: no CUDA here


@pytest.fixture(scope="module")
def fake_gpu_ray(tmp_path_factory):
    """A local Ray cluster of 4 CPUs and 2 GPUs that do not exist; the records folder."""
    import ray
    from ray import cloudpickle

    records = tmp_path_factory.mktemp("records")
    os.environ[RECORDS] = str(records)  # before ray.init: the workers inherit it
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the recorders reach the workers by value
    ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    yield records
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    os.environ.pop(RECORDS)


def run_tuner(params, root: Path, monkeypatch, name: str, trial) -> None:
    monkeypatch.setattr(sweep_module, name, trial)
    space = SearchSpace(params.sweep)
    storage = Storage(params.sweep.storage_path)
    grid = sweep_module._tuner(SweepRun(params, space, storage.child(params.sweep.name), None, None), storage,
                               space.check_against(params), False, False).fit()
    assert grid.num_errors == 0, [result.error for result in grid]


def read_records(records: Path, pattern: str) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(records.glob(pattern))]


@pytest.mark.slow
def test_fractional_gpus_share_a_gpu_between_trials(fake_gpu_ray, tiny_data, tmp_path, monkeypatch):
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {}, "l2": {"loss": {"terms": {"l2": 1.0}}}},
                                                "seeds": 2, "resources": {"cpu": 1, "gpu": 0.5}}, tracking=False)
    run_tuner(params, tmp_path, monkeypatch, "run_trial", recording_trial)
    given = read_records(fake_gpu_ray, "*.json")
    assert len(given) == 4
    for trial in given:
        assert trial["resources"] == {"CPU": 1.0, "GPU": 0.5}
        assert len(trial["gpu_ids"]) == 1 and trial["cuda_visible_devices"] == trial["gpu_ids"][0]
    assert {trial["cuda_visible_devices"] for trial in given} <= {"0", "1"}


@pytest.mark.slow
def test_data_parallel_workers_each_hold_a_gpu(fake_gpu_ray, tiny_data, tmp_path, monkeypatch):
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {}}, "resources": {"cpu": 1, "gpu": 1,
                                                                                        "workers": 2}},
                          tracking=False)
    run_tuner(params, tmp_path, monkeypatch, "run_ddp_trial", recording_ddp_trial)
    ranks = read_records(fake_gpu_ray, "*-rank*.json")
    assert len(ranks) == 2
    assert sorted(gpu for rank in ranks for gpu in rank["gpu_ids"]) == ["0", "1"]  # one GPU each, not the same
    for rank in ranks:
        assert rank["resources"] == {"CPU": 1.0, "GPU": 1.0}
        assert rank["cuda_visible_devices"] == "0,1"  # Ray Train shows a node's workers all its GPUs (NCCL P2P)

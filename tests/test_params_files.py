"""The two shipped params files: the default CPU study and the papers' full-scale settings."""

from pathlib import Path

import pytest

from pipeline.params_file import load_params
from pipeline.tune.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
STUDY = ["l1", "charbonnier", "grad2", "tlw", "fine_grained", "cs", "fcs"]


@pytest.mark.parametrize("name", ["params.yaml", "params-paper.yaml"])
def test_params_file_validates_and_every_objective_builds(name):
    params = load_params(ROOT / name)
    assert list(params.sweep.objectives) == STUDY
    SearchSpace(params.sweep).check_against(params)  # builds each objective's network and head


def test_paper_params_are_the_full_scale_setting():
    params = load_params(ROOT / "params-paper.yaml")
    assert params.prepare.source.preset == "DIV2K_train_HR"
    assert {name: source.preset for name, source in params.prepare.benchmarks.items()} == {
        "Set5": "Set5", "Set14": "Set14", "B100": "B100", "Urban100": "Urban100"}
    assert params.degrade.scales == [2, 3, 4]
    assert (params.model.name, params.model.args) == ("edsr", {"n_blocks": 16, "n_feats": 64})
    assert (params.train.iterations, params.train.batch_size, params.train.patch_size) == (300000, 16, 96)
    assert params.sweep.resources.gpu == 1 and params.sweep.seeds >= 2
    assert params.evaluate.scales == [params.train.scale]

"""Reading the sweep's models: objectives by folder, seeds in numeric order, info.json checked."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.report.sweep_outputs import find_trained_objectives, objectives_without_model

from .conftest import write_info


def _objective(models: Path, name: str, checkpoint: Path, seeds: tuple[int, ...] = ()) -> Path:
    folder = models / name
    (folder / "seeds").mkdir(parents=True) if seeds else folder.mkdir(parents=True)
    shutil.copy(checkpoint, folder / "best.pt")
    for seed in seeds:
        shutil.copy(checkpoint, folder / "seeds" / f"{seed}.pt")
    return folder


def test_objectives_are_found_by_best_pt_with_seeds_in_numeric_order(tiny_checkpoint, tmp_path):
    models = tmp_path / "models"
    write_info(_objective(models, "l1", tiny_checkpoint, seeds=(10, 2, 0)),
               {"run_id": "r2", "parent_run_id": "p", "experiment_id": "3",
                "seeds": [{"seed": 0, "run_id": "r0"}, {"seed": 2, "run_id": "r2"}, {"seed": 10, "run_id": None}]})
    _objective(models, "cs", tiny_checkpoint)
    (models / "train" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint, models / "train" / "checkpoints" / "best.pt")
    cs, l1 = find_trained_objectives(models)
    assert (cs.name, l1.name) == ("cs", "l1")
    assert {seed: path.name for seed, path in l1.checkpoints.items()} == {0: "0.pt", 2: "2.pt", 10: "10.pt"}
    assert list(l1.checkpoints) == [0, 2, 10]
    assert cs.checkpoints == {int(cs.trained_with["seed"]): models / "cs" / "best.pt"} and cs.info == {} and cs.run_id is None
    assert (l1.run_id, l1.parent_run_id, l1.experiment_id, l1.scale) == ("r2", "p", "3", 2)
    assert l1.seed_run_ids == {0: "r0", 2: "r2"} and cs.seed_run_ids == {}
    assert l1.trained_with["model"] == {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}}
    assert l1.network_parameters > 0


def test_no_models_or_broken_files_are_errors_with_the_fix(tiny_checkpoint, tmp_path):
    models = tmp_path / "models"
    with pytest.raises(PipelineError, match=r"no trained models in .*expected <objective>/best.pt.*run the sweep"):
        find_trained_objectives(models)
    folder = _objective(models, "l1", tiny_checkpoint, seeds=(0,))
    (folder / "info.json").write_text("{not json")
    with pytest.raises(PipelineError, match=r"info.json' is not valid JSON .*re-run the sweep stage"):
        find_trained_objectives(models)
    (folder / "info.json").write_text("{}")
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    del checkpoint["meta"]["scale"]
    torch.save(checkpoint, folder / "best.pt")
    with pytest.raises(PipelineError, match=r"best.pt' is not a complete srloss checkpoint \(no usable 'scale'\); "
                                            r"re-run the sweep stage"):
        find_trained_objectives(models)
    shutil.copy(tiny_checkpoint, folder / "best.pt")
    shutil.copy(tiny_checkpoint, folder / "seeds" / "best.pt")
    with pytest.raises(PipelineError, match=r"seed checkpoint .*best.pt' is not named <seed>.pt"):
        find_trained_objectives(models)


def test_only_the_current_sweeps_models_are_found_and_objectives_without_one_are_named(tiny_checkpoint, tmp_path,
                                                                                     caplog):
    models = tmp_path / "models"
    write_info(_objective(models, "l1", tiny_checkpoint), {"sweep": {"name": "study", "id": "new"}})
    write_info(_objective(models, "grad2", tiny_checkpoint), {"sweep": {"name": "study", "id": "old"}})
    (models / "sweep.json").write_text(json.dumps({"name": "study", "id": "new", "objectives": ["grad2", "l1", "tv"],
                                                   "with_model": ["l1"]}))
    with caplog.at_level(logging.WARNING):
        trained = find_trained_objectives(models)
    assert [objective.name for objective in trained] == ["l1"] and trained[0].sweep == {"name": "study", "id": "new"}
    assert "skipping grad2" in caplog.text and "earlier sweep, not by sweep 'study' (id new)" in caplog.text
    assert objectives_without_model(models, trained) == ["grad2", "tv"]
    (models / "sweep.json").write_text(json.dumps({"name": "study", "id": "newer", "objectives": ["l1"]}))
    with pytest.raises(PipelineError, match=r"none of the models in '.*models' was made by the current sweep 'study' "
                                            r"\(id newer\); run the sweep stage again"):
        find_trained_objectives(models)
    (models / "sweep.json").write_text(json.dumps({"name": "study"}))
    with pytest.raises(PipelineError, match=r"sweep.json' lacks the sweep's name, id or objectives; re-run the sweep"):
        find_trained_objectives(models)

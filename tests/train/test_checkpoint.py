"""Checkpoint files: atomic writes, weights-only reads, rebuilding networks from ``meta``."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.train import checkpoint as checkpoint_module
from pipeline.train.checkpoint import checkpoint_meta, load_checkpoint, restore_networks, save_checkpoint

PARAMS = validate({"model": {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}},
                   "loss": {"objective": "regression", "terms": {"l1": 1.0}}, "train": {"scale": 2}})


class RunsCodeWhenUnpickled:
    """Unpickling this calls ``os.mkdir(marker)``: what a malicious checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def networks(seed: int):
    torch.manual_seed(seed)
    net = build_model("edsr", 2, PARAMS.model.args)
    return net, build_objective(PARAMS.loss, net.feature_channels, 2)


def make_state(seed: int = 0, ema: bool = False) -> dict:
    net, objective = networks(seed)
    state = {"meta": checkpoint_meta(PARAMS, net.feature_channels), "model": net.state_dict(),
             "objective": objective.state_dict(), "iteration": 3, "best": {"value": None, "list": [1, 2.5, "x"]},
             "ema": None}
    if ema:
        ema_net, ema_objective = networks(seed + 1)
        state["ema"] = {"net": ema_net.state_dict(), "head": ema_objective.head.state_dict()}
    return state


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    state = make_state()
    save_checkpoint(tmp_path / "c" / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "c" / "last.pt")
    assert loaded["best"] == state["best"] and loaded["meta"] == state["meta"]
    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert os.listdir(tmp_path / "c") == ["last.pt"]


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_state(seed=0))
    before = path.read_bytes()

    def crash(state, handle):
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(PipelineError, match=r"^checkpoint '.*last.pt' could not be written \(No space left on device\); "
                                            r"the previous one is intact: free disk space, then continue with --resume$"):
        save_checkpoint(path, make_state(seed=1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]


def test_objects_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['best'\] is of type object"):
        save_checkpoint(tmp_path / "x.pt", {"best": object()})
    assert not (tmp_path / "x.pt").exists()


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({**make_state(), "payload": RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(PipelineError, match="refused for safety"):
        load_checkpoint(path)
    assert not marker.exists()


def test_unreadable_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    save_checkpoint(tmp_path / "whole.pt", make_state())
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:1000])
    with pytest.raises(PipelineError, match="unreadable"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(PipelineError, match="not a srloss checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize("with_ema", [False, True])
def test_restore_networks_rebuilds_the_saved_weights(tmp_path, with_ema):
    state = make_state(seed=0, ema=with_ema)
    save_checkpoint(tmp_path / "c.pt", state)
    net, objective = restore_networks(load_checkpoint(tmp_path / "c.pt"))
    expected_net, expected_objective = networks(1 if with_ema else 0)
    assert not net.training and not objective.training
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = objective.decode(objective(net(lr)))
        want = expected_objective.decode(expected_objective(expected_net.eval()(lr)))
    assert torch.equal(got, want)


def test_restore_networks_needs_no_loss_term_files(tmp_path):
    state = make_state()
    state["meta"]["loss"]["terms"] = {"l1": 1.0, "perceptual": {"weight": 0.1}}  # would need VGG19 weights
    save_checkpoint(tmp_path / "c.pt", state)
    net, objective = restore_networks(load_checkpoint(tmp_path / "c.pt"))
    assert len(objective.terms) == 0 and net.scale == 2

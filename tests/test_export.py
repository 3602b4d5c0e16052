"""export: the ONNX and TorchScript files compute what PyTorch computes, decode included, at any size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.export import TOLERANCE, export_model
from pipeline.inference import load_super_resolver
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint


def class_checkpoint(path: Path) -> Path:
    """A tiny EDSR x2 with the CS objective (256 classes per channel, expectation decode)."""
    torch.manual_seed(0)
    params = validate({"model": {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}}, "train": {"scale": 2},
                       "loss": {"objective": "cs", "args": {"decode": "expectation"}, "terms": {}}})
    net = build_model("edsr", 2, params.model.args)
    objective = build_objective(params.loss, net.feature_channels, 2)
    save_checkpoint(path, {"model": net.state_dict(), "objective": objective.state_dict(),
                           "meta": checkpoint_meta(params, net.feature_channels)})
    return path


@pytest.mark.slow
def test_onnx_and_torchscript_equal_pytorch_on_other_sizes(tmp_path: Path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    checkpoint = class_checkpoint(tmp_path / "cs.pt")
    assert main(["-q", "export", "--model", str(checkpoint), "-o", str(tmp_path / "out")]) == 0
    resolver = load_super_resolver(checkpoint)
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(tmp_path / "out" / "model.torchscript.pt"))
    for height, width in ((41, 23), (256, 6)):  # a Set5-like tall crop and a thin strip, neither the example size
        lr = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
        with torch.no_grad():
            expected = resolver(lr).numpy()
            traced = scripted(lr).numpy()
        onnx = session.run(["sr"], {"lr": lr.numpy()})[0]
        assert onnx.shape == traced.shape == expected.shape == (1, 3, 2 * height, 2 * width)
        assert np.abs(onnx - expected).max() <= TOLERANCE
        assert np.abs(traced - expected).max() <= TOLERANCE
        assert expected.std() > 0.01  # a real image, not a constant both sides agree on
    assert '"onnx_max_abs_diff"' in capsys.readouterr().out


def test_an_unknown_format_is_one_sentence(tiny_checkpoint: Path, tmp_path: Path):
    with pytest.raises(PipelineError, match="unknown export format png; choose from onnx, torchscript"):
        export_model(str(tiny_checkpoint), tmp_path, ("png",))

"""train.init_from: pretrained weights of this project or of another framework, loaded weights-only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pipeline.config import LossConfig
from pipeline.errors import PipelineError
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.checkpoint import load_checkpoint, restore_networks
from pipeline.train.init_weights import initialise_from
from pipeline.train.loop import fit

DIV2K_MEAN = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
REGRESSION = LossConfig.model_validate({"objective": "regression", "terms": {"l1": 1.0}})
CS = LossConfig.model_validate({"objective": "cs", "terms": {}})


def basicsr_edsr_weights(n_feats: int, n_blocks: int, scale: int, seed: int) -> dict[str, torch.Tensor]:
    """Random weights under BasicSR's EDSR names and shapes (its published ``EDSR(num_in_ch=3, num_out_ch=3,
    num_feat, num_block, upscale)``): ``conv_first``; ``body.<i>.conv1/conv2`` (residual blocks without BN);
    ``conv_after_body``; ``upsample.<2k>`` (a conv to 4 * num_feat before each x2 pixel shuffle); ``conv_last``."""
    generator = torch.Generator().manual_seed(seed)

    def conv(out_channels: int, in_channels: int) -> dict[str, torch.Tensor]:
        return {"weight": 0.05 * torch.randn(out_channels, in_channels, 3, 3, generator=generator),
                "bias": 0.01 * torch.randn(out_channels, generator=generator)}

    layers = {"conv_first": conv(n_feats, 3), "conv_after_body": conv(n_feats, n_feats),
              "conv_last": conv(3, n_feats)}
    for block in range(n_blocks):
        layers[f"body.{block}.conv1"] = conv(n_feats, n_feats)
        layers[f"body.{block}.conv2"] = conv(n_feats, n_feats)
    for stage in range(scale.bit_length() - 1):
        layers[f"upsample.{2 * stage}"] = conv(4 * n_feats, n_feats)
    return {f"{layer}.{kind}": tensor for layer, weights in layers.items() for kind, tensor in weights.items()}


def basicsr_edsr_forward(weights: dict[str, torch.Tensor], lr: torch.Tensor, n_blocks: int, scale: int) -> torch.Tensor:
    """BasicSR's EDSR forward pass, written out from its description: ``x = (lr - mean) * 255``,
    ``f = conv_first(x)``, ``res = conv_after_body(blocks(f)) + f`` with blocks ``y + conv2(relu(conv1(y)))``,
    ``out = conv_last(upsample(res)) / 255 + mean``."""
    def conv(name: str, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weights[f"{name}.weight"], weights[f"{name}.bias"], padding=1)

    first = conv("conv_first", (lr - DIV2K_MEAN) * 255.0)
    y = first
    for block in range(n_blocks):
        y = y + conv(f"body.{block}.conv2", F.relu(conv(f"body.{block}.conv1", y)))
    y = conv("conv_after_body", y) + first
    for stage in range(scale.bit_length() - 1):
        y = F.pixel_shuffle(conv(f"upsample.{2 * stage}", y), 2)
    return conv("conv_last", y) / 255.0 + DIV2K_MEAN


def fresh_networks(loss: LossConfig = REGRESSION, n_blocks: int = 2, n_feats: int = 8, scale: int = 2, seed: int = 5):
    torch.manual_seed(seed)
    net = build_model("edsr", scale, {"n_blocks": n_blocks, "n_feats": n_feats})
    return net, build_objective(loss, net.feature_channels, scale)


@pytest.mark.parametrize("scale", [2, 4])
def test_basicsr_edsr_file_gives_the_outputs_of_basicsr_edsr(tmp_path: Path, scale: int):
    params, params_ema = basicsr_edsr_weights(8, 2, scale, seed=1), basicsr_edsr_weights(8, 2, scale, seed=2)
    torch.save({"params": params, "params_ema": params_ema}, tmp_path / "EDSR_x.pth")
    lr = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(3))
    for key, weights in ((None, params_ema), ("params", params), ("params_ema", params_ema)):
        net, objective = fresh_networks(scale=scale)
        text = initialise_from(str(tmp_path / "EDSR_x.pth"), "edsr", net, objective, key=key)
        with torch.no_grad():
            ours = objective.predict(net(lr))
            theirs = basicsr_edsr_forward(weights, lr, 2, scale)
        assert torch.allclose(ours, theirs, rtol=0, atol=2e-6), (ours - theirs).abs().max()
        assert "and the head" in text and "BasicSR names" in text
    assert not torch.allclose(basicsr_edsr_forward(params, lr, 2, scale), basicsr_edsr_forward(params_ema, lr, 2, scale))


def test_own_names_in_safetensors_load_bit_for_bit(tmp_path: Path):
    source_net, source_objective = fresh_networks(seed=11)
    state = {**source_net.state_dict(), **{f"head.{k}": v for k, v in source_objective.head.state_dict().items()}}
    save_file(state, tmp_path / "weights.safetensors")
    net, objective = fresh_networks(seed=12)
    initialise_from(str(tmp_path / "weights.safetensors"), "edsr", net, objective)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(objective.predict(net(lr)), source_objective.predict(source_net(lr)))


def test_a_checkpoint_gives_every_objective_the_same_network_and_its_own_kind_of_head(tiny_checkpoint: Path):
    trained_net, trained_objective = restore_networks(load_checkpoint(tiny_checkpoint))
    l1_net, l1 = fresh_networks(REGRESSION, n_blocks=1, n_feats=8, seed=7)
    cs_net, cs = fresh_networks(CS, n_blocks=1, n_feats=8, seed=7)
    cs_head_before = {k: v.clone() for k, v in cs.head.state_dict().items()}
    initialise_from(str(tiny_checkpoint), "edsr", l1_net, l1)
    text = initialise_from(str(tiny_checkpoint), "edsr", cs_net, cs)
    for state in (l1_net.state_dict(), cs_net.state_dict()):
        assert all(torch.equal(state[k], v) for k, v in trained_net.state_dict().items())
    assert all(torch.equal(l1.head.state_dict()[k], v) for k, v in trained_objective.head.state_dict().items())
    assert all(torch.equal(cs.head.state_dict()[k], v) for k, v in cs_head_before.items())  # ordered init kept
    assert "head keeps its own initialisation" in text


def test_init_head_false_keeps_the_regression_head_of_build_objective(tiny_checkpoint: Path):
    net, objective = fresh_networks(REGRESSION, n_blocks=1, n_feats=8, seed=7)
    head_before = {k: v.clone() for k, v in objective.head.state_dict().items()}
    initialise_from(str(tiny_checkpoint), "edsr", net, objective, head=False)
    assert all(torch.equal(objective.head.state_dict()[k], v) for k, v in head_before.items())


def test_a_network_that_does_not_fit_is_one_sentence(tiny_checkpoint: Path, tmp_path: Path):
    net, objective = fresh_networks(n_blocks=2, n_feats=8)
    with pytest.raises(PipelineError, match=r"does not fit the network of model.name/model.args \(keys missing "
                                            r"body.1.body.0.bias, .* \.\.\.; unexpected body.1.bias, body.1.weight\); "
                                            r"set model.name and model.args"):
        initialise_from(str(tiny_checkpoint), "edsr", net, objective)
    torch.save({"params": basicsr_edsr_weights(8, 2, 2, seed=0)}, tmp_path / "x.pth")
    with pytest.raises(PipelineError, match=r"train.init_key 'params_ema' is not a state dict in .* \(it has params\)"):
        initialise_from(str(tmp_path / "x.pth"), "edsr", net, objective, key="params_ema")
    with pytest.raises(PipelineError, match="BasicSR key names, which are mapped only for edsr, rcan"):
        initialise_from(str(tmp_path / "x.pth"), "vdsr", net, objective)


def test_pickled_objects_and_non_weight_files_are_refused_without_running_them(tmp_path: Path):
    net, objective = fresh_networks()
    torch.save({"params": {"x": torch.nn.ReLU()}}, tmp_path / "pickled.pth")
    with pytest.raises(PipelineError, match="holds more than tensors and plain data .* refused for safety"):
        initialise_from(str(tmp_path / "pickled.pth"), "edsr", net, objective)
    (tmp_path / "info.json").write_text("{}")
    with pytest.raises(PipelineError, match="'.*info.json' is not a weights file"):
        initialise_from(str(tmp_path / "info.json"), "edsr", net, objective)
    with pytest.raises(PipelineError, match="'.*missing.pth' not found; pass a checkpoint"):
        initialise_from(str(tmp_path / "missing.pth"), "edsr", net, objective)


def test_fit_starts_from_the_weights_and_a_resume_ignores_them(tiny_data, tmp_path: Path):
    tiny_data.train.iterations, tiny_data.train.val_every, tiny_data.train.checkpoint_every = 6, 6, 6
    first = fit(tiny_data, tmp_path / "first")
    tiny_data.train.init_from = str(first.best_checkpoint)
    tiny_data.train.iterations, tiny_data.train.lr = 1, 1e-12  # one step that cannot move the weights visibly
    second = fit(tiny_data, tmp_path / "second")
    assert second.final_metrics["val/psnr"] == pytest.approx(first.final_metrics["val/psnr"], abs=1e-3)
    scratch = tiny_data.model_copy(deep=True)
    scratch.train.init_from = None
    assert fit(scratch, tmp_path / "scratch").final_metrics["val/psnr"] < first.final_metrics["val/psnr"] - 1

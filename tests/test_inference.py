"""SuperResolver, loading from checkpoints and MLflow folders, and tiled upscaling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from pipeline.errors import PipelineError
from pipeline.inference import (SuperResolver, computed_pixels, load_super_resolver, tile_windows, to_uint8,
                                upscale_image)
from pipeline.mlflow_model import LOADER_MODULE
from pipeline.objectives.regression import Regression
from pipeline.train.checkpoint import load_checkpoint, restore_networks

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda,
                                              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")])]


class ConvStack(nn.Module):
    """``depth`` 3x3 convs at LR size, then conv + pixel shuffle: receptive radius ``depth + 1`` LR pixels."""

    def __init__(self, scale: int, depth: int = 3, feats: int = 8):
        super().__init__()
        self.scale, self.feature_channels = scale, feats
        layers: list[nn.Module] = []
        for index in range(depth):
            layers += [nn.Conv2d(3 if index == 0 else feats, feats, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(feats, feats * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(lr)


def conv_resolver(scale: int = 2, depth: int = 3) -> SuperResolver:
    """Receptive radius in LR pixels: ``depth + 1`` for the network, + 1 for the head's 3x3 conv at HR size."""
    torch.manual_seed(0)
    net = ConvStack(scale, depth)
    objective = Regression(in_channels=net.feature_channels, scale=scale, terms={})
    with torch.no_grad():
        objective.head.conv.bias.fill_(0.5)
    return SuperResolver(net, objective, model_name="convstack", objective_name="regression").eval()


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_super_resolver_is_decode_of_head_of_net_clamped():
    resolver = conv_resolver()
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = resolver.objective.decode(resolver.objective(resolver.net(lr))).clamp(0, 1)
        assert torch.equal(resolver(lr), expected)
    assert resolver.scale == 2
    assert resolver.description == "convstack x2 trained with the 'regression' objective"


def test_to_uint8_rounds_like_the_validation_quantiser():
    levels = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.49 / 255, 1.51 / 255, 254.6 / 255, 1.0, 1.7])
    assert to_uint8(levels).tolist() == [0, 0, 0, 1, 2, 255, 255, 255]


@given(length=st.integers(1, 300), tile=st.integers(1, 128), overlap=st.integers(0, 40))
@settings(max_examples=300, deadline=None)
def test_tile_windows_partition_the_axis_in_the_fewest_near_equal_windows(length, tile, overlap):
    if tile <= 2 * overlap:
        with pytest.raises(PipelineError, match="larger than twice the overlap"):
            tile_windows(length, tile, overlap)
        return
    windows = tile_windows(length, tile, overlap)
    kept = 0
    for start, stop, keep_from, keep_to in windows:
        assert 0 <= start < stop <= length and stop - start <= tile
        assert keep_from == kept and keep_from < keep_to
        assert start == 0 or keep_from - start >= overlap
        assert stop == length or stop - keep_to >= overlap
        kept = keep_to
    assert kept == length
    sizes = [stop - start for start, stop, _, _ in windows]
    assert max(sizes) - min(sizes) <= 1
    # fewest windows: one fewer could not cover the axis, each interior one keeping at most tile - 2 * overlap
    assert len(windows) == 1 or (len(windows) - 1) * (tile - 2 * overlap) + 2 * overlap < length
    assert sum(sizes) == length + 2 * overlap * (len(windows) - 1)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "expected"), [
    (2000, 2000, 512, 16, 2128 * 2128),  # the README's case: five windows per axis (was 2560^2, 1.64x)
    (264, 264, 256, 16, 296 * 296),  # a 264-pixel side: two windows of 148 (was two of 256, 3.03x with both axes)
    (100, 70, 256, 16, 100 * 70),  # fits in one tile: no extra work
])
def test_computed_pixels_are_the_image_plus_one_overlap_per_seam(height, width, tile, overlap, expected):
    assert computed_pixels(height, width, tile, overlap) == expected


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_equals_whole_image_when_overlap_covers_the_receptive_field(device, scale):
    resolver = conv_resolver(scale).to(device)
    image = random_image(37, 53)
    whole = upscale_image(resolver, image, tile=1024, overlap=0)
    assert whole.shape == (37 * scale, 53 * scale, 3)
    assert 0 < whole.min() and whole.max() < 255 and len(np.unique(whole)) > 30  # unclamped, varied output
    for batch in (1, 4):
        tiled = upscale_image(resolver, image, tile=16, overlap=5, batch=batch)
        np.testing.assert_array_equal(tiled, whole)


def test_too_small_overlap_shows_seams():
    resolver = conv_resolver()
    image = random_image(40, 40)
    whole = upscale_image(resolver, image, tile=1024, overlap=0)
    seamed = upscale_image(resolver, image, tile=16, overlap=0)
    assert np.abs(seamed.astype(int) - whole.astype(int)).max() > 1


def test_whole_image_path_equals_direct_forward():
    resolver = conv_resolver()
    image = random_image(11, 13)
    lr = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255
    with torch.no_grad():
        expected = to_uint8(resolver(lr))[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(upscale_image(resolver, image, tile=64, overlap=8), expected)


def test_every_forward_pass_sees_at_most_batch_windows_of_one_shape_within_the_tile():
    resolver = conv_resolver()
    shapes: list[tuple[int, ...]] = []
    resolver.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    upscale_image(resolver, random_image(100, 70), tile=32, overlap=4, batch=3)
    assert shapes and all(b <= 3 and h <= 32 and w <= 32 for b, _, h, w in shapes)
    rows, cols = tile_windows(100, 32, 4), tile_windows(70, 32, 4)
    per_shape: dict[tuple[int, int], int] = {}
    for y, y_end, _, _ in rows:
        for x, x_end, _, _ in cols:
            per_shape[(y_end - y, x_end - x)] = per_shape.get((y_end - y, x_end - x), 0) + 1
    assert len(per_shape) > 1  # the case exercises windows of different sizes
    assert len(shapes) == sum(-(-count // 3) for count in per_shape.values())
    assert sum(b * h * w for b, _, h, w in shapes) == computed_pixels(100, 70, 32, 4)


def test_upscale_image_rejects_non_uint8_rgb():
    with pytest.raises(ValueError, match="uint8"):
        upscale_image(conv_resolver(), np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        upscale_image(conv_resolver(), np.zeros((8, 8), dtype=np.uint8))


def test_load_from_checkpoint_rebuilds_the_trained_networks(tiny_checkpoint: Path):
    resolver = load_super_resolver(tiny_checkpoint, "cpu")
    net, objective = restore_networks(load_checkpoint(tiny_checkpoint))
    lr = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(resolver(lr), objective.decode(objective(net(lr))).clamp(0, 1))
    assert not resolver.training
    assert (resolver.scale, resolver.model_name, resolver.objective_name) == (2, "edsr", "regression")


def test_load_missing_checkpoint_says_not_found_and_suggests_the_study_models(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"'nope.pt' not found; pass models/<objective>/best.pt .*runs/<name>/"):
        load_super_resolver("nope.pt")
    (tmp_path / "models" / "l1").mkdir(parents=True)
    (tmp_path / "models" / "l1" / "best.pt").write_bytes(b"")
    with pytest.raises(PipelineError, match=r"'nope.pt' not found; the study's models here are models/l1/best.pt"):
        load_super_resolver("nope.pt")


def test_a_models_objective_folder_loads_its_best_checkpoint(tiny_checkpoint: Path, tmp_path: Path):
    folder = tmp_path / "models" / "l1"
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(tiny_checkpoint.read_bytes())
    lr = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_super_resolver(folder)(lr), load_super_resolver(tiny_checkpoint)(lr))
    with pytest.raises(PipelineError, match=f"model folder '{tmp_path}' holds neither best.pt nor an MLmodel file"):
        load_super_resolver(tmp_path)


def test_info_json_is_refused_in_one_sentence_that_points_at_best_pt(tiny_checkpoint: Path, tmp_path: Path):
    (tmp_path / "best.pt").write_bytes(tiny_checkpoint.read_bytes())
    (tmp_path / "info.json").write_text('{"run_id": "abc"}')
    with pytest.raises(PipelineError) as error:
        load_super_resolver(tmp_path / "info.json")
    assert str(error.value) == (f"model '{tmp_path / 'info.json'}' is not a checkpoint (not a torch archive: "
                                f"another kind of file, or truncated); pass {tmp_path / 'best.pt'}")


def test_load_from_an_mlflow_model_folder(tiny_checkpoint: Path, tmp_path: Path):
    import mlflow  # here: the CUDA tests of this file run where MLflow is not installed (bench/gpu_check.py)

    mlflow.pyfunc.save_model(tmp_path / "model", loader_module=LOADER_MODULE, data_path=str(tiny_checkpoint),
                             pip_requirements=["torch"])
    loaded = load_super_resolver(tmp_path / "model", "cpu")
    reference = load_super_resolver(tiny_checkpoint)
    image = random_image(9, 9)
    np.testing.assert_array_equal(upscale_image(loaded, image), upscale_image(reference, image))
    assert (loaded.model_name, loaded.objective_name) == ("edsr", "regression")


def test_a_pickled_mlflow_model_is_refused_before_unpickling(tmp_path: Path):
    import mlflow

    mlflow.pytorch.save_model(nn.Conv2d(3, 3, 1), tmp_path / "model", serialization_format="pickle",
                              pip_requirements=["torch"])
    with pytest.raises(PipelineError, match="not an srloss weights-only model .flavors: python_function, pytorch."):
        load_super_resolver((tmp_path / "model").as_uri())


def test_an_mlflow_uri_without_mlflow_installed_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # importing it raises ImportError, as where it is not installed
    with pytest.raises(PipelineError, match="needs the mlflow package, which is not installed"):
        load_super_resolver("runs:/0123/model")


def test_a_missing_mlflow_model_is_a_pipeline_error(tmp_path: Path):
    with pytest.raises(PipelineError, match="could not be loaded .*No such artifact"):
        load_super_resolver((tmp_path / "model").as_uri())


@pytest.mark.parametrize("objective", ["regression", "cs", "fcs", "fine_grained", "tlw"])
def test_every_objective_predicts_the_same_bits_at_one_and_two_threads(objective):
    """``evaluate`` and ``upscale`` choose their thread count from the machine's load
    (``pipeline.train.cpus.use_available_cpus``); that must not change a score."""
    from pipeline.config import LossConfig
    from pipeline.models.registry import build_model
    from pipeline.objectives.registry import build_objective

    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": 2, "n_feats": 16}).eval()
    head = build_objective(LossConfig(objective=objective), net.feature_channels, 2).eval()
    image = torch.rand(1, 3, 67, 45)
    threads = torch.get_num_threads()
    predictions = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.inference_mode():
                predictions.append(head.predict(net(image)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*predictions)

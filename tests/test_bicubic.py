from pathlib import Path

import numpy as np
import pytest

from pipeline.bicubic import bicubic_baseline
from pipeline.errors import PipelineError
from pipeline.imageio import write_png

SET5 = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "Set5"
PUBLISHED_SET5 = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.mark.skipif(not SET5.is_dir(), reason="Set5 not found in ../shared/benchmarks")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_matches_the_published_bicubic_row(scale):
    result = bicubic_baseline(SET5, scale)
    psnr, ssim = PUBLISHED_SET5[scale]
    assert result["images"] == 5 and result["scale"] == scale and result["crop_border"] == scale
    names = [item["name"] for item in result["per_image"]]
    assert names == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    assert abs(result["psnr"] - psnr) < 0.03
    assert abs(result["ssim"] - ssim) < 0.002
    assert result["psnr"] == pytest.approx(np.mean([item["psnr"] for item in result["per_image"]]))


def _write_images(folder: Path, count: int, size: tuple[int, int] = (37, 42)) -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size[0] * size[1]).reshape(*size, 1)
    for i in range(count):
        image = np.clip(ramp + rng.normal(0, 10, (*size, 3)), 0, 255).astype(np.uint8)
        write_png(folder / f"img{i}.png", image)


def test_options_are_honoured(tmp_path):
    _write_images(tmp_path, 2)
    default = bicubic_baseline(tmp_path, 3)
    rgb = bicubic_baseline(tmp_path, 3, crop_border=0, y_channel=False)
    assert default["images"] == rgb["images"] == 2
    assert default["crop_border"] == 3 and rgb["crop_border"] == 0 and rgb["y_channel"] is False
    assert default["psnr"] != rgb["psnr"]
    assert 0 < rgb["ssim"] < default["ssim"] <= 1  # noise hurts RGB SSIM more than the smoother Y


def test_bad_inputs_are_one_sentence_errors(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        bicubic_baseline(tmp_path / "absent", 2)
    with pytest.raises(PipelineError, match="holds no images"):
        bicubic_baseline(tmp_path, 2)
    _write_images(tmp_path, 1)
    with pytest.raises(PipelineError, match="scale of at least 2"):
        bicubic_baseline(tmp_path, 1)
    with pytest.raises(PipelineError, match="img0.png.*11x11"):
        bicubic_baseline(tmp_path, 4, crop_border=13)

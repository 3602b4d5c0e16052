"""Exported model vs PyTorch on real images: ``python bench/export_check.py MODEL HR_DIR [OUT]``.

Exports ``MODEL`` (``pipeline.export``), then for every image of ``HR_DIR`` (modcropped, downscaled by
MATLAB-exact bicubic to the model's scale) prints the LR size and the maximum absolute difference of
the ONNX (onnxruntime, CPU) and TorchScript outputs to PyTorch's, on the [0, 1] scale.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from pipeline.degrade.imresize import imresize_uint8
from pipeline.export import export_model
from pipeline.imageio import list_images, modcrop, read_image
from pipeline.inference import load_super_resolver


def main(model: str, hr_dir: Path, out_dir: Path) -> None:
    summary = export_model(model, out_dir)
    resolver = load_super_resolver(model)
    session = onnxruntime.InferenceSession(summary["onnx"], providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(summary["torchscript"])
    worst = {"onnx": 0.0, "torchscript": 0.0}
    for path in list_images(hr_dir):
        lr_image = imresize_uint8(modcrop(read_image(path), resolver.scale), 1 / resolver.scale)
        lr = torch.from_numpy(lr_image).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            expected = resolver(lr).numpy()
            traced = scripted(lr).numpy()
        onnx = session.run(["sr"], {"lr": lr.numpy()})[0]
        differences = {"onnx": float(np.abs(onnx - expected).max()), "torchscript": float(np.abs(traced - expected).max())}
        worst = {name: max(worst[name], value) for name, value in differences.items()}
        print(f"{path.name}: LR {lr_image.shape[1]}x{lr_image.shape[0]}, max |ONNX - torch| {differences['onnx']:.3g}, "
              f"max |TorchScript - torch| {differences['torchscript']:.3g}")
    print(f"{resolver.description}: worst ONNX {worst['onnx']:.3g}, worst TorchScript {worst['torchscript']:.3g} "
          f"(tolerance {summary['tolerance']})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else Path(folder))

"""The ``export`` command: a trained model, its objective's decode included, as ONNX and TorchScript.

The exported function is the inference model of ``pipeline.inference``:
``sr = clamp(decode(head(net(lr))), 0, 1)`` for ``lr`` float32 ``[1, 3, H, W]`` in [0, 1], returning
``[1, 3, s*H, s*W]``. ONNX (input ``lr``, output ``sr``) is written by PyTorch's dynamo exporter with
height and width dynamic; TorchScript by ``torch.jit.trace``. The class objectives' CPU decode
works in blocks whose count depends on the image size, which a fixed graph cannot hold, so the
graph decodes the whole image in one block (``decode(..., block_elements=ONE_BLOCK)``: more memory,
the same numbers). Each file is then
checked against PyTorch on an image of another size than the one exported with: ONNX through
onnxruntime (when installed), TorchScript reloaded; a maximum absolute difference above
``TOLERANCE`` is an error.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.errors import PipelineError
from pipeline.inference import SuperResolver, load_super_resolver

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
"""Largest accepted |exported - PyTorch| on [0, 1] outputs: 0.0255 of one 8-bit level."""
EXAMPLE_SIZE = (32, 32)
CHECK_SIZE = (37, 29)
ONE_BLOCK = 1 << 62
"""A decode's ``block_elements`` beyond any image: one block."""


class ExportedSuperResolver(nn.Module):
    """``clamp(decode(head(net(lr))), 0, 1)``, decoded in one block: ``SuperResolver`` without the blocked
    ``predict``."""

    def __init__(self, resolver: SuperResolver):
        super().__init__()
        self.net, self.objective = resolver.net, resolver.objective

    def forward(self, lr: Tensor) -> Tensor:
        return self.objective.decode(self.objective(self.net(lr)), block_elements=ONE_BLOCK).clamp(0, 1)


def export_model(model: str, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                 tracking_uri: str | None = None) -> dict[str, Any]:
    """Write ``out_dir/model.onnx`` and/or ``out_dir/model.torchscript.pt``; return their paths and the
    maximum absolute difference of each to PyTorch on a ``CHECK_SIZE`` LR image."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise PipelineError(f"unknown export format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    resolver = load_super_resolver(model, "cpu", tracking_uri=tracking_uri)
    module = ExportedSuperResolver(resolver).eval()
    generator = torch.Generator().manual_seed(0)
    example, check = (torch.rand(1, 3, *size, generator=generator) for size in (EXAMPLE_SIZE, CHECK_SIZE))
    with torch.no_grad():
        expected = resolver(check)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"model": str(model), "description": resolver.description, "scale": resolver.scale,
                               "check_size": list(CHECK_SIZE), "tolerance": TOLERANCE}
    with torch.no_grad():
        if "onnx" in formats:
            summary["onnx"], summary["onnx_max_abs_diff"] = _onnx(module, example, check, expected, out_dir)
        if "torchscript" in formats:
            summary["torchscript"], summary["torchscript_max_abs_diff"] = _torchscript(module, example, check,
                                                                                       expected, out_dir)
    for name in ("onnx", "torchscript"):
        difference = summary.get(f"{name}_max_abs_diff")
        if difference is not None and difference > TOLERANCE:
            raise PipelineError(f"the exported {name} model differs from PyTorch by {difference:.3g} (> {TOLERANCE}) "
                                f"on a {CHECK_SIZE[1]}x{CHECK_SIZE[0]} image; this network or objective does not "
                                f"export faithfully, so use the checkpoint with `python -m pipeline upscale`")
    return summary


def _onnx(module: nn.Module, example: Tensor, check: Tensor, expected: Tensor,
          out_dir: Path) -> tuple[str, float | None]:
    path = out_dir / "model.onnx"
    dims = {2: torch.export.Dim("height", min=2, max=1 << 14), 3: torch.export.Dim("width", min=2, max=1 << 14)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), input_names=["lr"], output_names=["sr"],
                              dynamic_shapes={"lr": dims}, dynamo=True, verbose=False)
    except Exception as exc:  # the exporter raises many kinds; one sentence names it
        raise PipelineError(f"ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); export "
                            "--format torchscript only, or use the checkpoint with `python -m pipeline upscale`") from None
    try:
        import onnxruntime
    except ImportError:
        log.warning("onnxruntime is not installed: %s was not checked against PyTorch", path)
        return str(path), None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = torch.from_numpy(session.run(None, {"lr": check.numpy()})[0])
    return str(path), float((output - expected).abs().max())


def _torchscript(module: nn.Module, example: Tensor, check: Tensor, expected: Tensor,
                 out_dir: Path) -> tuple[str, float]:
    path = out_dir / "model.torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, example, check_trace=False), str(path))
        output = torch.jit.load(str(path))(check)
    if output.shape != expected.shape:
        raise PipelineError(f"the traced TorchScript model keeps the example's size (it returned {tuple(output.shape)} "
                            f"for {tuple(check.shape)}); export --format onnx, or use the checkpoint with upscale")
    return str(path), float((output - expected).abs().max())

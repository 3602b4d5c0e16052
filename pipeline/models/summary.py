"""Size and cost of every registered network: parameters, feature channels, multiply-adds.

Cost convention: ``macs`` counts the multiply-accumulates of convolutions, transposed
convolutions and matrix products in one forward pass, as reported by
``torch.utils.flop_counter.FlopCounterMode``; ``flops = 2 * macs``. Biases, activations,
pixel shuffle and interpolation are not counted. The objective's head is excluded (an
RGB head adds ``27 * feature_channels + 3`` parameters). Networks are built on the ``meta``
device, so a summary allocates no memory and runs no arithmetic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.errors import ConfigError
from pipeline.models.registry import MODELS, build_model

SMALL_CONFIGS: dict[str, dict[str, Any]] = {
    "srcnn": {"f2": 1},
    "vdsr": {"depth": 8, "n_feats": 32},
    "espcn": {"n1": 32, "n2": 16},
    "fsrcnn": {"d": 32, "s": 5, "m": 1},
    "edsr": {"n_blocks": 4, "n_feats": 32},
    "lapsrn": {"n_feats": 32, "depth": 3},
    "dbpn": {"stages": 3, "n_feats": 32, "n_init": 64},
    "rcan": {"n_groups": 2, "n_blocks": 4, "n_feats": 32, "reduction": 4},
    "swinir": {"depths": [2, 2], "embed_dim": 48, "num_heads": [3, 3], "out_feats": 32},
    "swinir_light": {"depths": [2, 2], "embed_dim": 48, "num_heads": [3, 3]},
}
"""Recommended CPU configurations (paper variants where one exists: SRCNN 9-1-5, FSRCNN-s)."""


def summarize(name: str, scale: int, args: dict[str, Any], lr_size: tuple[int, int] = (64, 64)) -> dict[str, Any]:
    """``{name, scale, args, params, feature_channels, macs, flops}`` of one forward pass on a 3 x ``lr_size`` image."""
    with torch.device("meta"):
        net = build_model(name, scale, args)
        lr = torch.empty(1, 3, *lr_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(lr)
    flops = counter.get_total_flops()
    return {
        "name": name,
        "scale": scale,
        "args": dict(args),
        "params": sum(p.numel() for p in net.parameters()),
        "feature_channels": net.feature_channels,
        "macs": flops // 2,
        "flops": flops,
    }


def summary_table(scale: int, lr_size: tuple[int, int] = (64, 64)) -> str:
    """Markdown table of every registered network at ``scale``: the paper default and the recommended CPU config."""
    h, w = lr_size
    lines = [
        f"| model | config | args | params | feature channels | GMACs ({h}x{w} LR, x{scale}) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for name in sorted(MODELS):
        configs = [("default", {}), ("small (CPU)", SMALL_CONFIGS.get(name))]
        for label, args in configs:
            if args is None:
                continue
            shown = ", ".join(f"{k}={v}" for k, v in args.items()) or "paper"
            try:
                row = summarize(name, scale, args, lr_size)
            except ConfigError as error:
                reason = str(error).split("; ")[-1]
                lines.append(f"| {name} | {label} | {shown} | unsupported at x{scale}: {reason} | | |")
                continue
            cells = [name, label, shown, f"{row['params']:,}", str(row["feature_channels"]), f"{row['macs'] / 1e9:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

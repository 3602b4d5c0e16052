"""The leaderboard's statement of what its numbers mean and do not mean.

Everything in it is read from the models' own training params and the evaluation settings, so a
small CPU study cannot be mistaken for the papers' full-scale results.
"""

from __future__ import annotations

import json
from collections import defaultdict

from pipeline.config import Params
from pipeline.report.sweep_outputs import TrainedObjective


def training_budget(objective: TrainedObjective) -> str:
    """Network, scale and training budget of one objective's models, in words."""
    train = objective.trained_with["train"]
    model = objective.trained_with["model"]
    args = json.dumps(model["args"], sort_keys=True)
    return (f"network `{model['name']}` {args} ({objective.network_parameters:,} parameters) at x{train['scale']}, "
            f"{train['iterations']} iterations of {train['batch_size']} HR patches of "
            f"{train['patch_size']}x{train['patch_size']} pixels, lr {train['lr']}")


def study_statement(trained: list[TrainedObjective], params: Params, benchmark_images: dict[str, int],
                    train_images: int | None, device: str) -> str:
    """Markdown paragraphs: what was measured and how, the training budget, and the limits."""
    crop = "the scale" if params.metrics.crop_border is None else f"{params.metrics.crop_border}"
    channel = "the Y channel (ITU-R BT.601)" if params.metrics.y_channel else "RGB"
    sets = ", ".join(f"{name} ({count} image{'s' if count > 1 else ''})" for name, count in benchmark_images.items())
    budgets: dict[str, list[str]] = defaultdict(list)
    for objective in trained:
        budgets[training_budget(objective)].append(objective.name)
    if len(budgets) == 1:
        budget_text = next(iter(budgets)) + " for every objective"
    else:
        budget_text = "; ".join(f"{', '.join(names)}: {budget}" for budget, names in budgets.items())
    data_text = f"{train_images} training images" if train_images is not None else "the training images"
    return "\n\n".join([
        f"**What the numbers are.** Each objective's model(s) from the sweep, scored on {sets}. PSNR and SSIM "
        f"on {channel} of the 8-bit outputs, with as many pixels as {crop} cropped from every side and the HR "
        f"images modcropped to the scale; LR images from the `{params.train.degradation}` degradation preset; "
        "LPIPS on the same crop. Each value is a mean over the benchmark's images, then a mean ± sample "
        "standard deviation over the objective's models (the *models* column: one per seed of the best "
        "configuration). SR time is the wall time of super-resolving the benchmark's images as `upscale` does "
        f"(tiles of {params.evaluate.tile} LR pixels overlapping by {params.evaluate.tile_overlap}: network, head, "
        f"decode and the 8-bit result; reading files left out), in milliseconds per megapixel of output on {device}.",
        f"**Training budget.** {budget_text}; trained on {data_text}.",
        "**What they are not.** This is a small study under the budget above: networks far from convergence, "
        "small training data and few iterations. The numbers rank the objectives under this budget only and "
        "are not comparable to the papers' DIV2K-trained results (800 2K images, 10^5 to 10^6 iterations, "
        "full-size networks). A difference smaller than the spread over seeds, or measured on one seed, is "
        "not evidence; SR times depend on the device and the machine's load.",
    ])

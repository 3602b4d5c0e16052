"""When a paired difference counts as evidence, on the scores of one benchmark and scale.

A verdict (``pipeline.report.verdicts``) needs at least ``MIN_SEEDS`` training seeds, and no verdict is
drawn for a model that does not beat the bicubic baseline it was trained to improve on: such a model
has not learnt the task at this budget, so its differences to another objective say nothing about the
loss. ``versus`` applies both rules.
"""

from __future__ import annotations

from pipeline.report.metrics_file import BASELINE
from pipeline.report.per_image import PerImageScores
from pipeline.report.verdicts import PairedDelta, paired_delta

RANKED_BY = "psnr"
BELOW_BICUBIC = "below bicubic"


def below_bicubic(scores: PerImageScores, benchmark: str, scale: int, method: str) -> bool:
    """Whether ``method``'s mean PSNR over the images and seeds is not above bicubic's."""
    if method == BASELINE or not (scores.has(benchmark, scale, method, RANKED_BY)
                                  and scores.has(benchmark, scale, BASELINE, RANKED_BY)):
        return False
    mine = scores.matrix(benchmark, scale, method, RANKED_BY).mean()
    return bool(mine <= scores.matrix(benchmark, scale, BASELINE, RANKED_BY).mean())


def versus(scores: PerImageScores, benchmark: str, scale: int, method: str, baseline: str,
           metric: str = RANKED_BY, higher_is_better: bool = True) -> PairedDelta | None:
    """The paired difference ``method - baseline`` on ``metric`` (None when they cannot be paired), its
    verdict withheld when either of two trained models is below bicubic."""
    if method == baseline or not (scores.has(benchmark, scale, method, metric)
                                  and scores.has(benchmark, scale, baseline, metric)):
        return None
    pair = scores.paired(benchmark, scale, method, baseline, metric)
    if pair is None:
        return None
    delta = paired_delta(*pair, higher_is_better=higher_is_better)
    if baseline == BASELINE:
        return delta
    weak = [name for name in (method, baseline) if below_bicubic(scores, benchmark, scale, name)]
    return delta.withheld(f"{' and '.join(weak)} {BELOW_BICUBIC}") if weak else delta

"""``results/claims.md``: each seed paper's claim, the evidence this study measured, and a verdict.

Every comparison is paired by image and seed (``pipeline.report.verdicts``) against the claim's
baseline, on every benchmark and scale evaluated. A claim that needs a metric or an objective the
study does not have is reported as *not testable here*, with the reason, never guessed.

The claims (objective names are the default study's, ``params.yaml`` ``sweep.objectives``):

1. Trainable loss weights beat unweighted L1 in PSNR and LPIPS (``tlw`` vs ``l1``).
2. The second-order gradient loss improves LPIPS / FID (``grad2`` vs ``l1``).
3. The fine-grained dynamic loss improves PSNR, especially on texture (``fine_grained`` vs ``l1``;
   "especially": the PSNR gain on textured pixels minus that on flat pixels, paired, above 0;
   regions as in ``pipeline.metrics.regions``).
4. CS / FCS give about 1.7x better LPIPS at slightly lower PSNR (``cs``, ``fcs`` vs ``l1``).
5. FCS has fewer black artefacts than CS (``fcs`` vs ``cs``, dark pixels per megapixel, lower is better).

Beside every LPIPS comparison stand the weight-free perceptual metrics (HaarPSI, MDSI, MS-GMSD,
``pipeline.metrics.perceptual``), each labelled *weight-free perceptual evidence, not LPIPS*: context
that needs no download, never counted as the LPIPS part of a claim. The CS/FCS and fine-grained
claims also show the high-frequency energy ratio SR/HR (``pipeline.metrics.spectrum``) with the paired
difference of its distance from HR's spectrum, ``|log2 hf_ratio|`` (lower: closer to HR).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from pipeline.metrics.perceptual import WEIGHT_FREE
from pipeline.report.per_image import PerImageScores
from pipeline.report.verdicts import BETTER, UNSETTLED, WORSE, PairedDelta, paired_delta

DIGITS = {"psnr": 2, "psnr_texture": 2, "psnr_flat": 2, "lpips": 4, "fid": 2, "dark_per_mp": 1,
          "haarpsi": 4, "mdsi": 4, "ms_gmsd": 4, "hf_ratio": 3}
LOWER_IS_BETTER = {"lpips", "fid", "dark_per_mp", "mdsi", "ms_gmsd"}
SET_METRICS = {"fid"}
TEXTURE_GAIN = "texture gain minus flat gain"
SPECTRUM = "hf_ratio"
LABELS = {**{metric: f"{metric} (weight-free perceptual evidence, not LPIPS)" for metric in WEIGHT_FREE},
          SPECTRUM: "high-frequency energy SR/HR; paired difference of |log2 ratio|, lower = closer to HR"}
SUPPORTED, CONTRADICTED, UNTESTED = "supported", "contradicted", "not testable here"
UNITS = {"psnr": "dB", "psnr_texture": "dB", "psnr_flat": "dB", "dark_per_mp": "per MP", TEXTURE_GAIN: "dB"}


@dataclass(frozen=True)
class Claim:
    """A seed paper's claim: ``candidate`` against ``baseline`` on ``metrics``; the claim holds where
    ``candidate`` is *better* on each of ``required`` (the others are context)."""

    title: str
    paper: str
    candidate: str
    baseline: str
    metrics: tuple[str, ...]
    required: tuple[str, ...]
    texture_gain: bool = False

    def evidence(self) -> tuple[str, ...]:
        """``metrics``, with the weight-free perceptual metrics after them when LPIPS is one."""
        return self.metrics + (WEIGHT_FREE if "lpips" in self.metrics else ())


CLAIMS = (
    Claim("Trainable loss weights beat unweighted L1 in PSNR and LPIPS",
          "Trainable Loss Weights in Super-Resolution", "tlw", "l1", ("psnr", "lpips"), ("psnr", "lpips")),
    Claim("The second-order gradient loss improves LPIPS and FID",
          "A pluggable single-image super-resolution algorithm based on second-order gradient loss",
          "grad2", "l1", ("lpips", "fid", "psnr"), ("lpips", "fid")),
    Claim("The fine-grained dynamic loss improves PSNR, especially on texture",
          "Fine-Grained Dynamic Loss for Accurate Single-Image Super-Resolution", "fine_grained", "l1",
          ("psnr", "psnr_texture", "psnr_flat", SPECTRUM), ("psnr", TEXTURE_GAIN), texture_gain=True),
    Claim("CS gives about 1.7x better LPIPS than L1 at slightly lower PSNR",
          "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies", "cs", "l1", ("lpips", "psnr", SPECTRUM), ("lpips",)),
    Claim("FCS gives about 1.7x better LPIPS than L1 at slightly lower PSNR",
          "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies", "fcs", "l1", ("lpips", "psnr", SPECTRUM), ("lpips",)),
    Claim("FCS has fewer black artefacts than CS",
          "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies", "fcs", "cs", ("dark_per_mp",), ("dark_per_mp",)),
)


def compare(scores: PerImageScores, benchmark: str, scale: int, candidate: str, baseline: str,
            metric: str) -> PairedDelta | str:
    """The paired difference on ``metric``, or why it cannot be measured.

    Images whose value is not finite for either method (e.g. a texture PSNR on an image without
    textured pixels) are left out of the pairing."""
    for method in (candidate, baseline):
        if method not in scores.methods(benchmark, scale):
            return f"the study evaluated no `{method}` at {benchmark} x{scale}"
    if not (scores.has(benchmark, scale, candidate, metric) and scores.has(benchmark, scale, baseline, metric)):
        return f"{metric} was not measured"
    pair = scores.paired(benchmark, scale, candidate, baseline, metric)
    if pair is None:
        return f"`{candidate}` and `{baseline}` share no training seed"
    mine, theirs = pair
    keep = np.isfinite(mine).all(axis=1) & np.isfinite(theirs).all(axis=1)
    if not keep.any():
        return f"no image has a finite {metric} for both"
    return paired_delta(mine[keep], theirs[keep], higher_is_better=metric not in LOWER_IS_BETTER)


def spectral_distance(scores: PerImageScores, benchmark: str, scale: int, candidate: str,
                      baseline: str) -> PairedDelta | str:
    """Paired ``|log2 hf_ratio|`` of ``candidate`` minus ``baseline``: < 0 means the candidate's
    high-frequency energy is closer to HR's (neither blurrier nor over-sharpened by as much)."""
    for method in (candidate, baseline):
        if method not in scores.methods(benchmark, scale):
            return f"the study evaluated no `{method}` at {benchmark} x{scale}"
    if not (scores.has(benchmark, scale, candidate, SPECTRUM) and scores.has(benchmark, scale, baseline, SPECTRUM)):
        return f"{SPECTRUM} was not measured"
    pair = scores.paired(benchmark, scale, candidate, baseline, SPECTRUM)
    if pair is None:
        return f"`{candidate}` and `{baseline}` share no training seed"
    mine, theirs = (np.abs(np.log2(ratios)) for ratios in pair)
    keep = np.isfinite(mine).all(axis=1) & np.isfinite(theirs).all(axis=1)
    if not keep.any():
        return f"no image has a finite, non-zero {SPECTRUM} for both"
    return paired_delta(mine[keep], theirs[keep], higher_is_better=False)


def texture_gain(scores: PerImageScores, benchmark: str, scale: int, candidate: str,
                 baseline: str) -> PairedDelta | str:
    """Paired (texture PSNR gain) - (flat PSNR gain) of ``candidate`` over ``baseline``; > 0 means
    the gain is larger on texture."""
    texture = scores.paired(benchmark, scale, candidate, baseline, "psnr_texture")
    flat = scores.paired(benchmark, scale, candidate, baseline, "psnr_flat")
    if texture is None or flat is None:
        return f"`{candidate}` and `{baseline}` share no training seed"
    gains_texture = texture[0] - texture[1]
    gains_flat = flat[0] - flat[1]
    keep = np.isfinite(gains_texture).all(axis=1) & np.isfinite(gains_flat).all(axis=1)
    if not keep.any():
        return "no image has both textured and flat pixels"
    return paired_delta(gains_texture[keep], gains_flat[keep])


def render_claims(scores: PerImageScores, set_scores: PerImageScores, benchmarks: list[tuple[str, int]],
                  unavailable: dict[str, str], provenance: str) -> str:
    """Markdown: a summary table (one status per claim), then per claim one evidence line per
    benchmark/scale and metric, with the verdict. ``set_scores`` holds the scores of whole
    benchmarks (FID), paired by seed alone."""
    sections, summary = [], ["| # | claim | status | required to hold |", "|---:|---|---|---|"]
    for number, claim in enumerate(CLAIMS, start=1):
        results: dict[tuple[str, int, str], PairedDelta | str] = {}
        for benchmark, scale in benchmarks:
            for metric in claim.evidence():
                source = set_scores if metric in SET_METRICS else scores
                measure = spectral_distance if metric == SPECTRUM else partial(compare, metric=metric)
                results[benchmark, scale, metric] = (f"{metric.upper()} unavailable (reason above)"
                                                     if metric in unavailable
                                                     else measure(source, benchmark, scale, claim.candidate,
                                                                  claim.baseline))
            if claim.texture_gain:
                results[benchmark, scale, TEXTURE_GAIN] = texture_gain(scores, benchmark, scale, claim.candidate,
                                                                       claim.baseline)
        summary.append(f"| {number} | {claim.title} | {claim_status(claim, results)} | "
                       f"`{claim.candidate}` better than `{claim.baseline}` on {', '.join(claim.required)} |")
        sections += [f"## {number}. {claim.title}", "",
                     f"*{claim.paper}*: `{claim.candidate}` vs `{claim.baseline}`.", ""]
        for (benchmark, scale, metric), result in results.items():
            sections.append(f"- {benchmark} x{scale}, {LABELS.get(metric, metric)}: "
                            + _evidence(result, scores, benchmark, scale, claim, metric))
        sections.append("")
    return "\n".join(["# The seed papers' claims, tested", "", provenance, "",
                      "Each line is a paired difference (candidate - baseline) over the same images and training "
                      "seeds, with its 95% bootstrap interval and the verdict: *better* / *worse* when the interval "
                      f"excludes 0, *{UNSETTLED}* otherwise (for LPIPS, FID and dark pixels lower is better). A claim "
                      f"is *{SUPPORTED}* when its required parts are *better* on every benchmark, *{CONTRADICTED}* "
                      f"when one of them is *worse* somewhere. HaarPSI, MDSI and MS-GMSD need no pretrained weights and "
                      "rank images closer to human scores than LPIPS on standard sets (docs/metrics.md); they are shown "
                      "beside LPIPS as weight-free perceptual evidence, never counted as LPIPS. The networks are small and briefly trained, so a "
                      "status here holds for this budget, not for the papers' full-scale setting.", "",
                      *[f"- {metric.upper()} is unavailable: {reason.removeprefix(f'{metric.upper()} unavailable: ')}"
                        for metric, reason in unavailable.items()], *([""] if unavailable else []),
                      *summary, "", *sections])


def claim_status(claim: Claim, results: dict[tuple[str, int, str], PairedDelta | str]) -> str:
    """*supported*, *contradicted*, *not established* or *not testable here* from the required parts."""
    required = [result for (_, _, metric), result in results.items() if metric in claim.required]
    measured = [result for result in required if isinstance(result, PairedDelta)]
    if any(result.verdict == WORSE for result in measured):
        return CONTRADICTED
    if not measured:
        return UNTESTED
    untested = sorted({metric for (_, _, metric), result in results.items()
                       if metric in claim.required and not isinstance(result, PairedDelta)})
    status = SUPPORTED if all(result.verdict == BETTER for result in measured) else UNSETTLED
    return f"{status} where testable ({', '.join(untested)} not testable here)" if untested else status


def _evidence(result: PairedDelta | str, scores: PerImageScores, benchmark: str, scale: int, claim: Claim,
              metric: str) -> str:
    unit = f" {UNITS[metric]}" if metric in UNITS else ""
    text = _delta_text(result, DIGITS.get(metric, 2), unit)
    if isinstance(result, PairedDelta) and metric == SPECTRUM:
        means = {method: scores.matrix(benchmark, scale, method, metric).mean()
                 for method in (claim.candidate, claim.baseline)}
        text += "; mean ratio " + ", ".join(f"{method} {mean:.3f}" for method, mean in means.items())
    elif isinstance(result, PairedDelta) and metric in {"lpips", "dark_per_mp"}:
        base = scores.matrix(benchmark, scale, claim.baseline, metric).mean()
        mine = scores.matrix(benchmark, scale, claim.candidate, metric).mean()
        if mine > 0:
            text += f"; ratio {claim.baseline}/{claim.candidate} = {base / mine:.2f}x"
    return text


def _delta_text(result: PairedDelta | str, digits: int, unit: str = "") -> str:
    if isinstance(result, str):
        return f"not testable here: {result}"
    return (f"{result.text(digits)}{unit} → **{result.verdict}** "
            f"({_count(result.images, 'image')} x {_count(result.seeds, 'seed')})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"

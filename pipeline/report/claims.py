"""``results/claims.md``: each seed paper's claim, the evidence this study measured, and a verdict.

Every comparison is paired by image and seed (``pipeline.report.verdicts``) against the claim's
baseline, on every benchmark and scale evaluated; its verdict is withheld on fewer than two seeds or
for a model below bicubic (``pipeline.report.evidence``). A claim that needs a metric or an objective
the study does not have is reported as *not testable here*, with the reason, never guessed. Each
status names the benchmarks it rests on (an offline run has only Builtin), every measured part of a
claim is summarized beside it, and a side condition (CS's "at slightly lower PSNR") is checked too.

Beside every LPIPS comparison stand the weight-free perceptual metrics (HaarPSI, MDSI, MS-GMSD,
``pipeline.metrics.perceptual``), each labelled *weight-free perceptual evidence, not LPIPS*: context
that needs no download, never counted as the LPIPS part of a claim. The CS/FCS and fine-grained
claims also show the high-frequency energy ratio SR/HR (``pipeline.metrics.spectrum``) with the paired
difference of its distance from HR's spectrum, ``|log2 hf_ratio|`` (lower: closer to HR).

The claims (objective names are the default study's, ``params.yaml`` ``sweep.objectives``):

1. Trainable loss weights beat unweighted L1 in PSNR and LPIPS (``tlw`` vs ``l1``).
2. The second-order gradient loss improves LPIPS / FID (``grad2`` vs ``l1``).
3. The fine-grained dynamic loss improves PSNR, especially on texture (``fine_grained`` vs ``l1``;
   "especially": the PSNR gain on textured pixels minus that on flat pixels, paired, above 0;
   regions as in ``pipeline.metrics.regions``).
4. CS / FCS give about 1.7x better LPIPS at slightly lower PSNR (``cs``, ``fcs`` vs ``l1``).
5. FCS has fewer black artefacts than CS (``fcs`` vs ``cs``, dark pixels per megapixel, lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass

from functools import partial

import numpy as np

from pipeline.metrics.perceptual import WEIGHT_FREE
from pipeline.report.convergence import Convergence
from pipeline.report.evidence import BELOW_BICUBIC, below_bicubic
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
NO_VERDICT = "no verdict"
HOLDS = "holds"
UNITS = {"psnr": "dB", "psnr_texture": "dB", "psnr_flat": "dB", "dark_per_mp": "per MP", TEXTURE_GAIN: "dB"}


@dataclass(frozen=True)
class Claim:
    """A seed paper's claim: ``candidate`` against ``baseline`` on ``metrics``; the claim holds where
    ``candidate`` is *better* on each of ``required`` (the others are context). ``side`` is a side
    condition: a metric on which the claim expects ``candidate`` *worse* than ``baseline``, in words."""

    title: str
    paper: str
    candidate: str
    baseline: str
    metrics: tuple[str, ...]
    required: tuple[str, ...]
    texture_gain: bool = False
    side: tuple[str, str] | None = None

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
          "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies", "cs", "l1", ("lpips", "psnr", SPECTRUM), ("lpips",),
          side=("psnr", "at slightly lower PSNR")),
    Claim("FCS gives about 1.7x better LPIPS than L1 at slightly lower PSNR",
          "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies", "fcs", "l1", ("lpips", "psnr", SPECTRUM), ("lpips",),
          side=("psnr", "at slightly lower PSNR")),
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
    return _gated(paired_delta(mine[keep], theirs[keep], higher_is_better=metric not in LOWER_IS_BETTER),
                  scores, benchmark, scale, candidate, baseline)


def _gated(delta: PairedDelta, scores: PerImageScores, benchmark: str, scale: int, candidate: str,
           baseline: str) -> PairedDelta:
    """``delta`` with its verdict withheld when a trained model is below bicubic on this benchmark."""
    weak = [name for name in (candidate, baseline) if below_bicubic(scores, benchmark, scale, name)]
    return delta.withheld(f"{' and '.join(weak)} {BELOW_BICUBIC}") if weak else delta


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
    return _gated(paired_delta(mine[keep], theirs[keep], higher_is_better=False), scores, benchmark, scale,
                  candidate, baseline)


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
    return _gated(paired_delta(gains_texture[keep], gains_flat[keep]), scores, benchmark, scale, candidate, baseline)


Results = dict[tuple[str, int, str], "PairedDelta | str"]


def claim_results(claim: Claim, scores: PerImageScores, set_scores: PerImageScores,
                  benchmarks: list[tuple[str, int]], unavailable: dict[str, str]) -> Results:
    """``(benchmark, scale, metric)`` -> the paired difference, or why it cannot be measured."""
    results: Results = {}
    for benchmark, scale in benchmarks:
        for metric in claim.evidence():
            source = set_scores if metric in SET_METRICS else scores
            measure = spectral_distance if metric == SPECTRUM else partial(compare, metric=metric)
            results[benchmark, scale, metric] = (f"{metric.upper()} unavailable (reason above)" if metric in unavailable
                                                 else measure(source, benchmark, scale, claim.candidate,
                                                              claim.baseline))
        if claim.texture_gain:
            results[benchmark, scale, TEXTURE_GAIN] = texture_gain(scores, benchmark, scale, claim.candidate,
                                                                   claim.baseline)
    return results


def render_claims(scores: PerImageScores, set_scores: PerImageScores, benchmarks: list[tuple[str, int]],
                  unavailable: dict[str, str], provenance: str, converged: dict[str, Convergence] | None = None,
                  budget: str | None = None) -> str:
    """Markdown: the protocol that produced it (``budget``, ``pipeline.report.training_cost.budget_line``),
    a summary table (one status per claim with the benchmarks it rests on, every measured part, the side
    condition), then per claim one evidence line per benchmark/scale and metric, and how far from
    converged its two objectives were (``converged``). ``set_scores`` holds the scores of whole
    benchmarks (FID), paired by seed alone."""
    converged = converged or {}
    sections, summary = [], ["| # | claim | status | required to hold | measured | side condition |",
                             "|---:|---|---|---|---|---|"]
    for number, claim in enumerate(CLAIMS, start=1):
        results = claim_results(claim, scores, set_scores, benchmarks, unavailable)
        summary.append(f"| {number} | {claim.title} | {claim_status(claim, results)} {_resting_on(benchmarks)} | "
                       f"`{claim.candidate}` better than `{claim.baseline}` on {', '.join(claim.required)} | "
                       f"{measured_parts(results)} | {side_condition(claim, results)} |")
        sections += [f"## {number}. {claim.title}", "",
                     f"*{claim.paper}*: `{claim.candidate}` vs `{claim.baseline}`.", ""]
        for (benchmark, scale, metric), result in results.items():
            sections.append(f"- {benchmark} x{scale}, {LABELS.get(metric, metric)}: "
                            + _evidence(result, scores, benchmark, scale, claim, metric))
        trained = [name for name in (claim.candidate, claim.baseline) if name in converged]
        if trained:
            sections.append("- validation PSNR over the last quarter of training: "
                            + "; ".join(f"`{name}` {converged[name].text()}" for name in trained))
        sections.append("")
    return "\n".join(["# The seed papers' claims, tested", "", provenance, "", *([budget, ""] if budget else []),
                      "Each line is a paired difference (candidate - baseline) over the same images and training "
                      "seeds, with its 95% bootstrap interval and the verdict: *better* / *worse* when the interval "
                      f"excludes 0, *{UNSETTLED}* otherwise (for LPIPS, FID and dark pixels lower is better); *not "
                      "evidence* with fewer than 2 seeds or for a model below bicubic. A claim is "
                      f"*{SUPPORTED}* when its required parts are *better* on every benchmark, *{CONTRADICTED}* "
                      f"when one of them is *worse* somewhere, *{NO_VERDICT}* when none of them is evidence; the "
                      "status names the benchmarks it rests on. HaarPSI, MDSI and MS-GMSD need no pretrained weights and "
                      "rank images closer to human scores than LPIPS on standard sets (docs/metrics.md); they are "
                      "shown beside LPIPS as weight-free perceptual evidence, never counted as LPIPS. The networks are small and briefly trained, so a "
                      "status here holds for this budget, not for the papers' full-scale setting.", "",
                      *[f"- {metric.upper()} is unavailable: {reason.removeprefix(f'{metric.upper()} unavailable: ')}"
                        for metric, reason in unavailable.items()], *([""] if unavailable else []),
                      *summary, "", *sections])


def _resting_on(benchmarks: list[tuple[str, int]]) -> str:
    return "(on " + ", ".join(f"{benchmark} x{scale}" for benchmark, scale in benchmarks) + ")"


def claim_status(claim: Claim, results: Results) -> str:
    """*supported*, *contradicted*, *not established*, *no verdict* (nothing measured is evidence) or
    *not testable here*, from the required parts."""
    required = [result for (_, _, metric), result in results.items() if metric in claim.required]
    measured = [result for result in required if isinstance(result, PairedDelta)]
    evidence = [result for result in measured if result.is_evidence]
    if any(result.verdict == WORSE for result in evidence):
        return CONTRADICTED
    if not measured:
        return UNTESTED
    if not evidence:
        return f"{NO_VERDICT}: {sorted({result.verdict for result in measured})[0]}"
    untested = sorted({metric for (_, _, metric), result in results.items()
                       if metric in claim.required and not (isinstance(result, PairedDelta) and result.is_evidence)})
    status = SUPPORTED if all(result.verdict == BETTER for result in evidence) else UNSETTLED
    return f"{status} where testable ({', '.join(untested)} not testable here)" if untested else status


def measured_parts(results: Results) -> str:
    """Every measured metric with its verdicts, grouped: ``psnr: better on Set5 x2; not established on
    Builtin x2``; ``–`` when nothing was measured."""
    by_metric: dict[str, dict[str, list[str]]] = {}
    for (benchmark, scale, metric), result in results.items():
        if isinstance(result, PairedDelta):
            by_metric.setdefault(metric, {}).setdefault(result.verdict, []).append(f"{benchmark} x{scale}")
    return "<br>".join(f"{metric}: " + "; ".join(f"{verdict} on {', '.join(where)}"
                                                 for verdict, where in verdicts.items())
                       for metric, verdicts in by_metric.items()) or "–"


def side_condition(claim: Claim, results: Results) -> str:
    """The side condition checked: *holds* where the candidate is *worse* on its metric, *contradicted*
    where it is *better*, else the verdict; ``–`` for a claim without one."""
    if claim.side is None:
        return "–"
    metric, words = claim.side
    found: dict[str, list[str]] = {}
    for (benchmark, scale, name), result in results.items():
        if name == metric and isinstance(result, PairedDelta):
            outcome = {WORSE: HOLDS, BETTER: CONTRADICTED}.get(result.verdict, result.verdict)
            found.setdefault(outcome, []).append(f"{benchmark} x{scale} ({result.text(DIGITS[metric])})")
    if not found:
        return f"{words}: {metric} not measured"
    return f"{words}: " + "; ".join(f"{_bold(outcome)} on {', '.join(where)}" for outcome, where in found.items())


def _bold(outcome: str) -> str:
    return f"**{outcome}**" if outcome in (HOLDS, CONTRADICTED) else outcome


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

"""The answer across benchmarks: pooled paired differences equal a direct computation, the objectives
better on every benchmark are named, and one seed or a model below bicubic yields no verdict."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report.claims import CLAIMS, CONTRADICTED, SUPPORTED, claim_results, claim_status, side_condition
from pipeline.report.convergence import STILL_RISING_DB, convergence
from pipeline.report.curves import CurvePoint
from pipeline.report.leaderboard import render_leaderboard
from pipeline.report.metrics_file import ScoreTable
from pipeline.report.per_image import PerImageScores
from pipeline.report.summary import pooled_delta, render_summary, summarize
from pipeline.report.variants import label, paper_switches

BENCHMARKS = {"Builtin": 7, "Set14": 14, "Set5": 5}


def study(gains: dict[str, dict[str, float]], seeds: int = 2, noise: float = 0.01,
          bicubic_offset: float = -1.0) -> tuple[dict, PerImageScores]:
    """Per benchmark, l1 at 30 dB + image index; every other objective at l1 + its gain on that benchmark
    (+ per-image, per-seed noise); bicubic ``bicubic_offset`` from l1."""
    rng = np.random.default_rng(0)
    table, scores = ScoreTable(), PerImageScores()
    for benchmark, count in BENCHMARKS.items():
        base = {f"img{i}": 30.0 + i for i in range(count)}
        for image, value in base.items():
            scores.add(benchmark, 2, "bicubic", None, image, {"psnr": value + bicubic_offset, "ssim": 0.8})
        table.add(benchmark, 2, "bicubic", {"psnr": np.mean(list(base.values())) + bicubic_offset, "ssim": 0.8})
        for name, by_benchmark in {"l1": {}, **gains}.items():
            for seed in range(seeds):
                values = {image: value + by_benchmark.get(benchmark, 0.0) + noise * rng.standard_normal()
                          for image, value in base.items()}
                for image, value in values.items():
                    scores.add(benchmark, 2, name, seed, image, {"psnr": value, "ssim": 0.9 + value / 1000})
                table.add(benchmark, 2, name, {"psnr": np.mean(list(values.values())), "ssim": 0.9})
    return table.to_tree({}), scores


EVERYWHERE = {"grad2": {"Builtin": 0.05, "Set14": 0.06, "Set5": 0.10},  # better on all three
              "cs": {"Builtin": -0.3, "Set14": 0.4, "Set5": 0.3},  # larger pooled gain, worse on one
              "tlw": {"Builtin": 0.08, "Set14": 0.0, "Set5": 0.0}}


def test_the_pooled_difference_stacks_every_benchmark_image_and_seed():
    _, scores = study(EVERYWHERE)
    delta = pooled_delta(scores, list(BENCHMARKS), 2, "cs", "l1", "psnr")
    direct = np.concatenate([(scores.matrix(b, 2, "cs", "psnr") - scores.matrix(b, 2, "l1", "psnr")).ravel()
                             for b in BENCHMARKS])
    assert delta.mean == pytest.approx(direct.mean(), abs=1e-12)
    assert (delta.images, delta.seeds) == (sum(BENCHMARKS.values()), 2)


def test_the_summary_names_the_objectives_better_on_every_benchmark():
    _, scores = study(EVERYWHERE)
    reference, rows = summarize(scores, list(BENCHMARKS), 2)
    assert reference == "l1" and [row.method for row in rows] == ["cs", "grad2", "tlw"]  # ranked by pooled ΔPSNR
    by_name = {row.method: row for row in rows}
    assert by_name["grad2"].better_on == list(BENCHMARKS) and by_name["cs"].better_on == ["Set14", "Set5"]
    assert by_name["cs"].deltas["psnr"].verdict == "better" and by_name["tlw"].better_on == ["Builtin"]
    text = "\n".join(render_summary(scores, list(BENCHMARKS), 2, {"cs": "cs (ordered head)"}, {}))
    assert "**Better than `l1` in PSNR on every benchmark (Builtin, Set14, Set5):** `grad2`." in text
    assert "| cs (ordered head) | +0.1" in text and "| 3 of 3: Builtin, Set14, Set5 |" in text
    assert "paired over the same 26 images of Builtin, Set14, Set5 and the same training seeds (2 seeds)" in text


def test_one_seed_names_no_winner_anywhere():
    tree, scores = study({"grad2": {b: 0.5 for b in BENCHMARKS}}, seeds=1)
    summary = render_summary(scores, list(BENCHMARKS), 2, {}, {})
    text = render_leaderboard(tree, scores, summary, "statement", {}, [], {"grad2": 2, "l1": 2})
    assert "(winner)" not in text and "**better**" not in text and " better |" not in text
    assert "none can be, with 1 seed per objective" in text
    assert text.count("No winner: grad2 ranks first, but its PSNR over bicubic is not evidence (1 seed).") == 3
    results = claim_results(CLAIMS[1], scores, PerImageScores(), [(b, 2) for b in BENCHMARKS], {})
    assert claim_status(CLAIMS[1], results) == "not testable here"  # LPIPS and FID were not measured
    assert all(r.verdict == "not evidence (1 seed)" for (_, _, m), r in results.items() if m == "psnr")


def test_a_model_below_bicubic_gives_no_verdict_and_no_winner():
    tree, scores = study({"grad2": {b: 0.5 for b in BENCHMARKS}}, bicubic_offset=+3.0)
    _, rows = summarize(scores, list(BENCHMARKS), 2)
    assert rows[0].deltas["psnr"].verdict == "not evidence (grad2 and l1 below bicubic)"
    text = render_leaderboard(tree, scores, [], "statement", {}, [], {"grad2": 2, "l1": 2})
    assert "(winner)" not in text and "its PSNR over bicubic is worse" in text
    summary = "\n".join(render_summary(scores, list(BENCHMARKS), 2, {}, {}))
    assert "**Below bicubic** (pooled PSNR): `l1`, `grad2`; such a model has not learnt the task" in summary


def test_claims_say_what_was_measured_and_check_the_side_condition():
    _, scores = study({"cs": {b: 0.25 for b in BENCHMARKS}, "fcs": {b: -0.2 for b in BENCHMARKS}})
    where = [(b, 2) for b in BENCHMARKS]
    cs_claim, fcs_claim = CLAIMS[3], CLAIMS[4]
    unavailable = {"lpips": "no weights"}
    cs = claim_results(cs_claim, scores, PerImageScores(), where, unavailable)
    assert claim_status(cs_claim, cs) not in (SUPPORTED, CONTRADICTED)
    assert side_condition(cs_claim, cs).startswith("at slightly lower PSNR: **contradicted** on Builtin x2 (+0.25")
    fcs = claim_results(fcs_claim, scores, PerImageScores(), where, unavailable)
    assert side_condition(fcs_claim, fcs).startswith("at slightly lower PSNR: **holds** on Builtin x2 (-0.20")
    from pipeline.report.claims import render_claims
    from pipeline.report.convergence import Convergence

    text = render_claims(scores, PerImageScores(), where, unavailable, "provenance",
                         {"cs": Convergence(0.3, 450, 600, 2), "l1": Convergence(0.01, 450, 600, 2)})
    row = next(line for line in text.splitlines() if line.startswith("| 4 |"))
    assert "(on Builtin x2, Set14 x2, Set5 x2)" in row and "psnr: better on Builtin x2, Set14 x2, Set5 x2" in row
    assert ("- validation PSNR over the last quarter of training: `cs` +0.30 dB (450→600), still rising; "
            "`l1` +0.01 dB (450→600)") in text


def test_convergence_is_the_gain_over_the_last_quarter_averaged_over_seeds():
    points = [CurvePoint("cs", seed, step, "val/psnr", value) for seed, rise in ((0, 0.3), (1, 0.1))
              for step, value in ((150, 30.0), (300, 31.0), (450, 31.5), (600, 31.5 + rise))]
    points += [CurvePoint("l1", 0, step, "val/psnr", 30.0) for step in (300, 600)]
    found = convergence(points)
    assert found["cs"].gain == pytest.approx(0.2) and (found["cs"].start, found["cs"].end) == (450, 600)
    assert found["cs"].rising and found["cs"].text() == "+0.20 dB (450→600), still rising"
    assert found["l1"].gain == 0.0 and not found["l1"].rising and STILL_RISING_DB > 0


def test_rows_are_named_by_their_departures_from_the_paper_with_the_switch_back():
    assert label("cs", {"objective": "cs", "args": {"decode": "expectation"}}) == "cs (ordered head)"
    assert label("cs", {"objective": "cs", "args": {"init": "plain"}}) == "cs"
    fine = {"objective": "fine_grained", "args": {"bins": 32}}
    assert label("fine_grained", fine) == "fine_grained (ordered head, expectation decode)"
    assert label("fine_grained@anchor", fine) == "fine_grained@anchor (ordered head)"
    assert paper_switches("fine_grained", fine) == ["-S 'sweep.objectives.fine_grained.loss.args.init=plain'",
                                                    "-S 'sweep.objectives.fine_grained.loss.args.decode=anchor'"]
    assert label("l1", {"objective": "regression", "terms": {"l1": 1.0}}) == "l1"

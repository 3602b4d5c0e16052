"""Result plots: gains over a reference, the perception-distortion plane only with LPIPS, and
diagnostics kept off the loss axis."""

from __future__ import annotations

import pytest
from PIL import Image

from pipeline.report.curves import CurvePoint, is_diagnostic, plot_training_curves, plot_validation_curves
from pipeline.report.plots import has_perceptual_metric, perception_distortion_plot, psnr_gain_bars, psnr_gains


def entry(psnr: float, std: float | None = None, lpips: float | None = None) -> dict:
    scores = {"psnr": {"mean": psnr, "std": std, "n": 2 if std is not None else 1}}
    scores["lpips"] = {"mean": lpips, "std": None, "n": 1} if lpips is not None else {"unavailable": "no weights"}
    return scores


BENCHMARKS = {"Set5": {"bicubic": entry(33.68), "l1": entry(34.50, 0.02), "grad2": entry(34.61, 0.03)},
              "Set14": {"bicubic": entry(30.33), "l1": entry(30.90, 0.01)}}


def test_gains_are_differences_of_means_to_the_reference():
    gains = psnr_gains(BENCHMARKS, "l1")
    assert gains == {("Set5", "bicubic"): pytest.approx(-0.82), ("Set5", "grad2"): pytest.approx(0.11),
                     ("Set14", "bicubic"): pytest.approx(-0.57)}
    assert psnr_gains(BENCHMARKS, "bicubic")[("Set5", "grad2")] == pytest.approx(0.93)


@pytest.mark.parametrize("errors", [None, {("Set5", "grad2"): (0.05, 0.2)}])
def test_gain_bars_are_drawn_with_default_or_given_error_bars(tmp_path, errors):
    path = psnr_gain_bars(BENCHMARKS, "PSNR gain", tmp_path / "gain.png", reference="l1", errors=errors,
                          error_label="95% paired bootstrap CI")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 600


def test_the_perception_distortion_plane_needs_lpips_for_every_objective(tmp_path):
    assert not has_perceptual_metric(BENCHMARKS["Set5"])
    measured = {"bicubic": entry(33.7, lpips=0.2), "l1": entry(34.5, 0.02, lpips=0.1)}
    assert has_perceptual_metric(measured)
    assert perception_distortion_plot(measured, "Set5 x2", tmp_path / "pd.png").is_file()


def test_objective_diagnostics_are_not_loss_terms(tmp_path):
    assert is_diagnostic("train/tlw/w_mean") and is_diagnostic("train/tlw/criterion")
    assert not is_diagnostic("train/l1") and not is_diagnostic("train/total") and not is_diagnostic("val/psnr")
    points = [CurvePoint("tlw", 0, step, metric, value) for step in (10, 20)
              for metric, value in (("train/total", 0.1), ("train/tlw/k", 1.0), ("train/tlw/criterion", -0.3),
                                    ("val/psnr", 30.0 + step / 10), ("val/bicubic_psnr", 29.0))]
    with Image.open(plot_training_curves("tlw", points, tmp_path / "curves.png")) as with_diagnostics:
        taller = with_diagnostics.size[1]
    plain = [point for point in points if not is_diagnostic(point.metric)]
    with Image.open(plot_training_curves("tlw", plain, tmp_path / "plain.png")) as without:
        assert taller > without.size[1]  # a second row of axes, one per diagnostic
    assert plot_validation_curves(points + [p._replace(objective="l1") for p in points],
                                  tmp_path / "val.png").is_file()


def _bar_colours(figure) -> dict[str, str]:
    from matplotlib.colors import to_hex
    return {container.get_label(): to_hex(container.patches[0].get_facecolor())
            for container in figure.axes[0].containers if hasattr(container, "patches")}


def test_every_plot_gives_an_objective_the_same_colour_and_ranks_the_bars():
    from matplotlib.colors import to_hex

    from pipeline.report.figures import COLOURS, objective_colour
    from pipeline.report.plots import gain_bar_figure

    over_bicubic = gain_bar_figure(BENCHMARKS, "over bicubic")
    over_l1 = gain_bar_figure(BENCHMARKS, "over l1", reference="l1")
    assert _bar_colours(over_bicubic) == {"grad2": objective_colour("grad2"), "l1": objective_colour("l1")}
    assert _bar_colours(over_l1) == {"grad2": objective_colour("grad2")}  # bicubic is no bar against l1
    assert [c.get_label() for c in over_bicubic.axes[0].containers if hasattr(c, "patches")] == ["grad2", "l1"]
    assert len(set(COLOURS.values())) == len(COLOURS)  # no two objectives share a colour
    assert objective_colour("my_new_loss") == objective_colour("my_new_loss") != objective_colour("l1")
    from pipeline.report.curves import validation_figure
    points = [CurvePoint(name, seed, step, "val/psnr", 30.0 + step) for name in ("grad2", "l1") for seed in (0, 1)
              for step in (1, 2)]
    colours = sorted(to_hex(line.get_color()) for line in validation_figure(points).axes[0].get_lines())
    assert colours == sorted([objective_colour("grad2")] * 2 + [objective_colour("l1")] * 2)  # every seed's run

"""Chunked cross-entropy, CS and FCS objectives, residual quantisers and low-pass filters."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.peak_memory import peak_cpu_bytes
from pipeline.config import LossConfig
from pipeline.errors import ConfigError
from pipeline.imageio import read_image
from pipeline.objectives.class_heads import LEVELS, ResidualQuantizer, chunked_cross_entropy, decode_classes
from pipeline.objectives.cross_entropy_loss import CrossEntropySR, FrequencyCrossEntropySR, SplitOutput
from pipeline.objectives.lowpass import LowPass
from pipeline.objectives.registry import build_objective
from pipeline.train.checkpoint import load_checkpoint, restore_networks
from pipeline.train.loop import fit
from tests.objectives.tiny_training import train_totals

SET5 = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks" / "Set5"


def reference_ce(logits, target, classes):
    b, _, h, w = logits.shape
    return F.cross_entropy(logits.view(b, -1, classes, h, w).transpose(1, 2), target)


def one_hot_logits(index, classes, height=50.0):
    """``[B, C*classes, H, W]`` logits with ``height`` at ``index`` and 0 elsewhere."""
    b, c, h, w = index.shape
    logits = torch.zeros(b, c, classes, h, w)
    logits.scatter_(2, index.unsqueeze(2), height)
    return logits.view(b, c * classes, h, w)


def smooth_images(generator, batch=1, size=16):
    coarse = torch.rand(batch, 3, size // 4, size // 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def train_on_smooth_images(make_objective, steps=10, seed=0):
    """Total loss per step of a tiny conv net + the objective's head on one fixed batch of smooth images."""
    generator = torch.Generator().manual_seed(seed)
    hr = smooth_images(generator)
    inputs = hr + 0.05 * torch.randn(hr.shape, generator=generator)
    return train_totals(make_objective, inputs, hr, steps, seed)


# ------------------------------------------------------------ chunked cross-entropy
@pytest.mark.parametrize("chunk", [1, 7, 40, 1 << 22])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 3, 4), (3, 2, 1, 1)])
def test_chunked_ce_matches_torch(shape, chunk):
    torch.manual_seed(0)
    b, c, h, w = shape
    classes = 6
    logits = (3 * torch.randn(b, c * classes, h, w)).requires_grad_()
    target = torch.randint(0, classes, (b, c, h, w))
    ours = chunked_cross_entropy(logits, target, classes, chunk)
    (grad_ours,) = torch.autograd.grad(2.5 * ours, logits)
    expected = reference_ce(logits, target, classes)
    (grad_expected,) = torch.autograd.grad(2.5 * expected, logits)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(grad_ours, grad_expected)


def test_chunked_ce_gradcheck():
    torch.manual_seed(0)
    logits = torch.randn(2, 2 * 5, 3, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (2, 2, 3, 2))
    assert torch.autograd.gradcheck(lambda z: chunked_cross_entropy(z, target, 5, 7), (logits,))


def test_chunked_ce_is_stable_for_huge_logits():
    logits = one_hot_logits(torch.zeros(1, 3, 2, 2, dtype=torch.long), LEVELS, height=1e4).requires_grad_()
    loss = chunked_cross_entropy(logits, torch.full((1, 3, 2, 2), 5), LEVELS)
    loss.backward()
    assert loss.item() == pytest.approx(1e4)
    assert torch.isfinite(logits.grad).all()


def test_chunked_ce_saves_only_logits_and_target():
    logits = torch.randn(2, 3 * LEVELS, 8, 8, requires_grad=True)
    target = torch.randint(0, LEVELS, (2, 3, 8, 8))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        chunked_cross_entropy(logits, target, LEVELS)
    assert len(saved) == 2
    assert saved[0] is logits and saved[1].data_ptr() == target.data_ptr()


def test_chunked_ce_second_backward_recomputes_the_same_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 3 * LEVELS, 5, 7, requires_grad=True)
    target = torch.randint(0, LEVELS, (2, 3, 5, 7))
    loss = 2.5 * chunked_cross_entropy(logits, target, LEVELS, chunk_elements=1000)
    first, = torch.autograd.grad(loss, logits, retain_graph=True)
    second, = torch.autograd.grad(loss, logits)
    expected, = torch.autograd.grad(2.5 * reference_ce(logits, target, LEVELS), logits)
    torch.testing.assert_close(first, expected)
    assert torch.equal(first, second)


def test_chunked_ce_without_gradient_allocates_no_gradient_buffer():
    logits = torch.randn(4, 3 * LEVELS, 24, 24)
    target = torch.randint(0, LEVELS, (4, 3, 24, 24))
    with torch.no_grad():
        peak = peak_cpu_bytes(lambda: chunked_cross_entropy(logits, target, LEVELS))
    assert peak < 0.5 * logits.numel() * logits.element_size()


def test_chunked_ce_peak_memory_within_one_and_a_half_logits():
    torch.manual_seed(0)
    logits = torch.randn(4, 3 * LEVELS, 24, 24, requires_grad=True)
    target = torch.randint(0, LEVELS, (4, 3, 24, 24))
    size = logits.numel() * logits.element_size()

    def ours():
        chunked_cross_entropy(logits, target, LEVELS).backward()

    def plain():
        reference_ce(logits, target, LEVELS).backward()

    logits.grad = None
    ours_peak = peak_cpu_bytes(ours)
    logits.grad = None
    plain_peak = peak_cpu_bytes(plain)
    assert ours_peak <= 1.5 * size
    assert plain_peak > 1.5 * size  # the measurement does see a full log-softmax copy


def test_chunked_ce_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="logits must be"):
        chunked_cross_entropy(torch.zeros(1, 10, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="target must be"):
        chunked_cross_entropy(torch.zeros(1, 8, 2, 2), torch.zeros(1, 3, 2, 2, dtype=torch.long), 4)


# ---------------------------------------------------------------------------- CS
@pytest.mark.parametrize("mode", ["argmax", "expectation", "annealed"])
def test_cs_decode_of_one_hot_logits_reproduces_image(mode):
    generator = torch.Generator().manual_seed(1)
    image = torch.randint(0, LEVELS, (2, 3, 5, 6), generator=generator)
    objective = CrossEntropySR(8, 2, terms={}, decode=mode, temperature=0.7)
    decoded = objective.decode(one_hot_logits(image, LEVELS))
    expected = image.float() / 255
    if mode == "argmax":
        assert torch.equal(decoded, expected)
    else:
        torch.testing.assert_close(decoded, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["expectation", "annealed"])
def test_blocked_decode_equals_one_pass_softmax_mean(monkeypatch, mode):
    torch.manual_seed(0)
    logits = 4 * torch.randn(2, 3 * LEVELS, 9, 11)
    values = torch.linspace(-0.5, 0.5, LEVELS)
    whole = decode_classes(logits, values, mode, temperature=0.5)
    monkeypatch.setattr("pipeline.objectives.class_heads.DECODE_BLOCK_ELEMENTS", 6 * LEVELS * 7)
    blocked = decode_classes(logits, values, mode, temperature=0.5)
    grouped = logits.view(2, 3, LEVELS, 9, 11) / (0.5 if mode == "annealed" else 1.0)
    expected = (grouped.softmax(dim=2) * values.view(1, 1, -1, 1, 1)).sum(dim=2)
    torch.testing.assert_close(whole, expected)
    torch.testing.assert_close(blocked, expected)


@pytest.mark.parametrize("mode", ["argmax", "expectation", "annealed"])
def test_channels_last_logits_decode_through_the_pixel_major_path_to_the_same_values(monkeypatch, mode):
    torch.manual_seed(0)
    logits = 4 * torch.randn(2, 3 * LEVELS, 9, 11)
    values = torch.linspace(-0.5, 0.5, LEVELS)
    channel_first = decode_classes(logits, values, mode, temperature=0.5)
    monkeypatch.setattr("pipeline.objectives.class_heads.PIXEL_MAJOR_BLOCK_ELEMENTS", LEVELS * 7)
    pixel_major = decode_classes(logits.contiguous(memory_format=torch.channels_last), values, mode, temperature=0.5)
    if mode == "argmax":
        assert torch.equal(pixel_major, channel_first)
        return
    grouped = logits.double().view(2, 3, LEVELS, 9, 11) / (0.5 if mode == "annealed" else 1.0)
    exact = (grouped.softmax(dim=2) * values.double().view(1, 1, -1, 1, 1)).sum(dim=2)
    assert (pixel_major.double() - exact).abs().max() < 1e-6
    assert (channel_first.double() - exact).abs().max() < 1e-6


def test_pixel_major_decode_gradient_matches_softmax_expectation():
    torch.manual_seed(0)
    logits = torch.randn(2, 3 * 7, 3, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    logits.requires_grad_(True)
    values = torch.linspace(-1, 2, 7, dtype=torch.float64)
    weights = torch.randn(2, 3, 3, 2, dtype=torch.float64)
    (grad,) = torch.autograd.grad((decode_classes(logits, values, "annealed", 0.6) * weights).sum(), logits)
    expected = (torch.softmax(logits.view(2, 3, 7, 3, 2) / 0.6, dim=2) * values.view(1, 1, 7, 1, 1)).sum(dim=2)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), logits)
    torch.testing.assert_close(grad, grad_expected)


@pytest.mark.parametrize("objective", ["cs", "fcs"])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_predict_in_row_blocks_equals_decoding_the_whole_head_output(monkeypatch, objective, kernel_size):
    torch.manual_seed(0)
    built = build_objective(LossConfig(objective=objective, args={"kernel_size": kernel_size}, terms={}), 8, 2)
    features = torch.randn(2, 8, 13, 10)
    with torch.no_grad():
        whole = built.decode(built(features))
        monkeypatch.setattr("pipeline.objectives.class_heads.PREDICT_BLOCK_ELEMENTS", 2 * 3 * LEVELS * 10 * 3)
        blocked = built.predict(features)
    # Ordered heads give logits of order 1e4 to 1e5 here; predict's fused channels-last decode sums the 256
    # float32 products in another order: 3.3e-6 from a float64 reference (the whole decode: 3e-7), 0.001 grey levels.
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-5)


def test_cs_expectation_is_the_softmax_mean():
    torch.manual_seed(0)
    logits = torch.randn(1, 3 * LEVELS, 2, 2)
    objective = CrossEntropySR(8, 2, terms={}, decode="annealed", temperature=2.0)
    probs = torch.softmax(logits.view(1, 3, LEVELS, 2, 2) / 2.0, dim=2)
    expected = (probs * (torch.arange(LEVELS) / 255).view(1, 1, LEVELS, 1, 1)).sum(dim=2)
    torch.testing.assert_close(objective.decode(logits), expected)


@pytest.mark.parametrize("mode", ["expectation", "annealed"])
def test_decode_gradient_matches_softmax_expectation(mode):
    torch.manual_seed(0)
    logits = torch.randn(2, 3 * 7, 3, 2, dtype=torch.float64, requires_grad=True)
    values = torch.linspace(-1, 2, 7, dtype=torch.float64)
    weights = torch.randn(2, 3, 3, 2, dtype=torch.float64)
    temperature = 0.6 if mode == "annealed" else 1.0
    (grad,) = torch.autograd.grad((decode_classes(logits, values, mode, temperature) * weights).sum(), logits)
    probs = torch.softmax(logits.view(2, 3, 7, 3, 2) / temperature, dim=2)
    expected = (probs * values.view(1, 1, 7, 1, 1)).sum(dim=2)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), logits)
    torch.testing.assert_close(grad, grad_expected)


def test_cs_loss_is_cross_entropy_against_rounded_intensities():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 4, 4)
    logits = torch.randn(2, 3 * LEVELS, 4, 4)
    objective = CrossEntropySR(8, 2, terms={}, ce_weight=0.5)
    losses = objective.loss(logits, hr)
    expected = reference_ce(logits, torch.round(hr * 255).long(), LEVELS)
    torch.testing.assert_close(losses["ce"], expected)
    torch.testing.assert_close(losses["total"], 0.5 * expected)


def test_cs_training_reduces_loss():
    totals = train_on_smooth_images(lambda: CrossEntropySR(16, 2, terms={}))
    assert totals[-1] < 0.95 * totals[0]


def test_argmax_decode_with_terms_is_a_config_error():
    with pytest.raises(ConfigError, match="not differentiable"):
        build_objective(LossConfig(objective="cs", args={"decode": "argmax"}, terms={"l2": 1.0}), 8, 2)


def test_unknown_cs_option_is_a_config_error():
    with pytest.raises(ConfigError, match="no option 'classes'"):
        build_objective(LossConfig(objective="cs", args={"classes": 128}, terms={}), 8, 2)


# ----------------------------------------------------------------- quantisers
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_uniform_quantizer_error_bound_and_clipping(tau):
    quantizer = ResidualQuantizer("uniform", tau, 255.0)
    residual = torch.linspace(-tau, tau, 10001)
    error = (quantizer.dequantize(quantizer.quantize(residual)) - residual).abs().max().item()
    assert error <= tau / 255 + 1e-6
    assert error == pytest.approx(quantizer.max_error(), rel=1e-2)
    outside = torch.tensor([-10 * tau, -1.01 * tau, 1.01 * tau, 10 * tau])
    assert quantizer.quantize(outside).tolist() == [0, 0, LEVELS - 1, LEVELS - 1]


def test_mulaw_quantizer_bound_and_finer_steps_near_zero():
    tau = 0.5
    quantizer = ResidualQuantizer("mulaw", tau, 255.0)
    uniform = ResidualQuantizer("uniform", tau, 255.0)
    residual = torch.linspace(-tau, tau, 20001)
    error = (quantizer.dequantize(quantizer.quantize(residual)) - residual).abs()
    assert error.max().item() <= quantizer.max_error() + 1e-6
    small = residual.abs() < 0.01 * tau
    assert error[small].max() < 0.2 * uniform.max_error()
    assert quantizer.quantize(torch.tensor([0.0])).item() in (127, 128)


def test_quantizer_values_are_increasing_and_symmetric():
    for kind in ("uniform", "mulaw"):
        values = ResidualQuantizer(kind, 0.3, 100.0).values
        assert (values.diff() > 0).all()
        torch.testing.assert_close(values, -values.flip(0))
        assert values[0].item() == pytest.approx(-0.3) and values[-1].item() == pytest.approx(0.3)


# -------------------------------------------------------------------- low-pass
@pytest.mark.parametrize(
    "lowpass", [LowPass("gaussian", sigma=1.2, kernel_size=7), LowPass("bicubic", factor=2), LowPass("bicubic", factor=3)]
)
def test_lowpass_keeps_constants_and_damps_checkerboard(lowpass):
    constant = torch.full((1, 3, 12, 12), 0.4)
    torch.testing.assert_close(lowpass(constant), constant)
    checker = (torch.arange(12).view(12, 1) + torch.arange(12)) % 2
    checker = checker.float().expand(1, 3, 12, 12) - 0.5
    assert lowpass(checker).abs().max() < 0.15


def test_gaussian_lowpass_matches_direct_2d_convolution():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 10, 9)
    lowpass = LowPass("gaussian", sigma=1.0, kernel_size=5)
    taps = torch.exp(-(torch.arange(5.0) - 2) ** 2 / 2)
    kernel = torch.outer(taps, taps) / taps.sum() ** 2
    padded = F.pad(image, (2, 2, 2, 2), mode="reflect")
    expected = F.conv2d(padded, kernel.expand(2, 1, 5, 5), groups=2)
    torch.testing.assert_close(lowpass(image), expected)


@pytest.mark.parametrize(
    "options",
    [{"kind": "gaussian", "kernel_size": 4}, {"kind": "gaussian", "sigma": 0}, {"kind": "bicubic", "factor": 1}, {"kind": "box"}],
)
def test_lowpass_rejects_bad_settings(options):
    with pytest.raises(ValueError):
        LowPass(**options)


# ---------------------------------------------------------------------------- FCS
def hr_crop():
    if not (SET5 / "baby.png").is_file():
        pytest.skip(f"Set5 not found at {SET5}: the shared data folder is absent")
    image = torch.from_numpy(read_image(SET5 / "baby.png")[100:164, 200:264]).permute(2, 0, 1)
    return image[None].float() / 255


@pytest.mark.parametrize("quantizer", ["uniform", "mulaw"])
@pytest.mark.parametrize("lowpass", [{"kind": "gaussian", "sigma": 1.5, "kernel_size": 9}, {"kind": "bicubic", "factor": 2}])
def test_fcs_low_plus_quantised_high_reconstructs_hr(quantizer, lowpass):
    hr = hr_crop()
    objective = FrequencyCrossEntropySR(8, 2, terms={}, lowpass=lowpass, quantizer=quantizer, tau=0.5, decode="argmax")
    low = objective.lowpass(hr)
    index = objective.quantizer.quantize(hr - low)
    assert (hr - low).abs().max() < 0.5  # nothing clipped, so the bound below applies everywhere
    decoded = objective.decode(SplitOutput(low, one_hot_logits(index, LEVELS)))
    assert (decoded - hr).abs().max().item() <= objective.quantizer.max_error() + 1e-6
    if quantizer == "uniform":
        assert objective.quantizer.max_error() == pytest.approx(0.5 / 255)


def test_fcs_terms_are_l2_on_low_and_ce_on_high():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 12, 12)
    out = SplitOutput(torch.rand(1, 3, 12, 12), torch.randn(1, 3 * LEVELS, 12, 12))
    objective = FrequencyCrossEntropySR(8, 2, terms={}, low_weight=2.0, high_weight=0.5, tau=0.3)
    losses = objective.loss(out, hr)
    low = objective.lowpass(hr)
    expected_low = F.mse_loss(out.low, low)
    expected_high = reference_ce(out.high, objective.quantizer.quantize(hr - low), LEVELS)
    torch.testing.assert_close(losses["low"], expected_low)
    torch.testing.assert_close(losses["high"], expected_high)
    torch.testing.assert_close(losses["total"], 2.0 * expected_low + 0.5 * expected_high)


@pytest.mark.parametrize("quantizer", ["uniform", "mulaw"])
def test_fcs_training_reduces_loss(quantizer):
    lowpass = {"kind": "gaussian", "sigma": 1.0, "kernel_size": 5}
    objective = FrequencyCrossEntropySR(16, 2, terms={}, quantizer=quantizer, lowpass=lowpass)
    totals = train_on_smooth_images(lambda: objective)
    assert totals[-1] < 0.95 * totals[0]


def test_fcs_image_terms_train_both_branches_through_the_decode():
    args = {"decode": "annealed", "temperature": 0.5, "low_weight": 0.0, "high_weight": 0.0}
    objective = build_objective(LossConfig(objective="fcs", args=args, terms={"l2": 1.0}), 16, 2)
    torch.manual_seed(0)
    losses = objective.loss(objective(torch.randn(1, 16, 8, 8)), torch.rand(1, 3, 8, 8))
    losses["total"].backward()
    torch.testing.assert_close(losses["total"], losses["l2"])
    for branch in (objective.head.low, objective.head.high):
        assert branch.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("objective", ["cs", "fcs"])
def test_fit_trains_and_restores_for_inference(tiny_data, tmp_path, objective):
    tiny_data.loss = LossConfig(objective=objective, args={}, terms={})
    result = fit(tiny_data, tmp_path / objective)
    assert math.isfinite(result.final_metrics["val/psnr"])
    net, restored = restore_networks(load_checkpoint(result.last_checkpoint))
    with torch.no_grad():
        sr = restored.decode(restored(net(torch.rand(1, 3, 10, 12))))
    assert sr.shape == (1, 3, 20, 24) and torch.isfinite(sr).all()


@pytest.mark.parametrize("objective", ["cs", "fcs"])
def test_bf16_autocast_and_channels_last_give_float32_results_close_to_float32(objective):
    torch.manual_seed(0)
    built = build_objective(LossConfig(objective=objective, args={}, terms={}), 8, 2).to(memory_format=torch.channels_last)
    features = torch.randn(2, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(2, 3, 12, 12)
    reference_out = built(features)
    reference = built.loss(reference_out, hr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = built(features)
        mixed = built.loss(out, hr)
        decoded = built.decode(out)
    assert mixed["total"].dtype == torch.float32 and decoded.dtype == torch.float32
    torch.testing.assert_close(mixed["total"], reference["total"], rtol=0.02, atol=0)
    torch.testing.assert_close(decoded, built.decode(reference_out), rtol=0, atol=0.02)

"""Class heads at their floor: no exp of an underflowing argument, the blocked 1x1 predict, the fused 1x1 training.

The exp guard and the blocked predict are compared BITWISE with the formula they replaced, written out
here (``plain_exp``: the unguarded ``exp_``; ``row_block_predict``: the conv-per-row-block predict), with
subnormals flushed as ``fit``, ``evaluate`` and ``upscale`` compute. The fused head + cross-entropy sums in
other orders, so it is compared with the conv path it replaced (``conv_path_cross_entropy``) within a stated
float32 tolerance, in float64 within 1e-14, and against the float64 truth as closely as that path.
"""

import numpy as np
import pytest
import torch

from bench.class_head_paths import conv_path_cross_entropy, loss_and_gradients, relative_difference
from pipeline.config import LossConfig
from pipeline.models.registry import build_model
from pipeline.objectives import class_heads, pointwise_head
from pipeline.objectives.class_heads import EXP_FLOORS, LEVELS, chunked_cross_entropy, decode_classes, exp_normal_
from pipeline.objectives.pointwise_head import class_logits
from pipeline.objectives.registry import build_objective

FCS_ARGS = {"lowpass": {"kind": "gaussian", "sigma": 1.5, "kernel_size": 9}, "tau": 0.5, "low_weight": 2032.03}


@pytest.fixture
def flushed():
    """Subnormals flushed, on one thread: the flag is per thread, and OpenMP workers started earlier keep theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # the autouse ordinary_floats fixture turns it off again
    yield
    torch.set_num_threads(threads)


def plain_exp(monkeypatch):
    """Make the class heads call the unguarded ``exp_`` they called before."""
    monkeypatch.setattr(class_heads, "exp_normal_", lambda x: x.exp_())


@pytest.mark.parametrize("dtype, bits", [(torch.float32, np.int32), (torch.float64, np.int64)])
def test_exp_floor_is_the_least_input_whose_exp_is_a_normal_float(dtype, bits):
    floor = np.array(EXP_FLOORS[dtype], dtype=torch.empty((), dtype=dtype).numpy().dtype)
    neighbours = np.arange(-5000, 5001, dtype=bits) + floor.view(bits)  # consecutive floats around the floor
    x = torch.from_numpy(neighbours.view(floor.dtype).copy())
    normal = torch.exp(x) >= torch.finfo(dtype).tiny
    assert torch.equal(normal, x >= EXP_FLOORS[dtype])
    assert normal.any() and not normal.all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_normal_is_bitwise_exp_with_subnormals_flushed(flushed, dtype):
    x = torch.cat([torch.linspace(-800, 5, 200_001, dtype=dtype),
                   torch.tensor([float("-inf"), float("nan"), -1e30, EXP_FLOORS[dtype], 0.0], dtype=dtype)])
    guarded, plain = exp_normal_(x.clone()), x.clone().exp_()
    assert torch.equal(guarded.isnan(), plain.isnan())
    assert torch.equal(guarded.nan_to_num(), plain.nan_to_num())
    assert (x < EXP_FLOORS[dtype]).sum() > 20_000  # the guard was exercised


def small_edsr_and_objective(objective_name, generator_seed=0, batch=2, size=12, kernel_size=None):
    """A small EDSR, an objective with its default ordered class head, and a batch: CS logits span about 8000."""
    torch.manual_seed(generator_seed)
    net = build_model("edsr", 2, {"n_blocks": 1, "n_feats": 32})  # the study's width
    args = {"fcs": FCS_ARGS, "fine_grained": {"bins": 32}}.get(objective_name, {})  # the study's settings
    if kernel_size is not None:
        args = {**args, "kernel_size": kernel_size}
    objective = build_objective(LossConfig(objective=objective_name, args=args, terms={}), net.feature_channels, 2)
    lr = torch.rand(batch, 3, size // 2, size // 2, generator=torch.Generator().manual_seed(generator_seed))
    hr = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(generator_seed + 1))
    return net, objective, lr, hr


@pytest.mark.parametrize("name", ["cs", "fcs", "fine_grained"])
def test_training_loss_and_every_gradient_are_bitwise_those_of_plain_exp(flushed, monkeypatch, name):
    """The chunked cross-entropy's path: 3x3 class heads (a 1x1 one trains through ``torch.softmax``)."""
    net, objective, lr, hr = small_edsr_and_objective(name, kernel_size=3)
    with torch.no_grad():
        out = objective(net(lr))
        logits = out.bins if name == "fine_grained" else class_logits(getattr(out, "high", out))
    assert logits.min() - logits.max() < -200  # the trap's range: many classes underflow
    guarded = loss_and_gradients(net, objective, lr, hr)
    plain_exp(monkeypatch)
    plain = loss_and_gradients(net, objective, lr, hr)
    assert len(guarded) == len(plain) > 5
    assert all(torch.equal(a, b) for a, b in zip(guarded, plain))


@pytest.mark.parametrize("mode", ["expectation", "annealed"])
def test_channels_first_decode_and_its_gradient_are_bitwise_those_of_plain_exp(flushed, monkeypatch, mode):
    torch.manual_seed(0)
    logits = (-2000 * torch.rand(2, 3 * LEVELS, 5, 7)).requires_grad_(True)
    values = torch.linspace(-0.5, 0.5, LEVELS)
    weights = torch.randn(2, 3, 5, 7)

    def decoded_and_gradient():
        decoded = decode_classes(logits, values, mode, temperature=0.5)
        (gradient,) = torch.autograd.grad((decoded * weights).sum(), logits)
        return decoded.detach(), gradient

    guarded = decoded_and_gradient()
    plain_exp(monkeypatch)
    plain = decoded_and_gradient()
    assert torch.equal(guarded[0], plain[0]) and torch.equal(guarded[1], plain[1])


def test_chunked_ce_on_underflowing_logits_is_bitwise_that_of_plain_exp(flushed, monkeypatch):
    torch.manual_seed(0)
    logits = (-5000 * torch.rand(2, 3 * LEVELS, 6, 5)).requires_grad_(True)
    target = torch.randint(0, LEVELS, (2, 3, 6, 5))

    def loss_and_gradient():
        loss = chunked_cross_entropy(logits, target, LEVELS, chunk_elements=LEVELS * 7)
        (gradient,) = torch.autograd.grad(loss, logits)
        return loss.detach(), gradient

    guarded = loss_and_gradient()
    plain_exp(monkeypatch)
    plain = loss_and_gradient()
    assert torch.equal(guarded[0], plain[0]) and torch.equal(guarded[1], plain[1])


def row_block_predict(objective, features):
    """The predict this replaced for 1x1 heads: the head conv on channels-last row blocks with one row of
    context on each side, then the pixel-major decode (``softmax @ values`` over each pixel's classes)."""
    conv, values = objective.class_head()
    batch, _, height, width = features.shape
    features = features.contiguous(memory_format=torch.channels_last)
    rows = max(1, class_heads.PREDICT_BLOCK_ELEMENTS // (batch * 3 * LEVELS * width))
    parts = []
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        above, below = max(0, top - 1), min(height, bottom + 1)
        out = objective(features[:, :, above:below])
        high = class_logits(getattr(out, "high", out)).permute(0, 2, 3, 1).reshape(-1, LEVELS)
        if objective.decode_mode == "argmax":
            decoded = values[high.argmax(dim=1)]
        else:
            scale = objective.temperature if objective.decode_mode == "annealed" else 1.0
            decoded = torch.softmax(high / scale if scale != 1.0 else high, dim=1) @ values
        decoded = decoded.view(batch, below - above, width, 3).permute(0, 3, 1, 2)
        if hasattr(out, "low"):
            decoded = out.low + decoded
        parts.append(decoded[:, :, top - above:bottom - above])
    return torch.cat(parts, dim=2)


@pytest.mark.parametrize("name", ["cs", "fcs"])
@pytest.mark.parametrize("mode", ["expectation", "annealed", "argmax"])
def test_pointwise_predict_is_bitwise_the_row_block_predict_and_never_holds_all_logits(flushed, monkeypatch, name,
                                                                                     mode):
    net, objective, lr, _ = small_edsr_and_objective(name, batch=2, size=2 * 23)
    objective.decode_mode = mode
    monkeypatch.setattr(pointwise_head, "HEAD_BLOCK_PIXELS", 100)  # 2 x 23 x 23 pixels: 11 blocks, the last partial
    monkeypatch.setattr(class_heads, "PREDICT_BLOCK_ELEMENTS", 2 * 3 * LEVELS * 46 * 10)  # FCS's low: 10-row blocks
    with torch.inference_mode():
        features = net(lr)
        expected = row_block_predict(objective, features)
        blocked = objective.predict(features)
    assert torch.equal(blocked, expected)


def test_predict_computes_each_pixel_of_a_1x1_head_once(monkeypatch):
    net, objective, lr, _ = small_edsr_and_objective("cs", batch=1, size=30)
    seen = []
    monkeypatch.setattr(pointwise_head, "decode_rows", lambda rows, *args: seen.append(rows.shape[0]) or
                        torch.zeros(rows.shape[0]))
    with torch.inference_mode():
        objective.predict(net(lr))
    assert sum(seen) == 3 * 30 * 30 and max(seen) == 3 * pointwise_head.HEAD_BLOCK_PIXELS


@pytest.mark.parametrize("name", ["cs", "fcs"])
def test_pointwise_predict_is_bitwise_the_row_block_predict_on_two_threads(flushed, monkeypatch, name):
    torch.set_num_threads(2)  # evaluate and upscale use the CPUs they have; the fixture restores the count
    net, objective, lr, _ = small_edsr_and_objective(name, batch=1, size=2 * 23)
    monkeypatch.setattr(pointwise_head, "HEAD_BLOCK_PIXELS", 100)
    monkeypatch.setattr(class_heads, "PREDICT_BLOCK_ELEMENTS", 3 * LEVELS * 46 * 10)
    with torch.inference_mode():
        features = net(lr)
        assert torch.equal(objective.predict(features), row_block_predict(objective, features))


@pytest.mark.parametrize("name", ["cs", "fcs"])
def test_fused_training_step_equals_the_conv_path_within_float_rounding(flushed, monkeypatch, name):
    """The fused head + cross-entropy sums in other orders (pixel-major rows, blocks of pixels), so its loss
    and gradients equal the conv path's up to float32 rounding: within 1e-6 of each tensor's largest
    entry, across several blocks (the last one partial; ``bench/class_head_drift.py`` prints the differences
    at the default study's size); in float64 within 1e-14: the same formula."""
    monkeypatch.setattr(pointwise_head, "HEAD_BLOCK_PIXELS", 100)  # 2 x 23 x 23 pixels: 11 blocks
    net, objective, lr, hr = small_edsr_and_objective(name, batch=2, size=2 * 23)
    for dtype, tolerance in ((torch.float32, 1e-6), (torch.float64, 1e-14)):
        net, objective = net.to(dtype), objective.to(dtype)
        low, high = lr.to(dtype), hr.to(dtype)
        fused = loss_and_gradients(net, objective, low, high)
        with monkeypatch.context() as patch:
            patch.setattr(pointwise_head.PointwiseLogits, "cross_entropy", conv_path_cross_entropy)
            conv = loss_and_gradients(net, objective, low, high)
        assert len(fused) == len(conv) > 5
        assert max(relative_difference(fused, conv)) <= tolerance


def test_fused_cross_entropy_is_as_close_to_float64_as_the_conv_path(flushed):
    """Against the float64 truth of ``F.cross_entropy(conv(features))``, the fused float32 loss and
    gradients err no more than the conv path's float32 ones (ordered logits spanning ~8000)."""
    torch.manual_seed(0)
    conv = build_objective(LossConfig(objective="cs", terms={}), 32, 2).head
    features = torch.randn(2, 32, 20, 21)
    target = torch.randint(0, LEVELS, (2, 3, 20, 21))

    def loss_and_gradients(ce, dtype):
        head = torch.nn.Conv2d(32, 3 * LEVELS, 1).to(dtype)
        head.load_state_dict(conv.state_dict())
        x = features.to(dtype).requires_grad_(True)
        loss = ce(head, x)
        return [loss.detach(), *torch.autograd.grad(loss, [x, head.weight, head.bias])]

    def reference(head, x):
        return torch.nn.functional.cross_entropy(head(x).view(2, 3, LEVELS, 20, 21).transpose(1, 2), target)

    exact = loss_and_gradients(reference, torch.float64)
    fused = loss_and_gradients(lambda head, x: pointwise_head.pointwise_cross_entropy(head, x, target, 1 << 22),
                               torch.float32)
    plain = loss_and_gradients(lambda head, x: chunked_cross_entropy(head(x), target, LEVELS), torch.float32)
    fused_error = max(relative_difference([t.double() for t in fused], exact))
    plain_error = max(relative_difference([t.double() for t in plain], exact))
    assert fused_error <= max(2 * plain_error, 1e-6)


def test_fused_training_holds_one_block_of_logits_and_counts_the_conv_flops(monkeypatch):
    """No logits tensor for the batch: every softmax runs on one block of at most ``HEAD_BLOCK_PIXELS`` pixels
    (x 3 channels rows of 256), each pixel once; the FLOPs are the conv's forward and backward, exactly."""
    from torch.utils.flop_counter import FlopCounterMode

    net, objective, lr, hr = small_edsr_and_objective("cs", batch=2, size=40)
    features = net(lr).detach()
    seen = []
    softmax = torch.softmax
    monkeypatch.setattr(torch, "softmax", lambda x, dim, **out: seen.append(x.shape) or softmax(x, dim, **out))
    with FlopCounterMode(display=False) as fused:
        objective.loss(objective(features.requires_grad_(True)), hr)["total"].backward()
    assert sum(rows for rows, _ in seen) == 3 * 2 * 40 * 40
    assert max(rows for rows, _ in seen) == 3 * pointwise_head.HEAD_BLOCK_PIXELS and {k for _, k in seen} == {LEVELS}
    monkeypatch.setattr(pointwise_head.PointwiseLogits, "cross_entropy", conv_path_cross_entropy)
    with FlopCounterMode(display=False) as conv:
        objective.loss(objective(features), hr)["total"].backward()
    assert fused.get_total_flops() == conv.get_total_flops() == 3 * 2 * (2 * 40 * 40) * 32 * 3 * LEVELS


def test_fused_cross_entropy_blocks_follow_chunk_elements_and_its_loss_needs_no_gradient(flushed):
    torch.manual_seed(0)
    conv = build_objective(LossConfig(objective="cs", terms={}), 8, 2).head
    features, target = torch.randn(1, 8, 9, 7), torch.randint(0, LEVELS, (1, 3, 9, 7))
    whole = pointwise_head.pointwise_cross_entropy(conv, features, target, 1 << 22)
    small = pointwise_head.pointwise_cross_entropy(conv, features, target, 5 * 3 * LEVELS)  # 13 blocks of 5 pixels
    with torch.no_grad():
        detached = pointwise_head.pointwise_cross_entropy(conv, features, target, 1 << 22)
    expected = chunked_cross_entropy(conv(features), target, LEVELS)
    assert whole.requires_grad and not detached.requires_grad and torch.equal(whole.detach(), detached)
    torch.testing.assert_close(small, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(whole, expected, rtol=1e-6, atol=0)


def test_image_terms_reuse_the_decoded_logits_for_the_cross_entropy(monkeypatch):
    """With ``loss.terms`` the decode needs the logits anyway: the head runs once and the loss reads them."""
    fused, heads = [], []
    monkeypatch.setattr(pointwise_head, "pointwise_cross_entropy", lambda *args: fused.append(args))
    torch.manual_seed(0)
    objective = build_objective(LossConfig(objective="cs", terms={"l1": 1.0}), 8, 2)
    objective.head.register_forward_hook(lambda *args: heads.append(args))
    losses = objective.loss(objective(torch.randn(1, 8, 6, 6)), torch.rand(1, 3, 6, 6))
    assert not fused and len(heads) == 1 and set(losses) == {"ce", "l1", "total"}

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.models.registry import MODELS, build_model
from pipeline.models.summary import SMALL_CONFIGS, summarize, summary_table


def test_srcnn_macs_match_the_hand_count():
    """9-5-5 at x2 on 64x64 LR: 128*128 HR pixels x (3*64*81 + 64*32*25) multiply-adds."""
    row = summarize("srcnn", 2, {})
    assert row["macs"] == 128 * 128 * (3 * 64 * 81 + 64 * 32 * 25) == 1_093_664_768
    assert row["flops"] == 2 * row["macs"]
    assert row["params"] == 3 * 64 * 81 + 64 + 64 * 32 * 25 + 32
    assert row["feature_channels"] == 32


def test_transposed_convolution_macs_match_the_hand_count():
    """FSRCNN(56,12,4) at x2: per LR pixel 3*56*25 + 56*12 + 4*12*12*9 + 12*56 convs, 56*3*81 deconvolution."""
    row = summarize("fsrcnn", 2, {})
    assert row["macs"] == 64 * 64 * (3 * 56 * 25 + 56 * 12 + 4 * 12 * 12 * 9 + 12 * 56 + 56 * 3 * 81)


def test_edsr_baseline_macs_match_the_hand_count():
    per_lr_pixel = 3 * 64 * 9 + 33 * 64 * 64 * 9 + 64 * 256 * 9
    assert summarize("edsr", 2, {}, lr_size=(32, 48))["macs"] == 32 * 48 * per_lr_pixel


@pytest.mark.parametrize("name", sorted(MODELS))
def test_meta_device_count_equals_a_real_forward_pass(name):
    torch.manual_seed(0)
    net = build_model(name, 2, SMALL_CONFIGS[name])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, 12, 10))
    row = summarize(name, 2, SMALL_CONFIGS[name], lr_size=(12, 10))
    assert row["flops"] == counter.get_total_flops() > 0
    assert row["params"] == sum(p.numel() for p in net.parameters())


def test_table_has_a_default_and_a_small_row_for_every_network():
    rows = summary_table(3).splitlines()[2:]
    assert len(rows) == 2 * len(MODELS)
    assert {row.split("|")[1].strip() for row in rows} == set(MODELS)
    lapsrn = [row for row in rows if row.startswith("| lapsrn ")]
    assert all("unsupported at x3" in row for row in lapsrn)
    edsr_default = next(row for row in rows if row.startswith("| edsr | default"))
    assert "1,552,768" in edsr_default

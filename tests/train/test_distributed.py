"""Data-parallel training over a 2-process gloo group: averaged gradients equal the mean of each
rank's own gradients, and ``fit`` keeps the ranks' weights identical with rank 0 alone writing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pipeline.config import Params
from pipeline.train.callbacks import Callback
from pipeline.train.distributed import GradientAverager, rank_and_world_size, share_from_rank0
from pipeline.train.loop import fit

WORLD = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(function, port: int, *args) -> None:
    """Run ``function(rank, *args)`` in 2 forked processes joined in a gloo group."""
    mp.start_processes(_in_group, args=(function, port, args), nprocs=WORLD, start_method="fork")


def _in_group(rank: int, function, port: int, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        function(rank, *args)
    finally:
        dist.destroy_process_group()


def two_nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return nn.Linear(5, 3), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))


def batch(rank: int) -> torch.Tensor:
    return torch.randn(8, 5, generator=torch.Generator().manual_seed(100 + rank))


def two_backward_passes(first: nn.Module, second: nn.Module, x: torch.Tensor) -> None:
    """Like an objective's own update then the SR update: one backward per network."""
    first(x).square().mean().backward()
    second(first(x).detach()).mean().backward()


def _averaged_gradients(rank: int, out: Path) -> None:
    first, second = two_nets()
    averager = GradientAverager([first, second], WORLD)
    assert rank_and_world_size() == (rank, WORLD)
    two_backward_passes(first, second, batch(rank))
    averager.remove()
    torch.save([p.grad for p in [*first.parameters(), *second.parameters()]], out / f"grads{rank}.pt")
    assert share_from_rank0({"rank": rank}) == {"rank": 0}


def test_gradients_are_averaged_over_ranks_after_each_backward_pass(tmp_path):
    run_ranks(_averaged_gradients, free_port(), tmp_path)
    expected = []
    for rank in range(WORLD):
        first, second = two_nets()
        two_backward_passes(first, second, batch(rank))
        expected.append([p.grad for p in [*first.parameters(), *second.parameters()]])
    mean = [(a + b) / 2 for a, b in zip(*expected)]
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"grads{rank}.pt")
        assert len(got) == len(mean)
        for g, m in zip(got, mean):
            torch.testing.assert_close(g, m, rtol=1e-6, atol=1e-7)
    assert not torch.equal(expected[0][0], expected[1][0])  # the ranks really saw different data


class KeepWeights(Callback):
    """Saves the network's final weights and metrics of each rank to ``out``."""

    def __init__(self, out: Path, rank: int) -> None:
        self.out, self.rank, self.net = out, rank, None

    def on_start(self, ctx):
        self.net = ctx.model

    def on_end(self, result):
        state = {"weights": self.net.state_dict(), "metrics": result.final_metrics}
        torch.save(state, self.out / f"rank{self.rank}.pt")


def _fit_rank(rank: int, params: Params, out: Path) -> None:
    fit(params, out / f"run{rank}", [KeepWeights(out, rank)])


def test_fit_in_a_process_group_keeps_ranks_equal_and_writes_on_rank_0_only(tiny_data, tmp_path):
    tiny_data.train.iterations = 4
    tiny_data.train.val_every = tiny_data.train.checkpoint_every = 2
    run_ranks(_fit_rank, free_port(), tiny_data, tmp_path)
    assert torch.load(tmp_path / "run0" / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 4
    assert not (tmp_path / "run1" / "checkpoints").exists()
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    assert ranks[0]["metrics"] == ranks[1]["metrics"] and "val/psnr" in ranks[0]["metrics"]
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][name]), name
    single = fit(tiny_data, tmp_path / "single")  # one process, one data stream: other weights
    checkpoint = torch.load(single.last_checkpoint, weights_only=True)["model"]
    assert not all(torch.equal(value, checkpoint[name]) for name, value in ranks[0]["weights"].items())

"""Saved generator states: plain data, and restoring them repeats the same draws."""

from __future__ import annotations

import random

import numpy as np
import torch

from pipeline.train.checkpoint import save_checkpoint
from pipeline.train.rng import rng_state, seed_everything, set_rng_state


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), [random.random() for _ in range(3)]


def test_restoring_the_state_repeats_every_generator(tmp_path):
    seed_everything(123)
    np.random.randn()  # leaves a cached Gaussian in the numpy state
    state = rng_state()
    save_checkpoint(tmp_path / "rng.pt", state)  # refuses anything but plain data
    expected = draws()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draws() == expected


def test_seed_everything_is_reproducible():
    seed_everything(5)
    first = draws()
    seed_everything(5)
    assert draws() == first

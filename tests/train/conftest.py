"""Settings for the training tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine spinning
    OpenMP threads slow these tests tenfold; one thread keeps them fast and their timing stable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

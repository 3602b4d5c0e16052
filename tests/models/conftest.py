import pytest
import torch


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """These tests use tiny tensors: one thread avoids OpenMP spin-wait stalls on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

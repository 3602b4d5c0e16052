"""Device choices: auto, unavailable devices, CUDA-only features switched off on CPU."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys

import pytest
import torch

from pipeline.config import TrainConfig
from pipeline.errors import PipelineError
from pipeline.train.device import keep_freed_cpu_memory, plan_device, resolve_device


def test_auto_picks_cuda_only_when_present():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_or_missing_devices_are_clear_errors():
    with pytest.raises(PipelineError, match="not a device name"):
        resolve_device("gpu0")
    with pytest.raises(PipelineError, match="not available on this machine"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_amp_and_compile_are_switched_off_on_cpu_with_one_info_log(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.train.device"):
        setup = plan_device(TrainConfig(device="cpu", amp="fp16", compile=True, channels_last=True))
    assert setup.amp_dtype is None and not setup.compile and not setup.uses_grad_scaler
    assert setup.memory_format == torch.channels_last
    assert len(caplog.records) == 1 and "CUDA-only" in caplog.records[0].getMessage()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda():
    setup = plan_device(TrainConfig(device="cuda", amp="fp16"))
    assert setup.amp_dtype == torch.float16 and setup.uses_grad_scaler


RSS_AFTER_FREE = """
import sys, torch
from pipeline.train.device import keep_freed_cpu_memory
if sys.argv[1] == "keep":
    assert keep_freed_cpu_memory(torch.device("cpu"))
def rss_mib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
torch.ones(1000).add_(1)  # lazy initialisation happens before the measurement
before = rss_mib()
block = torch.ones(256 * 2**20 // 4)
del block
print(rss_mib() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_large_cpu_tensors_stay_with_the_process_only_after_the_switch():
    def retained_mib(mode):
        done = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True, text=True, check=True)
        return int(done.stdout.strip())

    assert retained_mib("default") < 64  # glibc unmapped the 256 MiB block on free
    assert retained_mib("keep") >= 250  # the heap kept it for the next large tensor
    assert not keep_freed_cpu_memory(torch.device("cuda"))  # GPU runs leave the CPU allocator alone


def test_subnormals_are_flushed_on_cpu_and_the_switch_is_not_applied_elsewhere():
    import torch

    from pipeline.train.device import flush_subnormals

    try:
        assert flush_subnormals(torch.device("meta")) is False
        assert flush_subnormals(torch.device("cpu")) is True
        tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 subnormal
        assert (tiny * 1.0).item() == 0.0
        assert (torch.tensor([1e-30]) * 1.0).item() > 0.0  # normal numbers are untouched
    finally:
        torch.set_flush_denormal(False)

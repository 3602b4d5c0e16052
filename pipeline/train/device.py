"""Where and how training runs: device, mixed precision, torch.compile, memory format, determinism.

AMP and ``torch.compile`` are CUDA-only here: on CPU they are switched off with one info log,
so the same params run everywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
from dataclasses import dataclass

import torch

from pipeline.config import TrainConfig
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_MAX = -1, -4
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DeviceSetup:
    """The resolved execution choices for one run."""

    device: torch.device
    amp_dtype: torch.dtype | None
    compile: bool
    channels_last: bool

    @property
    def uses_grad_scaler(self) -> bool:
        """fp16 needs loss scaling against gradient underflow; bf16 does not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def prepare_device(config: TrainConfig) -> DeviceSetup:
    """The device plan of ``config``, with determinism, the CPU allocator and subnormal flushing set for it;
    a batch that cannot fit its memory is refused first."""
    setup = plan_device(config)
    check_batch_fits(config, setup.device)
    configure_determinism(config.deterministic)
    keep_freed_cpu_memory(setup.device)
    flush_subnormals(setup.device)
    return setup


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit device must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise PipelineError(f"train.device '{spec}' is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        index = device.index or 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise PipelineError(f"train.device '{spec}' is not available on this machine; use train.device=auto or cpu")
    return device


def plan_device(config: TrainConfig) -> DeviceSetup:
    """Resolve ``train.device/amp/compile/channels_last`` for this machine."""
    device = resolve_device(config.device)
    on_cuda = device.type == "cuda"
    if not on_cuda and (config.amp != "none" or config.compile):
        log.info("train.amp=%s and train.compile=%s are CUDA-only; running in float32 without compile on %s",
                 config.amp, config.compile, device)
    amp_dtype = AMP_DTYPES.get(config.amp) if on_cuda else None
    return DeviceSetup(device=device, amp_dtype=amp_dtype, compile=config.compile and on_cuda,
                       channels_last=config.channels_last)


def configure_determinism(deterministic: bool) -> None:
    """Process-wide switches: deterministic kernels (warn where none exists) and no cuDNN autotuning.

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for reproducible matmuls; it is set unless already given.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def keep_freed_cpu_memory(device: torch.device) -> bool:
    """On CPU, let glibc keep freed memory for reuse instead of returning it to the system.

    By default glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on free,
    so each large temporary (a CS/FCS step makes several 56 MiB ones at batch 8, patch 48) is
    page-faulted in again every step; with ``M_MMAP_MAX = 0`` and a 2 GiB ``M_TRIM_THRESHOLD``
    the heap keeps them, as PyTorch's CUDA caching allocator does on GPU. Measured on one thread,
    EDSR 4x32, batch 8, patch 48: a CS step 145 -> 116 ms, an L1 step 44 -> 38 ms. The process's
    resident memory then stays at its peak. Returns whether the switch applied (CPU and glibc only).
    """
    if device.type != "cpu" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(GLIBC_M_MMAP_MAX, 0)) and bool(libc.mallopt(GLIBC_M_TRIM_THRESHOLD, 2**31 - 1))


def flush_subnormals(device: torch.device) -> bool:
    """On CPU, compute with subnormal floats (below 1.2e-38 in float32) flushed to zero.

    A softmax over ordered class logits (``pipeline.objectives.ordered_head``) holds probabilities
    like ``exp(-100)``, and x86 arithmetic on subnormals is many times slower: one fine-grained
    training step (32 bins, EDSR 4x32, batch 8, patch 48, one thread) took 1.2 s with them and 88 ms
    flushed. Values that small change no loss or image. Returns whether the switch applied.
    """
    return device.type == "cpu" and torch.set_flush_denormal(True)


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device``: the GPU's total, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_batch_fits(config: TrainConfig, device: torch.device) -> None:
    """Refuse a batch whose float32 images alone (HR ``batch x 3 x patch^2`` plus LR, ``1/scale^2`` of it)
    exceed the device's memory: it could only be killed minutes later. The network's activations
    need several times more; this catches only the impossible."""
    needed = config.batch_size * 3 * config.patch_size ** 2 * 4 * (1 + 1 / config.scale ** 2)
    memory = device_memory(device)
    if needed > memory:
        raise PipelineError(f"train.batch_size {config.batch_size} needs at least {needed / 2**30:.1f} GiB for the "
                            f"batch's images alone, more than the {memory / 2**30:.1f} GiB of memory available; "
                            "lower train.batch_size or train.patch_size")

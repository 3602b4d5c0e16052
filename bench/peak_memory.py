"""Peak CPU memory of one call, from the torch profiler's memory events.

Used by ``bench/loss_overhead.py`` (a training step's peak on CPU) and the tests that bound the
chunked cross-entropy's memory. Importable as ``peak_memory`` (with ``bench/`` on the path, as the
bench scripts run) and as ``bench.peak_memory``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

from torch.profiler import ProfilerActivity, profile


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated inside ``fn`` beyond those allocated before it: the highest running total of
    the profiler's ``[memory]`` events (``profile_memory=True`` records every CPU tensor allocation and
    free), minus the total before the first of them."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    memory = [e["args"] for e in events if e.get("name") == "[memory]"]
    if not memory:
        return 0
    start = memory[0]["Total Allocated"] - memory[0]["Bytes"]  # the running total counts earlier profiled blocks
    return max(m["Total Allocated"] for m in memory) - start

"""What a trial costs, known from its objective before it runs: the sweep starts the most expensive
trials first (so the last ones to end are short) and estimates the time left from these costs.

``TRIAL_COST`` is a trial's time relative to an L1 trial of the same budget, by ``loss.objective``:
the medians, to one decimal, of ``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/trial_cost.py --rounds 7
--clock cpu`` (``fit``'s own training step and validation, the default study's network and budget, one
thread, CPU time, 7 interleaved rounds) on this project's 2-core machine at a load average of 2.
``regression`` stands for L1, Charbonnier and L1 + grad2 (0.97-1.03 there). TLW pays for its weighting
network, fine-grained for three heads and their cross-entropies, CS and FCS for their fused 768-logit
class head in every step; an objective not listed counts as 1.
"""

from __future__ import annotations

TRIAL_COST = {"regression": 1.0, "tlw": 2.8, "fine_grained": 2.0, "cs": 1.8, "fcs": 2.0}


def trial_cost(objective_kind: str) -> float:
    """The relative cost of a trial whose ``loss.objective`` is ``objective_kind``."""
    return TRIAL_COST.get(objective_kind, 1.0)

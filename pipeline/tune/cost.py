"""What a trial costs, known from its objective before it runs: the sweep starts the most expensive
trials first (so the last ones to end are short) and estimates the time left from these costs.

``TRIAL_COST`` is a trial's wall time relative to an L1 trial of the same budget, by ``loss.objective``,
measured on the default study's network and budget (``PYTHONPATH=. python bench/trial_cost.py``:
medians over 5 interleaved rounds on this project's 2-core machine under a load average of 15-23;
``regression`` stands for L1, Charbonnier and L1 + grad2, 1.0-1.2). CS and FCS pay for their 256-
class heads in every step and for the decode of every validation image; an objective not listed
counts as 1.
"""

from __future__ import annotations

TRIAL_COST = {"regression": 1.0, "tlw": 3.5, "fine_grained": 3.0, "cs": 8.9, "fcs": 7.6}


def trial_cost(objective_kind: str) -> float:
    """The relative cost of a trial whose ``loss.objective`` is ``objective_kind``."""
    return TRIAL_COST.get(objective_kind, 1.0)

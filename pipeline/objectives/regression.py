"""Plain regression: RGB head, identity decode, loss = the configured pixel/perceptual terms."""

from pipeline.objectives.base import Objective
from pipeline.objectives.registry import register_objective


@register_objective("regression")
class Regression(Objective):
    """``SR = head(features)``; ``loss = sum_i w_i * term_i(SR, HR)`` (e.g. ``{l1: 1.0}``)."""

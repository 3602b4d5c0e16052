"""Min / median / max of repeated measurements, as every bench reports them."""

from __future__ import annotations

import statistics


def spread(values: list[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of ``values``."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def spread_text(values: list[float], digits: int = 2, unit: str = "", scale: float = 1.0) -> str:
    """``"min / median / max unit"`` of ``values / scale`` with ``digits`` decimals."""
    figures = spread([value / scale for value in values])
    text = " / ".join(f"{figures[key]:.{digits}f}" for key in ("min", "median", "max"))
    return f"{text} {unit}" if unit else text

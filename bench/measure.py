"""What the benchmark scripts share: the percentile each of them prints.

The scripts are run as ``python bench/NAME.py``, which puts this folder on sys.path."""

from __future__ import annotations


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

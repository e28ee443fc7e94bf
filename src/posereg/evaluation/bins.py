"""Rotation-magnitude bins with equal counts (Salehi et al. 2018 report errors per bin)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bin_indices", "equal_count_edges"]


def equal_count_edges(values: Sequence[float], bins: int = 6, low: float = 0.0, high: float = 180.0) -> list[float]:
    """Edges ``low = e_0 < ... < e_bins = high`` putting (nearly) equal counts in each bin.

    Inner edges are order statistics of ``values``: edge ``b`` is the ``round(b n / bins)``-th
    smallest, so bin ``b`` holds ``[e_b, e_{b+1})``.

    Args:
        values: the quantity binned (e.g. true rotation angles, degrees), within ``[low, high]``.
        bins: number of bins, at most ``len(values)``.
    """
    if bins < 1 or len(values) < bins:
        raise ValueError(f"bins: expected 1 <= bins <= {len(values)} (the number of values), got {bins}")
    ordered = sorted(float(v) for v in values)
    if ordered[0] < low or ordered[-1] > high:
        raise ValueError(f"values: expected all within [{low}, {high}], got [{ordered[0]}, {ordered[-1]}]")
    inner = [ordered[round(b * len(ordered) / bins)] for b in range(1, bins)]
    return [low, *inner, high]


def bin_indices(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """The bin of each value: ``b`` with ``edges[b] <= v < edges[b + 1]`` (the top edge is closed)."""
    last = len(edges) - 2
    if last < 0:
        raise ValueError("edges: expected at least two edges")
    out = []
    for v in values:
        if not edges[0] <= v <= edges[-1]:
            raise ValueError(f"values: {v} lies outside [{edges[0]}, {edges[-1]}]")
        out.append(next((b for b in range(last) if v < edges[b + 1]), last))
    return out

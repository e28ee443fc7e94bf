"""Plain-text pieces of the benchmark reports: Markdown tables, per-bin cells, the machine line."""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence

import torch

from posereg.evaluation.metrics import summarise

__all__ = ["binned_cells", "machine_line", "markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (header, separator, one line per row).

    Raises:
        ValueError: a row with another number of cells than the header.
    """
    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"rows: expected {len(header)} cells per row (the header's), rows {bad} differ")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def binned_cells(errors: Sequence[float], bins: Sequence[int], n_bins: int) -> list[str]:
    """``summarise(...).cell()`` of the errors in each of ``n_bins`` bins (``'-'`` for an empty bin)."""
    return [summarise([e for e, b in zip(errors, bins, strict=True) if b == k]).cell() for k in range(n_bins)]


def machine_line(threads: int, elapsed_s: float) -> str:
    """``Machine: ...`` with the platform, Python, torch, threads, today's date and the run's duration."""
    return (f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}, torch "
            f"{torch.__version__}, {threads} threads; {datetime.date.today().isoformat()}; {elapsed_s:.0f} s in all.")  # fmt: skip

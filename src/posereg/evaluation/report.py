"""Plain-text pieces of the benchmark reports: Markdown tables, per-bin cells, the machine line,
and writing a report without losing its hand-written reading."""

from __future__ import annotations

import datetime
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from posereg.evaluation.metrics import summarise

__all__ = ["binned_report", "READING_HEADING", "binned_cells", "machine_line", "markdown_table", "write_report"]

#: Heading prefix of the hand-written part of a report, which reruns keep (``write_report``).
READING_HEADING = "## Reading"


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


def write_report(path: str | Path, text: str) -> bool:
    """Write a generated Markdown report to ``path``, keeping the hand-written reading of the old one.

    Benchmark reports end with a section written by hand (a line starting with
    ``READING_HEADING``, to the end of the file). A rerun regenerates the tables above it; the
    old reading is appended to the new text instead of being lost, to be checked against the new
    numbers, and a line on stderr says so. ``text`` itself must not contain a reading section.

    Returns:
        Whether a reading section was kept.

    Raises:
        ValueError: ``text`` already has a reading section.
    """
    if any(line.startswith(READING_HEADING) for line in text.splitlines()):
        raise ValueError(f"text: expected a generated report without a '{READING_HEADING}' section")
    path = Path(path)
    old = path.read_text().splitlines() if path.is_file() else []
    start = next((i for i, line in enumerate(old) if line.startswith(READING_HEADING)), None)
    kept = [] if start is None else ["", *old[start:]]
    from posereg._files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text.rstrip("\n") + "\n" + ("\n".join(kept) + "\n" if kept else ""))
    if start is not None:
        print(f"kept the hand-written reading of {path}: check it against the new numbers", file=sys.stderr)
    return start is not None


def binned_report(title: str, command: str, machine: str, setting: str, edges: Sequence[float], body: Sequence[str],
                  paper: Sequence[str], notes: Sequence[str] = ()) -> str:  # fmt: skip
    """A benchmark report of errors by rotation bin: title, command, machine, the setting, the bin
    edges (degrees), ``body`` (tables and timings), the published numbers and ``notes`` after them."""
    return "\n".join([
        f"# {title}",
        "",
        f"Command: `{command}`" if command else "",
        machine,
        "",
        setting,
        f"Bin edges (equal counts): {', '.join(f'{e:.1f}' for e in edges)} degrees.",
        "Cells: mean +- std (median) rotation error in degrees.",
        "",
        *body,
        "Published numbers for reference (different data: real subjects, their networks and settings):",
        "",
        *paper,
        *notes,
    ])  # fmt: skip

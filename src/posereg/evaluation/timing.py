"""Running several methods over the same cases, timing each call (what the benchmarks share)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

__all__ = ["run_timed", "select_methods"]

C = TypeVar("C")
O = TypeVar("O")
M = TypeVar("M")


def select_methods(methods: Mapping[str, M], names: Sequence[str] | None) -> dict[str, M]:
    """The methods called ``names`` (all of them when ``names`` is empty or None), in table order.

    Raises:
        ValueError: a name that is not a method, listing the available ones.
    """
    if not names:
        return dict(methods)
    unknown = sorted(set(names) - set(methods))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; available: {sorted(methods)}")
    return {k: v for k, v in methods.items() if k in names}


def run_timed(
    methods: Mapping[str, Callable[[C], O]], cases: Sequence[C], *, progress: bool = True
) -> dict[str, tuple[list[O], list[float]]]:
    """Every method on every case, one method after the other, with a progress bar per method.

    Returns:
        ``{method: (outputs, seconds)}``, both aligned with ``cases``; seconds are wall-clock
        time of each call (``time.perf_counter``).
    """
    from tqdm import tqdm

    results: dict[str, tuple[list[O], list[float]]] = {}
    for name, method in methods.items():
        outputs, seconds = [], []
        for case in tqdm(cases, desc=name, file=sys.stderr, disable=not progress):
            tick = time.perf_counter()
            outputs.append(method(case))
            seconds.append(time.perf_counter() - tick)
        results[name] = (outputs, seconds)
    return results

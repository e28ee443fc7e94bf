"""Running methods over cases with timings (the benchmarks' shared loop)."""

from __future__ import annotations

import time

import pytest

from posereg.evaluation.timing import run_timed, select_methods


def test_select_methods_keeps_table_order_and_rejects_unknown_names() -> None:
    methods = {"a": 1, "b": 2, "c": 3}
    assert select_methods(methods, None) == methods and select_methods(methods, []) == methods
    assert list(select_methods(methods, ["c", "a"])) == ["a", "c"]
    with pytest.raises(ValueError, match=r"unknown methods \['d'\]; available: \['a', 'b', 'c'\]"):
        select_methods(methods, ["a", "d"])


def test_run_timed_aligns_outputs_and_times_with_cases() -> None:
    def slow_square(x: int) -> int:
        time.sleep(0.02 if x == 2 else 0.0)
        return x * x

    results = run_timed({"square": slow_square, "neg": lambda x: -x}, [1, 2, 3], progress=False)
    assert list(results) == ["square", "neg"]
    outputs, seconds = results["square"]
    assert outputs == [1, 4, 9] and results["neg"][0] == [-1, -2, -3]
    assert len(seconds) == 3 and seconds[1] >= 0.02 > seconds[0]

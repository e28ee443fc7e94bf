"""Evaluation metrics and rotation-magnitude bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg.evaluation import (
    bin_indices,
    equal_count_edges,
    rotation_error_deg,
    summarise,
    translation_error_mm,
    verdict_counts,
)


def test_verdict_counts_on_a_hand_counted_example():
    errors = [2.0, 10.0, 10.5, 20.0, 20.5, 95.0, 5.0]
    accepted = [True, False, True, True, True, False, False]
    counts = verdict_counts(errors, accepted)
    # accepted: 2, 10.5, 20, 20.5; over 20 among them: 20.5 (20 is not over); within 10: 2, 10, 5, of which 10 and 5 flagged
    assert (counts.cases, counts.accepted, counts.false_accepts, counts.good, counts.false_rejects) == (7, 4, 1, 3, 2)


@given(st.lists(st.tuples(st.floats(0, 180), st.booleans()), max_size=40),
       st.floats(0, 90), st.floats(0, 90))  # fmt: skip
def test_verdict_counts_agree_with_numpy_masks(pairs, a, b):
    good_deg, bad_deg = sorted((a, b))
    e = np.array([p[0] for p in pairs], dtype=float)
    ok = np.array([p[1] for p in pairs], dtype=bool)
    counts = verdict_counts(e.tolist(), ok.tolist(), bad_deg=bad_deg, good_deg=good_deg)
    assert counts.cases == len(pairs) and counts.accepted == int(ok.sum())
    assert counts.false_accepts == int((ok & (e > bad_deg)).sum())
    assert counts.good == int((e <= good_deg).sum()) and counts.false_rejects == int((~ok & (e <= good_deg)).sum())


@pytest.mark.parametrize(("errors", "accepted", "kwargs", "message"), [
    ([1.0, 2.0], [True], {}, "one verdict per error"),
    ([float("nan")], [True], {}, "finite"),
    ([1.0], [True], {"good_deg": 30.0, "bad_deg": 20.0}, "good_deg <= bad_deg"),
])  # fmt: skip
def test_verdict_counts_reject_bad_input(errors, accepted, kwargs, message):
    with pytest.raises(ValueError, match=message):
        verdict_counts(errors, accepted, **kwargs)


def test_rotation_error_matches_scipy_in_degrees():
    a = Rotation.random(50, random_state=1)
    b = Rotation.random(50, random_state=2)
    expected = np.degrees((a.inv() * b).magnitude())
    ours = rotation_error_deg(torch.from_numpy(a.as_matrix()), torch.from_numpy(b.as_matrix()))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-9)


def test_translation_error_is_euclidean_in_mm():
    assert float(translation_error_mm(torch.tensor([3.0, 4.0, 0.0]), torch.zeros(3))) == 5.0


def test_summary_statistics_and_success_rate():
    s = summarise([1.0, 2.0, 3.0, 30.0], threshold=10.0)
    assert (s.count, s.mean, s.median, s.maximum, s.success_rate) == (4, 9.0, 2.5, 30.0, 0.75)
    assert math.isclose(s.std, float(np.std([1, 2, 3, 30])))
    assert s.cell() == "9.0 +- 12.1 (2.5)"
    assert summarise([]).cell() == "-" and summarise([]).count == 0
    with pytest.raises(ValueError, match="finite"):
        summarise([1.0, float("nan")])


@given(st.lists(st.floats(0.0, 180.0), min_size=6, max_size=200), st.integers(1, 6))
def test_equal_count_bins_hold_nearly_equal_counts(values, bins):
    edges = equal_count_edges(values, bins)
    assert edges[0] == 0.0 and edges[-1] == 180.0 and edges == sorted(edges)
    index = bin_indices(values, edges)
    for v, b in zip(values, index, strict=True):
        assert edges[b] <= v and (v < edges[b + 1] or b == bins - 1)
    if len(set(values)) == len(values):  # no ties: each bin within one of n / bins
        counts = np.bincount(index, minlength=bins)
        assert counts.max() - counts.min() <= 1 + len(values) % bins


def test_bins_reject_bad_input():
    with pytest.raises(ValueError, match="bins"):
        equal_count_edges([1.0, 2.0], bins=3)
    with pytest.raises(ValueError, match="within"):
        equal_count_edges([1.0, 2.0, 200.0], bins=2)
    with pytest.raises(ValueError, match="outside"):
        bin_indices([190.0], [0.0, 90.0, 180.0])

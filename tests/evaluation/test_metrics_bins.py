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
)


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

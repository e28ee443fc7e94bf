"""Synthetic registration cases and figures."""

from __future__ import annotations

import pytest
import torch

from posereg.data import move_volume, preprocess_intensity
from posereg.evaluation import rotation_error_deg, synthetic_cases
from posereg.evaluation.plots import binned_boxplot, registration_slices


@pytest.fixture(scope="module")
def cases(small_atlas):
    return synthetic_cases(small_atlas, subjects=2, rotations=3, seed=5, angles_deg=[0.0, 90.0, 180.0])


def test_cases_have_the_requested_angles_and_are_reproducible(small_atlas, cases):
    assert len(cases) == 6 and [c.subject for c in cases] == [0, 0, 0, 1, 1, 1]
    angles = [float(rotation_error_deg(c.R, torch.eye(3, dtype=torch.float64))) for c in cases]
    assert angles == pytest.approx([0.0, 90.0, 180.0] * 2, abs=1e-6)
    assert all(float(c.t.abs().max()) <= 10.0 for c in cases)
    again = synthetic_cases(small_atlas, subjects=2, rotations=3, seed=5, angles_deg=[0.0, 90.0, 180.0])
    assert all(torch.equal(a.moving.data, b.moving.data) for a, b in zip(cases, again, strict=True))
    other = synthetic_cases(small_atlas, subjects=1, rotations=3, seed=6, angles_deg=[0.0, 90.0, 180.0])
    assert not torch.equal(other[1].R, cases[1].R)


def test_a_case_is_its_subject_moved_by_the_true_transform(small_atlas, cases):
    from posereg.data import ScannerVariation, Split, subject_seed, synthesize_subject

    plain = synthetic_cases(small_atlas, subjects=1, rotations=3, seed=5, angles_deg=[0.0, 90.0, 180.0],
                            scanner=ScannerVariation(crop=0.0, noise=0.0))  # fmt: skip
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 0)))
    for case in plain:
        expected = preprocess_intensity(move_volume(subject, case.R, case.t)[0, 0])
        torch.testing.assert_close(case.moving.data, expected)


def test_case_arguments_are_checked(small_atlas):
    with pytest.raises(ValueError, match="angles_deg"):
        synthetic_cases(small_atlas, 1, 2, angles_deg=[10.0])
    with pytest.raises(ValueError, match="positive"):
        synthetic_cases(small_atlas, 0, 2)


def test_figures_are_written(tmp_path, small_atlas, cases):
    errors = {"a": [1.0, 2.0, 30.0, 4.0, 5.0, 6.0], "b": [2.0, 3.0, 4.0, 50.0, 6.0, 7.0]}
    binned_boxplot(tmp_path / "box.png", errors, [0, 0, 1, 1, 2, 2], [0.0, 60.0, 120.0, 180.0])
    rows = [(f"case {i}", c.moving, c.moving) for i, c in enumerate(cases[:2])]
    registration_slices(tmp_path / "slices.png", small_atlas.image, rows, small_atlas.mask)
    assert (tmp_path / "box.png").stat().st_size > 5_000 and (tmp_path / "slices.png").stat().st_size > 5_000

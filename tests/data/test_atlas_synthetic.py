"""The MNI152 atlas, synthetic subjects and scanner effects."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from posereg import geometry as g
from posereg.data import rigid_resample
from posereg.data.atlas import Contrast, load_mni152
from posereg.data.synthetic import (
    ScannerVariation,
    Split,
    SubjectVariation,
    scanner_effects,
    subject_seed,
    synthesize_subject,
)
from posereg.registration import principal_axes_alignment


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_default_grid_and_intensities(small_atlas):
    image, mask = small_atlas.image, small_atlas.mask
    assert image.shape == (40, 40, 40)
    torch.testing.assert_close(image.spacing, torch.full((3,), 4.8, dtype=torch.float64))
    assert 0.0 <= image.data.min().item() and image.data.max().item() <= 1.0
    assert 0.15 < mask.float().mean().item() < 0.4  # a brain in a 192 mm box
    assert image.data[~mask].abs().mean() < 0.02
    # Centred on the brain: its centre of mass sits near the grid centre, in mm.
    assert abs(float(image.centre[0])) < 2.0  # MNI's midline is x = 0


def test_t2_like_contrast_has_bright_csf_and_dark_white_matter():
    t1 = load_mni152(Contrast.T1, resolution_mm=2)
    t2 = load_mni152(Contrast.T2, resolution_mm=2)
    from nilearn import datasets

    wm_p = torch.from_numpy(datasets.load_mni152_wm_template(resolution=2).get_fdata()).float()
    gm_p = torch.from_numpy(datasets.load_mni152_gm_template(resolution=2).get_fdata()).float()
    wm, gm = wm_p > 0.9, gm_p > 0.9
    csf = t2.mask & ((t2.mask.float() - gm_p - wm_p) > 0.9)
    assert csf.sum() > 100
    assert t1.image.data[wm].mean() > t1.image.data[gm].mean() > t1.image.data[csf].mean()  # T1
    assert t2.image.data[csf].mean() > t2.image.data[gm].mean() > t2.image.data[wm].mean()  # T2-like
    with pytest.raises(ValueError, match="resolution_mm"):
        load_mni152(resolution_mm=3)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 1000))
def test_train_and_test_seeds_never_meet(i, j, base):
    assert subject_seed(Split.TRAIN, i, base) != subject_seed(Split.TEST, j, base)


def test_subjects_are_seeded_varied_and_still_brains(small_atlas):
    make = lambda seed: synthesize_subject(small_atlas, torch.Generator().manual_seed(seed)).data  # noqa: E731
    a, a_again, b = make(0), make(0), make(1)
    assert torch.equal(a, a_again)
    assert not torch.allclose(a, b)
    atlas = small_atlas.image.data
    for subject in (a, b):
        assert 0.6 < _ncc(subject, atlas) < 0.98  # different, but recognisably the atlas
    none = SubjectVariation(deformation_mm=0.0, scale=(1.0, 1.0), stretch=0.0, bias=0.0, gamma=(1.0, 1.0))
    identical = synthesize_subject(small_atlas, torch.Generator().manual_seed(2), none).data
    torch.testing.assert_close(identical, atlas, atol=1e-5, rtol=0)


def test_scanner_effects_crop_and_add_rician_noise(small_atlas):
    data = small_atlas.image.data
    out = scanner_effects(data, torch.Generator().manual_seed(3), ScannerVariation(crop=0.3, noise=0.05))
    assert torch.equal(out, scanner_effects(data, torch.Generator().manual_seed(3), ScannerVariation(crop=0.3, noise=0.05)))
    background = out[~small_atlas.mask]
    assert 0.03 < background.mean().item() < 0.1 and background.min().item() >= 0  # Rician: positive
    clean = scanner_effects(data, torch.Generator().manual_seed(4), ScannerVariation(crop=0.0, noise=0.0))
    torch.testing.assert_close(clean, data)
    # Over several draws, some faces lose brain (cropping).
    lost = [
        (scanner_effects(data, torch.Generator().manual_seed(s), ScannerVariation(crop=0.3, noise=0.0)) == 0)[small_atlas.mask].any()
        for s in range(10)
    ]
    assert any(lost) and not all(lost)


def test_principal_axes_are_exact_on_the_atlas_but_not_on_subjects(small_atlas):
    """The issue's realism requirement: moments alignment must not be trivially exact."""
    c = small_atlas.image.centre
    exact, synthetic = [], []
    for i in range(6):
        gen = torch.Generator().manual_seed(50 + i)
        R = g.random_rotation((), generator=gen, dtype=torch.float64)
        copy = rigid_resample(small_atlas.image.data, small_atlas.image.affine, R.T, torch.zeros(3, dtype=torch.float64), c)[0, 0]
        R_hat, _ = principal_axes_alignment(small_atlas.image, small_atlas.image.with_data(copy))
        exact.append(math.degrees(g.geodesic_distance(R_hat, R)))
        subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, i)))
        scan = rigid_resample(subject.data, subject.affine, R.T, torch.zeros(3, dtype=torch.float64), c)[0, 0]
        scan = scanner_effects(scan, gen)
        R_hat, _ = principal_axes_alignment(small_atlas.image, small_atlas.image.with_data(scan))
        synthetic.append(math.degrees(g.geodesic_distance(R_hat, R)))
    assert max(exact) < 3.0, exact
    assert sorted(synthetic)[len(synthetic) // 2] > 5.0, synthetic


def test_rician_noise_on_background_is_rayleigh_distributed():
    from posereg.data import rician_noise

    noisy = rician_noise(torch.zeros(200_000, dtype=torch.float64), 0.05, torch.Generator().manual_seed(0))
    assert abs(float(noisy.mean()) - 0.05 * math.sqrt(math.pi / 2)) < 5e-4  # Rayleigh mean sigma sqrt(pi/2)
    assert float(noisy.min()) >= 0.0

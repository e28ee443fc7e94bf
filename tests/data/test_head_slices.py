"""Slices of synthetic heads: labels in the frames of ``posereg.data.slices``, reproducibility, bad input."""

from __future__ import annotations

import pytest
import torch

from posereg import geometry as g
from posereg.data.head_slices import head_slice_batch
from posereg.data.head_synthesis import HeadVariation
from posereg.data.slices import SliceGeometry, cut_slices

# No anatomy, appearance or scanner variation: the slice is the atlas brain's, cut at its label.
PLAIN = HeadVariation(scale=(1.0, 1.0), deformation_mm=0.0, strip_probability=1.0, strip_margin_mm=(0.0, 0.0),
                      fov_half_mm=(400.0, 400.0), tight_probability=0.0, off_centre_mm=0.0, bias=0.0,
                      gamma=(1.0, 1.0), noise=(0.0, 0.0), texture=0.0, blur_voxels=(0.0, 0.0),
                      thick_probability=0.0)  # fmt: skip


def _geometry(head) -> SliceGeometry:  # noqa: ANN001
    image = head.atlas.image
    return SliceGeometry(image.shape[0], float(image.spacing[0]), image.shape[0])


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return abs(float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1]))


def test_slices_are_the_atlas_cut_at_their_labels(small_head):
    """The labels (R, k) cut the atlas where the slice was drawn; R^T (the frame mistake) does not."""
    geometry = _geometry(small_head)
    b = head_slice_batch(small_head, 12, torch.Generator().manual_seed(3), PLAIN, geometry=geometry,
                         index_range=geometry.middle_indices(0.5), in_plane_shift_mm=0.0)  # fmt: skip
    atlas = small_head.atlas.image
    R = b["rotation"].double()
    right = [_corr(b["image"][i, 0], cut_slices(atlas, R[i], b["slice_index"][i], geometry)) for i in range(12)]
    wrong = [_corr(b["image"][i, 0], cut_slices(atlas, R[i].mT, b["slice_index"][i], geometry)) for i in range(12)]
    # Contrast families are random (T2 inverts, "arbitrary" scrambles): look at the typical sample.
    assert float(torch.tensor(right).median()) > 0.7, right
    assert float(torch.tensor(right).median()) > float(torch.tensor(wrong).median()) + 0.2, (right, wrong)


def test_an_in_plane_shift_moves_the_content_but_not_the_plane(small_head):
    """Same seed with and without the shift: the labels agree, the image moves within the plane."""
    geometry = _geometry(small_head)
    kwargs = {"geometry": geometry, "index_range": geometry.middle_indices(0.5)}
    still = head_slice_batch(small_head, 4, torch.Generator().manual_seed(4), PLAIN, in_plane_shift_mm=0.0, **kwargs)
    moved = head_slice_batch(small_head, 4, torch.Generator().manual_seed(4), PLAIN, in_plane_shift_mm=30.0, **kwargs)
    torch.testing.assert_close(still["rotation"], moved["rotation"])
    torch.testing.assert_close(still["slice_index"], moved["slice_index"])
    assert not torch.allclose(still["image"], moved["image"], atol=0.05)


def test_batches_are_reproducible_bounded_and_in_range(small_head):
    geometry = _geometry(small_head)
    low, high = geometry.middle_indices(0.66)
    kwargs = {"geometry": geometry, "index_range": (low, high), "x_range_deg": (-30.0, 30.0), "y_range_deg": (-20.0, 20.0)}
    a = head_slice_batch(small_head, 16, torch.Generator().manual_seed(5), **kwargs)
    b = head_slice_batch(small_head, 16, torch.Generator().manual_seed(5), **kwargs)
    c = head_slice_batch(small_head, 16, torch.Generator().manual_seed(6), **kwargs)
    s = geometry.size
    assert a["image"].shape == (16, 1, s, s) and a["image"].dtype == torch.float32
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert not torch.equal(a["image"], c["image"])
    assert float(a["image"].min()) >= 0.0 and float(a["image"].max()) <= 1.0
    assert bool(((a["slice_index"] >= low) & (a["slice_index"] < high)).all())
    euler = torch.rad2deg(g.matrix_to_euler(a["rotation"].double(), "xyz"))
    assert bool((euler[:, 0].abs() <= 30 + 1e-3).all() and (euler[:, 1].abs() <= 20 + 1e-3).all()), euler
    torch.testing.assert_close(g.rotvec_to_matrix(a["rotvec"]), a["rotation"], atol=1e-5, rtol=0)


def test_thick_slices_average_the_slab(small_head):
    """Same seed, thin and 6 mm thick: the same labels; the thick slice is the smoother one through the plane."""
    geometry = _geometry(small_head)
    kwargs = {"geometry": geometry, "index_range": geometry.middle_indices(0.5), "in_plane_shift_mm": 0.0}
    common = {f: getattr(PLAIN, f) for f in ("scale", "deformation_mm", "strip_probability", "strip_margin_mm",
                                              "fov_half_mm", "tight_probability", "off_centre_mm", "bias", "gamma",
                                              "noise", "texture", "blur_voxels")}  # fmt: skip
    thin = head_slice_batch(small_head, 6, torch.Generator().manual_seed(7), HeadVariation(**common), **kwargs)
    thick = head_slice_batch(small_head, 6, torch.Generator().manual_seed(7),
                             HeadVariation(**common, thick_probability=1.0, slice_mm=(12.0, 12.0)), **kwargs)  # fmt: skip
    torch.testing.assert_close(thin["rotation"], thick["rotation"])
    differs = (thin["image"] - thick["image"]).abs().flatten(1).mean(1)
    assert bool((differs > 1e-3).all()), differs


@pytest.mark.parametrize("bad", [{"index_range": (5, 200)}, {"index_range": (10, 10)}, {"n": 0}, {"in_plane_shift_mm": -1.0}])
def test_bad_arguments_are_refused(small_head, bad):
    kwargs = {"n": 2, **bad}
    n = kwargs.pop("n")
    with pytest.raises(ValueError):
        head_slice_batch(small_head, n, torch.Generator().manual_seed(0), geometry=_geometry(small_head), **kwargs)

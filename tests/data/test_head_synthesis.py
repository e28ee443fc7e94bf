"""Synthetic heads: the model's anatomy, the labels' frames, reproducibility, artefacts, batches."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from posereg import geometry as g
from posereg.data import rigid_resample
from posereg.data.head_contrast import (
    CONTRAST_FAMILIES,
    LABELS,
    batched_blur,
    draw_label_means,
    normalise_batch,
    rician_noise_batch,
)
from posereg.data.head_model import TISSUES, load_head_model, save_head_model
from posereg.data.head_synthesis import HeadVariation, correction_batch, pose_batch, synthetic_scans
from posereg.data.volume import normalize_intensity, robust_range, threshold_mask

F64 = torch.float64
# No random anatomy, appearance or scanner: the head is the atlas's, with fixed layers.
PLAIN = HeadVariation(scale=(1.0, 1.0), deformation_mm=0.0, strip_probability=1.0, strip_margin_mm=(0.0, 0.0),
                      fov_half_mm=(400.0, 400.0), tight_probability=0.0, off_centre_mm=0.0, bias=0.0,
                      gamma=(1.0, 1.0), noise=(0.0, 0.0), texture=0.0, blur_voxels=(0.0, 0.0),
                      thick_probability=0.0)  # fmt: skip


def test_head_model_tissues_and_distance(small_head):
    assert small_head.tissue.shape[0] == len(TISSUES)
    total = small_head.tissue.sum(0)
    inside = small_head.distance < -small_head.spacing
    assert torch.allclose(total[inside], torch.ones(()), atol=1e-4)  # probabilities in the brain
    assert float(total[small_head.distance > small_head.spacing].abs().max()) == 0.0
    volumes_ml = small_head.tissue.sum((1, 2, 3)) * small_head.spacing**3 / 1000
    # An adult brain: about 0.5 L of white matter and 0.6-0.9 L of grey matter (MNI152 is ~1.5 L).
    assert 300 < float(volumes_ml[0]) < 900 and 400 < float(volumes_ml[1] + volumes_ml[2]) < 1300
    # The brain's centroid lies near the MNI origin (within a few cm).
    assert float(small_head.brain_points.mean(0).norm()) < 40


def test_head_model_file_round_trip(small_head, tmp_path):
    save_head_model(small_head, tmp_path / "head.pt")
    loaded = load_head_model(tmp_path / "head.pt")
    torch.testing.assert_close(loaded.tissue, small_head.tissue, atol=1e-3, rtol=0)  # float16 storage
    torch.testing.assert_close(loaded.atlas.image.data, small_head.atlas.image.data)
    with pytest.raises(FileNotFoundError):
        load_head_model(tmp_path / "none.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="head-model"):
        load_head_model(tmp_path / "bad.pt")


def test_label_means_follow_each_family(small_head):
    gen = torch.Generator().manual_seed(0)
    means, family = draw_label_means(2000, gen)
    ranges = torch.tensor(list(CONTRAST_FAMILIES.values()))
    low, high = ranges[family, :, 0], ranges[family, :, 1]
    assert bool(((means[:, 0] >= low[:, 0]) & (means[:, 0] <= high[:, 0])).all())  # air as drawn
    torch.testing.assert_close(means[:, 1:].amax(1), torch.ones(2000))  # tissues scaled to a brightest of 1
    share = torch.bincount(family, minlength=len(CONTRAST_FAMILIES)).double() / 2000
    torch.testing.assert_close(share, torch.tensor([0.3, 0.2, 0.1, 0.1, 0.3], dtype=F64), atol=0.04, rtol=0)
    wm, gm, csf = (LABELS.index(k) for k in ("white_matter", "cortical_gm", "sulcal_csf"))
    t1, t2 = family == 0, family == 1
    assert bool((means[t1, wm] > means[t1, gm]).all() and (means[t1, gm] > means[t1, csf]).all())
    assert bool((means[t2, csf] > means[t2, gm]).all() and (means[t2, gm] > means[t2, wm]).all())


def test_batched_blur_matches_a_separable_reference():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 12, 10, 14, generator=gen)
    sigma = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.5, 0.0]])
    out = batched_blur(x, sigma, radius=6)
    from scipy import ndimage

    for i in range(2):
        ref = ndimage.gaussian_filter(x[i].numpy(), sigma[i].tolist(), mode="nearest", truncate=6 / 2.0 * 2)
        torch.testing.assert_close(out[i], torch.from_numpy(ref), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="sigma_voxels"):
        batched_blur(x, sigma[:1])


def test_normalise_batch_is_preprocess_intensity_per_sample():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 16, 16, 16, generator=gen) * torch.tensor([1.0, 50.0, 3.0])[:, None, None, None]
    x[:, :4] = 0.0
    out = normalise_batch(x)
    for i in range(3):
        ref = normalize_intensity(x[i], intensity_range=robust_range(x[i], threshold_mask(x[i])))
        torch.testing.assert_close(out[i], ref, atol=2e-3, rtol=0)
    assert float(normalise_batch(torch.zeros(1, 4, 4, 4)).abs().max()) == 0.0


def test_rician_noise_has_the_requested_level():
    gen = torch.Generator().manual_seed(3)
    out = rician_noise_batch(torch.full((2, 40, 40, 40), 5.0), torch.tensor([0.1, 0.5]), gen)
    std = out.reshape(2, -1).std(1)
    torch.testing.assert_close(std, torch.tensor([0.1, 0.5]), atol=0.01, rtol=0)


def test_plain_synthesis_is_the_atlas_anatomy_in_the_atlas_frame(small_head):
    """With no variation and identity motion, a T1 brain rendered on the atlas grid correlates with the atlas."""
    atlas = small_head.atlas
    gen = torch.Generator().manual_seed(4)
    corr = []
    for _ in range(6):  # families are random: look at every sample's correlation sign and size
        b = correction_batch(small_head, 1, gen, PLAIN, max_angle_deg=1e-6, max_translation_mm=0.0)
        image = b["image"][0, 0][atlas.mask]
        corr.append(float(torch.corrcoef(torch.stack([image, atlas.image.data[atlas.mask].float()]))[0, 1]))
    assert max(abs(c) for c in corr) > 0.7, corr


def test_labels_follow_the_motion(small_head):
    """The rendered scan under (R, t) is the unmoved rendering moved by (R, t) about the atlas centre."""
    atlas = small_head.atlas
    R = g.rotvec_to_matrix(torch.tensor([0.4, -1.9, 0.8], dtype=F64))
    t = torch.tensor([6.0, -4.0, 3.0], dtype=F64)
    from posereg.data.head_synthesis import draw_heads, render_heads

    gen = torch.Generator().manual_seed(5)
    draw = draw_heads(small_head, 1, gen, PLAIN, torch.device("cpu"))
    x = atlas.image.world_coordinates().reshape(1, -1, 3).float()
    still = render_heads(small_head, draw, torch.eye(3)[None], torch.zeros(1, 3), x, torch.Generator().manual_seed(0))
    moved = render_heads(small_head, draw, R[None].float(), t[None].float(), x, torch.Generator().manual_seed(0))
    shape = atlas.image.shape
    # Move the still rendering with posereg's resampling: moving(y) = still(R^T (y - c - t) + c).
    def corr_with_still_moved_by(Rm: torch.Tensor) -> float:
        Rt = Rm.mT
        expected = rigid_resample(still.reshape(shape).double(), atlas.image.affine, Rt, -(Rt @ t), atlas.image.centre)[0, 0]
        inside = atlas.mask & (expected > 0)
        return float(torch.corrcoef(torch.stack([moved.reshape(shape)[inside].double(), expected[inside]]))[0, 1])

    # Point samples of hard label edges on a 4.8 mm grid against an interpolated copy: not 1, but
    # far above the other direction of the same rotation (the frame mistake this guards against).
    right, wrong = corr_with_still_moved_by(R), corr_with_still_moved_by(R.mT)
    assert right > 0.8 and right > wrong + 0.3, (right, wrong)


def test_batches_are_reproducible_bounded_and_varied(small_head):
    a = pose_batch(small_head, 3, torch.Generator().manual_seed(7))
    b = pose_batch(small_head, 3, torch.Generator().manual_seed(7))
    c = pose_batch(small_head, 3, torch.Generator().manual_seed(8))
    shape = small_head.atlas.image.shape
    assert a["image"].shape == (3, 1, *shape) and a["image"].dtype == torch.float32
    torch.testing.assert_close(a["image"], b["image"])
    assert not torch.equal(a["image"], c["image"])
    assert float(a["image"].min()) >= 0.0 and float(a["image"].max()) <= 1.0
    torch.testing.assert_close(g.rotvec_to_matrix(a["rotvec"]), a["rotation"], atol=1e-5, rtol=0)
    assert float(a["translation"].abs().max()) <= 20.0
    corr = correction_batch(small_head, 4, torch.Generator().manual_seed(9), max_angle_deg=30.0)
    angles = torch.rad2deg(g.geodesic_distance(corr["rotation"], torch.eye(3).expand(4, 3, 3)))
    assert bool((angles <= 30.0 + 1e-4).all()) and corr["image"].shape == (4, 2, *shape)
    torch.testing.assert_close(corr["image"][:, 1], small_head.atlas.image.data.float().expand(4, *shape))


def test_whole_heads_have_skull_and_stripped_brains_do_not(small_head):
    """Same seeds, same anatomy: only the stripping differs, and it removes litres of head tissue."""
    # Noise-free, so that the foreground threshold measures tissue, not background noise.
    common = {"fov_half_mm": (400.0, 400.0), "tight_probability": 0.0, "noise": (0.0, 0.0), "strip_margin_mm": (0.0, 0.0)}
    litres = {}
    for p in (0.0, 1.0):
        vols, _, _ = synthetic_scans(small_head, 4, torch.Generator().manual_seed(10),
                                     HeadVariation(strip_probability=p, **common), shape=48, spacing=5.0,
                                     max_translation_mm=0.0)  # fmt: skip
        litres[p] = torch.tensor([float(threshold_mask(v.data).sum()) * 125.0 / 1e6 for v in vols])
    assert bool((litres[0.0] > litres[1.0] + 1.0).all()), litres
    assert bool((litres[1.0] > 1.0).all() and (litres[1.0] < 5.0).all()), litres  # a brain, scaled 0.85-1.15 per axis


def test_synthetic_scans_report_their_true_motion(small_head):
    gen = torch.Generator().manual_seed(11)
    vols, R, t = synthetic_scans(small_head, 2, gen, shape=32, spacing=6.0)
    assert len(vols) == 2 and R.shape == (2, 3, 3) and t.shape == (2, 3)
    torch.testing.assert_close(R @ R.mT, torch.eye(3, dtype=F64).expand(2, 3, 3), atol=1e-5, rtol=0)
    assert all(v.shape == (32, 32, 32) and math.isclose(float(v.spacing[0]), 6.0) for v in vols)


def test_trilinear_gathers_equal_grid_sample():
    """The compiler-friendly interpolation is grid_sample's (trilinear, border, align_corners), in and out of range."""
    from posereg.data.head_draws import sample_field
    from posereg.data.head_synthesis import _trilinear

    gen = torch.Generator().manual_seed(11)
    volume = torch.rand((6, 7, 9, 5), generator=gen)
    coords = 2.6 * torch.rand((3, 400, 3), generator=gen) - 1.3  # 15 % beyond each face
    corners = torch.tensor([[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -1.0, 0.5]]])
    for c in (coords, corners):
        expected = sample_field(volume[None].expand(c.shape[0], -1, -1, -1, -1), c)
        actual = _trilinear(volume.permute(1, 2, 3, 0).contiguous(), c)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_grid_rendering_interpolates_only_the_smooth_parts(small_head):
    """``_render_grid`` (warp and smooth fields on a coarse grid) renders what ``render_heads`` does at
    every voxel, up to label edges moved by the interpolated warp, and exactly without a warp."""
    from posereg.data.head_synthesis import _grid_points, _render_grid, draw_heads, render_heads

    n, shape, spacing = 2, small_head.atlas.image.shape[0], float(small_head.atlas.image.spacing[0])
    R = g.rotvec_to_matrix(torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]]))
    t = torch.tensor([[5.0, -3.0, 2.0], [-8.0, 0.0, 4.0]])
    centre = small_head.atlas.image.centre.float().expand(n, 3)
    for v, tolerance in ((PLAIN, 1e-4), (HeadVariation(), 0.02)):
        draw = draw_heads(small_head, n, torch.Generator().manual_seed(12), v, torch.device("cpu"))
        points = _grid_points(shape, spacing, centre)
        exact = render_heads(small_head, draw, R, t, points, torch.Generator().manual_seed(0)).reshape(n, -1)
        grid = _render_grid(small_head, draw, R, t, shape, spacing, centre, torch.Generator().manual_seed(0), False)
        difference = (grid.reshape(n, -1) - exact).abs()
        assert float(difference.mean()) < tolerance * float(exact.mean()) + 1e-6, (v is PLAIN, float(difference.mean()))


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_synthesis_draws_the_same_samples(small_head):
    """``compiled=True`` is an execution detail: the same generator gives the same batch."""
    eager = correction_batch(small_head, 2, torch.Generator().manual_seed(13))
    compiled = correction_batch(small_head, 2, torch.Generator().manual_seed(13), compiled=True)
    torch.testing.assert_close(compiled["image"], eager["image"], atol=1e-4, rtol=0)
    torch.testing.assert_close(compiled["rotation"], eager["rotation"])

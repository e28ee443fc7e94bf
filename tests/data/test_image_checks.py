"""Input checks: plausible headers, and images that look like anatomy rather than noise or nothing."""

import pytest
import torch

from posereg.data import Volume, load_mni152
from posereg.data.image_checks import ImageLimits, brain_image_problems, check_header, neighbour_correlation

MM2 = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))


def test_the_template_and_a_noisy_thick_sliced_copy_pass():
    template = load_mni152(resolution_mm=2).image
    assert brain_image_problems(template) == []
    g = torch.Generator().manual_seed(0)
    noisy = (template.data + 0.1 * torch.rand(template.shape, generator=g))[..., :90]
    thick = noisy.reshape(*noisy.shape[:2], 15, 6).mean(-1).repeat_interleave(6, dim=-1)  # 12 mm slices
    assert brain_image_problems(Volume(thick, template.affine)) == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [(lambda g: torch.full((64, 64, 64), 3.0), "constant"),
     (lambda g: torch.rand(64, 64, 64, generator=g), "no anatomical structure"),
     (lambda g: torch.randn(64, 64, 64, generator=g).abs(), "no anatomical structure"),
     (lambda g: torch.zeros(64, 64, 64).index_put_((torch.tensor([5]),) * 3, torch.tensor([9.0])), "nearly empty"),
     (lambda g: -torch.rand(64, 64, 64, generator=g), "no positive intensities")],
)  # fmt: skip
def test_non_anatomical_images_are_refused_with_the_reason(make, reason):
    problems = brain_image_problems(Volume(make(torch.Generator().manual_seed(1)), MM2))
    assert len(problems) == 1 and reason in problems[0]


def test_neighbour_correlation_matches_a_direct_computation():
    g = torch.Generator().manual_seed(2)
    data = torch.rand(10, 11, 12, generator=g, dtype=torch.float64)
    mask = torch.ones(10, 11, 12, dtype=torch.bool)
    expected = []
    for axis in range(3):
        a, b = data.narrow(axis, 0, data.shape[axis] - 1), data.narrow(axis, 1, data.shape[axis] - 1)
        expected.append(float(torch.corrcoef(torch.stack((a.flatten(), b.flatten())))[0, 1]))
    assert neighbour_correlation(data, mask) == pytest.approx(sum(expected) / 3, abs=1e-12)
    assert neighbour_correlation(data) == pytest.approx(sum(expected) / 3, abs=1e-12)  # no mask: every pair
    assert neighbour_correlation(data.float()[:, ::2]) == pytest.approx(neighbour_correlation(data[:, ::2], mask[:, ::2]),
                                                                          abs=1e-6)  # fmt: skip
    partial = mask.clone()
    partial[:, :, 6:] = False  # the masked path: pairs with both voxels in the mask only
    expected = []
    for axis in range(3):
        n = data[:, :, :6].shape[axis]
        a, b = data[:, :, :6].narrow(axis, 0, n - 1), data[:, :, :6].narrow(axis, 1, n - 1)
        expected.append(float(torch.corrcoef(torch.stack((a.flatten(), b.flatten())))[0, 1]))
    assert neighbour_correlation(data, partial) == pytest.approx(sum(expected) / 3, abs=1e-12)
    smooth = torch.arange(1000.0, dtype=torch.float64).reshape(10, 10, 10)
    assert neighbour_correlation(smooth, torch.ones(10, 10, 10, dtype=torch.bool)) > 0.99


@pytest.mark.parametrize(
    ("shape", "spacing", "message"),
    [((1000, 1000, 1000), (1.0, 1.0, 1.0), "more than posereg reads"),
     ((256, 256, 256), (1e-4, 1.0, 1.0), "voxel size"),
     ((256, 256, 256), (1.0, 1.0, 1e6), "voxel size"),
     ((256, 256, 10), (1.0, 1.0, 1.0), "field of view of 10 mm"),
     ((400, 400, 400), (4.0, 4.0, 4.0), "field of view of 1600 mm")],
)  # fmt: skip
def test_implausible_headers_are_refused(shape, spacing, message):
    with pytest.raises(ValueError, match=message):
        check_header(shape, spacing, "scan.nii", ImageLimits(min_extent_mm=20.0))


def test_plausible_headers_pass_and_limits_can_be_widened():
    for shape, spacing in (((256, 256, 256), (1.0, 1.0, 1.0)), ((512, 512, 40), (0.4, 0.4, 6.0)), ((64,) * 3, (3.0,) * 3)):
        check_header(shape, spacing, "scan.nii")
    check_header((1000, 1000, 1000), (0.2, 0.2, 0.2), "scan.nii", ImageLimits(max_voxels=10**9))

"""Synthetic heads drawn on a CUDA device, as training draws them there: slices cut at their
labels, batches reproducible from the device's generator, the compiled path equal to the eager
one. Skipped without CUDA; run by ``benchmarks/device_session.sh`` on a lent GPU."""

from __future__ import annotations

import pytest
import torch

from posereg.data.head_slices import head_slice_batch
from posereg.data.head_synthesis import correction_batch, pose_batch
from posereg.data.slices import cut_slices

from .test_head_slices import PLAIN, _corr, _geometry

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cuda_head(small_head):  # type: ignore[no-untyped-def]
    return small_head.to("cuda")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cuda").manual_seed(seed)


def test_slices_drawn_on_cuda_are_the_atlas_cut_at_their_labels(cuda_head, small_head):
    geometry = _geometry(small_head)
    b = head_slice_batch(cuda_head, 12, _gen(3), PLAIN, geometry=geometry, index_range=geometry.middle_indices(0.5),
                         in_plane_shift_mm=0.0)  # fmt: skip
    assert all(v.device.type == "cuda" for v in b.values())
    atlas = small_head.atlas.image
    R, k, image = b["rotation"].double().cpu(), b["slice_index"].cpu(), b["image"].cpu()
    right = [_corr(image[i, 0], cut_slices(atlas, R[i], k[i], geometry)) for i in range(12)]
    wrong = [_corr(image[i, 0], cut_slices(atlas, R[i].mT, k[i], geometry)) for i in range(12)]
    assert float(torch.tensor(right).median()) > 0.7, right
    assert float(torch.tensor(right).median()) > float(torch.tensor(wrong).median()) + 0.2, (right, wrong)


@pytest.mark.parametrize("sample", (head_slice_batch, pose_batch, correction_batch), ids=("slices", "pose", "correction"))
def test_batches_on_cuda_are_reproducible_and_bounded(cuda_head, sample):
    a, b, c = sample(cuda_head, 4, _gen(5)), sample(cuda_head, 4, _gen(5)), sample(cuda_head, 4, _gen(6))
    for key in a:
        assert a[key].device.type == "cuda" and bool(torch.isfinite(a[key]).all()), key
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    assert not torch.equal(a["image"], c["image"])
    assert float(a["image"].min()) >= 0.0 and float(a["image"].max()) <= 1.0


@pytest.mark.parametrize("sample", (head_slice_batch, correction_batch), ids=("slices", "correction"))
def test_compiled_synthesis_on_cuda_draws_the_same_samples(cuda_head, sample):
    eager, compiled = sample(cuda_head, 2, _gen(13)), sample(cuda_head, 2, _gen(13), compiled=True)
    torch.testing.assert_close(compiled["image"], eager["image"], atol=1e-4, rtol=0)
    torch.testing.assert_close(compiled["rotation"], eager["rotation"])

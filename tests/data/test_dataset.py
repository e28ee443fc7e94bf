"""On-the-fly rigid-pose dataset: reproducible items whose labels undo the motion."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import rigid_resample
from posereg.data.dataset import RigidPoseDataset, item_generator, move_volume, preprocess_intensity
from posereg.data.synthetic import Split, subject_seed, synthesize_subject


@pytest.fixture(scope="module")
def subjects(small_atlas):
    return [synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TRAIN, i))) for i in range(2)]


def test_items_are_reproducible_and_distinct(subjects):
    ds = RigidPoseDataset(subjects, 10, seed=7)
    a, b = ds[3], ds[3]
    assert all(torch.equal(a[k], b[k]) for k in ("image", "rotation", "translation"))
    assert not torch.equal(ds[4]["rotation"], a["rotation"])
    other = RigidPoseDataset(subjects, 10, seed=8)[3]
    assert not torch.equal(other["rotation"], a["rotation"])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["rotation"], a["rotation"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["rotation"], a["rotation"])
    assert a["image"].shape == (1, *subjects[0].shape) and a["image"].dtype == torch.float32
    assert 0.0 <= a["image"].min() and a["image"].max() <= 1.0


def test_labels_are_consistent(subjects):
    ds = RigidPoseDataset(subjects, 20, seed=1, max_translation_mm=12.0, scanner=None)
    for i in range(20):
        item = ds[i]
        R = item["rotation"].double()
        torch.testing.assert_close(g.rotvec_to_matrix(item["rotvec"].double()), R, atol=1e-5, rtol=0)
        torch.testing.assert_close(R.mT @ R, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
        assert item["translation"].abs().max() <= 12.0


def test_resampling_with_the_label_registers_the_item_back(subjects):
    """moving(T(x)) = subject(x): the label (R, t) is the fixed-to-moving transform."""
    subject = subjects[0]
    c = subject.centre
    R = g.rotvec_to_matrix(torch.tensor([0.4, -1.9, 0.7], dtype=torch.float64))
    t = torch.tensor([6.0, -4.0, 9.0], dtype=torch.float64)
    moving = move_volume(subject, R, t)[0, 0]
    back = rigid_resample(moving, subject.affine, R, t, c)[0, 0]
    # Compare inside a central ball, away from voxels that left the field of view.
    idx = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in subject.shape], indexing="ij"), -1)
    centre = (torch.tensor(subject.shape, dtype=torch.float64) - 1) / 2
    inner = (idx - centre).norm(dim=-1) < 12
    error = (back - subject.data)[inner].abs().mean() / subject.data[inner].abs().mean()
    assert error < 0.1
    wrong = rigid_resample(moving, subject.affine, R.mT, t, c)[0, 0]
    assert (wrong - subject.data)[inner].abs().mean() / subject.data[inner].abs().mean() > 3 * error


def test_default_rotations_are_haar(subjects):
    ds = RigidPoseDataset(subjects, 400, seed=2, scanner=None)
    gens = [item_generator(2, i) for i in range(400)]
    assert len({float(torch.rand((), generator=item_generator(2, i))) for i in range(400)}) == 400
    angles = torch.stack([g.geodesic_distance(ds.rotation_sampler(gen), torch.eye(3, dtype=torch.float64)) for gen in gens])
    # Haar: median angle about 126.5 degrees (density (1 - cos a) / pi); a uniform-angle sampler gives 90.
    assert 115 < math.degrees(angles.median().item()) < 138


def test_preprocess_and_bad_arguments(subjects):
    scaled = preprocess_intensity(subjects[0].data * 1000)
    torch.testing.assert_close(scaled, preprocess_intensity(subjects[0].data), atol=1e-5, rtol=0)
    assert scaled.max().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least one subject"):
        RigidPoseDataset([], 10, seed=0)
    with pytest.raises(ValueError, match="length"):
        RigidPoseDataset(subjects, 0, seed=0)
    with pytest.raises(ValueError, match="max_translation_mm"):
        RigidPoseDataset(subjects, 3, seed=0, max_translation_mm=-1.0)
    with pytest.raises(IndexError):
        RigidPoseDataset(subjects, 3, seed=0)[3]
    with pytest.raises(ValueError, match="seed, index, epoch"):
        item_generator(-1, 0)
    with pytest.raises(ValueError, match="epoch"):
        RigidPoseDataset(subjects, 3, seed=0).set_epoch(-1)


def test_epoch_sampler_carries_the_epoch_to_the_items(subjects):
    from torch.utils.data import DataLoader

    from posereg.data.dataset import EpochSampler

    ds = RigidPoseDataset(subjects, 4, seed=3, scanner=None)
    sampler = EpochSampler(4)
    loader = DataLoader(ds, sampler=sampler, batch_size=4)
    first = next(iter(loader))["rotation"]
    sampler.set_epoch(1)
    second = next(iter(loader))["rotation"]
    assert not torch.equal(first, second)
    ds.set_epoch(1)
    torch.testing.assert_close(torch.stack([ds[i]["rotation"] for i in range(4)]), second)
    shuffled = EpochSampler(4, shuffle=True)
    assert sorted(i for _, i in shuffled) == [0, 1, 2, 3]


def test_reference_channel_is_the_atlas(subjects, small_atlas):
    ds = RigidPoseDataset(subjects, 2, seed=0, reference=small_atlas.image)
    image = ds[0]["image"]
    assert image.shape == (2, *subjects[0].shape)
    torch.testing.assert_close(image[1], small_atlas.image.data)
    with pytest.raises(ValueError, match="reference"):
        RigidPoseDataset(subjects, 2, seed=0, reference=small_atlas.image.with_data(small_atlas.image.data[:-1]))


def test_preprocessing_with_a_known_range_equals_recomputing_it():
    from posereg.data import normalize_intensity, preprocess_intensity, scan_intensity_range

    gen = torch.Generator().manual_seed(0)
    data = torch.zeros(20, 20, 20)
    data[4:16, 4:16, 4:16] = 100 + 50 * torch.rand(12, 12, 12, generator=gen)
    data += 2 * torch.rand(data.shape, generator=gen)  # background noise below the threshold
    lo, hi = scan_intensity_range(data)
    assert 100 < lo < hi < 152  # the noise (below the threshold) does not set the range
    torch.testing.assert_close(preprocess_intensity(data, (lo, hi)), preprocess_intensity(data))
    with pytest.raises(ValueError, match="intensity_range"):
        normalize_intensity(data, intensity_range=(5.0, 5.0))

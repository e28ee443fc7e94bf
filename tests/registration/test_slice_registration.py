"""Slice-to-volume intensity registration (SVR): frames, and improvement from a nearby start."""

from __future__ import annotations

import pytest
import torch

from posereg import geometry as g
from posereg.data.slices import SliceGeometry, cut_slices, preprocess_slice
from posereg.registration.slice import register_slice, slice_as_volume

F64 = torch.float64


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def setup(small_atlas):
    geometry = SliceGeometry(40, 4.8, 40)
    R = g.rotvec_to_matrix(torch.tensor([0.5, -0.3, 1.2], dtype=F64))
    index = 22.0
    image = preprocess_slice(cut_slices(small_atlas.image, R, torch.tensor(index), geometry))
    return small_atlas, geometry, R, index, image


def test_a_start_at_the_true_pose_stays_there(setup):
    atlas, geometry, R, index, image = setup
    result = register_slice(atlas, image, geometry, initial=(R, index))
    # Within the metric's precision on 40 x 40 pixels of 4.8 mm (a frame error would be tens of degrees).
    assert float(torch.rad2deg(g.geodesic_distance(result.R, R))) < 2.0
    assert abs(result.index - index) < 0.5 and float(result.in_plane_mm.norm()) < 3.0


def test_svr_improves_a_nearby_start(setup):
    atlas, geometry, R, index, image = setup
    error = g.rotvec_to_matrix(torch.tensor([0.12, -0.1, 0.08], dtype=F64))  # about 10 degrees
    start_R, start_index = error @ R, index + 2.0
    result = register_slice(atlas, image, geometry, initial=(start_R, start_index))
    before = float(torch.rad2deg(g.geodesic_distance(start_R, R)))
    after = float(torch.rad2deg(g.geodesic_distance(result.R, R)))
    assert after < 0.5 * before, (before, after)
    assert abs(result.index - index) < abs(start_index - index)
    resliced = cut_slices(atlas.image, result.R, torch.tensor(result.index), geometry)
    started = cut_slices(atlas.image, start_R, torch.tensor(start_index), geometry)
    assert _ncc(resliced, image) > _ncc(started, image)


def test_slice_volume_frame_and_bad_input():
    v = slice_as_volume(torch.rand(5, 7), 2.0)
    assert v.shape == (5, 7, 1)
    torch.testing.assert_close(v.centre, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        slice_as_volume(torch.rand(5, 7, 2), 2.0)


class OracleSliceNet(torch.nn.Module):
    """Returns a fixed rotation vector and slice index, whatever the slice."""

    def __init__(self, R: torch.Tensor, index: float) -> None:
        super().__init__()
        self.v, self.k = g.matrix_to_rotvec(R).float(), float(index)

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.v.expand(x.shape[0], 3), torch.full((x.shape[0],), self.k)

    def to_matrix(self, v: torch.Tensor) -> torch.Tensor:
        return g.rotvec_to_matrix(v.double())


def test_the_locator_reports_the_network_and_refines_it(setup):
    from posereg.registration.slice import SliceLocator, slice_settings

    atlas, geometry, R, index, image = setup
    error = g.rotvec_to_matrix(torch.tensor([0.1, 0.05, -0.08], dtype=F64))
    network_only = SliceLocator(atlas, OracleSliceNet(error @ R, index + 1.5), geometry)(image)
    torch.testing.assert_close(network_only.R, error @ R, atol=1e-6, rtol=0)
    assert network_only.index == pytest.approx(index + 1.5)
    assert network_only.offset_mm == pytest.approx(float(geometry.offset_mm(index + 1.5)))
    torch.testing.assert_close(network_only.normal, (error @ R)[2])
    refined = SliceLocator(atlas, OracleSliceNet(error @ R, index + 1.5), geometry, refine=slice_settings())(image)
    assert set(refined.stages) == {"pose-net", "svr"}
    assert float(g.geodesic_distance(refined.R, R)) < float(g.geodesic_distance(error @ R, R))
    with pytest.raises(ValueError, match="expected a slice of shape"):
        SliceLocator(atlas, OracleSliceNet(R, index), geometry)(torch.rand(10, 10))


def test_stack_search_finds_the_slice_index_at_the_true_rotation(setup):
    from posereg.registration.slice import search_stack

    atlas, geometry, R, index, image = setup
    found = search_stack(atlas, image, R, geometry)
    assert found.index == index and found.indices.shape == found.ncc.shape == (geometry.stack,)
    assert float(found.ncc.max()) > 0.99 and float(found.ncc.min()) >= -1.0
    # A neighbouring slice scores less; a range that excludes the answer returns its best edge.
    assert float(found.ncc[int(index)]) > float(found.ncc[int(index) + 3])
    assert search_stack(atlas, image, R, geometry, (0, 15)).index == 14.0
    # Still close under a 6-degree rotation error (the network's typical error).
    near = g.rotvec_to_matrix(torch.tensor([0.06, -0.06, 0.05], dtype=F64)) @ R
    assert abs(search_stack(atlas, image, near, geometry).index - index) <= 1.0
    with pytest.raises(ValueError, match="indices"):
        search_stack(atlas, image, R, geometry, (10, 10))
    with pytest.raises(ValueError, match="expected shapes"):
        search_stack(atlas, image[:-1], R, geometry)


def test_the_locator_replaces_a_wrong_network_index_by_the_stack_search(setup):
    from posereg.registration.slice import SliceLocator

    atlas, geometry, R, index, image = setup
    located = SliceLocator(atlas, OracleSliceNet(R, index + 8.0), geometry, search=(5, 35))(image)
    assert set(located.stages) == {"pose-net", "stack search"} and set(located.seconds) == set(located.stages)
    assert located.stages["pose-net"][1] == pytest.approx(index + 8.0)
    assert located.index == index
    with pytest.raises(ValueError, match="search"):
        SliceLocator(atlas, OracleSliceNet(R, index), geometry, search=(0, geometry.stack + 1))


def test_slice_test_cases_are_cut_at_their_labels(small_atlas):
    from posereg.data import Split, subject_seed, synthesize_subject
    from posereg.data.slices import preprocess_slice
    from posereg.evaluation import synthetic_slice_cases

    cases = synthetic_slice_cases(small_atlas, subjects=1, rotations=4, seed=2, noise=0.0)
    again = synthetic_slice_cases(small_atlas, subjects=1, rotations=4, seed=2, noise=0.0)
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 0)))
    geometry = SliceGeometry(40, 4.8, 40)
    for case, twin in zip(cases, again, strict=True):
        assert 7 <= case.index < 33 and torch.equal(case.image, twin.image)
        expected = preprocess_slice(cut_slices(subject, case.R, torch.tensor(case.index), geometry))
        torch.testing.assert_close(case.image, expected)


def test_locate_slice_cli_writes_a_transform_that_maps_like_the_locator(tmp_path, setup, capsys):
    import nibabel as nib
    import numpy as np
    import SimpleITK as sitk

    from posereg.cli import main
    from posereg.models.slice import SlicePoseNet
    from posereg.registration.slice import SliceLocator
    from posereg.training.config import SliceTrainingConfig

    atlas, geometry, R, index, image = setup
    torch.manual_seed(0)
    net = SlicePoseNet(width=0.125, index_scale=40.0).eval()
    config = SliceTrainingConfig.from_dict({"atlas": {"shape": 40, "spacing": 4.8, "resolution_mm": 2}}).model_dump(mode="json")
    torch.save({"config": config, "spec": net.spec, "state_dict": net.state_dict()}, tmp_path / "slice.pt")
    nib.save(nib.Nifti1Image(image.numpy(), np.diag([4.8, 4.8, 1.0, 1.0])), str(tmp_path / "slice.nii.gz"))
    argv = ["locate-slice", str(tmp_path / "slice.nii.gz"), "--model", str(tmp_path / "slice.pt"),
            "--out-transform", str(tmp_path / "T.tfm"), "--out-slice", str(tmp_path / "atlas_slice.nii.gz"),
            "--out-input", str(tmp_path / "input.nii.gz"), "--out-placed", str(tmp_path / "placed.nii.gz")]  # fmt: skip
    code = main(argv)
    captured = capsys.readouterr()
    out = captured.out
    assert "plane normal" in out and "mm from the atlas centre" in out
    # An untrained network: the verdict may go either way, but the exit status and the messages agree.
    assert "quality:       agreement " in out
    assert code == (3 if "verdict:       DOUBTFUL" in out else 0) and (code == 3) == ("doubtful" in captured.err)
    from posereg.data import WorkingGrid, load_atlas

    cli_atlas = load_atlas(WorkingGrid(shape=40, spacing=4.8, resolution_mm=2))  # the model's grid
    from posereg.data.slices import preprocess_slice

    located = SliceLocator(cli_atlas, net, geometry)(preprocess_slice(image))  # the command normalises its input
    transform = sitk.ReadTransform(str(tmp_path / "T.tfm"))
    flip = np.array([-1.0, -1.0, 1.0])
    c = cli_atlas.image.centre
    for p in (torch.tensor([0.0, 0.0, 0.0], dtype=F64), torch.tensor([30.0, -12.0, 0.0], dtype=F64)):
        expected = c + located.R.mT @ p + located.offset_mm * located.normal
        mapped = np.asarray(transform.TransformPoint((p.numpy() * flip).tolist())) * flip
        np.testing.assert_allclose(mapped, expected.numpy(), atol=1e-3)
    assert nib.load(str(tmp_path / "atlas_slice.nii.gz")).shape[:2] == (40, 40)
    placed = nib.load(str(tmp_path / "placed.nii.gz"))
    assert placed.shape == (40, 40, 40) and int(placed.header["sform_code"]) == 4 and np.asarray(placed.dataobj).any()
    assert "stack search" not in out
    assert main([*argv[:4], "--search-stack"]) in (0, 3)
    assert "stack search" in capsys.readouterr().out
    assert main([*argv[:4], "--one-pass"]) == 0
    assert "agreement" not in (out := capsys.readouterr().out) and "not checked (--one-pass)" in out
    assert main(["locate-slice", str(tmp_path / "none.nii.gz"), "--model", str(tmp_path / "slice.pt")]) == 2


def test_a_slice_placed_at_its_true_plane_matches_the_atlas_there(setup):
    from posereg.registration.slice import SliceLocation, slice_in_atlas

    atlas, geometry, R, index, image = setup
    raw = cut_slices(atlas.image, R, torch.tensor(index), geometry)  # the atlas's own intensities
    location = SliceLocation(R, index, float(geometry.offset_mm(index)), {}, {})
    placed = slice_in_atlas(raw, location, geometry, atlas.image, thickness_mm=1.0)
    drawn = placed.data != 0
    assert placed.shape == atlas.image.shape and 50 < int(drawn.sum()) < 40 * 40
    # Voxels within half a millimetre of the plane carry the atlas's value at (nearly) their own place.
    err = (placed.data[drawn] - atlas.image.data[drawn]).abs()
    assert float(err.median()) < 0.05 * float(atlas.image.data.max())
    # A location 10 slices away draws a parallel plane: different voxels.
    far = SliceLocation(R, index + 10, float(geometry.offset_mm(index + 10)), {}, {})
    assert not bool((slice_in_atlas(raw, far, geometry, atlas.image, thickness_mm=1.0).data != 0)[drawn].any())

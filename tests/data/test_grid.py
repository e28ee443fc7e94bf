"""The working grid type and the one atlas builder on it."""

import pytest
import torch

from posereg.data import Contrast, Volume, WorkingGrid, load_atlas, load_mni152


def test_a_grid_round_trips_through_its_record():
    grid = WorkingGrid(contrast=Contrast.T2, shape=40, spacing=4.8, resolution_mm=2)
    record = grid.record()
    assert record == {"contrast": "t2", "shape": 40, "spacing": 4.8, "resolution_mm": 2}
    assert WorkingGrid.from_record(record) == grid
    assert grid.size == (40, 40, 40) and grid.extent_mm == pytest.approx(192.0)
    assert WorkingGrid() == WorkingGrid(contrast=Contrast.T1, shape=64, spacing=3.0, resolution_mm=1)


@pytest.mark.parametrize(
    ("change", "key"),
    [({"shape": 64.5}, "shape"), ({"shape": "64"}, "shape"), ({"shape": 2}, "shape"), ({"shape": True}, "shape"),
     ({"spacing": float("nan")}, "spacing"), ({"spacing": -3.0}, "spacing"), ({"spacing": float("inf")}, "spacing"),
     ({"resolution_mm": 3}, "resolution_mm"), ({"contrast": "flair"}, "contrast"), ({"shpe": 64}, "shpe")],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_key(change, key):
    with pytest.raises(ValueError, match=rf"^atlas: 1 bad value:\n  {key}: "):
        WorkingGrid.from_record({**WorkingGrid().record(), **change})


def test_a_grid_is_immutable():
    with pytest.raises(Exception, match="frozen"):
        WorkingGrid().shape = 32  # type: ignore[misc]


def test_a_user_atlas_is_centred_by_the_bundled_atlas_rule():
    """The template given as a user's image (moved 20 mm off its grid) gives the bundled atlas."""
    grid = WorkingGrid(shape=24, spacing=8.0, resolution_mm=2)
    bundled = load_atlas(grid)
    native = load_mni152(resolution_mm=2).image
    shifted = native.affine.clone()
    shifted[:3, 3] += torch.tensor([20.0, -10.0, 5.0], dtype=shifted.dtype)
    user = load_atlas(grid, Volume(native.data, shifted))
    # Same brain, same centring rule: the grid follows the brain by exactly the shift.
    torch.testing.assert_close(user.image.centre - bundled.image.centre,
                               torch.tensor([20.0, -10.0, 5.0], dtype=torch.float64), atol=0.5, rtol=0)  # fmt: skip
    overlap = (user.mask & bundled.mask).sum() / (user.mask | bundled.mask).sum()
    assert float(overlap) > 0.95
    assert float((user.image.data - bundled.image.data).abs().mean()) < 0.02


def test_an_empty_user_atlas_is_refused():
    with pytest.raises(ValueError, match="no foreground"):
        load_atlas(WorkingGrid(shape=8, spacing=4.0), Volume(torch.zeros(8, 8, 8), torch.eye(4, dtype=torch.float64)))


def test_the_template_atlas_is_cached_and_read_back_identically(tmp_path, monkeypatch):
    import posereg.data.atlas as atlas_module

    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path))
    grid = WorkingGrid(shape=12, spacing=16.0, resolution_mm=2)
    built = load_atlas(grid)
    files = list((tmp_path / "atlas").iterdir())
    assert len(files) == 1 and (tmp_path / "atlas").stat().st_mode & 0o777 == 0o700

    def no_template(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(atlas_module, "load_mni152", no_template)
    again = load_atlas(grid)
    torch.testing.assert_close(again.image.data, built.image.data, rtol=0, atol=0)
    torch.testing.assert_close(again.image.affine, built.image.affine, rtol=0, atol=0)
    assert torch.equal(again.mask, built.mask) and again.contrast is built.contrast
    files[0].write_bytes(b"damaged")  # a damaged cache file is rebuilt, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path))
    torch.testing.assert_close(load_atlas(grid).image.data, built.image.data, rtol=0, atol=0)


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path))
    (tmp_path / "atlas").mkdir()
    (tmp_path / "atlas").chmod(0o777)
    load_atlas(WorkingGrid(shape=12, spacing=16.0, resolution_mm=2))
    assert list((tmp_path / "atlas").iterdir()) == []  # nothing written where others could swap it

"""The data layer's configuration sections: the atlas grid, the volume and slice data."""

from __future__ import annotations

import pytest

from posereg.data import Contrast, WorkingGrid, load_atlas
from posereg.data.config import SliceDataConfig, VolumeDataConfig


def test_the_atlas_section_loads_its_grid() -> None:
    atlas = load_atlas(WorkingGrid.from_dict({"contrast": "t2", "shape": 16, "spacing": 12.0, "resolution_mm": 2}))
    assert atlas.image.shape == (16, 16, 16) and float(atlas.image.spacing[0]) == 12.0
    assert atlas.contrast is Contrast.T2
    assert WorkingGrid().model_dump(mode="json") == {"contrast": "t1", "shape": 64, "spacing": 3.0, "resolution_mm": 1}


@pytest.mark.parametrize(
    ("section", "values", "line"),
    [
        (VolumeDataConfig, {"noise": -0.01}, "noise: Input should be greater than or equal to 0 (got -0.01)"),
        (VolumeDataConfig, {"crop": 0.5}, "crop: Input should be less than 0.5 (got 0.5)"),
        (VolumeDataConfig, {"max_translation_mm": -1.0}, "max_translation_mm: Input should be greater than or equal to 0"),
        (VolumeDataConfig, {"max_rotation_deg": 0.0}, "max_rotation_deg: Input should be greater than 0"),
        (VolumeDataConfig, {"subject_base_seed": -1}, "subject_base_seed: Input should be greater than or equal to 0"),
        (VolumeDataConfig, {"head_model": 3}, "head_model: Input should be a valid string"),
        (SliceDataConfig, {"slices_per_volume": 0}, "slices_per_volume: Input should be greater than or equal to 1"),
        (SliceDataConfig, {"noise": float("nan")}, "noise: Input should be a finite number"),
        (SliceDataConfig, {"x_range_deg": [30, 20]}, "x_range_deg: expected [low, high] with low <= high, got [30.0, 20.0]"),
        (WorkingGrid, {"shape": 3}, "shape: Input should be greater than or equal to 4"),
        (WorkingGrid, {"contrast": "T1"}, "contrast: Input should be 't1' or 't2'"),
    ],
)  # fmt: skip
def test_bad_data_values_name_their_key(section, values, line) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        section.from_dict(values)
    assert str(caught.value).split("\n")[1].strip().startswith(line)


def test_ranges_read_from_yaml_lists() -> None:
    data = SliceDataConfig.from_dict({"x_range_deg": [-45, 45]})
    assert data.x_range_deg == (-45.0, 45.0) and isinstance(data.x_range_deg[0], float)
    assert data.model_dump(mode="json")["x_range_deg"] == [-45.0, 45.0]

"""A small atlas shared by the data tests (loading MNI152 takes a few seconds)."""

from __future__ import annotations

import pytest

from posereg.data.atlas import Atlas, Contrast, load_atlas


@pytest.fixture(scope="session")
def small_atlas() -> Atlas:
    """MNI152 T1 on 40^3 voxels of 4.8 mm (the same 192 mm field of view as 64^3 x 3 mm)."""
    return load_atlas(Contrast.T1, shape=(40, 40, 40), spacing=4.8, resolution_mm=2)

"""Data: volumes with world frames (NIfTI), rigid resampling, atlases, synthetic subjects, datasets."""

from posereg.data.resample import gaussian_smooth, resample_to_grid, rigid_resample, transform_matrix
from posereg.data.volume import Volume, brain_mask, load_nifti, normalize_intensity, save_nifti

__all__ = [
    "Volume", "brain_mask", "gaussian_smooth", "load_nifti", "normalize_intensity", "resample_to_grid",
    "rigid_resample", "save_nifti", "transform_matrix",
]  # fmt: skip

"""Data: volumes with world frames (NIfTI), rigid resampling, atlases, synthetic subjects, datasets.

Relocalisation data lives in the subpackage ``posereg.data.reloc``, imported on its own: readers
of Cambridge Landmarks, 7-Scenes and NVM reconstructions, image transforms and intrinsics,
rendered synthetic scenes with their cache, and ``relocalisation_data(data_config)``, the one
entry point that builds the datasets."""

from posereg.data.atlas import Atlas, load_atlas, load_mni152, mni152_grid
from posereg.data.dataset import (
    RigidPoseDataset,
    item_generator,
    move_volume,
    preprocess_intensity,
    scan_intensity_range,
)
from posereg.data.grid import Contrast, WorkingGrid
from posereg.data.resample import (
    antialiased,
    block_reduced,
    gaussian_smooth,
    reduced_for_spacing,
    resample_to_grid,
    rigid_resample,
    sample_at_points,
    transform_matrix,
)
from posereg.data.synthetic import (
    ScannerVariation,
    Split,
    SubjectVariation,
    rician_noise,
    scanner_effects,
    subject_seed,
    synthesize_subject,
)
from posereg.data.volume import (
    Volume,
    XformCode,
    brain_mask,
    isotropic_affine,
    load_nifti,
    normalize_intensity,
    save_nifti,
    threshold_mask,
)

__all__ = [
    "Atlas", "Contrast", "RigidPoseDataset", "ScannerVariation", "Split", "SubjectVariation", "WorkingGrid", "XformCode",
    "item_generator", "load_atlas", "load_mni152", "mni152_grid", "move_volume", "preprocess_intensity", "scan_intensity_range",
    "rician_noise", "scanner_effects", "subject_seed", "synthesize_subject",
    "Volume", "antialiased", "block_reduced", "brain_mask", "gaussian_smooth", "isotropic_affine", "load_nifti", "normalize_intensity", "reduced_for_spacing", "resample_to_grid",
    "rigid_resample", "sample_at_points", "save_nifti", "threshold_mask", "transform_matrix",
]  # fmt: skip

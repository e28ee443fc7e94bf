"""Registration: intensity-based baselines (SimpleITK) and deep pipelines."""

from posereg.registration.intensity import IntensitySettings, Metric, RigidResult, register_rigid
from posereg.registration.itk import read_rigid_transform, write_rigid_transform
from posereg.registration.moments import image_moments, principal_axes_alignment

__all__ = [
    "IntensitySettings", "Metric", "RigidResult", "image_moments", "principal_axes_alignment",
    "read_rigid_transform", "register_rigid", "write_rigid_transform",
]  # fmt: skip

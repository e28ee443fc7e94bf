"""Registration: intensity-based baselines (SimpleITK) and deep pipelines."""

from posereg.registration.moments import image_moments, principal_axes_alignment

__all__ = ["image_moments", "principal_axes_alignment"]

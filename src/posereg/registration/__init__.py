"""Registration: intensity-based baselines (SimpleITK) and deep pipelines."""

from posereg.registration.checked import CheckedResult, QualityThresholds, doubts, register_checked
from posereg.registration.intensity import IntensitySettings, Metric, RigidResult, register_rigid
from posereg.registration.itk import read_rigid_transform, write_rigid_transform
from posereg.registration.moments import (
    SignChoice,
    centre_of_gravity,
    image_moments,
    principal_axes_alignment,
)
from posereg.registration.pipeline import DeepRegistration, DeepResult
from posereg.registration.pipeline_model import (
    PipelineModel,
    load_pipeline_model,
    pretrained_pipeline_path,
    save_pipeline_model,
)
from posereg.registration.refine import RefineLevel, RefineSettings, refine_rigid
from posereg.registration.search import coarse_rotation_scores, search_registration

__all__ = [
    "CheckedResult", "DeepRegistration", "DeepResult", "QualityThresholds", "doubts", "register_checked", "IntensitySettings", "PipelineModel", "pretrained_pipeline_path", "Metric", "RigidResult", "SignChoice", "centre_of_gravity",
    "coarse_rotation_scores", "image_moments", "load_pipeline_model", "principal_axes_alignment",
    "save_pipeline_model", "search_registration",
    "read_rigid_transform", "refine_rigid", "RefineLevel", "RefineSettings", "register_rigid", "write_rigid_transform",
]  # fmt: skip

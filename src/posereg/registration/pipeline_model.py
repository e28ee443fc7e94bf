"""The pipeline model file: the networks of ``posereg register`` and the grid they work on.

``save_pipeline_model`` bundles the model files (``posereg.models.artifact``) of a Pose-Net and
optionally a Correction-Net run of ``posereg train volume`` (optionally in float16);
``load_pipeline_model`` reads them back with safe ``weights_only`` loading;
``pretrained_pipeline_path`` is the bundled one. A file is::

    {"format": "posereg-pipeline", "version": 1, "pose": <model file dict>,
     "correction": <model file dict> (optional), "pose_steps": int, "correction_steps": int}

(files of posereg 0.1 lack ``format`` and ``version`` and are read the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from posereg._files import atomic_path
from posereg.data import Atlas, Volume, WorkingGrid, load_atlas
from posereg.models.artifact import ModelArtifact, NetworkKind, load_artifact, read_payload
from posereg.registration.pipeline import DeepRegistration
from posereg.registration.refine import RefineSettings
from posereg.weights import bundled_file

__all__ = ["PRETRAINED_VOLUME_PIPELINE", "PipelineModel", "load_pipeline_model", "pretrained_pipeline_path",
           "save_pipeline_model"]  # fmt: skip


PRETRAINED_VOLUME_PIPELINE = "volume_pipeline_t1_64.pt"
FORMAT = "posereg-pipeline"
VERSION = 1
MAX_STEPS = 16  # passes per network: more never helped (docs/benchmarks/volume_registration.md) and only cost time


def pretrained_pipeline_path() -> Path:
    """The bundled pipeline model (``posereg/weights/``): MNI152 T1, 64^3 at 3 mm.

    Trained on synthetic whole heads and brains of any contrast (configs/volume_pose_heads.yaml,
    volume_correction_heads.yaml, ``make train-volume``; docs/benchmarks/volume_training_heads.md).

    Raises:
        FileNotFoundError: the installation lacks it.
    """
    return bundled_file(PRETRAINED_VOLUME_PIPELINE, "pipeline model")


@dataclass(frozen=True)
class PipelineModel:
    """The networks of a pipeline file and the working grid they were trained on.

    Attributes:
        pose: the Pose-Net (eval mode, float32). correction: the Correction-Net or None.
        grid: the working grid of the networks (``WorkingGrid()``, MNI152 T1 64^3 x 3 mm, when
            the file does not record it).
        correction_steps, pose_steps: the recommended numbers of passes.
    """

    pose: nn.Module
    correction: nn.Module | None
    grid: WorkingGrid = field(default_factory=WorkingGrid)
    correction_steps: int = 1
    pose_steps: int = 1

    def atlas(self, image: Volume | None = None) -> Atlas:
        """The atlas on this model's grid: the bundled MNI152 template, or ``image`` (``load_atlas``)."""
        return load_atlas(self.grid, image)

    def pipeline(self, atlas: Atlas, refine: RefineSettings | None = None, device: torch.device | str = "cpu") -> DeepRegistration:
        """``DeepRegistration`` with these networks and settings, the networks on ``device``."""
        return DeepRegistration(atlas, self.pose, self.correction, refine, self.correction_steps, self.pose_steps,
                                device=device)  # fmt: skip


def save_pipeline_model(
    path: str | Path,
    pose_model: str | Path,
    correction_model: str | Path | None,
    *,
    correction_steps: int = 1,
    pose_steps: int = 1,
    half: bool = False,
) -> None:
    """Bundle model files of ``posereg train volume`` into one pipeline file (written atomically).

    Args:
        path: the output file; it must not be one of the inputs.
        pose_model, correction_model: model files of a Pose-Net and (optional) a Correction-Net.
        correction_steps, pose_steps: the numbers of passes recorded for users (1 to 16).
        half: store floating-point weights as float16 (half the size; loaded back as float32).

    Raises:
        FileNotFoundError: a missing input. ValueError: bad steps, inputs of the wrong kind or on
            different grids, or an output path equal to an input.
    """
    for name, steps in (("correction_steps", correction_steps), ("pose_steps", pose_steps)):
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"{name}: expected 1 to {MAX_STEPS} passes, got {steps}")
    inputs = [Path(pose_model)] + ([] if correction_model is None else [Path(correction_model)])
    if any(Path(path).resolve() == p.resolve() for p in inputs):
        raise ValueError(f"{path}: the output would replace an input model file")
    pose = load_artifact(pose_model, (NetworkKind.POSE,))
    correction = None if correction_model is None else load_artifact(correction_model, (NetworkKind.CORRECTION,))
    if correction is not None and _grid(pose, pose_model) != _grid(correction, correction_model):
        raise ValueError(f"{pose_model}, {correction_model}: the networks were trained on different grids "
                         f"({_grid(pose, pose_model)} and {_grid(correction, correction_model)})")  # fmt: skip
    payload: dict = {"format": FORMAT, "version": VERSION, "correction_steps": int(correction_steps),
                     "pose_steps": int(pose_steps)}  # fmt: skip
    for key, artifact in (("pose", pose), ("correction", correction)):
        if artifact is not None:
            payload[key] = (artifact.half() if half else artifact).payload()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _grid(artifact: ModelArtifact, where: object) -> WorkingGrid:
    return WorkingGrid() if artifact.grid is None else WorkingGrid.from_record(artifact.grid, f"{where}: grid")


def load_pipeline_model(path: str | Path) -> PipelineModel:
    """The networks of a file written by ``save_pipeline_model`` (safe ``weights_only`` loading).

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg pipeline model.
    """
    payload = read_payload(path)
    if not isinstance(payload, Mapping) or "pose" not in payload:
        raise ValueError(f"{path}: not a posereg pipeline model (expected a 'pose' network)")
    version = payload.get("version", 0)
    if payload.get("format", FORMAT) != FORMAT or not isinstance(version, int) or version > VERSION:
        raise ValueError(f"{path}: unsupported pipeline format {payload.get('format')!r} version {version!r}")
    pose = ModelArtifact.from_payload(payload["pose"], f"{path}: pose")
    correction = ModelArtifact.from_payload(payload["correction"], f"{path}: correction") if "correction" in payload else None
    if pose.kind is not NetworkKind.POSE or (correction is not None and correction.kind is not NetworkKind.CORRECTION):
        raise ValueError(f"{path}: the 'pose' and 'correction' entries hold the wrong kinds of network")
    steps = {}
    for key in ("correction_steps", "pose_steps"):
        value = payload.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_STEPS:
            raise ValueError(f"{path}: {key} must be an integer from 1 to {MAX_STEPS}, got {value!r}")
        steps[key] = value
    return PipelineModel(pose.network(), None if correction is None else correction.network(), _grid(pose, path),
                         steps["correction_steps"], steps["pose_steps"])  # fmt: skip

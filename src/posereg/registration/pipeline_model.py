"""The pipeline model file: the networks of ``posereg register`` and the grid they were trained on.

``save_pipeline_model`` bundles the ``model.pt`` files of ``posereg train volume`` (optionally in
float16); ``load_pipeline_model`` reads them back with safe ``weights_only`` loading;
``pretrained_pipeline_path`` is the bundled one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from posereg.data import Atlas
from posereg.models import load_volume_network
from posereg.registration.intensity import IntensitySettings
from posereg.registration.pipeline import DeepRegistration

__all__ = ["PRETRAINED_VOLUME_PIPELINE", "PipelineModel", "load_pipeline_model", "pretrained_pipeline_path",
           "save_pipeline_model"]  # fmt: skip


PRETRAINED_VOLUME_PIPELINE = "volume_pipeline_t1_64.pt"


def pretrained_pipeline_path() -> Path:
    """The bundled pipeline model (``posereg/weights/``): MNI152 T1, 64^3 at 3 mm.

    Trained on synthetic whole heads and brains of any contrast (configs/volume_pose_heads.yaml,
    volume_correction_heads.yaml, ``make train-volume``; docs/benchmarks/volume_training_heads.md).

    Raises:
        FileNotFoundError: the installation lacks it.
    """
    from importlib.resources import files

    path = Path(str(files("posereg.weights").joinpath(PRETRAINED_VOLUME_PIPELINE)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundled pipeline model is missing from this installation")
    return path


@dataclass(frozen=True)
class PipelineModel:
    """The networks of a pipeline file and the working grid they were trained on.

    Attributes:
        pose: the Pose-Net (eval mode). correction: the Correction-Net or None.
        atlas: the training configuration's atlas section (``contrast``, ``shape``, ``spacing``,
            ``resolution_mm``), or None when the file does not record it.
        correction_steps, pose_steps: the recommended numbers of passes.
    """

    pose: nn.Module
    correction: nn.Module | None
    atlas: dict | None = None
    correction_steps: int = 1
    pose_steps: int = 1

    def pipeline(self, atlas: Atlas, refine: IntensitySettings | None = None) -> DeepRegistration:
        """``DeepRegistration`` with these networks and settings."""
        return DeepRegistration(atlas, self.pose, self.correction, refine, self.correction_steps, self.pose_steps)


def save_pipeline_model(
    path: str | Path,
    pose_model: str | Path,
    correction_model: str | Path | None,
    *,
    correction_steps: int = 1,
    pose_steps: int = 1,
    half: bool = False,
) -> None:
    """Bundle ``model.pt`` files of ``posereg train volume`` into one pipeline file.

    Args:
        path: the output file.
        pose_model, correction_model: ``model.pt`` files (the latter optional).
        correction_steps, pose_steps: the numbers of passes recorded for users.
        half: store floating-point weights as float16 (half the size; loaded back as float32).
    """
    if correction_steps < 1 or pose_steps < 1:
        raise ValueError(f"correction_steps, pose_steps: expected at least 1 pass, got {correction_steps}, {pose_steps}")
    payload: dict = {"pose": _read(pose_model), "correction_steps": int(correction_steps), "pose_steps": int(pose_steps)}
    if correction_model is not None:
        payload["correction"] = _read(correction_model)
    if half:
        for key in ("pose", "correction"):
            if key in payload:
                state = payload[key]["state_dict"]
                payload[key]["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pipeline_model(path: str | Path) -> PipelineModel:
    """The networks of a file written by ``save_pipeline_model`` (safe ``weights_only`` loading).

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg pipeline model.
    """
    payload = _read(path)
    if not isinstance(payload, dict) or "pose" not in payload:
        raise ValueError(f"{path}: not a posereg pipeline model (expected a 'pose' network)")
    try:
        pose = load_volume_network(payload["pose"])
        correction = load_volume_network(payload["correction"]) if "correction" in payload else None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if pose.spec["network"] != "pose" or (correction is not None and correction.spec["network"] != "correction"):
        raise ValueError(f"{path}: the 'pose' and 'correction' entries hold the wrong kinds of network")
    config = payload["pose"].get("config")
    atlas = dict(config["atlas"]) if isinstance(config, dict) and "atlas" in config else None
    return PipelineModel(pose.float(), correction.float() if correction is not None else None, atlas,
                         int(payload.get("correction_steps", 1)), int(payload.get("pose_steps", 1)))  # fmt: skip

"""A relocalisation model file: loading it, and evaluating it on the data it was trained on.

No Lightning here, so that ``posereg evaluate reloc`` runs without the training engine.
"""

from __future__ import annotations

from pathlib import Path

from posereg.data.reloc import relocalisation_data
from posereg.evaluation.relocalisation import RelocalisationResult, evaluate_relocalisation
from posereg.models.artifact import NetworkKind, load_artifact
from posereg.models.posenet import PoseNet
from posereg.training.config import RelocTrainingConfig

__all__ = ["evaluate_reloc_model", "load_reloc_model"]


def load_reloc_model(path: str | Path) -> tuple[PoseNet, RelocTrainingConfig]:
    """The PoseNet of a relocalisation model file (safe ``weights_only`` loading, eval mode) and
    its training configuration.

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg relocalisation model.
    """
    artifact = load_artifact(path, (NetworkKind.POSENET,))
    return artifact.network(), RelocTrainingConfig.from_stored(artifact.config)  # type: ignore[return-value]


def evaluate_reloc_model(path: str | Path, *, progress: bool = False) -> tuple[RelocalisationResult, RelocTrainingConfig]:
    """Errors of a relocalisation model file on the test frames of the data it was trained on
    (``evaluate_relocalisation``; position in metres, rotation in degrees, reprojection in pixels).

    Raises:
        FileNotFoundError: no such file or dataset files. ValueError: not a posereg relocalisation model.
    """
    net, config = load_reloc_model(path)
    # The data section comes from the model file: read its render cache, never write where the file says.
    data = relocalisation_data(config.data, progress=progress, write_cache=False)
    return evaluate_relocalisation(net, data), config

"""The ``data`` section of a relocalisation configuration (``posereg train reloc``): where the frames come from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SOURCES", "RelocDataConfig"]

SOURCES = ("synthetic", "cambridge", "seven_scenes")


@dataclass(frozen=True)
class RelocDataConfig:
    """Where the frames come from.

    ``source``: 'synthetic' (posereg's rendered ``scene``, 'room' or 'street'), 'cambridge'
    (a Cambridge Landmarks scene folder ``root`` with ``dataset_train.txt``,
    ``dataset_test.txt`` and, for the reprojection loss, ``reconstruction.nvm``) or
    'seven_scenes' (a 7-Scenes scene folder ``root`` with ``TrainSplit.txt``,
    ``TestSplit.txt`` and ``seq-XX`` folders; no scene points, so no reprojection loss).

    Synthetic: ``train_sequences`` and ``test_sequences`` paths of ``frames`` frames each
    (seeds ``0 ..`` and ``1000 ..``), ``size`` x ``size`` pixels, renders cached under
    ``cache`` (None: no cache). Real images: shorter side resized to ``resize``, then a
    ``crop`` x ``crop`` crop (random for training, central for testing; PoseNet: 256, 224);
    Cambridge rows with a coordinate beyond ``max_abs_position`` metres are dropped (one
    Great Court frame lies at 3e9 m). Both: at most ``points_per_image`` scene points per
    frame for the reprojection loss.
    """

    source: str = "synthetic"
    scene: str = "room"
    root: str | None = None
    train_sequences: int = 8
    test_sequences: int = 3
    frames: int = 250
    size: int = 64
    points_per_image: int = 64
    cache: str | None = "runs/scenes"
    resize: int = 256
    crop: int = 224
    max_abs_position: float | None = 1e4

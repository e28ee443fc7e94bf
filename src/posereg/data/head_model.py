"""The anatomical model that synthetic heads are drawn from (``posereg.data.head_synthesis``).

Built once from what installs offline: the MNI152 2009a T1 template, its grey- and
white-matter probability maps and its brain mask (nilearn). The template is skull-stripped,
so everything outside the brain is modelled (SynthSeg / SynthMorph style: Billot et al.
2023, Hoffmann et al. 2022): the model stores, on a canvas that reaches from the top of the
head to the neck,

- the brain's tissue probabilities: white matter, cortical grey matter, deep grey matter
  (grey matter more than ``deep_mm`` inside the brain surface: basal ganglia, thalamus),
  sulcal CSF and ventricles (CSF more than ``ventricle_mm`` inside);
- the signed distance to the brain surface in mm (negative inside), from which every sample
  draws its own CSF rim, skull, marrow and scalp layers;

and, for the Correction-Net's second channel and the working frame, the atlas on posereg's
working grid. Face, eyes, sinuses and neck are analytic shapes placed in MNI millimetres by
the synthesis, with random sizes per sample.

Frames: every array is on a RAS-aligned grid; ``affine`` maps voxel indices to MNI RAS mm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posereg.data.atlas import Atlas, Contrast
from posereg.data.volume import Volume

__all__ = ["TISSUES", "HeadModel", "build_head_model", "load_head_model", "save_head_model"]

# Channels of ``HeadModel.tissue``, in order (probabilities in [0, 1] summing to 1 in the brain).
TISSUES = ("white_matter", "cortical_gm", "deep_gm", "sulcal_csf", "ventricle")

# Canvas extent in MNI mm (RAS): the template's box, extended to the chin and neck below and
# to the face in front, so that whole-head and head-and-neck scans lie inside it.
CANVAS_LOW = (-100.0, -140.0, -200.0)
CANVAS_HIGH = (100.0, 130.0, 120.0)


@dataclass(frozen=True)
class HeadModel:
    """Brain tissue maps and the signed distance to the brain, on one canvas, plus the atlas.

    Attributes:
        tissue: ``(5, I, J, K)`` float32 probabilities of ``TISSUES`` (0 outside the brain).
        distance: ``(I, J, K)`` float32 signed distance to the brain-mask surface, mm
            (negative inside, positive outside).
        affine: ``(4, 4)`` float64 canvas voxel -> MNI RAS mm.
        brain_points: ``(P, 3)`` float64 MNI mm points inside the brain (for removing the
            rigid part of random deformations).
        atlas: the working-grid atlas the networks are registered to (``load_atlas``).
    """

    tissue: Tensor
    distance: Tensor
    affine: Tensor
    brain_points: Tensor
    atlas: Atlas

    def __post_init__(self) -> None:
        if self.tissue.dim() != 4 or self.tissue.shape[0] != len(TISSUES):
            raise ValueError(f"tissue: expected shape ({len(TISSUES)}, I, J, K), got {tuple(self.tissue.shape)}")
        if self.distance.shape != self.tissue.shape[1:]:
            raise ValueError(f"distance: expected shape {tuple(self.tissue.shape[1:])}, got {tuple(self.distance.shape)}")
        if self.brain_points.dim() != 2 or self.brain_points.shape[-1] != 3 or self.brain_points.shape[0] < 4:
            raise ValueError(f"brain_points: expected shape (P >= 4, 3), got {tuple(self.brain_points.shape)}")

    @functools.cached_property
    def channels_last(self) -> Tensor:
        """``(I, J, K, 6)``: the tissue maps and the distance side by side per voxel (made on first
        use): one interpolation then reads one contiguous row per corner, the layout gathers want."""
        return torch.cat((self.tissue, self.distance[None])).permute(1, 2, 3, 0).contiguous()

    @property
    def spacing(self) -> float:
        """Canvas voxel size, mm."""
        return float(self.affine[0, 0])

    def to(self, device: torch.device | str) -> HeadModel:
        """The same model with its tensors on ``device`` (the atlas stays where it is)."""
        return HeadModel(self.tissue.to(device), self.distance.to(device), self.affine, self.brain_points, self.atlas)


def _canvas(spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    low, high = np.array(CANVAS_LOW), np.array(CANVAS_HIGH)
    shape = tuple(int(n) for n in np.floor((high - low) / spacing).astype(int) + 1)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = low
    return shape, affine  # type: ignore[return-value]


def build_head_model(
    atlas: Atlas,
    spacing: float = 2.0,
    *,
    deep_mm: float = 18.0,
    ventricle_mm: float = 10.0,
    n_points: int = 2048,
    seed: int = 0,
) -> HeadModel:
    """Build the head model from the nilearn MNI152 2009a maps (no download).

    Args:
        atlas: the working-grid atlas (``load_atlas``); stored for the networks' frame.
        spacing: canvas voxel size, mm (2 mm: 101 x 136 x 161 voxels, 28 MB as float16).
        deep_mm: grey matter deeper than this below the brain surface is deep grey matter.
        ventricle_mm: CSF deeper than this is ventricle.
        n_points: brain points kept for the rigid fit.
        seed: draws the brain points.

    Returns:
        The ``HeadModel``.
    """
    import warnings

    from scipy import ndimage

    from posereg.data.atlas import _as_volume, _nilearn_image
    from posereg.data.resample import resample_to_grid

    if not spacing > 0:
        raise ValueError(f"spacing: expected a positive voxel size in mm, got {spacing}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = {name: _as_volume(_nilearn_image(f"load_mni152_{name}", 1))
                for name in ("brain_mask", "gm_template", "wm_template")}  # fmt: skip
    shape, affine_np = _canvas(spacing)
    affine = torch.as_tensor(affine_np)
    centre = affine[:3, :3] @ ((torch.tensor(shape, dtype=torch.float64) - 1) / 2) + affine[:3, 3]

    def on_canvas(volume: Volume) -> np.ndarray:
        data = volume.data / max(float(volume.data.max()), 1e-12)
        return resample_to_grid(volume.with_data(data), shape, spacing, centre).data.numpy()

    mask = on_canvas(maps["brain_mask"]) > 0.5
    gm = np.where(mask, on_canvas(maps["gm_template"]), 0.0)
    wm = np.where(mask, on_canvas(maps["wm_template"]), 0.0)
    total = np.maximum(gm + wm, 1.0)  # the two maps may overlap a little after resampling
    gm, wm = gm / total, wm / total
    csf = np.where(mask, 1.0 - gm - wm, 0.0)
    inside = ndimage.distance_transform_edt(mask) * spacing
    outside = ndimage.distance_transform_edt(~mask) * spacing
    distance = np.where(mask, -inside + 0.5 * spacing, outside - 0.5 * spacing)
    deep = inside > deep_mm
    ventricle = inside > ventricle_mm
    tissue = np.stack([wm, np.where(deep, 0.0, gm), np.where(deep, gm, 0.0),
                       np.where(ventricle, 0.0, csf), np.where(ventricle, csf, 0.0)])  # fmt: skip
    ijk = np.argwhere(mask)
    rng = np.random.default_rng(seed)
    pick = ijk[rng.choice(len(ijk), size=min(n_points, len(ijk)), replace=False)]
    points = pick @ affine_np[:3, :3].T + affine_np[:3, 3]
    return HeadModel(torch.from_numpy(tissue.astype(np.float32)), torch.from_numpy(distance.astype(np.float32)),
                     affine, torch.from_numpy(points), atlas)  # fmt: skip


def save_head_model(model: HeadModel, path: str | Path) -> None:
    """Write the model (float16 maps, about 28 MB at 2 mm) for machines without nilearn."""
    a = model.atlas
    payload = {
        "tissue": model.tissue.half(), "distance": model.distance.half(), "affine": model.affine,
        "brain_points": model.brain_points, "atlas_image": a.image.data, "atlas_affine": a.image.affine,
        "atlas_mask": a.mask, "atlas_contrast": a.contrast.value,
    }  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_head_model(path: str | Path) -> HeadModel:
    """Read a file of ``save_head_model`` (safe ``weights_only`` loading).

    Raises:
        FileNotFoundError: no such file. ValueError: not a head-model file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such head-model file")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    keys = {"tissue", "distance", "affine", "brain_points", "atlas_image", "atlas_affine", "atlas_mask", "atlas_contrast"}
    if not isinstance(payload, dict) or not keys <= set(payload):
        raise ValueError(f"{path}: not a posereg head-model file (expected keys {sorted(keys)})")
    atlas = Atlas(Volume(payload["atlas_image"], payload["atlas_affine"]), payload["atlas_mask"],
                  Contrast(payload["atlas_contrast"]))  # fmt: skip
    return HeadModel(payload["tissue"].float(), payload["distance"].float(), payload["affine"],
                     payload["brain_points"], atlas)  # fmt: skip

"""The deep volume-to-atlas pipeline of Salehi et al. (2018), with optional intensity refinement.

Stages, each a rigid transform about the atlas grid centre ``c`` mapping atlas (fixed) RAS
points to moving RAS points, ``T(x) = R (x - c) + c + t``:

1. centre of gravity: the moving scan is resampled onto the atlas's grid size and spacing,
   centred on its own intensity centroid (the network sees the brain where the atlas is);
2. Pose-Net: rotation ``R1`` of that view; ``t1`` maps the atlas centroid onto the moving
   centroid, ``t1 = g_m - c - R1 (g_a - c)``;
3. Correction-Net: the moving scan resampled onto the atlas grid by ``T1`` and the atlas,
   as two channels, give the residual ``(R2, t2)``; the composition is
   ``T = T1 o T2``: ``R = R1 R2``, ``t = t1 + R1 t2``;
4. optional refinement: SimpleITK registration started from ``T`` (VVR-Deep).

``T`` is what ITK calls the fixed-to-moving transform: resampling the moving image with it
gives the moving image aligned to the atlas (``posereg.registration.itk`` writes it as .tfm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from posereg.data import (
    Atlas,
    Volume,
    antialiased,
    preprocess_intensity,
    resample_to_grid,
    rigid_resample,
)
from posereg.models import load_volume_network
from posereg.registration.intensity import IntensitySettings, register_rigid
from posereg.registration.moments import centre_of_gravity

__all__ = ["DeepRegistration", "DeepResult", "check_working_grid", "load_pipeline_model", "save_pipeline_model"]


def check_working_grid(atlas: Atlas) -> None:
    """Raise ValueError unless the atlas grid is cubic, isotropic and RAS-aligned (``load_atlas``'s).

    The networks see a view of the moving scan on a grid of the atlas's size and spacing,
    axis-aligned like the atlas's; an oblique or anisotropic atlas grid would give them a
    different geometry from the one they were trained on.
    """
    A = atlas.image.affine[:3, :3]
    spacing = float(atlas.image.spacing[0])
    cubic = len(set(atlas.image.shape)) == 1
    if not cubic or not torch.allclose(A, spacing * torch.eye(3, dtype=A.dtype), atol=1e-6 * spacing):
        raise ValueError(
            f"atlas: expected a cubic, isotropic, RAS-aligned grid (see posereg.data.load_atlas), got shape "
            f"{atlas.image.shape} and voxel axes {A.tolist()}"
        )


@dataclass(frozen=True)
class DeepResult:
    """Result of ``DeepRegistration``: the final transform and every stage's.

    Attributes:
        R, t, centre: the final ``T(x) = R (x - c) + c + t`` (RAS mm, atlas -> moving).
        stages: ``{name: (R, t)}`` after each stage ('centre of gravity', 'pose-net',
            'correction-net', 'refinement'), all about ``centre``.
        seconds: ``{name: wall-clock seconds}`` of each stage (and 'networks' in total).
    """

    R: Tensor
    t: Tensor
    centre: Tensor
    stages: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class DeepRegistration:
    """Pose-Net + Correction-Net (+ intensity refinement) registration to an atlas.

    Args:
        atlas: the atlas on the networks' grid (e.g. ``load_atlas()``).
        pose_net: a ``VolumePoseNet`` (any module with ``forward`` and ``to_matrix``).
        correction_net: a ``CorrectionNet``, or ``None`` to stop after the Pose-Net.
        refine: settings of the intensity refinement, or ``None`` for none.
    """

    def __init__(
        self,
        atlas: Atlas,
        pose_net: nn.Module,
        correction_net: nn.Module | None = None,
        refine: IntensitySettings | None = None,
    ) -> None:
        check_working_grid(atlas)
        self.atlas = atlas
        self.pose_net = pose_net.eval()
        self.correction_net = correction_net.eval() if correction_net is not None else None
        self.refine = refine
        self._atlas_cog = centre_of_gravity(atlas.image, atlas.mask)

    def __call__(self, moving: Volume) -> DeepResult:
        """Register ``moving`` (any grid, any intensity scale) to the atlas."""
        seconds: dict[str, float] = {}
        stages: dict[str, tuple[Tensor, Tensor]] = {}
        atlas = self.atlas.image
        c = atlas.centre
        start = time.perf_counter()
        g_m = centre_of_gravity(moving)
        view = resample_to_grid(moving, atlas.shape, float(atlas.spacing[0]), g_m)
        view_data = preprocess_intensity(view.data)
        eye = torch.eye(3, dtype=torch.float64)
        stages["centre of gravity"] = (eye, g_m - self._atlas_cog)
        seconds["centre of gravity"] = time.perf_counter() - start

        start = time.perf_counter()
        with torch.no_grad():
            R1 = self.pose_net.to_matrix(self.pose_net(view_data[None, None].float()))[0].to(torch.float64)
        t1 = g_m - c - R1 @ (self._atlas_cog - c)
        R, t = R1, t1
        stages["pose-net"] = (R, t)
        seconds["pose-net"] = time.perf_counter() - start

        if self.correction_net is not None:
            start = time.perf_counter()
            aligned = rigid_resample(
                antialiased(moving, float(atlas.spacing[0])), moving.affine, R, t, c,
                out_affine=atlas.affine, out_shape=atlas.shape,
            )[0, 0]  # fmt: skip
            pair = torch.stack((preprocess_intensity(aligned), atlas.data.to(aligned.dtype)))[None].float()
            with torch.no_grad():
                rotation, translation = self.correction_net(pair)
                R2 = self.correction_net.to_matrix(rotation)[0].to(torch.float64)
            t2 = translation[0].to(torch.float64)
            R, t = R1 @ R2, t1 + R1 @ t2
            stages["correction-net"] = (R, t)
            seconds["correction-net"] = time.perf_counter() - start
        seconds["networks"] = sum(seconds.values())

        if self.refine is not None:
            start = time.perf_counter()
            scan = moving.with_data(preprocess_intensity(moving.data))
            result = register_rigid(atlas, scan, initial=(R, t), settings=self.refine, fixed_mask=None)
            R, t = result.R, result.t
            stages["refinement"] = (R, t)
            seconds["refinement"] = time.perf_counter() - start
        return DeepResult(R, t, c, stages, seconds)

    def aligned_image(self, moving: Volume, result: DeepResult) -> Volume:
        """``moving`` resampled onto the atlas grid by the result's transform."""
        data = rigid_resample(moving.data, moving.affine, result.R, result.t, result.centre,
                              out_affine=self.atlas.image.affine, out_shape=self.atlas.image.shape)  # fmt: skip
        return self.atlas.image.with_data(data[0, 0])


def save_pipeline_model(path: str | Path, pose_model: str | Path, correction_model: str | Path | None) -> None:
    """Bundle ``model.pt`` files of ``posereg train volume`` into one pipeline file."""
    payload = {"pose": _read(pose_model)}
    if correction_model is not None:
        payload["correction"] = _read(correction_model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pipeline_model(path: str | Path) -> tuple[nn.Module, nn.Module | None]:
    """``(pose_net, correction_net or None)`` from a file of ``save_pipeline_model`` (safe loading).

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
    return pose, correction

"""What one synthetic head sample is: the random draws of anatomy, appearance and scanner.

``draw_heads`` draws each subject's anatomy (the backward map ``anatomy_map`` from the
subject's frame to MNI, its rigid part divided out) and appearance; ``field_of_view`` and
``scanner_draw`` the scanner's box and effects. ``posereg.data.head_synthesis`` renders them.
Every random choice comes from one explicit ``torch.Generator``. Frames: RAS mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from posereg.data.head_contrast import LABELS, draw_label_means
from posereg.data.head_model import HeadModel
from posereg.geometry import project_to_so3, random_rotation

__all__ = [
    "HeadDraw", "HeadVariation", "anatomy_map", "canvas_coordinates", "draw_heads", "field_of_view", "sample_field",
    "scanner_draw", "uniform",
]  # fmt: skip


@dataclass(frozen=True)
class HeadVariation:
    """Ranges of the synthetic heads (uniform draws within them; lengths in mm).

    ``scale`` per axis; ``deformation_mm`` the largest peak of the coarse displacement;
    ``csf_mm``, ``skull_mm``, ``scalp_mm`` layer thicknesses; ``face_scale`` the size of face,
    eyes and neck; ``strip_probability`` the share of skull-stripped samples and
    ``strip_margin_mm`` their mask's erosion (< 0) or dilation (> 0); ``fov_half_mm`` the half
    sizes of the field-of-view box, ``tight_probability`` the share cropped tightly to the brain
    (margin ``tight_margin_mm``), ``off_centre_mm`` how far the box centre strays from the
    brain's; ``bias`` the log bias-field amplitude; ``gamma``; ``noise`` (relative to the
    brightest tissue); ``texture`` the largest per-label noise; ``blur_voxels`` in output voxels;
    ``thick_probability`` the share with thick slices of ``slice_mm`` along one scan axis.
    """

    scale: tuple[float, float] = (0.85, 1.15)
    deformation_mm: float = 15.0
    csf_mm: tuple[float, float] = (1.0, 5.0)
    skull_mm: tuple[float, float] = (4.0, 10.0)
    scalp_mm: tuple[float, float] = (3.0, 10.0)
    face_scale: tuple[float, float] = (0.85, 1.15)
    strip_probability: float = 0.35
    strip_margin_mm: tuple[float, float] = (-3.0, 6.0)
    fov_half_mm: tuple[float, float] = (75.0, 150.0)
    tight_probability: float = 0.15
    tight_margin_mm: tuple[float, float] = (3.0, 25.0)
    off_centre_mm: float = 25.0
    bias: float = 0.5
    gamma: tuple[float, float] = (0.75, 1.5)
    noise: tuple[float, float] = (0.0, 0.06)
    texture: float = 0.06
    blur_voxels: tuple[float, float] = (0.0, 1.0)
    thick_probability: float = 0.3
    slice_mm: tuple[float, float] = (1.0, 6.0)


def uniform(gen: torch.Generator, low: float, high: float, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """``shape`` values uniform in ``[low, high)`` from ``gen``."""
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


@dataclass
class HeadDraw:
    """One batch's random parameters (everything but per-voxel noise)."""

    A: Tensor  # (N, 3, 3) anatomical affine (symmetric)
    u: Tensor  # (N, 3, g, g, g) coarse displacement over the canvas, mm
    rigid_Q: Tensor  # (N, 3, 3) and rigid_d (N, 3): the best rigid fit of psi, divided out
    rigid_d: Tensor
    layers: Tensor  # (N, 3) csf, skull, scalp thicknesses
    face: Tensor  # (N,) face/neck scale
    eye_shift: Tensor  # (N, 3)
    strip: Tensor  # (N,) bool
    strip_margin: Tensor  # (N,)
    means: Tensor  # (N, L)
    texture: Tensor  # (N, L)
    bias: Tensor  # (N, 1, 4, 4, 4) log bias field over the canvas
    fat_field: Tensor  # (N, 1, 5, 5, 5) in [-1, 1]: fat vs muscle in face and neck


def draw_heads(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation, device: torch.device) -> HeadDraw:
    """Step 1 and the appearance of step 3 for ``n`` subjects: anatomy, layers, label means, bias."""
    Q = random_rotation((n,), generator=gen, dtype=torch.float32, device=device)
    s = uniform(gen, *v.scale, (n, 3), device)
    A = Q @ torch.diag_embed(s) @ Q.mT
    amp = uniform(gen, 0.0, v.deformation_mm, (n, 1, 1, 1, 1), device)
    u = amp * (2 * torch.rand((n, 3, 5, 5, 5), generator=gen, device=device) - 1)
    means, _ = draw_label_means(n, gen, device)
    texture = uniform(gen, 0.0, v.texture, (n, len(LABELS)), device)
    layers = torch.stack([uniform(gen, *r, (n,), device) for r in (v.csf_mm, v.skull_mm, v.scalp_mm)], -1)
    draw = HeadDraw(A, u, torch.eye(3, device=device).expand(n, 3, 3), torch.zeros(n, 3, device=device), layers,
                 uniform(gen, *v.face_scale, (n,), device), uniform(gen, -5.0, 5.0, (n, 3), device),
                 torch.rand(n, generator=gen, device=device) < v.strip_probability,
                 uniform(gen, *v.strip_margin_mm, (n,), device), means, texture,
                 uniform(gen, -v.bias, v.bias, (n, 1, 1, 1, 1), device) * (2 * torch.rand((n, 1, 4, 4, 4), generator=gen, device=device) - 1),
                 2 * torch.rand((n, 1, 5, 5, 5), generator=gen, device=device) - 1)  # fmt: skip
    # Kabsch over the brain: psi(z) ~ Q (z - c) + c + d; divide it out (SynthMorph keeps the
    # label exact the same way: the deformation must not move or turn the brain as a whole).
    c = head.atlas.image.centre.to(device=device, dtype=torch.float32)
    z = head.brain_points.to(device=device, dtype=torch.float32).expand(n, -1, -1)
    x = anatomy_map(head, draw, z, c, rigid=False)
    z_bar, x_bar = z.mean(1, keepdim=True), x.mean(1, keepdim=True)
    Qr = project_to_so3((x - x_bar).mT @ (z - z_bar))
    d = x_bar[:, 0] - c - (Qr @ (z_bar[:, 0] - c)[..., None])[..., 0]
    draw.rigid_Q, draw.rigid_d = Qr, d
    return draw


def canvas_coordinates(head: HeadModel, x: Tensor) -> Tensor:
    """MNI mm ``(N, P, 3)`` -> grid_sample coordinates of the canvas (x, y, z = W, H, D order)."""
    M = torch.linalg.inv(head.affine).to(device=x.device, dtype=torch.float32)
    ijk = x @ M[:3, :3].T + M[:3, 3]
    size = torch.tensor(head.distance.shape, device=x.device, dtype=torch.float32)
    return (2 * ijk / (size - 1) - 1).flip(-1)


def sample_field(field: Tensor, coords: Tensor) -> Tensor:
    """``field (N, C, a, b, c)`` at ``coords (N, P, 3)`` (grid_sample order) -> ``(N, C, P)``."""
    out = F.grid_sample(field, coords[:, None, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0, 0]


def anatomy_map(head: HeadModel, draw: HeadDraw, z: Tensor, c: Tensor, rigid: bool = True) -> Tensor:
    """Subject frame ``z (N, P, 3)`` -> MNI ``x``: ``c + A (z - c) + u(z)``, rigid part divided out."""
    u = sample_field(draw.u, canvas_coordinates(head, z)).mT
    x = c + (z - c) @ draw.A.mT + u
    if rigid:
        x = (x - c - draw.rigid_d[:, None]) @ draw.rigid_Q + c  # Q^T (x - c - d) + c, as rows
    return x


def field_of_view(head: HeadModel, R: Tensor, t: Tensor, v: HeadVariation, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per-sample box ``(centre (N, 3), half sizes (N, 3))`` in the scan frame (RAS mm).

    A tight crop of the moved brain (``v.tight_probability``) or a box of ``v.fov_half_mm`` half
    sizes whose centre strays up to ``v.off_centre_mm`` from the moved atlas centre.
    """
    n, dev = R.shape[0], R.device
    c = head.atlas.image.centre.to(device=dev, dtype=torch.float32)
    brain = (head.brain_points.to(device=dev, dtype=torch.float32) - c) @ R.mT  # (N, P, 3) about c
    low, high = brain.amin(1), brain.amax(1)
    tight_centre = c + t + (low + high) / 2
    tight_half = (high - low) / 2 + uniform(gen, *v.tight_margin_mm, (n, 3), dev)
    offset = uniform(gen, -v.off_centre_mm, v.off_centre_mm, (n, 3), dev)
    centre = c + t + offset
    half = uniform(gen, *v.fov_half_mm, (n, 3), dev)
    tight = (torch.rand(n, generator=gen, device=dev) < v.tight_probability)[:, None]
    return torch.where(tight, tight_centre, centre), torch.where(tight, tight_half, half)


def scanner_draw(n: int, v: HeadVariation, gen: torch.Generator, device: torch.device) -> Tensor:
    """Per-sample scanner effects ``(N, 5)``: gamma, noise level, blur sigma (output voxels),
    thick-slice sigma (mm) and the thick-slice axis (0, 1, 2)."""
    thick = torch.rand(n, generator=gen, device=device) < v.thick_probability
    slice_mm = torch.where(thick, uniform(gen, *v.slice_mm, (n,), device), 0.0)
    # A slice profile of width w (box) has the variance of a Gaussian of sigma w / sqrt(12).
    return torch.stack([uniform(gen, *v.gamma, (n,), device), uniform(gen, *v.noise, (n,), device),
                        uniform(gen, *v.blur_voxels, (n,), device), slice_mm / math.sqrt(12),
                        torch.randint(0, 3, (n,), generator=gen, device=device).float()], -1)  # fmt: skip

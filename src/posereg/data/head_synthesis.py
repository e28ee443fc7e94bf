"""Synthetic whole-head and brain-only scans, in batches, on any device (SynthSeg / SynthMorph style).

A sample is drawn from the ``HeadModel`` in four steps, every random choice from one explicit
``torch.Generator`` on the samples' device:

1. anatomy, as a backward map from the subject's frame ``z`` to MNI ``x``:
   ``psi(z) = c + A (z - c) + u(z)`` with ``A = Q diag(s) Q^T`` (scale 0.85-1.15 along random
   axes: no rotation) and ``u`` a coarse random displacement of up to tens of mm; the rigid
   part of ``psi`` over the brain is divided out (Kabsch), so the subject's pose is the atlas's
   and the label ``(R, t)`` is the true rigid motion;
2. labels at ``x``: the brain's tissue probabilities, then layers outside it at the
   sample's own thicknesses (CSF rim, skull with marrow, scalp fat and skin), face, eyes with
   orbital fat, sinuses and neck with airway and spine; or, with ``strip_probability``, only
   the brain within a randomly eroded or dilated mask (skull-stripping of random quality);
3. appearance (``head_contrast``): per-label means and texture, bias field, gamma, blur,
   thick slices along one scan axis, Rician noise;
4. the scanner: a rigid motion ``y = R (z - c) + c + t`` about the atlas centre ``c``, a field
   of view (an axis-aligned box in the scan frame, from a tight brain crop to head and neck,
   off-centre), and the image sampled on the requested grid of scan-frame points.

``pose_batch`` gives what the Pose-Net sees in ``DeepRegistration``: the view of the working
grid's size centred on the scan's intensity centroid (found on a coarse view of the whole
field of view, as the pipeline does); ``correction_batch`` gives the Correction-Net's input:
the scan on the atlas grid under a small residual motion, with the atlas as second channel.
Frames: RAS mm throughout; ``(R, t)`` maps atlas points to scan points (ITK's fixed -> moving).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from posereg.data.head_contrast import (
    LABELS,
    batched_blur,
    draw_label_means,
    normalise_batch,
    rician_noise_batch,
)
from posereg.data.head_model import HeadModel
from posereg.geometry import project_to_so3, random_rotation, random_rotation_with_angle

__all__ = [
    "HeadDraw", "HeadVariation", "correction_batch", "draw_heads", "field_of_view", "pose_batch", "render_heads",
    "scanner_draw", "synthetic_scans",
]  # fmt: skip

_L = {name: i for i, name in enumerate(LABELS)}


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


def _u(gen: torch.Generator, low: float, high: float, shape: tuple[int, ...], device: torch.device) -> Tensor:
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
    s = _u(gen, *v.scale, (n, 3), device)
    A = Q @ torch.diag_embed(s) @ Q.mT
    amp = _u(gen, 0.0, v.deformation_mm, (n, 1, 1, 1, 1), device)
    u = amp * (2 * torch.rand((n, 3, 5, 5, 5), generator=gen, device=device) - 1)
    means, _ = draw_label_means(n, gen, device)
    texture = _u(gen, 0.0, v.texture, (n, len(LABELS)), device)
    layers = torch.stack([_u(gen, *r, (n,), device) for r in (v.csf_mm, v.skull_mm, v.scalp_mm)], -1)
    draw = HeadDraw(A, u, torch.eye(3, device=device).expand(n, 3, 3), torch.zeros(n, 3, device=device), layers,
                 _u(gen, *v.face_scale, (n,), device), _u(gen, -5.0, 5.0, (n, 3), device),
                 torch.rand(n, generator=gen, device=device) < v.strip_probability,
                 _u(gen, *v.strip_margin_mm, (n,), device), means, texture,
                 _u(gen, -v.bias, v.bias, (n, 1, 1, 1, 1), device) * (2 * torch.rand((n, 1, 4, 4, 4), generator=gen, device=device) - 1),
                 2 * torch.rand((n, 1, 5, 5, 5), generator=gen, device=device) - 1)  # fmt: skip
    # Kabsch over the brain: psi(z) ~ Q (z - c) + c + d; divide it out (SynthMorph keeps the
    # label exact the same way: the deformation must not move or turn the brain as a whole).
    c = head.atlas.image.centre.to(device=device, dtype=torch.float32)
    z = head.brain_points.to(device=device, dtype=torch.float32).expand(n, -1, -1)
    x = _psi(head, draw, z, c, rigid=False)
    z_bar, x_bar = z.mean(1, keepdim=True), x.mean(1, keepdim=True)
    Qr = project_to_so3((x - x_bar).mT @ (z - z_bar))
    d = x_bar[:, 0] - c - (Qr @ (z_bar[:, 0] - c)[..., None])[..., 0]
    draw.rigid_Q, draw.rigid_d = Qr, d
    return draw


def _canvas_coordinates(head: HeadModel, x: Tensor) -> Tensor:
    """MNI mm ``(N, P, 3)`` -> grid_sample coordinates of the canvas (x, y, z = W, H, D order)."""
    M = torch.linalg.inv(head.affine).to(device=x.device, dtype=torch.float32)
    ijk = x @ M[:3, :3].T + M[:3, 3]
    size = torch.tensor(head.distance.shape, device=x.device, dtype=torch.float32)
    return (2 * ijk / (size - 1) - 1).flip(-1)


def _sample_field(field: Tensor, coords: Tensor) -> Tensor:
    """``field (N, C, a, b, c)`` at ``coords (N, P, 3)`` (grid_sample order) -> ``(N, C, P)``."""
    out = F.grid_sample(field, coords[:, None, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0, 0]


def _psi(head: HeadModel, draw: HeadDraw, z: Tensor, c: Tensor, rigid: bool = True) -> Tensor:
    """Subject frame ``z (N, P, 3)`` -> MNI ``x``: ``c + A (z - c) + u(z)``, rigid part divided out."""
    u = _sample_field(draw.u, _canvas_coordinates(head, z)).mT
    x = c + (z - c) @ draw.A.mT + u
    if rigid:
        x = (x - c - draw.rigid_d[:, None]) @ draw.rigid_Q + c  # Q^T (x - c - d) + c, as rows
    return x


def _ellipsoid(x: Tensor, centre: Tensor, radii: Tensor) -> Tensor:
    """``|(x - centre) / radii| - 1``: negative inside (``x (N, P, 3)``, centre/radii ``(N, 3)``)."""
    return torch.linalg.vector_norm((x - centre[:, None]) / radii[:, None], dim=-1) - 1


def _labels(head: HeadModel, draw: HeadDraw, x: Tensor) -> Tensor:
    """Label probabilities ``(N, L, P)`` of ``LABELS`` at MNI points ``x (N, P, 3)``."""
    n, p, _ = x.shape
    dev = x.device
    coords = _canvas_coordinates(head, x)
    canvas = torch.cat((head.tissue, head.distance[None]))[None]  # (1, 6, I, J, K)
    values = F.grid_sample(canvas, coords.reshape(1, n, 1, p, 3), mode="bilinear", padding_mode="border",
                           align_corners=True)[0, :, :, 0]  # (6, N, P)  # fmt: skip
    tissue, d = values[:5].permute(1, 0, 2), values[5]
    brain = tissue.sum(1).clamp(0.0, 1.0)  # partial volume at the brain surface
    csf, skull, scalp = draw.layers.unbind(-1)
    f = draw.face[:, None]
    one = torch.ones(n, device=dev)
    mirror = x * torch.tensor([-1.0, 1.0, 1.0], device=dev)  # the eyes are symmetric in x
    eye_c = torch.stack([32 * one, 52 * one, -38 * one], -1) + draw.eye_shift
    eye_r = 12 * f.expand(n, 3)
    eye = torch.minimum(_ellipsoid(x, eye_c, eye_r), _ellipsoid(mirror, eye_c, eye_r))
    orbit = torch.minimum(_ellipsoid(x, eye_c, eye_r + 6), _ellipsoid(mirror, eye_c, eye_r + 6))
    face = _ellipsoid(x, torch.stack([0 * one, 48 * one, -62 * one], -1), torch.cat([f * 60, f * 52, f * 62], -1))
    sinus = _ellipsoid(x, torch.stack([0 * one, 55 * one, -50 * one], -1), torch.cat([f * 14, f * 20, f * 16], -1))
    neck_r = torch.linalg.vector_norm((x[..., :2] - torch.tensor([0.0, -18.0], device=dev)) / (f[..., None] * torch.tensor([50.0, 55.0], device=dev)), dim=-1)
    neck = (neck_r < 1) & (x[..., 2] < -40)
    axis_r = torch.linalg.vector_norm(x[..., :2] - torch.tensor([0.0, -30.0], device=dev), dim=-1)
    spine = (axis_r < 11 * f) & (x[..., 2] < -75) & neck
    airway = (torch.linalg.vector_norm(x[..., :2] - torch.tensor([0.0, 5.0], device=dev), dim=-1) < 7 * f) & (x[..., 2] < -60) & neck
    fat_field = _sample_field(draw.fat_field, _canvas_coordinates(head, x))[:, 0]

    rim, bone_out = csf[:, None], (csf + skull)[:, None]
    cranium = d < (csf + skull + scalp)[:, None]
    inside = cranium | (face < 0) | neck
    label = torch.full((n, p), _L["soft_tissue"], device=dev, dtype=torch.long)
    label = torch.where(fat_field > 0.2, _L["fat"], label)
    label = torch.where(cranium & (d >= bone_out) & (d < bone_out + 0.5 * scalp[:, None]), _L["fat"], label)
    diploe = (d - rim - 0.5 * skull[:, None]).abs() < 0.2 * skull[:, None]
    label = torch.where((d >= rim) & (d < bone_out), torch.where(diploe, _L["marrow"], _L["bone"]), label)
    label = torch.where(spine, torch.where(axis_r < 6 * f, _L["marrow"], _L["bone"]), label)
    label = torch.where((orbit < 0) & (d >= rim), _L["fat"], label)
    label = torch.where((eye < 0) & (d >= rim), _L["eye"], label)
    label = torch.where(((sinus < 0) | airway) & (d >= bone_out), _L["air"], label)
    label = torch.where(d < rim, _L["sulcal_csf"], label)
    label = torch.where(inside, label, _L["air"])
    outer = F.one_hot(label, len(LABELS)).permute(0, 2, 1).float() * (1 - brain)[:, None]
    outer[:, 1:6] += tissue  # brain tissue channels follow "air" in LABELS
    strip = draw.strip[:, None] & (d > draw.strip_margin[:, None])
    keep = (~strip).float()[:, None]
    probs = outer * keep
    probs[:, _L["air"]] += 1 - keep[:, 0]
    return probs


def render_heads(head: HeadModel, draw: HeadDraw, R: Tensor, t: Tensor, points: Tensor, gen: torch.Generator) -> Tensor:
    """Intensities ``(N, P)`` (before blur, noise and the field of view) at scan points ``(N, P, 3)``.

    The scan is the subject moved by ``y = R (z - c) + c + t``; ``z = R^T (y - c - t) + c``.
    """
    c = head.atlas.image.centre.to(device=points.device, dtype=torch.float32)
    z = (points - c - t[:, None]) @ R + c
    x = _psi(head, draw, z, c)
    probs = _labels(head, draw, x)
    mean = torch.einsum("nlp,nl->np", probs, draw.means)
    sd = torch.einsum("nlp,nl->np", probs, draw.texture)
    bias = torch.exp(_sample_field(draw.bias, _canvas_coordinates(head, x))[:, 0])
    noise = torch.randn(mean.shape, generator=gen, device=mean.device)
    return ((mean + sd * noise).clamp_min(0.0) * bias)


def _grid_points(shape: int, spacing: float, centre: Tensor) -> Tensor:
    """``(N, shape^3, 3)`` RAS points of axis-aligned cubic grids centred on ``centre (N, 3)``."""
    r = (torch.arange(shape, device=centre.device, dtype=torch.float32) - (shape - 1) / 2) * spacing
    g = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return centre[:, None] + g


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
    tight_half = (high - low) / 2 + _u(gen, *v.tight_margin_mm, (n, 3), dev)
    offset = _u(gen, -v.off_centre_mm, v.off_centre_mm, (n, 3), dev)
    centre = c + t + offset
    half = _u(gen, *v.fov_half_mm, (n, 3), dev)
    tight = (torch.rand(n, generator=gen, device=dev) < v.tight_probability)[:, None]
    return torch.where(tight, tight_centre, centre), torch.where(tight, tight_half, half)


def _scan(head: HeadModel, draw: HeadDraw, R: Tensor, t: Tensor, box: tuple[Tensor, Tensor], shape: int, spacing: float,
          centre: Tensor, v: HeadVariation, gen: torch.Generator, effects: Tensor) -> Tensor:  # fmt: skip
    """The scan on grids of ``shape^3`` voxels of ``spacing`` mm centred on ``centre``: ``(N, s, s, s)``.

    ``effects (N, 5)``: gamma, noise level, blur sigma (output voxels), thick-slice sigma, slice axis.
    """
    n = R.shape[0]
    points = _grid_points(shape, spacing, centre)
    image = render_heads(head, draw, R, t, points, gen).reshape(n, shape, shape, shape)
    sigma = effects[:, 2:3].expand(n, 3).clone()
    axis = effects[:, 4].long()
    sigma[torch.arange(n), axis] = torch.sqrt(sigma[torch.arange(n), axis] ** 2 + (effects[:, 3] / spacing) ** 2)
    image = batched_blur(image, sigma, radius=max(2, min(8, math.ceil(3 * float(sigma.max())))))
    image = image.clamp_min(0.0) ** effects[:, 0, None, None, None]
    image = rician_noise_batch(image, effects[:, 1], gen)
    inside = ((points - box[0][:, None]).abs() <= box[1][:, None]).all(-1).reshape(image.shape)
    return torch.where(inside, image, 0.0)


def scanner_draw(n: int, v: HeadVariation, gen: torch.Generator, device: torch.device) -> Tensor:
    """Per-sample scanner effects ``(N, 5)``: gamma, noise level, blur sigma (output voxels),
    thick-slice sigma (mm) and the thick-slice axis (0, 1, 2)."""
    thick = torch.rand(n, generator=gen, device=device) < v.thick_probability
    slice_mm = torch.where(thick, _u(gen, *v.slice_mm, (n,), device), 0.0)
    # A slice profile of width w (box) has the variance of a Gaussian of sigma w / sqrt(12).
    return torch.stack([_u(gen, *v.gamma, (n,), device), _u(gen, *v.noise, (n,), device),
                        _u(gen, *v.blur_voxels, (n,), device), slice_mm / math.sqrt(12),
                        torch.randint(0, 3, (n,), generator=gen, device=device).float()], -1)  # fmt: skip


def pose_batch(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation = HeadVariation(), *,
               max_translation_mm: float = 20.0, coarse_spacing: float | None = None) -> dict[str, Tensor]:  # fmt: skip
    """``n`` Pose-Net inputs: Haar-uniform rotations, views centred on each scan's centroid.

    The view has the atlas grid's size and spacing; its centre is the intensity centroid of the
    scan's foreground (voxels above 10 % of the 99th percentile, as ``threshold_mask``) on a
    coarse view of the whole field of view at ``coarse_spacing`` (default twice the working
    spacing, as ``coarse_centre_of_gravity``).

    Returns:
        ``image (N, 1, s, s, s)`` in [0, 1], ``rotation (N, 3, 3)``, ``rotvec (N, 3)``,
        ``translation (N, 3)`` (mm), all float32 on the generator's device.
    """
    from posereg.geometry import matrix_to_rotvec

    dev = gen.device
    atlas = head.atlas.image
    shape, spacing = atlas.shape[0], float(atlas.spacing[0])
    coarse = 2 * spacing if coarse_spacing is None else coarse_spacing
    R = random_rotation((n,), generator=gen, dtype=torch.float32, device=dev)
    t = _u(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    effects = scanner_draw(n, v, gen, dev)
    m = int(math.ceil(2 * (v.fov_half_mm[1] + v.off_centre_mm) / coarse)) + 1
    view = _scan(head, draw, R, t, box, m, coarse, box[0], v, gen, effects)
    weights = torch.where(view > 0.1 * view.reshape(n, -1).quantile(0.99, dim=1)[:, None, None, None], view, 0.0)
    points = _grid_points(m, coarse, box[0]).reshape(n, m, m, m, 3)
    centroid = (points * weights[..., None]).sum((1, 2, 3)) / weights.sum((1, 2, 3))[:, None].clamp_min(1e-6)
    image = normalise_batch(_scan(head, draw, R, t, box, shape, spacing, centroid, v, gen, effects))
    return {"image": image[:, None], "rotation": R, "rotvec": matrix_to_rotvec(R), "translation": t}


def correction_batch(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation = HeadVariation(), *,
                     max_angle_deg: float = 50.0, max_translation_mm: float = 20.0) -> dict[str, Tensor]:  # fmt: skip
    """``n`` Correction-Net inputs: the scan on the atlas grid under a residual motion, and the atlas.

    The residual ``(R, t)`` has an angle uniform in ``[0, max_angle_deg]`` about a uniform axis
    and ``t`` uniform in ``+-max_translation_mm`` per axis; ``image`` is ``(N, 2, s, s, s)``
    (scan, atlas); the other keys as ``pose_batch``.
    """
    from posereg.geometry import matrix_to_rotvec

    dev = gen.device
    atlas = head.atlas.image
    shape, spacing = atlas.shape[0], float(atlas.spacing[0])
    R = random_rotation_with_angle((n,), 0.0, math.radians(max_angle_deg), generator=gen, dtype=torch.float32, device=dev)
    t = _u(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    effects = scanner_draw(n, v, gen, dev)
    c = atlas.centre.to(device=dev, dtype=torch.float32).expand(n, 3)
    image = normalise_batch(_scan(head, draw, R, t, box, shape, spacing, c, v, gen, effects))
    reference = atlas.data.to(device=dev, dtype=torch.float32).expand(n, -1, -1, -1)
    return {"image": torch.stack((image, reference), 1), "rotation": R, "rotvec": matrix_to_rotvec(R), "translation": t}


def synthetic_scans(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation = HeadVariation(), *,
                    shape: int = 96, spacing: float = 2.0, max_translation_mm: float = 20.0) -> tuple[list, Tensor, Tensor]:  # fmt: skip
    """``n`` whole synthetic scans as ``Volume`` s with their true motions (for tests and calibration).

    Each scan is a ``shape^3`` grid of ``spacing`` mm, axis-aligned, centred on its field of view,
    raw intensities (not normalised). Its content is the subject moved by ``(R, t)`` about the
    atlas centre (Haar-uniform ``R``), so ``(R, t)`` is the atlas -> scan transform a
    registration should recover (up to the anatomy's own variation).

    Returns:
        ``(volumes, R (N, 3, 3), t (N, 3))`` on the generator's device (float64 poses).
    """
    from posereg.data.volume import Volume, isotropic_affine

    dev = gen.device
    R = random_rotation((n,), generator=gen, dtype=torch.float32, device=dev)
    t = _u(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    image = _scan(head, draw, R, t, box, shape, spacing, box[0], v, gen, scanner_draw(n, v, gen, dev))
    volumes = [Volume(image[i].cpu(), isotropic_affine((shape,) * 3, spacing, box[0][i].cpu().to(torch.float64)))
               for i in range(n)]  # fmt: skip
    return volumes, R.to(torch.float64), t.to(torch.float64)

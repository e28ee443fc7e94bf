"""Synthetic whole-head and brain-only scans, in batches, on any device (SynthSeg / SynthMorph style).

A sample is drawn from the ``HeadModel`` in four steps, every random choice from one explicit
``torch.Generator`` on the samples' device (the draws of steps 1, 3 and 4: ``head_draws``):

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

Speed: grids are rendered with the slowly varying parts (the anatomy map, the bias and fat
fields) on a 12 mm grid, interpolated; the per-voxel label logic can run through
``torch.compile`` (``compiled=True``: the same samples, several times faster on a CPU).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from posereg.data.head_contrast import LABELS, batched_blur, normalise_batch, rician_noise_batch
from posereg.data.head_draws import (
    HeadDraw,
    HeadVariation,
    anatomy_map,
    canvas_coordinates,
    draw_heads,
    field_of_view,
    sample_field,
    scanner_draw,
    uniform,
)
from posereg.data.head_model import HeadModel
from posereg.geometry import random_rotation, random_rotation_with_angle

# HeadDraw, HeadVariation, draw_heads, field_of_view and scanner_draw live in head_draws and are
# part of this module's interface too: they are what the batch functions take and draw.
__all__ = [
    "HeadDraw", "HeadVariation", "correction_batch", "draw_heads", "field_of_view", "pose_batch", "render_heads",
    "scanner_draw", "synthetic_scans",
]  # fmt: skip

_L = {name: i for i, name in enumerate(LABELS)}
# Step of the grid on which the smooth parts of a rendered grid are evaluated (_render_grid), mm.
_SMOOTH_STEP_MM = 12.0


def _trilinear(volume: Tensor, coords: Tensor) -> Tensor:
    """Channels-last ``volume (I, J, K, C)`` at ``coords (N, P, 3)`` -> ``(N, C, P)``, as
    ``sample_field`` (trilinear, border padding, ``align_corners=True``; coordinates in
    grid_sample's x, y, z = K, J, I order), written as eight row gathers that ``torch.compile``
    fuses."""
    size = volume.shape[:3]
    flat = volume.reshape(-1, volume.shape[3])
    u = [((coords[..., 2 - a] + 1) * (0.5 * (size[a] - 1))).clamp(0.0, size[a] - 1) for a in range(3)]  # i, j, k
    low = [ua.floor().clamp(max=max(size[a] - 2, 0)) for a, ua in enumerate(u)]
    frac = [ua - la for ua, la in zip(u, low)]
    base = ((low[0] * size[1] + low[1]) * size[2] + low[2]).long()
    out = 0
    for corner in range(8):
        di, dj, dk = corner >> 2 & 1, corner >> 1 & 1, corner & 1
        w = (frac[0] if di else 1 - frac[0]) * (frac[1] if dj else 1 - frac[1]) * (frac[2] if dk else 1 - frac[2])
        index = (base + (di * size[1] + dj) * size[2] + dk).clamp(max=flat.shape[0] - 1)
        out = out + flat[index] * w[..., None]
    return out.mT


def _inside_ellipsoid(x: tuple[Tensor, Tensor, Tensor], centre: Tensor, radii: Tensor) -> Tensor:
    """``|(x - centre) / radii| < 1`` for coordinates ``x`` (three ``(N, P)``), ``centre``/``radii`` ``(N, 3)``.

    Coordinates come split, not as ``(N, P, 3)``: elementwise work on contiguous ``(N, P)`` arrays
    is several times faster on a CPU than reductions over a last dimension of 3.
    """
    q = sum(((xi - ci[:, None]) / ri[:, None]) ** 2 for xi, ci, ri in zip(x, centre.unbind(-1), radii.unbind(-1)))
    return q < 1


def _labels(head: HeadModel, draw: HeadDraw, x: Tensor, fat: Tensor,
            canvas: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """The label mixture at MNI points ``x (N, P, 3)``, in factored form.

    ``fat (N, P)`` is ``draw.fat_field`` at ``x`` (fat where it exceeds 0.2, muscle elsewhere).
    ``canvas``: ``head.channels_last``, read by ``_trilinear`` (for ``torch.compile``), or None
    for ``grid_sample`` (faster without compilation).

    Returns ``label (N, P)`` (the hard ``LABELS`` index outside the brain), ``tissue (N, 5, P)``
    (the brain's tissue probabilities, ``LABELS[1:6]``), ``brain (N, P)`` (their sum, the
    partial volume at the brain surface) and ``keep (N, P)`` (1 where skull-stripping keeps the
    point). The probability of label ``l`` is ``keep * ((1 - brain) [label == l] + tissue_l) +
    (1 - keep) [l == air]``: kept factored, so no ``(N, L, P)`` one-hot is ever built.
    """
    n, p, _ = x.shape
    dev = x.device
    coords = canvas_coordinates(head, x)
    if canvas is not None:  # gathers the compiler fuses (5x grid_sample's speed on CPU, compiled)
        values = _trilinear(canvas, coords)
        tissue, d = values[:, :5], values[:, 5]
    else:  # one grid per sample over an expanded (not copied) canvas: parallel over the batch
        tissue = sample_field(head.tissue[None].expand(n, -1, -1, -1, -1), coords)
        d = sample_field(head.distance[None, None].expand(n, -1, -1, -1, -1), coords)[:, 0]
    brain = tissue.sum(1).clamp(0.0, 1.0)
    csf, skull, scalp = (w[:, None] for w in draw.layers.unbind(-1))
    f = draw.face[:, None]
    x0, x1, x2 = x.unbind(-1)
    x0, x1, x2 = x0.contiguous(), x1.contiguous(), x2.contiguous()
    mirrored = (-x0, x1, x2)  # the eyes are symmetric in x
    eye_c = torch.tensor([32.0, 52.0, -38.0], device=dev) + draw.eye_shift
    eye_r = (12 * f).expand(n, 3)
    eye = _inside_ellipsoid((x0, x1, x2), eye_c, eye_r) | _inside_ellipsoid(mirrored, eye_c, eye_r)
    orbit = _inside_ellipsoid((x0, x1, x2), eye_c, eye_r + 6) | _inside_ellipsoid(mirrored, eye_c, eye_r + 6)
    scale = f * torch.tensor([[60.0, 52.0, 62.0], [14.0, 20.0, 16.0]], device=dev)[:, None]  # (2, N, 3)
    face = _inside_ellipsoid((x0, x1, x2), torch.tensor([0.0, 48.0, -62.0], device=dev).expand(n, 3), scale[0])
    sinus = _inside_ellipsoid((x0, x1, x2), torch.tensor([0.0, 55.0, -50.0], device=dev).expand(n, 3), scale[1])
    neck = ((x0 / (50 * f)) ** 2 + ((x1 + 18) / (55 * f)) ** 2 < 1) & (x2 < -40)
    axis_r2 = x0**2 + (x1 + 30) ** 2
    spine = (axis_r2 < (11 * f) ** 2) & (x2 < -75) & neck
    airway = (x0**2 + (x1 - 5) ** 2 < (7 * f) ** 2) & (x2 < -60) & neck

    bone_out = csf + skull
    cranium = d < bone_out + scalp
    inside = cranium | face | neck
    label = torch.full((n, p), _L["soft_tissue"], device=dev, dtype=torch.long)
    label = torch.where(fat > 0.2, _L["fat"], label)
    label = torch.where(cranium & (d >= bone_out) & (d < bone_out + 0.5 * scalp), _L["fat"], label)
    diploe = (d - csf - 0.5 * skull).abs() < 0.2 * skull
    label = torch.where((d >= csf) & (d < bone_out), torch.where(diploe, _L["marrow"], _L["bone"]), label)
    label = torch.where(spine, torch.where(axis_r2 < (6 * f) ** 2, _L["marrow"], _L["bone"]), label)
    label = torch.where(orbit & (d >= csf), _L["fat"], label)
    label = torch.where(eye & (d >= csf), _L["eye"], label)
    label = torch.where((sinus | airway) & (d >= bone_out), _L["air"], label)
    label = torch.where(d < csf, _L["sulcal_csf"], label)
    label = torch.where(inside, label, _L["air"])
    keep = ~(draw.strip[:, None] & (d > draw.strip_margin[:, None]))
    return label, tissue, brain, keep.float()


def _label_mix(label: Tensor, tissue: Tensor, brain: Tensor, keep: Tensor, per_label: Tensor) -> Tensor:
    """``sum_l P(l) per_label[:, l]`` at each point ``(N, P)`` for ``_labels``' factored mixture."""
    outer = per_label.gather(1, label) * (1 - brain) + torch.einsum("nkp,nk->np", tissue, per_label[:, 1:6])
    return keep * outer + (1 - keep) * per_label[:, _L["air"], None]


def _smooth_fields(head: HeadModel, draw: HeadDraw, x: Tensor) -> Tensor:
    """``(N, 2, P)``: the fat field and the log bias field at MNI points ``x (N, P, 3)``."""
    coords = canvas_coordinates(head, x)
    return torch.cat((sample_field(draw.fat_field, coords), sample_field(draw.bias, coords)), 1)


def _mean_sd(head: HeadModel, draw: HeadDraw, x: Tensor, fat: Tensor,
             canvas: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Mean intensity and texture sd ``(N, P)`` of the label mixture at MNI points ``x``."""
    mixture = _labels(head, draw, x, fat, canvas)
    return _label_mix(*mixture, draw.means), _label_mix(*mixture, draw.texture)


@functools.cache
def _compiled_mean_sd() -> Callable[[HeadModel, HeadDraw, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    # Built on first use only (a pure memo): compiling needs a C++ compiler on CPU, Triton on GPU.
    return torch.compile(_mean_sd)


def _intensities(head: HeadModel, draw: HeadDraw, x: Tensor, smooth: Tensor, gen: torch.Generator,
                 compiled: bool) -> Tensor:  # fmt: skip
    """Intensities ``(N, P)`` at MNI points ``x (N, P, 3)`` given ``_smooth_fields`` there."""
    if compiled:
        mean, sd = _compiled_mean_sd()(head, draw, x, smooth[:, 0], head.channels_last)
    else:
        mean, sd = _mean_sd(head, draw, x, smooth[:, 0])
    noise = torch.randn(mean.shape, generator=gen, device=mean.device)
    return (mean + sd * noise).clamp_min(0.0) * torch.exp(smooth[:, 1])


def _subject_points(head: HeadModel, R: Tensor, t: Tensor, points: Tensor) -> Tensor:
    """Scan points ``y (N, P, 3)`` -> subject points ``z = R^T (y - c - t) + c``."""
    c = head.atlas.image.centre.to(device=points.device, dtype=torch.float32)
    return (points - c - t[:, None]) @ R + c


def render_heads(head: HeadModel, draw: HeadDraw, R: Tensor, t: Tensor, points: Tensor, gen: torch.Generator, *,
                 compiled: bool = False) -> Tensor:  # fmt: skip
    """Intensities ``(N, P)`` (before blur, noise and the field of view) at scan points ``(N, P, 3)``.

    The scan is the subject moved by ``y = R (z - c) + c + t``; ``z = R^T (y - c - t) + c``.
    ``compiled``: run the per-point label and mixture work through ``torch.compile`` (the same
    values, 2-3x faster on a CPU after a one-off compilation of tens of seconds per batch shape;
    needs a C++ compiler on CPU, Triton on GPU).
    """
    c = head.atlas.image.centre.to(device=points.device, dtype=torch.float32)
    x = anatomy_map(head, draw, _subject_points(head, R, t, points), c)
    return _intensities(head, draw, x, _smooth_fields(head, draw, x), gen, compiled)


def _render_grid(head: HeadModel, draw: HeadDraw, R: Tensor, t: Tensor, shape: int, spacing: float, centre: Tensor,
                 gen: torch.Generator, compiled: bool) -> Tensor:  # fmt: skip
    """``render_heads`` on ``_grid_points(shape, spacing, centre)``, as ``(N, s, s, s)``.

    The map to MNI ``x`` and the smooth fields at ``x`` vary slowly (affine maps and fields of
    4-5 control points a side), so they are evaluated on a grid of about ``_SMOOTH_STEP_MM`` over
    the same extent and interpolated trilinearly (exact for the affine part); only the tissue
    canvas and the label logic run at every voxel. This is what makes synthesis cheap on a CPU.
    """
    n = R.shape[0]
    c = head.atlas.image.centre.to(device=centre.device, dtype=torch.float32)
    k = min(shape, max(2, math.ceil((shape - 1) * spacing / _SMOOTH_STEP_MM) + 1))
    coarse_points = _grid_points(k, (shape - 1) * spacing / max(k - 1, 1), centre)
    x = anatomy_map(head, draw, _subject_points(head, R, t, coarse_points), c)
    fields = torch.cat((x.mT, _smooth_fields(head, draw, x)), 1).reshape(n, 5, k, k, k)
    if k != shape:
        fields = F.interpolate(fields, size=(shape,) * 3, mode="trilinear", align_corners=True)
    fields = fields.reshape(n, 5, -1)
    x = fields[:, :3].mT.contiguous()
    return _intensities(head, draw, x, fields[:, 3:], gen, compiled).reshape(n, shape, shape, shape)


def _grid_points(shape: int, spacing: float, centre: Tensor) -> Tensor:
    """``(N, shape^3, 3)`` RAS points of axis-aligned cubic grids centred on ``centre (N, 3)``."""
    r = (torch.arange(shape, device=centre.device, dtype=torch.float32) - (shape - 1) / 2) * spacing
    g = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return centre[:, None] + g


def _scan(head: HeadModel, draw: HeadDraw, R: Tensor, t: Tensor, box: tuple[Tensor, Tensor], shape: int, spacing: float,
          centre: Tensor, v: HeadVariation, gen: torch.Generator, effects: Tensor, compiled: bool) -> Tensor:  # fmt: skip
    """The scan on grids of ``shape^3`` voxels of ``spacing`` mm centred on ``centre``: ``(N, s, s, s)``.

    ``effects (N, 5)``: gamma, noise level, blur sigma (output voxels), thick-slice sigma, slice axis.
    """
    n = R.shape[0]
    points = _grid_points(shape, spacing, centre)
    image = _render_grid(head, draw, R, t, shape, spacing, centre, gen, compiled)
    sigma = effects[:, 2:3].expand(n, 3).clone()
    axis = effects[:, 4].long()
    sigma[torch.arange(n), axis] = torch.sqrt(sigma[torch.arange(n), axis] ** 2 + (effects[:, 3] / spacing) ** 2)
    image = batched_blur(image, sigma, radius=max(2, min(8, math.ceil(3 * float(sigma.max())))))
    image = image.clamp_min(0.0) ** effects[:, 0, None, None, None]
    image = rician_noise_batch(image, effects[:, 1], gen)
    inside = ((points - box[0][:, None]).abs() <= box[1][:, None]).all(-1).reshape(image.shape)
    return torch.where(inside, image, 0.0)


def pose_batch(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation = HeadVariation(), *,
               max_translation_mm: float = 20.0, coarse_spacing: float | None = None,
               compiled: bool = False) -> dict[str, Tensor]:  # fmt: skip
    """``n`` Pose-Net inputs: Haar-uniform rotations, views centred on each scan's centroid.

    The view has the atlas grid's size and spacing; its centre is the intensity centroid of the
    scan's foreground (voxels above 10 % of the 99th percentile, as ``threshold_mask``) on a
    coarse view of the whole field of view at ``coarse_spacing`` (default twice the working
    spacing, as ``coarse_centre_of_gravity``). ``compiled``: as ``render_heads``.

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
    t = uniform(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    effects = scanner_draw(n, v, gen, dev)
    m = int(math.ceil(2 * (v.fov_half_mm[1] + v.off_centre_mm) / coarse)) + 1
    view = _scan(head, draw, R, t, box, m, coarse, box[0], v, gen, effects, compiled)
    weights = torch.where(view > 0.1 * view.reshape(n, -1).quantile(0.99, dim=1)[:, None, None, None], view, 0.0)
    points = _grid_points(m, coarse, box[0]).reshape(n, m, m, m, 3)
    centroid = (points * weights[..., None]).sum((1, 2, 3)) / weights.sum((1, 2, 3))[:, None].clamp_min(1e-6)
    image = normalise_batch(_scan(head, draw, R, t, box, shape, spacing, centroid, v, gen, effects, compiled))
    return {"image": image[:, None], "rotation": R, "rotvec": matrix_to_rotvec(R), "translation": t}


def correction_batch(head: HeadModel, n: int, gen: torch.Generator, v: HeadVariation = HeadVariation(), *,
                     max_angle_deg: float = 50.0, max_translation_mm: float = 20.0,
                     compiled: bool = False) -> dict[str, Tensor]:  # fmt: skip
    """``n`` Correction-Net inputs: the scan on the atlas grid under a residual motion, and the atlas.

    The residual ``(R, t)`` has an angle uniform in ``[0, max_angle_deg]`` about a uniform axis
    and ``t`` uniform in ``+-max_translation_mm`` per axis; ``image`` is ``(N, 2, s, s, s)``
    (scan, atlas); the other keys and ``compiled`` as ``pose_batch``.
    """
    from posereg.geometry import matrix_to_rotvec

    dev = gen.device
    atlas = head.atlas.image
    shape, spacing = atlas.shape[0], float(atlas.spacing[0])
    R = random_rotation_with_angle((n,), 0.0, math.radians(max_angle_deg), generator=gen, dtype=torch.float32, device=dev)
    t = uniform(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    effects = scanner_draw(n, v, gen, dev)
    c = atlas.centre.to(device=dev, dtype=torch.float32).expand(n, 3)
    image = normalise_batch(_scan(head, draw, R, t, box, shape, spacing, c, v, gen, effects, compiled))
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
    t = uniform(gen, -max_translation_mm, max_translation_mm, (n, 3), dev)
    draw = draw_heads(head, n, gen, v, dev)
    box = field_of_view(head, R, t, v, gen)
    image = _scan(head, draw, R, t, box, shape, spacing, box[0], v, gen, scanner_draw(n, v, gen, dev), False)
    volumes = [Volume(image[i].cpu(), isotropic_affine((shape,) * 3, spacing, box[0][i].cpu().to(torch.float64)))
               for i in range(n)]  # fmt: skip
    return volumes, R.to(torch.float64), t.to(torch.float64)

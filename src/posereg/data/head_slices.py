"""Single slices of synthetic heads: the slice Pose-Net's training data (Salehi et al. 2018 on SynthSeg heads).

Only the slice's own pixels are rendered (``render_heads`` at ``3 x size^2`` points, not a whole
volume), so a 2-core CPU draws a few hundred slices a second and a slice network can be trained
on whole heads and skull-stripped brains of any contrast without a GPU.

Frames and labels are those of ``posereg.data.slices``: the subject rotated by ``R`` about the
atlas centre ``c`` is cut by the axial plane ``k`` of its stack, pixel ``(i, j)`` at the scan
point ``c + (u_i, v_j, d_k)``; the labels are ``R`` and ``k``. The anatomy, the layers outside
the brain, skull-stripping, contrast and bias come from ``head_synthesis.draw_heads``. On top
of it a slice gets

- an in-plane shift of the subject (the head is not centred in a real slice's field of view;
  a shift within the plane leaves the plane, and so the labels, unchanged);
- the field of view of ``head_synthesis.field_of_view`` in the plane (a tight crop of the brain
  or a box of head and neck);
- a slab profile: thick slices (``HeadVariation.slice_mm``) average three planes across the slab,
  the through-plane partial volume of a 2D acquisition;
- in-plane blur, gamma, Rician noise, then the normalisation of ``preprocess_slice``.
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch
from torch import Tensor

from posereg.data.head_contrast import batched_blur, normalise_batch, rician_noise_batch
from posereg.data.head_draws import HeadDraw, HeadVariation, draw_heads, field_of_view, scanner_draw
from posereg.data.head_model import HeadModel
from posereg.data.head_synthesis import render_heads
from posereg.data.slices import SliceGeometry
from posereg.geometry import matrix_to_rotvec, random_euler_rotation

__all__ = ["head_slice_batch"]


def head_slice_batch(
    head: HeadModel,
    n: int,
    gen: torch.Generator,
    v: HeadVariation = HeadVariation(),
    *,
    geometry: SliceGeometry = SliceGeometry(),
    index_range: tuple[int, int] | None = None,
    x_range_deg: tuple[float, float] = (-90.0, 90.0),
    y_range_deg: tuple[float, float] = (-90.0, 90.0),
    z_range_deg: tuple[float, float] = (-180.0, 180.0),
    in_plane_shift_mm: float = 20.0,
    compiled: bool = False,
) -> dict[str, Tensor]:
    """``n`` slices of synthetic heads with their poses, drawn on the generator's device.

    Args:
        head: the head model (on the generator's device).
        n: slices.
        gen: the only source of randomness.
        v: the ranges of anatomy, appearance and field of view.
        geometry: the slice grid (pixels, spacing, stack).
        index_range: ``[low, high)`` slice indices drawn uniformly (default: the middle 66 % of the
            geometry's stack, Salehi et al.'s and ``SlicePoseDataset``'s).
        x_range_deg, y_range_deg, z_range_deg: extrinsic Euler ranges of ``R`` (default: Salehi et
            al.'s half space, ``half_space_rotation``).
        in_plane_shift_mm: the largest shift of the subject along each in-plane axis.
        compiled: render through ``torch.compile`` (``render_heads``).

    Returns:
        ``image (N, 1, size, size)`` in [0, 1], ``rotation (N, 3, 3)``, ``rotvec (N, 3)`` (radians),
        ``slice_index (N,)``, float32 on the generator's device.
    """
    low, high = geometry.middle_indices(0.66) if index_range is None else index_range
    if not 0 <= low < high <= geometry.stack:
        raise ValueError(f"index_range: expected 0 <= low < high <= {geometry.stack}, got {index_range}")
    if n < 1 or in_plane_shift_mm < 0:
        raise ValueError(f"expected n >= 1 and in_plane_shift_mm >= 0, got n={n}, in_plane_shift_mm={in_plane_shift_mm}")
    dev = gen.device
    lo = [math.radians(r[0]) for r in (x_range_deg, y_range_deg, z_range_deg)]
    hi = [math.radians(r[1]) for r in (x_range_deg, y_range_deg, z_range_deg)]
    R = random_euler_rotation((n,), lo, hi, "xyz", generator=gen, dtype=torch.float32, device=dev)
    k = torch.randint(low, high, (n,), generator=gen, device=dev).float()
    shift = in_plane_shift_mm * (2 * torch.rand((n, 2), generator=gen, device=dev) - 1)
    t = torch.cat((shift, torch.zeros(n, 1, device=dev)), -1)  # in the plane: the labels stay
    draw = draw_heads(head, n, gen, v, dev)
    box_centre, box_half = field_of_view(head, R, t, v, gen)
    effects = scanner_draw(n, v, gen, dev)

    s = geometry.size
    c = head.atlas.image.centre.to(device=dev, dtype=torch.float32)
    axis = (torch.arange(s, device=dev, dtype=torch.float32) - (s - 1) / 2) * geometry.spacing
    uu, vv = torch.meshgrid(axis, axis, indexing="ij")
    plane = torch.stack((uu, vv, torch.zeros_like(uu)), -1).reshape(1, s * s, 3)
    points = c + plane + torch.stack((torch.zeros(n, device=dev),) * 2 + (geometry.offset_mm(k),), -1)[:, None]
    image = render_heads(head, draw, R, t, points.reshape(n, -1, 3), gen, compiled=compiled).reshape(n, s, s)
    # Thick slices: a box slab profile of width w, the mean of planes at -w/3, 0 and +w/3 (the
    # two outer planes rendered only for the thick samples: the rendering is the cost).
    width = effects[:, 3] * math.sqrt(12)
    thick = torch.nonzero(width > 0)[:, 0]
    if len(thick) > 0:
        offsets = width[thick, None] * torch.tensor([-1 / 3, 1 / 3], device=dev)
        slab = points[thick, None] + torch.stack((torch.zeros_like(offsets),) * 2 + (offsets,), -1)[:, :, None]
        sub = HeadDraw(**{f.name: getattr(draw, f.name)[thick] for f in fields(draw)})
        outer = render_heads(head, sub, R[thick], t[thick], slab.reshape(len(thick), -1, 3), gen,
                             compiled=compiled).reshape(-1, 2, s, s)
        image = image.index_copy(0, thick, (image[thick] + outer.sum(1)) / 3)

    sigma = torch.stack((torch.zeros(n, device=dev), effects[:, 2], effects[:, 2]), -1)
    image = batched_blur(image[:, None], sigma, radius=max(2, math.ceil(3 * float(sigma.max()))))[:, 0]
    image = image.clamp_min(0.0) ** effects[:, 0, None, None]
    image = rician_noise_batch(image, effects[:, 1], gen)
    inside = ((points[..., :2] - box_centre[:, None, :2]).abs() <= box_half[:, None, :2]).all(-1).reshape(n, s, s)
    image = normalise_batch(torch.where(inside, image, 0.0))
    return {"image": image[:, None], "rotation": R, "rotvec": matrix_to_rotvec(R), "slice_index": k}

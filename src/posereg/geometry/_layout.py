"""Split a tensor into its trailing components and join components back.

The geometry formulas are written per component (``x, y, z = split(v)``) because
element-wise kernels on contiguous ``(...,)`` tensors are vectorised by PyTorch, while
the same arithmetic on ``(..., 3)`` slices or broadcast outer products is not (on one CPU
core, a broadcast ``v[..., :, None] * v[..., None, :]`` over 1e6 vectors takes 21 ms,
the nine component products 0.6 ms). Joining is the costly step: ``torch.stack(dim=-1)``
of nine 1e6-element tensors takes 18 ms, copying them into the strided columns of one
fresh tensor 7 ms, while for small batches the single ``stack`` call is cheaper than nine
copies. ``join`` picks between them by size; both are differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Below this many output elements one stack() call beats per-column copies (measured on
# one core: equal near 9e3 elements, stack 4x faster at 576, copies 4x faster at 9e5).
_COPY_JOIN_MIN_NUMEL = 16384


def split(x: Tensor) -> tuple[Tensor, ...]:
    """Return the components of ``x`` along its last dimension (views, no copy)."""
    return x.unbind(-1)


def join(components: Sequence[Tensor], trailing: tuple[int, ...]) -> Tensor:
    """Stack equally shaped component tensors into a tensor of shape ``(..., *trailing)``.

    Args:
        components: ``prod(trailing)`` tensors of one broadcast shape ``(...)``, in
            row-major order of ``trailing``.
        trailing: the trailing shape of the result, e.g. ``(3, 3)``.

    Returns:
        A contiguous tensor of shape ``(..., *trailing)``.
    """
    comps = torch.broadcast_tensors(*components)
    batch = comps[0].shape
    numel = comps[0].numel() * len(comps)
    if numel < _COPY_JOIN_MIN_NUMEL or torch.compiler.is_compiling():
        out = torch.stack(comps, dim=-1)
    else:
        out = torch.empty(
            (*batch, len(comps)), dtype=comps[0].dtype, device=comps[0].device
        )
        for j, c in enumerate(comps):
            out[..., j] = c
    return out.reshape(*batch, *trailing)

"""Input validation shared by the geometry functions.

Every error names the argument and the expected shape, in one format::

    rotvec: expected a floating-point tensor of shape (..., 3), got shape (4, 2)

The finiteness check is the expensive part of validation at large batch sizes
(``isfinite(x).all()`` reads and writes the whole tensor: 13 ms for 1e6 matrices on one
core), so it first checks ``isfinite(x.sum())`` (one read, 0.7 ms) and only re-checks
element by element when that sum is not finite (it may overflow for huge, finite inputs).
Checks are skipped while ``torch.compile`` traces, where data-dependent branches would
break the graph. The optional fused C kernels (``posereg.accel.fused``, outside this
layer) check shapes here and finiteness through a checksum they compute in the same pass.

Rotation matrices are checked by ``check_rotation_matrix`` (``posereg.geometry._rotation_check``);
arguments of one call must share dtype and device and have broadcastable batch shapes
(``check_compatible``). float16 and bfloat16 inputs are computed in float32 (``upcast``) and
the results returned in the input's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def shape_str(trailing: tuple[int, ...]) -> str:
    """Format a trailing shape as ``(..., 3, 3)``."""
    return "(..., " + ", ".join(str(d) for d in trailing) + ")"


def check_tensor(x: object, trailing: tuple[int, ...], name: str, *, finite: bool = True) -> Tensor:
    """Check that ``x`` is a floating tensor of shape ``(..., *trailing)`` with finite values.

    Args:
        x: the value to check.
        trailing: the expected trailing dimensions, e.g. ``(3, 3)``.
        name: the argument name used in the error message.
        finite: also reject NaN and infinite entries.

    Returns:
        ``x`` itself, so that calls can be chained.

    Raises:
        ValueError: wrong type, dtype, trailing shape, or non-finite values; the message
            names ``name`` and the expected shape.
    """
    expected = f"a floating-point tensor of shape {shape_str(trailing)}"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected {expected}, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name}: expected {expected}, got dtype {x.dtype}")
    n = len(trailing)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != trailing:
        raise ValueError(f"{name}: expected {expected}, got shape {tuple(x.shape)}")
    if finite and not torch.compiler.is_compiling() and x.numel() > 0:
        if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: expected {expected} with finite values, found NaN or inf")
    return x


def check_same_dtype_device(a: Tensor, b: Tensor, names: str) -> None:
    """Raise ValueError when two tensors differ in dtype or device."""
    if a.dtype != b.dtype or a.device != b.device:
        raise ValueError(
            f"{names}: expected the same dtype and device, got {a.dtype}/{a.device} and "
            f"{b.dtype}/{b.device}"
        )


def check_compatible(names: str, tensors: Sequence[Tensor], trailing: Sequence[int]) -> tuple[int, ...]:
    """Check that the arguments of one call can be computed together.

    Args:
        names: the argument names, comma separated, for the message (``"R1, R2"``).
        tensors: the (already shape-checked) tensors.
        trailing: for each tensor, how many of its last dimensions are not batch dimensions.

    Returns:
        The broadcast batch shape.

    Raises:
        ValueError: tensors of different dtypes or devices, or batch shapes that do not
            broadcast (``R1, R2: expected broadcastable batch shapes, got (4,) and (5,)``).
    """
    first = tensors[0]
    if any(x.dtype != first.dtype or x.device != first.device for x in tensors[1:]):
        got = " and ".join(f"{x.dtype}/{x.device}" for x in tensors)
        raise ValueError(f"{names}: expected the same dtype and device, got {got}")
    batches = [tuple(x.shape[: x.dim() - n]) for x, n in zip(tensors, trailing, strict=True)]
    try:
        return broadcast_shapes(*batches)
    except ValueError:
        got = " and ".join(str(b) for b in batches)
        raise ValueError(f"{names}: expected broadcastable batch shapes, got {got}") from None


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to (NumPy's rules, as ``torch.broadcast_shapes``).

    Written out because the first call of ``torch.broadcast_shapes`` in a process imports
    ``torch._refs`` (0.45 s on this machine), a cost every ``posereg register`` paid.

    Raises:
        ValueError: two sizes other than 1 differ along an axis.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for sizes in zip(*((1,) * (ndim - len(s)) + tuple(int(n) for n in s) for s in shapes), strict=True):
        kept = {n for n in sizes if n != 1}
        if len(kept) > 1:
            raise ValueError(f"shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast")
        out.append(kept.pop() if kept else 1)
    return tuple(out)


def at_index(flat: int, batch: tuple[int, ...]) -> str:
    """`` at index (i, j)`` of the ``flat``-th element of a batch of shape ``batch``; ``""`` for
    an empty batch shape (one element), for error messages."""
    if not batch:
        return ""
    return f" at index {tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), batch))}"


def without_autocast(device_type: str) -> AbstractContextManager[object]:
    """Autocast turned off on ``device_type`` where it is on (matrix products keep their inputs'
    dtype); nothing to do where it is off or where autocast does not know the device type (meta)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return nullcontext()
    return torch.autocast(device_type, enabled=False) if enabled else nullcontext()


def upcast(x: Tensor) -> Tensor:
    """``x`` in the dtype the formulas run in: float32 for float16 and bfloat16, else ``x``.

    Half-precision arithmetic rounds after every operation (and some CPU kernels, such as
    ``linalg.svd``, do not exist for it); computing in float32 and rounding the result once
    gives answers accurate to the half dtype's own precision.
    """
    return x.float() if x.dtype in HALF_DTYPES else x


def check_finite_by_product(by_product: Tensor, inputs: dict[str, Tensor], trailing: tuple[int, ...]) -> None:
    """Finiteness check of ``inputs`` through a quantity computed from all their entries.

    ``by_product`` must be non-finite wherever any input entry is NaN or inf (true of sums
    of products of every entry: ``inf * 0`` is NaN). One reduction of it replaces a pass
    over each input; only when it is not finite are the inputs checked entry by entry, so
    an overflow of finite values is not reported as an error.

    Raises:
        ValueError: naming the first input with NaN or inf and the expected shape.
    """
    if torch.compiler.is_compiling() or by_product.numel() == 0:
        return
    if bool(torch.isfinite(by_product.sum())):
        return
    for name, x in inputs.items():
        check_tensor(x, trailing, name)

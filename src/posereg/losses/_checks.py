"""Argument checks shared by the losses (one error format with the geometry core)."""

from __future__ import annotations

from torch import Tensor

from posereg.geometry._checks import check_same_dtype_device, check_tensor, shape_str


def check_pair(pred: Tensor, target: Tensor, trailing: tuple[int, ...], names: tuple[str, str]) -> None:
    """Check ``pred`` and ``target``: shape ``(..., *trailing)``, finite, and equal shapes.

    Losses do not broadcast predictions against targets: a silently broadcast batch
    (``(B, 3)`` against ``(1, B, 3)``) averages the wrong pairs.

    Raises:
        ValueError: naming the arguments and the expected shape.
    """
    check_tensor(pred, trailing, names[0])
    check_tensor(target, trailing, names[1])
    if pred.shape != target.shape:
        raise ValueError(
            f"{names[0]}, {names[1]}: expected equal shapes {shape_str(trailing)}, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    check_same_dtype_device(pred, target, f"{names[0]}, {names[1]}")

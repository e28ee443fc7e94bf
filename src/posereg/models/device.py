"""Where inference runs: a device name checked against what this machine has."""

from __future__ import annotations

import torch

__all__ = ["inference_device"]


def inference_device(name: str | torch.device) -> torch.device:
    """The ``torch.device`` of ``name`` ('cpu', 'cuda', 'cuda:1', 'mps'), if this machine has it.

    Raises:
        ValueError: not a device name, or a device this machine lacks (no CUDA, an index beyond
            the GPUs present, no MPS), with what is available.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"--device {name!r}: not a device name (cpu, cuda, cuda:N, mps)") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: this machine has no usable CUDA GPU (torch {torch.__version__}); use cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: only {count} CUDA GPU(s) here (cuda:0 ... cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: expected cpu, cuda, cuda:N or mps")
    return device

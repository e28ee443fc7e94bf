"""Relocalisation images: reading, PoseNet-style resize/crop/normalise, and the intrinsics that follow.

Images are ``(C, H, W)`` float tensors with pixel centres at integer ``(u, v)`` (OpenCV); random
crops draw from an explicit ``torch.Generator`` only (no global RNG).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = [
    "ImageTransform", "adjust_intrinsics", "center_crop", "channel_statistics", "image_size", "load_rgb",
    "normalize_channels", "random_crop", "resize_shorter",
]  # fmt: skip


def load_rgb(path: str | Path) -> Tensor:
    """``(3, H, W)`` float32 RGB image in [0, 1] (Pillow; any mode is converted to RGB)."""
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file, from its header only (no pixels are decoded).

    Raises:
        FileNotFoundError: no such file. ValueError: not an image Pillow can read, naming the file.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None
    if h < 1 or w < 1:
        raise ValueError(f"{path}: not a readable image (size {w} x {h})")
    return h, w


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3 or not image.dtype.is_floating_point:
        raise ValueError(f"image: expected a floating-point (C, H, W) tensor, got {getattr(image, 'shape', image)}")


def _offset(hw: Sequence[int], size: int | Sequence[int], generator: torch.Generator | None) -> tuple[int, int]:
    """``(top, left)`` of an ``(h, w)`` crop of an ``hw`` image: centred, or uniform from ``generator``."""
    h, w = (size, size) if isinstance(size, int) else size
    if not (0 < h <= hw[0] and 0 < w <= hw[1]):
        raise ValueError(f"size: crop {(h, w)} empty or larger than the image {tuple(hw)}")
    if generator is None:
        return (hw[0] - h) // 2, (hw[1] - w) // 2
    top = int(torch.randint(hw[0] - h + 1, (), generator=generator))
    return top, int(torch.randint(hw[1] - w + 1, (), generator=generator))


def _crop(image: Tensor, size: int | Sequence[int], offset: tuple[int, int]) -> Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, offset[0] : offset[0] + h, offset[1] : offset[1] + w]


def resize_shorter(image: Tensor, size: int) -> Tensor:
    """Resize ``(C, H, W)`` so the shorter side is ``size`` (the longer rounded; bilinear, antialiased)."""
    _check_image(image)
    h, w = image.shape[-2:]
    out = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    return F.interpolate(image[None], size=out, mode="bilinear", align_corners=False, antialias=True)[0]


def center_crop(image: Tensor, size: int | Sequence[int]) -> Tensor:
    """Central ``(h, w)`` window of ``(C, H, W)``, at ``((H - h) // 2, (W - w) // 2)``."""
    _check_image(image)
    return _crop(image, size, _offset(image.shape[-2:], size, None))


def random_crop(image: Tensor, size: int | Sequence[int], generator: torch.Generator) -> Tensor:
    """A uniformly placed ``(h, w)`` window of ``(C, H, W)``, drawn from ``generator`` only."""
    _check_image(image)
    return _crop(image, size, _offset(image.shape[-2:], size, generator))


def normalize_channels(image: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``(image - mean) / std`` per channel of ``(C, H, W)``; ``mean``, ``std`` have ``C`` entries."""
    _check_image(image)
    mean_t, std_t = (torch.as_tensor(v, dtype=image.dtype).reshape(-1, 1, 1) for v in (mean, std))
    if mean_t.shape[0] != image.shape[0] or std_t.shape[0] != image.shape[0] or not bool((std_t > 0).all()):
        raise ValueError(f"mean, std: expected {image.shape[0]} values each, std > 0; got {mean}, {std}")
    return (image - mean_t) / std_t


def channel_statistics(images: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-channel ``(C,)`` float64 mean and population std over all pixels of all ``(C, H, W)`` images."""
    total, total_sq, count = 0.0, 0.0, 0
    for image in images:
        _check_image(image)
        x = image.to(torch.float64).flatten(1)
        total, total_sq, count = total + x.sum(1), total_sq + (x * x).sum(1), count + x.shape[1]
    if not count:
        raise ValueError("images: expected at least one non-empty image")
    mean = total / count
    return mean, (total_sq / count - mean * mean).clamp_min(0).sqrt()


def adjust_intrinsics(K: Tensor, scale: float | Sequence[float], crop_offset: Sequence[int] = (0, 0)) -> Tensor:
    """``(..., 3, 3)`` pixel intrinsics after resizing by ``scale`` then cropping at ``crop_offset``.

    Pixel centres are integer coordinates, so resizing (``align_corners=False``) maps ``u`` to
    ``s (u + 1/2) - 1/2``; a crop at ``(top, left)`` subtracts ``(left, top)`` from ``(u, v)``.
    ``scale`` is new/old size, one factor or ``(scale_y, scale_x)`` (``resize_shorter`` rounds the
    longer side); ``crop_offset`` is ``(top, left)`` in resized pixels. Same dtype as ``K``.
    """
    sy, sx = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
    top, left = crop_offset
    A = [[sx, 0.0, 0.5 * sx - 0.5 - left], [0.0, sy, 0.5 * sy - 0.5 - top], [0.0, 0.0, 1.0]]
    return torch.tensor(A, dtype=K.dtype, device=K.device) @ K


@dataclass(frozen=True)
class ImageTransform:
    """PoseNet-style preprocessing: ``resize_shorter`` -> crop -> ``normalize_channels``.

    ``resize``: shorter side (pixels) or ``None``; ``crop``: ``h`` or ``(h, w)`` or ``None``;
    ``mean``/``std``: per-channel statistics (``channel_statistics``) or ``None``; ``train``:
    random crops from an explicit generator instead of centre crops.
    """

    resize: int | None = 256
    crop: int | tuple[int, int] | None = 224
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    train: bool = False

    def apply(
        self, image: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, tuple[float, float], tuple[int, int]]:
        """``(output (C, h, w), (scale_y, scale_x), (top, left))``: the image and its geometry."""
        _check_image(image)
        h0, w0 = image.shape[-2:]
        if self.resize is not None:
            image = resize_shorter(image, self.resize)
        scale, offset = (image.shape[-2] / h0, image.shape[-1] / w0), (0, 0)
        if self.crop is not None:
            if self.train and generator is None:
                raise ValueError("generator: random crops (train=True) need an explicit torch.Generator")
            offset = _offset(image.shape[-2:], self.crop, generator if self.train else None)
            image = _crop(image, self.crop, offset)
        if self.mean is not None or self.std is not None:
            C = image.shape[0]
            image = normalize_channels(image, self.mean or (0.0,) * C, self.std or (1.0,) * C)
        return image, scale, offset

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The transformed ``(C, h, w)`` image (a random crop from ``generator`` when training)."""
        return self.apply(image, generator)[0]

    def intrinsics(self, K: Tensor, original_hw: Sequence[int]) -> Tensor:
        """``(..., 3, 3)`` intrinsics of the output of an ``original_hw`` image (centre crop)."""
        empty = torch.zeros(1, int(original_hw[0]), int(original_hw[1]))
        _, scale, offset = ImageTransform(self.resize, self.crop).apply(empty)
        return adjust_intrinsics(K, scale, offset)

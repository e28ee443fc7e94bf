"""Relocalisation images: reading, resize and crops, normalisation, and the intrinsics that follow them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg.data.reloc import (
    ImageTransform,
    adjust_intrinsics,
    center_crop,
    channel_statistics,
    load_rgb,
    normalize_channels,
    random_crop,
    resize_shorter,
)
from posereg.geometry import project_points
from tests.data.reloc.conftest import save_png


def test_load_rgb(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3))
    save_png(tmp_path / "a.png", array)
    save_png(tmp_path / "g.png", array[..., 0])  # greyscale -> 3 equal channels
    image = load_rgb(tmp_path / "a.png")
    assert image.shape == (3, 5, 7) and image.dtype == torch.float32
    np.testing.assert_allclose(image.numpy(), array.transpose(2, 0, 1) / 255.0, atol=1e-7)
    grey = load_rgb(tmp_path / "g.png")
    assert torch.equal(grey[0], grey[2]) and torch.equal(grey[0], image[0])


def test_resize_and_crops() -> None:
    image = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    assert resize_shorter(image, 24).shape == (3, 24, 32)
    assert resize_shorter(image.transpose(1, 2), 24).shape == (3, 32, 24)
    assert resize_shorter(torch.rand(3, 1080, 1920), 256).shape == (3, 256, 455)  # PoseNet's 455x256
    flat = resize_shorter(torch.full((3, 40, 50), 0.25), 17)  # antialiased resize keeps a constant
    torch.testing.assert_close(flat, torch.full_like(flat, 0.25))
    assert torch.equal(center_crop(image, 32), image[:, 8:40, 16:48])
    assert torch.equal(center_crop(image, (10, 21)), image[:, 19:29, 21:42])
    with pytest.raises(ValueError, match="larger than the image"):
        center_crop(image, 50)


def test_random_crop_uses_only_its_generator() -> None:
    image = torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(1))
    state = torch.random.get_rng_state()
    a = random_crop(image, 16, torch.Generator().manual_seed(7))
    b = random_crop(image, 16, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    crops = [random_crop(image, 16, torch.Generator().manual_seed(s)) for s in range(10)]
    assert len({c.sum().item() for c in crops}) > 1
    windows = {image[:, i : i + 16, j : j + 16].sum().item() for i in range(15) for j in range(25)}
    assert all(c.shape == (3, 16, 16) and c.sum().item() in windows for c in crops)


def test_normalisation_from_own_statistics() -> None:
    gen = torch.Generator().manual_seed(2)
    images = [torch.rand(3, h, w, generator=gen) * torch.tensor([1.0, 0.5, 2.0]).reshape(3, 1, 1) + 0.3
              for h, w in [(8, 9), (5, 13), (11, 4)]]  # fmt: skip
    mean, std = channel_statistics(iter(images))
    pooled = torch.cat([img.flatten(1) for img in images], 1).double()
    torch.testing.assert_close(mean, pooled.mean(1))
    normalised = torch.cat([normalize_channels(img, mean.tolist(), std.tolist()).flatten(1) for img in images], 1)
    torch.testing.assert_close(normalised.double().mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalised.double().std(1, correction=0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="std > 0"):
        normalize_channels(images[0], mean, [1.0, 0.0, 1.0])


def blob_image(hw: tuple[int, int], uv: tuple[float, float], sigma: float) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(hw[0], dtype=torch.float64), torch.arange(hw[1], dtype=torch.float64), indexing="ij")
    return torch.exp(-((u - uv[0]) ** 2 + (v - uv[1]) ** 2) / (2 * sigma**2)).expand(3, *hw).clone()


def centroid(image: torch.Tensor) -> torch.Tensor:
    w = image[0].double()
    v, u = torch.meshgrid(torch.arange(w.shape[0], dtype=torch.float64), torch.arange(w.shape[1], dtype=torch.float64), indexing="ij")
    return torch.stack([(w * u).sum() / w.sum(), (w * v).sum() / w.sum()])


def project(K: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    eye, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    return project_points(eye, zero, point[None], K)[0][0]


@settings(max_examples=20, deadline=None)
@given(top=st.integers(0, 20), left=st.integers(0, 20), x=st.floats(-0.3, 0.3), y=st.floats(-0.3, 0.3))
def test_adjusted_intrinsics_follow_a_crop_exactly(top: int, left: int, x: float, y: float) -> None:
    K = torch.tensor([[40.0, 0, 31.0], [0, 40.0, 23.0], [0, 0, 1]], dtype=torch.float64)
    point = torch.tensor([x, y, 1.0], dtype=torch.float64)
    u, v = project(K, point).round().long().tolist()  # mark the nearest pixel of the projection
    image = torch.zeros(3, 48, 64)
    image[:, v, u] = 1.0
    crop = image[:, top : top + 24, left : left + 30]
    uv = project(adjust_intrinsics(K, 1.0, (top, left)), point)
    if 0 <= u - left < 30 and 0 <= v - top < 24:
        assert crop[0, round(uv[1].item()), round(uv[0].item())] == 1.0
    torch.testing.assert_close(uv, project(K, point) - torch.tensor([left, top], dtype=torch.float64))


def test_adjusted_intrinsics_follow_resize_and_crop() -> None:
    K = torch.tensor([[50.0, 0, 40.0], [0, 50.0, 30.0], [0, 0, 1]], dtype=torch.float64)
    point = torch.tensor([0.13, -0.07, 1.0], dtype=torch.float64)
    image = blob_image((60, 80), tuple(project(K, point).tolist()), sigma=4.0)
    transform = ImageTransform(resize=30, crop=(24, 28))
    out, scale, offset = transform.apply(image.float())
    assert out.shape == (3, 24, 28) and scale == (0.5, 0.5) and offset == (3, 6)
    K2 = transform.intrinsics(K, (60, 80))
    torch.testing.assert_close(K2, adjust_intrinsics(K, scale, offset))
    # The blob's centre in the output is where the adjusted intrinsics project the point;
    # the naive u -> s u (no half-pixel shift) would be 0.25 px off.
    torch.testing.assert_close(centroid(out), project(K2, point), atol=0.03, rtol=0)


def test_image_transform_pipeline() -> None:
    image = torch.rand(3, 45, 60, generator=torch.Generator().manual_seed(3))
    eval_tf = ImageTransform(resize=30, crop=24, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    expected = (center_crop(resize_shorter(image, 30), 24) - 0.5) / 0.25
    torch.testing.assert_close(eval_tf(image), expected)
    train_tf = ImageTransform(resize=30, crop=24, train=True)
    with pytest.raises(ValueError, match="generator"):
        train_tf(image)
    a = train_tf(image, torch.Generator().manual_seed(4))
    assert torch.equal(a, random_crop(resize_shorter(image, 30), 24, torch.Generator().manual_seed(4)))

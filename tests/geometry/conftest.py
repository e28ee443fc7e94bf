"""Shared inputs for the geometry tests: adversarial angles and axes, dtypes, scipy helpers."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

ADVERSARIAL_ANGLES = (0.0, 1e-8, math.pi - 1e-6, math.pi)
AXES = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, -2.0, 3.0),
    (-0.3, 0.1, -0.9),
)
DTYPES = (torch.float32, torch.float64)
# Max error vs scipy (float64 reference): the targets of issue 2.
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def adversarial_rotvecs() -> np.ndarray:
    """(24, 3) float64 rotation vectors: every adversarial angle about every axis."""
    out = []
    for angle in ADVERSARIAL_ANGLES:
        for axis in AXES:
            a = np.asarray(axis) / np.linalg.norm(axis)
            out.append(a * angle)
    return np.asarray(out)


def random_rotvecs(n: int, seed: int, max_angle: float = math.pi) -> np.ndarray:
    """Rotation vectors with uniform axes and angles uniform in [0, max_angle)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0, max_angle, size=(n, 1))


def scipy_quat(q_xyzw: np.ndarray) -> np.ndarray:
    """scipy's scalar-last quaternions to posereg's scalar-first (w, x, y, z)."""
    return q_xyzw[..., [3, 0, 1, 2]]


def to_scipy(q_wxyz: np.ndarray) -> np.ndarray:
    return q_wxyz[..., [1, 2, 3, 0]]


def matrices_from_rotvecs(rv: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rv).as_matrix()

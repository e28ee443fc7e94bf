"""Rebuilding a network from its ``spec`` and weights (what training saves): shared by the model families."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from posereg.models.heads import ROTATION_HEADS, RotationHead


def rotation_head_class(name: str) -> type[RotationHead]:
    """The rotation head called ``name`` in a spec ('rotvec', 'quaternion', 'sixd', 'svd9d')."""
    if name not in ROTATION_HEADS:
        raise ValueError(f"spec: rotation_head must be one of {sorted(ROTATION_HEADS)}, got {name!r}")
    return ROTATION_HEADS[name]


def network_from_spec(spec: Mapping[str, Any], builders: Mapping[str, Callable[..., nn.Module]],
                      default_head: str) -> nn.Module:  # fmt: skip
    """Build the network a ``net.spec`` mapping describes.

    Args:
        spec: ``{"network": kind, "rotation_head": name, **constructor arguments}``.
        builders: the network classes by ``kind``.
        default_head: the rotation head of specs that name none.

    Raises:
        ValueError: an unknown ``network`` or ``rotation_head``, or bad arguments.
    """
    kwargs = dict(spec)
    kind = kwargs.pop("network", None)
    if kind not in builders:
        raise ValueError(f"spec: expected a {' or '.join(sorted(builders))} network, got {kind!r}")
    kwargs["rotation_head"] = rotation_head_class(kwargs.pop("rotation_head", default_head))
    try:
        return builders[kind](**kwargs)
    except TypeError as exc:
        raise ValueError(f"spec: bad arguments for a {kind} network ({exc})") from exc


def network_from_payload(payload: Mapping[str, Any], build: Callable[[Mapping[str, Any]], nn.Module], kind: str) -> nn.Module:
    """``build(payload["spec"])`` with ``payload["state_dict"]`` loaded, in eval mode.

    Raises:
        ValueError: missing keys, a bad spec, or weights that do not fit it.
    """
    if not isinstance(payload, Mapping) or "spec" not in payload or "state_dict" not in payload:
        raise ValueError(f"payload: expected a posereg {kind} network with keys 'spec' and 'state_dict'")
    net = build(payload["spec"])
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"payload: the weights do not fit the spec ({exc})") from exc
    return net.eval()

"""PoseNet (Kendall & Cipolla 2017): a camera's position and orientation from one image.

A 2D residual backbone (MONAI's ``ResNet``, basic blocks 2-2-2-2, standing in for the
paper's GoogLeNet, which needs torchvision), global pooling, dropout, a fully connected
layer with ReLU, then two heads: the position ``p`` (metres, world frame) and the
orientation (a unit quaternion ``(w, x, y, z)``, ``w >= 0``, by default; any
``RotationHead``). Both are of the camera-to-world pose: ``p`` is the camera centre, the
rotation maps camera axes to world axes (``posereg.geometry.camera``).

The position head starts at the training cameras' mean centre (``position_offset``) and
works in units of their spread (``position_scale``): the losses stay in metres, as the
papers define them, while the last layer sees values of order one in rooms and streets
alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from posereg.models._payload import network_from_payload, network_from_spec
from posereg.models.heads import QuaternionHead, RotationHead, TranslationHead

__all__ = ["PoseNet", "load_backbone_weights", "load_posenet", "posenet_from_spec"]


class PoseNet(nn.Module):
    """Camera pose regression network (Kendall & Cipolla 2017).

    Args:
        width: MONAI's ``widen_factor`` (1: 64-128-256-512 channels).
        stem_stride: stride of the first 7x7 convolution (2 as in ImageNet ResNets).
        dropout: dropout probability before the fully connected layer (0 to disable).
        fc_features: width of the fully connected layer (PoseNet: 2048).
        position_offset: ``(3,)`` metres added to the position head (the training mean).
        position_scale: metres per unit of the position head's linear output.
        image_mean, image_std: per-channel statistics that ``forward`` normalises images with
            (those of the training images), so that the network takes images in [0, 1].
        rotation_head: the head class (default ``QuaternionHead``).

    ``forward`` returns ``(rotation (N, *representation.trailing), position (N, 3))``.
    """

    def __init__(
        self,
        width: float = 1.0,
        stem_stride: int = 2,
        dropout: float = 0.5,
        fc_features: int = 1024,
        position_offset: Sequence[float] = (0.0, 0.0, 0.0),
        position_scale: float = 1.0,
        image_mean: Sequence[float] = (0.0, 0.0, 0.0),
        image_std: Sequence[float] = (1.0, 1.0, 1.0),
        rotation_head: type[RotationHead] = QuaternionHead,
    ) -> None:
        super().__init__()
        from monai.networks.nets import ResNet
        from monai.networks.nets.resnet import ResNetBlock

        if not width > 0 or stem_stride not in (1, 2) or not 0 <= dropout < 1 or fc_features < 1:
            raise ValueError(
                "width, stem_stride, dropout, fc_features: expected width > 0, stride 1 or 2, dropout in [0, 1) "
                f"and fc_features >= 1, got {width}, {stem_stride}, {dropout}, {fc_features}"
            )
        if len(position_offset) != 3:
            raise ValueError(f"position_offset: expected 3 values (metres), got {position_offset!r}")
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(f"image_mean, image_std: expected 3 values each, std > 0, got {image_mean!r}, {image_std!r}")
        self.backbone = ResNet(
            block=ResNetBlock, layers=[2, 2, 2, 2], block_inplanes=[64, 128, 256, 512], spatial_dims=2,
            n_input_channels=3, conv1_t_stride=stem_stride, widen_factor=width, feed_forward=False,
        )  # fmt: skip
        self.regressor = nn.Sequential(nn.Dropout(dropout), nn.Linear(int(512 * width), fc_features), nn.ReLU())
        self.rotation = rotation_head(fc_features)
        self.position = TranslationHead(fc_features, scale=position_scale)
        self.register_buffer("position_offset", torch.tensor([float(v) for v in position_offset]))
        self.register_buffer("image_mean", torch.tensor([float(v) for v in image_mean]).view(3, 1, 1))
        self.register_buffer("image_std", torch.tensor([float(v) for v in image_std]).view(3, 1, 1))
        self.spec = {
            "network": "posenet", "width": float(width), "stem_stride": int(stem_stride), "dropout": float(dropout),
            "fc_features": int(fc_features), "position_offset": [float(v) for v in position_offset],
            "position_scale": float(position_scale), "image_mean": [float(v) for v in image_mean],
            "image_std": [float(v) for v in image_std], "rotation_head": rotation_head.representation.name,
        }  # fmt: skip

    @property
    def representation(self):  # type: ignore[no-untyped-def]
        """The rotation representation of the output."""
        return self.rotation.representation

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, 3, H, W)`` RGB images in [0, 1] -> ``(rotation, position (N, 3) metres)``."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image: expected a tensor of shape (N, 3, H, W), got {tuple(image.shape)}")
        features = self.regressor(self.backbone((image - self.image_mean) / self.image_std))
        return self.rotation(features), self.position(features) + self.position_offset

    def to_matrix(self, rotation: Tensor) -> Tensor:
        """Rotation output -> ``(N, 3, 3)`` camera-to-world rotation matrices."""
        return self.rotation.to_matrix(rotation)


def load_backbone_weights(net: PoseNet, path: str | Path) -> None:
    """Load backbone weights (e.g. a pretrained ResNet-18) from a local state-dict file.

    Accepts a plain backbone state dict, or one whose keys carry a ``backbone.`` prefix (a
    whole ``PoseNet`` state dict, from which only the backbone is taken). Loading is safe
    (``weights_only``); nothing is downloaded.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a state dict, or keys or shapes that do not fit the backbone (the
            message lists the first mismatches).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    own = net.backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: the weights do not fit the backbone (width {net.spec['width']}): missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}"
        )
    net.backbone.load_state_dict(state)


def posenet_from_spec(spec: Mapping[str, Any]) -> PoseNet:
    """Build the ``PoseNet`` a ``net.spec`` mapping describes.

    Raises:
        ValueError: not a PoseNet spec, an unknown rotation head or bad arguments.
    """
    return network_from_spec(spec, {"posenet": PoseNet}, "quaternion")  # type: ignore[return-value]


def load_posenet(payload: Mapping[str, Any]) -> PoseNet:
    """A ``PoseNet`` from ``{"spec", "state_dict"}`` (what training saves), in eval mode."""
    return network_from_payload(payload, posenet_from_spec, "posenet")  # type: ignore[return-value]

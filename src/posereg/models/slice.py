"""Salehi et al. (2018)'s 2D->3D network: where in the atlas a single slice lies.

``SlicePoseNet``: an 18-layer 2D residual network (MONAI's ``ResNet``, basic blocks
2-2-2-2) maps a slice ``(N, 1, H, W)`` to features, and two heads give the rotation of the
slice's volume (``pi * tanh`` rotation vector by default, any ``RotationHead``) and the slice
index in the rotated stack (``scale * relu``; see ``posereg.data.slices`` for the frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from posereg.models._payload import network_from_payload, network_from_spec
from posereg.models.heads import RotationHead, RotvecHead, SliceIndexHead

__all__ = ["SlicePoseNet", "load_slice_network", "slice_network_from_spec"]


class SlicePoseNet(nn.Module):
    """Rotation and slice index of a 2D slice (Salehi et al. 2018, 2D->3D Pose-Net).

    Args:
        width: MONAI's ``widen_factor`` (1: 64-128-256-512 channels).
        stem_stride: stride of the first 7x7 convolution (1 as in MONAI; 2 as in the
            ImageNet ResNet, a quarter of the work).
        index_scale: output scale of the slice-index head (e.g. the stack size).
        rotation_head: the head class (default ``RotvecHead``).

    ``forward`` returns ``(rotation (N, ...), slice_index (N,))``.
    """

    def __init__(
        self,
        width: float = 1.0,
        stem_stride: int = 1,
        index_scale: float = 64.0,
        rotation_head: type[RotationHead] = RotvecHead,
    ) -> None:
        super().__init__()
        from monai.networks.nets import ResNet
        from monai.networks.nets.resnet import ResNetBlock

        if not width > 0 or stem_stride not in (1, 2):
            raise ValueError(f"width, stem_stride: expected width > 0 and stride 1 or 2, got {width}, {stem_stride}")
        self.backbone = ResNet(
            block=ResNetBlock, layers=[2, 2, 2, 2], block_inplanes=[64, 128, 256, 512], spatial_dims=2,
            n_input_channels=1, conv1_t_stride=stem_stride, widen_factor=width, feed_forward=False,
        )  # fmt: skip
        features = int(512 * width)
        self.rotation = rotation_head(features)
        self.slice_index = SliceIndexHead(features, scale=index_scale)
        self.spec = {"network": "slice", "width": float(width), "stem_stride": int(stem_stride),
                     "index_scale": float(index_scale), "rotation_head": rotation_head.representation.name}  # fmt: skip

    @property
    def representation(self):  # type: ignore[no-untyped-def]
        """The rotation representation of the output."""
        return self.rotation.representation

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, 1, H, W)`` slices -> ``(rotation (N, *representation.trailing), slice_index (N,))``."""
        if image.dim() != 4 or image.shape[1] != 1:
            raise ValueError(f"image: expected a tensor of shape (N, 1, H, W), got {tuple(image.shape)}")
        features = self.backbone(image)
        return self.rotation(features), self.slice_index(features)

    def to_matrix(self, rotation: Tensor) -> Tensor:
        """Rotation output -> ``(N, 3, 3)``."""
        return self.rotation.to_matrix(rotation)


def slice_network_from_spec(spec: Mapping[str, Any]) -> SlicePoseNet:
    """Build the ``SlicePoseNet`` a ``net.spec`` mapping describes.

    Raises:
        ValueError: not a slice network, an unknown rotation head or bad arguments.
    """
    return network_from_spec(spec, {"slice": SlicePoseNet}, "rotvec")  # type: ignore[return-value]


def load_slice_network(payload: Mapping[str, Any]) -> SlicePoseNet:
    """A ``SlicePoseNet`` from ``{"spec", "state_dict"}`` (what training saves), in eval mode.

    Raises:
        ValueError: missing keys, a bad spec, or weights that do not fit it.
    """
    return network_from_payload(payload, slice_network_from_spec, "slice")  # type: ignore[return-value]

"""Salehi et al. (2018)'s 3D networks: the volume Pose-Net and the Correction-Net.

Feature extractor (Salehi et al. 2018, their 3D->3D network; the kernel size, lost from the text, is taken as 3): 3x3x3 convolutions with 8, 32, 32,
64, 64 kernels, each with batch normalisation and ReLU, 3D max-pooling by 2 before the 2nd
and 3rd convolution; then fully connected layers 512, 512, 256 (BN + ReLU) and an output
head. Flattening a 16^3 x 64 map into FC-512 would need 134 M weights (0.5 GB), so posereg
adaptively average-pools the last map to ``pooled_size^3`` first (default 4: 2.6 M
weights); every size is configurable, and ``pool_before`` can add pooling to trade accuracy
for speed on a CPU.

- ``VolumePoseNet``: one channel (the moving volume) -> rotation (``pi * tanh`` rotation
  vector by default, any ``RotationHead``).
- ``CorrectionNet``: two channels (the moving volume after the Pose-Net's rotation, and the
  atlas) -> a residual rotation and a translation (mm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from posereg.models._payload import network_from_payload, network_from_spec
from posereg.models.heads import RotationHead, RotvecHead, TranslationHead

__all__ = [
    "CorrectionNet", "VolumeEncoder", "VolumePoseNet", "load_volume_network", "volume_network_from_spec",
]  # fmt: skip


def _plain(encoder: Mapping[str, Any]) -> dict[str, Any]:
    """Encoder arguments as plain lists and ints (storable with ``weights_only`` loading)."""
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in encoder.items()}


def _mlp(in_features: int, sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_features, size), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
        in_features = size
    return nn.Sequential(*layers)


class VolumeEncoder(nn.Module):
    """3D convolutional feature extractor: ``(N, C, D, H, W) -> (N, fc[-1])``.

    Args:
        in_channels: input channels.
        channels: kernels of each 3x3x3 convolution (paper: 8, 32, 32, 64, 64).
        pool_before: 0-based indices of the convolutions preceded by 2x max-pooling
            (paper: 1 and 2).
        fc: fully connected sizes (paper: 512, 512, 256).
        pooled_size: the last feature map is average-pooled to this size per axis.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 32, 32, 64, 64),
        pool_before: Sequence[int] = (1, 2),
        fc: Sequence[int] = (512, 512, 256),
        pooled_size: int = 4,
    ) -> None:
        super().__init__()
        if not channels or not fc:
            raise ValueError("channels, fc: expected at least one convolution and one fully connected layer")
        bad = [i for i in pool_before if not 0 <= i < len(channels)]
        if bad:
            raise ValueError(f"pool_before: indices {bad} are not convolutions 0..{len(channels) - 1}")
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            if i in pool_before:
                layers.append(nn.MaxPool3d(2))
            layers += [nn.Conv3d(previous, width, 3, padding=1, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
            previous = width
        layers.append(nn.AdaptiveAvgPool3d(pooled_size))
        self.features = nn.Sequential(*layers)
        self.mlp = _mlp(previous * pooled_size**3, fc)
        self.in_channels = in_channels
        self.out_features = fc[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, D, H, W)`` volumes -> ``(N, out_features)`` features."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected a tensor of shape (N, {self.in_channels}, D, H, W), got {tuple(x.shape)}")
        return self.mlp(self.features(x).flatten(1))


class VolumePoseNet(nn.Module):
    """Rotation of a volume relative to the atlas frame (Salehi et al. 2018, 3D->3D Pose-Net).

    Args:
        rotation_head: the head class (default ``RotvecHead``, the paper's ``pi * tanh``).
        **encoder: ``VolumeEncoder`` arguments (``channels``, ``pool_before``, ``fc``, ``pooled_size``).

    ``forward`` returns the head's representation; ``to_matrix`` turns it into rotations
    ``R`` such that the volume's content is the atlas rotated by ``R`` about the grid centre.
    """

    def __init__(self, rotation_head: type[RotationHead] = RotvecHead, **encoder: object) -> None:
        super().__init__()
        self.encoder = VolumeEncoder(in_channels=1, **encoder)  # type: ignore[arg-type]
        self.rotation = rotation_head(self.encoder.out_features)
        self.spec = {"network": "pose", "rotation_head": rotation_head.representation.name, **_plain(encoder)}

    @property
    def representation(self):  # type: ignore[no-untyped-def]
        """The rotation representation of the output."""
        return self.rotation.representation

    def forward(self, volume: Tensor) -> Tensor:
        """``(N, 1, D, H, W)`` -> ``(N, *representation.trailing)``."""
        return self.rotation(self.encoder(volume))

    def to_matrix(self, output: Tensor) -> Tensor:
        """Head output -> ``(N, 3, 3)`` rotations."""
        return self.rotation.to_matrix(output)


class CorrectionNet(nn.Module):
    """Residual rotation and translation between a roughly aligned volume and the atlas.

    Args:
        translation_scale_mm: output scale of the translation head (the typical residual, mm).
        rotation_head: the head class (default ``RotvecHead``).
        **encoder: ``VolumeEncoder`` arguments.

    ``forward`` takes ``(N, 2, D, H, W)`` (moving, atlas) and returns ``(rotation, translation)``:
    the head's representation and ``(N, 3)`` millimetres.
    """

    def __init__(
        self, translation_scale_mm: float = 15.0, rotation_head: type[RotationHead] = RotvecHead, **encoder: object
    ) -> None:
        super().__init__()
        self.encoder = VolumeEncoder(in_channels=2, **encoder)  # type: ignore[arg-type]
        self.rotation = rotation_head(self.encoder.out_features)
        self.translation = TranslationHead(self.encoder.out_features, scale=translation_scale_mm)
        self.spec = {"network": "correction", "translation_scale_mm": float(translation_scale_mm),
                     "rotation_head": rotation_head.representation.name, **_plain(encoder)}  # fmt: skip

    @property
    def representation(self):  # type: ignore[no-untyped-def]
        """The rotation representation of the output."""
        return self.rotation.representation

    def forward(self, pair: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, 2, D, H, W)`` -> ``(rotation (N, ...), translation (N, 3))``."""
        features = self.encoder(pair)
        return self.rotation(features), self.translation(features)

    def to_matrix(self, rotation: Tensor) -> Tensor:
        """Rotation output -> ``(N, 3, 3)``."""
        return self.rotation.to_matrix(rotation)


def volume_network_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Build the network a ``net.spec`` mapping describes.

    Raises:
        ValueError: an unknown ``network`` or ``rotation_head``, or unknown arguments.
    """
    return network_from_spec(spec, {"pose": VolumePoseNet, "correction": CorrectionNet}, "rotvec")


def load_volume_network(payload: Mapping[str, Any]) -> nn.Module:
    """A network from ``{"spec": ..., "state_dict": ...}`` (what ``posereg train volume`` saves), in eval mode.

    Raises:
        ValueError: missing keys, a bad spec, or weights that do not fit it.
    """
    return network_from_payload(payload, volume_network_from_spec, "volume")

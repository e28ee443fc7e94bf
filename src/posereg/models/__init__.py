"""Networks for pose regression: output heads, backbones and the papers' networks (volume and
slice Pose-Nets, Correction-Net, PoseNet for camera relocalisation)."""

from posereg.models.fusion import PairwiseMaxPool, fuse_batch_norm, inference_copy
from posereg.models.heads import (
    ROTATION_HEADS,
    QuaternionHead,
    RotationHead,
    RotvecHead,
    SixDHead,
    SliceIndexHead,
    SVD9DHead,
    TranslationHead,
)
from posereg.models.posenet import PoseNet, load_backbone_weights, load_posenet, posenet_from_spec
from posereg.models.volume import (
    CorrectionNet,
    VolumeEncoder,
    VolumePoseNet,
    load_volume_network,
    volume_network_from_spec,
)

__all__ = [
    "ROTATION_HEADS", "CorrectionNet", "PairwiseMaxPool", "PoseNet", "QuaternionHead", "RotationHead", "RotvecHead", "SVD9DHead", "SixDHead", "SliceIndexHead",
    "TranslationHead", "VolumeEncoder", "VolumePoseNet", "fuse_batch_norm", "inference_copy", "load_backbone_weights", "load_posenet", "load_volume_network",
    "posenet_from_spec", "volume_network_from_spec",
]  # fmt: skip

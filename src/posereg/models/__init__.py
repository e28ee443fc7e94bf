"""Networks for pose regression: output heads, backbones and the papers' networks."""

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
from posereg.models.volume import (
    CorrectionNet,
    VolumeEncoder,
    VolumePoseNet,
    fuse_batch_norm,
    load_volume_network,
    volume_network_from_spec,
)

__all__ = [
    "ROTATION_HEADS", "CorrectionNet", "QuaternionHead", "RotationHead", "RotvecHead", "SVD9DHead", "SixDHead", "SliceIndexHead",
    "TranslationHead", "VolumeEncoder", "VolumePoseNet", "fuse_batch_norm", "load_volume_network", "volume_network_from_spec",
]  # fmt: skip

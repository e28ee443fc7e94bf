"""Networks for pose regression: output heads, backbones and the papers' networks."""

from posereg.models.heads import (
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
    load_volume_network,
    volume_network_from_spec,
)

__all__ = [
    "CorrectionNet", "QuaternionHead", "RotationHead", "RotvecHead", "SVD9DHead", "SixDHead", "SliceIndexHead",
    "TranslationHead", "VolumeEncoder", "VolumePoseNet", "load_volume_network", "volume_network_from_spec",
]  # fmt: skip

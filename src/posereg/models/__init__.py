"""Networks for pose regression: output heads, backbones and the papers' networks."""

from posereg.models.heads import (
    QuaternionHead,
    RotationHead,
    RotvecHead,
    SliceIndexHead,
    SixDHead,
    SVD9DHead,
    TranslationHead,
)

__all__ = ["QuaternionHead", "RotationHead", "RotvecHead", "SVD9DHead", "SixDHead", "SliceIndexHead", "TranslationHead"]

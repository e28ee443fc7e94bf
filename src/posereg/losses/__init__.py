"""Geometric pose losses of the three seed papers, as pure functions and thin modules.

Every loss takes ``(pred, target)`` in that order, checks shapes (no silent broadcasting
of predictions against targets) and has ``reduction`` 'mean' | 'sum' | 'none'.

- Kendall & Cipolla (2017): ``posenet_loss`` (beta-weighted), ``HomoscedasticWeighting``
  (learned weights), ``reprojection_loss`` (geometric fine-tuning loss).
- Salehi et al. (2018): ``rotvec_mse_loss`` (stage 1), ``so3_geodesic_loss`` (stage 2).
- Hou et al. (2018): ``se3_geodesic_loss`` with metric ``W`` from ``estimate_metric_weights``,
  the closed-form and tangent-space gradients.
- Mattes et al. (2003): ``parzen_mutual_information``, the multi-modal similarity of the
  deep pipeline's intensity refinement.
- ``PoseLoss``: rotation + translation terms with fixed, learned or metric weights.
"""

from posereg.losses.homoscedastic import HomoscedasticWeighting, homoscedastic_weighted_sum
from posereg.losses.mutual_information import cubic_bspline, intensity_bins, parzen_mutual_information
from posereg.losses.pose import (
    FixedWeighting,
    MetricWeighting,
    PoseLoss,
    QuaternionDistance,
    TranslationDistance,
)
from posereg.losses.posenet import PoseNetLoss, normalize_quaternion, posenet_loss, quaternion_distance
from posereg.losses.reprojection import (
    ReprojectionLoss,
    ReprojectionResiduals,
    reprojection_loss,
    reprojection_residuals,
)
from posereg.losses.rotation import RotvecMSELoss, SO3GeodesicLoss, rotvec_mse_loss, so3_geodesic_loss
from posereg.losses.se3_geodesic import (
    SE3GeodesicLoss,
    chart_metric,
    estimate_metric_weights,
    pose_spread,
    se3_geodesic_gradient,
    se3_geodesic_loss,
    se3_geodesic_tangent_gradient,
)

__all__ = [
    "FixedWeighting", "HomoscedasticWeighting", "MetricWeighting", "PoseLoss", "PoseNetLoss",
    "QuaternionDistance", "ReprojectionLoss", "ReprojectionResiduals", "RotvecMSELoss", "SE3GeodesicLoss",
    "SO3GeodesicLoss", "TranslationDistance", "chart_metric", "estimate_metric_weights",
    "cubic_bspline", "homoscedastic_weighted_sum", "intensity_bins", "normalize_quaternion", "parzen_mutual_information", "pose_spread", "posenet_loss",
    "quaternion_distance", "reprojection_loss", "reprojection_residuals", "rotvec_mse_loss",
    "se3_geodesic_gradient", "se3_geodesic_loss", "se3_geodesic_tangent_gradient", "so3_geodesic_loss",
]  # fmt: skip

"""Pure tensor geometry of rotations and rigid transforms (no nn.Module, no I/O).

Conventions: rotation matrices ``(..., 3, 3)`` acting on column vectors; rotation vectors
``(..., 3)`` in radians; quaternions scalar first ``(w, x, y, z)``; poses ``(R, t)`` or
``(..., 4, 4)``. Every function takes any leading batch dimensions, float32 or float64,
CPU or CUDA, and is differentiable with finite values and gradients at angles 0 and pi.
float16 and bfloat16 inputs are computed in float32 and the results returned in the input's
dtype.

Bad input raises ValueError naming the argument: wrong shape or dtype, NaN or inf, arguments
of different dtypes or devices or with batch shapes that do not broadcast, quaternions too
small to normalise (largest ``|q_i|`` below ``torch.finfo(dtype).tiny``), and matrices that
are not rotations where rotations are expected (``check_rotation_matrix``: ``max |R^T R - I|``
within ``rotation_tolerance(dtype)``, 1e-3 in float32 and float64, and ``det R = +1``). Every
function taking rotation matrices has a keyword ``check_rotation=True``; pass False to skip
the check for matrices known to be rotations (the library's own internal calls do).
"""

from posereg.geometry._rotation_check import check_rotation_matrix, rotation_tolerance
from posereg.geometry.camera import project_points, world_to_camera
from posereg.geometry.continuous import matrix_to_sixd, sixd_to_matrix, svd9d_to_matrix
from posereg.geometry.euler import euler_to_matrix, euler_to_quaternion, matrix_to_euler
from posereg.geometry.jacobian import so3_right_jacobian, so3_right_jacobian_inverse
from posereg.geometry.quaternion import (
    canonicalize_quaternion,
    matrix_to_quaternion,
    quaternion_angle,
    quaternion_conjugate,
    quaternion_multiply,
    quaternion_to_matrix,
    quaternion_to_rotvec,
    rotvec_to_quaternion,
)
from posereg.geometry.representation import (
    MATRIX,
    QUATERNION,
    REPRESENTATIONS,
    ROTVEC,
    SIXD,
    SVD9D,
    RotationRepresentation,
)
from posereg.geometry.sampling import (
    random_euler_rotation,
    random_rotation,
    random_rotation_with_angle,
    super_fibonacci_rotations,
)
from posereg.geometry.se3 import (
    compose,
    from_homogeneous,
    inverse,
    is_block_isotropic,
    metric_inner,
    metric_norm,
    riemannian_log,
    se3_exp,
    se3_log,
    so3r3_exp,
    so3r3_log,
    squared_geodesic_distance,
    to_homogeneous,
    transform_points,
)
from posereg.geometry.so3 import (
    chordal_mean,
    geodesic_distance,
    hat,
    karcher_mean,
    matrix_to_rotvec,
    project_to_so3,
    rotvec_to_matrix,
    vee,
)

__all__ = [
    "MATRIX", "QUATERNION", "REPRESENTATIONS", "ROTVEC", "SIXD", "SVD9D", "RotationRepresentation",
    "canonicalize_quaternion", "check_rotation_matrix", "chordal_mean", "compose", "euler_to_matrix",
    "euler_to_quaternion", "from_homogeneous", "geodesic_distance", "hat", "inverse", "is_block_isotropic",
    "karcher_mean", "matrix_to_euler", "matrix_to_quaternion", "matrix_to_rotvec", "matrix_to_sixd",
    "metric_inner", "metric_norm", "project_points", "project_to_so3", "quaternion_angle",
    "quaternion_conjugate", "quaternion_multiply", "quaternion_to_matrix", "quaternion_to_rotvec",
    "random_euler_rotation", "random_rotation", "random_rotation_with_angle", "riemannian_log",
    "rotation_tolerance", "rotvec_to_matrix", "rotvec_to_quaternion", "se3_exp", "se3_log", "sixd_to_matrix",
    "so3_right_jacobian", "so3_right_jacobian_inverse", "so3r3_exp", "so3r3_log", "squared_geodesic_distance",
    "super_fibonacci_rotations", "svd9d_to_matrix", "to_homogeneous", "transform_points", "vee",
    "world_to_camera",
]  # fmt: skip

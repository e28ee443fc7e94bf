"""Camera relocalisation data (Kendall & Cipolla 2017): real and synthetic scenes, one entry point.

- ``poses``: ``CameraPoses`` (camera-to-world, metres) and image names;
- ``cambridge``, ``seven_scenes``: the readers of Cambridge Landmarks (with NVM reconstructions)
  and 7-Scenes, and their intrinsics;
- ``images``: reading, PoseNet's resize/crop/normalise and the intrinsics that follow;
  ``frames``: ``RelocalisationDataset`` (image files and poses as items);
- ``scene``: synthetic scenes (boxes, camera paths, landmarks); ``render``: ray casting and
  ``RenderedScene``; ``cache``: the render cache;
- ``config``: the ``data`` section; ``build``: ``relocalisation_data(data_config)``, the one
  entry point that builds the training and test datasets.

No global RNG is used.
"""

from posereg.data.reloc.build import RelocalisationData, relocalisation_data
from posereg.data.reloc.cache import TEST_SEED_BASE, rendered_splits
from posereg.data.reloc.cambridge import (
    NVMReconstruction,
    nvm_intrinsics,
    points_seen_by,
    read_cambridge_poses,
    read_nvm,
)
from posereg.data.reloc.config import RelocDataConfig
from posereg.data.reloc.frames import RelocalisationDataset
from posereg.data.reloc.images import (
    ImageTransform,
    adjust_intrinsics,
    center_crop,
    channel_statistics,
    load_rgb,
    normalize_channels,
    random_crop,
    resize_shorter,
)
from posereg.data.reloc.poses import CameraPoses, dataset_image_name, image_key
from posereg.data.reloc.render import RenderedScene, SceneDataset, render_images, render_scene, visible_points
from posereg.data.reloc.scene import (
    SCENES,
    Box,
    CameraPath,
    SyntheticScene,
    camera_path_poses,
    look_rotation,
    room_scene,
    scene_points,
    street_scene,
    synthetic_scene,
)
from posereg.data.reloc.seven_scenes import (
    SEVEN_SCENES_FOCAL,
    SEVEN_SCENES_IMAGE_HW,
    SEVEN_SCENES_PRINCIPAL_POINT,
    read_seven_scenes,
    read_seven_scenes_split,
    seven_scenes_intrinsics,
)

__all__ = [
    "SCENES", "SEVEN_SCENES_FOCAL", "SEVEN_SCENES_IMAGE_HW", "SEVEN_SCENES_PRINCIPAL_POINT", "TEST_SEED_BASE", "Box",
    "CameraPath", "CameraPoses", "ImageTransform", "NVMReconstruction", "RelocDataConfig", "RelocalisationData",
    "RelocalisationDataset", "RenderedScene", "SceneDataset", "SyntheticScene", "adjust_intrinsics",
    "camera_path_poses", "center_crop", "channel_statistics", "dataset_image_name", "image_key", "load_rgb",
    "look_rotation", "normalize_channels", "nvm_intrinsics", "points_seen_by", "random_crop", "read_cambridge_poses",
    "read_nvm", "read_seven_scenes", "read_seven_scenes_split", "relocalisation_data", "render_images",
    "render_scene", "rendered_splits", "resize_shorter", "room_scene", "scene_points", "seven_scenes_intrinsics",
    "street_scene", "synthetic_scene", "visible_points",
]  # fmt: skip

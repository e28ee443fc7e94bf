"""The bundled default atlas: the MNI152 2009a template that nilearn installs (no download).

``load_atlas`` resamples it onto posereg's working grid (default 64^3 voxels of 3 mm,
centred on the brain's centre of mass, RAS-aligned) and normalises intensities to [0, 1].
Two contrasts: the T1-weighted template itself, and a T2-like image synthesised from the
template's grey- and white-matter probability maps with cerebrospinal fluid bright
(``T2 = 1.0 CSF + 0.6 GM + 0.3 WM``, CSF = brain mask minus GM and WM), for the modality
experiments.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posereg.data.grid import Contrast, WorkingGrid
from posereg.data.resample import resample_to_grid
from posereg.data.volume import Volume, brain_mask, load_nifti, normalize_intensity

__all__ = ["Atlas", "Contrast", "load_atlas", "load_mni152", "mni152_grid"]


@dataclass(frozen=True)
class Atlas:
    """An atlas image and its brain mask on one grid.

    Attributes:
        image: the intensities, in [0, 1].
        mask: ``(I, J, K)`` booleans, the brain.
        contrast: which MRI contrast ``image`` has.
    """

    image: Volume
    mask: Tensor
    contrast: Contrast


_MNI152_T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"  # what nilearn's load_mni152_template reads


def _nilearn_image(name: str, resolution_mm: int):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's FutureWarnings about its own defaults
        from nilearn import datasets

        return getattr(datasets, name)(resolution=resolution_mm)


def _as_volume(image) -> Volume:  # type: ignore[no-untyped-def]
    data = torch.from_numpy(np.asarray(image.get_fdata(dtype=np.float32)).copy())
    return Volume(data, torch.as_tensor(np.asarray(image.affine, dtype=np.float64)))


def load_mni152(contrast: Contrast = Contrast.T1, resolution_mm: int = 1) -> Atlas:
    """The MNI152 2009a template at its native 1 or 2 mm grid, skull-stripped.

    Args:
        contrast: ``Contrast.T1`` (the template) or ``Contrast.T2`` (synthesised, see module doc).
        resolution_mm: 1 or 2, the nilearn grid.

    Returns:
        ``Atlas`` on the template grid (MNI space, RAS, mm), intensities in [0, 1] inside the mask.
    """
    if resolution_mm not in (1, 2):
        raise ValueError(f"resolution_mm: expected 1 or 2, got {resolution_mm!r}")
    mask_volume = _as_volume(_nilearn_image("load_mni152_brain_mask", resolution_mm))
    mask = mask_volume.data > 0.5
    if contrast is Contrast.T1:
        data = _as_volume(_nilearn_image("load_mni152_template", resolution_mm)).data
    elif contrast is Contrast.T2:
        gm = _as_volume(_nilearn_image("load_mni152_gm_template", resolution_mm)).data
        wm = _as_volume(_nilearn_image("load_mni152_wm_template", resolution_mm)).data
        csf = (mask.float() - gm - wm).clamp(0.0, 1.0)
        data = 1.0 * csf + 0.6 * gm + 0.3 * wm
    else:
        raise ValueError(f"contrast: expected a Contrast, got {contrast!r}")
    data = torch.where(mask, data, 0.0)
    return Atlas(Volume(normalize_intensity(data, mask), mask_volume.affine), mask, contrast)


def mni152_grid() -> Volume:
    """The grid of the 1 mm MNI152 2009a template (MNI space, RAS, mm; the data are zeros).

    Read from the header of the file nilearn ships, without importing nilearn or reading voxels
    (milliseconds instead of the second ``load_mni152`` takes): the default output grid of
    aligned images.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / _MNI152_T1_FILE
        if path.is_file():
            return load_nifti(path, grid_only=True)
    image = load_mni152(Contrast.T1, resolution_mm=1).image  # another nilearn layout: read it the slow way
    return Volume(torch.zeros(image.shape), image.affine)


def _centre_of_mass(volume: Volume, weights: Tensor) -> Tensor:
    w = weights.to(torch.float64).reshape(-1, 1)
    return (volume.world_coordinates().reshape(-1, 3) * w).sum(0) / w.sum()


def load_atlas(grid: WorkingGrid | None = None, image: Volume | None = None, *, cache: bool = True) -> Atlas:
    """The atlas on a working grid: RAS-aligned, centred on the centre of mass of the brain mask.

    Args:
        grid: the working grid (default ``WorkingGrid()``: MNI152 T1, 64^3 voxels of 3 mm).
        image: a user's atlas image (any orientation, skull-stripped works best); default the
            MNI152 2009a template of nilearn in ``grid.contrast`` (``load_mni152``). A user image
            is taken as it is, whatever ``grid.contrast`` says; its brain mask is ``brain_mask``.
        cache: keep the template on this grid in posereg's cache folder (``_files.cache_root``,
            subfolder ``atlas``; private, keyed by the grid and the nilearn version) and read it
            from there next time: building it from the 1 mm template takes seconds, reading it
            milliseconds. User images are never cached.

    Returns:
        ``Atlas`` on the grid (MNI space for the template; the image's world frame otherwise,
        RAS mm): intensities normalised to [0, 1] over the brain (``normalize_intensity``), the
        mask is the resampled brain mask thresholded at 0.5.

    Raises:
        ValueError: an image without foreground.
    """
    grid = WorkingGrid() if grid is None else grid
    if image is None and cache:
        return _cached_template(grid)
    if image is None:
        native = load_mni152(grid.contrast, grid.resolution_mm)
        source, mask = native.image, native.mask
    else:
        mask = brain_mask(image.data.float())
        if not bool(mask.any()):
            raise ValueError("atlas image: no foreground (an empty or constant image)")
        source = image.with_data(normalize_intensity(image.data.float(), mask))
    # One centring rule for every atlas: the grid centre is the brain's centre of mass.
    centre = _centre_of_mass(source, mask)
    resampled = resample_to_grid(source, grid.size, grid.spacing, centre)
    on_grid = resample_to_grid(source.with_data(mask.float()), grid.size, grid.spacing, centre).data > 0.5
    return Atlas(resampled.with_data(resampled.data.clamp(0.0, 1.0)), on_grid, grid.contrast)


def _cached_template(grid: WorkingGrid) -> Atlas:
    """``load_atlas(grid, cache=False)``, read from or written to the private atlas cache."""
    from importlib.metadata import version

    from posereg._files import atomic_path, cache_root, private_folder

    folder = private_folder(cache_root() / "atlas")
    name = f"mni152-{grid.contrast.value}-{grid.shape}-{grid.spacing:g}mm-from{grid.resolution_mm}mm-nilearn{version('nilearn')}.pt"
    if folder is not None and (folder / name).is_file():
        try:
            stored = torch.load(folder / name, map_location="cpu", weights_only=True)
            image, mask, affine = stored["image"], stored["mask"], stored["affine"]
            if image.shape == grid.size and mask.shape == grid.size and mask.dtype == torch.bool:
                return Atlas(Volume(image, affine), mask, grid.contrast)
        except Exception:  # noqa: S110 - a damaged cache file is rebuilt below
            pass
    atlas = load_atlas(grid, cache=False)
    if folder is not None:
        try:
            with atomic_path(folder / name) as tmp:
                torch.save({"image": atlas.image.data, "mask": atlas.mask, "affine": atlas.image.affine}, tmp)
        except OSError:  # a read-only or full cache: work without it
            pass
    return atlas

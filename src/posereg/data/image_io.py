"""Images in the formats 3D Slicer, ITK-SNAP and scanners use: NIfTI, NRRD, MetaImage, DICOM series.

``load_image`` reads any of them into a ``Volume`` in the closest canonical (RAS+) voxel order
(axes permuted and flipped, never resampled), checking the header before any voxel is read
(``image_checks.check_header``); ``save_image`` writes by extension, atomically. NIfTI goes
through nibabel (``load_nifti``/``save_nifti``: the reference implementation of its qform and
sform rules); NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``, ``.mhd``) and DICOM series (a
folder of one series) through SimpleITK, whose geometry is LPS: ``to_sitk_image`` and
``from_sitk_image`` convert, ``x_LPS = F x_RAS`` with ``F = diag(-1, -1, 1)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from posereg.data.image_checks import ImageLimits, check_header
from posereg.data.nifti_voxels import reoriented
from posereg.data.volume import Volume, XformCode, load_nifti, save_nifti

__all__ = ["IMAGE_SUFFIXES", "NIFTI_SUFFIXES", "SITK_SUFFIXES", "WRITABLE_SUFFIXES", "canonical", "from_sitk_image", "load_image",
           "save_image", "stored_image_dtype", "to_sitk_image"]  # fmt: skip

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + SITK_SUFFIXES
WRITABLE_SUFFIXES = NIFTI_SUFFIXES + (".nrrd", ".mha")
_F = np.diag([-1.0, -1.0, 1.0])


def to_sitk_image(volume: Volume):  # type: ignore[no-untyped-def]
    """SimpleITK image (LPS geometry, float32) of a ``Volume`` (RAS). Arrays are (k, j, i) in SimpleITK."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.data.detach().cpu().to(torch.float32).numpy().transpose(2, 1, 0))
    A = _F @ volume.affine[:3, :3].cpu().numpy()
    spacing = np.linalg.norm(A, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((A / spacing).flatten().tolist())
    image.SetOrigin((_F @ volume.affine[:3, 3].cpu().numpy()).tolist())
    return image


def from_sitk_image(image) -> Volume:  # type: ignore[no-untyped-def]
    """``Volume`` (RAS) of a 3D SimpleITK image."""
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ValueError(f"image: expected a 3D SimpleITK image, got {image.GetDimension()}D")
    # (k, j, i) C order is (i, j, k) in Fortran order: kept as it is (as ``load_nifti`` keeps a
    # file's order), no transposing copy.
    data = sitk.GetArrayFromImage(image).astype(np.float32, copy=False).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _F @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = _F @ np.asarray(image.GetOrigin())
    return Volume(torch.from_numpy(data), torch.from_numpy(affine))


def canonical(volume: Volume) -> Volume:
    """``volume`` with its axes permuted and flipped to the closest RAS+ order (no resampling), as
    ``load_nifti`` orders a NIfTI file's (``nifti_voxels.reoriented``: no transposing copy)."""
    data, affine = reoriented(volume.data, volume.affine.cpu().numpy())
    return Volume(data, torch.from_numpy(affine))


def load_image(path: str | Path, limits: ImageLimits | None = None, *, grid_only: bool = False) -> Volume:
    """Read a 3D image (NIfTI, NRRD, MetaImage, or a folder holding one DICOM series).

    Args:
        path: the file, or the DICOM folder.
        limits: bounds on the grid checked from the header (default ``ImageLimits()``).
        grid_only: read the header only (a reference grid): the data are zeros.

    Returns:
        ``Volume`` (float32 data, float64 RAS affine) in the closest canonical voxel order.

    Raises:
        FileNotFoundError: no such file or folder. ValueError: an unknown format, an unreadable
            file, not 3D, complex or vector pixels, a folder without exactly one DICOM series,
            a grid outside ``limits``, non-finite or all-zero data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image file or DICOM folder")
    name = path.name.lower()
    if path.is_file() and name.endswith(NIFTI_SUFFIXES):
        return load_nifti(path, limits, grid_only=grid_only)
    if path.is_file() and not name.endswith(SITK_SUFFIXES):
        raise ValueError(f"{path}: unknown image format (expected {', '.join(IMAGE_SUFFIXES)} or a DICOM folder)")
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader() if path.is_dir() else sitk.ImageFileReader()
    if path.is_dir():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if len(series) != 1:
            raise ValueError(f"{path}: expected a folder with one DICOM series, found {len(series)}")
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
        header = sitk.ImageFileReader()
        header.SetFileName(files[0])
        reader.SetFileNames(files)
        count = len(files)
    else:
        header = reader
        reader.SetFileName(str(path))
        count = 1
    try:
        header.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable image ({str(exc).strip().splitlines()[-1]})") from None
    size = list(header.GetSize()) + [1] * (3 - header.GetDimension())
    size[2] = size[2] * count if path.is_dir() else size[2]
    if header.GetNumberOfComponents() != 1:
        raise ValueError(f"{path}: {header.GetNumberOfComponents()} components per voxel (a vector or complex image); "
                         "select one scalar image first")  # fmt: skip
    spacing = list(header.GetSpacing()) + [1.0] * (3 - header.GetDimension())
    check_header(size, spacing, str(path), ImageLimits() if limits is None else limits)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{path}: the image data cannot be read ({str(exc).strip().splitlines()[-1]})") from None
    if image.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    volume = canonical(from_sitk_image(image))
    if grid_only:
        return volume.with_data(torch.zeros(volume.shape))
    if not bool(torch.isfinite(volume.data).all()):
        raise ValueError(f"{path}: the image contains NaN or inf")
    if not bool(volume.data.any()):
        raise ValueError(f"{path}: the image is all zero")
    return volume


def stored_image_dtype(path: str | Path) -> np.dtype:
    """The voxel type an image file (or the first file of a DICOM folder) stores, from its header."""
    from posereg.data.volume import stored_dtype

    path = Path(path)
    if path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES):
        return stored_dtype(path)
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    if path.is_dir():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise ValueError(f"{path}: no DICOM series")
        reader.SetFileName(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])[0])
    else:
        reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable image ({str(exc).strip().splitlines()[-1]})") from None
    return sitk.GetArrayFromImage(sitk.Image([1, 1, 1], reader.GetPixelID())).dtype


def save_image(volume: Volume, path: str | Path, *, xform_code: XformCode = XformCode.SCANNER,
               data_dtype: np.dtype | None = None) -> None:  # fmt: skip
    """Write ``volume`` by extension (NIfTI with ``save_nifti``; NRRD, MetaImage with SimpleITK), atomically.

    ``xform_code`` applies to NIfTI only; ``data_dtype`` (e.g. a label map's integer type) to all.

    Raises:
        ValueError: an unknown extension, or values ``data_dtype`` cannot hold.
    """
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        save_nifti(volume, path, xform_code=xform_code, data_dtype=data_dtype)
        return
    if not name.endswith(WRITABLE_SUFFIXES):
        raise ValueError(f"{path}: images are written as .nii, .nii.gz, .nrrd or .mha")
    import SimpleITK as sitk

    from posereg._files import atomic_path

    image = to_sitk_image(volume)
    if data_dtype is not None and np.dtype(data_dtype) != np.float32:
        array = np.rint(sitk.GetArrayFromImage(image)).astype(np.dtype(data_dtype))
        typed = sitk.GetImageFromArray(array)
        typed.CopyInformation(image)
        image = typed
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)

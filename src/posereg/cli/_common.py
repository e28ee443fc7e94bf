"""What several commands share: the model, atlas and grid arguments, and time formatting."""

from __future__ import annotations

import argparse

INTERPOLATIONS = ("nearest", "linear", "bspline")  # posereg.registration.apply.Interpolation (not imported: --help stays fast)

__all__ = ["INTERPOLATIONS", "add_atlas_arguments", "atlas_on", "load_model", "reference_grid", "seconds_text",
           "working_grid"]


def seconds_text(s: float) -> str:
    """``'850 ms'`` below a second, ``'1.2 s'`` above."""
    return f"{1000 * s:.0f} ms" if s < 1 else f"{s:.1f} s"


def add_atlas_arguments(p: argparse.ArgumentParser) -> None:
    """``--atlas`` and ``--atlas-contrast`` (default: the model's grid)."""
    p.add_argument("--atlas", help="atlas image (NIfTI, NRRD, MHA/MHD or a DICOM folder; default: the MNI152 2009a "
                                   "template on the model's grid)")  # fmt: skip
    p.add_argument("--atlas-contrast", choices=("t1", "t2"),
                   help="contrast of the bundled atlas (default: the one the model was trained on)")  # fmt: skip


def working_grid(args: argparse.Namespace, grid):  # type: ignore[no-untyped-def]
    """The model's ``WorkingGrid`` with the command's overrides (``--atlas-contrast``, and
    ``--grid-size``/``--spacing`` where the command has them), validated.

    Raises:
        ValueError: an override out of range.
    """
    from posereg.data import WorkingGrid

    record = grid.record()
    for key, value in (("contrast", args.atlas_contrast), ("shape", getattr(args, "grid_size", None)),
                       ("spacing", getattr(args, "spacing", None))):  # fmt: skip
        if value is not None:
            record[key] = value
    return WorkingGrid.from_record(record, "the working grid")


def atlas_on(args: argparse.Namespace, grid):  # type: ignore[no-untyped-def]
    """The atlas of ``--atlas`` (or the bundled template) on ``grid``.

    Raises:
        FileNotFoundError, ValueError: an unreadable or empty atlas image.
    """
    from posereg.data import load_atlas
    from posereg.data.image_io import load_image

    return load_atlas(grid, None if args.atlas is None else load_image(args.atlas))


def load_model(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The pipeline model of ``--model``, or the bundled one.

    Raises:
        FileNotFoundError, ValueError: a missing or bad model file.
    """
    from posereg.registration import load_pipeline_model, pretrained_pipeline_path

    return load_pipeline_model(args.model if args.model is not None else pretrained_pipeline_path())


def reference_grid(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The output grid of a resampled image and its NIfTI frame code: ``--reference``, else
    ``--atlas``, else the 1 mm MNI152 template (only the grid is used).

    Raises:
        FileNotFoundError, ValueError: an unreadable image.
    """
    from posereg.data import XformCode, mni152_grid
    from posereg.data.image_io import load_image

    path = args.reference if args.reference is not None else getattr(args, "atlas", None)
    if path is not None:
        return load_image(path, grid_only=True), XformCode.ALIGNED
    return mni152_grid(), XformCode.MNI152

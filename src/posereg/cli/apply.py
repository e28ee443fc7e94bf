"""``posereg apply``: resample an image (a scan, a label map, another contrast) through a transform."""

from __future__ import annotations

import argparse

from posereg.cli._common import INTERPOLATIONS, reference_grid

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "apply",
        help="resample an image through a transform of 'posereg register' (scans, label maps, other contrasts)",
        description="The output at each voxel of the reference grid is the moving image at T(x), T the transform "
        "file (reference/atlas -> moving, as 'posereg register' writes it): the same as SimpleITK's "
        "Resample(moving, reference, T). --inverse applies T^-1 instead (an image from the atlas side onto the "
        "scan: pass the scan as --reference). Label maps: --interpolation nearest keeps their values and type.",
    )
    p.add_argument("transform", help="the transform file (ITK .tfm/.txt/.h5 or .mat, as written by 'posereg register')")
    p.add_argument("moving", help="the image to resample (NIfTI, NRRD, MHA/MHD or a DICOM folder)")
    p.add_argument("--reference", help="the output grid (any readable image; default: the 1 mm MNI152 template grid)")
    p.add_argument("--out", required=True, help="the output image (.nii, .nii.gz, .nrrd or .mha)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default="linear",
                   help="nearest for label maps, linear (default) or bspline for scans")  # fmt: skip
    p.add_argument("--inverse", action="store_true", help="apply the inverse transform")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resample and write; prints what was written."""
    from posereg._files import check_outputs
    from posereg.data.image_io import WRITABLE_SUFFIXES, load_image, save_image, stored_image_dtype
    from posereg.registration import read_rigid_transform
    from posereg.registration.apply import Interpolation, resample_rigid

    check_outputs({"--out": args.out}, [args.transform, args.moving, args.reference], {"--out": WRITABLE_SUFFIXES})
    R, t, centre = read_rigid_transform(args.transform)
    moving = load_image(args.moving)
    reference, space = reference_grid(args)
    interpolation = Interpolation(args.interpolation)
    out = resample_rigid(moving, reference, R, t, centre, interpolation, inverse=args.inverse)
    # Nearest neighbour only copies values: keep the input's type (labels stay integers).
    dtype = stored_image_dtype(args.moving) if interpolation is Interpolation.NEAREST else None
    save_image(out, args.out, xform_code=space, data_dtype=dtype)
    direction = "T^-1 (moving -> reference points)" if args.inverse else "T (reference -> moving points)"
    print(f"wrote {args.out}: {args.moving} on the grid {' x '.join(map(str, out.shape))} of "
          f"{args.reference or 'the 1 mm MNI152 template'}, {interpolation.value} interpolation through {direction}")
    return 0

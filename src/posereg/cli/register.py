"""``posereg register``: rigidly align a brain MRI volume to the atlas (deep pipeline, checked result)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posereg.cli._common import (
    INTERPOLATIONS,
    add_atlas_arguments,
    atlas_on,
    load_model,
    reference_grid,
    working_grid,
)

__all__ = ["DOUBTFUL_EXIT", "add_parser", "add_scan_arguments", "run"]

DOUBTFUL_EXIT = 3  # a result that failed its own quality check (2: bad input)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "register",
        help="rigidly align a brain MRI volume to the atlas (deep pipeline and refinement)",
        description="Centre of gravity, Pose-Net rotation, Correction-Net residual and mutual-information "
        "refinement on the working grid (--no-refine: the networks alone). Writes an ITK transform (.tfm: SimpleITK, ITK-SNAP, 3D Slicer) "
        "mapping atlas points to moving points, and optionally the aligned image on the atlas grid. "
        "Input: a 3D brain MRI, whole head or skull-stripped, any contrast (T1, T2, PD, FLAIR), any "
        "orientation and header, 0.5-6 mm voxels. The result's quality is checked (agreement of the "
        "networks on the re-posed scan, similarity to the atlas in its brain); a doubtful result runs "
        "a fallback (with --no-refine, the refinement first when the networks agree; then a search), "
        f"and one still doubtful exits with status {DOUBTFUL_EXIT}.",
    )
    p.add_argument("moving", nargs="+",
                   help="the volume to align (NIfTI, NRRD, MHA/MHD or a DICOM folder; any orientation); several "
                        "with --out-dir")  # fmt: skip
    add_scan_arguments(p)
    p.add_argument("--out-transform", help="output transform (reference -> scan): see --transform-format")
    p.add_argument("--out-dir", help="batch mode: one transform per scan (<name>.tfm), results.csv and results.json "
                                     "here; a failed scan does not stop the batch")  # fmt: skip
    p.add_argument("--write-images", action="store_true",
                   help="batch mode: also write <name>_aligned.nii.gz on the reference grid")  # fmt: skip
    p.add_argument("--out-image",
                   help="output: the scan resampled at full resolution onto the reference grid (.nii, .nii.gz, .nrrd, .mha)")  # fmt: skip
    p.add_argument("--out-result", help="output: the result, its quality measures and verdict (JSON)")
    p.add_argument("--device", default="cpu",
                   help="where the networks run: cpu (default), cuda, cuda:N or mps (reading, resampling and the "
                        "refinement stay on the CPU)")  # fmt: skip
    p.set_defaults(func=run)


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``register`` shares with ``predict``: atlas, grid, model, refinement, formats, output style."""
    add_atlas_arguments(p)
    p.add_argument("--grid-size", type=int, help="voxels per axis of the working grid (default: the model's)")
    p.add_argument("--spacing", type=float, help="working grid spacing in mm (default: the model's)")
    p.add_argument("--model", help="pipeline model file (default: the bundled one; see 'posereg bundle')")
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="refine the networks' result by mutual information on the working grid (default; about "
                        "0.5-1 s more; --no-refine: the networks alone)")  # fmt: skip
    p.add_argument("--transform-format", choices=("itk", "ras", "fsl"), default="itk",
                   help="itk (default): ITK text .tfm/.txt, HDF5 .h5 or ANTs .mat; ras: a 4x4 RAS matrix as text "
                        "(.txt, .mat; x_scan = M x_reference); fsl: a FLIRT -omat matrix (.mat, .txt; -in the scan, "
                        "-ref the --out-image or --reference image)")  # fmt: skip
    p.add_argument("--reference", help="grid of aligned images (default: the --atlas image, else the 1 mm MNI152 template)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default="linear",
                   help="interpolation of aligned images (default linear)")  # fmt: skip
    p.add_argument("--no-fallback", action="store_true",
                   help="do not run the fallback (refinement, search) when the result is doubtful")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result record(s) as JSON instead of text")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (and no progress bar)")


def run(args: argparse.Namespace) -> int:
    """Register one scan (or a batch with ``--out-dir``); exit status 0, 2 (bad input) or ``DOUBTFUL_EXIT``."""
    if args.out_dir is not None:
        from posereg.cli.register_batch import run_batch

        return run_batch(args)
    if len(args.moving) != 1 or args.out_transform is None or args.write_images:
        raise ValueError("one scan takes --out-transform (and --out-image, --out-result); several scans, or "
                         "--write-images, take --out-dir")  # fmt: skip
    args.moving = args.moving[0]
    import json

    from posereg._files import check_outputs
    from posereg.data.image_io import WRITABLE_SUFFIXES, load_image
    from posereg.data.volume import stored_grid
    from posereg.evaluation.registration_report import result_record
    from posereg.models.device import inference_device
    from posereg.registration import RefineSettings, register_checked
    from posereg.registration.apply import Interpolation
    from posereg.registration.outputs import RegistrationOutputs, write_outputs
    from posereg.registration.transform_files import TransformFormat

    fmt = TransformFormat(args.transform_format)
    if fmt is TransformFormat.FSL and args.out_image is None and args.reference is None:
        raise ValueError("--transform-format fsl: FLIRT matrices are relative to a reference image file: "
                         "pass --reference IMG, or --out-image to write one")  # fmt: skip
    outputs = {"--out-transform": args.out_transform, "--out-image": args.out_image, "--out-result": args.out_result}
    check_outputs(outputs, [args.moving, args.atlas, args.model, args.reference],
                  {"--out-transform": fmt.suffixes, "--out-image": WRITABLE_SUFFIXES, "--out-result": (".json",)})
    device = inference_device(args.device)
    model = load_model(args)
    moving = load_image(args.moving)
    atlas = atlas_on(args, working_grid(args, model.grid))
    pipeline = model.pipeline(atlas, RefineSettings() if args.refine else None, device)
    checked = register_checked(pipeline, moving, fallback=not args.no_fallback)
    result = checked.result
    reference = reference_grid(args) if args.out_image is not None or fmt is TransformFormat.FSL else None
    grids = None
    if fmt is TransformFormat.FSL:  # FLIRT works in the stored voxels of -in (the scan) and -ref
        assert reference is not None
        ref = stored_grid(args.reference) if args.reference is not None else (reference[0].affine.numpy(), reference[0].shape)
        grids = {"moving_grid": stored_grid(args.moving), "reference_grid": ref}
    files = RegistrationOutputs(Path(args.out_transform), fmt, _path(args.out_image), reference,
                                Interpolation(args.interpolation), _path(args.out_result), grids)  # fmt: skip
    record = json.dumps(result_record(args.moving, checked), indent=2)
    write_outputs(files, moving, result.R, result.t, result.centre, record + "\n" if args.out_result is not None else None)
    if args.json:
        print(record)
    elif not args.quiet:
        _print_text(args, checked, fmt)
    if checked.doubtful:
        print("posereg register: the result is doubtful: " + "; ".join(checked.reasons)
              + ". Check it visually (--out-image) before use.", file=sys.stderr)  # fmt: skip
        return DOUBTFUL_EXIT
    return 0


def _path(name: str | None) -> Path | None:
    return None if name is None else Path(name)


def _print_text(args: argparse.Namespace, checked, fmt) -> None:  # type: ignore[no-untyped-def]
    """The result, then where each output went."""
    from posereg.evaluation.registration_report import result_lines
    from posereg.registration.transform_files import TransformFormat

    for line in result_lines(checked):
        print(line)
    described = {TransformFormat.ITK: "ITK, LPS, atlas -> moving: resample the moving image with it",
                 TransformFormat.RAS: "4x4 RAS matrix, x_moving = M x_atlas",
                 TransformFormat.FSL: f"FLIRT matrix: -in {args.moving} -ref {args.reference or args.out_image}"}  # fmt: skip
    print(f"transform:   {args.out_transform} ({described[fmt]})")
    if args.out_image is not None:
        print(f"aligned:     {args.out_image}")
    if args.out_result is not None:
        print(f"result:      {args.out_result} (JSON)")


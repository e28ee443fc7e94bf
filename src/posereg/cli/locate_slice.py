"""``posereg locate-slice``: where a single 2D MRI slice lies in the atlas."""

from __future__ import annotations

import argparse
import sys

from posereg.cli._common import add_atlas_arguments, atlas_on, working_grid
from posereg.cli.register import DOUBTFUL_EXIT

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "locate-slice",
        help="predict where a single 2D MRI slice lies in the atlas (slice Pose-Net, optional SVR)",
        description="Resamples the slice to the network's grid, predicts the orientation of its volume and its "
        "position along the plane normal (Salehi et al.'s 2D->3D Pose-Net), optionally searches the stack for the "
        "best-matching position (--search-stack) and refines them by slice-to-volume intensity registration "
        "(--refine, SVR-Deep), prints the plane and writes the transform and the matching atlas slice. The answer is "
        "checked: the network's passes on the slice turned by 0-3 quarter turns must agree; a doubtful one exits "
        f"with status {DOUBTFUL_EXIT}.",
    )
    p.add_argument("slice", help="the slice (2D NIfTI, or 3D with one axis of size 1)")
    p.add_argument("--model", help="slice model (model.pt of 'posereg train slice'; default: the bundled one)")
    add_atlas_arguments(p)
    p.add_argument("--refine", action="store_true", help="refine with slice-to-volume registration (SVR-Deep)")
    p.add_argument("--search-stack", action="store_true",
                   help="replace the network's slice position by the best-correlated atlas slice along its normal, "
                        "searched over the part of the stack the model was trained on (a few ms; before --refine)")  # fmt: skip
    p.add_argument("--one-pass", action="store_true",
                   help="one network pass on the slice as it is (no turned passes: no agreement check)")
    p.add_argument("--out-transform", help="output ITK transform (.tfm): slice frame -> atlas")
    p.add_argument("--out-input", help="output: the input slice on the network's grid (NIfTI, slice frame)")
    p.add_argument("--out-slice", help="output: the atlas slice at the predicted plane (NIfTI, slice frame)")
    p.add_argument("--out-placed", help="output: the input slice drawn at its located plane on the atlas grid (NIfTI, "
                                        "atlas frame: overlay it on the atlas)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Locate the slice, print its plane and write the requested outputs."""
    import torch

    from posereg._files import atomic_outputs, check_outputs
    from posereg.data import XformCode, save_nifti
    from posereg.data.slices import cut_slices, load_slice_nifti, preprocess_slice, slice_to_grid
    from posereg.geometry import matrix_to_euler
    from posereg.registration import write_rigid_transform
    from posereg.registration.itk import TRANSFORM_SUFFIXES
    from posereg.registration.slice import slice_as_volume, slice_in_atlas, slice_settings
    from posereg.registration.slice_check import slice_doubts
    from posereg.registration.slice_model import load_slice_model, pretrained_slice_path

    nifti = (".nii", ".nii.gz")
    outputs = {"--out-transform": args.out_transform, "--out-input": args.out_input, "--out-slice": args.out_slice,
               "--out-placed": args.out_placed}  # fmt: skip
    check_outputs(outputs, [args.slice, args.model, args.atlas],
                  {"--out-transform": TRANSFORM_SUFFIXES, "--out-input": nifti, "--out-slice": nifti, "--out-placed": nifti})
    model = load_slice_model(args.model if args.model is not None else pretrained_slice_path())
    image, spacing = load_slice_nifti(args.slice)
    atlas = atlas_on(args, working_grid(args, model.grid))
    geometry = model.geometry
    space = XformCode.MNI152 if args.atlas is None else XformCode.ALIGNED
    view = preprocess_slice(slice_to_grid(image, spacing, geometry))
    location = model.locator(atlas, slice_settings() if args.refine else None, args.search_stack,
                             turns=not args.one_pass)(view)  # fmt: skip
    reasons = slice_doubts(location.quality)
    n = location.normal.tolist()
    euler = torch.rad2deg(matrix_to_euler(location.R, "xyz")).tolist()
    print(f"plane normal:  ({n[0]:+.3f}, {n[1]:+.3f}, {n[2]:+.3f}) (atlas RAS)")
    print(f"orientation:   tilt x {euler[0]:+.1f}, tilt y {euler[1]:+.1f}, in-plane z {euler[2]:+.1f} degrees "
          "(extrinsic xyz Euler angles of the slice's volume)")  # fmt: skip
    print(f"position:      {location.offset_mm:+.1f} mm from the atlas centre along the normal "
          f"(slice {location.index:.1f} of {geometry.stack})")
    print("stages:        " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in location.seconds.items()))
    if location.quality:
        print("quality:       " + ", ".join(f"{k} {v:.2f}" for k, v in location.quality.items()))
    print("verdict:       " + ("DOUBTFUL: " + "; ".join(reasons) if reasons
                               else "located (the turned passes agree)" if location.quality else "not checked (--one-pass)"))  # fmt: skip
    frame = slice_as_volume(view, geometry.spacing)
    wanted = [p for p in outputs.values() if p is not None]
    with atomic_outputs(wanted) as temporary:  # all outputs appear together, or none
        written = dict(zip(wanted, temporary, strict=True))
        if args.out_transform is not None:
            A, b = location.to_atlas(atlas.image.centre)
            write_rigid_transform(written[args.out_transform], A, b, torch.zeros(3, dtype=torch.float64))
        if args.out_input is not None:
            save_nifti(frame, written[args.out_input])
        if args.out_slice is not None:
            atlas_slice = cut_slices(atlas.image, location.R, torch.tensor(location.index), geometry)
            save_nifti(frame.with_data(atlas_slice[..., None]), written[args.out_slice])
        if args.out_placed is not None:
            save_nifti(slice_in_atlas(view, location, geometry, atlas.image), written[args.out_placed], xform_code=space)
    for option, line in ((args.out_transform, "transform:     {} (ITK; slice frame of --out-input -> atlas)"),
                         (args.out_input, "input:         {} (the slice on the network's grid, in the slice frame)"),
                         (args.out_slice, "atlas slice:   {} (the atlas cut at the predicted plane, same frame)"),
                         (args.out_placed, "placed:        {} (the slice at its plane on the atlas grid)")):  # fmt: skip
        if option is not None:
            print(line.format(option))
    if reasons:
        print("posereg locate-slice: the location is doubtful: " + "; ".join(reasons)
              + ". Check it visually (--out-slice) before use.", file=sys.stderr)  # fmt: skip
        return DOUBTFUL_EXIT
    return 0

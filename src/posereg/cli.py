"""The ``posereg`` command line: ``posereg --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

__all__ = ["DOUBTFUL_EXIT", "main"]

DOUBTFUL_EXIT = 3  # 'posereg register': a result that failed its own quality check (2: bad input)


def _cmd_version(args: argparse.Namespace) -> int:
    import torch

    import posereg

    print(f"posereg {posereg.__version__} (torch {torch.__version__})")
    return 0


def _cmd_geometry(args: argparse.Namespace) -> int:
    """Geometry demonstration: random rotations, their log/exp round trip and distances."""
    import torch

    from posereg import geometry as g

    if args.count < 1:
        print("posereg geometry: --count must be at least 1", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(args.seed)
    dtype = torch.float64
    R = g.random_rotation(args.count, generator=gen, dtype=dtype)
    v = g.matrix_to_rotvec(R)
    roundtrip = (g.rotvec_to_matrix(v) - R).abs().amax(dim=(-2, -1))
    q = g.matrix_to_quaternion(R)
    angle_to_first = g.geodesic_distance(R[:1], R)
    print(f"posereg geometry demo: {args.count} Haar-uniform rotations (seed {args.seed}, float64)\n")
    header = f"{'#':>3}  {'angle (deg)':>11}  {'axis (x, y, z)':>24}  {'quaternion (w, x, y, z)':>32}  {'|exp(log R) - R|':>16}  {'d(R0, R) deg':>12}"
    print(header)
    print("-" * len(header))
    for i in range(args.count):
        theta = float(v[i].norm())
        axis = (v[i] / theta).tolist() if theta > 0 else [0.0, 0.0, 0.0]
        axis_s = "(" + ", ".join(f"{a:+.3f}" for a in axis) + ")"
        quat_s = "(" + ", ".join(f"{c:+.3f}" for c in q[i].tolist()) + ")"
        print(
            f"{i:>3}  {math.degrees(theta):>11.3f}  {axis_s:>24}  {quat_s:>32}  "
            f"{float(roundtrip[i]):>16.2e}  {math.degrees(float(angle_to_first[i])):>12.3f}"
        )
    # Edge cases that break naive formulas: angles 0, 1e-8 and pi.
    print("\nedge cases (float32 and float64): exp/log round trip and distance to the identity")
    for dt in (torch.float32, torch.float64):
        for angle in (0.0, 1e-8, math.pi - 1e-6, math.pi):
            rv = torch.tensor([[angle, 0.0, 0.0]], dtype=dt)
            Rk = g.rotvec_to_matrix(rv)
            back = g.matrix_to_rotvec(Rk)
            dist = g.geodesic_distance(torch.eye(3, dtype=dt), Rk)
            print(
                f"  {str(dt):>13}  angle {angle:<20.17g} log(exp(v)) angle {float(back.norm()):<20.17g}"
                f" distance {float(dist):.17g}"
            )
    return 0


def _run_training(args: argparse.Namespace, command: str, load_config, train) -> int:  # type: ignore[no-untyped-def]
    """Load a YAML configuration, train, and print where the run's outputs are."""
    try:
        config = load_config(args.config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg {command}: {exc}", file=sys.stderr)
        return 2
    result = train(config, args.output, accelerator=args.accelerator, progress=not args.quiet)
    print(f"trained {config.to_dict()['network']} network in {result.seconds:.0f} s")
    print(f"  model:       {result.model_path}")
    print(f"  best:        {result.best_checkpoint}")
    print(f"  metrics:     {result.metrics_csv}")
    print(f"  tensorboard: {result.output / 'tensorboard'}")
    return 0


def _cmd_train_volume(args: argparse.Namespace) -> int:
    """Train the volume Pose-Net or Correction-Net of a YAML configuration."""
    from posereg.training.config import load_volume_config
    from posereg.training.volume import train_volume

    return _run_training(args, "train volume", load_volume_config, train_volume)


def _cmd_train_slice(args: argparse.Namespace) -> int:
    """Train the slice Pose-Net of a YAML configuration."""
    from posereg.training.slice import train_slice
    from posereg.training.slice_config import load_slice_config

    return _run_training(args, "train slice", load_slice_config, train_slice)


def _cmd_train_reloc(args: argparse.Namespace) -> int:
    """Train PoseNet on a synthetic relocalisation scene with the loss of a YAML configuration."""
    from posereg.training.reloc import train_reloc
    from posereg.training.reloc_config import load_reloc_config

    return _run_training(args, "train reloc", load_reloc_config, train_reloc)


def _cmd_evaluate_reloc(args: argparse.Namespace) -> int:
    """Median position and orientation errors of a relocalisation model on its scene's test frames."""
    from posereg.evaluation.plots import camera_positions
    from posereg.training.reloc import evaluate_reloc_model

    try:
        result, config = evaluate_reloc_model(args.model, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg evaluate reloc: {exc}", file=sys.stderr)
        return 2
    p, r = result.position_m, result.rotation_deg
    print(f"scene {config.data.scene}, loss {config.loss.kind.value}: {p.numel()} test frames "
          f"({config.data.test_sequences} sequences)")  # fmt: skip
    print(f"  position:    median {result.median_position_m:.3f} m, mean {p.mean():.3f} m, 90th percentile "
          f"{p.quantile(0.9):.3f} m")  # fmt: skip
    print(f"  orientation: median {result.median_rotation_deg:.2f} deg, mean {r.mean():.2f} deg, 90th percentile "
          f"{r.quantile(0.9):.2f} deg")  # fmt: skip
    if result.median_reprojection_px is not None:
        print(f"  reprojection: median {result.median_reprojection_px:.2f} px over the frames' visible scene points")
    if args.plot is not None:
        camera_positions(args.plot, {config.loss.kind.value: result.predicted_positions}, result.true_positions,
                         title=f"{config.data.scene}: test cameras, predicted vs true")  # fmt: skip
        print(f"  figure:      {args.plot}")
    return 0


def _add_training_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The options every 'posereg train TASK' takes."""
    p.add_argument("--config", required=True, help=f"YAML configuration (e.g. {example})")
    p.add_argument("--output", required=True, help="run directory for checkpoints, logs and model.pt")
    p.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu", "auto"), help="Lightning accelerator")
    p.add_argument("--quiet", action="store_true", help="no progress bar or model summary")


def _load_model_arg(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The pipeline model of ``--model``, or the bundled one."""
    from posereg.registration import load_pipeline_model, pretrained_pipeline_path

    return load_pipeline_model(args.model if args.model is not None else pretrained_pipeline_path())


def _grid_args(args: argparse.Namespace, model) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """``--grid-size`` and ``--spacing``, defaulting to the grid the model was trained on (else 64, 3 mm)."""
    trained = model.atlas or {}
    size = args.grid_size if args.grid_size is not None else int(trained.get("shape", 64))
    spacing = args.spacing if args.spacing is not None else float(trained.get("spacing", 3.0))
    return size, spacing


def _load_atlas_arg(args: argparse.Namespace, grid_size: int, spacing: float):  # type: ignore[no-untyped-def]
    """The default MNI152 atlas, or a user's NIfTI atlas, on the working grid."""
    from posereg.data import (
        Atlas,
        Contrast,
        brain_mask,
        load_atlas,
        load_nifti,
        preprocess_intensity,
        resample_to_grid,
    )
    from posereg.registration.moments import centre_of_gravity

    shape = (grid_size,) * 3
    if args.atlas is None:
        return load_atlas(Contrast(args.atlas_contrast), shape, spacing)
    native = load_nifti(args.atlas)
    image = resample_to_grid(native, shape, spacing, centre_of_gravity(native))
    image = image.with_data(preprocess_intensity(image.data))
    return Atlas(image, brain_mask(image.data), Contrast(args.atlas_contrast))


def _cmd_register(args: argparse.Namespace) -> int:
    """Rigidly register a volume to the atlas with the deep pipeline (and optional refinement)."""
    import json
    from pathlib import Path

    from posereg.data import load_nifti, save_nifti
    from posereg.evaluation.registration_report import result_lines, result_record
    from posereg.registration import IntensitySettings, register_checked, write_rigid_transform

    try:
        model = _load_model_arg(args)
        moving = load_nifti(args.moving)
        atlas = _load_atlas_arg(args, *_grid_args(args, model))
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg register: {exc}", file=sys.stderr)
        return 2
    pipeline = model.pipeline(atlas, IntensitySettings() if args.refine else None)
    checked = register_checked(pipeline, moving, fallback=not args.no_fallback)
    result = checked.result
    write_rigid_transform(args.out_transform, result.R, result.t, result.centre)
    if args.out_image is not None:
        save_nifti(pipeline.aligned_image(moving, result), args.out_image)
    if args.out_result is not None:
        Path(args.out_result).write_text(json.dumps(result_record(args.moving, checked), indent=2) + "\n")
    for line in result_lines(checked):
        print(line)
    print(f"transform:   {args.out_transform} (ITK, LPS, atlas -> moving: resample the moving image with it)")
    if args.out_image is not None:
        print(f"aligned:     {args.out_image}")
    if args.out_result is not None:
        print(f"result:      {args.out_result} (JSON)")
    if checked.doubtful:
        print("posereg register: the result is doubtful: " + "; ".join(checked.reasons)
              + ". Check it visually (--out-image) before use.", file=sys.stderr)  # fmt: skip
        return DOUBTFUL_EXIT
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    """Bundle trained Pose-Net and Correction-Net files into one pipeline model."""
    from posereg.registration import load_pipeline_model, save_pipeline_model

    try:
        save_pipeline_model(args.output, args.pose, args.correction, correction_steps=args.correction_steps,
                            pose_steps=args.pose_steps, half=args.half)  # fmt: skip
        model = load_pipeline_model(args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg bundle: {exc}", file=sys.stderr)
        return 2
    grid = model.atlas or {}
    print(f"wrote {args.output}: Pose-Net{' + Correction-Net' if model.correction is not None else ''}, "
          f"{model.pose_steps} pose and {model.correction_steps} correction pass(es), grid {grid.get('shape', '?')}^3 x {grid.get('spacing', '?')} mm")
    return 0


def _cmd_locate_slice(args: argparse.Namespace) -> int:
    """Predict where a 2D slice lies in the atlas (slice Pose-Net, optional SVR refinement)."""
    import torch

    from posereg.data import save_nifti
    from posereg.data.slices import (
        SliceGeometry,
        cut_slices,
        load_slice_nifti,
        preprocess_slice,
        slice_to_grid,
    )
    from posereg.geometry import matrix_to_euler
    from posereg.registration import write_rigid_transform
    from posereg.registration.slice import SliceLocator, slice_as_volume, slice_settings
    from posereg.training.slice import load_slice_model

    try:
        net, config = load_slice_model(args.model)
        image, spacing = load_slice_nifti(args.slice)
        a = config.atlas
        atlas = _load_atlas_arg(args, a.shape, a.spacing)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg locate-slice: {exc}", file=sys.stderr)
        return 2
    geometry = SliceGeometry(a.shape, a.spacing, a.shape)
    view = preprocess_slice(slice_to_grid(image, spacing, geometry))
    search = geometry.middle_indices(config.data.middle_fraction) if args.search_stack else None
    location = SliceLocator(atlas, net, geometry, slice_settings() if args.refine else None, search)(view)
    n = location.normal.tolist()
    euler = torch.rad2deg(matrix_to_euler(location.R, "xyz")).tolist()
    print(f"plane normal:  ({n[0]:+.3f}, {n[1]:+.3f}, {n[2]:+.3f}) (atlas RAS)")
    print(f"orientation:   tilt x {euler[0]:+.1f}, tilt y {euler[1]:+.1f}, in-plane z {euler[2]:+.1f} degrees "
          "(extrinsic xyz Euler angles of the slice's volume)")  # fmt: skip
    print(f"position:      {location.offset_mm:+.1f} mm from the atlas centre along the normal "
          f"(slice {location.index:.1f} of {geometry.stack})")
    print("stages:        " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in location.seconds.items()))
    frame = slice_as_volume(view, geometry.spacing)
    if args.out_transform is not None:
        # Slice frame (pixel (i, j) at (u_i, v_j, 0) mm) -> atlas: p -> c + R^T p + d n.
        c = atlas.image.centre
        write_rigid_transform(args.out_transform, location.R.mT, c + location.offset_mm * location.normal,
                              torch.zeros(3, dtype=torch.float64))  # fmt: skip
        print(f"transform:     {args.out_transform} (ITK; slice frame of --out-input -> atlas)")
    if args.out_input is not None:
        save_nifti(frame, args.out_input)
        print(f"input:         {args.out_input} (the slice on the network's grid, in the slice frame)")
    if args.out_slice is not None:
        atlas_slice = cut_slices(atlas.image, location.R, torch.tensor(location.index), geometry)
        save_nifti(frame.with_data(atlas_slice[..., None]), args.out_slice)
        print(f"atlas slice:   {args.out_slice} (the atlas cut at the predicted plane, same frame)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Register held-out synthetic subjects with the bundled model and with VVR-GC; table and figure."""
    import statistics
    from pathlib import Path

    from tqdm import tqdm

    from posereg.data import Contrast, load_atlas
    from posereg.evaluation.plots import registration_slices
    from posereg.evaluation.volume_demo import METHODS, run_volume_demo

    if args.subjects < 1 or not args.angles or any(not 0 <= a <= 180 for a in args.angles):
        print("posereg demo: --subjects must be >= 1 and --angles within [0, 180] degrees", file=sys.stderr)
        return 2
    try:
        model = _load_model_arg(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg demo: {exc}", file=sys.stderr)
        return 2
    grid, spacing = _grid_args(argparse.Namespace(grid_size=None, spacing=None), model)
    contrast = Contrast((model.atlas or {}).get("contrast", "t1"))
    print(f"posereg demo: rigid registration of held-out synthetic subjects to the MNI152 {contrast.value.upper()} "
          f"atlas ({grid}^3 voxels of {spacing:g} mm)")  # fmt: skip
    atlas = load_atlas(contrast, (grid,) * 3, spacing)
    total = args.subjects * len(args.angles)
    with tqdm(total=total, desc="registering", file=sys.stderr, disable=args.quiet) as bar:
        rows = run_volume_demo(atlas, model, args.subjects, args.angles, args.seed,
                               progress=lambda done, _: bar.update(done - bar.n))  # fmt: skip
    header = f"{'subject':>7} {'angle':>6} | " + " | ".join(f"{m:^25}" for m in METHODS)
    print("\n" + " " * 15 + "| " + " | ".join(f"{'rotation  transl.    time':^25}" for _ in METHODS))
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = []
        for m in METHODS:
            o = row.outcomes[m]
            cells.append(f"{o.rotation_deg:6.1f} deg {o.translation_mm:5.1f} mm {_seconds(o.seconds):>7}")
        print(f"{row.subject:>7} {row.angle_deg:5.0f}d | " + " | ".join(cells))
    print("-" * len(header))
    print("\nmedian rotation error, cases within 10 degrees, median time per case:")
    for m in METHODS:
        errs = [r.outcomes[m].rotation_deg for r in rows]
        secs = [r.outcomes[m].seconds for r in rows]
        ok = sum(e < 10 for e in errs)
        print(f"  {m:<14} {statistics.median(errs):6.1f} deg  {ok:>3}/{len(errs)}  {_seconds(statistics.median(secs)):>7}")
    deep = statistics.median(r.outcomes["deep pipeline"].seconds for r in rows)
    gc = statistics.median(r.outcomes["VVR-GC"].seconds for r in rows)
    print(f"\nThe deep pipeline is {gc / deep:.0f}x faster than VVR-GC here (median times per case).")
    output = Path(args.output)
    figure = output / "volume_registration.png"
    shown = rows[: len(args.angles)]
    registration_slices(figure, atlas.image, [(f"subject {r.subject}, {r.angle_deg:.0f} deg", r.moving, r.aligned)
                                              for r in shown], atlas.mask)  # fmt: skip
    print(f"figure: {figure} (atlas / moving / aligned by the deep pipeline; red: the atlas brain outline)")
    return 0


def _seconds(s: float) -> str:
    return f"{1000 * s:.0f} ms" if s < 1 else f"{s:.1f} s"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``posereg`` command."""
    parser = argparse.ArgumentParser(
        prog="posereg",
        description="Learn rigid poses (rotations, rigid transforms) with deep networks trained on geometric losses.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("version", help="print the posereg and torch versions")
    p.set_defaults(func=_cmd_version)
    p = sub.add_parser(
        "demo",
        help="register held-out synthetic brains with the bundled model and with VVR-GC",
        description="posereg's main job on data it ships: held-out synthetic subjects (never trained on) "
        "rotated by the given angles are aligned to the MNI152 atlas by the deep pipeline, by VVR-Deep and by "
        "SimpleITK from the geometric centre (VVR-GC); prints errors and times side by side and writes a "
        "figure of atlas / moving / aligned slices.",
    )
    p.add_argument("--subjects", type=int, default=2, help="held-out test subjects (default 2)")
    p.add_argument("--angles", type=float, nargs="+", default=[20.0, 60.0, 100.0, 140.0, 180.0],
                   help="rotation angles in degrees, one motion each (default 20 60 100 140 180)")
    p.add_argument("--seed", type=int, default=0, help="seed of the motions (default 0)")
    p.add_argument("--model", help="pipeline model file (default: the bundled one)")
    p.add_argument("--output", default="posereg-demo", help="folder for the figure (default posereg-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser(
        "geometry",
        help="print a short geometry demonstration",
        description="Random rotations, their log/exp round trip and geodesic distances, in a table.",
    )
    p.add_argument("--count", type=int, default=8, help="number of random rotations (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.set_defaults(func=_cmd_geometry)

    train = sub.add_parser("train", help="train a network from a YAML configuration",
                           description="Train posereg's networks; see configs/ for examples.")
    train_sub = train.add_subparsers(dest="task", metavar="TASK", required=True)
    p = train_sub.add_parser(
        "volume",
        help="Salehi et al.'s volume Pose-Net or Correction-Net on synthetic MNI152 subjects",
        description="Two-stage training (rotation-vector MSE, then geodesic) with checkpoints, CSV and "
        "TensorBoard logs under --output, and the final weights in OUTPUT/model.pt.",
    )
    _add_training_arguments(p, "configs/volume_pose.yaml")
    p.set_defaults(func=_cmd_train_volume)
    p = train_sub.add_parser(
        "slice",
        help="Salehi et al.'s slice Pose-Net (2D ResNet-18: rotation + slice index) on synthetic MNI152 slices",
        description="Two-stage training (rotation-vector MSE, then geodesic; squared slice-index error "
        "beside both) with checkpoints, CSV and TensorBoard logs under --output, and OUTPUT/model.pt.",
    )
    _add_training_arguments(p, "configs/slice_pose.yaml")
    p.set_defaults(func=_cmd_train_slice)
    p = train_sub.add_parser(
        "reloc",
        help="PoseNet camera relocalisation on a synthetic scene (loss.kind: beta, homoscedastic, reprojection, se3)",
        description="Renders (or reads from data.cache) the scene's training and test sequences and trains "
        "PoseNet with the loss that loss.kind names: Kendall & Cipolla's beta-weighted or learned homoscedastic "
        "weights, their reprojection fine-tune (model.init_from a homoscedastic model.pt), or Hou et al.'s "
        "SE(3) geodesic loss with weights from the training poses. Checkpoints, CSV and TensorBoard logs "
        "under --output, the final weights in OUTPUT/model.pt.",
    )
    _add_training_arguments(p, "configs/reloc_room.yaml")
    p.set_defaults(func=_cmd_train_reloc)

    evaluate = sub.add_parser("evaluate", help="evaluate a trained network on its test data",
                              description="Evaluate posereg's trained networks.")  # fmt: skip
    evaluate_sub = evaluate.add_subparsers(dest="task", metavar="TASK", required=True)
    p = evaluate_sub.add_parser(
        "reloc",
        help="median position (m) and orientation (deg) errors of a 'posereg train reloc' model",
        description="Predicts the camera pose of every test frame of the scene the model was trained on "
        "(data section of its configuration) and prints Kendall & Cipolla's median errors; --plot draws "
        "predicted against true camera positions, seen from above.",
    )
    p.add_argument("--model", required=True, help="model.pt of 'posereg train reloc'")
    p.add_argument("--plot", help="output figure of predicted vs true camera positions (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate_reloc)

    p = sub.add_parser(
        "bundle",
        help="bundle trained networks into one pipeline model for 'posereg register'",
        description="Combine the model.pt of a Pose-Net run and (optionally) of a Correction-Net run of "
        "'posereg train volume' into one file; --half stores the weights in float16 (half the size).",
    )
    p.add_argument("--pose", required=True, help="model.pt of the Pose-Net run")
    p.add_argument("--correction", help="model.pt of the Correction-Net run")
    p.add_argument("--pose-steps", type=int, default=1, help="Pose-Net passes to use (default 1, as the paper)")
    p.add_argument("--correction-steps", type=int, default=1, help="Correction-Net passes to use (default 1)")
    p.add_argument("--half", action="store_true", help="store float16 weights")
    p.add_argument("--output", required=True, help="the pipeline model file to write")
    p.set_defaults(func=_cmd_bundle)

    p = sub.add_parser(
        "locate-slice",
        help="predict where a single 2D MRI slice lies in the atlas (slice Pose-Net, optional SVR)",
        description="Resamples the slice to the network's grid, predicts the orientation of its volume and its "
        "position along the plane normal (Salehi et al.'s 2D->3D Pose-Net), optionally searches the stack for the "
        "best-matching position (--search-stack) and refines them by slice-to-volume intensity registration "
        "(--refine, SVR-Deep), prints the plane and writes the transform "
        "and the matching atlas slice.",
    )
    p.add_argument("slice", help="the slice (2D NIfTI, or 3D with one axis of size 1)")
    p.add_argument("--model", required=True, help="slice model (model.pt of 'posereg train slice')")
    p.add_argument("--atlas", help="atlas NIfTI (default: the bundled MNI152 2009a template)")
    p.add_argument("--atlas-contrast", default="t1", choices=("t1", "t2"), help="contrast of the atlas (default t1)")
    p.add_argument("--refine", action="store_true", help="refine with slice-to-volume registration (SVR-Deep)")
    p.add_argument("--search-stack", action="store_true",
                   help="replace the network's slice position by the best-correlated atlas slice along its normal, "
                        "searched over the part of the stack the model was trained on (a few ms; before --refine)")  # fmt: skip
    p.add_argument("--out-transform", help="output ITK transform (.tfm): slice frame -> atlas")
    p.add_argument("--out-input", help="output: the input slice on the network's grid (NIfTI, slice frame)")
    p.add_argument("--out-slice", help="output: the atlas slice at the predicted plane (NIfTI, slice frame)")
    p.set_defaults(func=_cmd_locate_slice)

    p = sub.add_parser(
        "register",
        help="rigidly align a brain MRI volume to the atlas (deep pipeline, optional refinement)",
        description="Centre of gravity, Pose-Net rotation, Correction-Net residual and (with --refine) "
        "SimpleITK intensity refinement. Writes an ITK transform (.tfm: SimpleITK, ITK-SNAP, 3D Slicer) "
        "mapping atlas points to moving points, and optionally the aligned image on the atlas grid. "
        "Input: a 3D brain MRI, whole head or skull-stripped, any contrast (T1, T2, PD, FLAIR), any "
        "orientation and header, 0.5-6 mm voxels. The result's quality is checked (agreement of the "
        "networks on the re-posed scan, similarity to the atlas in its brain); a doubtful result runs "
        f"a search fallback, and one still doubtful exits with status {DOUBTFUL_EXIT}.",
    )
    p.add_argument("moving", help="the volume to align (NIfTI, any orientation)")
    p.add_argument("--atlas", help="atlas NIfTI (default: the bundled MNI152 2009a template)")
    p.add_argument("--atlas-contrast", default="t1", choices=("t1", "t2"), help="contrast of the atlas (default t1)")
    p.add_argument("--grid-size", type=int, help="voxels per axis of the working grid (default: the model's, 64)")
    p.add_argument("--spacing", type=float, help="working grid spacing in mm (default: the model's, 3)")
    p.add_argument("--model", help="pipeline model file (default: the bundled one; see save_pipeline_model)")
    p.add_argument("--refine", action="store_true", help="refine with intensity-based registration (VVR-Deep)")
    p.add_argument("--out-transform", required=True, help="output ITK transform file (.tfm)")
    p.add_argument("--out-image", help="output aligned image (NIfTI)")
    p.add_argument("--out-result", help="output: the result, its quality measures and verdict (JSON)")
    p.add_argument("--no-fallback", action="store_true",
                   help="do not run the search fallback when the result is doubtful")
    p.set_defaults(func=_cmd_register)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``posereg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

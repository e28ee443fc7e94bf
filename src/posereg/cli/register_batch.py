"""``posereg register SCAN... --out-dir DIR``: many scans, one model load, a results table."""

from __future__ import annotations

import argparse
import sys

from posereg.cli._common import atlas_on, load_model, reference_grid, seconds_text, working_grid

__all__ = ["run_batch"]


def run_batch(args: argparse.Namespace, trainer=None) -> int:  # type: ignore[no-untyped-def]
    """Register every scan; write per-scan transforms (and images), results.csv and results.json.

    ``trainer``: a ``posereg.training.config.TrainerConfig`` spreads the scans over Lightning's
    processes (``posereg predict``); None registers them here, one after the other.

    Exit status: 0 every scan ok, 3 (``DOUBTFUL_EXIT``) some doubtful, 2 (``BAD_INPUT_EXIT``) some failed.
    """
    import functools
    import json
    from pathlib import Path

    from tqdm import tqdm

    from posereg._files import check_outputs
    from posereg.cli import BAD_INPUT_EXIT
    from posereg.cli.register import DOUBTFUL_EXIT
    from posereg.evaluation.registration_report import batch_record, write_batch_table
    from posereg.registration.apply import Interpolation
    from posereg.registration.batch import register_files
    from posereg.registration.transform_files import TransformFormat

    if args.out_transform is not None or args.out_image is not None or args.out_result is not None:
        raise ValueError("--out-dir writes every output: drop --out-transform, --out-image and --out-result "
                         "(--write-images adds the aligned images)")  # fmt: skip
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir}: is a file")
    table = {"results.csv": out_dir / "results.csv", "results.json": out_dir / "results.json"}
    check_outputs(table, [*args.moving, args.atlas, args.model, args.reference], {})
    options = {"fmt": TransformFormat(args.transform_format), "reference": reference_grid(args) if args.write_images else None,
               "interpolation": Interpolation(args.interpolation), "fallback": not args.no_fallback}  # fmt: skip
    if trainer is None:
        from posereg.models.device import inference_device

        inference_device(args.device)  # a bad device is refused before any scan is read
    build = functools.partial(_pipeline, args)
    if trainer is not None:
        from posereg.training.predict import register_files_distributed

        gathered = register_files_distributed(build, args.moving, out_dir, trainer,
                                              progress=not (args.quiet or args.json), **options)  # fmt: skip
        if gathered is None:  # another process writes the table
            return 0
        records = gathered
    else:
        records = []
        with tqdm(total=len(args.moving), desc="registering", unit="scan", file=sys.stderr,
                  disable=args.quiet or args.json) as bar:  # fmt: skip
            for row in register_files(build(args.device), args.moving, out_dir, **options):
                records.append(batch_record(row))
                bar.set_postfix_str(f"{row.status}: {Path(row.scan).name}")
                bar.update()
    write_batch_table(records, table["results.csv"], table["results.json"])
    if args.json:
        print(json.dumps(records, indent=2))
    elif not args.quiet:
        _print_table(records, table)
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed:
        print(f"posereg register: {r['input']}: {r['error']}", file=sys.stderr)
    if failed:
        return BAD_INPUT_EXIT
    return DOUBTFUL_EXIT if any(r["status"] == "doubtful" for r in records) else 0


def _pipeline(args: argparse.Namespace, device):  # type: ignore[no-untyped-def]
    """The command's pipeline, its networks on ``device`` (a module-level function: processes that
    Lightning spawns pickle it)."""
    from posereg.registration import RefineSettings

    model = load_model(args)
    return model.pipeline(atlas_on(args, working_grid(args, model.grid)), RefineSettings() if args.refine else None,
                          device)  # fmt: skip


def _print_table(records: list[dict], table: dict) -> None:  # type: ignore[type-arg]
    width = max(len(r["input"]) for r in records)
    print(f"{'scan':<{width}}  {'status':<8}  {'rotation':>9}  {'agreement':>9}  {'brain NMI':>9}  {'time':>7}")
    for r in records:
        q = r.get("quality", {})
        rotation = f"{r['rotation_deg']:7.1f} d" if "rotation_deg" in r else ""
        agreement = f"{q['agreement']:.2f}" if "agreement" in q else ""
        nmi = f"{q['brain_nmi']:.3f}" if "brain_nmi" in q else ""
        print(f"{r['input']:<{width}}  {r['status']:<8}  {rotation:>9}  {agreement:>9}  {nmi:>9}  "
              f"{seconds_text(r['seconds']):>7}")  # fmt: skip
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "doubtful", "failed")}
    print(f"{len(records)} scans: {counts['ok']} ok, {counts['doubtful']} doubtful, {counts['failed']} failed; "
          f"table: {table['results.csv']}, {table['results.json']}")

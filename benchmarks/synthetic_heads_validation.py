"""Score volume model files on one synthetic-head validation set (the same samples for every model).

A fine-tuned network's logged validation error is on its own run's validation set; to compare it
with the model it started from, both must see the same samples. This draws the batches a
training run with ``--seed`` draws for validation (``SyntheticHeadModule.draw`` of
``(seed + 1, epoch 0, batch i)``), runs each model on them and reports the rotation error (and the
Correction-Net's translation error) in one table. ``--vary`` widens the synthetic heads beyond
the training ranges (``HeadVariation`` fields, e.g. ``scale=0.78,1.22 deformation_mm=22.5``): an
out-of-distribution set, to see whether a model's gain holds off the training distribution.

    python benchmarks/synthetic_heads_validation.py --config configs/volume_correction_heads_finetune.yaml \
        --head-model head_model.pt --models runs/heads/correction_model.pt runs/correction_ft/model.pt
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training configuration: network, sampler, batch size, seed")
    parser.add_argument("--head-model", required=True, help="file of posereg.data.head_model.save_head_model")
    parser.add_argument("--models", nargs="+", required=True, help="volume model files of that network")
    parser.add_argument("--items", type=int, default=None, help="samples (default: the config's data.val_items)")
    parser.add_argument("--vary", nargs="*", default=None, metavar="FIELD=VALUE",
                        help="HeadVariation fields to change (ranges as LOW,HIGH), e.g. scale=0.78,1.22")
    parser.add_argument("--output", default=None, help="markdown report (default: print only)")
    args = parser.parse_args()

    from posereg.data.head_model import load_head_model
    from posereg.evaluation.report import machine_line, markdown_table, write_report
    from posereg.geometry import geodesic_distance
    from posereg.training.config import VolumeTrainingConfig, load_config
    from posereg.training.schedules import salehi_schedule
    from posereg.training.synthetic_heads import SyntheticHeadModule, volume_sampler
    from posereg.training.volume import load_volume_model

    start = time.perf_counter()
    config = load_config(args.config, VolumeTrainingConfig)
    nets = [load_volume_model(path)[0] for path in args.models]
    for path, net in zip(args.models, nets, strict=True):
        if net.spec["network"] != config.network.value:
            raise SystemExit(f"{path}: a {net.spec['network']} network, the config trains a {config.network.value}")
    o = config.optim
    variation = _variation(args.vary or [])
    module = SyntheticHeadModule(nets[0], salehi_schedule(1, 1), load_head_model(args.head_model),
                                 partial(volume_sampler(config), v=variation), batch_size=o.batch_size,
                                 seed=config.seed)  # fmt: skip
    batches = max(1, (args.items or config.data.val_items) // o.batch_size)
    angles: list[list[float]] = [[] for _ in nets]
    shifts: list[list[float]] = [[] for _ in nets]
    with torch.no_grad():
        for i in range(batches):
            batch = module.draw(0, i, config.seed + 1)  # what the run validates on
            for k, net in enumerate(nets):
                out = net(batch["image"])
                rotation = out[0] if isinstance(out, tuple) else out
                angle = torch.rad2deg(geodesic_distance(net.to_matrix(rotation), batch["rotation"]))
                angles[k] += angle.tolist()
                if isinstance(out, tuple):
                    shifts[k] += torch.linalg.vector_norm(out[1] - batch["translation"], dim=-1).tolist()
    rows = []
    for path, a, s in zip(args.models, angles, shifts, strict=True):
        rows.append([f"`{path}`", f"{statistics.fmean(a):.2f}", f"{statistics.median(a):.2f}",
                     f"{sum(x < 5 for x in a)}/{len(a)}", f"{statistics.fmean(s):.2f}" if s else "-"])  # fmt: skip
    table = markdown_table(["model", "mean rotation error (deg)", "median", "< 5 deg", "translation error (mm)"], rows)
    # Paired differences against the first model (the same samples): is a change more than noise?
    for path, a in zip(args.models[1:], angles[1:], strict=True):
        d = [x - y for x, y in zip(a, angles[0], strict=True)]
        half_width = 1.96 * statistics.stdev(d) / len(d) ** 0.5
        table.append("")
        table.append(f"`{path}` minus `{args.models[0]}`, sample by sample: {statistics.fmean(d):+.2f} "
                     f"+- {half_width:.2f} degrees (mean, 95 % interval)")  # fmt: skip
    print("\n".join(table))
    if args.output:
        command = "python benchmarks/synthetic_heads_validation.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if v is not None)  # fmt: skip
        lines = [f"# {config.network.value} networks on one synthetic-head validation set", "",
                 f"Command: `{command}`", machine_line(torch.get_num_threads(), time.perf_counter() - start), "",
                 f"{batches * o.batch_size} samples: the validation batches of a run with seed {config.seed} "
                 f"(drawn from seed {config.seed + 1}), the same for every model."
                 + (f" Heads varied beyond training: {variation}." if args.vary else ""), "", *table]  # fmt: skip
        write_report(Path(args.output), "\n".join(lines) + "\n")


def _variation(fields: list[str]):  # type: ignore[no-untyped-def]
    """``HeadVariation`` with ``FIELD=VALUE`` changes (a range as ``LOW,HIGH``)."""
    from dataclasses import fields as dataclass_fields
    from dataclasses import replace

    from posereg.data.head_draws import HeadVariation

    known = {f.name for f in dataclass_fields(HeadVariation)}
    changes: dict[str, object] = {}
    for item in fields:
        name, _, value = item.partition("=")
        if name not in known or not value:
            raise SystemExit(f"--vary {item}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(known))}")
        numbers = tuple(float(x) for x in value.split(","))
        changes[name] = numbers if len(numbers) > 1 else numbers[0]
    return replace(HeadVariation(), **changes)


if __name__ == "__main__":
    main()

"""Set locate-slice's doubt threshold on synthetic head slices (never on the real slices it is then measured on).

Draws ``--slices`` single slices of synthetic heads (``data.head_slices``: whole heads and
brains, any contrast, thick slabs, shifted fields of view; a generator seeded by ``--seed``,
apart from the training runs' streams), locates each with every ``--models`` file as
``posereg locate-slice`` does (the network on the slice turned by 0-3 quarter turns, their
consensus; ``registration.slice_check``), and reports:

- the rotation error of one pass against the four turns' consensus (is the consensus worth its
  four passes?);
- the errors by agreement (1 to 4 passes of 4), and by the slice's NMI with the atlas at its
  located plane (the measure ``registration.slice_check`` tried and left out);
- for the lowest agreement threshold that keeps at most ``--max-bad-share`` of the accepted over
  20 degrees off (on the first model; all four passes when none does): how many are accepted,
  how many of those are over 20 degrees off, how many within 10 degrees are flagged.

    python benchmarks/slice_quality.py --head-model runs/head_model.pt --models runs/slice_s5/model.pt \
        runs/slice_heads/model.pt --slices 512 --output docs/benchmarks/slice_quality.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from posereg.data.head_model import load_head_model
from posereg.data.head_slices import head_slice_batch
from posereg.data.slices import cut_slices
from posereg.evaluation import VerdictCounts, rotation_error_deg, summarise, verdict_counts
from posereg.evaluation.report import machine_line, markdown_table, write_report
from posereg.registration._similarity import nmi_rows
from posereg.registration.slice import SliceLocator
from posereg.registration.slice_model import load_slice_model

AGREEMENTS = (0.25, 0.5, 0.75, 1.0)
BAD_DEG, GOOD_DEG = 20.0, 10.0


def _cases(head_model: Path, n: int, seed: int, geometry, fraction: float) -> list[dict]:  # type: ignore[no-untyped-def]
    head = load_head_model(head_model)
    gen = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        batch = head_slice_batch(head, min(32, n - len(out)), gen, geometry=geometry,
                                 index_range=geometry.middle_indices(fraction))  # fmt: skip
        out += [{"image": batch["image"][i, 0], "R": batch["rotation"][i].double(), "k": float(batch["slice_index"][i])}
                for i in range(batch["image"].shape[0])]  # fmt: skip
    return out


def _brain_nmi(image: torch.Tensor, atlas, R: torch.Tensor, index: float, geometry) -> float:  # type: ignore[no-untyped-def]
    """NMI (1-2) of the slice with the atlas cut at ``(R, index)`` over the atlas brain's pixels (1 if under 64)."""
    k = torch.tensor(float(index), dtype=torch.float64)
    inside = cut_slices(atlas.image.with_data(atlas.mask.float()), R.double(), k, geometry) > 0.5
    if int(inside.sum()) < 64:
        return 1.0
    cut = cut_slices(atlas.image, R.double(), k, geometry).double()
    return float(nmi_rows(image.double()[inside], cut[inside][None])[0])


def _score(model_path: Path, cases: list[dict]) -> dict[str, list[float]]:
    model = load_slice_model(model_path)
    atlas = model.atlas()
    turned, single = SliceLocator(atlas, model.net, model.geometry), SliceLocator(atlas, model.net, model.geometry, turns=False)
    rows: dict[str, list[float]] = {"one_pass": [], "error": [], "agreement": [], "brain_nmi": [], "seconds": []}
    for case in cases:
        start = time.perf_counter()
        found = turned(case["image"])
        rows["seconds"].append(time.perf_counter() - start)
        rows["error"].append(float(rotation_error_deg(found.R, case["R"])))
        rows["agreement"].append(found.quality["agreement"])
        rows["brain_nmi"].append(_brain_nmi(case["image"], atlas, found.R, found.index, model.geometry))
        rows["one_pass"].append(float(rotation_error_deg(single(case["image"]).R, case["R"])))
    return rows


def _outcomes(rows: dict[str, list[float]], agreement: float) -> VerdictCounts:
    """Accepted, over 20 degrees off among them, within 10 degrees and flagged among those, at ``agreement``."""
    return verdict_counts(rows["error"], [a >= agreement for a in rows["agreement"]], BAD_DEG, GOOD_DEG)


def _choose(rows: dict[str, list[float]], max_bad_share: float) -> tuple[float, bool]:
    """The lowest agreement threshold with at most ``max_bad_share`` of the accepted bad, and
    whether one met that; else (1.0, False): all four passes must agree."""
    for a in AGREEMENTS:
        counts = _outcomes(rows, a)
        if counts.accepted and counts.false_accepts <= max_bad_share * counts.accepted:
            return a, True
    return 1.0, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head-model", type=Path, required=True)
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="slice models; thresholds from the first")
    parser.add_argument("--slices", type=int, default=512)
    parser.add_argument("--seed", type=int, default=777, help="the cases' generator (training runs draw from other streams)")
    parser.add_argument("--max-bad-share", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    first = load_slice_model(args.models[0])
    cases = _cases(args.head_model, args.slices, args.seed, first.geometry, first.middle_fraction)
    scored = {path: _score(path, cases) for path in args.models}
    chosen, met = _choose(scored[args.models[0]], args.max_bad_share)
    lines = ["# locate-slice's doubt thresholds on synthetic head slices (benchmarks/slice_quality.py)", ""]
    if args.output is not None:
        lines.append(f"Command: `{' '.join(['python benchmarks/slice_quality.py', *sys.argv[1:]])}`")
    lines += [machine_line(args.threads, time.perf_counter() - start), "",
              f"{args.slices} slices of synthetic heads (seed {args.seed}); rotation error in degrees.", "",
              f"Chosen on {args.models[0]}: **agreement >= {chosen:.2f}** "
              + (f"(the lowest with at most {100 * args.max_bad_share:g} % of the accepted over {BAD_DEG:g} degrees off)."
                 if met else f"(no threshold keeps the accepted within {100 * args.max_bad_share:g} % over "
                             f"{BAD_DEG:g} degrees off: the strictest, all four passes)."), ""]  # fmt: skip
    header = ["model", "one pass: mean (median)", "4 turns: mean (median)", "median ms (4 turns)",
              "accepted", "accepted over 20 deg", "within 10 deg, flagged"]  # fmt: skip
    table = []
    for path, rows in scored.items():
        v = _outcomes(rows, chosen)
        table.append([str(path), summarise(rows["one_pass"]).cell(), summarise(rows["error"]).cell(),
                      f"{1000 * statistics.median(rows['seconds']):.1f}", f"{v.accepted}/{v.cases}",
                      f"{v.false_accepts}/{v.accepted}", f"{v.false_rejects}/{v.good}"])  # fmt: skip
    lines += markdown_table(header, table)
    lines += ["", "By agreement (first model): results and their errors.", ""]
    rows = scored[args.models[0]]
    by = []
    for a in AGREEMENTS:
        errors = [e for e, g in zip(rows["error"], rows["agreement"], strict=True) if g == a]
        by.append([f"{a:.2f}", str(len(errors)), summarise(errors).cell() if errors else "-",
                   f"{sum(e <= BAD_DEG for e in errors)}/{len(errors)}"])  # fmt: skip
    lines += markdown_table(["agreement", "slices", "error mean (median)", "within 20 deg"], by)
    lines += ["", "By rotation error (first model): the slice's brain NMI with the atlas at its located plane "
              "(quartiles) and the mean agreement.", ""]
    by_error = []
    for low, high in ((0, 10), (10, 20), (20, 40), (40, 90), (90, 181)):
        inside = [i for i, e in enumerate(rows["error"]) if low <= e < high]
        if inside:
            q = statistics.quantiles([rows["brain_nmi"][i] for i in inside], n=4) if len(inside) > 1 else [rows["brain_nmi"][inside[0]]] * 3
            by_error.append([f"{low}-{min(high, 180)}", str(len(inside)), " / ".join(f"{v:.3f}" for v in q),
                             f"{statistics.mean(rows['agreement'][i] for i in inside):.2f}"])  # fmt: skip
    lines += markdown_table(["error deg", "slices", "brain NMI q25 / q50 / q75", "mean agreement"], by_error)
    report = "\n".join(lines)
    print(report)
    if args.output is not None:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

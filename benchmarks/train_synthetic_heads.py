"""Train a volume or slice network on synthetic heads within a wall-clock budget (the bundled models' recipe).

The number of items per epoch is sized from a measured throughput so that the configured
epochs (Salehi's MSE then geodesic stages, cosine decay) fit ``--budget-minutes``; the sizes
chosen are written into the run's config (``config.json``, ``model.pt``). Also prints the
data-synthesis rate alone (samples per second) and the training rate, to show whether training
is data-bound.

    python benchmarks/train_synthetic_heads.py --config configs/volume_pose_heads.yaml \
        --head-model head_model.pt --budget-minutes 7 --accelerator gpu --output runs/pose_heads
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _rates(config, head, device: torch.device, batches: int = 6) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Samples per second of (synthesis alone, synthesis + a training step)."""
    from posereg.training.config import SliceTrainingConfig
    from posereg.training.schedules import salehi_schedule
    from posereg.training.slice import build_slice_network
    from posereg.training.synthetic_heads import SyntheticHeadModule, slice_sampler, volume_sampler
    from posereg.training.volume import build_network

    is_slice = isinstance(config, SliceTrainingConfig)
    net = (build_slice_network(config) if is_slice else build_network(config)).to(device)
    sample = slice_sampler(config) if is_slice else volume_sampler(config)
    module = SyntheticHeadModule(net, salehi_schedule(1, 1, representation=net.representation), head, sample,
                                 batch_size=config.optim.batch_size, seed=12345).to(device)  # fmt: skip
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if config.trainer.precision == "bf16-mixed" else torch.float16
    autocast = config.trainer.precision != "32-true"

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    module.draw(0, 0, 1)  # warm-up (moves the head model, compiles kernels)
    sync()
    start = time.perf_counter()
    for i in range(batches):
        module.draw(0, i + 1, 1)
    sync()
    synth = batches * config.optim.batch_size / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(batches):
        batch = module.draw(0, i + 1, 1)
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            out = net(batch["image"])
        rotation = (out[0] if isinstance(out, tuple) else out).float()
        loss = (rotation - net.representation.from_matrix(batch["rotation"])).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    sync()
    return synth, batches * config.optim.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--head-model", required=True, help="file of posereg.data.head_model.save_head_model")
    parser.add_argument("--budget-minutes", type=float, required=True)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    import yaml

    from posereg.data.head_model import load_head_model
    from posereg.training.config import SliceTrainingConfig, VolumeTrainingConfig, load_config
    from posereg.training.slice import train_slice
    from posereg.training.volume import train_volume

    with open(args.config) as f:
        is_slice = yaml.safe_load(f).get("network") == "slice"
    config = load_config(args.config, SliceTrainingConfig if is_slice else VolumeTrainingConfig)
    config = config.replace(data=config.data.replace(head_model=args.head_model),
                            trainer=config.trainer.replace(accelerator=args.accelerator))
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    synth, train = _rates(config, load_head_model(args.head_model), device)
    epochs = config.schedule.mse_epochs + config.schedule.geodesic_epochs
    # 85 % of the budget for training steps; validation and start-up take the rest.
    items = int(0.85 * 60 * args.budget_minutes * train / epochs) // config.optim.batch_size * config.optim.batch_size
    items = max(items, config.optim.batch_size)
    config = config.replace(data=config.data.replace(items_per_epoch=items),
                            optim=config.optim.replace(max_minutes=args.budget_minutes))
    rates = {"synthesis_samples_per_s": synth, "training_samples_per_s": train, "items_per_epoch": items,
             "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}  # fmt: skip
    print(json.dumps(rates), flush=True)
    result = (train_slice if is_slice else train_volume)(config, args.output, progress=False, overwrite=True)
    summary = json.loads((result.output / "summary.json").read_text())
    (result.output / "summary.json").write_text(json.dumps({**summary, "rates": rates}, indent=2))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

"""One seed drives every random draw of a training run, and no run leaks RNG state into another.

What a run draws and from where:

- initial weights: ``seeded_network`` (torch's generator forked and seeded by ``seed``);
- training and validation items, random crops, the order of the items: explicit generators
  seeded by ``(seed, epoch, index)`` (``posereg.data.dataset.item_generator``,
  ``EpochSampler``);
- dropout and anything else that draws from torch's global generators during a step:
  ``SeedEachEpoch`` re-seeds them (CPU and CUDA) at the start of every epoch from
  ``(seed, epoch, rank)``, so an epoch's draws depend on nothing before it: a run resumed from
  the checkpoint of epoch ``e`` draws in epoch ``e + 1`` exactly what the uninterrupted run drew;
- data-loader workers: ``seed_worker`` seeds torch, NumPy and ``random`` in each worker from
  ``(seed, rank, worker id)``.

``scoped_rng`` restores the caller's global generators (torch CPU and CUDA, NumPy, ``random``)
when a run ends, so that two runs in one process with one seed draw the same numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from torch import nn

__all__ = [
    "SeedEachEpoch", "derive_seed", "load_initial_weights", "loader_generator", "scoped_rng", "seed_worker",
    "seeded_network",
]  # fmt: skip

_STREAMS = {"global": 1, "worker": 2, "loader": 3}


def derive_seed(seed: int, stream: str, *parts: int) -> int:
    """A 32-bit seed for ``stream`` ('global', 'worker', 'loader') of run ``seed`` at ``parts``
    (epoch, rank, worker id), hashed by NumPy's ``SeedSequence`` (distinct inputs, distinct streams)."""
    return int(np.random.SeedSequence([seed, _STREAMS[stream], *parts]).generate_state(1)[0])


def seeded_network(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with torch's RNG seeded by ``seed`` (reproducible initial weights), restoring the
    caller's RNG state afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def load_initial_weights(net: nn.Module, path: str | None, load: Callable[[str], tuple[nn.Module, object]]) -> None:
    """Start ``net`` from the weights of the trained model file ``path`` (``model.init_from``;
    nothing when None), read by ``load`` (``load_volume_model``, ``load_slice_model``, ...).

    Raises:
        FileNotFoundError: ``path`` names no file.
        ValueError: the file holds another network (its ``spec`` differs from ``net.spec``).
    """
    if path is None:
        return
    start, _ = load(path)
    if getattr(start, "spec", None) != getattr(net, "spec", None):
        raise ValueError(f"model.init_from: {path} is a different network ({getattr(start, 'spec', None)} vs "
                         f"{getattr(net, 'spec', None)})")  # fmt: skip
    net.load_state_dict(start.state_dict())


def seed_worker(seed: int, rank: int, worker_id: int) -> None:
    """Seed torch, NumPy and ``random`` in a data-loader worker (``functools.partial(seed_worker,
    seed, rank)`` as the loader's ``worker_init_fn``)."""
    value = derive_seed(seed, "worker", rank, worker_id)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


def loader_generator(seed: int, rank: int) -> torch.Generator:
    """The generator a ``DataLoader`` draws its workers' base seed from (not torch's global one)."""
    return torch.Generator().manual_seed(derive_seed(seed, "loader", rank))


@contextmanager
def scoped_rng() -> Iterator[None]:
    """Restore torch's (CPU and initialised CUDA devices), NumPy's and ``random``'s global state on exit."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


class SeedEachEpoch(L.Callback):
    """Seeds torch's global generators (all devices) at the start of every training epoch from
    ``(seed, epoch, global rank)``: dropout masks repeat across runs and across resumes, and
    differ between epochs and ranks."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(derive_seed(self.seed, "global", trainer.current_epoch, trainer.global_rank))

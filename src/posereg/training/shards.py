"""What each process of a run sees, and how the processes' results are joined.

An epoch's items (``EpochSampler``: ``(epoch, index)`` pairs, in a seeded order or in index order)
are cut into global batches of ``batch_size`` items (the last one shorter; with ``batch_size > 1``
a last batch of a single item joins the one before it), each padded to a multiple of the number of processes ``W`` by
repeating the epoch's first items; process ``r`` takes items ``r, r + W, ...`` of each global
batch. So the shards of one epoch are disjoint (but for the padding), every process runs the same
number of steps with the same batch sizes, and the union of one step's shards is the global batch a
single process takes (``ShardedBatchSampler``).

Why a last item joins the batch before it: batch normalisation cannot normalise one item by its
own statistics (``posereg.training.loop.batchnorm_for_batch`` falls back to the running ones when
it must), and torch's CPU 2-D convolution backward for one item on 1 x 1 maps is not bit-
reproducible with several threads (seen with torch 2.13 in PoseNet's last block), which would
break exact repeats and resumes. Batches of one remain only where the configuration asks for them
(``batch_size`` equal to the number of processes) or an epoch has a single item per process.

Validation shards are padded the same way with marked items (``Tagged``: ``ITEM`` holds the item's
index, or -1 for padding); the per-item results of all processes are joined by ``gather_items``
(all-gather, padding dropped, ordered by item index), so every process computes the same metrics
over the whole validation set, in the same order as a single process. ``training_loader`` and
``validation_loader`` are the ``DataLoader``s of one process (seeded workers: ``posereg.training.seeding``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from posereg.data.dataset import EpochSampler
from posereg.training.seeding import loader_generator, seed_worker

__all__ = ["ITEM", "ShardedBatchSampler", "Tagged", "gather_items", "shard_batches", "training_loader", "validation_loader"]

ITEM = "_item"
"""The batch key of each validation item's index in its dataset (-1: padding of a shard)."""


def shard_batches(pairs: list[Any], batch_size: int, rank: int, world: int) -> list[list[tuple[Any, bool]]]:
    """The batches of process ``rank`` of ``world`` over one epoch's ``pairs``.

    Args:
        pairs: the epoch's items in order (at least one).
        batch_size: the global batch, a multiple of ``world``.
        rank, world: this process and the number of processes.

    Returns:
        Per batch, ``(item, is_padding)`` pairs; every rank gets the same number of batches of
        the same sizes, and each real item lands on exactly one rank.

    Raises:
        ValueError: no items, or a batch that does not split evenly.
    """
    if not pairs:
        raise ValueError("pairs: expected at least one item")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank, world: expected 0 <= rank < world, got {rank}, {world}")
    if batch_size < 1 or batch_size % world:
        raise ValueError(f"batch_size: the global batch ({batch_size}) must be a positive multiple of the {world} processes")
    chunks = [pairs[start : start + batch_size] for start in range(0, len(pairs), batch_size)]
    if batch_size > 1 and len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = chunks[-1] + last
    batches = []
    for chunk in chunks:
        padding = (-len(chunk)) % world
        marked = [(p, False) for p in chunk] + [(pairs[i % len(pairs)], True) for i in range(padding)]
        batches.append(marked[rank::world])
    return batches


class ShardedBatchSampler(Sampler):
    """Batches of this process's shard of an ``EpochSampler`` (see the module doc).

    Args:
        sampler: the epoch's ``(epoch, index)`` pairs: an ``EpochSampler``, whose ``set_epoch``
            Lightning calls (``dataloader.batch_sampler.sampler``), or fixed pairs (validation).
        batch_size: the global batch (a multiple of ``world``).
        rank, world: this process and the number of processes.
        tag: yield ``(epoch, index, is_real)`` triples for ``Tagged`` datasets (validation)
            instead of ``(epoch, index)`` pairs (training: padding items are trained on).
    """

    def __init__(self, sampler: EpochSampler | Sequence[tuple[int, int]], batch_size: int, rank: int = 0, world: int = 1,
                 *, tag: bool = False) -> None:  # fmt: skip
        self.sampler, self.batch_size, self.rank, self.world, self.tag = sampler, batch_size, rank, world, tag
        shard_batches([None], batch_size, rank, world)  # checks the arguments

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in shard_batches(list(self.sampler), self.batch_size, self.rank, self.world):
            yield [(*pair, not padding) if self.tag else pair for pair, padding in batch]

    def __len__(self) -> int:
        n = len(self.sampler)
        return max(1, n // self.batch_size + (n % self.batch_size > 1))


class Tagged(Dataset):
    """``dataset``'s items with their index under ``ITEM`` (-1 for padding), indexed by the
    ``(epoch, index, is_real)`` triples of a tagging ``ShardedBatchSampler``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, bool]) -> dict[str, Any]:
        epoch, index, real = key
        return {**self.dataset[(epoch, index)], ITEM: index if real else -1}


def gather_items(module: Any, items: Tensor, *values: Tensor) -> tuple[Tensor, ...]:
    """Per-item ``values`` of every process, padding dropped, in item order.

    Args:
        module: the ``LightningModule`` (its ``all_gather`` and trainer's ``world_size``).
        items: ``(N,)`` item indices of this process's values (-1: padding); every process
            holds the same ``N`` (the shards are padded to equal length).
        values: ``(N,)`` or ``(N, ...)`` tensors.

    Returns:
        ``values`` of all processes, each ``(M, ...)`` over the ``M`` real items, ordered by index.
    """
    world = module.trainer.world_size if module._trainer is not None else 1
    if world > 1:
        gathered = module.all_gather((items, *values))  # each (W, N, ...)
        items, values = gathered[0].flatten(), tuple(v.flatten(0, 1) for v in gathered[1:])
    real = items >= 0
    order = torch.argsort(items[real], stable=True)
    return tuple(v[real][order] for v in values)


def _loader(dataset: Dataset, batches: ShardedBatchSampler, num_workers: int, seed: int) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, persistent_workers=num_workers > 0,
                      worker_init_fn=functools.partial(seed_worker, seed, batches.rank),
                      generator=loader_generator(seed, batches.rank))  # fmt: skip


def training_loader(train: Dataset, batch_size: int, num_workers: int, *, shuffle: bool = True, seed: int = 0,
                    rank: int = 0, world: int = 1) -> DataLoader:  # fmt: skip
    """The training ``DataLoader`` of process ``rank`` of ``world``: its shard of an ``EpochSampler``
    over ``train`` (``dataloader.batch_sampler.sampler``), shuffled by default (a new order each
    epoch, drawn from ``seed``), in batches of ``batch_size / world`` items (``batch_size``: the
    global batch; see ``posereg.training.shards``).

    Shuffling matters beyond fixed datasets: the slice dataset yields its items in groups of
    ``slices_per_volume`` slices of one rotated subject, so an ordered batch of 32 holds one
    or two rotations. Trained that way (session 3's run), every step pulled the network
    towards one rotation and batch normalisation saw a single pose per batch: the rotation
    was never learned (70 degrees on validation, the error of a constant prediction).
    """
    sampler = EpochSampler(len(train), shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
    return _loader(train, ShardedBatchSampler(sampler, batch_size, rank, world), num_workers, seed)


def validation_loader(val: Dataset, batch_size: int, num_workers: int, *, seed: int = 0, rank: int = 0,
                      world: int = 1) -> DataLoader:  # fmt: skip
    """The validation ``DataLoader`` of process ``rank`` of ``world``: the same items every epoch
    (epoch 0), tagged with their index (``Tagged``), sharded as ``training_loader`` shards."""
    pairs = [(0, i) for i in range(len(val))]  # type: ignore[arg-type]
    return _loader(Tagged(val), ShardedBatchSampler(pairs, batch_size, rank, world, tag=True), num_workers, seed)

"""Shards, batches of one and seeds: what each process trains on, for every item count and batch size."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from posereg.data.dataset import EpochSampler
from posereg.training.loop import batchnorm_for_batch, training_loader, validation_loader
from posereg.training.seeding import derive_seed, scoped_rng
from posereg.training.shards import ITEM, ShardedBatchSampler, shard_batches


@pytest.mark.parametrize("world", [1, 2, 4])
def test_shards_cover_every_item_once_with_equal_batches_on_every_rank(world: int) -> None:
    for n in range(1, 65):
        for batch_size in range(world, 17, world):
            per_rank = [shard_batches(list(range(n)), batch_size, r, world) for r in range(world)]
            shapes = {tuple(len(b) for b in batches) for batches in per_rank}
            assert len(shapes) == 1, (n, batch_size)  # the same steps and batch sizes on every rank
            sizes = shapes.pop()
            sampler = ShardedBatchSampler(EpochSampler(n), batch_size, 0, world)
            assert len(sizes) == len(sampler) and min(sizes) >= 1
            real = Counter(i for batches in per_rank for b in batches for i, padding in b if not padding)
            assert real == Counter(range(n)), (n, batch_size)  # disjoint shards covering the epoch
            if world == 1:  # consecutive batches; one of a single item only where nothing else is possible
                assert [i for b in per_rank[0] for i, _ in b] == list(range(n))
                assert min(sizes) >= 2 or batch_size == 1 or n == 1, (n, batch_size, sizes)
                assert max(sizes) <= batch_size + 1


def test_a_step_on_several_ranks_takes_the_one_process_batch() -> None:
    for n in (9, 10, 11):  # a last batch of 1 (joined), 2 and 3 items
        order = list(range(n))
        one = shard_batches(order, 4, 0, 1)
        assert [len(b) for b in one] == {9: [4, 5], 10: [4, 4, 2], 11: [4, 4, 3]}[n]
        for world in (2, 4):
            ranks = [shard_batches(order, 4, r, world) for r in range(world)]
            for k, batch in enumerate(one):
                union = sorted(i for r in range(world) for i, p in ranks[r][k] if not p)
                assert union == sorted(i for i, _ in batch)
    with pytest.raises(ValueError, match="must be a positive multiple of the 2 processes"):
        shard_batches(order, 3, 0, 2)


def test_sharded_loaders_follow_the_epoch_and_tag_validation_items() -> None:
    data = [{"x": torch.tensor(float(i))} for i in range(7)]

    class Items(torch.utils.data.Dataset):  # the (epoch, index) protocol of posereg's datasets
        def __len__(self) -> int:
            return 7

        def __getitem__(self, key):  # type: ignore[no-untyped-def]
            return data[key[1]]

    sampler = EpochSampler(7, shuffle=True, seed=3)
    batches = ShardedBatchSampler(sampler, 4, 1, 2)
    assert len(batches) == len(list(batches)) == 2
    first = [i for b in batches for _, i in b]
    sampler.set_epoch(1)
    assert first != [i for b in batches for _, i in b]  # a new order each epoch
    loader = training_loader(Items(), 4, 0, seed=3, rank=1, world=2)
    assert loader.batch_sampler.sampler.seed == 3 and len(loader) == 2  # type: ignore[union-attr]
    tagged = [validation_loader(Items(), 4, 0, rank=r, world=2) for r in range(2)]
    items = [torch.cat([b[ITEM] for b in loader]) for loader in tagged]
    assert items[0].tolist() == [0, 2, 4, 6] and items[1].tolist() == [1, 3, 5, -1]  # -1: padding
    assert torch.cat([b["x"] for b in tagged[1]]).tolist() == [1.0, 3.0, 5.0, 0.0]


def _networks():  # type: ignore[no-untyped-def]
    from posereg.models import VolumePoseNet
    from posereg.models.posenet import PoseNet
    from posereg.models.slice import SlicePoseNet

    return [
        (VolumePoseNet(channels=(4, 8), pool_before=(1,), fc=(16,), pooled_size=1), (1, 8, 8, 8)),
        (SlicePoseNet(width=0.125, stem_stride=2), (1, 16, 16)),
        (PoseNet(0.125, 2, 0.5, 16), (3, 16, 16)),
    ]


def test_every_batch_size_trains_batch_normalisation_included() -> None:
    """A batch of one normalises with the running statistics (which it leaves alone); larger
    batches as usual. (Batch normalisation treats every size above one alike; the sizes a run
    meets for 1-64 items in batches of 1-16 are checked above; each new input shape costs CPU
    kernels a second here, hence two sizes.)"""
    torch.manual_seed(0)
    for net, shape in _networks():
        net.train()
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            net(torch.rand(1, *shape))  # what a batch of one did before
        for n in (1, 2):
            norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            before = [m.running_mean.clone() for m in norms]
            with batchnorm_for_batch(net, n):
                out = net(torch.rand(n, *shape))
            loss = sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,)))
            loss.backward()  # type: ignore[union-attr]
            assert torch.isfinite(loss) and all(m.training for m in norms)
            unchanged = all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
            assert unchanged == (n == 1)


def test_derived_seeds_differ_and_scoped_rng_restores_every_generator() -> None:
    seeds = {derive_seed(s, stream, *parts) for s in (0, 1) for stream in ("global", "worker")
             for parts in ((0, 0), (1, 0), (0, 1))}  # fmt: skip
    assert len(seeds) == 12 and derive_seed(0, "global", 1, 0) == derive_seed(0, "global", 1, 0)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)  # noqa: B018
    expected = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)  # noqa: B018
    with scoped_rng():
        torch.manual_seed(5), np.random.seed(5), random.seed(5)  # noqa: B018
        torch.rand(9), np.random.rand(9), random.random()  # noqa: B018
    got = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]

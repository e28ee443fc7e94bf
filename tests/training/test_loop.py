"""The shared training loop's helpers."""

from __future__ import annotations

import torch

from posereg.training.seeding import seeded_network


def test_seeded_network_is_reproducible_and_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = seeded_network(7, lambda: torch.nn.Linear(4, 2))
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched
    b = seeded_network(7, lambda: torch.nn.Linear(4, 2))
    c = seeded_network(8, lambda: torch.nn.Linear(4, 2))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_the_training_order_follows_the_seed() -> None:
    from posereg.training.loop import training_loader

    def order(seed: int, epoch: int = 0) -> list[int]:
        sampler = training_loader(list(range(32)), 8, 0, seed=seed).batch_sampler.sampler  # type: ignore[arg-type,union-attr]
        sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        return [i for _, i in sampler]

    assert sorted(order(0)) == list(range(32)) and order(0) == order(0)
    assert order(0) != order(1) and order(0) != order(0, epoch=1)
    unshuffled = training_loader(list(range(4)), 2, 0, shuffle=False, seed=5).batch_sampler.sampler  # type: ignore[arg-type,union-attr]
    assert [i for _, i in unshuffled] == [0, 1, 2, 3]

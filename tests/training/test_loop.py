"""The shared training loop's helpers."""

from __future__ import annotations

import torch

from posereg.training.loop import seeded_network


def test_seeded_network_is_reproducible_and_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = seeded_network(7, lambda: torch.nn.Linear(4, 2))
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched
    b = seeded_network(7, lambda: torch.nn.Linear(4, 2))
    c = seeded_network(8, lambda: torch.nn.Linear(4, 2))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)

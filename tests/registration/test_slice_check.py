"""The located slice's check: quarter turns against the slice frames, the consensus of the turned
passes, the verdict, and the locator using them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg import geometry as g
from posereg.data.slices import SliceGeometry, cut_slices, preprocess_slice
from posereg.registration.slice import SliceLocator
from posereg.registration.slice_check import (
    SliceThresholds,
    quarter_turn_rotations,
    quarter_turns,
    slice_consensus,
    slice_doubts,
)

F64 = torch.float64
GEOMETRY = SliceGeometry(40, 4.8, 40)


def _R(seed: int) -> torch.Tensor:
    return g.random_rotation((), generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_turned_slice_is_the_slice_cut_under_the_turned_rotation(small_atlas, seed):
    """``quarter_turns(cut(R))[q] == cut(Z_q R)``, pixel for pixel: the identity the consensus rests on."""
    R, k = _R(seed), torch.tensor(17.0 + seed)
    turned = quarter_turns(cut_slices(small_atlas.image, R, k, GEOMETRY))
    Z = quarter_turn_rotations()
    for q in range(4):
        torch.testing.assert_close(turned[q], cut_slices(small_atlas.image, Z[q] @ R, k, GEOMETRY), atol=1e-6, rtol=0)
    torch.testing.assert_close(Z[1], g.rotvec_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64)), atol=1e-15, rtol=0)
    torch.testing.assert_close(torch.linalg.matrix_power(Z[1], 4), torch.eye(3, dtype=F64))


def test_quarter_turns_refuse_what_is_not_a_square_slice():
    for bad in (torch.rand(4, 5), torch.rand(4), torch.rand(2, 4, 4)):
        with pytest.raises(ValueError, match="square"):
            quarter_turns(bad)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3), st.floats(30.0, 180.0))
def test_the_consensus_of_right_passes_is_the_pose_whatever_one_wrong_pass_says(seed, wrong, off_deg):
    R = _R(seed)
    Z = quarter_turn_rotations()
    passes = Z @ R  # what a right network answers for each turn
    error = g.rotvec_to_matrix(torch.tensor([0.0, math.radians(off_deg), 0.0], dtype=F64))
    passes[wrong] = error @ passes[wrong]
    indices = torch.tensor([20.0, 21.0, 22.0, 23.0], dtype=F64)
    indices[wrong] = 3.0
    found = slice_consensus(passes, indices)
    assert found.agreement == 0.75
    assert float(torch.rad2deg(g.geodesic_distance(found.R, R))) < 1e-6
    assert found.index == pytest.approx(float(indices[torch.arange(4) != wrong].mean()))
    torch.testing.assert_close(found.estimates[(wrong + 1) % 4], R)


def test_passes_that_ignore_the_turn_scatter():
    """A network that answers the same whatever it sees (the turns say nothing to it) disagrees with itself."""
    R = _R(5)
    found = slice_consensus(R.expand(4, 3, 3), torch.full((4,), 12.0, dtype=F64))
    assert found.agreement == 0.25 and found.index == 12.0
    with pytest.raises(ValueError, match=r"\(4, 3, 3\)"):
        slice_consensus(R.expand(3, 3, 3), torch.zeros(3))


def test_the_verdict_names_the_failed_check():
    t = SliceThresholds(min_agreement=0.75)
    assert slice_doubts({"agreement": 1.0}, t) == [] and slice_doubts({"agreement": 0.75}, t) == []
    assert slice_doubts({}, t) == []  # one pass: nothing to judge
    (reason,) = slice_doubts({"agreement": 0.5}, t)
    assert "agreement 0.50 < 0.75" in reason
    assert slice_doubts({"agreement": 0.75}) != []  # the default asks all four passes to agree


class TurnAwareOracle(torch.nn.Module):
    """Answers ``Z_q R`` for the slice turned by ``q`` (found by comparing it with the four turns of
    the true slice): a perfect network, as the locator sees it."""

    def __init__(self, image: torch.Tensor, R: torch.Tensor, index: float) -> None:
        super().__init__()
        self.turns, self.passes, self.k = quarter_turns(image).float(), quarter_turn_rotations() @ R, index

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        q = ((x[:, 0, None] - self.turns[None]).abs().flatten(2).sum(-1)).argmin(1)
        return g.matrix_to_rotvec(self.passes[q]).float(), torch.full((x.shape[0],), self.k)

    def to_matrix(self, v: torch.Tensor) -> torch.Tensor:
        return g.rotvec_to_matrix(v.double())


def test_the_locator_agrees_with_itself_on_a_perfect_network_and_reports_its_checks(small_atlas):
    R, k = _R(11), 19.0
    image = preprocess_slice(cut_slices(small_atlas.image, R, torch.tensor(k), GEOMETRY))
    located = SliceLocator(small_atlas, TurnAwareOracle(image, R, k), GEOMETRY)(image)
    assert located.quality["agreement"] == 1.0 and located.index == k
    assert float(torch.rad2deg(g.geodesic_distance(located.R, R))) < 1e-4
    assert slice_doubts(located.quality) == [] and set(located.seconds) == {"pose-net"}
    one = SliceLocator(small_atlas, TurnAwareOracle(image, R, k), GEOMETRY, turns=False)(image)
    assert one.quality == {} and float(g.geodesic_distance(one.R, R)) < 1e-6

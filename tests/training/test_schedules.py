"""Two-stage schedules: which loss is active at which epoch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posereg import geometry as g
from posereg.losses import PoseLoss, RotvecMSELoss, SO3GeodesicLoss
from posereg.training import Stage, StageSchedule, salehi_schedule


def test_salehi_schedule_switches_from_mse_to_geodesic():
    schedule = salehi_schedule(3, 2)
    assert schedule.total_epochs == 5 and [s.name for s in schedule] == ["mse", "geodesic"]
    assert [type(schedule.loss_at(e)).__name__ for e in range(5)] == ["RotvecMSELoss"] * 3 + ["SO3GeodesicLoss"] * 2
    assert [schedule.starts_stage(e) for e in range(5)] == [True, False, False, True, False]
    # The active loss is the one that trains: pi and -pi differ for MSE, not for the geodesic loss.
    a = torch.tensor([[torch.pi, 0.0, 0.0]])
    assert schedule.loss_at(0)(a, -a).item() > 39 and schedule.loss_at(4)(a, -a).item() < 1e-6


def test_salehi_schedule_with_translation_uses_lambda():
    schedule = salehi_schedule(1, 1, representation=g.SIXD, translation_weight=0.5)
    mse, geodesic = schedule.loss_at(0), schedule.loss_at(1)
    assert isinstance(mse, PoseLoss) and isinstance(mse.rotation, RotvecMSELoss)
    assert isinstance(geodesic.rotation, SO3GeodesicLoss) and geodesic.representation is g.SIXD
    v, t = torch.zeros(2, 3), torch.zeros(2, 3)
    assert mse(v, t, v, t + 2.0).item() == pytest.approx(0.5 * 12.0)


def test_bad_schedules_and_epochs():
    with pytest.raises(ValueError, match="at least one Stage"):
        StageSchedule([])
    with pytest.raises(ValueError, match="at least one epoch"):
        StageSchedule([Stage("a", 0, nn.Identity())])
    with pytest.raises(ValueError, match="distinct names"):
        StageSchedule([Stage("a", 1, nn.Identity()), Stage("a", 1, nn.Identity())])
    schedule = salehi_schedule(1, 1)
    for epoch in (-1, 2, 1.0):
        with pytest.raises(ValueError, match=r"epoch: expected an int in \[0, 2\)"):
            schedule.stage_at(epoch)  # type: ignore[arg-type]
    assert repr(schedule) == "StageSchedule(mse: 1, geodesic: 1)" and len(schedule) == 2

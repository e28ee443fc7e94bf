"""Salehi et al.'s 3D Pose-Net and Correction-Net."""

from __future__ import annotations

import pytest
import torch

from posereg import geometry as g
from posereg.losses import so3_geodesic_loss
from posereg.models import QuaternionHead
from posereg.models.volume import CorrectionNet, VolumeEncoder, VolumePoseNet

SMALL = {"channels": (4, 8, 8), "pool_before": (1, 2), "fc": (32, 16), "pooled_size": 2}


def test_paper_architecture_shapes_and_size():
    net = VolumePoseNet()
    convs = [m for m in net.encoder.features if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [8, 32, 32, 64, 64]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    pools = [i for i, m in enumerate(net.encoder.features) if isinstance(m, torch.nn.MaxPool3d)]
    assert len(pools) == 2
    assert [m.out_features for m in net.encoder.mlp if isinstance(m, torch.nn.Linear)] == [512, 512, 256]
    assert sum(p.numel() for p in net.parameters()) < 3_000_000  # ~10 MB in float32
    out = net.eval()(torch.rand(2, 1, 64, 64, 64))
    assert out.shape == (2, 3) and out.abs().max() < torch.pi


def test_correction_net_outputs_rotation_and_millimetres():
    net = CorrectionNet(translation_scale_mm=20.0, **SMALL).eval()
    rotation, translation = net(torch.rand(3, 2, 24, 24, 24))
    assert rotation.shape == (3, 3) and translation.shape == (3, 3)
    assert net.to_matrix(rotation).shape == (3, 3, 3)
    with pytest.raises(ValueError, match=r"x: expected a tensor of shape \(N, 2, D, H, W\)"):
        net(torch.rand(3, 1, 24, 24, 24))


def test_any_rotation_head():
    net = VolumePoseNet(rotation_head=QuaternionHead, **SMALL).eval()
    q = net(torch.rand(2, 1, 16, 16, 16))
    assert q.shape == (2, 4) and net.representation is g.QUATERNION
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(2))


def test_pose_net_fits_a_tiny_problem():
    """Four volumes with known rotations: the geodesic loss must fall by a large factor."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 16, 16, 16, generator=gen)
    target = g.matrix_to_rotvec(g.random_rotation(4, generator=gen))
    net = VolumePoseNet(**SMALL)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = so3_geodesic_loss(net(x), target, g.ROTVEC)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_spec_round_trip_and_errors():
    from posereg.models import SixDHead, load_volume_network, volume_network_from_spec

    net = CorrectionNet(translation_scale_mm=7.0, rotation_head=SixDHead, **SMALL)
    rebuilt = load_volume_network({"spec": net.spec, "state_dict": net.state_dict()})
    assert isinstance(rebuilt, CorrectionNet) and rebuilt.spec == net.spec and not rebuilt.training
    x = torch.rand(2, 2, 16, 16, 16)
    net.eval()
    torch.testing.assert_close(rebuilt(x)[0], net(x)[0])
    with pytest.raises(ValueError, match="rotation_head must be one of"):
        volume_network_from_spec({**net.spec, "rotation_head": "euler"})
    with pytest.raises(ValueError, match="expected a correction or pose network"):
        volume_network_from_spec({**net.spec, "network": "slice"})
    with pytest.raises(ValueError, match="do not fit"):
        load_volume_network({"spec": {**net.spec, "fc": [8]}, "state_dict": net.state_dict()})


def test_bad_configurations():
    with pytest.raises(ValueError, match="pool_before"):
        VolumeEncoder(channels=(4, 8), pool_before=(2,))
    with pytest.raises(ValueError, match="at least one"):
        VolumeEncoder(channels=())

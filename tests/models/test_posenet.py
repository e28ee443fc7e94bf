"""PoseNet: outputs, position offset/scale, input normalisation, spec round trip, backbone weights."""

from __future__ import annotations

import pytest
import torch

from posereg.models.heads import RotvecHead
from posereg.models.posenet import PoseNet, load_backbone_weights, load_posenet, posenet_from_spec


def _net(seed: int = 0, **kwargs) -> PoseNet:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return PoseNet(width=0.125, fc_features=16, **kwargs).eval()


def test_outputs_unit_quaternions_and_positions_about_the_offset() -> None:
    net = _net(position_offset=(10.0, -2.0, 1.5), position_scale=3.0)
    q, p = net(torch.rand(4, 3, 32, 32))
    assert q.shape == (4, 4) and p.shape == (4, 3)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(4))
    assert bool((q[:, 0] >= 0).all())
    with torch.no_grad():
        net.position.linear.weight.zero_()
        net.position.linear.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    _, p = net(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(p, torch.tensor([[13.0, -2.0, -1.5]] * 2))  # offset + scale * linear
    assert net.to_matrix(q).shape == (4, 3, 3)


def test_input_normalisation_is_the_training_statistics() -> None:
    mean, std = (0.2, 0.4, 0.6), (0.1, 0.2, 0.3)
    a = _net(seed=1, image_mean=mean, image_std=std)
    b = _net(seed=1)
    x = torch.rand(2, 3, 32, 32)
    normalised = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    for out_a, out_b in zip(a(x), b(normalised)):
        torch.testing.assert_close(out_a, out_b)


def test_spec_round_trip_and_other_heads() -> None:
    net = _net(position_offset=(1.0, 2.0, 3.0), rotation_head=RotvecHead)
    copy = load_posenet({"spec": net.spec, "state_dict": net.state_dict()})
    x = torch.rand(2, 3, 32, 32)
    for a, b in zip(net(x), copy(x)):
        torch.testing.assert_close(a, b)
    assert copy.representation.name == "rotvec"
    with pytest.raises(ValueError, match="expected a posenet"):
        posenet_from_spec({**net.spec, "network": "slice"})
    with pytest.raises(ValueError, match="bad arguments"):
        posenet_from_spec({**net.spec, "depth": 50})
    with pytest.raises(ValueError, match="do not fit"):
        load_posenet({"spec": {**net.spec, "fc_features": 8}, "state_dict": net.state_dict()})


def test_load_backbone_weights_from_a_local_file(tmp_path) -> None:
    source, target = _net(seed=1), _net(seed=2)
    assert not torch.equal(source.backbone.conv1.weight, target.backbone.conv1.weight)
    path = tmp_path / "backbone.pt"
    torch.save(source.backbone.state_dict(), path)
    head_before = target.position.linear.weight.clone()
    load_backbone_weights(target, path)
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(v, target.backbone.state_dict()[k])
    assert torch.equal(head_before, target.position.linear.weight)  # heads untouched
    # a whole PoseNet state dict: only its backbone is taken
    third = _net(seed=3)
    whole = tmp_path / "posenet.pt"
    torch.save(third.state_dict(), whole)
    load_backbone_weights(target, whole)
    assert torch.equal(target.backbone.conv1.weight, third.backbone.conv1.weight)


def test_load_backbone_weights_rejects_bad_files(tmp_path) -> None:
    net = _net()
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(net, tmp_path / "missing.pt")
    wider = PoseNet(width=0.25, fc_features=16)
    torch.save(wider.backbone.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="wrong shapes"):
        load_backbone_weights(net, tmp_path / "wide.pt")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="missing"):
        load_backbone_weights(net, tmp_path / "partial.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_backbone_weights(net, tmp_path / "list.pt")


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="dropout"):
        PoseNet(dropout=1.0)
    with pytest.raises(ValueError, match="position_offset"):
        PoseNet(position_offset=(0.0, 0.0))
    with pytest.raises(ValueError, match="image_std"):
        PoseNet(image_std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        _net()(torch.rand(2, 1, 32, 32))

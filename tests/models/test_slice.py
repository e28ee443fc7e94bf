"""The slice Pose-Net (MONAI 2D ResNet-18 with rotation and slice-index heads)."""

from __future__ import annotations

import pytest
import torch

from posereg.models import SixDHead
from posereg.models.slice import SlicePoseNet, load_slice_network, slice_network_from_spec


def test_outputs_and_their_ranges():
    torch.manual_seed(0)
    net = SlicePoseNet(width=0.25, index_scale=64.0).eval()
    with torch.no_grad():
        rotation, index = net(torch.rand(3, 1, 64, 64))
    assert rotation.shape == (3, 3) and index.shape == (3,)
    assert float(rotation.norm(dim=-1).max()) <= torch.pi and float(index.min()) >= 0.0
    assert net.to_matrix(rotation).shape == (3, 3, 3)
    layers = [m for m in net.backbone.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    convolutions = [m for m in layers if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert len(convolutions) == 17  # 18 layers with the heads' linear layer (downsampling 1x1 not counted)


def test_spec_round_trip_and_bad_input():
    torch.manual_seed(0)
    net = SlicePoseNet(width=0.125, stem_stride=2, rotation_head=SixDHead).eval()
    copy = load_slice_network({"spec": net.spec, "state_dict": net.state_dict()})
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        for a, b in zip(net(x), copy(x), strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="slice network"):
        slice_network_from_spec({"network": "pose"})
    with pytest.raises(ValueError, match="rotation_head"):
        slice_network_from_spec({"network": "slice", "rotation_head": "euler"})
    with pytest.raises(ValueError, match="weights do not fit"):
        load_slice_network({"spec": {**net.spec, "width": 0.25}, "state_dict": net.state_dict()})

"""Inference copies: batch norms folded (same outputs, no norms left where the data flow allows),
2x max-pooling as pairwise maxima (the same values)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from posereg.models import (
    PairwiseMaxPool,
    SixDHead,
    fuse_batch_norm,
    inference_copy,
    volume_network_from_spec,
)
from posereg.models.slice import SlicePoseNet

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _count_norms(net: nn.Module) -> int:
    return sum(isinstance(m, NORMS) for m in net.modules())


def _with_running_statistics(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial running means and variances (fresh norms are the identity map)."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x * 3 + 1)
    return net.eval()


def _assert_same_outputs(a, b) -> None:
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["pose", "correction"])
def test_volume_networks_fold_every_norm_and_keep_their_outputs(kind):
    torch.manual_seed(0)
    spec = {"network": kind, "channels": [4, 8, 8], "pool_before": [0, 1], "fc": [32, 16], "pooled_size": 2}
    x = torch.rand(4, 1 if kind == "pose" else 2, 16, 16, 16)
    net = _with_running_statistics(volume_network_from_spec(spec), x)
    fused = fuse_batch_norm(net)
    assert _count_norms(fused) == 0 and _count_norms(net) > 0  # the original is left alone
    with torch.no_grad():
        _assert_same_outputs(net(x), fused(x))


def test_slice_network_folds_the_resnet_blocks_behind_an_untraceable_forward():
    # SlicePoseNet.forward checks the input's shape (untraceable); MONAI's ResNetBlock keeps
    # conv1/bn1/conv2/bn2 as attributes, not in a Sequential: the pairs come from the data flow.
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32)
    net = _with_running_statistics(SlicePoseNet(width=0.25, stem_stride=2, index_scale=32.0, rotation_head=SixDHead), x)
    assert _count_norms(net) == 20
    fused = fuse_batch_norm(net)
    assert _count_norms(fused) == 0
    assert type(fused) is SlicePoseNet and fused.spec == net.spec  # class, methods and attributes kept
    with torch.no_grad():
        rotation, index = fused(x)
        _assert_same_outputs(net(x), (rotation, index))
    torch.testing.assert_close(fused.to_matrix(rotation), net.to_matrix(rotation))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):  # the input check still runs
        fused(torch.rand(1, 2, 32, 32))


class _SharedConv(nn.Module):
    """One convolution used twice, once before a norm: folding it would change the other use."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) + self.conv(x)


class _BranchingConv(nn.Module):
    """A convolution whose output feeds a norm and a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.last = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Linear(4, 3)
        self.last_norm = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = (self.norm(y) + y).mean(dim=(2, 3))
        return self.last_norm(self.last(torch.cat([z, z], dim=1)))


@pytest.mark.parametrize(("module", "left"), [(_SharedConv, 1), (_BranchingConv, 1)])
def test_norms_are_kept_where_folding_would_change_another_use(module, left):
    torch.manual_seed(0)
    x = torch.rand(5, 2, 8, 8)
    net = _with_running_statistics(module(), x)
    fused = fuse_batch_norm(net)
    assert _count_norms(fused) == left  # _BranchingConv: Linear -> BatchNorm1d folds, the 2D pair does not
    with torch.no_grad():
        _assert_same_outputs(net(x), fused(x))


def test_norms_without_running_statistics_are_kept():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False)).eval()
    assert _count_norms(fuse_batch_norm(net)) == 1


def test_inference_copy_folds_norms_and_stores_2d_weights_channels_last():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 32, 32)
    net = _with_running_statistics(SlicePoseNet(width=0.25, stem_stride=2, index_scale=32.0), x)
    copy = inference_copy(net)
    convs = [m.weight for m in copy.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert all(not w.is_contiguous(memory_format=torch.channels_last)
               for w in (m.weight for m in net.modules() if isinstance(m, nn.Conv2d)) if w.shape[1] > 1 and w.shape[-1] > 1)  # fmt: skip
    assert _count_norms(copy) == 0 and not copy.training
    with torch.no_grad():
        _assert_same_outputs(net(x), copy(x))
    plain = inference_copy(net, channels_last=False)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, nn.Conv2d))
    volume = volume_network_from_spec({"network": "pose", "channels": [4, 8], "pool_before": [0], "fc": [16], "pooled_size": 2})
    assert all(m.weight.is_contiguous() for m in inference_copy(volume).modules() if isinstance(m, nn.Conv3d))


_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


@settings(max_examples=60, deadline=None)
@given(dims=st.integers(1, 3), sizes=st.lists(st.integers(2, 9), min_size=3, max_size=3), batch=st.booleans(),
       channels=st.integers(1, 3), channels_last=st.booleans(), seed=st.integers(0, 2**16))  # fmt: skip
def test_pairwise_max_pool_equals_max_pooling_of_kernel_and_stride_2(dims, sizes, batch, channels, channels_last, seed):
    x = torch.randn(*((2,) if batch else ()), channels, *sizes[:dims], generator=torch.Generator().manual_seed(seed))
    if channels_last and dims == 3 and batch:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    out = PairwiseMaxPool(dims)(x)
    assert torch.equal(out, _POOLS[dims](2)(x))  # exact: maxima of the same values
    if channels_last and dims == 3 and batch:
        assert out.is_contiguous(memory_format=torch.channels_last_3d)


def test_pairwise_max_pool_propagates_nan_and_refuses_axes_too_short():
    x = torch.rand(1, 1, 4, 4, 4)
    x[0, 0, 1, 2, 3] = float("nan")
    out = PairwiseMaxPool(3)(x)
    assert torch.isnan(out[0, 0, 0, 1, 1]) and torch.isnan(nn.MaxPool3d(2)(x)[0, 0, 0, 1, 1])
    assert int(torch.isnan(out).sum()) == 1
    with pytest.raises(ValueError, match="at least 2 voxels"):
        PairwiseMaxPool(3)(torch.rand(1, 1, 4, 1, 4))
    with pytest.raises(ValueError, match="dims"):
        PairwiseMaxPool(4)


def test_inference_copy_swaps_only_the_poolings_of_kernel_and_stride_2():
    torch.manual_seed(0)
    pools = [nn.MaxPool3d(2), nn.MaxPool3d((2, 2, 2), stride=2), nn.MaxPool3d(3, stride=2, padding=1),
             nn.MaxPool3d(2, stride=1), nn.MaxPool3d(2, ceil_mode=True), nn.MaxPool2d(2)]  # fmt: skip
    net = nn.Sequential(*pools)
    copy = inference_copy(net)
    kinds = [type(m) for m in copy]
    assert kinds == [PairwiseMaxPool, PairwiseMaxPool, nn.MaxPool3d, nn.MaxPool3d, nn.MaxPool3d, PairwiseMaxPool]
    assert all(type(m) is not PairwiseMaxPool for m in net)  # the original is unchanged
    volume = _with_running_statistics(
        volume_network_from_spec({"network": "pose", "channels": [4, 8], "pool_before": [0, 1], "fc": [16], "pooled_size": 2}),
        torch.rand(3, 1, 16, 16, 16),
    )  # fmt: skip
    fast = inference_copy(volume)
    assert sum(isinstance(m, PairwiseMaxPool) for m in fast.modules()) == 2
    x = torch.rand(5, 1, 17, 16, 15)  # odd sizes: a trailing voxel dropped, as by nn.MaxPool3d
    with torch.no_grad():
        _assert_same_outputs(volume(x), fast(x))

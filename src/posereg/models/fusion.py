"""Inference copies of networks: batch norms folded, convolution weights in channels-last order.

In eval mode a batch norm is an affine map per channel, ``y = g (x - mu) / sqrt(var + eps) + b``;
after a convolution or linear layer it folds into that layer's weights and bias
(``torch.nn.utils.fusion``), which saves one elementwise pass over every feature map (about
10% of a CPU forward pass of the 2D ResNet-18 of the slice Pose-Net).

Which layer feeds which norm is read from the data flow (a ``torch.fx`` trace), not from the
order in which modules were registered: MONAI's ``ResNetBlock`` registers ``conv1, bn1, act,
conv2, bn2`` as attributes, not as an ``nn.Sequential``. Modules whose ``forward`` cannot be
traced (control flow on the input) are searched child by child. The layers are swapped in place
in a copy of the network, so its class, attributes and methods (``to_matrix``, ``spec``...) stay.

``inference_copy`` also stores 2-D convolution weights channels-last (NHWC), the layout
oneDNN's CPU convolutions work in: without it each convolution reorders its weights and
activations on every call. The slice ResNet-18 then runs a 64x64 slice in 1.4 ms instead of
3.3 ms on one core of this machine (measured in session 6; see docs/benchmarks/slice_to_volume.md).

``inference_copy`` also swaps each 2x max-pooling (``nn.MaxPoolNd(2)``: kernel 2, stride 2, no
padding) for ``PairwiseMaxPool``, the same maxima taken as elementwise maxima of strided views:
PyTorch's CPU pooling kernel also computes the argmax indices, which inference never reads. The
first pooling of the volume Pose-Net on its 24 re-posed 64^3 views took 21 ms of a 125 ms forward
pass; the pairwise maxima take 5.6 ms (2 threads, session 14).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

__all__ = ["PairwiseMaxPool", "fuse_batch_norm", "inference_copy"]

# (layer, norm) pairs that fold: a norm over the channels the layer writes.
_FOLDABLE = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d), (nn.Linear, nn.BatchNorm1d))
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_MAX_POOLS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}


class PairwiseMaxPool(nn.Module):
    """``nn.MaxPoolNd(2)`` (kernel 2, stride 2, no padding) over the last ``dims`` axes, as maxima of
    strided views: ``y[i] = max(x[2 i], x[2 i + 1])`` along each axis in turn.

    The same values as the pooling module (a NaN in a block gives NaN, as there), the memory
    layout of the input kept; a trailing odd voxel is dropped as the pooling drops it. Inputs
    with fewer than 2 voxels along a pooled axis are refused, as by the pooling module.
    """

    def __init__(self, dims: int) -> None:
        super().__init__()
        if dims not in (1, 2, 3):
            raise ValueError(f"dims: expected 1, 2 or 3 pooled axes, got {dims}")
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` (or without ``N``) -> each pooled axis halved (rounded down)."""
        if x.dim() < self.dims + 1 or min(x.shape[-self.dims :]) < 2:
            raise ValueError(f"x: expected (N, C) or (C) followed by {self.dims} axes of at least 2 voxels, "
                             f"got {tuple(x.shape)}")  # fmt: skip
        for axis in range(x.dim() - 1, x.dim() - 1 - self.dims, -1):
            end = x.shape[axis] // 2 * 2
            before = (slice(None),) * axis
            x = torch.maximum(x[(*before, slice(0, end, 2))], x[(*before, slice(1, end, 2))])
        return x

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


def fuse_batch_norm(net: nn.Module) -> nn.Module:
    """An inference copy of ``net`` with each batch norm folded into the layer before it.

    Every ``ConvNd -> BatchNormNd`` and ``Linear -> BatchNorm1d`` pair where the layer's output
    goes to the norm alone becomes one layer with the normalisation in its weights and bias; the
    norm becomes ``nn.Identity``. Outputs are the same as ``net``'s in eval mode (to float
    rounding). ``net`` itself is unchanged; the copy is in eval mode and is for inference only
    (its layers no longer normalise by batch statistics when trained).
    """
    fused = copy.deepcopy(net).eval()
    for layer_name, norm_name in _norm_pairs(fused, ""):
        layer, norm = fused.get_submodule(layer_name), fused.get_submodule(norm_name)
        fold = fuse_linear_bn_eval if isinstance(layer, nn.Linear) else fuse_conv_bn_eval
        fused.set_submodule(layer_name, fold(layer, norm))
        fused.set_submodule(norm_name, nn.Identity())
    return fused


def inference_copy(net: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``net`` for inference: ``fuse_batch_norm``, each 2x max-pooling as a
    ``PairwiseMaxPool``, then (by default) every 4-D weight (2-D convolutions) in
    ``torch.channels_last`` order.

    Values are unchanged (to float rounding); inputs need no particular layout. ``net`` itself is
    unchanged. 5-D weights (3-D convolutions) are left as they are: for one 64^3 volume
    ``channels_last_3d`` made the volume Pose-Net no faster (5.2 ms against 5.3 ms, 2 threads); the
    deep pipeline moves its copies to that layout itself, for its batches of 24 re-posed views.
    """
    fused = fuse_batch_norm(net)
    for name, module in list(fused.named_modules()):
        if _is_pairwise(module):
            fused.set_submodule(name, PairwiseMaxPool(_MAX_POOLS[type(module)]))
    if channels_last:
        for param in fused.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
    return fused


def _is_pairwise(module: nn.Module) -> bool:
    """Whether ``module`` is a max-pooling of kernel 2, stride 2, no padding, dilation or indices."""
    dims = _MAX_POOLS.get(type(module))
    if dims is None:
        return False
    as_tuple = lambda v: tuple(v) if isinstance(v, tuple | list) else (v,) * dims  # noqa: E731
    pool: nn.MaxPool3d = module  # type: ignore[assignment]  (any of the three: same attributes)
    return (as_tuple(pool.kernel_size) == (2,) * dims and as_tuple(pool.stride) == (2,) * dims
            and as_tuple(pool.padding) == (0,) * dims and as_tuple(pool.dilation) == (1,) * dims
            and not pool.ceil_mode and not pool.return_indices)  # fmt: skip


def _norm_pairs(module: nn.Module, prefix: str) -> list[tuple[str, str]]:
    """Qualified names ``(layer, norm)`` of the foldable pairs in ``module``'s data flow."""
    if not any(isinstance(m, _NORMS) for m in module.modules()):
        return []
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception:  # noqa: BLE001 - any untraceable forward (branches on the input, ...): search the children
        return [pair for name, child in module.named_children() for pair in _norm_pairs(child, f"{prefix}{name}.")]
    modules = dict(module.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        source, norm = node.args[0], modules[node.target]
        if not isinstance(norm, _NORMS) or source.op != "call_module" or len(source.users) != 1:
            continue
        layer = modules[source.target]
        # A module called twice (shared weights) could not be folded for one of its uses only.
        once = calls[source.target] == 1 and calls[node.target] == 1
        if once and norm.track_running_stats and any(isinstance(layer, a) and type(norm) is b for a, b in _FOLDABLE):
            pairs.append((prefix + source.target, prefix + node.target))
    return pairs


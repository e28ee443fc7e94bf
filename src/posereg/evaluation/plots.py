"""Figures: per-bin box plots of errors (Salehi et al. Fig. 4), registration slice panels and
relocalisation camera positions (Kendall & Cipolla's predicted-vs-true maps).

matplotlib is imported when a figure is drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from posereg.data import Volume

__all__ = ["binned_boxplot", "camera_positions", "registration_slices"]


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def binned_boxplot(
    path: str | Path,
    errors: Mapping[str, Sequence[float]],
    bins: Sequence[int],
    edges: Sequence[float],
    *,
    ylabel: str = "rotation error (degrees)",
    threshold: float | None = 10.0,
) -> None:
    """Box plots of each method's errors in each bin, methods side by side (PNG).

    Args:
        path: output image.
        errors: ``{method: errors}``, every list aligned with ``bins``.
        bins: the bin of each case (``bin_indices``).
        edges: the bin edges (labels of the x axis).
        threshold: a dotted horizontal line (the success threshold), or None.
    """
    plt = _pyplot()
    n_bins = len(edges) - 1
    names = list(errors)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * n_bins * len(names) / 3), 4.8))
    width = 0.8 / max(1, len(names))
    for m, name in enumerate(names):
        data = [[e for e, b in zip(errors[name], bins, strict=True) if b == k] for k in range(n_bins)]
        positions = [k + (m - (len(names) - 1) / 2) * width for k in range(n_bins)]
        box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True, showfliers=True,
                         flierprops={"markersize": 2})  # fmt: skip
        colour = plt.cm.tab10(m % 10)
        for patch in box["boxes"]:
            patch.set_facecolor(colour)
        ax.plot([], [], color=colour, linewidth=8, label=name)
    ax.set_xticks(range(n_bins), [f"{edges[k]:.0f}-{edges[k + 1]:.0f}" for k in range(n_bins)])
    ax.set(xlabel="rotation magnitude bin (degrees)", ylabel=ylabel, yscale="symlog")
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path, dpi=120)
    plt.close(fig)


def registration_slices(
    path: str | Path,
    atlas: Volume,
    rows: Sequence[tuple[str, Volume, Volume]],
    atlas_mask: torch.Tensor | None = None,
) -> None:
    """Central axial and sagittal slices of atlas / moving / aligned for each case (PNG).

    Args:
        path: output image.
        atlas: the fixed image (its grid defines the slices of atlas and aligned).
        rows: ``(title, moving, aligned)`` per case; ``aligned`` on the atlas grid.
        atlas_mask: if given, its outline is drawn over the aligned slices (how well they fit).
    """
    plt = _pyplot()
    columns = ("atlas", "moving", "aligned")
    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 2.1 * len(rows) + 0.4), squeeze=False)
    for r, (title, moving, aligned) in enumerate(rows):
        for v, (view, axis) in enumerate((("axial", 2), ("sagittal", 0))):
            for c, (name, image) in enumerate(zip(columns, (atlas, moving, aligned), strict=True)):
                ax = axes[r, 3 * v + c]
                ax.imshow(_central_slice(image.data, axis), cmap="gray", vmin=0.0, vmax=1.0, origin="lower")
                if name == "aligned" and atlas_mask is not None:
                    ax.contour(_central_slice(atlas_mask.float(), axis), levels=[0.5], colors="r", linewidths=0.6)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{name} ({view})", fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=7)
    fig.tight_layout()
    _save(fig, path, dpi=110)
    plt.close(fig)


def _central_slice(data: torch.Tensor, axis: int):  # type: ignore[no-untyped-def]
    """The middle slice across ``axis`` of an ``(I, J, K)`` RAS-aligned volume, for ``imshow``."""
    index = data.shape[axis] // 2
    return data.select(axis, index).T.cpu().numpy()


def camera_positions(path: str | Path, results: Mapping[str, Tensor], truth: Tensor, *, title: str = "") -> None:
    """Top-down map of true and predicted camera centres, one panel per method (PNG).

    Args:
        path: output image.
        results: ``{method: (N, 3) predicted centres}`` (metres, world frame, ``z`` up).
        truth: ``(N, 3)`` true centres, aligned with every prediction.
        title: figure title (e.g. the scene).

    Each prediction is joined to its true position by a thin line, so that the error's
    size and direction can be read off the map.
    """
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.8), squeeze=False)
    t = truth.detach().cpu().numpy()
    for ax, name in zip(axes[0], names):
        p = results[name].detach().cpu().numpy()
        segments = [((a[0], a[1]), (b[0], b[1])) for a, b in zip(t, p)]
        ax.add_collection(LineCollection(segments, colors="tab:red", linewidths=0.3, alpha=0.5))
        ax.scatter(t[:, 0], t[:, 1], s=3, color="black", label="true")
        ax.scatter(p[:, 0], p[:, 1], s=3, color="tab:orange", label="predicted")
        ax.set(title=name, xlabel="x (m)", ylabel="y (m)", aspect="equal")
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi=120)
    plt.close(fig)


def _save(fig, path: str | Path, dpi: int) -> None:  # type: ignore[no-untyped-def]
    """``fig.savefig`` through a temporary file (the format from ``path``'s extension): no half-written figure."""
    from posereg._files import atomic_path

    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=suffix)

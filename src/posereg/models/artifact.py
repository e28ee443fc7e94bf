"""The model file: one trained network, what it is, how to rebuild it and what it was trained on.

Training writes it (``model.pt``), ``posereg bundle`` packs two of them into a pipeline file,
and inference reads it (``register``, ``locate-slice``, ``demo``, ``evaluate``) without
importing training or Lightning. A file is a plain dictionary of tensors and builtins, read
with ``torch.load(weights_only=True)`` (no pickled code runs)::

    {"format": "posereg-model", "version": 1, "kind": "pose" | "correction" | "slice" | "posenet",
     "spec": {...}, "state_dict": {...}, "config": {...}, "grid": {...} | None}

``spec`` holds the constructor arguments (``net.spec``), ``config`` the training configuration
as plain data, and ``grid`` the working grid (``posereg.data.WorkingGrid.record()``) of volume
and slice networks. Files of posereg 0.1 before this format (``{"config", "spec",
"state_dict"}``) are read too: their kind comes from the spec, their grid from the
configuration's ``atlas`` section.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from posereg._files import atomic_path
from posereg.models._payload import network_from_payload
from posereg.models.posenet import posenet_from_spec
from posereg.models.slice import slice_network_from_spec
from posereg.models.volume import volume_network_from_spec

__all__ = ["FORMAT", "VERSION", "ModelArtifact", "NetworkKind", "load_artifact", "read_payload", "save_artifact"]

FORMAT = "posereg-model"
VERSION = 1


class NetworkKind(enum.Enum):
    """The networks posereg trains; the value is the ``network`` entry of their spec."""

    POSE = "pose"  # Salehi et al.'s volume Pose-Net: one volume -> rotation
    CORRECTION = "correction"  # Correction-Net: (moving, atlas) pair -> residual rotation and shift
    SLICE = "slice"  # slice Pose-Net: one 2D slice -> rotation and slice index
    POSENET = "posenet"  # Kendall & Cipolla's PoseNet: one camera image -> camera pose

    @property
    def uses_grid(self) -> bool:
        """Whether networks of this kind work on an atlas grid (volume and slice networks)."""
        return self is not NetworkKind.POSENET


_BUILDERS: dict[NetworkKind, Callable[[Mapping[str, Any]], nn.Module]] = {
    NetworkKind.POSE: volume_network_from_spec,
    NetworkKind.CORRECTION: volume_network_from_spec,
    NetworkKind.SLICE: slice_network_from_spec,
    NetworkKind.POSENET: posenet_from_spec,
}


@dataclass(frozen=True)
class ModelArtifact:
    """A trained network as data.

    Attributes:
        kind: which network.
        spec: the constructor arguments (``net.spec``; ``spec["network"] == kind.value``).
        state_dict: the weights.
        config: the training configuration as plain data (empty when unknown).
        grid: the working grid record (``posereg.data.WorkingGrid.record()``) of volume and
            slice networks; None for PoseNet, or a file that does not record it.
    """

    kind: NetworkKind
    spec: Mapping[str, Any]
    state_dict: Mapping[str, Tensor]
    config: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Any] | None = None

    @classmethod
    def of_network(cls, net: nn.Module, config: Mapping[str, Any], grid: Mapping[str, Any] | None = None) -> ModelArtifact:
        """The artifact of a posereg network (one with a ``spec``), its weights copied to the CPU."""
        spec = getattr(net, "spec", None)
        if not isinstance(spec, Mapping):
            raise ValueError(f"net: expected a posereg network with a 'spec', got {type(net).__name__}")
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return cls(_kind(spec), dict(spec), state, dict(config), None if grid is None else dict(grid))

    def network(self) -> nn.Module:
        """The network, weights loaded (float32), in eval mode.

        Raises:
            ValueError: a spec that builds no network, or weights that do not fit it.
        """
        net = network_from_payload({"spec": self.spec, "state_dict": self.state_dict}, _BUILDERS[self.kind],
                                   self.kind.value)  # fmt: skip
        return net.float()

    def half(self) -> ModelArtifact:
        """The same artifact with floating-point weights stored as float16 (half the file size)."""
        state = {k: v.half() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        return replace(self, state_dict=state)

    def payload(self) -> dict[str, Any]:
        """The file's dictionary (see the module docstring)."""
        return {"format": FORMAT, "version": VERSION, "kind": self.kind.value, "spec": dict(self.spec),
                "state_dict": dict(self.state_dict), "config": dict(self.config),
                "grid": None if self.grid is None else dict(self.grid)}  # fmt: skip

    @classmethod
    def from_payload(cls, payload: object, where: str = "model") -> ModelArtifact:
        """The artifact of a file's dictionary (this format, or posereg 0.1's ``{config, spec, state_dict}``).

        Raises:
            ValueError: not a posereg model file, or a newer format version.
        """
        if not isinstance(payload, Mapping) or "spec" not in payload or "state_dict" not in payload:
            raise ValueError(f"{where}: not a posereg model file (expected a network 'spec' and its 'state_dict')")
        version = payload.get("version", 0)
        if payload.get("format", FORMAT) != FORMAT or not isinstance(version, int) or version > VERSION:
            raise ValueError(f"{where}: unsupported model format {payload.get('format')!r} version {version!r} "
                             f"(this posereg reads {FORMAT!r} up to version {VERSION})")  # fmt: skip
        spec, config = payload["spec"], payload.get("config") or {}
        if not isinstance(spec, Mapping) or not isinstance(config, Mapping):
            raise ValueError(f"{where}: 'spec' and 'config' must be mappings")
        kind = _kind(spec, where)
        if "kind" in payload and payload["kind"] != kind.value:
            raise ValueError(f"{where}: the file says kind {payload['kind']!r} but holds a {kind.value!r} network")
        grid = payload.get("grid") if "format" in payload else config.get("atlas")
        if grid is not None and not isinstance(grid, Mapping):
            raise ValueError(f"{where}: 'grid' must be a mapping")
        if not kind.uses_grid:
            grid = None
        return cls(kind, dict(spec), dict(payload["state_dict"]), dict(config), None if grid is None else dict(grid))


def _kind(spec: Mapping[str, Any], where: str = "net") -> NetworkKind:
    try:
        return NetworkKind(spec.get("network"))
    except ValueError:
        known = ", ".join(k.value for k in NetworkKind)
        raise ValueError(f"{where}: unknown network {spec.get('network')!r} (expected one of {known})") from None


def read_payload(path: str | Path) -> object:
    """A posereg file's dictionary, read with safe ``weights_only`` loading.

    Raises:
        FileNotFoundError: no such file. ValueError: not a file ``torch.load`` can read safely.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise ValueError(f"{path}: not a readable posereg model file ({type(exc).__name__}: {exc})") from None


def load_artifact(path: str | Path, kinds: Collection[NetworkKind] | None = None) -> ModelArtifact:
    """The model file at ``path``.

    Args:
        path: a file of ``save_artifact`` (or of posereg 0.1's training).
        kinds: the kinds the caller accepts (default any).

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg model, or another kind.
    """
    artifact = ModelArtifact.from_payload(read_payload(path), str(path))
    if kinds is not None and artifact.kind not in kinds:
        expected = " or ".join(k.value for k in kinds)
        raise ValueError(f"{path}: a {artifact.kind.value} network, expected {expected}")
    return artifact


def save_artifact(artifact: ModelArtifact, path: str | Path) -> None:
    """Write ``artifact`` to ``path`` atomically (a reader sees the old file or the new one)."""
    with atomic_path(path) as tmp:
        torch.save(artifact.payload(), tmp)

"""The networks' configuration sections: head names from the one registry, specs that build."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posereg.models import ROTATION_HEADS, CorrectionNet, VolumePoseNet, volume_network_from_spec
from posereg.models.artifact import NetworkKind
from posereg.models.config import RelocModelConfig, SliceModelConfig, VolumeModelConfig
from posereg.schema import read_yaml


@pytest.mark.parametrize("section", [VolumeModelConfig, SliceModelConfig, RelocModelConfig])
def test_rotation_heads_are_the_registrys(section) -> None:  # type: ignore[no-untyped-def]
    for name in ROTATION_HEADS:
        assert section.from_dict({"rotation_head": name}).rotation_head == name
    with pytest.raises(ValueError, match=r"rotation_head: must be one of \['quaternion', 'rotvec', 'sixd', 'svd9d'\]"):
        section.from_dict({"rotation_head": "euler"})


@pytest.mark.parametrize("network", [NetworkKind.POSE, NetworkKind.CORRECTION], ids=lambda k: k.value)
def test_volume_spec_builds_the_network_it_describes(network: NetworkKind) -> None:
    model = VolumeModelConfig.from_dict({"channels": [4, 8, 8], "pool_before": [0, 2], "fc": [16, 8], "pooled_size": 2,
                                         "rotation_head": "sixd", "translation_scale_mm": 5.0})  # fmt: skip
    net = volume_network_from_spec(model.spec(network))
    assert isinstance(net, CorrectionNet if network is NetworkKind.CORRECTION else VolumePoseNet)
    assert net.spec["channels"] == [4, 8, 8] and net.spec["rotation_head"] == "sixd"
    assert net.spec.get("translation_scale_mm") == (5.0 if network is NetworkKind.CORRECTION else None)
    channels = 2 if network is NetworkKind.CORRECTION else 1
    out = net(torch.zeros(2, channels, 16, 16, 16))
    rotation = out[0] if isinstance(out, tuple) else out
    assert rotation.shape == (2, 6)


@pytest.mark.parametrize("path", sorted(Path("configs").glob("volume_*.yaml")), ids=lambda p: p.name)
def test_shipped_volume_models_build(path: Path) -> None:
    values = read_yaml(path)
    model = VolumeModelConfig.from_dict(values["model"])
    net = volume_network_from_spec(model.spec(NetworkKind(values["network"])))
    assert net.spec["network"] == values["network"] and sum(p.numel() for p in net.parameters()) > 1e5


def test_unbuildable_volume_specs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\n  pool_before: indices \[3\] are not convolutions 0\.\.2"):
        VolumeModelConfig.from_dict({"channels": [4, 8, 8], "pool_before": [3]})
    with pytest.raises(ValueError, match=r"pool_before: expected distinct indices, got \[1, 1\]"):
        VolumeModelConfig.from_dict({"pool_before": [1, 1]})
    with pytest.raises(ValueError, match=r"pooled_size: Input should be greater than or equal to 1"):
        VolumeModelConfig.from_dict({"pooled_size": 0})

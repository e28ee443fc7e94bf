"""The model file: round trips for every kind, posereg 0.1 files, bad files, atomic writes."""

import pytest
import torch

from posereg.models import CorrectionNet, PoseNet, VolumePoseNet
from posereg.models.artifact import (
    VERSION,
    ModelArtifact,
    NetworkKind,
    load_artifact,
    read_payload,
    save_artifact,
)
from posereg.models.slice import SlicePoseNet

GRID = {"contrast": "t1", "shape": 16, "spacing": 12.0, "resolution_mm": 2}
SMALL = {"channels": (4, 8), "pool_before": (1,), "fc": (16,), "pooled_size": 2}


def _networks():
    torch.manual_seed(0)
    return {
        NetworkKind.POSE: VolumePoseNet(**SMALL),
        NetworkKind.CORRECTION: CorrectionNet(**SMALL),
        NetworkKind.SLICE: SlicePoseNet(width=0.125),
        NetworkKind.POSENET: PoseNet(width=0.125),
    }


def _inputs(kind):
    g = torch.Generator().manual_seed(1)
    shapes = {NetworkKind.POSE: (2, 1, 16, 16, 16), NetworkKind.CORRECTION: (2, 2, 16, 16, 16),
              NetworkKind.SLICE: (2, 1, 32, 32), NetworkKind.POSENET: (2, 3, 64, 64)}  # fmt: skip
    return torch.rand(shapes[kind], generator=g)


def _flat(output):
    return torch.cat([o.flatten() for o in output]) if isinstance(output, tuple) else output.flatten()


@pytest.mark.parametrize("kind", list(NetworkKind), ids=lambda k: k.value)
def test_a_saved_network_loads_back_with_the_same_outputs(tmp_path, kind):
    net = _networks()[kind].eval()
    config = {"seed": 3, "optim": {"lr": 0.001}}
    artifact = ModelArtifact.of_network(net, config, GRID)
    assert artifact.kind is kind
    save_artifact(artifact, tmp_path / "model.pt")
    back = load_artifact(tmp_path / "model.pt")
    assert back.kind is kind and back.config == config and dict(back.spec) == dict(net.spec)
    # PoseNet works on camera images: no atlas grid, whatever the caller passed.
    assert back.grid == (GRID if kind.uses_grid else None)
    with torch.no_grad():
        torch.testing.assert_close(_flat(back.network()(_inputs(kind))), _flat(net(_inputs(kind))))
    assert not back.network().training
    raw = read_payload(tmp_path / "model.pt")
    assert raw["format"] == "posereg-model" and raw["version"] == VERSION and raw["kind"] == kind.value


def test_half_precision_weights_halve_the_weights_and_load_as_float32(tmp_path):
    net = _networks()[NetworkKind.POSE].eval()
    artifact = ModelArtifact.of_network(net, {}, GRID)
    save_artifact(artifact, tmp_path / "full.pt")
    save_artifact(artifact.half(), tmp_path / "half.pt")
    def nbytes(name):
        return sum(v.numel() * v.element_size() for v in read_payload(tmp_path / name)["state_dict"].values())

    assert all(v.dtype != torch.float32 for v in read_payload(tmp_path / "half.pt")["state_dict"].values())
    assert nbytes("half.pt") < 0.55 * nbytes("full.pt")  # float weights halved; the int64 counters stay
    back = load_artifact(tmp_path / "half.pt").network()
    assert all(p.dtype == torch.float32 for p in back.parameters())
    with torch.no_grad():
        torch.testing.assert_close(back(_inputs(NetworkKind.POSE)), net(_inputs(NetworkKind.POSE)), atol=1e-2, rtol=0)


def test_files_of_posereg_0_1_still_load_with_their_grid_from_the_config(tmp_path):
    net = _networks()[NetworkKind.SLICE].eval()
    legacy = {"config": {"atlas": GRID, "data": {"middle_fraction": 0.5}}, "spec": net.spec, "state_dict": net.state_dict()}
    torch.save(legacy, tmp_path / "old.pt")
    artifact = load_artifact(tmp_path / "old.pt", (NetworkKind.SLICE,))
    assert artifact.kind is NetworkKind.SLICE and artifact.grid == GRID


def test_bad_files_and_wrong_kinds_are_refused_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_artifact(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt: not a readable posereg model file"):
        load_artifact(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a posereg model file"):
        load_artifact(tmp_path / "other.pt")
    net = _networks()[NetworkKind.POSE]
    save_artifact(ModelArtifact.of_network(net, {}, GRID), tmp_path / "pose.pt")
    with pytest.raises(ValueError, match="a pose network, expected slice"):
        load_artifact(tmp_path / "pose.pt", (NetworkKind.SLICE,))
    payload = read_payload(tmp_path / "pose.pt")
    for change, message in (({"version": VERSION + 1}, "unsupported model format"),
                            ({"format": "something-else"}, "unsupported model format"),
                            ({"kind": "slice"}, "says kind 'slice' but holds a 'pose' network"),
                            ({"spec": {**net.spec, "network": "unet"}}, "unknown network 'unet'"),
                            ({"grid": [1, 2]}, "'grid' must be a mapping")):  # fmt: skip
        torch.save({**payload, **change}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=message):
            load_artifact(tmp_path / "bad.pt")
    torch.save({**payload, "spec": {**net.spec, "channels": [4, 16]}}, tmp_path / "misfit.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_artifact(tmp_path / "misfit.pt").network()


def test_a_failed_write_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    net = _networks()[NetworkKind.POSE]
    path = tmp_path / "model.pt"
    save_artifact(ModelArtifact.of_network(net, {"run": 1}, GRID), path)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a fi")  # a partial write, then the failure
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space left"):
        save_artifact(ModelArtifact.of_network(net, {"run": 2}, GRID), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file left behind


def test_a_written_file_gets_the_permissions_of_a_plain_open(tmp_path):
    save_artifact(ModelArtifact.of_network(_networks()[NetworkKind.POSE], {}, GRID), tmp_path / "model.pt")
    (tmp_path / "plain").write_text("x")
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_of_network_refuses_modules_without_a_spec():
    with pytest.raises(ValueError, match="expected a posereg network"):
        ModelArtifact.of_network(torch.nn.Linear(2, 2), {})

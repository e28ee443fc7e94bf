"""posereg train reloc: configuration, the loss switch, metric weights, training and evaluation."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from posereg.data.reloc import (
    CameraPoses,
    camera_path_poses,
    relocalisation_data,
    rendered_splits,
    room_scene,
    street_scene,
)
from posereg.geometry import matrix_to_quaternion, rotvec_to_matrix
from posereg.losses import HomoscedasticWeighting
from posereg.schema import load_config
from posereg.training.config import LossKind, RelocTrainingConfig
from posereg.training.reloc import (
    PoseTermsLoss,
    ReprojectionTermsLoss,
    build_posenet,
    metric_from_training_poses,
    reloc_loss,
    train_reloc,
)
from posereg.training.reloc_model import evaluate_reloc_model, load_reloc_model


def _config(tmp_path, **loss) -> RelocTrainingConfig:  # type: ignore[no-untyped-def]
    return RelocTrainingConfig.from_dict({
        "seed": 0,
        "data": {"scene": "room", "train_sequences": 2, "test_sequences": 1, "frames": 16, "size": 32,
                 "points_per_image": 16, "cache": str(tmp_path / "cache")},
        "model": {"width": 0.125, "fc_features": 32, "dropout": 0.0},
        "loss": loss or {"kind": "homoscedastic"},
        "optim": {"epochs": 1, "batch_size": 8, "lr": 0.003, "cosine_decay": False},
    })  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("reloc")
    config = _config(tmp)
    return tmp, config, relocalisation_data(config.data)


def test_shipped_configs_parse() -> None:
    room = load_config("configs/reloc_room.yaml", RelocTrainingConfig)
    street = load_config("configs/reloc_street.yaml", RelocTrainingConfig)
    assert (room.data.scene, street.data.scene) == ("room", "street")
    assert room.model == street.model and room.optim == street.optim  # the scenes differ in data only
    cambridge = load_config("configs/reloc_cambridge.yaml", RelocTrainingConfig)
    assert cambridge.data.source == "cambridge" and cambridge.data.crop == 224


def test_metric_weights_follow_the_scene_scale() -> None:
    def poses(scene) -> CameraPoses:  # type: ignore[no-untyped-def]
        R, c = (torch.cat(x) for x in zip(*[camera_path_poses(scene.path, 16, seed) for seed in (0, 1)]))
        return CameraPoses(tuple(str(i) for i in range(32)), c, R)

    W_room, W_street = metric_from_training_poses(poses(room_scene())), metric_from_training_poses(poses(street_scene()))
    for W in (W_room, W_street):
        d = torch.diagonal(W)
        assert torch.allclose(d[:3], d[:1].expand(3)) and torch.allclose(d[3:], d[3:4].expand(3))
        assert d.norm().item() == pytest.approx(1.0, abs=1e-6)
    # tens of metres of spread on the street: a metre there weighs less against a radian than in a
    # room. Only about 5x less, not the 300x of the variances: w_t averages the per-axis
    # precisions, and the tightest axis (camera height, similar in both scenes) dominates it.
    ratio = lambda W: (W[3, 3] / W[0, 0]).item()  # noqa: E731
    assert ratio(W_street) < ratio(W_room) / 3


def test_metric_from_training_residuals_is_a_unit_block_metric(tiny) -> None:
    from posereg.training.reloc import metric_from_training_residuals

    _, config, data = tiny
    W = metric_from_training_residuals(build_posenet(config, data), data)
    d = torch.diagonal(W)
    assert W.shape == (6, 6) and torch.count_nonzero(W - torch.diag(d)) == 0
    assert torch.allclose(d[:3], d[:1].expand(3)) and d.norm().item() == pytest.approx(1.0, abs=1e-6)
    # an untrained network errs by far more than the spread of the poses in rotation: W differs from it
    assert not torch.allclose(W, metric_from_training_poses(data.train_poses), atol=1e-3)


def test_posenet_normalises_with_the_training_images_statistics(tiny) -> None:
    _, config, data = tiny
    rendered, _ = rendered_splits(config.data)
    train = rendered.sequence == 0  # the training frames: path 1 validates
    pixels = rendered.images[train].double().div(255).transpose(0, 1).reshape(3, -1)
    net = build_posenet(config, data)
    torch.testing.assert_close(torch.tensor(net.spec["image_mean"], dtype=torch.float64), pixels.mean(1))
    torch.testing.assert_close(torch.tensor(net.spec["image_std"], dtype=torch.float64), pixels.std(1, correction=0))
    torch.testing.assert_close(torch.tensor(net.spec["position_offset"], dtype=torch.float64),
                               rendered.positions[train].mean(0))  # fmt: skip


def _batch(data, n: int = 4) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    items = [data[i] for i in range(n)]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def test_loss_switch_values(tiny) -> None:
    tmp, config, data = tiny
    batch, train = _batch(data.train), data.train_poses
    net = build_posenet(config, data)
    # a known perturbation of the true poses: 0.2 rad about z and (0.3, 0, 0) m
    dR = rotvec_to_matrix(torch.tensor([0.0, 0.0, 0.2]))
    R_pred = batch["rotation"] @ dR
    q_pred, c_pred = matrix_to_quaternion(R_pred), batch["position"] + torch.tensor([0.3, 0.0, 0.0])
    q = batch["quaternion"]
    beta = reloc_loss(config.replace(loss=config.loss.replace(kind=LossKind.BETA, beta=50.0)), train)
    expected = (0.3 + 50.0 * (q - q_pred).abs().sum(-1)).mean()
    torch.testing.assert_close(beta(q_pred, c_pred, batch, net), expected)
    homo = reloc_loss(config, train)
    assert isinstance(homo, PoseTermsLoss)
    assert [p.tolist() for p in homo.parameters()] == [[0.0, -3.0]]
    expected = (0.3 * math.exp(0.0) + 0.0 + (q - q_pred).abs().sum(-1) * math.exp(3.0) - 3.0).mean()
    torch.testing.assert_close(homo(q_pred, c_pred, batch, net), expected)
    se3_config = config.replace(loss=config.loss.replace(kind=LossKind.SE3))
    se3 = reloc_loss(se3_config, train)
    W = metric_from_training_poses(train)
    torch.testing.assert_close(se3(q_pred, c_pred, batch, net), W[0, 0] * 0.2**2 + W[3, 3] * 0.3**2)
    unsquared = reloc_loss(se3_config.replace(loss=se3_config.loss.replace(se3_squared=False)), train)
    torch.testing.assert_close(unsquared(q_pred, c_pred, batch, net), (W[0, 0] * 0.2**2 + W[3, 3] * 0.3**2).sqrt())
    # a reprojection config must name a model to fine-tune (reloc_loss does not read it)
    reproj_config = config.replace(loss=config.loss.replace(kind=LossKind.REPROJECTION),
                                   model=config.model.replace(init_from="homoscedastic/model.pt"))
    reproj = reloc_loss(reproj_config, train)
    assert isinstance(reproj, ReprojectionTermsLoss)
    assert reproj(batch["quaternion"], batch["position"], batch, net).item() == pytest.approx(0.0, abs=1e-4)
    assert reproj(q_pred, c_pred, batch, net).item() > 1.0  # pixels


def test_training_lowers_the_loss_and_the_fine_tune_chain_works(tiny) -> None:
    tmp, config, _ = tiny
    config = config.replace(optim=config.optim.replace(epochs=6))
    result = train_reloc(config, tmp / "homo", progress=False)
    rows = list(csv.DictReader(result.metrics_csv.open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.5  # the homoscedastic loss falls (it may go negative)
    s_p = [float(r["loss/s_p"]) for r in rows if r.get("loss/s_p")]
    assert s_p[0] != s_p[-1]  # the weights are learned
    net, loaded = load_reloc_model(result.model_path)
    assert loaded == config and not net.training
    # the reprojection fine-tune starts from that model
    tuned = config.replace(
        model=config.model.replace(init_from=str(result.model_path)),
        loss=config.loss.replace(kind=LossKind.REPROJECTION),
        optim=config.optim.replace(epochs=1, lr=1e-5),
    )
    fine = train_reloc(tuned, tmp / "reproj", progress=False)
    summary = evaluate_reloc_model(fine.model_path)[0]
    before = evaluate_reloc_model(result.model_path)[0]
    assert summary.position_m.shape == before.position_m.shape == (16,)
    # lr 1e-5 for one epoch: the fine-tune starts where the homoscedastic model ended
    assert abs(summary.median_position_m - before.median_position_m) < 0.2 * before.median_position_m + 0.02


def test_init_from_checks_the_network(tiny) -> None:
    tmp, config, data = tiny
    net = build_posenet(config, data)
    other = config.replace(model=config.model.replace(fc_features=8))
    path = tmp / "other"
    train_reloc(other, path, progress=False)
    bad = config.replace(model=config.model.replace(init_from=str(path / "model.pt")))
    with pytest.raises(ValueError, match="different network"):
        train_reloc(bad, tmp / "bad", progress=False)
    assert net.spec["fc_features"] == 32


def test_homoscedastic_parameters_get_no_weight_decay(tiny) -> None:
    from posereg.training.reloc import RelocalisationModule
    from posereg.training.schedules import Stage, StageSchedule

    _, config, data = tiny
    loss = reloc_loss(config, data.train_poses)
    module = RelocalisationModule(build_posenet(config, data), StageSchedule([Stage("h", 1, loss)]), weight_decay=0.1)
    optimiser = module.configure_optimizers()["optimizer"]
    groups = {id(p): g["weight_decay"] for g in optimiser.param_groups for p in g["params"]}
    s = next(m for m in loss.modules() if isinstance(m, HomoscedasticWeighting)).log_variances
    assert groups[id(s)] == 0.0
    assert groups[id(module.net.backbone.conv1.weight)] == 0.1
    assert type(optimiser) is torch.optim.Adam
    decoupled = RelocalisationModule(module.net, module.schedule, weight_decay=0.1, decoupled_weight_decay=True)
    assert type(decoupled.configure_optimizers()["optimizer"]) is torch.optim.AdamW


def test_cli_train_and_evaluate_reloc(tmp_path, capsys) -> None:
    import yaml

    from posereg.cli import main

    config = _config(tmp_path, kind="beta", beta=30.0).model_dump(mode="json")
    path = tmp_path / "reloc.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", "reloc", "--config", str(path), "--output", str(out), "--quiet"]) == 0
    assert "trained reloc network" in capsys.readouterr().out
    figure = tmp_path / "positions.png"
    assert main(["evaluate", "reloc", "--model", str(out / "model.pt"), "--plot", str(figure), "--quiet"]) == 0
    printed = capsys.readouterr().out
    result, _ = evaluate_reloc_model(out / "model.pt")
    assert f"median {result.median_position_m:.3f} m" in printed and "loss beta" in printed
    assert figure.stat().st_size > 10_000
    assert main(["evaluate", "reloc", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**config, "loss": {"kind": "se4"}}))
    assert main(["train", "reloc", "--config", str(path), "--output", str(out)]) == 2
    assert "loss.kind" in capsys.readouterr().err


def test_trains_on_a_cambridge_layout(tmp_path) -> None:
    """PoseNet trains on a scene in Cambridge's layout (read back as in tests/data/reloc/test_build.py);
    the reprojection loss through the NVM intrinsics and points is zero at the true poses only."""
    from posereg.data.reloc import render_scene
    from tests.data.reloc.conftest import write_cambridge_scene

    root = tmp_path / "Synthetic"
    rendered = render_scene(room_scene(), sequences=[0, 1], frames=8, size=40, points_per_image=8)
    write_cambridge_scene(root, rendered, "train")
    (root / "dataset_test.txt").write_text((root / "dataset_train.txt").read_text())
    config = RelocTrainingConfig.from_dict({
        "data": {"source": "cambridge", "root": str(root), "resize": 36, "crop": 32, "points_per_image": 20},
        "model": {"width": 0.125, "fc_features": 16, "dropout": 0.0},
        "loss": {"kind": "homoscedastic"}, "optim": {"epochs": 1, "batch_size": 4},
    })  # fmt: skip
    data = relocalisation_data(config.data)
    batch = _batch(data.test, 8)
    net = build_posenet(config, data)
    reproj = reloc_loss(config.replace(loss=config.loss.replace(kind=LossKind.REPROJECTION),
                                       model=config.model.replace(init_from="homoscedastic/model.pt")),
                        data.train_poses)  # fmt: skip
    assert reproj(batch["quaternion"], batch["position"], batch, net).item() < 1e-3
    shifted = batch["position"] + torch.tensor([0.2, 0.0, 0.0])
    assert reproj(batch["quaternion"], shifted, batch, net).item() > 0.5  # pixels of the 32 x 32 crops
    result = train_reloc(config, tmp_path / "run", progress=False)
    assert evaluate_reloc_model(result.model_path)[0].position_m.shape == (16,)
    # without the reconstruction there are no points: the reprojection fine-tune refuses
    (root / "reconstruction.nvm").unlink()
    tuned = config.replace(loss=config.loss.replace(kind=LossKind.REPROJECTION),
                           model=config.model.replace(init_from=str(result.model_path)))
    with pytest.raises(ValueError, match="no scene points"):
        train_reloc(tuned, tmp_path / "run2", progress=False)



def test_evaluating_a_model_never_writes_where_the_model_file_says(tmp_path):
    """A model file's data section names a cache folder: evaluation reads it, but writes nothing there."""
    from posereg.models.artifact import ModelArtifact, save_artifact

    config = _config(tmp_path)
    net = build_posenet(config, relocalisation_data(config.data, write_cache=False))
    elsewhere = config.replace(data={**config.data.model_dump(), "cache": str(tmp_path / "named-by-the-file")})
    save_artifact(ModelArtifact.of_network(net, elsewhere.model_dump(mode="json")), tmp_path / "model.pt")
    result, _ = evaluate_reloc_model(tmp_path / "model.pt")
    assert result.position_m.numel() == 16 and not (tmp_path / "named-by-the-file").exists()


@pytest.mark.parametrize("loss", [{"kind": "homoscedastic"}, {"kind": "beta", "beta": 30.0}], ids=["homoscedastic", "beta"])
def test_mixed_precision_training_computes_the_losses_in_float32(tiny, loss) -> None:
    """``trainer.precision: bf16-mixed`` (CPU autocast here): the losses of the bfloat16 forward pass
    are computed in float32 (``training.loop.full_precision``) and stay finite."""
    tmp, config, _ = tiny
    config = config.replace(loss=config.loss.replace(**{**loss, "kind": LossKind(loss["kind"])}),
                            trainer=config.trainer.replace(precision="bf16-mixed"))  # fmt: skip
    result = train_reloc(config, tmp / f"bf16-{loss['kind']}", progress=False)
    rows = list(csv.DictReader(result.metrics_csv.open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)

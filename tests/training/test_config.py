"""Scalar fields of every training configuration are type-checked when parsed."""

from __future__ import annotations

import pytest

from posereg.training.config import volume_config_from_dict
from posereg.training.reloc_config import reloc_config_from_dict
from posereg.training.slice_config import slice_config_from_dict


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"loss": {"se3_squared": "no"}}, r"loss\.se3_squared must be true or false, got 'no'"),
        ({"optim": {"epochs": 2.5}}, r"optim\.epochs must be an integer, got 2\.5"),
        ({"optim": {"epochs": True}}, r"optim\.epochs must be an integer"),
        ({"optim": {"lr": "fast"}}, r"optim\.lr must be a number, got 'fast'"),
        ({"loss": {"clip": "x"}}, r"loss\.clip must be a number or null"),
        ({"data": {"scene": 3}}, r"data\.scene must be a string"),
    ],
)
def test_reloc_config_rejects_wrong_scalar_types(values, message):
    with pytest.raises(ValueError, match=message):
        reloc_config_from_dict(values)


def test_numeric_strings_and_nulls_are_read():
    # PyYAML reads 1e-3 (no dot) as a string
    config = reloc_config_from_dict({"optim": {"lr": "1e-3", "decoupled_weight_decay": True}, "loss": {"clip": None}})
    assert config.optim.lr == 0.001 and config.optim.decoupled_weight_decay is True and config.loss.clip is None
    assert reloc_config_from_dict({"optim": {"lr": 1}}).optim.lr == 1


def test_slice_and_volume_configs_are_checked_too():
    with pytest.raises(ValueError, match=r"optim\.cosine_decay must be true or false"):
        slice_config_from_dict({"optim": {"cosine_decay": "yes"}})
    with pytest.raises(ValueError, match=r"data\.noise must be a number"):
        volume_config_from_dict({"data": {"noise": [0.1]}})

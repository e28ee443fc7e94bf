"""The configuration schema's base: strict types, keyed errors, validated replace, the YAML loader."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, model_validator

from posereg.schema import Bool, ConfigError, Float, Int, Section, Str, load_config, one_of, read_yaml


class Inner(Section):
    """A section with one of each kind of value."""

    count: Int = Field(1, ge=1)
    rate: Float = 0.5
    flag: Bool = False
    name: Str = "a"
    stride: Annotated[Int, one_of(1, 2)] = 1
    low: Float = 0.0
    high: Float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Inner:
        if self.low > self.high:
            raise ConfigError("high", f"must be >= low ({self.low}), got {self.high}")
        return self


class Outer(Section):
    seed: Int = 0
    inner: Inner = Inner()


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"inner": {"count": 1.0}}, "inner.count: Input should be a valid integer (got 1.0)"),
        ({"inner": {"count": "2"}}, "inner.count: Input should be a valid integer (got '2')"),
        ({"inner": {"rate": "0.1"}}, "inner.rate: Input should be a valid number (got '0.1')"),
        ({"inner": {"rate": float("inf")}}, "inner.rate: Input should be a finite number (got inf)"),
        ({"inner": {"flag": 1}}, "inner.flag: Input should be a valid boolean (got 1)"),
        ({"inner": {"name": 3}}, "inner.name: Input should be a valid string (got 3)"),
        ({"inner": {"stride": 2.0}}, "inner.stride: Input should be a valid integer (got 2.0)"),
        ({"inner": {"stride": 4}}, "inner.stride: must be one of [1, 2], got 4"),
        ({"inner": {"low": 2.0}}, "inner.high: must be >= low (2.0), got 1.0"),
        ({"inner": {"cuont": 2}}, "inner.cuont: unknown key; expected one of "
                                  "['count', 'flag', 'high', 'low', 'name', 'rate', 'stride']"),
        ({"inner": {"seed": 2}}, "inner.seed: unknown key; expected one of ['count', 'flag', 'high', 'low', 'name', "
                                 "'rate', 'stride'] (one top-level `seed` seeds everything)"),
        ({"extra": 1}, "extra: unknown key; expected one of ['inner', 'seed']"),
        ({"inner": 3}, "inner: Input should be a valid dictionary or instance of Inner (got 3)"),
    ],
)  # fmt: skip
def test_each_bad_value_is_one_line_naming_its_key(values, line) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        Outer.from_dict(values, "here")
    assert str(caught.value) == f"here: 1 bad value:\n  {line}"


def test_good_values_empty_sections_and_replace() -> None:
    config = Outer.from_dict({"seed": 3, "inner": {"count": 2, "rate": 1, "flag": True, "stride": 2}})
    assert config.inner.rate == 1.0 and isinstance(config.inner.rate, float) and config.inner.flag is True
    assert Outer.from_dict({"inner": None}) == Outer()  # an empty YAML section: the defaults
    assert config.replace(seed=4).inner == config.inner and config.replace(seed=4).seed == 4
    with pytest.raises(ValueError, match=r"^Inner\.replace: 1 bad value:\n  high: must be >= low"):
        config.inner.replace(low=5.0)
    with pytest.raises(ValueError, match="expected a mapping of sections, got list"):
        Outer.from_dict([1, 2])  # type: ignore[arg-type]
    assert Outer.from_dict(config.model_dump(mode="json")) == config


def test_yaml_loader_reads_exponents_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ninner:\n  rate: 1e-3\n  low: -2E+1\n  name: 1e3x\n")
    assert read_yaml(path) == {"seed": 1, "inner": {"rate": 0.001, "low": -20.0, "name": "1e3x"}}
    config = load_config(path, Outer)
    assert config.inner.rate == 0.001 and Outer.from_yaml(path) == config
    path.write_text("inner: {rate: .nan}\n")
    with pytest.raises(ValueError, match=rf"^{path}: 1 bad value:\n  inner\.rate: Input should be a finite number"):
        load_config(path, Outer)

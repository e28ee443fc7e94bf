"""The configuration schema's base: strict, frozen sections with forbidden extra keys, one loader.

Every configuration section (``posereg.data.config``, ``posereg.models.config``,
``posereg.training.config``, ...) is a ``Section``: a frozen pydantic model whose unknown keys
are errors (a typo must not silently fall back to a default), whose scalars are strictly typed
(``Int``, ``Float``, ``Bool``, ``Str``: YAML's ``no`` is a bool, but ``'no'`` is not; ``1.5``
is not an int; ``[1]`` is not a seed), whose numbers are finite, and whose validators live on
the class, so that ``Section.replace`` validates as loading does. ``load_config(path, cls)`` is
the one loader of every trainer's YAML file. Validation errors are raised as ``ValueError`` with
one line per bad value, each naming its key (``data.noise: ...``). This module is the lowest
layer: it imports nothing of posereg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Strict,
    ValidationError,
    model_validator,
)

__all__ = [
    "Bool", "ConfigError", "Float", "Int", "Section", "Str", "load_config", "one_of", "read_yaml", "validate_config",
]  # fmt: skip

S = TypeVar("S", bound="Section")

Int = Annotated[int, Strict()]
"""An integer (not a bool, float or string)."""
Float = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number (an integer is taken as a float; ``.nan``, ``.inf`` and strings are refused)."""
Bool = Annotated[bool, Strict()]
"""``true`` or ``false`` (not ``'yes'``, ``0`` or ``1``)."""
Str = Annotated[str, Strict()]
"""A string (not a number)."""


def one_of(*values: object) -> AfterValidator:
    """A validator admitting only ``values`` (for integer choices, which ``Literal`` would take from
    ``true`` or ``2.0``; annotate a strict type with it: ``Annotated[Int, one_of(1, 2)]``)."""

    def check(value: object) -> object:
        if value not in values:
            raise ValueError(f"must be one of {list(values)}, got {value!r}")
        return value

    return AfterValidator(check)


class ConfigError(ValueError):
    """A bad value found by a section's validator: ``key`` (relative to the section) and why.

    Raise it from ``model_validator``s so that the message names the key, e.g.
    ``ConfigError("crop", "must be <= resize")`` in the ``data`` section reads
    ``data.crop: must be <= resize``.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    """A configuration section: frozen, unknown keys refused, validated on every construction.

    An empty YAML section (``data:`` with nothing below it, read as null) takes the defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        sections = {name for name, f in cls.model_fields.items()
                    if isinstance(f.annotation, type) and issubclass(f.annotation, Section)}  # fmt: skip
        return {k: {} if v is None and k in sections else v for k, v in values.items()}

    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any], source: str = "config") -> S:
        """Validate nested mappings (e.g. parsed YAML) into this section.

        Raises:
            ValueError: naming ``source`` and, one line each, every bad key.
        """
        return validate_config(cls, values, source)

    @classmethod
    def from_yaml(cls: type[S], path: str | Path) -> S:
        """Read and validate a YAML file (``load_config(path, cls)``).

        Raises:
            FileNotFoundError: no such file. ValueError: not a YAML mapping, or bad keys/values.
        """
        return load_config(path, cls)

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` (values or sections), validated as loading validates.

        Raises:
            ValueError: a change that makes the configuration invalid, naming the key.
        """
        return validate_config(type(self), {**self.model_dump(), **changes}, f"{type(self).__name__}.replace")


def _unknown_key_message(cls: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``unknown key; expected ...`` for an extra key at ``loc``, listing the section's keys."""
    model: Any = cls
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return "unknown key"
    hint = " (one top-level `seed` seeds everything)" if loc[-1] == "seed" and len(loc) > 1 else ""
    return f"unknown key; expected one of {sorted(model.model_fields)}{hint}"


def _error_lines(cls: type[BaseModel], error: ValidationError) -> list[str]:
    lines = []
    for e in error.errors(include_url=False):
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            message = _unknown_key_message(cls, loc)
        elif e["type"] == "value_error":
            cause = e.get("ctx", {}).get("error")
            message = str(cause) if cause is not None else e["msg"]
            if isinstance(cause, ConfigError):
                loc = (*loc, cause.key)
        else:
            message = f"{e['msg']} (got {e['input']!r})"
        key = ".".join(str(part) for part in loc) or "(top level)"
        lines.append(f"{key}: {message}")
    return lines


def validate_config(cls: type[S], values: Any, source: str = "config") -> S:
    """``cls`` validated from ``values`` (a mapping of sections), errors as ``ValueError``.

    Args:
        cls: the section or top-level configuration class.
        values: nested mappings (parsed YAML, a model file's stored dict).
        source: what the values came from, for the message (a file name, 'config').

    Raises:
        ValueError: ``source`` then one line per bad value, each naming its key.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        lines = _error_lines(cls, exc)
        raise ValueError(f"{source}: {len(lines)} bad value{'s' if len(lines) > 1 else ''}:\n  "
                         + "\n  ".join(lines)) from None  # fmt: skip


_YAML_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _yaml_loader() -> type:
    """PyYAML's safe loader, reading ``1e-3`` (no dot, YAML 1.2) as a float, not a string."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_FLOAT, list("-+0123456789."))
    return Loader


def read_yaml(path: str | Path) -> Mapping[str, Any]:
    """The top-level mapping of a YAML configuration file (``1e-3`` read as a number).

    Raises:
        FileNotFoundError: no such file. ValueError: not YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    try:
        values = yaml.load(path.read_text(), Loader=_yaml_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a YAML mapping of sections, got {type(values).__name__}")
    return values


def load_config(path: str | Path, cls: type[S]) -> S:
    """The one loader of configuration files: read ``path`` and validate it as ``cls``.

    Args:
        path: a YAML file.
        cls: the configuration class (e.g. ``VolumeTrainingConfig``).

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping, or bad keys/values
            (naming the file and each bad key).
    """
    return validate_config(cls, read_yaml(path), str(path))

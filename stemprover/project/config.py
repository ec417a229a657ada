"""Typed configs and the profile files that fill them.

A stage's config is a dataclass defined next to the code that uses it. Build it
from plain values (a notebook's parameters or a profile YAML section) with
:func:`build`, which rejects unknown keys and wrong types with a clear message::

    cfg = build(CorpusConfig, params)

Profiles live in ``notebooks/params/{smoke,cpu,gpu}.yaml``. Each has a
``common`` section and one section per notebook stage; :func:`stage_params`
merges the two.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from stemprover.errors import StemproverError
from stemprover.project.paths import repo_root

PROFILES = ("smoke", "cpu", "gpu")
T = TypeVar("T")


@dataclasses.dataclass
class Common:
    """The signal keys of a profile's ``common`` section, shared by every model-facing stage.

    Stage configs derive from it, so each key is declared once and read flat
    (``cfg.sample_rate``), as papermill passes notebook parameters flat.
    """

    sample_rate: int = 16000  # model rate in Hz: every stage resamples to it
    n_fft: int = 256  # STFT size; 129 bins keep the smoke picture small
    hop_length: int = 64  # n_fft / 4: the usual 75 % overlap for a Hann window
    representation: Literal["magnitude", "complex", "mag_if"] = "complex"  # keeps the phase


COMMON_KEYS = tuple(f.name for f in dataclasses.fields(Common))
"""The names of :class:`Common`'s fields."""


def _check(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation`` or raise StemproverError."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        if value not in get_args(annotation):
            raise StemproverError(f"{where}: expected one of {get_args(annotation)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(annotation):
            if option is type(None) and value is None:
                return None
            try:
                return _check(value, option, where)
            except StemproverError as exc:
                errors.append(str(exc))
        raise StemproverError(f"{where}: {value!r} does not match {annotation}")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise StemproverError(f"{where}: expected a mapping for {annotation.__name__}")
        return build(annotation, value, where=where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise StemproverError(f"{where}: expected a list, got {type(value).__name__}")
        args = get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise StemproverError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_type = args[0] if args else Any
            items = [_check(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return origin(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise StemproverError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_type, value_type = get_args(annotation) or (Any, Any)
        return {
            _check(k, key_type, f"{where} key"): _check(v, value_type, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if annotation is float:
        # YAML and JSON write 1.0 as 1; accept ints for floats, but never bools.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise StemproverError(f"{where}: expected a number, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise StemproverError(f"{where}: expected an integer, got {value!r}")
    if isinstance(annotation, type):
        if not isinstance(value, annotation):
            raise StemproverError(
                f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    return value


def build(
    cls: type[T],
    values: dict[str, Any] | None = None,
    *,
    where: str | None = None,
    ignore: typing.Iterable[str] = (),
) -> T:
    """Build dataclass ``cls`` from ``values``, checking keys and types.

    Args:
        cls: A dataclass type.
        values: Plain values; missing keys take the dataclass defaults.
        where: Name used in error messages (defaults to the class name).
        ignore: Keys to drop silently (e.g. notebook-only parameters).

    Raises:
        StemproverError: on an unknown key or a value of the wrong type.
    """
    where = where or cls.__name__
    values = {k: v for k, v in (values or {}).items() if k not in set(ignore)}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise StemproverError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
    hints = get_type_hints(cls)
    checked = {name: _check(v, hints[name], f"{where}.{name}") for name, v in values.items()}
    return cls(**checked)


def subset(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The items of ``values`` whose keys are fields of dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain, YAML/JSON-serialisable values."""
    return dataclasses.asdict(cfg)


def profile_path(profile: str) -> Path:
    return repo_root() / "notebooks" / "params" / f"{profile}.yaml"


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """Read ``notebooks/params/<profile>.yaml`` as ``{section: {key: value}}``."""
    if profile not in PROFILES:
        raise StemproverError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = profile_path(profile)
    with open(path) as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise StemproverError(f"{path}: every top-level entry must be a mapping")
    return data


def config_for(cls: type[T], params: dict[str, Any]) -> T:
    """A stage's config from its parameters, as its notebook builds it.

    ``profile`` and the common keys that ``cls`` does not declare are dropped; any other
    unknown key is an error (:func:`build`).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    return build(cls, params, ignore=("profile", *(k for k in COMMON_KEYS if k not in names)))


def describe(cfg: Any) -> str:
    """A config as ``name: value`` lines, for the first cell of a notebook."""
    return "\n".join(f"{key}: {value!r}" for key, value in dataclasses.asdict(cfg).items())


def stage_params(profile: str, stage: str) -> dict[str, Any]:
    """Parameters for one notebook stage: ``common`` overlaid with the stage's section."""
    data = load_profile(profile)
    params = dict(data.get("common", {}))
    params.update(data.get(stage, {}))
    params["profile"] = profile
    return params

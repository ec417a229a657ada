"""What a stage reads from earlier stages, named in its config and resolved in one place.

A stage config declares its inputs as fields: ``corpus_dir``, ``separator_weights``,
``manifest``, ``base``, ``model_dir``, ``regression_dir``, ``model_path``. Empty means "this
profile's own output of the stage that makes it"; :func:`resolve_inputs` fills those in, and
the notebooks' ``setup()`` calls it, so the printed config lists every folder a stage reads
and any of them can point at another run's outputs from the profile or the command line::

    cfg = resolve_inputs(build(EvaluationConfig, params), "cpu")
    cfg.model_dir    # 'results/cpu/04_lora_training/weights/stemprover'

Library functions then take those folders, never the profile. Folders inside the
repository are kept relative to it, so configs written to ``results/`` name no machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from stemprover.errors import StemproverError
from stemprover.project.paths import cache_dir, repo_root, results_dir

T = TypeVar("T")


def _weights(stage: str, *parts: str) -> Callable[[str], list[Path]]:
    return lambda profile: [results_dir(profile, stage, create=False).joinpath(*parts)]


INPUTS: dict[str, Callable[[str], list[Path]]] = {
    # the rendered corpus (01 renders it into the cache)
    "corpus_dir": lambda profile: [cache_dir(profile, "corpus", create=False)],
    # the neural separators 01 trains on the corpus
    "separator_weights": _weights("01_phase_analysis", "weights"),
    # 02's paired dataset
    "manifest": _weights("02_paired_dataset", "manifest.json"),
    # 03's frozen base
    "base": _weights("03_base_pretraining", "weights", "base"),
    # 04's models
    "model_dir": _weights("04_lora_training", "weights", "stemprover"),
    "regression_dir": _weights("04_lora_training", "weights", "regression"),
    # the model 07 times: this profile's, else the released one
    "model_path": lambda profile: [
        *_weights("04_lora_training", "weights", "stemprover")(profile),
        repo_root() / "models" / "default",
    ],
}
"""Input field -> the candidate locations in a profile's outputs (the first that exists)."""


def config_path(path: str | Path) -> str:
    """``path`` as a config value: relative to the repository when inside it."""
    resolved = Path(path).resolve()
    root = repo_root()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def input_path(value: str | Path) -> Path:
    """A config's input folder as a path: relative values are relative to the repository."""
    path = Path(value)
    return path if path.is_absolute() else repo_root() / path


def resolve_inputs(cfg: T, profile: str) -> T:
    """``cfg`` with each empty input field set to the profile's own output (see :data:`INPUTS`).

    Fields already set are kept. A location that does not exist yet is still filled in, so
    that the stage that reads it can name what is missing.
    """
    names = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for name, candidates in INPUTS.items():
        if name in names and not getattr(cfg, name):
            paths = candidates(profile)
            found = next((p for p in paths if p.exists()), paths[0])
            changes[name] = config_path(found)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def require(value: str | Path, what: str, stage: str) -> Path:
    """The input ``value`` as a path, or a one-line error naming the stage that makes it."""
    if not value:
        raise StemproverError(f"no {what} given: set it, or run {stage} first")
    path = input_path(value)
    if not path.exists():
        raise StemproverError(f"no {what} at {path}: run {stage} first")
    return path

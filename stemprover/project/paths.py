"""Where things live: the repository root, stage results and caches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

STAGES = (
    "01_phase_analysis",
    "02_paired_dataset",
    "03_base_pretraining",
    "04_lora_training",
    "05_evaluation",
    "06_ablations",
    "07_performance",
    "08_figures",
)


def repo_root() -> Path:
    """The repository root: ``$STEMPROVER_ROOT``, else the folder holding pyproject.toml."""
    env = os.environ.get("STEMPROVER_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]  # the stemprover package
    for candidate in (here.parent, Path.cwd(), *Path.cwd().parents):
        if (candidate / "pyproject.toml").exists() and (candidate / "stemprover").is_dir():
            return candidate
    return here.parent


def stage_name(stage: str) -> str:
    """Full stage name from a prefix: ``"05"`` -> ``"05_evaluation"``."""
    for name in STAGES:
        if name == stage or name.startswith(f"{stage}_") or name[:2] == stage:
            return name
    raise KeyError(f"unknown stage {stage!r}")


def results_dir(profile: str, stage: str, create: bool = True) -> Path:
    """``results/<profile>/<stage>/``, the only channel between notebooks."""
    path = repo_root() / "results" / profile / stage_name(stage)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """``build/cache/<profile>/...``: rendered audio and other regenerable data (git-ignored)."""
    path = repo_root() / "build" / "cache" / profile
    for part in parts:
        path = path / part
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


_HELD: set[str] = set()  # folders this process holds: nested uses pass through


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while files in it are read, changed and replaced.

    Two processes that write one stage's logs side by side (the branch and the regression
    baseline of 04) take it around each read-modify-write, so neither loses the other's rows.
    It is an advisory ``flock`` on the folder itself, so it leaves no file behind; nested uses
    in one process pass through. Without ``fcntl`` (not POSIX) it does nothing.

        with folder_lock(out_dir):
            record = json.loads((out_dir / "run.json").read_text()); ...
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if fcntl is None or key in _HELD:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)

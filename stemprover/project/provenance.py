"""Which code produced a stage's results: ``run.json`` in every stage folder.

    update_run(out_dir, profile="cpu", steps=1200)   # merges into out_dir/run.json

Each notebook's :func:`stemprover.project.notebook.setup` records the code commit, the profile and the
parameters; stages add what they measured. The code commit is the last commit that changed
the library, the notebooks or the project's dependencies (``+dirty`` when they differ from it),
so results committed later, or stages run in another session on the same code, name the same
commit, and a change of code shows as a new one.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stemprover.project.inputs import config_path
from stemprover.project.paths import folder_lock, repo_root

CODE_PATHS = ("stemprover", "notebooks", "pyproject.toml")


def code_commit() -> str:
    """Short hash of the last commit that touched :data:`CODE_PATHS` (``unknown`` off git)."""
    root = repo_root()
    try:
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--abbrev=10", "--", *CODE_PATHS],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *CODE_PATHS],
                               cwd=root).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def full_commit(short: str) -> str:
    """The full hash of a :func:`code_commit` (its ``+dirty`` mark kept); ``short`` itself off git."""
    head, dirty = short.removesuffix("+dirty"), short.endswith("+dirty")
    try:
        full = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{head}^{{commit}}"],
                              cwd=repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return short
    return full + ("+dirty" if dirty else "")


def update_run(out_dir: Path, **fields: Any) -> dict:
    """Merge ``fields`` into ``out_dir/run.json`` (written atomically); returns the record."""
    path = Path(out_dir) / "run.json"
    with folder_lock(path.parent):  # 04 writes it from two processes
        record = json.loads(path.read_text()) if path.exists() else {}
        record.update(fields)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        tmp.replace(path)
    return record


def start_run(out_dir: Path, stage: str, params: dict[str, Any]) -> dict:
    """A fresh ``run.json`` for a stage: the commit it runs at (``code_commit`` short, ``commit``
    full), start time (UTC), profile, parameters."""
    path = Path(out_dir) / "run.json"
    if path.exists():
        path.unlink()
    short = code_commit()
    return update_run(
        out_dir, stage=stage, code_commit=short, commit=full_commit(short),
        profile=params.get("profile"),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        params={k: v for k, v in params.items() if k != "profile"},
    )


def portable_path(path) -> str:
    """``path`` relative to the repository when inside it, else its name: no machine paths."""
    value = config_path(path)
    return Path(value).name if Path(value).is_absolute() else value


def data_source(dataset) -> str:
    """Where a training set came from: its folder relative to the repository, if inside it."""
    root = getattr(dataset, "root", None) or getattr(getattr(dataset, "dataset", None), "root", "")
    if not root:
        return "in-memory"
    return portable_path(root)

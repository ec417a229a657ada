"""Executed notebooks a reader can open: the headline run's copies, stripped of large media.

    publish(build_dir / "05_evaluation.ipynb", results_dir("cpu") / "notebooks")

``make reproduce`` writes every executed notebook to ``build/notebooks/<profile>/`` (ignored
by git). For the cpu and gpu profiles, :mod:`stemprover.stages.reproduce` also writes a
stripped copy of each to ``results/<profile>/notebooks/``, committed with the results and
linked from the README, so that the outputs of the real run can be read on GitHub. Stripping
replaces each embedded image, audio player or HTML blob larger than a threshold by a one-line
note naming the file that holds the same content; text outputs (tables, printed numbers) are
kept. The threshold halves until the copies of a profile fit :data:`LIMIT_BYTES` together.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

LIMIT_BYTES = 5_000_000  # all of a profile's copies together, so the results stay light
FIRST_THRESHOLD = 400_000  # bytes of one output item kept as is on the first pass
MIN_THRESHOLD = 2_000
TEXT_TYPES = ("text/plain", "text/markdown", "text/latex")
NOTE = "[{kind} of {size:,} bytes removed from this copy; `make reproduce` writes the " \
       "full notebook to {path}]"


def _size(value) -> int:
    return len("".join(value) if isinstance(value, list) else str(value))


def strip_outputs(notebook: dict, path: str, threshold: int) -> tuple[dict, int]:
    """A copy of ``notebook`` (nbformat 4 JSON) whose output items over ``threshold`` bytes,
    other than plain text, are replaced by a note naming ``path`` (the full executed copy);
    returns it and the number of items replaced."""
    out = copy.deepcopy(notebook)
    removed = 0
    for cell in out.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data")
            if not data:
                continue
            big = {k: _size(v) for k, v in data.items()
                   if k not in TEXT_TYPES and _size(v) > threshold}
            if not big:
                continue
            kind = ", ".join(sorted(big))
            for key in big:
                del data[key]
            data["text/plain"] = NOTE.format(kind=kind, size=sum(big.values()), path=path)
            output.get("metadata", {}).clear()
            removed += len(big)
    out.get("metadata", {}).pop("widgets", None)
    return out, removed


def _dumps(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    from stemprover.project.paths import repo_root

    try:
        return str(path.resolve().relative_to(repo_root().resolve()))
    except ValueError:
        return str(path)


def publish(sources: list[Path], folder: Path, limit_bytes: int = LIMIT_BYTES) -> list[Path]:
    """Write stripped copies of the executed notebooks ``sources`` into ``folder``.

    The copies of notebooks already in ``folder`` (from an earlier stage of the same run) count
    towards ``limit_bytes``; the threshold halves until all fit.

    Raises:
        ValueError: even with the smallest threshold the copies exceed ``limit_bytes``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    notebooks = {p.name: json.loads(p.read_text()) for p in sources}
    paths = {p.name: _shown(p) for p in sources}
    others = sum(p.stat().st_size for p in folder.glob("*.ipynb") if p.name not in notebooks)
    threshold = FIRST_THRESHOLD
    while True:
        texts = {name: _dumps(strip_outputs(nb, paths[name], threshold)[0])
                 for name, nb in notebooks.items()}
        total = others + sum(len(t.encode()) for t in texts.values())
        if total <= limit_bytes:
            break
        if threshold <= MIN_THRESHOLD:
            raise ValueError(f"executed notebooks take {total:,} bytes even stripped "
                             f"(limit {limit_bytes:,})")
        threshold //= 2
    written = []
    for name, text in texts.items():
        target = folder / name
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
        written.append(target)
    return written

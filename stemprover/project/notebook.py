"""Helpers that notebooks call in their first cell (kept out of the notebooks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stemprover.project.config import config_for, describe
from stemprover.project.inputs import resolve_inputs
from stemprover.project.paths import repo_root, results_dir
from stemprover.project.provenance import start_run
from stemprover.project.seed import seed_everything

# Names IPython puts in a kernel's namespace that are not the notebook's parameters.
_KERNEL_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}
_PLAIN = (str, int, float, bool, list, tuple, dict, type(None))


def parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The notebook's parameters, read from its namespace (``parameters(globals())``).

    They are the plain values (numbers, strings, lists, dicts, None) that the ``parameters``
    cell and papermill's injected cell defined. Called right after those cells, nothing else
    is in the namespace but imports, so no list of names is kept by hand; ``setup`` then
    rejects any name its config does not know.
    """
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and name not in _KERNEL_NAMES and isinstance(value, _PLAIN)
    }


def setup(stage: str, params: dict[str, Any], config_cls: type | None = None):
    """Seed, make the stage's results folder, and build its config (printed).

    The config's empty input folders are set to this profile's outputs of the stages that
    make them (:func:`~stemprover.project.inputs.resolve_inputs`), so the printed config
    names everything the stage reads.

    Args:
        stage: e.g. ``"01_phase_analysis"``.
        params: the notebook's parameters (``profile``, ``seed`` and stage keys).
        config_cls: dataclass to build from ``params`` minus ``profile``; None to skip.

    Returns:
        ``(out_dir, cfg)``.
    """

    seed_everything(int(params.get("seed", 0)))
    out_dir = results_dir(params["profile"], stage)
    start_run(out_dir, stage, params)
    cfg = None
    if config_cls is not None:
        cfg = resolve_inputs(config_for(config_cls, params), params["profile"])
        print(f"{stage} ({params['profile']} profile)\n{describe(cfg)}")
    return out_dir, cfg


def store_checked_outputs(executed_dir, source_dir=None) -> list[str]:
    """Copy the outputs of ``# NBVAL_CHECK_OUTPUT`` cells from executed notebooks to the sources.

    nbval compares those cells with the outputs stored in ``notebooks/``; after a change that
    alters a checked summary, run the smoke profile (``make reproduce PROFILE=smoke``) and
    call this on ``build/notebooks/smoke``. Cells are matched by id; other cells keep no
    outputs. Returns the notebooks that changed.

        python -c "from stemprover.project.notebook import store_checked_outputs as s; s('build/notebooks/smoke')"
    """

    source_dir = Path(source_dir) if source_dir is not None else repo_root() / "notebooks"
    changed = []
    for executed in sorted(Path(executed_dir).glob("*.ipynb")):
        source = source_dir / executed.name
        if not source.exists():
            continue
        run = {c.get("id"): c for c in json.loads(executed.read_text())["cells"]}
        notebook = json.loads(source.read_text())
        before = json.dumps(notebook)
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code" or "NBVAL_CHECK_OUTPUT" not in "".join(cell["source"]):
                continue
            executed_cell = run.get(cell.get("id"), {})
            outputs = executed_cell.get("outputs", [])
            cell["outputs"] = [o for o in outputs if o.get("output_type") == "stream"]
            # nbval refuses stored outputs of a cell that was never run
            cell["execution_count"] = executed_cell.get("execution_count") if outputs else None
        if json.dumps(notebook) != before:
            source.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
            changed.append(source.name)
    return changed

"""Helpers that notebooks call in their first cell (kept out of the notebooks)."""

from __future__ import annotations

from typing import Any

from stemprover.config import build
from stemprover.paths import results_dir
from stemprover.seed import seed_everything

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
    """Seed, make the stage's results folder, and build its config.

    Args:
        stage: e.g. ``"01_phase_analysis"``.
        params: the notebook's parameters (``profile``, ``seed`` and stage keys).
        config_cls: dataclass to build from ``params`` minus ``profile``; None to skip.

    Returns:
        ``(out_dir, cfg)``.
    """
    from stemprover.provenance import start_run

    seed_everything(int(params.get("seed", 0)))
    out_dir = results_dir(params["profile"], stage)
    start_run(out_dir, stage, params)
    cfg = None
    if config_cls is not None:
        cfg = build(config_cls, {k: v for k, v in params.items() if k != "profile"})
    return out_dir, cfg

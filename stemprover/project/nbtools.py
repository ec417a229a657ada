"""Keep the stored notebooks fit for ``pytest --nbval-lax``.

    python -m stemprover.project.nbtools refresh notebooks/01_phase_analysis.ipynb [...]

``refresh`` executes a notebook with its smoke defaults (papermill, into a
temporary copy), then stores in the source notebook only the outputs of cells
marked ``# NBVAL_CHECK_OUTPUT``; every other output is stripped. nbval then
compares exactly those cells on each ``make test``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"


def strip(nb: nbformat.NotebookNode, keep_from: nbformat.NotebookNode | None = None) -> None:
    """Strip outputs in place, keeping those of marked cells from ``keep_from``."""
    executed = {}
    if keep_from is not None:
        # papermill inserts an injected-parameters cell; match cells by source instead of index.
        executed = {c.source: c for c in keep_from.cells if c.cell_type == "code"}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        done = executed.get(cell.source)
        if MARK in cell.source and done is not None:
            cell.outputs = [o for o in done.outputs if o.get("output_type") != "display_data"]
            # nbval skips (and, with outputs, rejects) cells whose execution_count is None.
            cell.execution_count = done.get("execution_count") or 1
            for out in cell.outputs:
                out.pop("execution_count", None)
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = None
        else:
            cell.outputs = []


def refresh(path: Path) -> None:
    import papermill as pm

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        pm.execute_notebook(str(path), str(out), cwd=str(path.parent), progress_bar=False)
        executed = nbformat.read(out, as_version=4)
    nb = nbformat.read(path, as_version=4)
    strip(nb, executed)
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stemprover.project.nbtools")
    parser.add_argument("command", choices=["refresh", "strip"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if args.command == "refresh":
            refresh(path)
        else:
            nb = nbformat.read(path, as_version=4)
            strip(nb)
            nbformat.write(nb, path)
        print(f"nbtools: {args.command} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

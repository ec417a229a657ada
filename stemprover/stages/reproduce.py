"""Run the paper's notebooks in order, then build the paper.

    python -m stemprover.stages.reproduce --profile cpu [--from 05]    # `make reproduce`
    python -m stemprover.stages.reproduce --profile smoke --paper-only  # `make paper`

Each notebook is executed by papermill with its profile parameters into
``build/notebooks/<profile>/``; the source notebooks are never overwritten. For the cpu and
gpu profiles, stripped copies of the executed notebooks (:mod:`stemprover.report.executed`)
go to ``results/<profile>/notebooks/`` after each stage, for readers of the committed results.
The run stops at the first failing stage and names it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stemprover.errors import StemproverError
from stemprover.project.config import PROFILES, stage_params
from stemprover.project.paths import STAGES, repo_root, results_dir, stage_name
from stemprover.project.provenance import update_run
from stemprover.report.executed import publish
from stemprover.report.paper import build_paper

PUBLISHED = ("cpu", "gpu")
"""Profiles whose executed notebooks are copied, stripped, next to their results."""


def resolve_profile(profile: str) -> str:
    """``auto`` is ``gpu`` when CUDA is present, ``cpu`` otherwise."""
    if profile != "auto":
        if profile not in PROFILES:
            raise StemproverError(
                f"unknown profile {profile!r}; choose auto or {', '.join(PROFILES)}"
            )
        return profile
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def notebook_path(stage: str) -> Path:
    return repo_root() / "notebooks" / f"{stage}.ipynb"


def run_stage(stage: str, profile: str, out_dir: Path) -> float:
    """Execute one notebook with papermill; return its wall time in seconds (also written to
    the stage's ``run.json`` as ``wall_seconds``)."""
    import papermill as pm

    params = stage_params(profile, stage)
    start = time.perf_counter()
    pm.execute_notebook(
        str(notebook_path(stage)),
        str(out_dir / f"{stage}.ipynb"),
        parameters=params,
        cwd=str(notebook_path(stage).parent),
        progress_bar=False,
        report_mode=False,
    )
    seconds = time.perf_counter() - start
    folder = results_dir(profile, stage, create=False)
    if (folder / "run.json").exists():  # the stage's own record, started by its setup()
        update_run(folder, wall_seconds=round(seconds, 1))
    return seconds


def run_notebooks(profile: str, first: str = "01") -> list[str]:
    """Run the stages from ``first`` on; return the ones that ran."""
    first = stage_name(first)
    out_dir = repo_root() / "build" / "notebooks" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = list(STAGES[STAGES.index(first) :])
    missing = [str(notebook_path(s)) for s in todo if not notebook_path(s).exists()]
    if missing:
        raise StemproverError(f"missing notebook: {', '.join(missing)}")
    ran = []
    for index, stage in enumerate(todo, 1):
        print(f"reproduce [{profile}] {index}/{len(todo)} {stage} ...", flush=True)
        try:
            seconds = run_stage(stage, profile, out_dir)
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
            message = getattr(exc, "evalue", None) or str(exc).strip().splitlines()[-1]
            ename = getattr(exc, "ename", type(exc).__name__)
            raise StemproverError(
                f"stage {stage} failed: {ename}: {message} "
                f"(executed copy: {out_dir / (stage + '.ipynb')})"
            ) from None
        print(f"reproduce [{profile}] {stage} done in {seconds:.0f} s", flush=True)
        ran.append(stage)
        if profile in PUBLISHED:
            publish_executed(profile, out_dir)
    return ran


def publish_executed(profile: str, out_dir: Path) -> list[Path]:
    """Stripped copies of the profile's executed notebooks in ``results/<profile>/notebooks/``."""
    executed = [out_dir / f"{s}.ipynb" for s in STAGES if (out_dir / f"{s}.ipynb").is_file()]
    try:
        return publish(executed, repo_root() / "results" / profile / "notebooks")
    except ValueError as exc:
        raise StemproverError(f"reproduce: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stemprover.stages.reproduce", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--profile", default="auto", help="auto, smoke, cpu or gpu")
    parser.add_argument("--from", dest="first", default="01", help="first stage to run, e.g. 05")
    parser.add_argument("--paper-only", action="store_true", help="only build the paper")
    args = parser.parse_args(argv)
    try:
        profile = resolve_profile(args.profile)
        if not args.paper_only:
            run_notebooks(profile, args.first)
        build_paper(profile)
    except (StemproverError, KeyError) as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the whole grid of notebook 06 and write its files.

    table = run_ablations(cfg, "cpu", results_dir("cpu", "06_ablations"))
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from stemprover.model import load_model
from stemprover.project.inputs import resolve_inputs
from stemprover.project.paths import cache_dir
from stemprover.project.runtime import cpu_threads
from stemprover.stages.ablations.grid import REFERENCE, AblationConfig, Row, grid, row_budget
from stemprover.stages.ablations.scoring import (
    heldout_pairs,
    heldout_tracks,
    identity_scores,
    make_evaluate_fn,
)
from stemprover.stages.ablations.table import (
    SCORE_COLUMNS,
    clustered_paired_test,
    items_table,
    run_grid,
    with_paired,
)
from stemprover.stages.ablations.training import train_models, training_manifest

IDENTITY = "identity"


def rows_json(rows: list[Row]) -> str:
    """The grid as JSON (written next to the table so every row's settings are on record)."""
    return json.dumps([{"name": r.name, **r.options()} for r in rows], indent=2)


def reference_gain(items: dict[str, dict[str, list]], cfg: AblationConfig) -> dict:
    """The reference minus the separator output on the held-out pairs, with its interval over
    tracks, and whether the mean reaches ``cfg.target_gain_db``."""
    test = clustered_paired_test(items[REFERENCE]["si_sdr"], items[IDENTITY]["si_sdr"],
                                 items[REFERENCE]["track"], cfg.n_bootstrap, cfg.seed,
                                 ("ablation", "reference_gain"))
    return {"reference_gain_db": test["mean_diff"], "ci_low": test["ci_low"],
            "ci_high": test["ci_high"], "n_items": test["n"], "n_tracks": test["n_clusters"],
            "target_db": cfg.target_gain_db,
            "reached_target": bool(test["mean_diff"] >= cfg.target_gain_db)}


def run_ablations(cfg: AblationConfig, profile: str, out_dir: Path) -> pd.DataFrame:
    """Train and score the whole grid; write ``ablations.csv`` and ``ablation_items.csv``
    (after every row), ``grid.json`` and ``summary.json``.

    The working folder ``build/cache/<profile>/06_ablations`` is emptied first, so every
    row really trains (and its ``train_seconds`` is real) on each run.
    """
    cfg = resolve_inputs(cfg, profile)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = cache_dir(profile, "06_ablations")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    rows = grid(cfg)
    row_budget(cfg)  # a bad share fails before any training
    manifest = training_manifest(cfg.manifest, cfg.heldout_separators, work_dir / "pairs.json")
    (out_dir / "grid.json").write_text(rows_json(rows))
    with cpu_threads(cfg.torch_threads):
        pairs = heldout_pairs(cfg)
        tracks = heldout_tracks(cfg) if any(r.items == "tracks" for r in rows) else []
        scores = identity_scores(pairs, cfg)
        per_item = {IDENTITY: {"si_sdr": scores.pop("si_sdr_items"),
                               "track": scores.pop("tracks")}}
        baseline = {"name": IDENTITY, "factor": "baseline", "setting": "separator output",
                    **{c: scores[c] for c in SCORE_COLUMNS}, "train_seconds": 0.0,
                    "train_steps": 0, "versus": REFERENCE, "items": "pairs",
                    "n_tracks": len(set(per_item[IDENTITY]["track"]))}

        def save(partial: pd.DataFrame) -> pd.DataFrame:
            table = pd.concat([pd.DataFrame([baseline]), partial], ignore_index=True)
            table = with_paired(table, per_item, cfg.n_bootstrap, cfg.seed)
            table.to_csv(out_dir / "ablations.csv", index=False)
            items_table(per_item).to_csv(out_dir / "ablation_items.csv", index=False)
            return table

        folders, trained = train_models(rows, cfg, profile, work_dir, manifest)
        partial = run_grid(rows, lambda row: load_model(folders[row.train_key]),
                           make_evaluate_fn(pairs, tracks, cfg), on_row=save, trained=trained,
                           items=per_item)
    table = save(partial)
    summary = {"heldout_separators": cfg.heldout_separators, "row_minutes": cfg.row_minutes,
               "row_steps": cfg.row_steps, **reference_gain(per_item, cfg),
               "train_steps": dict(zip(table["name"], table["train_steps"].fillna(0).astype(int)))}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return table

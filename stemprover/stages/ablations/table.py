"""The ablation table: scores of every row, and each row's paired difference from its partner.

    table = run_grid(rows, train_fn, evaluate_fn)   # train each distinct model once, score all

Items that come from one track are not independent, so every interval here is a bootstrap
over tracks (:func:`clustered_bootstrap`): whole tracks are drawn with replacement and the
mean is taken over the items they hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm.auto import tqdm

from stemprover.errors import StemproverError
from stemprover.project.seed import rng_for
from stemprover.stages.ablations.grid import Row

SCORE_COLUMNS = ("si_sdr", "si_sdr_ci_low", "si_sdr_ci_high", "phase_dev", "lsd", "n")
"""What an evaluation returns for a row: SI-SDR (dB) with its CI (bootstrap over tracks),
phase deviation (rad), LSD (dB) and the number of scored items."""
PAIRED_COLUMNS = ("delta_si_sdr", "delta_ci_low", "delta_ci_high", "delta_p_value")
"""The row minus the row named in ``versus``, item by item: mean SI-SDR difference (dB), its
95% CI (bootstrap over tracks) and the Wilcoxon signed-rank p-value of the tracks' mean
differences."""
TABLE_COLUMNS = ("name", "factor", "setting", *SCORE_COLUMNS, "train_seconds", *PAIRED_COLUMNS,
                 "versus", "items", "train_steps", "n_tracks", "resolved", "direction")
"""Columns of ``ablations.csv``."""
ITEM_COLUMNS = ("name", "item", "si_sdr", "track")
"""Columns of ``ablation_items.csv``: every row's SI-SDR on each of its items, in one order
per item set, and the track each item comes from."""

TrainFn = Callable[[Row], Any]
"""Trains (or loads) the model of a row (only its ``model`` and ``train`` parts matter)."""
EvaluateFn = Callable[[Any, Row], dict[str, Any]]
"""Scores a model with a row's ``infer`` settings on the row's items."""


def clustered_bootstrap(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[Any],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> tuple[float, float, float, int]:
    """Mean of ``values`` and its percentile-bootstrap interval, resampling whole clusters.

    Each resample draws as many clusters as there are, with replacement, and takes the mean
    over all the items of the drawn clusters; items of one cluster (e.g. the segments and
    stems of one track) therefore move together.

    Args:
        values: Per-item values; NaNs are dropped with their cluster labels.
        clusters: Per-item cluster labels, same length.
        confidence: Two-sided coverage.
        n_resamples: Bootstrap resamples.
        seed, key: The generator is ``rng_for(seed, "cluster_bootstrap", key)``.

    Returns:
        ``(mean, ci_low, ci_high, n_items)``; the interval is NaN with fewer than two
        clusters (one track gives a mean but says nothing of the spread between tracks).
    """
    sample = np.asarray(values, dtype=np.float64).ravel()
    labels = np.asarray(list(clusters), dtype=object)
    if labels.shape != sample.shape:
        raise StemproverError(f"{sample.size} values but {labels.size} cluster labels")
    keep = np.isfinite(sample)
    sample, labels = sample[keep], labels[keep]
    n = int(sample.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(sample.mean())
    names, index = np.unique(labels.astype(str), return_inverse=True)
    if names.size < 2:
        return mean, float("nan"), float("nan"), n
    sums = np.bincount(index, weights=sample)
    counts = np.bincount(index).astype(np.float64)
    draws = rng_for(seed, "cluster_bootstrap", key).integers(0, names.size,
                                                             (n_resamples, names.size))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return mean, float(low), float(high), n


def clustered_paired_test(
    system: Sequence[float],
    baseline: Sequence[float],
    clusters: Sequence[Any],
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> dict[str, float]:
    """Paired difference ``system - baseline`` on the same items, with intervals over clusters.

    Returns:
        ``mean_diff``, ``ci_low``, ``ci_high`` (:func:`clustered_bootstrap` of the
        differences), ``n`` (items where both are finite), ``n_clusters`` and ``p_value``:
        the two-sided Wilcoxon signed-rank test of the clusters' mean differences (1.0 when
        all are zero, NaN with fewer than two clusters).
    """
    a = np.asarray(system, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise StemproverError(f"{a.size} item scores against {b.size} of the row paired with")
    diff = a - b
    labels = np.asarray(list(clusters), dtype=object)
    mean, low, high, n = clustered_bootstrap(diff, labels, 0.95, n_resamples, seed, key)
    keep = np.isfinite(diff)
    frame = pd.DataFrame({"diff": diff[keep], "cluster": labels[keep].astype(str)})
    by_cluster = frame.groupby("cluster")["diff"].mean().to_numpy()
    p_value = float("nan")
    if by_cluster.size >= 2:
        p_value = 1.0 if np.all(by_cluster == 0.0) else float(
            sps.wilcoxon(by_cluster, zero_method="wilcox").pvalue)
    return {"mean_diff": mean, "ci_low": low, "ci_high": high, "n": n,
            "n_clusters": int(by_cluster.size), "p_value": p_value}


def run_grid(
    rows: list[Row],
    train_fn: TrainFn,
    evaluate_fn: EvaluateFn,
    progress: bool = True,
    on_row: Callable[[pd.DataFrame], None] | None = None,
    trained: dict[tuple, dict[str, float]] | None = None,
    items: dict[str, dict[str, list]] | None = None,
) -> pd.DataFrame:
    """Train every distinct model once, score every row, and tabulate.

    Args:
        on_row: Called with the table so far after each row (e.g. to save partial results).
        trained: ``train_seconds`` and ``train_steps`` by ``train_key`` of models that
            ``train_fn`` only loads (trained beforehand); they replace the measured time.
        items: Filled with each row's per-item scores, when the evaluation returns them
            (``si_sdr_items`` and ``tracks``); may hold rows scored beforehand.

    Returns:
        A table with :data:`TABLE_COLUMNS`, one line per row, in grid order.
    """
    models: dict[tuple, tuple[Any, dict[str, float]]] = {}
    records = []
    per_item = items if items is not None else {}
    for row in tqdm(rows, desc="ablations", unit="row", disable=not progress):
        if row.train_key not in models:
            start = time.perf_counter()
            model = train_fn(row)
            spent = {"train_seconds": round(time.perf_counter() - start, 2),
                     "train_steps": float("nan")}
            models[row.train_key] = (model, (trained or {}).get(row.train_key, spent))
        model, spent = models[row.train_key]
        scores = evaluate_fn(model, row)
        missing = [c for c in SCORE_COLUMNS if c not in scores]
        if missing:
            raise StemproverError(f"ablation row {row.name}: no score for {', '.join(missing)}")
        if "si_sdr_items" in scores:
            per_item[row.name] = {"si_sdr": [float(v) for v in scores["si_sdr_items"]],
                                  "track": list(scores["tracks"])}
        records.append(
            {"name": row.name, "factor": row.factor, "setting": row.setting}
            | {c: scores[c] for c in SCORE_COLUMNS} | spent
            | {"versus": row.versus, "items": row.items,
               "n_tracks": len(set(scores.get("tracks", ())))}
        )
        if on_row is not None:
            on_row(pd.DataFrame(records))
    return with_paired(pd.DataFrame(records), per_item)


def with_paired(table: pd.DataFrame, items: dict[str, dict[str, list]],
                n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``table`` with :data:`PAIRED_COLUMNS`, ``resolved`` and ``direction`` filled for every
    row whose per-item scores, and those of its ``versus`` row, are in ``items``.

    ``resolved`` is True when the paired 95% interval excludes 0; ``direction`` is
    ``"higher"`` or ``"lower"`` (the sign of the mean difference: SI-SDR is higher for the
    better row), ``"equal"``, or empty where there is no paired difference.
    """
    table = table.reindex(columns=list(TABLE_COLUMNS))
    table["resolved"] = False
    table["direction"] = ""
    for i, (name, versus) in enumerate(zip(table["name"], table["versus"])):
        if not isinstance(versus, str) or not versus or name not in items or versus not in items:
            continue
        own, base = items[name], items[versus]
        if len(own["si_sdr"]) != len(base["si_sdr"]) or own["track"] != base["track"]:
            raise StemproverError(f"ablation row {name}: {len(own['si_sdr'])} item scores, "
                                  f"but {versus} has {len(base['si_sdr'])} on other items")
        test = clustered_paired_test(own["si_sdr"], base["si_sdr"], own["track"],
                                     n_resamples, seed, ("ablation", name))
        table.loc[i, list(PAIRED_COLUMNS)] = [test["mean_diff"], test["ci_low"],
                                              test["ci_high"], test["p_value"]]
        low, high = test["ci_low"], test["ci_high"]
        table.loc[i, "resolved"] = bool(np.isfinite(low) and (low > 0.0 or high < 0.0))
        diff = test["mean_diff"]
        table.loc[i, "direction"] = ("" if not np.isfinite(diff) else "higher" if diff > 0
                                     else "lower" if diff < 0 else "equal")
    return table


def items_table(items: dict[str, dict[str, list]]) -> pd.DataFrame:
    """``items`` (row name to per-item scores and tracks) in the long form of
    ``ablation_items.csv``."""
    records = [{"name": name, "item": k, "si_sdr": v, "track": track}
               for name, scores in items.items()
               for k, (v, track) in enumerate(zip(scores["si_sdr"], scores["track"]))]
    return pd.DataFrame(records, columns=list(ITEM_COLUMNS))

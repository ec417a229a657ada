"""Confidence intervals and paired tests for per-track metrics.

    agg = aggregate(per_track)                 # bootstrap 95% CI per testset/stem/system/metric
    sig = significance(per_track, "identity")  # paired Wilcoxon + bootstrap CI of the difference

``per_track`` is a long table with one row per (testset, stem, system, track, metric):
columns ``testset, stem, system, track, metric, value``. NaN values (a metric that is not
defined for a track, e.g. PESQ of a silent reference) are dropped before any statistic.
Bootstrap resampling uses :func:`scipy.stats.bootstrap` with generators from
:func:`stemprover.project.seed.rng_for`, so every interval is reproducible from the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from stemprover.project.seed import rng_for

AGGREGATE_COLUMNS = ("testset", "stem", "system", "metric", "mean", "ci_low", "ci_high", "n")
"""The exact columns of ``aggregate.csv`` (DESIGN.md contract)."""

SIGNIFICANCE_COLUMNS = (
    "testset",
    "stem",
    "system",
    "baseline",
    "metric",
    "mean_diff",
    "ci_low",
    "ci_high",
    "n",
    "wilcoxon_stat",
    "p_value",
    "p_fdr",
    "better",
)
GROUP_KEYS = ("testset", "stem", "system", "metric")
LOWER_IS_BETTER_WORDS = ("lsd", "mrstft", "phase", "error", "deviation", "distance", "dist")
"""Metric names containing one of these are distances: lower is better."""


def higher_is_better(metric: str) -> bool:
    """True for scores (SDR, SI-SDR, PESQ, STOI), False for distances and errors."""
    name = metric.lower()
    return not any(word in name for word in LOWER_IS_BETTER_WORDS)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> tuple[float, float, float, int]:
    """Mean and percentile-bootstrap confidence interval of the mean.

    Args:
        values: 1-D sample; NaNs are dropped.
        confidence: Two-sided coverage, e.g. 0.95.
        n_resamples: Bootstrap resamples.
        seed: Base seed; the generator is ``rng_for(seed, key)``.
        key: Distinguishes independent intervals drawn with the same seed.

    Returns:
        ``(mean, ci_low, ci_high, n)``. With ``n == 0`` all three are NaN; with a
        single value or a constant sample the interval is the value itself.
    """
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    n = int(sample.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(sample.mean())
    if n == 1 or np.ptp(sample) == 0.0:
        return mean, mean, mean, n
    result = sps.bootstrap(
        (sample,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=rng_for(seed, "bootstrap", key),
    )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high), n


def paired_test(
    system: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> dict[str, float]:
    """Paired comparison of two systems measured on the same tracks.

    Args:
        system: Per-track values of the system, shape ``(n_tracks,)``.
        baseline: Per-track values of the baseline on the same tracks, same order.
        confidence, n_resamples, seed, key: as in :func:`bootstrap_ci`.

    Returns:
        ``mean_diff`` (system minus baseline), its bootstrap ``ci_low``/``ci_high``,
        ``n`` (pairs where both are finite), and the two-sided Wilcoxon signed-rank
        ``wilcoxon_stat`` and ``p_value`` (1.0 when every difference is zero, NaN when
        there are no pairs).
    """
    a = np.asarray(system, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {a.shape} values against {b.shape} baseline values")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    mean, low, high, n = bootstrap_ci(diff, confidence, n_resamples, seed, ("paired", key))
    stat, p_value = float("nan"), float("nan")
    if n > 0 and np.all(diff == 0.0):
        stat, p_value = 0.0, 1.0
    elif n > 0:
        test = sps.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
        stat, p_value = float(test.statistic), float(test.pvalue)
    return {
        "mean_diff": mean,
        "ci_low": low,
        "ci_high": high,
        "n": n,
        "wilcoxon_stat": stat,
        "p_value": p_value,
    }


def aggregate(
    per_track: pd.DataFrame,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap CI for every (testset, stem, system, metric).

    Args:
        per_track: Long table with columns ``testset, stem, system, track, metric, value``.

    Returns:
        A table with exactly :data:`AGGREGATE_COLUMNS`, sorted by the group keys.
    """
    _require(per_track, (*GROUP_KEYS, "track", "value"), "per_track")
    rows = []
    for keys, group in per_track.groupby(list(GROUP_KEYS), sort=True):
        mean, low, high, n = bootstrap_ci(group["value"], confidence, n_resamples, seed, keys)
        rows.append((*keys, mean, low, high, n))
    return pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))


def significance(
    per_track: pd.DataFrame,
    baseline: str = "identity",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired test of every system against ``baseline`` on the same tracks.

    Tracks are matched by name within each (testset, stem, metric). ``p_fdr`` is the
    Benjamini-Hochberg adjusted p-value over all comparisons in the table, and ``better``
    is +1 / -1 when the difference is significant at ``alpha`` (after adjustment) in the
    metric's good / bad direction, 0 otherwise.

    Returns:
        A table with exactly :data:`SIGNIFICANCE_COLUMNS` (empty when the baseline is absent).
    """
    _require(per_track, (*GROUP_KEYS, "track", "value"), "per_track")
    rows = []
    base = per_track[per_track["system"] == baseline]
    others = per_track[per_track["system"] != baseline]
    for (testset, stem, system, metric), group in others.groupby(list(GROUP_KEYS), sort=True):
        ref = base[
            (base["testset"] == testset) & (base["stem"] == stem) & (base["metric"] == metric)
        ]
        paired = group.merge(ref[["track", "value"]], on="track", suffixes=("", "_base"))
        if paired.empty:
            continue
        result = paired_test(
            paired["value"],
            paired["value_base"],
            confidence,
            n_resamples,
            seed,
            (testset, stem, system, metric),
        )
        rows.append({"testset": testset, "stem": stem, "system": system, "baseline": baseline})
        rows[-1].update(metric=metric, **result)
    table = pd.DataFrame(
        rows, columns=[c for c in SIGNIFICANCE_COLUMNS if c not in ("p_fdr", "better")]
    )
    table["p_fdr"] = _fdr(table["p_value"].to_numpy(dtype=np.float64))
    sign = np.where([higher_is_better(m) for m in table["metric"]], 1, -1)
    direction = np.sign(table["mean_diff"].to_numpy(dtype=np.float64)) * sign
    significant = table["p_fdr"].to_numpy(dtype=np.float64) < alpha
    table["better"] = np.where(significant, direction, 0).astype(int)
    return table[list(SIGNIFICANCE_COLUMNS)]


def _fdr(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjustment that leaves NaNs in place."""
    out = np.full(p_values.shape, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        out[finite] = sps.false_discovery_control(p_values[finite], method="bh")
    return out


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")

"""Confidence intervals and paired tests for per-track metrics, clustered by excerpt.

    agg = aggregate(per_track)                       # cluster-bootstrap 95% CI per group
    sig = significance(per_track, "identity",        # every system against the separator output,
                       pairs=[("stemprover@4", "postfilter")])  # plus system-against-system tests
    bins = gain_by_input_bin(per_track, ["stemprover@4"])       # gain against input SI-SDR

``per_track`` is a long table with one row per (testset, stem, system, track, metric):
columns ``testset, stem, system, track, metric, value`` (and optionally ``separator``). A track
is named ``<excerpt>@<separator>``: the same excerpt separated by several separators gives
several items that are not independent, so every interval is a cluster bootstrap over
excerpts (:func:`track_excerpt`): a resample draws excerpts with replacement and takes all of
their items. With one excerpt there is no interval (NaN). Wilcoxon signed-rank tests run on
the excerpts' mean differences. NaN values (a metric that is not defined for an item, e.g.
PESQ of a silent reference) are dropped before any statistic. Resampling uses
:func:`scipy.stats.bootstrap` with generators from :func:`stemprover.project.seed.rng_for`, so
every interval is reproducible from the seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from stemprover.project.seed import rng_for

AGGREGATE_COLUMNS = ("testset", "stem", "system", "metric", "mean", "ci_low", "ci_high", "n")
"""The contract columns of ``aggregate.csv`` (DESIGN.md); ``n`` counts items."""
AGGREGATE_EXTRA = ("n_tracks", "n_separators")
"""Columns after the contract: distinct excerpts and distinct separators behind the ``n`` items."""

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
    "n_tracks",
    "n_separators",
)
BIN_COLUMNS = ("testset", "system", "stem", "bin_low", "bin_high", "n", "mean", "ci_low",
               "ci_high", "n_tracks")
"""Columns of :func:`gain_by_input_bin`."""
INPUT_BIN_EDGES_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
"""Input SI-SDR bins (dB): 5 dB wide, spanning the quality separators deliver (DESIGN.md)."""
ALL_STEMS = "all"
"""The ``stem`` of :func:`gain_by_input_bin` rows that pool every stem."""
GROUP_KEYS = ("testset", "stem", "system", "metric")
LOWER_IS_BETTER_WORDS = ("lsd", "mrstft", "phase", "error", "deviation", "distance", "dist")
"""Metric names containing one of these are distances: lower is better."""


def higher_is_better(metric: str) -> bool:
    """True for scores (SDR, SI-SDR, PESQ, STOI), False for distances and errors."""
    name = metric.lower()
    return not any(word in name for word in LOWER_IS_BETTER_WORDS)


def track_excerpt(track: object) -> str:
    """The excerpt of a track name ``<excerpt>@<separator>`` (the whole name without ``@``)."""
    return str(track).split("@", 1)[0]


def track_separator(track: object) -> str:
    """The separator of a track name ``<excerpt>@<separator>`` (``""`` without ``@``)."""
    parts = str(track).split("@", 1)
    return parts[1] if len(parts) == 2 else ""


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> tuple[float, float, float, int]:
    """Mean and percentile-bootstrap confidence interval of the mean of independent values.

    Args:
        values: 1-D sample; NaNs are dropped.
        confidence: Two-sided coverage, e.g. 0.95.
        n_resamples: Bootstrap resamples.
        seed: Base seed; the generator is ``rng_for(seed, "bootstrap", key)``.
        key: Distinguishes independent intervals drawn with the same seed.

    Returns:
        ``(mean, ci_low, ci_high, n)``. With ``n == 0`` all three are NaN; with a single
        value the interval is NaN (one value bounds nothing); a constant sample has the
        value itself as its interval.
    """
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    n = int(sample.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(sample.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    if np.ptp(sample) == 0.0:
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


def _pooled_mean(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def cluster_bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[object] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
) -> tuple[float, float, float, int, int]:
    """Mean of all items and its cluster-bootstrap confidence interval.

    Each resample draws clusters with replacement and takes all of their items, so items that
    share a cluster (one excerpt under several separators) count as one draw: the interval
    reflects how many independent clusters there are, not how many items.

    Args:
        values: 1-D sample, one value per item; non-finite values are dropped.
        clusters: The cluster of each item (same length), e.g. :func:`track_excerpt`.
        confidence, n_resamples, seed, key: As in :func:`bootstrap_ci` (same generator).

    Returns:
        ``(mean, ci_low, ci_high, n_items, n_clusters)``: the interval is NaN with fewer than
        two clusters, and the mean itself when every item has the same value.
    """
    sample = np.asarray(values, dtype=np.float64).ravel()
    labels = np.asarray(clusters, dtype=object).ravel()
    if labels.shape != sample.shape:
        raise ValueError(f"cluster_bootstrap_ci: {sample.size} values but {labels.size} clusters")
    keep = np.isfinite(sample)
    sample, labels = sample[keep], labels[keep]
    n = int(sample.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0, 0
    codes = pd.factorize(labels.astype(str), sort=False)[0]  # clusters in order of appearance
    counts = np.bincount(codes)
    sums = np.bincount(codes, weights=sample)
    mean, n_clusters = float(sample.mean()), int(counts.size)
    if n_clusters == 1:
        return mean, float("nan"), float("nan"), n, 1
    if np.ptp(sample) == 0.0:
        return mean, mean, mean, n, n_clusters
    result = sps.bootstrap(
        (sums, counts.astype(np.float64)),
        _pooled_mean,
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=rng_for(seed, "bootstrap", key),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return mean, low, high, n, n_clusters


def cluster_means(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """The mean of each cluster's finite values (clusters in sorted order)."""
    frame = pd.DataFrame({"value": np.asarray(values, dtype=np.float64),
                          "cluster": np.asarray(clusters).astype(str)})
    frame = frame[np.isfinite(frame["value"])]
    return frame.groupby("cluster", sort=True)["value"].mean().to_numpy()


def paired_test(
    system: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    key: object = "",
    clusters: Sequence[object] | np.ndarray | None = None,
) -> dict[str, float]:
    """Paired comparison of two systems measured on the same items.

    Args:
        system: Per-item values of the system, shape ``(n_items,)``.
        baseline: Per-item values of the baseline on the same items, same order.
        confidence, n_resamples, seed, key: as in :func:`bootstrap_ci`.
        clusters: The cluster (excerpt) of each item; None: every item is its own cluster.

    Returns:
        ``mean_diff`` (system minus baseline, mean over items), its cluster-bootstrap
        ``ci_low``/``ci_high`` (NaN with one cluster), ``n`` (pairs where both are finite),
        ``n_tracks`` (their clusters), and the two-sided Wilcoxon signed-rank
        ``wilcoxon_stat`` and ``p_value`` on the clusters' mean differences (1.0 when every
        difference is zero, NaN with fewer than two clusters).
    """
    a = np.asarray(system, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {a.shape} values against {b.shape} baseline values")
    labels = np.arange(a.size) if clusters is None else np.asarray(clusters, dtype=object).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    diff, labels = a[keep] - b[keep], labels[keep]
    mean, low, high, n, n_clusters = cluster_bootstrap_ci(
        diff, labels, confidence, n_resamples, seed, ("paired", key))
    stat, p_value = float("nan"), float("nan")
    per_cluster = cluster_means(diff, labels) if n else np.empty(0)
    if n > 0 and np.all(diff == 0.0):
        stat, p_value = 0.0, 1.0
    elif n_clusters >= 2 and np.any(per_cluster != 0.0):
        test = sps.wilcoxon(per_cluster, zero_method="wilcox", alternative="two-sided")
        stat, p_value = float(test.statistic), float(test.pvalue)
    return {
        "mean_diff": mean,
        "ci_low": low,
        "ci_high": high,
        "n": n,
        "n_tracks": n_clusters,
        "wilcoxon_stat": stat,
        "p_value": p_value,
    }


def _separators(group: pd.DataFrame) -> pd.Series:
    if "separator" in group.columns:
        return group["separator"].astype(str)
    return group["track"].map(track_separator)


def aggregate(
    per_track: pd.DataFrame,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and cluster-bootstrap CI for every (testset, stem, system, metric).

    Args:
        per_track: Long table with columns ``testset, stem, system, track, metric, value``
            (and optionally ``separator``).

    Returns:
        :data:`AGGREGATE_COLUMNS` then :data:`AGGREGATE_EXTRA`, sorted by the group keys:
        ``n`` items from ``n_tracks`` excerpts and ``n_separators`` separators (the CI is NaN
        where ``n_tracks`` is 1).
    """
    _require(per_track, (*GROUP_KEYS, "track", "value"), "per_track")
    rows = []
    for keys, group in per_track.groupby(list(GROUP_KEYS), sort=True):
        finite = group[np.isfinite(group["value"].to_numpy(dtype=np.float64))]
        mean, low, high, n, n_tracks = cluster_bootstrap_ci(
            group["value"], group["track"].map(track_excerpt), confidence, n_resamples, seed,
            keys)
        rows.append((*keys, mean, low, high, n, n_tracks, _separators(finite).nunique()))
    return pd.DataFrame(rows, columns=[*AGGREGATE_COLUMNS, *AGGREGATE_EXTRA])


def significance(
    per_track: pd.DataFrame,
    baseline: str = "identity",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    pairs: Iterable[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Paired tests of every system against ``baseline``, and of each ``(system, other)`` pair.

    Items are matched by track name within each (testset, stem, metric). ``baseline`` names
    the system each row is compared with. ``p_fdr`` is the Benjamini-Hochberg adjusted p-value
    over all comparisons in the table, and ``better`` is +1 / -1 when the paired CI excludes 0
    and the adjusted p-value is below ``alpha``, in the metric's good / bad direction, else 0.

    Returns:
        A table with exactly :data:`SIGNIFICANCE_COLUMNS` (empty when no pair is present).
    """
    _require(per_track, (*GROUP_KEYS, "track", "value"), "per_track")
    systems = list(dict.fromkeys(per_track["system"]))
    wanted = [(s, baseline) for s in systems if s != baseline]
    wanted += [p for p in pairs if p not in wanted and p[0] != p[1]]
    rows = []
    by_system = dict(tuple(per_track.groupby("system", sort=False)))
    for system, other in wanted:
        if system not in by_system or other not in by_system:
            continue
        ref = by_system[other]
        for (testset, stem, metric), group in by_system[system].groupby(
                ["testset", "stem", "metric"], sort=True):
            mine = ref[(ref["testset"] == testset) & (ref["stem"] == stem)
                       & (ref["metric"] == metric)]
            paired = group.merge(mine[["track", "value"]], on="track", suffixes=("", "_base"))
            if paired.empty:
                continue
            result = paired_test(
                paired["value"], paired["value_base"], confidence, n_resamples, seed,
                (testset, stem, system, other, metric) if other != "identity"
                else (testset, stem, system, metric),
                clusters=paired["track"].map(track_excerpt),
            )
            both = paired[np.isfinite(paired["value"]) & np.isfinite(paired["value_base"])]
            rows.append({"testset": testset, "stem": stem, "system": system, "baseline": other,
                         "metric": metric, **result,
                         "n_separators": _separators(both).nunique()})
    columns = [c for c in SIGNIFICANCE_COLUMNS if c not in ("p_fdr", "better")]
    table = pd.DataFrame(rows, columns=columns)
    order = {name: i for i, name in enumerate(dict.fromkeys(o for _, o in wanted))}
    table = table.assign(_order=table["baseline"].map(order)).sort_values(
        ["_order", "testset", "stem", "system", "metric"], kind="stable")
    table = table.drop(columns="_order").reset_index(drop=True)
    table["p_fdr"] = _fdr(table["p_value"].to_numpy(dtype=np.float64))
    sign = np.where([higher_is_better(m) for m in table["metric"]], 1, -1)
    direction = np.sign(table["mean_diff"].to_numpy(dtype=np.float64)) * sign
    low, high = (table[c].to_numpy(dtype=np.float64) for c in ("ci_low", "ci_high"))
    resolved = (low > 0) | (high < 0)  # NaN compares False: no interval, no verdict
    significant = resolved & (table["p_fdr"].to_numpy(dtype=np.float64) < alpha)
    table["better"] = np.where(significant, direction, 0).astype(int)
    return table[list(SIGNIFICANCE_COLUMNS)]


def gain_by_input_bin(
    per_track: pd.DataFrame,
    systems: Sequence[str],
    metric: str = "si_sdr",
    edges: Sequence[float] = INPUT_BIN_EDGES_DB,
    baseline: str = "identity",
    input_metric: str = "si_sdr",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean gain of each system over ``baseline`` in bins of the input's quality.

    An item's input quality is ``baseline``'s ``input_metric`` (the separator output's SI-SDR,
    dB); its gain is the system's ``metric`` minus ``baseline``'s on the same item. Bins are
    ``[edges[i], edges[i + 1])``; items outside every bin are left out. The CI is the cluster
    bootstrap over excerpts (:func:`cluster_bootstrap_ci`).

    Args:
        per_track: Long per-track table (every test set in it is binned on its own).
        systems: Systems to bin (those absent from ``per_track`` are skipped).
        metric: The metric whose gain is averaged.
        edges: Increasing bin edges (dB).

    Returns:
        :data:`BIN_COLUMNS`, one row per (testset, system, stem, bin) that holds items, and the
        same with ``stem == "all"`` pooling the stems. Empty bins have no row.
    """
    _require(per_track, (*GROUP_KEYS, "track", "value"), "per_track")
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("gain_by_input_bin: edges must be at least two increasing values")
    keys = ["testset", "stem", "track"]
    base = per_track[per_track["system"] == baseline]
    quality = base[base["metric"] == input_metric][[*keys, "value"]].rename(
        columns={"value": "input"})
    reference = base[base["metric"] == metric][[*keys, "value"]].rename(
        columns={"value": "reference"})
    rows = []
    for system in systems:
        mine = per_track[(per_track["system"] == system) & (per_track["metric"] == metric)]
        items = mine[[*keys, "value"]].merge(reference, on=keys).merge(quality, on=keys)
        items = items.assign(gain=items["value"] - items["reference"])
        index = np.searchsorted(edges, items["input"].to_numpy(dtype=np.float64), side="right")
        items = items.assign(bin=index - 1)
        items = items[(items["bin"] >= 0) & (items["bin"] < edges.size - 1)]
        pooled = items.assign(stem=ALL_STEMS)
        for (testset, stem, b), group in pd.concat([items, pooled]).groupby(
                ["testset", "stem", "bin"], sort=True):
            mean, low, high, n, n_tracks = cluster_bootstrap_ci(
                group["gain"], group["track"].map(track_excerpt), confidence, n_resamples,
                seed, ("bins", testset, system, stem, metric, int(b)))
            rows.append((testset, system, stem, float(edges[b]), float(edges[b + 1]), n, mean,
                         low, high, n_tracks))
    return pd.DataFrame(rows, columns=list(BIN_COLUMNS))


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

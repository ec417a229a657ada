"""Gain over the separator output, binned by the input's own SI-SDR (the quality sweep).

    table = gain_by_input_bin(per_track, ["stemprover@1", "regression"], edges=[0, 3, 6, 9])

``per_track`` is ``05_evaluation/per_track.csv`` (``testset, stem, system, track, metric,
value``). The identity system's value of an item is that item's input SI-SDR; the gain of a
system on an item is its value minus the identity's on the same item. Quality-sweep tracks are
named ``<excerpt>@<family>:severity=<s>``: the items of one excerpt share its music, so the
interval of each bin is bootstrapped over excerpts (the mean of each excerpt's items), not over
items.

The figure code reads this table only; it is computed here, apart from the plotting. A
shared version in :mod:`stemprover.report.resultsio` replaces this one when it exists (see
:func:`binned_gains`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stemprover.metrics.stats import bootstrap_ci

BIN_COLUMNS = ("testset", "system", "stem", "bin_low", "bin_high", "n", "mean", "ci_low", "ci_high")


def excerpt_of(track: str) -> str:
    """``"bach-bwv6.6@degraded:bleed:severity=0.3"`` -> ``"bach-bwv6.6"``."""
    return str(track).split("@", 1)[0]


def gain_by_input_bin(
    per_track: pd.DataFrame,
    systems: Sequence[str],
    metric: str = "si_sdr",
    edges: Sequence[float] = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0),
    testset: str = "quality_sweep",
    seed: int = 0,
) -> pd.DataFrame:
    """Mean paired gain (system minus identity, dB) per stem and input-SI-SDR bin.

    Args:
        per_track: Long per-item table of 05.
        systems: Systems to compare with ``identity``; absent ones are left out.
        metric: The metric of the gain and of the input's quality.
        edges: Bin edges of the input SI-SDR (dB), increasing; a bin is ``[low, high)``.
        testset: The test set to read.
        seed: Seed of the bootstrap.

    Returns:
        One row per (system, stem, non-empty bin) with :data:`BIN_COLUMNS`; ``n`` counts items.
    """
    rows = per_track[(per_track["testset"] == testset) & (per_track["metric"] == metric)]
    wide = rows.pivot_table(index=["stem", "track"], columns="system", values="value",
                            aggfunc="mean")
    out = []
    if "identity" not in wide.columns:
        return pd.DataFrame(columns=list(BIN_COLUMNS))
    edges = np.asarray(edges, dtype=float)
    source = wide["identity"].to_numpy()
    which = np.digitize(source, edges) - 1  # bin k holds edges[k] <= x < edges[k + 1]
    excerpts = np.array([excerpt_of(t) for t in wide.index.get_level_values("track")])
    stems = wide.index.get_level_values("stem").to_numpy()
    for system in (s for s in systems if s in wide.columns):
        gain = wide[system].to_numpy() - source
        for stem in dict.fromkeys(stems):
            for k in range(len(edges) - 1):
                keep = (stems == stem) & (which == k) & np.isfinite(gain)
                if not keep.any():
                    continue
                by_excerpt = pd.Series(gain[keep]).groupby(excerpts[keep]).mean()
                mean, low, high, _ = bootstrap_ci(by_excerpt.to_numpy(), seed=seed,
                                                  key=(system, stem, k))
                out.append((testset, system, stem, edges[k], edges[k + 1], int(keep.sum()),
                            mean, low, high))
    return pd.DataFrame(out, columns=list(BIN_COLUMNS))


def binned_gains(per_track: pd.DataFrame, systems: Sequence[str], edges: Sequence[float],
                 metric: str = "si_sdr") -> pd.DataFrame:
    """Per stem and all stems pooled (``stem == "all"``), by the shared function when the
    project has one, else by :func:`gain_by_input_bin`."""
    from stemprover.report import resultsio

    binner = getattr(resultsio, "gain_by_input_bin", None) or gain_by_input_bin
    per_stem = binner(per_track, systems, metric=metric, edges=edges)
    # each stem of a track stays its own item when the stems are pooled
    items = per_track.assign(track=per_track["track"].astype(str) + "#" + per_track["stem"],
                             stem="all")
    pooled = binner(items, systems, metric=metric, edges=edges)
    return pd.concat([pooled, per_stem], ignore_index=True)

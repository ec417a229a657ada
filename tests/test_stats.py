"""Bootstrap intervals and paired tests against answers known in closed form."""

import numpy as np
import pandas as pd
import pytest

from stemprover.metrics import stats


def test_constant_sample_has_degenerate_interval():
    mean, low, high, n = stats.bootstrap_ci(np.full(12, 3.25))
    assert (mean, low, high, n) == (3.25, 3.25, 3.25, 12)


def test_nans_are_dropped_and_empty_is_nan():
    mean, low, high, n = stats.bootstrap_ci([1.0, np.nan, 3.0, np.inf])
    assert n == 2 and mean == 2.0 and 1.0 <= low <= high <= 3.0
    assert np.isnan(stats.bootstrap_ci([np.nan])[0]) and stats.bootstrap_ci([])[3] == 0


def test_bootstrap_is_reproducible_from_seed():
    values = np.random.default_rng(1).normal(size=30)
    assert stats.bootstrap_ci(values, seed=4) == stats.bootstrap_ci(values, seed=4)
    assert stats.bootstrap_ci(values, seed=4) != stats.bootstrap_ci(values, seed=5)


def test_interval_width_matches_normal_theory():
    # For n=400 normal draws the percentile bootstrap CI of the mean is close to
    # mean +- 1.96 * s / sqrt(n); the width must agree within 15%.
    values = np.random.default_rng(2).normal(5.0, 2.0, size=400)
    mean, low, high, _ = stats.bootstrap_ci(values, n_resamples=3000)
    expected = 2 * 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert low < mean < high
    assert abs((high - low) / expected - 1) < 0.15


def test_coverage_on_normal_data_is_near_nominal():
    rng = np.random.default_rng(3)
    hits = 0
    trials = 120
    for trial in range(trials):
        sample = rng.normal(1.0, 1.0, size=40)
        _, low, high, _ = stats.bootstrap_ci(sample, n_resamples=500, key=trial)
        hits += low <= 1.0 <= high
    # Nominal 95%; the percentile bootstrap under-covers slightly at n=40.
    assert 0.85 <= hits / trials <= 0.99


def test_paired_test_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(4)
    base = rng.normal(size=25)
    shifted = stats.paired_test(base + 1.0 + 0.1 * rng.normal(size=25), base)
    assert shifted["p_value"] < 1e-3 and shifted["ci_low"] > 0.8 and shifted["n"] == 25
    same = stats.paired_test(base, base)
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    with pytest.raises(ValueError):
        stats.paired_test([1.0, 2.0], [1.0])


def test_metric_direction():
    assert stats.higher_is_better("si_sdr") and stats.higher_is_better("pesq_wb")
    assert not stats.higher_is_better("lsd") and not stats.higher_is_better("phase_dev_above_4k")


def _per_track(n_tracks=8):
    rng = np.random.default_rng(5)
    rows = []
    for track in range(n_tracks):
        base = rng.normal()
        for system, gain in (("identity", 0.0), ("good", 2.0), ("same", 0.0)):
            for metric, sign in (("si_sdr", 1), ("lsd", -1)):
                value = base + sign * gain + (0.01 * rng.normal() if gain else 0.0)
                rows.append(("synthetic", "vocals", system, f"t{track}", metric, value))
    return pd.DataFrame(rows, columns=["testset", "stem", "system", "track", "metric", "value"])


def test_aggregate_has_exact_columns_and_means():
    per_track = _per_track()
    table = stats.aggregate(per_track, n_resamples=200)
    assert tuple(table.columns) == stats.AGGREGATE_COLUMNS
    assert len(table) == 3 * 2 and set(table["n"]) == {8}
    row = table[(table.system == "identity") & (table.metric == "si_sdr")].iloc[0]
    expected = per_track.query("system == 'identity' and metric == 'si_sdr'")["value"].mean()
    assert row["mean"] == pytest.approx(expected)
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()


def test_significance_marks_direction_per_metric():
    table = stats.significance(_per_track(), "identity", n_resamples=200)
    assert tuple(table.columns) == stats.SIGNIFICANCE_COLUMNS
    good = table[table.system == "good"].set_index("metric")
    assert good.loc["si_sdr", "mean_diff"] == pytest.approx(2.0, abs=0.05)
    assert good.loc["lsd", "mean_diff"] == pytest.approx(-2.0, abs=0.05)
    assert (good["better"] == 1).all()  # higher SI-SDR and lower LSD are both better
    assert (table[table.system == "same"]["better"] == 0).all()
    assert "identity" not in set(table["system"])

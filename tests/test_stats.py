"""Bootstrap intervals and paired tests against answers known in closed form."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

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
    assert tuple(table.columns)[: len(stats.AGGREGATE_COLUMNS)] == stats.AGGREGATE_COLUMNS
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


def test_cluster_bootstrap_of_identical_items_is_the_bootstrap_of_cluster_means():
    # 7 excerpts x 4 separators, every item of an excerpt equal: the cluster bootstrap draws
    # excerpts, so it must give exactly the interval of the 7 excerpt means.
    means = np.random.default_rng(6).normal(1.0, 2.0, size=7)
    values = np.repeat(means, 4)
    clusters = np.repeat([f"song{i}" for i in range(7)], 4)
    mean, low, high, n, n_clusters = stats.cluster_bootstrap_ci(values, clusters, seed=3, key="k")
    expected = stats.bootstrap_ci(means, seed=3, key="k")
    assert (n, n_clusters) == (28, 7)
    assert mean == pytest.approx(expected[0])
    assert (low, high) == pytest.approx(expected[1:3], abs=1e-12)
    # the item bootstrap treats the 28 items as independent: about half as wide (sqrt 4)
    naive = stats.bootstrap_ci(values, seed=3, key="k")
    assert (naive[2] - naive[1]) < 0.7 * (high - low)


def test_cluster_bootstrap_of_singletons_is_the_plain_bootstrap():
    values = np.random.default_rng(7).normal(size=15)
    clustered = stats.cluster_bootstrap_ci(values, [f"t{i}" for i in range(15)], seed=2)
    plain = stats.bootstrap_ci(values, seed=2)
    assert clustered[:3] == pytest.approx(plain[:3], abs=1e-12) and clustered[3:] == (15, 15)


def test_one_excerpt_has_no_interval():
    mean, low, high, n, n_clusters = stats.cluster_bootstrap_ci([1.0, 2.0, 4.0], ["a", "a", "a"])
    assert (mean, n, n_clusters) == (pytest.approx(7 / 3), 3, 1)
    assert np.isnan(low) and np.isnan(high)
    assert np.isnan(stats.bootstrap_ci([2.5])[1])
    test = stats.paired_test([2.0, 3.0], [1.0, 1.0], clusters=["a", "a"])
    assert test["mean_diff"] == 1.5 and test["n_tracks"] == 1
    assert np.isnan(test["ci_low"]) and np.isnan(test["p_value"])


def _clustered_per_track():
    """3 excerpts x 2 separators; "good" gains 2 dB on every item, "close" 0.05 dB +- noise."""
    rng = np.random.default_rng(8)
    rows = []
    for excerpt in ("a", "b", "real"):
        for separator in ("hpss", "htdemucs"):
            if excerpt == "real" and separator == "hpss":
                continue
            track = f"{excerpt}@{separator}"
            base = rng.normal()
            noise = rng.normal()
            for system, value in (("identity", base), ("good", base + 2.0),
                                  ("close", base + 2.0 + 0.05 + noise)):
                testset = "real" if excerpt == "real" else "synthetic"
                rows.append((testset, "vocals", system, track, separator, "si_sdr", value))
    return pd.DataFrame(rows, columns=["testset", "stem", "system", "track", "separator",
                                       "metric", "value"])


def test_aggregate_counts_excerpts_and_separators_and_drops_single_excerpt_intervals():
    table = stats.aggregate(_clustered_per_track(), n_resamples=200)
    assert tuple(table.columns) == (*stats.AGGREGATE_COLUMNS, *stats.AGGREGATE_EXTRA)
    synthetic = table[(table.testset == "synthetic") & (table.system == "identity")].iloc[0]
    assert (synthetic["n"], synthetic["n_tracks"], synthetic["n_separators"]) == (4, 2, 2)
    assert np.isfinite(synthetic["ci_low"])
    real = table[(table.testset == "real") & (table.system == "identity")].iloc[0]
    assert (real["n"], real["n_tracks"], real["n_separators"]) == (1, 1, 1)
    assert np.isnan(real["ci_low"]) and np.isnan(real["ci_high"])


def test_significance_compares_systems_with_each_other():
    per_track = _clustered_per_track()
    table = stats.significance(per_track, "identity", n_resamples=500,
                               pairs=[("close", "good"), ("close", "absent")])
    assert tuple(table.columns) == stats.SIGNIFICANCE_COLUMNS
    assert list(dict.fromkeys(table["baseline"])) == ["identity", "good"]
    pair = table[(table.baseline == "good") & (table.testset == "synthetic")].iloc[0]
    wide = per_track[per_track.testset == "synthetic"].pivot(
        index="track", columns="system", values="value")
    diff = wide["close"] - wide["good"]
    assert pair["system"] == "close" and pair["mean_diff"] == pytest.approx(diff.mean())
    assert (pair["n"], pair["n_tracks"], pair["n_separators"]) == (4, 2, 2)
    # the Wilcoxon test runs on the 2 excerpts' mean differences
    per_excerpt = diff.groupby(diff.index.str.split("@").str[0]).mean()
    assert pair["p_value"] == pytest.approx(
        sps.wilcoxon(per_excerpt.to_numpy()).pvalue)
    assert pair["better"] == 0  # 2 excerpts cannot resolve anything
    real = table[(table.baseline == "identity") & (table.testset == "real")]
    assert real["ci_low"].isna().all() and (real["better"] == 0).all()


def test_gain_by_input_bin_bins_by_the_separator_outputs_si_sdr():
    # every excerpt has 4 inputs: -3 dB (gain -1), 2 dB (-0.5), 12 dB (+1) and 30 dB (outside)
    inputs = {"s1": (-3.0, -1.0), "s2": (2.0, -0.5), "s3": (12.0, 1.0), "s4": (30.0, 5.0)}
    rows = []
    for excerpt in ("a", "b", "c"):
        for separator, (quality, gain) in inputs.items():
            for stem in ("vocals", "bass"):
                track = f"{excerpt}@{separator}"
                jitter = 0.01 * (ord(excerpt) - ord("a"))
                rows.append(("quality_sweep", stem, "identity", track, "si_sdr", quality + jitter))
                rows.append(("quality_sweep", stem, "sys", track, "si_sdr",
                             quality + jitter + gain))
    per_track = pd.DataFrame(rows, columns=["testset", "stem", "system", "track", "metric",
                                            "value"])
    table = stats.gain_by_input_bin(per_track, ["sys", "missing"], n_resamples=200)
    assert tuple(table.columns) == stats.BIN_COLUMNS
    assert set(table["system"]) == {"sys"} and set(table["stem"]) == {"vocals", "bass", "all"}
    pooled = table[table.stem == "all"].set_index("bin_low")
    assert list(pooled.index) == [-5.0, 0.0, 10.0]  # no item in [5, 10); 30 dB is outside
    assert list(pooled["bin_high"]) == [0.0, 5.0, 15.0]
    assert list(pooled["mean"]) == pytest.approx([-1.0, -0.5, 1.0])
    assert list(pooled["n"]) == [6, 6, 6] and list(pooled["n_tracks"]) == [3, 3, 3]
    assert pooled.loc[-5.0, "ci_high"] == pytest.approx(-1.0)  # constant gain: the value itself
    vocals = table[(table.stem == "vocals") & (table.bin_low == 0.0)].iloc[0]
    assert vocals["n"] == 3 and vocals["mean"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="increasing"):
        stats.gain_by_input_bin(per_track, ["sys"], edges=[5.0, 0.0])

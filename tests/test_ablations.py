"""The ablation grid: its rows, budget, held-out items, intervals over tracks and its table."""

import json

import numpy as np
import pytest

from stemprover.errors import StemproverError
from stemprover.metrics.stats import bootstrap_ci
from stemprover.stages.ablations import (
    FACTORS,
    TABLE_COLUMNS,
    AblationConfig,
    clustered_bootstrap,
    clustered_paired_test,
    grid,
    items_table,
    reference_gain,
    row_budget,
    rows_json,
    run_grid,
    with_paired,
)


def test_grid_has_one_row_per_claim_each_changing_one_thing():
    rows = grid(AblationConfig(steps=[1, 2, 4]))
    names = [r.name for r in rows]
    assert names == [
        "reference", "formulation=sdedit", "formulation=regression", "finetuning=full",
        "finetuning=scratch", "control=concat", "representation=magnitude", "phase_losses=off",
        "adapters=router", "projection=none", "projection=before", "projection=after",
        "steps=2", "steps=4",
    ]
    reference = rows[0]
    assert dict(reference.infer) == {"steps": 1, "adapters": "general", "projection": "none"}
    assert {r.factor for r in rows[1:]} == set(FACTORS)
    for row in rows[1:]:
        changed = [part for part in ("model", "train", "infer")
                   if dict(getattr(row, part)) != dict(getattr(reference, part))]
        if row.name == "projection=none":  # the reference itself, on the track-level items
            assert changed == [] and row.items == "tracks" and row.versus == ""
        elif row.factor == "formulation":  # and each samples at its own default steps
            assert changed[1:] == ["infer"] and dict(row.infer)["steps"] is None
        else:
            assert len(changed) == 1, row.name
    by_name = {r.name: r for r in rows}
    assert by_name["projection=before"].versus == "projection=none"
    assert by_name["projection=after"].items == "tracks"
    assert by_name["adapters=router"].train_key == reference.train_key  # inference only
    assert by_name["steps=4"].train_key == reference.train_key
    assert [r.name for r in rows if r.own_base] == ["formulation=sdedit", "representation=magnitude"]
    assert '"versus": "projection=none"' in rows_json(rows)


def test_grid_subset_and_unknown_factor():
    rows = grid(AblationConfig(factors=["control", "steps"], steps=[1]))
    assert [r.name for r in rows] == ["reference", "control=concat"]
    with pytest.raises(StemproverError, match="unknown ablation factor"):
        grid(AblationConfig(factors=["colour"]))


def test_row_budget_splits_minutes_and_steps_in_the_order_of_04():
    budget = row_budget(AblationConfig(row_minutes=14.0, row_steps=300, adapter_share=0.1))
    assert budget["general_steps"] + 3 * budget["adapter_steps"] == 300
    assert budget["adapter_steps"] == 10
    assert budget["general_minutes"] + 3 * budget["adapter_minutes"] == pytest.approx(14.0)
    assert budget["general_minutes"] == pytest.approx(12.6)
    assert row_budget(AblationConfig(row_minutes=0.0))["general_minutes"] == 0.0  # no time cap
    with pytest.raises(StemproverError, match="adapter_share"):
        row_budget(AblationConfig(adapter_share=1.0))


def test_bootstrap_over_tracks_keeps_the_items_of_one_track_together():
    # two tracks, five identical items each: only two independent values
    values = [0.0] * 5 + [10.0] * 5
    tracks = ["a"] * 5 + ["b"] * 5
    mean, low, high, n = clustered_bootstrap(values, tracks, n_resamples=2000)
    assert (mean, n) == (5.0, 10)
    assert low == 0.0 and high == 10.0  # resamples of two tracks: means 0, 5 or 10
    _, naive_low, naive_high, _ = bootstrap_ci(values, n_resamples=2000)
    assert naive_low > 1.0 and naive_high < 9.0  # items taken as independent: too narrow
    # one track gives a mean but no interval
    mean, low, high, n = clustered_bootstrap([1.0, 2.0, 3.0], ["a"] * 3)
    assert mean == 2.0 and np.isnan(low) and np.isnan(high) and n == 3
    with pytest.raises(StemproverError, match="cluster labels"):
        clustered_bootstrap([1.0, 2.0], ["a"])


def test_paired_test_over_tracks():
    tracks = [t for t in "abcdef" for _ in range(4)]
    base = np.linspace(-10, 10, 24)
    shifted = clustered_paired_test(base + 0.5, base, tracks, n_resamples=500)
    assert shifted["mean_diff"] == pytest.approx(0.5)
    assert shifted["ci_low"] == pytest.approx(0.5) and shifted["ci_high"] == pytest.approx(0.5)
    assert shifted["n_clusters"] == 6 and shifted["p_value"] < 0.05
    # each track's items cancel: a zero difference, whatever the items do
    noise = np.tile([0.3, -0.3, 0.1, -0.1], 6)
    cancel = clustered_paired_test(base + noise, base, tracks, n_resamples=500)
    assert cancel["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert cancel["ci_low"] == pytest.approx(0.0, abs=1e-12) and cancel["p_value"] == 1.0


def _scores(values, tracks):
    return {"si_sdr": float(np.mean(values)), "si_sdr_ci_low": -1.0, "si_sdr_ci_high": 1.0,
            "phase_dev": 0.1, "lsd": 2.0, "n": len(values), "si_sdr_items": list(values),
            "tracks": list(tracks)}


def test_run_grid_pairs_each_row_with_its_versus_row_and_says_which_are_resolved():
    rows = grid(AblationConfig(factors=["control", "adapters", "projection"]))
    pair_tracks = [t for t in "abcd" for _ in range(3)]
    spread = np.linspace(-5, 5, 12)
    shift = {"reference": 0.0, "control=concat": -1.0, "adapters=router": 0.0,
             "projection=none": 0.0, "projection=before": 2.0, "projection=after": 0.0}
    wobble = np.tile([0.2, -0.1, -0.1], 4) * np.repeat([1, -1, 1, -1], 3)
    trained = []

    def train(row):
        trained.append(row.name)
        return row.name

    def evaluate(model, row):
        if row.items == "tracks":  # 2 tracks x 4 stems
            values = np.linspace(0, 3, 8) + shift[row.name] * (row.name != "projection=none")
            return _scores(values, [t for t in "xy" for _ in range(4)])
        noise = wobble if row.name == "adapters=router" else 0.0
        return _scores(spread + shift[row.name] + noise, pair_tracks)

    items = {"identity": {"si_sdr": list(spread - 1.5), "track": pair_tracks}}
    seen = []
    table = run_grid(rows, train, evaluate, progress=False, items=items,
                     on_row=lambda t: seen.append(len(t)),
                     trained={rows[0].train_key: {"train_seconds": 60.0, "train_steps": 30}})
    assert seen == list(range(1, len(rows) + 1))
    assert trained == ["reference", "control=concat"]  # every other row reuses the reference
    assert list(table.columns) == list(TABLE_COLUMNS)
    by = table.set_index("name")
    assert by.loc["reference", "train_steps"] == 30 and by.loc["reference", "train_seconds"] == 60
    assert by.loc["control=concat", "delta_si_sdr"] == pytest.approx(-1.0)
    assert by.loc["control=concat", "resolved"] and by.loc["control=concat", "direction"] == "lower"
    assert by.loc["adapters=router", "delta_si_sdr"] == pytest.approx(0.0, abs=1e-12)
    assert not by.loc["adapters=router", "resolved"]
    # the projection rows against the reference model on the same tracks, not the reference
    assert by.loc["projection=before", "versus"] == "projection=none"
    assert by.loc["projection=before", "delta_si_sdr"] == pytest.approx(2.0)
    assert by.loc["projection=before", "direction"] == "higher"
    assert by.loc["projection=before", "n_tracks"] == 2
    assert by.loc["projection=after", "direction"] == "equal"
    assert by.loc["reference", ["delta_si_sdr", "delta_ci_low"]].isna().all()
    long = items_table(items)
    assert list(long.columns) == ["name", "item", "si_sdr", "track"]
    assert len(long[long["name"] == "projection=none"]) == 8


def test_paired_scores_must_cover_the_same_items():
    rows = grid(AblationConfig(factors=["control"]))
    table = run_grid(rows, lambda row: None, lambda model, row: {
        "si_sdr": 0.0, "si_sdr_ci_low": 0.0, "si_sdr_ci_high": 0.0, "phase_dev": 0.0,
        "lsd": 0.0, "n": 1}, progress=False)
    assert table["delta_ci_low"].isna().all() and not table["resolved"].any()
    with pytest.raises(StemproverError, match="2 item scores, but reference has 3"):
        with_paired(table, {"reference": {"si_sdr": [1.0, 2.0, 3.0], "track": ["a"] * 3},
                            "control=concat": {"si_sdr": [1.0, 2.0], "track": ["a"] * 2}})


def test_run_grid_rejects_a_row_without_scores():
    rows = grid(AblationConfig(factors=[]))
    with pytest.raises(StemproverError, match="no score"):
        run_grid(rows, lambda row: None, lambda model, row: {"si_sdr": 0.0}, progress=False)


def test_reference_gain_says_whether_the_target_is_reached():
    tracks = [t for t in "abcd" for _ in range(2)]
    identity = list(np.linspace(-3, 3, 8))
    cfg = AblationConfig(n_bootstrap=200)
    for gain, reached in ((1.2, True), (0.8, False)):
        items = {"identity": {"si_sdr": identity, "track": tracks},
                 "reference": {"si_sdr": [v + gain for v in identity], "track": tracks}}
        summary = reference_gain(items, cfg)
        assert summary["reference_gain_db"] == pytest.approx(gain)
        assert summary["reached_target"] is reached and summary["n_tracks"] == 4


def _manifest(tmp_path, separators=("hpss", "openunmix", "openunmix@50")):
    root = tmp_path / "02"
    pairs = []
    for separator in separators:
        for split, track in (("train", "t0"), ("valid", "v0"), ("valid", "v1")):
            rel = f"pairs/{split}/{track}/vocals-{separator}.npz"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            wave = np.full(16, 0.1 if separator == "hpss" else 0.2, dtype=np.float32)
            np.savez(root / rel, separated=wave, clean=wave * 2, mixture=wave * 3)
            pairs.append({"file": rel, "track": track, "stem": "vocals", "separator": separator,
                          "artifact": "mixed", "severity": 1.0, "offset": 0, "channel": 0,
                          "split": split})
    path = root / "manifest.json"
    path.write_text(json.dumps({"sample_rate": 16000, "segment_samples": 16, "pairs": pairs}))
    return path


def test_training_pairs_leave_out_the_held_out_separators(tmp_path):
    from stemprover.data.pairs import PairDataset
    from stemprover.stages.ablations.training import training_manifest

    source = _manifest(tmp_path)
    written = training_manifest(source, ["openunmix"], tmp_path / "work" / "pairs.json")
    train = PairDataset(written, "train")
    assert [e["separator"] for e in train.entries] == ["hpss"]  # snapshots held out too
    assert float(train[0]["separated"][0]) == pytest.approx(0.1)  # files found from elsewhere
    assert json.loads(source.read_text())["pairs"][0]["file"].startswith("pairs/")  # untouched
    with pytest.raises(StemproverError, match="demucs not among the pairs' separators: hpss, "
                                              "openunmix, openunmix@50"):
        training_manifest(source, ["demucs"], tmp_path / "x.json")
    with pytest.raises(StemproverError, match="no training pairs are left"):
        training_manifest(source, ["hpss", "openunmix"], tmp_path / "y.json")


def test_scoring_items_are_the_held_out_separators_valid_pairs(tmp_path):
    from stemprover.stages.ablations.scoring import heldout_pairs

    cfg = AblationConfig(manifest=str(_manifest(tmp_path)), heldout_separators=["openunmix"])
    items = heldout_pairs(cfg)
    assert [item.track for item in items] == ["v0", "v1", "v0", "v1"]
    assert all(float(item.separated[0]) == pytest.approx(0.2) for item in items)
    cfg.heldout_separators = ["repet"]
    with pytest.raises(StemproverError, match="no valid pairs of the held-out separator"):
        heldout_pairs(cfg)


def test_rows_train_with_the_profile_loss():
    from stemprover.stages.ablations.training import loss_config

    profile = {"diffusion": 0.0, "snr": 1.0, "phase_cosine": 0.1}
    reference = loss_config(True, profile)
    assert reference.snr == 1.0 and reference.phase_cosine == 0.1 and reference.diffusion == 0.0
    off = loss_config(False, profile)
    assert off.snr == 1.0 and off.phase_cosine == 0.0 and off.complex == 0.0
    assert loss_config(True, profile, "sdedit").diffusion == 1.0  # its denoising objective


def test_rows_start_from_03s_base_unless_they_cannot(tmp_path):
    from stemprover.stages.ablations import training

    base = tmp_path / "03" / "weights" / "base"
    base.mkdir(parents=True)
    cfg = AblationConfig(base=str(base))
    by_name = {row.name: row for row in grid(cfg)}
    for name in ("reference", "control=concat", "phase_losses=off", "finetuning=full",
                 "formulation=regression"):
        assert training.start_base(by_name[name], cfg, "smoke", tmp_path, tmp_path) == base


def test_models_own_bases_first_each_with_its_seconds_and_steps(monkeypatch, tmp_path):
    from stemprover.stages.ablations import training

    rows = grid(AblationConfig(factors=["formulation", "control", "representation", "steps"],
                               steps=[2]))
    calls = []

    def task(row, cfg, profile, work_dir, manifest):
        calls.append(row.name)
        return str(tmp_path / row.name), {"train_seconds": 1.0, "train_steps": len(calls)}

    monkeypatch.setattr(training, "_row_task", task)
    folders, trained = training.train_models(rows, AblationConfig(), "smoke", tmp_path, tmp_path)
    assert calls == ["formulation=sdedit", "representation=magnitude", "reference",
                     "formulation=regression", "control=concat"]
    by_name = {row.name: row for row in rows}
    assert folders[by_name["steps=2"].train_key] == tmp_path / "reference"
    assert trained[by_name["control=concat"].train_key]["train_steps"] == 5


def test_steps_reached_adds_the_last_step_of_each_phase(tmp_path):
    from stemprover.stages.ablations.training import steps_reached
    from stemprover.train.loop import CsvLog

    log = CsvLog(tmp_path / "train_log.csv")
    for phase, steps in (("general", 5), ("hf_loss", 2)):
        for step in range(1, steps + 1):
            log.append({"phase": phase, "step": step, "seconds": float(step)})
    assert steps_reached(tmp_path / "train_log.csv") == 7
    assert steps_reached(tmp_path / "missing.csv") == 0

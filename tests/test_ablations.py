"""The ablation grid: its rows, model sharing between rows and the table it makes."""

import pytest

from stemprover.errors import StemproverError
from stemprover.stages.ablations import (
    FACTORS,
    TABLE_COLUMNS,
    AblationConfig,
    grid,
    rows_json,
    run_grid,
)


def test_grid_changes_one_factor_at_a_time():
    cfg = AblationConfig(
        factors=list(FACTORS), lora_ranks=[2, 8], steps=[1, 4, 10], strengths=[0.5, 1.0]
    )
    rows = grid(cfg, reference_rank=8)
    reference = rows[0]
    assert reference.name == "reference"
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    assert {r.factor for r in rows[1:]} == set(FACTORS)
    # the reference values are not repeated as rows of their own
    assert "lora_rank=8" not in names and "steps=4" not in names and "strength=1.0" not in names
    assert "representation=complex" not in names
    assert {"representation=magnitude", "representation=mag_if", "phase_losses=off"} <= set(names)
    sdedit = next(r for r in rows if r.name == "formulation=sdedit")
    # SDEdit must start partway along its noise diffusion, the bridge at the stem itself
    assert dict(sdedit.infer)["strength"] == 0.5 and dict(reference.infer)["strength"] == 1.0
    for row in rows[1:]:
        if row is sdedit:
            continue
        changed = [
            part
            for part in ("model", "train", "infer")
            if dict(getattr(row, part)) != dict(getattr(reference, part))
        ]
        assert len(changed) == 1, row.name
        before, after = dict(getattr(reference, changed[0])), dict(getattr(row, changed[0]))
        assert len(set(after.items()) ^ set(before.items())) in (1, 2), row.name


def test_grid_subset_and_unknown_factor():
    rows = grid(AblationConfig(factors=["control"]))
    assert [r.name for r in rows] == ["reference", "control=controlnet", "control=concat"]
    assert dict(rows[2].model) == {"control": "concat"}
    with pytest.raises(StemproverError, match="unknown ablation factor"):
        grid(AblationConfig(factors=["colour"]))


def test_run_grid_trains_each_distinct_model_once():
    cfg = AblationConfig(factors=["control", "steps", "overlap"], steps=[1, 10], overlaps=[0.0])
    rows = grid(cfg)
    trained = []

    def train(row):
        trained.append(row.name)
        return dict(row.model).get("control", "controlnet")

    def evaluate(model, row):
        steps = dict(row.infer)["steps"]
        bonus = 1.0 if model == "controlnet" else 0.0
        return {
            "si_sdr": steps + bonus,
            "si_sdr_ci_low": steps + bonus - 0.5,
            "si_sdr_ci_high": steps + bonus + 0.5,
            "phase_dev": 0.1,
            "lsd": 2.0,
            "n": 3,
        }

    partial = []
    table = run_grid(rows, train, evaluate, progress=False, on_row=lambda t: partial.append(len(t)))
    assert partial == list(range(1, len(rows) + 1))
    # steps and overlap rows reuse the reference model: only two trainings
    assert trained == ["reference", "control=controlnet", "control=concat"]
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["name"]) == [r.name for r in rows]
    by_name = table.set_index("name")
    assert by_name.loc["control=concat", "si_sdr"] == 4.0
    assert by_name.loc["steps=10", "si_sdr"] == 11.0
    assert by_name.loc["overlap=0.0", "factor"] == "overlap"
    assert (table["train_seconds"] >= 0).all()
    assert '"name": "control=concat"' in rows_json(rows)


def test_run_grid_compares_each_row_with_the_reference_item_by_item():
    from stemprover.stages.ablations import items_table

    rows = grid(AblationConfig(factors=["control"]))  # reference, controlnet, concat
    shift = {"reference": 0.0, "control=controlnet": 0.5, "control=concat": 0.0}
    spread = [0.0, 10.0, -10.0, 5.0, -5.0, 2.0]  # items differ far more than the rows do

    def evaluate(model, row):
        noise = [0.1, -0.1, 0.2, -0.2, 0.0, 0.05] if row.name == "control=concat" else [0] * 6
        values = [s + shift[row.name] + e for s, e in zip(spread, noise)]
        return {"si_sdr": sum(values) / 6, "si_sdr_ci_low": -8.0, "si_sdr_ci_high": 8.0,
                "phase_dev": 0.1, "lsd": 2.0, "n": 6, "si_sdr_items": values}

    items = {"identity": [s - 0.25 for s in spread]}
    table = run_grid(rows, lambda row: None, evaluate, progress=False, items=items)
    assert list(table.columns) == list(TABLE_COLUMNS)
    by_name = table.set_index("name")
    # a constant shift of +0.5 on every item: the paired interval is the shift itself
    assert by_name.loc["control=controlnet", "delta_si_sdr"] == pytest.approx(0.5)
    assert by_name.loc["control=controlnet", "delta_ci_low"] == pytest.approx(0.5)
    assert by_name.loc["control=controlnet", "delta_ci_high"] == pytest.approx(0.5)
    # noise around zero: an interval that contains zero, far narrower than the rows' own
    low, high = by_name.loc["control=concat", ["delta_ci_low", "delta_ci_high"]]
    assert low < 0 < high and high - low < 0.5
    assert 0.05 < by_name.loc["control=concat", "delta_p_value"] <= 1.0
    assert by_name.loc["reference", ["delta_si_sdr", "delta_ci_low"]].isna().all()
    assert set(items) == {"identity", "reference", "control=controlnet", "control=concat"}
    long = items_table(items)
    assert len(long) == 4 * 6 and list(long.columns) == ["name", "item", "si_sdr"]


def test_paired_scores_must_cover_the_same_items():
    from stemprover.stages.ablations import with_paired

    rows = grid(AblationConfig(factors=["control"]))
    table = run_grid(rows, lambda row: None, lambda model, row: {
        "si_sdr": 0.0, "si_sdr_ci_low": 0.0, "si_sdr_ci_high": 0.0, "phase_dev": 0.0,
        "lsd": 0.0, "n": 1}, progress=False)
    assert table["delta_ci_low"].isna().all()  # no per-item scores: no paired columns
    with pytest.raises(StemproverError, match="2 item scores, but the reference has 3"):
        with_paired(table, {"reference": [1.0, 2.0, 3.0], "control=concat": [1.0, 2.0]},
                    "reference")


def test_run_grid_rejects_a_row_without_scores():
    rows = grid(AblationConfig(factors=[]))
    with pytest.raises(StemproverError, match="no score"):
        run_grid(rows, lambda row: None, lambda model, row: {"si_sdr": 0.0}, progress=False)


def test_rows_train_with_the_profile_loss():
    from stemprover.stages.ablations import loss_config

    profile = {"diffusion": 0.0, "snr": 1.0, "phase_cosine": 0.1}
    reference = loss_config(True, profile)
    assert reference.snr == 1.0 and reference.phase_cosine == 0.1 and reference.diffusion == 0.0
    off = loss_config(False, profile)
    assert off.snr == 1.0 and off.phase_cosine == 0.0 and off.complex == 0.0
    assert loss_config(True, profile, "sdedit").diffusion == 1.0  # its denoising objective


def test_models_are_trained_bases_first_and_each_costs_its_own_and_its_bases_seconds(
        monkeypatch, tmp_path):
    from stemprover.stages import ablations

    cfg = AblationConfig(factors=["control", "mode", "representation", "steps"], steps=[1])
    rows = grid(cfg)
    calls = []

    def pretrain(row, cfg, profile, work_dir):
        calls.append(("base", row.name))
        return 10.0 if dict(row.model).get("mode") == "latent" else 1.0

    def train(row, cfg, profile, work_dir):
        calls.append(("row", row.name))
        return str(tmp_path / row.name), 2.0

    monkeypatch.setattr(ablations, "_pretrain_task", pretrain)
    monkeypatch.setattr(ablations, "_row_task", train)
    folders, seconds = ablations.train_models(rows, cfg, "smoke", tmp_path)
    kinds = [kind for kind, _ in calls]
    assert kinds == sorted(kinds)  # every base before any row ("base" < "row")
    # the latent row (an autoencoder first) starts first; control rows share the reference base
    assert calls[0] == ("base", "mode=latent")
    assert [name for kind, name in calls if kind == "base"] == [
        "mode=latent", "reference", "representation=magnitude", "representation=mag_if"]
    trained = [name for kind, name in calls if kind == "row"]
    assert trained[0] == "mode=latent" and "steps=1" not in trained  # inference rows reuse
    by_name = {row.name: row for row in rows}
    assert seconds[by_name["mode=latent"].train_key] == 12.0
    assert seconds[by_name["control=concat"].train_key] == 3.0  # its shared base counted too
    assert folders[by_name["steps=1"].train_key] == tmp_path / "reference"

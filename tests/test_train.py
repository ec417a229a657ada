"""Training loops: exact resume, frozen base under LoRA training, regression and validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from train_fakes import LOSS, TINY, FakePairs, PairsThatFailInACopy, lora_cfg, tiny_base

from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
from stemprover.metrics.signal import si_sdr
from stemprover.model import StemProverModel, load_model, model_config
from stemprover.model.serialize import base_state_dict
from stemprover.stages.base_pretraining import pretrain_base
from stemprover.stages.lora_training import train_control_lora, train_regression, train_stage
from stemprover.train.config import PretrainConfig
from stemprover.train.validate import evaluate_on_pairs, gain_on_pairs, summarize


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("base") / "base")


def test_pretraining_resumed_equals_uninterrupted(tmp_path):
    cfg = PretrainConfig(
        steps=3,
        batch_size=2,
        grad_accum=2,
        checkpoint_every=0,
        warmup_steps=1,
        loss=LOSS,
        model=dict(TINY),
    )
    data = FakePairs(6)
    full = pretrain_base(
        cfg,
        "smoke",
        train=data,
        valid=FakePairs(2, seed=1),
        out_dir=tmp_path / "full",
        progress=False,
    )
    assert (
        pretrain_base(
            cfg, "smoke", train=data, out_dir=tmp_path / "cut", stop_after=2, progress=False
        )
        is not None
    )
    assert not (tmp_path / "cut" / "weights").exists()
    resumed = pretrain_base(cfg, "smoke", train=data, out_dir=tmp_path / "cut", progress=False)
    for key, value in full.unet.state_dict().items():
        assert torch.equal(value, resumed.unet.state_dict()[key]), key
    log = pd.read_csv(tmp_path / "cut" / "train_log.csv")
    assert list(log["step"]) == [1, 2, 3]
    full_log = pd.read_csv(tmp_path / "full" / "train_log.csv")
    np.testing.assert_array_equal(log["loss"], full_log["loss"])
    assert np.isfinite(log["loss"]).all()
    loaded = load_model(tmp_path / "full" / "weights" / "base")
    assert not loaded.has_control and loaded.config.image_scale == full.config.image_scale
    # a checkpoint written with other settings is not resumed
    other = PretrainConfig(**{**cfg.__dict__, "learning_rate": 0.01})
    changed = pretrain_base(other, "smoke", train=data, out_dir=tmp_path / "full", progress=False)
    assert len(pd.read_csv(tmp_path / "full" / "train_log.csv")) == 3
    assert not torch.equal(changed.unet.conv_in.weight, full.unet.conv_in.weight)


@pytest.fixture(scope="module")
def lora_run(base_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    model = train_control_lora(
        lora_cfg(), "smoke", train=FakePairs(8), base=base_dir, out_dir=out, progress=False
    )
    return model, out


def test_lora_training_leaves_base_bit_identical(base_dir, lora_run):
    model, out = lora_run
    before = base_state_dict(load_model(base_dir).unet)
    after = base_state_dict(model.unet)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    # while the adapters and the control branch did learn
    lora_b = [p for k, p in model.unet.named_parameters() if "lora_B." in k]
    assert any(p.abs().sum() > 0 for p in lora_b)
    zero = model.condition_embedding.zero_magnitude.weight
    assert zero.abs().sum() > 0
    hf = {
        k.replace(".hf_loss", ""): p
        for k, p in model.unet.named_parameters()
        if "lora_B.hf_loss" in k
    }
    general = {
        k.replace(".general", ""): p
        for k, p in model.unet.named_parameters()
        if "lora_B.general" in k
    }
    assert any(not torch.equal(hf[k], general[k]) for k in hf)
    report = pd.read_csv(out / "adapters.csv").set_index("adapter")
    assert set(ADAPTERS) <= set(report.index)
    assert (report.loc[list(ADAPTERS), "share_of_base_percent"] < 10).all()
    log = pd.read_csv(out / "train_log.csv")
    assert list(log["phase"]) == ["general", "general", "hf_loss", "musical_noise", "bleed"]


def test_lora_training_resumed_equals_uninterrupted(base_dir, lora_run, tmp_path):
    model, _ = lora_run
    cfg = lora_cfg()
    kwargs = dict(train=FakePairs(8), base=base_dir, out_dir=tmp_path, progress=False)
    assert train_control_lora(cfg, "smoke", stop_after=3, **kwargs) is None
    resumed = train_control_lora(cfg, "smoke", **kwargs)
    expected = dict(model.named_parameters())
    for key, value in resumed.named_parameters():
        assert torch.equal(value, expected[key]), key


def test_regression_and_validation(base_dir, lora_run, tmp_path):
    model, _ = lora_run
    pairs = FakePairs(8)
    regression = train_regression(
        lora_cfg(), "smoke", train=pairs, base=base_dir, out_dir=tmp_path, progress=False
    )
    assert regression.config.image_scale == 4.0
    sizes = json.loads((tmp_path / "run.json").read_text())["model_sizes"]
    assert sizes["regression"]["parameters"] == sum(p.numel() for p in regression.parameters())
    assert abs(sizes["regression"]["parameters"] / sizes["stemprover"]["parameters"] - 1) <= 0.05
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert len(log) == lora_cfg().total_steps and set(log["phase"]) == {"regression"}
    table = evaluate_on_pairs(
        {"regression": regression, "stemprover": model},
        pairs,
        [0, 1, 2],
        sample_rate=16000,
        stft_cfg=model.stft,
        steps=2,
        progress=False,
    )
    assert len(table) == 9 and set(table["system"]) == {"input", "regression", "stemprover"}
    first = table[(table["system"] == "input") & (table["item"] == 0)].iloc[0]
    item = pairs[0]
    assert first["si_sdr"] == pytest.approx(
        si_sdr(item["separated"].numpy(), item["clean"].numpy())
    )
    summary = summarize(table)
    assert summary["stemprover"]["n"] == 3
    assert np.isfinite(summary["stemprover"]["si_sdr_gain"])


def test_regression_beside_the_branch_in_a_second_process_equals_one_after_the_other(
    base_dir, lora_run, tmp_path
):
    model, out = lora_run
    cfg = lora_cfg(parallel_regression=True, torch_threads=1)
    data = dict(train=FakePairs(8), base=base_dir)
    both, regression = train_stage(cfg, "smoke", progress=False, out_dir=tmp_path / "both", **data)
    alone = train_regression(lora_cfg(torch_threads=1), "smoke", progress=False,
                             out_dir=tmp_path / "alone", **data)
    for key, value in alone.state_dict().items():
        assert torch.equal(value, regression.state_dict()[key]), key
    expected = dict(model.named_parameters())
    for key, value in both.named_parameters():
        assert torch.equal(value, expected[key]), key
    # both processes wrote the shared log and run record; neither lost the other's rows
    log = pd.read_csv(tmp_path / "both" / "train_log.csv")
    assert sorted(log["phase"]) == sorted(
        ["general"] * 2 + ["hf_loss", "musical_noise", "bleed"] + ["regression"] * cfg.total_steps)
    record = json.loads((tmp_path / "both" / "run.json").read_text())
    assert {"phases", "regression"} <= set(record)
    assert not list((tmp_path / "both").glob("*.tmp"))


def test_a_failed_regression_process_is_an_error_after_the_branch_is_trained(base_dir, tmp_path):
    cfg = lora_cfg(parallel_regression=True, torch_threads=1)
    with pytest.raises(StemproverError, match="regression baseline's process failed"):
        train_stage(cfg, "smoke", progress=False, out_dir=tmp_path,
                    train=PairsThatFailInACopy(8), base=base_dir)
    assert (tmp_path / "weights" / "stemprover" / "stemprover.json").exists()
    assert not (tmp_path / "weights" / "regression").exists()


def test_budget_gain_is_the_mean_over_items_and_per_artifact_type(lora_run):
    model, _ = lora_run
    pairs = FakePairs(8)
    gains = gain_on_pairs(model, pairs, list(range(8)), sample_rate=16000, stft_cfg=model.stft,
                          steps=1)
    table = evaluate_on_pairs({"model": model}, pairs, list(range(8)), sample_rate=16000,
                              stft_cfg=model.stft, steps=1, strength=1.0, progress=False,
                              metrics=("si_sdr",))
    change = (table[table["system"] == "model"]["si_sdr"].to_numpy()
              - table[table["system"] == "input"]["si_sdr"].to_numpy())
    assert gains["gain"] == pytest.approx(change.mean())
    assert set(gains) == {"gain", *(f"gain_{name}" for name in ADAPTERS)}
    bleed = [i for i in range(8) if ADAPTERS[pairs[i]["adapter"]] == "bleed"]
    assert gains["gain_bleed"] == pytest.approx(change[bleed].mean())


def test_release_copies_weights_and_writes_card_from_results(tmp_path, monkeypatch, lora_run):
    import json
    import shutil

    from stemprover.errors import StemproverError
    from stemprover.train.release import release

    model, out = lora_run
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    stage = tmp_path / "results" / "smoke" / "04_lora_training"
    shutil.copytree(out, stage)
    summary = {"input": {"si_sdr": 7.125, "phase_dev": 0.5}, "stemprover": {
        "si_sdr": 8.25, "phase_dev": 0.4}, "settings": {"n_pairs": 3}}
    (stage / "valid_summary.json").write_text(json.dumps(summary))
    dest = release("smoke", tmp_path / "models" / "default", note="test note")
    card = (dest / "MODEL_CARD.md").read_text()
    assert "| stemprover | 8.25 | 0.400 |" in card and "test note" in card
    assert load_model(dest).adapter_names == list(ADAPTERS)
    (stage / "weights" / "stemprover" / "extra.pt").write_bytes(b"0")
    with pytest.raises(StemproverError, match="non-safetensors"):
        release("smoke", tmp_path / "other")


def test_level_change_is_reported_in_db():
    import numpy as np

    from stemprover.train.validate import level_change_db

    x = np.sin(np.linspace(0, 50, 4000)).astype(np.float32)
    assert level_change_db(2 * x, x) == pytest.approx(6.0206, abs=1e-3)
    assert level_change_db(x, x) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(level_change_db(x, 0 * x))


def _toy_phase(tmp_path, keep_best: bool, budget=None):
    """One weight trained from 0 toward 1; the monitor's gain peaks where it passes 0.5."""
    from stemprover.train.loop import CsvLog, Monitor, PhaseSpec, make_accelerator, run_phase

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    model = Toy()
    data = [{"x": torch.zeros(1)} for _ in range(4)]
    step_fn = lambda batch, gen: ((model.w - 1.0).pow(2).sum(), {})  # noqa: E731
    seen = {}

    def evaluate():
        seen[len(seen)] = float(model.w.detach())
        return {"gain": -abs(float(model.w.detach()) - 0.5)}

    monitor = Monitor(evaluate, every=1, log=CsvLog(tmp_path / "curve.csv"), keep_best=keep_best)
    spec = PhaseSpec("toy", 12, 2, 1, 0.2, 0, 0, checkpoint_every=0, fingerprint="toy")
    done = run_phase(make_accelerator("no"), model, {"w": model.w}, data, step_fn, spec,
                     tmp_path / "ckpt", CsvLog(tmp_path / "log.csv"), budget=budget,
                     progress=False, monitor=monitor)
    return done, float(model.w), monitor, seen


def test_phase_keeps_the_weights_of_its_best_evaluation(tmp_path):
    done, last, monitor, seen = _toy_phase(tmp_path / "plain", keep_best=False)
    assert done and last > 0.9  # trained past the peak
    done, kept, monitor, seen = _toy_phase(tmp_path / "best", keep_best=True)
    best = monitor.best("toy")
    assert done and 0 < int(best["step"]) < 12
    assert kept == pytest.approx(seen[int(best["step"])])  # the weight evaluated at the peak
    assert abs(kept - 0.5) == min(abs(w - 0.5) for w in seen.values())
    # stopped on a budget and resumed, the phase keeps the same weight
    done, _, _, _ = _toy_phase(tmp_path / "resumed", keep_best=True, budget=[5])
    assert not done
    done, resumed, _, _ = _toy_phase(tmp_path / "resumed", keep_best=True)
    assert done and resumed == pytest.approx(kept)


@pytest.mark.parametrize("tokens", [False, True])
def test_pretraining_with_artifact_tokens_gives_the_base_each_types_prompt(tmp_path, tokens):
    import json

    cfg = PretrainConfig(steps=3, batch_size=4, checkpoint_every=0, warmup_steps=1, loss=LOSS,
                         model=dict(TINY), artifact_tokens=tokens)
    torch.manual_seed(0)
    start = StemProverModel(model_config("smoke", **TINY), with_control=False)
    model = pretrain_base(cfg, "smoke", train=FakePairs(8), out_dir=tmp_path / "a",
                          progress=False)
    table, initial = model.artifact_embedding.table.detach(), start.artifact_embedding.table
    moved = [not torch.equal(table[row], initial[row]) for row in range(len(table))]
    # with tokens every type's row is trained and the clean row is not; without, the reverse
    assert moved == [not tokens] + [tokens] * (len(table) - 1)
    # the budget curve evaluates each pair with its own type's tokens, per type
    monitored = PretrainConfig(**{**cfg.__dict__, "eval_every": 1, "n_monitor": 4})
    pretrain_base(monitored, "smoke", train=FakePairs(8), valid=FakePairs(4, seed=1),
                  out_dir=tmp_path / "b", progress=False)
    curve = pd.read_csv(tmp_path / "b" / "budget_curve.csv")
    assert {"gain_bleed", "gain_hf_loss"} <= set(curve.columns) and len(curve) == 4
    kept = json.loads((tmp_path / "b" / "validation.json").read_text())["kept_step"]
    assert kept == int(curve.loc[curve["gain"].idxmax(), "step"])


def test_general_phase_conditions_a_share_of_pairs_on_general_whatever_their_type():
    from stemprover.stages.lora_training import _phase_adapter

    general = ADAPTERS.index("general")
    labels = torch.tensor([ADAPTERS.index("bleed")] * 2000)
    batch = {"adapter": labels}
    # no share: every pair keeps its own type, and the batch is left as it was
    assert torch.equal(_phase_adapter("general", batch, torch.Generator().manual_seed(0)), labels)
    drawn = _phase_adapter("general", batch, torch.Generator().manual_seed(0), 0.5)
    assert set(drawn.tolist()) == {ADAPTERS.index("bleed"), general}
    assert 0.45 < float((drawn == general).float().mean()) < 0.55
    assert torch.equal(batch["adapter"], labels)  # the batch itself is not changed
    again = _phase_adapter("general", batch, torch.Generator().manual_seed(0), 0.5)
    assert torch.equal(drawn, again)  # the draw comes from the step's generator
    assert torch.equal(_phase_adapter("general", batch, None, 1.0), torch.full((2000,), general))
    # specialised phases train their own adapter, whatever the share
    assert _phase_adapter("bleed", batch, torch.Generator(), 0.5) == "bleed"

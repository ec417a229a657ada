"""The bridge: its endpoints, InDI's update through diffusers' scheduler, the identity at start."""

from __future__ import annotations

import pytest
import torch

from stemprover.inference.sampler import sample, sample_waves
from stemprover.model import StemProverModel, model_config
from stemprover.model.bridge import (
    bridge_point,
    bridge_scheduler,
    bridge_sigmas,
    sample_times,
    step_noise_std,
)
from stemprover.model.unet import fold_freq, unfold_freq
from stemprover.train.loop import CsvLog, Monitor

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4,
            cross_attention_dim=16, condition_channels=8, n_condition_tokens=2,
            lora_rank=2, lora_alpha=2.0)


def pictures(shape=(3, 2, 33, 12), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)


def test_bridge_ends_at_clean_and_separated_and_is_linear_between():
    clean, separated = pictures()
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert torch.equal(bridge_point(clean, separated, zeros), clean)
    assert torch.equal(bridge_point(clean, separated, ones), separated)
    half = bridge_point(clean, separated, torch.full((3,), 0.5))
    torch.testing.assert_close(half, (clean + separated) / 2)
    # the noise vanishes at both ends, whatever rho
    noise = torch.randn_like(clean)
    assert torch.equal(bridge_point(clean, separated, ones, noise, rho=0.7), separated)


def test_scheduler_step_is_indis_update():
    """x_s = (s/t) x_t + (1 - s/t) x̂0 for the velocity (x_t - x̂0) / t (Delbracio 2023)."""
    scheduler = bridge_scheduler()
    scheduler.set_timesteps(sigmas=bridge_sigmas(4))
    assert [round(float(s), 6) for s in scheduler.sigmas] == [1.0, 0.75, 0.5, 0.25, 0.0]
    x, clean = pictures()
    for index, t in enumerate(scheduler.timesteps):
        sigma, nxt = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        stepped = scheduler.step((x - clean) / sigma, t, x).prev_sample
        expected = (nxt / sigma) * x + (1 - nxt / sigma) * clean
        torch.testing.assert_close(stepped, expected)
        x = stepped
    torch.testing.assert_close(x, clean)  # the last step lands on the estimate


def test_sample_times_share_at_one():
    gen = torch.Generator().manual_seed(0)
    t = sample_times(4000, gen, one_share=0.5)
    assert 0.45 < float((t == 1).float().mean()) < 0.55
    assert float(t.min()) > 0 and float(t.max()) <= 1
    assert torch.all(sample_times(100, gen, one_share=1.0) == 1)


def test_step_noise_is_the_brownian_bridge_spread():
    assert step_noise_std(1.0, 0.5, 0.0) == 0.0
    assert step_noise_std(1.0, 0.0, 0.3) == 0.0  # the last step lands on the clean end
    assert step_noise_std(1.0, 0.5, 0.4) == pytest.approx(0.4 * 0.5)


@pytest.mark.parametrize("n_freqs", [33, 32, 257])
@pytest.mark.parametrize("fold", [1, 2, 4, 8])
def test_frequency_fold_round_trips(n_freqs, fold):
    picture = torch.randn(2, 2, n_freqs, 7)
    folded = fold_freq(picture, fold)
    assert folded.shape[1] == 2 * fold
    assert folded.shape[2] == -(-n_freqs // fold)
    assert torch.equal(unfold_freq(folded, fold, n_freqs), picture)
    # a folded row holds `fold` neighbouring bins of one channel
    if fold > 1:
        assert torch.equal(folded[0, 1, 0], picture[0, 0, 1])


@pytest.mark.parametrize("fold", [1, 4])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_untrained_model_returns_its_input_at_any_steps(fold, steps):
    torch.manual_seed(0)
    model = StemProverModel(model_config("smoke", freq_fold=fold, **TINY)).eval()
    model.add_adapters()
    separated = torch.randn(2, 4000) * 0.1
    mixture = torch.randn(2, 4000) * 0.1
    out = sample_waves(model, separated, mixture, steps=steps, adapter_weights={"general": 1.0})
    torch.testing.assert_close(out, separated, rtol=0, atol=1e-5)


class OracleClean(torch.nn.Module):
    """A stand-in network that always answers with one clean picture (in model space)."""

    def __init__(self, model, clean):
        super().__init__()
        self.model, self.clean = model, clean

        self.times: list[float] = []

    def forward(self, x, t, condition, weights):
        self.times.append(float(t[0]))
        return self.clean


def test_sampler_follows_the_network_to_its_clean_estimate():
    torch.manual_seed(0)
    model = StemProverModel(model_config("smoke", **TINY)).eval()
    separated, clean = pictures((2, 2, 33, 12))
    oracle = OracleClean(model, model.encode_image(clean))
    for steps in (1, 3):
        out = sample(model, separated, None, steps=steps, forward=oracle)
        torch.testing.assert_close(out, clean, rtol=0, atol=1e-5)
    assert oracle.times == pytest.approx([1000.0, 1000.0, 2000.0 / 3, 1000.0 / 3])
    # a lighter touch (strength < 1) takes the stem for an earlier point of the bridge
    oracle.times.clear()
    sample(model, separated, None, steps=2, strength=0.5, forward=oracle)
    assert oracle.times == [500.0, 250.0]


def test_monitor_stops_on_a_plateau_and_decides_from_its_rows(tmp_path):
    gains = iter([0.0, 1.0, 2.0, 2.01, 2.02, 1.9, 5.0])
    monitor = Monitor(lambda: next(gains), every=1, log=CsvLog(tmp_path / "curve.csv"),
                      patience=3, min_delta=0.05)
    stops = []
    for step in range(6):
        monitor.record("general", step, float(step))
        stops.append(monitor.plateaued("general"))
    assert stops == [False, False, False, False, False, True]
    assert not Monitor(lambda: 0.0, 1, monitor.log, patience=0).plateaued("general")


def test_monitor_writes_one_column_per_artifact_type(tmp_path):
    scores = iter([{"gain": 0.5, "gain_bleed": 1.5, "gain_hf_loss": -0.5},
                   {"gain": 0.1, "gain_bleed": 0.2, "gain_hf_loss": 0.0}])
    monitor = Monitor(lambda: next(scores), every=1, log=CsvLog(tmp_path / "curve.csv"),
                      patience=1, min_delta=0.05)
    monitor.record("general", 0, 0.0)
    monitor.record("general", 1, 60.0)
    rows = monitor.rows("general")
    assert [float(r["gain_bleed"]) for r in rows] == [1.5, 0.2]
    assert monitor.plateaued("general")  # the plateau reads the overall gain

"""Sampler: schedulers recover a known clean picture from an oracle denoiser."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from stemprover.errors import StemproverError
from stemprover.inference.sampler import make_scheduler, sample, timesteps_for

SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
}


def target_of(separated: torch.Tensor) -> torch.Tensor:
    """The 'clean' picture the oracle knows for a separated one."""
    return 0.5 * separated + 0.1


class OracleModel(torch.nn.Module):
    """Predicts the exact noise (or velocity) that leads to ``target_of(separated)``."""

    def __init__(self, prediction_type: str = "epsilon"):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.config = SimpleNamespace(prediction_type=prediction_type)
        self.scheduler_config = dict(SCHEDULER_CONFIG)
        from diffusers import DDPMScheduler

        self.alphas_cumprod = DDPMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod
        self.encode_calls = 0
        self.seen_adapters = []

    def encode_condition(self, separated_img, mixture_img=None):
        self.encode_calls += 1
        return {"target": target_of(separated_img)}

    def forward(self, noisy, timesteps, condition, adapter_weights=None):
        self.seen_adapters.append(adapter_weights)
        alpha = self.alphas_cumprod[timesteps.long()].to(noisy.dtype).view(-1, 1, 1, 1)
        x0 = condition["target"]
        eps = (noisy - alpha.sqrt() * x0) / (1 - alpha).sqrt()
        if self.config.prediction_type == "v_prediction":
            return alpha.sqrt() * eps - (1 - alpha).sqrt() * x0
        return eps * self.scale


class HalvingRegression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, separated_img, mixture_img=None):
        return separated_img * self.weight


@pytest.fixture
def pictures():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(3, 2, 9, 7, generator=generator)


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps,strength", [(1, 1.0), (4, 0.5), (7, 0.9), (50, 1.0)])
def test_oracle_denoiser_recovers_target(pictures, scheduler, prediction_type, steps, strength):
    model = OracleModel(prediction_type)
    clean = sample(
        model,
        pictures,
        steps=steps,
        strength=strength,
        scheduler=scheduler,
        generator=torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(clean, target_of(pictures), atol=2e-4, rtol=1e-4)
    assert len(model.seen_adapters) == steps


def test_cache_encodes_condition_once(pictures):
    cached, uncached = OracleModel(), OracleModel()
    a = sample(cached, pictures, steps=5, generator=torch.Generator().manual_seed(0))
    b = sample(uncached, pictures, steps=5, use_cache=False,
               generator=torch.Generator().manual_seed(0))
    assert cached.encode_calls == 1 and uncached.encode_calls == 5
    torch.testing.assert_close(a, b)


def test_same_seed_same_output_and_adapters_passed(pictures):
    class Noisy(OracleModel):
        def forward(self, noisy, timesteps, condition, adapter_weights=None):
            return super().forward(noisy, timesteps, condition, adapter_weights) + 0.1

    weights = {"hf_loss": 0.7, "general": 0.3}
    runs = [
        sample(Noisy(), pictures, steps=3, adapter_weights=weights,
               generator=torch.Generator().manual_seed(seed))
        for seed in (3, 3, 4)
    ]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])
    model = Noisy()
    sample(model, pictures, steps=2, adapter_weights=weights)
    assert model.seen_adapters == [weights, weights]


def test_strength_sets_start_and_keeps_step_count():
    scheduler = make_scheduler(OracleModel(), "ddim")
    full, _ = timesteps_for(scheduler, 4, 1.0)
    half, begin = timesteps_for(scheduler, 4, 0.5)
    assert len(full) == len(half) == 4
    assert int(full[0]) == 999 and begin == 4
    assert 400 < int(half[0]) < 600


def test_regression_model_is_one_pass(pictures):
    out = sample(HalvingRegression(), pictures, steps=25)
    torch.testing.assert_close(out, 0.5 * pictures)


@pytest.mark.parametrize("steps,strength", [(0, 1.0), (51, 1.0), (4, 0.0), (4, 1.5)])
def test_rejects_bad_settings(pictures, steps, strength):
    with pytest.raises(StemproverError):
        sample(OracleModel(), pictures, steps=steps, strength=strength)


def test_unknown_scheduler(pictures):
    with pytest.raises(StemproverError, match="scheduler"):
        sample(OracleModel(), pictures, scheduler="euler")

"""Loss terms against analytic answers: zero for identical inputs, 1-cos θ for a phase shift..."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from stemprover.dsp.spectral import StftConfig, get_representation, stft, wave_to_image
from stemprover.errors import StemproverError
from stemprover.project.config import build
from stemprover.train.losses import (
    LossConfig,
    PhaseAwareLoss,
    complex_compressed_loss,
    diffusion_loss,
    diffusion_target,
    if_loss,
    min_snr_weights,
    mrstft_loss,
    phase_cosine_loss,
    predict_clean,
    valid_frames,
)

SAMPLE_RATE = 8000
STFT = StftConfig(n_fft=128, hop_length=32)


def random_spectrum(seed: int, shape=(2, 65, 20), magnitude=None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mag = torch.rand(shape, generator=generator) + 0.1 if magnitude is None else magnitude
    phase = (torch.rand(shape, generator=generator) * 2 - 1) * math.pi
    return torch.polar(mag.expand(shape).contiguous(), phase)


def noise_waves(seed: int, n: int = 2, samples: int = 2048) -> torch.Tensor:
    return torch.randn(n, samples, generator=torch.Generator().manual_seed(seed)) * 0.1


# ------------------------------------------------------------------ spectral terms


@pytest.mark.parametrize("term", [complex_compressed_loss, phase_cosine_loss, if_loss])
def test_identical_spectra_give_zero(term):
    spec = random_spectrum(0)
    assert float(term(spec, spec.clone())) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("theta", [0.3, 1.0, math.pi / 2, 2.5])
@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_constant_phase_shift_gives_one_minus_cos(theta, power):
    ref = random_spectrum(1)
    est = ref * complex(math.cos(theta), math.sin(theta))
    value = phase_cosine_loss(est, ref, magnitude_power=power)
    assert float(value) == pytest.approx(1 - math.cos(theta), rel=1e-4)
    # a phase offset that is constant in time leaves the instantaneous frequency unchanged
    assert float(if_loss(est, ref, magnitude_power=power)) == pytest.approx(0.0, abs=1e-5)


def test_phase_cosine_is_weighted_by_reference_magnitude():
    # half the bins are loud (|S|=2) and shifted by theta, the other half quiet (|S|=1), unshifted
    theta = 1.2
    magnitude = torch.ones(1, 10, 8)
    magnitude[:, :5] = 2.0
    ref = random_spectrum(2, shape=(1, 10, 8), magnitude=magnitude)
    shift = torch.ones_like(ref)
    shift[:, :5] = complex(math.cos(theta), math.sin(theta))
    value = phase_cosine_loss(ref * shift, ref, magnitude_power=1.0)
    expected = 2 * (1 - math.cos(theta)) * 5 / (2 * 5 + 1 * 5)
    assert float(value) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("delta", [0.2, 1.0, 3.0])
def test_if_loss_of_a_known_frequency_shift(delta):
    # S[f, t] = A exp(i (phi0 + omega t)); the estimate advances delta rad more per frame
    frames = torch.arange(16, dtype=torch.float64)
    omega = torch.linspace(0.1, 3.0, 33, dtype=torch.float64)[:, None]
    phi0 = torch.linspace(-3, 3, 33, dtype=torch.float64)[:, None]
    amplitude = torch.linspace(0.5, 2.0, 33, dtype=torch.float64)[:, None]
    ref = torch.polar(amplitude.expand(33, 16), phi0 + omega * frames)[None]
    est = torch.polar(amplitude.expand(33, 16), phi0 + (omega + delta) * frames)[None]
    assert float(if_loss(est, ref)) == pytest.approx(1 - math.cos(delta), rel=1e-6)


def test_if_loss_of_detuned_sines_through_the_stft():
    # a partial detuned by df Hz advances by 2 pi df hop / sr more per frame
    t = torch.arange(4096, dtype=torch.float64) / SAMPLE_RATE
    f0, df = 1000.0, 20.0
    ref = stft(torch.sin(2 * math.pi * f0 * t)[None], STFT)[..., 4:-4]
    est = stft(torch.sin(2 * math.pi * (f0 + df) * t)[None], STFT)[..., 4:-4]
    expected = 1 - math.cos(2 * math.pi * df * STFT.hop_length / SAMPLE_RATE)
    assert float(if_loss(est, ref, magnitude_power=2.0)) == pytest.approx(expected, rel=1e-3)


def test_complex_compressed_loss_known_values():
    alpha, lam = 0.3, 0.3
    ref = random_spectrum(3, magnitude=torch.ones(2, 65, 20))
    doubled = complex_compressed_loss(2 * ref, ref, alpha=alpha, mag_weight=lam)
    assert float(doubled) == pytest.approx((2**alpha - 1) ** 2, rel=1e-4)
    theta = 0.7
    shifted = complex_compressed_loss(
        ref * complex(math.cos(theta), math.sin(theta)), ref, alpha=alpha, mag_weight=lam
    )
    assert float(shifted) == pytest.approx((1 - lam) * (2 - 2 * math.cos(theta)), rel=1e-4)


def test_mrstft_known_values():
    ref = noise_waves(4)
    assert float(mrstft_loss(ref, ref.clone())) == pytest.approx(0.0, abs=1e-6)
    # doubling the wave doubles every magnitude: convergence 1, log error ln 2
    assert float(mrstft_loss(2 * ref, ref)) == pytest.approx(1 + math.log(2), rel=1e-3)


def test_mrstft_ignores_samples_beyond_lengths():
    ref = noise_waves(5)
    est = ref.clone()
    est[:, 1500:] = 5.0
    lengths = torch.tensor([1500, 1500])
    assert float(mrstft_loss(est, ref, lengths=lengths)) == pytest.approx(0.0, abs=1e-6)
    assert float(mrstft_loss(est, ref)) > 0.1


def test_frequency_weights_and_frame_mask_select_bins():
    ref = random_spectrum(6)
    est = ref.clone()
    est[:, 0] *= -1  # error only in the DC bin
    weights = torch.ones(65)
    weights[0] = 0.0
    assert float(complex_compressed_loss(est, ref, freq_weights=weights)) == pytest.approx(0.0)
    assert float(complex_compressed_loss(est, ref)) > 0
    est = ref.clone()
    est[..., 12:] *= -1  # error only in frames 12..19
    mask = torch.arange(20)[None].expand(2, 20) < 12
    for term in (complex_compressed_loss, phase_cosine_loss, if_loss):
        assert float(term(est, ref, frame_mask=mask)) == pytest.approx(0.0, abs=1e-6)
        assert float(term(est, ref)) > 0.01


def test_valid_frames_follows_the_stft_frame_count():
    mask = valid_frames(torch.tensor([64, 100]), 5, STFT)
    assert mask.tolist() == [[True, True, True, False, False], [True, True, True, True, False]]


# ------------------------------------------------------------------ diffusion


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
def test_predict_clean_matches_diffusers_step(prediction_type, scheduler_cls):
    scheduler = scheduler_cls(
        num_train_timesteps=100, prediction_type=prediction_type, clip_sample=False
    )
    if scheduler_cls is DDIMScheduler:
        scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 2, 8, 6, generator=generator)
    output = torch.randn(1, 2, 8, 6, generator=generator)
    for t in (99, 51, 3):
        expected = scheduler.step(output, t, noisy).pred_original_sample
        got = predict_clean(noisy, output, torch.tensor([t]), scheduler)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_target_and_predicted_clean_round_trip(prediction_type):
    scheduler = DDPMScheduler(num_train_timesteps=50, prediction_type=prediction_type)
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(3, 2, 8, 6, generator=generator)
    noise = torch.randn(3, 2, 8, 6, generator=generator)
    timesteps = torch.tensor([0, 20, 49])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = diffusion_target(clean, noise, timesteps, scheduler)
    if prediction_type == "v_prediction":
        torch.testing.assert_close(target, scheduler.get_velocity(clean, noise, timesteps))
    torch.testing.assert_close(
        predict_clean(noisy, target, timesteps, scheduler), clean, rtol=1e-4, atol=1e-4
    )


def test_diffusion_loss_and_min_snr_weights():
    output, target = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert float(diffusion_loss(output, target)) == pytest.approx(1.0)
    assert float(diffusion_loss(output, target, torch.tensor([1.0, 3.0]))) == pytest.approx(2.0)
    scheduler = DDPMScheduler(num_train_timesteps=100)
    timesteps = torch.tensor([0, 50, 99])
    assert min_snr_weights(timesteps, scheduler, 0.0).tolist() == [1.0, 1.0, 1.0]
    alpha_bar = scheduler.alphas_cumprod[timesteps]
    snr = alpha_bar / (1 - alpha_bar)
    torch.testing.assert_close(min_snr_weights(timesteps, scheduler, 5.0), snr.clamp(max=5.0) / snr)
    torch.testing.assert_close(
        min_snr_weights(timesteps, scheduler, 5.0, "v_prediction"), snr.clamp(max=5.0) / (snr + 1)
    )


# ------------------------------------------------------------------ module


def make_loss(representation="complex", **overrides) -> PhaseAwareLoss:
    cfg = build(LossConfig, {"mrstft_resolutions": [[128, 32], [256, 64]], **overrides})
    rep = get_representation(representation, STFT)
    return PhaseAwareLoss(cfg, rep, STFT, SAMPLE_RATE)


@pytest.mark.parametrize("representation", ["complex", "mag_if", "magnitude"])
def test_module_identical_images_give_zero(representation):
    loss_fn = make_loss(representation)
    waves = noise_waves(7)
    image = wave_to_image(waves, loss_fn.representation)
    phase = stft(waves, STFT).angle()
    total, terms = loss_fn(image, image.clone(), phase=phase)
    assert set(terms) == {"image", "complex", "phase_cosine", "inst_freq", "mrstft"}
    assert float(total) == pytest.approx(0.0, abs=1e-4)


def test_module_total_is_linear_in_the_weights():
    waves, other = noise_waves(8), noise_waves(9)
    base = make_loss()
    pred = wave_to_image(waves, base.representation)
    target = wave_to_image(waves + 0.5 * other, base.representation)
    total, terms = base(pred, target)
    cfg = base.cfg
    weights = {
        "image": cfg.diffusion,
        "complex": cfg.complex,
        "phase_cosine": cfg.phase_cosine,
        "inst_freq": cfg.inst_freq,
        "mrstft": cfg.mrstft,
    }
    assert all(float(v) > 0 for v in terms.values())
    assert float(total) == pytest.approx(
        sum(weights[k] * float(v) for k, v in terms.items()), rel=1e-5
    )
    doubled = make_loss(
        **{
            k: 2 * v
            for k, v in dataclasses.asdict(cfg).items()
            if k in ("diffusion", "complex", "phase_cosine", "inst_freq", "mrstft")
        }
    )
    total2, terms2 = doubled(pred, target)
    assert float(total2) == pytest.approx(2 * float(total), rel=1e-5)
    only_phase = make_loss(diffusion=0.0, complex=0.0, inst_freq=0.0, mrstft=0.0)
    total3, terms3 = only_phase(pred, target)
    assert set(terms3) == {"phase_cosine"}
    assert float(total3) == pytest.approx(cfg.phase_cosine * float(terms["phase_cosine"]), rel=1e-5)


@pytest.mark.parametrize("term", ["diffusion", "complex", "phase_cosine", "inst_freq", "mrstft"])
def test_gradients_flow_to_the_prediction(term):
    weights = {
        name: float(name == term)
        for name in ("diffusion", "complex", "phase_cosine", "inst_freq", "mrstft")
    }
    loss_fn = make_loss(**weights)
    pred = wave_to_image(noise_waves(10), loss_fn.representation).requires_grad_(True)
    target = wave_to_image(noise_waves(11), loss_fn.representation)
    total, _ = loss_fn(pred, target)
    total.backward()
    assert torch.isfinite(pred.grad).all()
    assert float(pred.grad.abs().sum()) > 0


def test_lengths_mask_the_padding():
    loss_fn = make_loss()
    waves = noise_waves(12)
    pred_waves = waves.clone()
    pred_waves[:, 1600:] = noise_waves(13)[:, 1600:]
    pred, target = (
        wave_to_image(pred_waves, loss_fn.representation),
        wave_to_image(waves, loss_fn.representation),
    )
    # the last frame wholly before sample 1600 - n_fft/2 is unaffected by the change
    lengths = torch.tensor([1600 - 64 - 32, 1600 - 64 - 32])
    total, terms = loss_fn(pred, target, lengths)
    assert float(total) == pytest.approx(0.0, abs=1e-4), terms
    assert float(loss_fn(pred, target)[0]) > 0.01


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusion_terms_are_zero_for_a_perfect_model(prediction_type):
    loss_fn = make_loss()
    scheduler = DDPMScheduler(num_train_timesteps=50, prediction_type=prediction_type)
    clean = wave_to_image(noise_waves(14), loss_fn.representation).double()
    noise = torch.randn(
        clean.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    timesteps = torch.tensor([3, 30])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    perfect = diffusion_target(clean, noise, timesteps, scheduler)
    total, terms = loss_fn.diffusion_terms(perfect, noisy, clean, noise, timesteps, scheduler)
    assert set(terms) == {"diffusion", "complex", "phase_cosine", "inst_freq", "mrstft"}
    assert float(total) == pytest.approx(0.0, abs=1e-3), terms
    wrong, wrong_terms = loss_fn.diffusion_terms(
        perfect + 0.3 * noise, noisy, clean, noise, timesteps, scheduler
    )
    assert all(float(v) > 0 for v in wrong_terms.values())
    assert np.isfinite(float(wrong))


@pytest.mark.parametrize(
    "values",
    [
        {"phase_cosine": -1.0},
        {"compress_alpha": 0.0},
        {"mrstft_resolutions": [[64, 128]]},
        {"frequency_weighting": "b"},
        {"unknown": 1},
    ],
)
def test_bad_loss_configs_are_rejected(values):
    with pytest.raises(StemproverError):
        build(LossConfig, values)

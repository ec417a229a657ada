"""STFT reconstruction and spectrogram representations (stemprover.dsp.spectral)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stemprover.dsp.spectral import (
    REPRESENTATIONS,
    StftConfig,
    get_representation,
    image_to_wave,
    istft,
    n_frames,
    stft,
    wave_to_image,
)
from stemprover.errors import StemproverError

NAMES = sorted(REPRESENTATIONS)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().pow(2).sum().sqrt() / b.abs().pow(2).sum().sqrt().clamp_min(1e-300))


@st.composite
def stft_cases(draw):
    n_fft = draw(st.sampled_from([16, 64, 256, 512]))
    window = draw(st.sampled_from(["hann", "sqrt_hann", "hamming", "blackman"]))
    hop = draw(st.integers(1, n_fft // 2))
    n_samples = draw(st.integers(1, 3000))
    lead = draw(st.sampled_from([(), (1,), (2,), (3,), (2, 2)]))
    seed = draw(st.integers(0, 2**31 - 1))
    return StftConfig(n_fft, hop, window), n_samples, lead, seed


@settings(max_examples=60, deadline=None)
@given(stft_cases())
def test_stft_perfect_reconstruction_float64(case):
    cfg, n_samples, lead, seed = case
    wave = torch.randn(*lead, n_samples, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))
    spec = stft(wave, cfg)
    assert spec.dtype == torch.complex128
    assert spec.shape == (*lead, cfg.n_freqs, n_frames(n_samples, cfg))
    assert _rel_err(istft(spec, cfg, n_samples), wave) <= 1e-5


@settings(max_examples=30, deadline=None)
@given(stft_cases(), st.sampled_from(NAMES))
def test_representations_round_trip(case, name):
    cfg, n_samples, _, seed = case
    wave = torch.randn(2, n_samples, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))
    rep = get_representation(name, cfg)
    spec = stft(wave, cfg)
    image = rep.forward(spec)
    assert image.shape == (2, rep.channels, cfg.n_freqs, spec.shape[-1])
    assert not image.is_complex()
    assert torch.equal(rep(spec), image)
    phase = spec.angle() if name == "magnitude" else None
    assert _rel_err(rep.inverse(image, phase), spec) <= 1e-5
    back = image_to_wave(wave_to_image(wave, rep), rep, n_samples, phase=phase)
    assert _rel_err(back, wave) <= 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_float32_round_trip_on_a_long_clip(name):
    # 30 s at 44.1 kHz: ~5000 frames, where a float32 cumulative phase sum would drift.
    cfg = StftConfig(1024, 256)
    wave = torch.randn(1, 30 * 44100, generator=torch.Generator().manual_seed(0))
    rep = get_representation(name, cfg)
    spec = stft(wave, cfg)
    phase = spec if name == "magnitude" else None  # a complex phase source is accepted too
    assert _rel_err(image_to_wave(rep.forward(spec), rep, wave.shape[-1], phase), wave) < 1e-4


def test_complex_representation_values():
    cfg = StftConfig(8, 2)
    rep = get_representation("complex", cfg, alpha=0.5, beta=0.15)
    spec = torch.tensor([[[4.0 * np.exp(1j * 0.3), 0.0], [-9.0, 1j]]], dtype=torch.complex128)
    spec = torch.nn.functional.pad(spec, (0, 0, 0, cfg.n_freqs - 2))
    image = rep.forward(spec)
    # |X|^0.5 * 0.15 along the angle of X
    assert image[0, 0, 0, 0].item() == pytest.approx(0.15 * 2 * math.cos(0.3))
    assert image[0, 1, 0, 0].item() == pytest.approx(0.15 * 2 * math.sin(0.3))
    assert image[0, 0, 1, 0].item() == pytest.approx(-0.15 * 3)
    assert image[0, 1, 1, 1].item() == pytest.approx(0.15)
    assert image[0, :, 0, 1].abs().max().item() == 0.0  # an exact zero stays zero
    mag, phase_feats = rep.split_mag_phase(image)
    assert mag[0, 0, 0, 0].item() == pytest.approx(0.3)
    assert phase_feats[0, :, 0, 0].tolist() == pytest.approx([math.cos(0.3), math.sin(0.3)])


def test_magnitude_representation_values_and_needs_phase():
    cfg = StftConfig(64, 16)
    rep = get_representation("magnitude", cfg, alpha=1.0, beta=1.0)
    spec = stft(torch.randn(1, 640, dtype=torch.float64), cfg)
    image = rep.forward(spec)
    assert rep.channels == 1 and rep.magnitude_channels == [0] and rep.phase_channels == []
    assert torch.allclose(image[:, 0], spec.abs())
    with pytest.raises(StemproverError, match="needs a phase"):
        rep.inverse(image)
    mag, phase_feats = rep.split_mag_phase(image)
    assert mag.shape == image.shape and phase_feats.shape[1] == 2 and phase_feats.abs().max() == 0


def test_mag_if_is_zero_for_a_bin_centred_sine():
    # A stationary sine at a bin centre advances by exactly 2 pi k hop / n_fft per frame.
    # Without centring, every frame holds whole periods and frame 0 starts at phase 0.4.
    cfg = StftConfig(256, 64, center=False)
    k = 20
    t = torch.arange(256 * 40, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * k * t / cfg.n_fft + 0.4)[None]
    rep = get_representation("mag_if", cfg)
    image = wave_to_image(wave, rep)
    assert image[0, 1, k, 1:].abs().max().item() < 1e-9
    assert image[0, 1, k, 0].item() == pytest.approx(0.4 / math.pi, abs=1e-9)
    assert image[0, 1].abs().max().item() <= 1.0
    mag, feats = rep.split_mag_phase(image)
    assert torch.equal(mag, image[:, :1])
    assert torch.allclose(feats[0, 0, k, 1:], torch.ones(1, dtype=feats.dtype))


def test_representation_gradients_are_finite_at_zero_bins():
    cfg = StftConfig(64, 16)
    wave = torch.zeros(1, 640, dtype=torch.float64)
    wave[0, 300] = 1.0
    spec = stft(wave, cfg)
    spec[..., 0] = 0
    for name in NAMES:
        leaf = spec.clone().requires_grad_(True)
        get_representation(name, cfg).forward(leaf).sum().backward()
        assert torch.isfinite(torch.view_as_real(leaf.grad)).all(), name


def test_stft_accepts_numpy_and_reports_frames():
    cfg = StftConfig(512, 128)
    spec = stft(np.zeros((2, 1000), dtype=np.float32), cfg)
    assert spec.shape == (2, 257, n_frames(1000, cfg)) == (2, 257, 8)
    assert n_frames(1000, StftConfig(512, 128, center=False)) == 4
    assert stft(torch.zeros(1000), StftConfig(512, 128, center=False)).shape[-1] == 4
    assert stft(torch.zeros(1000, dtype=torch.bfloat16), cfg).dtype == torch.complex64


@pytest.mark.parametrize(
    "kwargs", [dict(n_fft=1), dict(hop_length=0), dict(n_fft=64, hop_length=65), dict(window="x")]
)
def test_invalid_configs_raise(kwargs):
    with pytest.raises(StemproverError):
        StftConfig(**kwargs)


def test_bad_inputs_raise():
    cfg = StftConfig(64, 16)
    with pytest.raises(StemproverError, match="unknown representation"):
        get_representation("mel", cfg)
    with pytest.raises(StemproverError, match="channels"):
        get_representation("complex", cfg).inverse(torch.zeros(1, 3, 33, 4))
    with pytest.raises(StemproverError, match="shorter than one STFT frame"):
        stft(torch.zeros(10), StftConfig(64, 16, center=False))
    with pytest.raises(StemproverError, match="frequency bins"):
        get_representation("mag_if", cfg).forward(torch.zeros(1, 10, 4, dtype=torch.complex64))

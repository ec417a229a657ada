"""Phase analysis with analytic answers (stemprover.dsp.phase) and frequency bands (stemprover.dsp.bands)."""

import math

import numpy as np
import pytest
import torch

from stemprover.dsp.bands import band_edges_hz, band_reduce, critical_bands, get_bands, octave_bands
from stemprover.dsp.phase import (
    REPORT_COLUMNS,
    band_coherence,
    group_delay_deviation,
    if_deviation,
    mean_phase_deviation,
    phase_deviation,
    phase_report,
)
from stemprover.dsp.spectral import StftConfig, stft
from stemprover.errors import StemproverError

SR = 16000
CFG = StftConfig(1024, 256)


def _spec(wave) -> torch.Tensor:
    return stft(torch.as_tensor(np.asarray(wave, dtype=np.float64)), CFG)


def _sine(freq, phase=0.0, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * freq * t + phase)


@pytest.mark.parametrize("shift", [0.3, 1.0, -2.0, 3.0])
def test_phase_shifted_sine_gives_the_shift(shift):
    ref = _sine(1000.0)
    est = _sine(1000.0, shift)
    assert mean_phase_deviation(est, ref, SR, CFG) == pytest.approx(abs(shift), abs=0.01)
    assert mean_phase_deviation(ref, ref, SR, CFG) == pytest.approx(0.0, abs=1e-9)


def test_phase_deviation_accepts_torch_and_channels_and_bands():
    ref = np.stack([_sine(500.0), _sine(3000.0)])
    est = np.stack([_sine(500.0, 0.5), _sine(3000.0, 0.5)])
    ref_spec, est_spec = _spec(ref), _spec(est)
    assert phase_deviation(est_spec, ref_spec) == pytest.approx(0.5, abs=0.01)
    per_band = phase_deviation(est_spec, ref_spec, bands=octave_bands(SR, CFG.n_fft))
    assert per_band.shape == (7,)
    assert np.abs(per_band[[3, 6]] - 0.5).max() < 0.01  # the bands of 500 Hz and 3 kHz
    # unweighted: bins far from the tones also count, but the shift still dominates
    assert phase_deviation(est_spec, ref_spec, weighted=False) > 0.2


@pytest.mark.parametrize("delay", [1, 7, 37])
def test_pure_delay_gives_its_group_delay(delay):
    # Clicks 2000 samples apart: each frame holds at most one, so the delayed frame is the
    # reference frame times exp(-2 pi i k d / n_fft) exactly.
    ref = np.zeros(SR)
    ref[np.arange(700, SR - 1500, 2000)] = 1.0
    est = np.roll(ref, delay)
    gd = group_delay_deviation(_spec(est), _spec(ref), CFG.n_fft)
    assert gd == pytest.approx(delay, abs=0.01)
    assert group_delay_deviation(_spec(ref), _spec(ref), CFG.n_fft) == pytest.approx(0, abs=1e-9)


def test_delayed_noise_group_delay_is_close():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SR + 10)
    gd = group_delay_deviation(_spec(noise[5:SR + 5]), _spec(noise[10:]), CFG.n_fft)
    assert gd == pytest.approx(5.0, abs=0.5)


@pytest.mark.parametrize("offset_hz", [2.0, 5.0, -4.0])
def test_detuned_sine_gives_its_instantaneous_frequency_offset(offset_hz):
    # A stationary sine advances by 2 pi f hop / sample_rate per hop in every bin it
    # dominates; the edge frames, half zero padding, are left out.
    ref = _spec(_sine(1000.0))[:, 4:-4]
    est = _spec(_sine(1000.0 + offset_hz))[:, 4:-4]
    dev = if_deviation(est, ref, CFG.hop_length, CFG.n_fft, sample_rate=SR)
    assert dev == pytest.approx(abs(offset_hz), abs=0.01)
    in_bins = if_deviation(est, ref, CFG.hop_length, CFG.n_fft)
    assert in_bins == pytest.approx(abs(offset_hz) * CFG.n_fft / SR, rel=0.05)


def test_coherence_high_for_partials_low_for_scrambled_phase():
    t = np.arange(SR) / SR
    tone = sum(np.sin(2 * np.pi * 220 * k * t + k) for k in range(1, 8))
    spec = _spec(tone)
    assert band_coherence(spec) > 0.95
    scrambled = torch.polar(spec.abs(), torch.rand(spec.shape, dtype=torch.float64,
                                                    generator=torch.Generator().manual_seed(0))
                            * 2 * math.pi)
    assert band_coherence(scrambled) < 0.3
    per_band = band_coherence(spec, octave_bands(SR, CFG.n_fft))
    assert per_band.shape == (7,) and np.all((per_band >= 0) & (per_band <= 1 + 1e-12))


def test_phase_report_of_a_scaled_copy():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, SR))
    df = phase_report(0.5 * ref, ref, SR, CFG, bands="critical")
    assert list(df.columns) == list(REPORT_COLUMNS)
    assert len(df) == len(critical_bands(SR, CFG.n_fft)) == 22
    assert np.allclose(df["energy_error_db"], -6.0206, atol=1e-3)
    assert np.allclose(df["mag_error_db"], 6.0206, atol=1e-3)
    assert np.allclose(df[["phase_dev", "if_dev", "gd_dev"]], 0.0, atol=1e-9)
    assert np.allclose(df["coherence"], df["coherence_ref"])


def test_phase_report_sees_lowpass_and_phase_smear():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(SR)
    spec = _spec(ref)
    smeared = spec.clone()
    smeared[300:] = torch.polar(spec[300:].abs(), torch.rand(spec[300:].shape,
                                                              dtype=torch.float64) * 6.28)
    smeared[400:] = 0  # no energy above 400 * 16000 / 1024 = 6.25 kHz
    est = torch.istft(smeared, CFG.n_fft, CFG.hop_length, window=torch.hann_window(
        CFG.n_fft, dtype=torch.float64), length=SR).numpy()
    df = phase_report(est, ref, SR, CFG, bands="octave").set_index("band")
    assert df.loc["250 Hz", "phase_dev"] < 0.05 and df.loc["250 Hz", "energy_error_db"] > -0.5
    assert df.loc["4 kHz", "phase_dev"] > 0.5
    assert df.loc["4 kHz", "energy_error_db"] < -3


def test_shape_and_length_errors():
    with pytest.raises(StemproverError, match="differ in shape"):
        phase_report(np.zeros(2000), np.zeros(3000), SR, CFG)
    with pytest.raises(StemproverError, match="shorter than one frame"):
        phase_report(np.zeros(100), np.zeros(100), SR, CFG)
    with pytest.raises(StemproverError, match="complex spectrum"):
        phase_deviation(np.zeros((4, 4)), np.zeros((4, 4)))


@pytest.mark.parametrize("kind", ["octave", "critical"])
@pytest.mark.parametrize("sample_rate,n_fft", [(44100, 2048), (44100, 256), (16000, 512), (8000, 64)])
def test_bands_tile_the_spectrum(kind, sample_rate, n_fft):
    bands = get_bands(kind, sample_rate, n_fft)
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    assert bands[0].bins.start == 0 and bands[-1].bins.stop == n_fft // 2 + 1
    assert bands[0].f_low == 0 and bands[-1].f_high == sample_rate / 2
    for lower, upper in zip(bands, bands[1:]):
        assert lower.bins.stop == upper.bins.start and lower.f_high == upper.f_low
    for band in bands:
        assert band.n_bins > 0
        inside = freqs[band.bins]
        assert np.all(inside >= band.f_low) and np.all(inside[inside < sample_rate / 2] < band.f_high)
    edges = band_edges_hz(bands)
    assert edges.shape == (len(bands) + 1,) and np.all(np.diff(edges) > 0)


def test_band_layouts():
    octave = octave_bands(44100, 2048)
    assert [b.name for b in octave] == [
        "63 Hz", "125 Hz", "250 Hz", "500 Hz", "1 kHz", "2 kHz", "4 kHz", "8 kHz", "16 kHz"
    ]
    assert octave[4].f_low == pytest.approx(1000 / math.sqrt(2))
    critical = critical_bands(44100, 2048)
    assert len(critical) == 25 and critical[5].f_low == 510 and critical[5].f_high == 630
    coarse = critical_bands(44100, 256)  # 172 Hz bins: narrow low bands are merged upwards
    assert len(coarse) < 25 and any(".." in b.name for b in coarse)
    with pytest.raises(StemproverError):
        get_bands("third-octave", 44100, 2048)


def test_band_reduce_numpy_and_torch():
    bands = octave_bands(16000, 64)  # bins of 250 Hz
    values = np.arange(33, dtype=float)[:, None] * np.ones((1, 4))
    reduced = band_reduce(values, bands)
    assert reduced.shape == (len(bands), 4)
    expected = [np.mean(np.arange(33)[b.bins]) for b in bands]
    assert np.allclose(reduced[:, 0], expected)
    weights = np.zeros((33, 1))
    weights[bands[-1].bins.start] = 1.0
    assert band_reduce(values, bands, weights)[-1, 0] == bands[-1].bins.start
    torch_reduced = band_reduce(torch.from_numpy(values), bands)
    assert torch.allclose(torch_reduced, torch.from_numpy(reduced))

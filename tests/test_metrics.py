"""Metrics with known answers (stemprover.metrics.signal) and perceptual weights (stemprover.dsp.weighting)."""

import numpy as np
import pytest

from stemprover.dsp.spectral import StftConfig
from stemprover.dsp.weighting import a_weighting, equal_loudness, iso226_spl, perceptual_weights
from stemprover.errors import StemproverError
from stemprover.metrics.signal import (
    bss_eval,
    evaluate_pair,
    high_band_energy_error,
    lsd,
    mrstft_distance,
    pesq_wb,
    si_sdr,
    stoi,
)

CFG = StftConfig(1024, 256)


def _noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _lowpass(x, sample_rate, cutoff_hz):
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., np.fft.rfftfreq(x.shape[-1], 1 / sample_rate) >= cutoff_hz] = 0
    return np.fft.irfft(spectrum, n=x.shape[-1], axis=-1)


def _speech_like(sample_rate=16000, seconds=3.0):
    """A voiced, gliding harmonic signal with syllable-rate amplitude modulation."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    envelope = (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) ** 2
    return 0.1 * envelope * sum(np.sin(k * phase) / k for k in range(1, 30))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_si_sdr_of_orthogonal_noise_is_exact(snr_db):
    ref = _noise((2, 20000), 1)
    noise = _noise((2, 20000), 2)
    ref -= ref.mean(-1, keepdims=True)
    noise -= noise.mean(-1, keepdims=True)
    noise -= ((noise * ref).sum(-1, keepdims=True) / (ref**2).sum(-1, keepdims=True)) * ref
    noise *= np.sqrt((ref**2).sum(-1, keepdims=True) / (noise**2).sum(-1, keepdims=True)
                     * 10 ** (-snr_db / 10))
    assert si_sdr(ref + noise, ref) == pytest.approx(snr_db, abs=1e-6)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_si_sdr_of_white_noise_at_a_known_level(snr_db):
    ref = 0.3 * _noise(200_000, 3)
    noise = 0.3 * 10 ** (-snr_db / 20) * _noise(200_000, 4)
    assert si_sdr(ref + noise, ref) == pytest.approx(snr_db, abs=0.1)
    assert si_sdr(5 * (ref + noise), ref) == pytest.approx(si_sdr(ref + noise, ref), abs=1e-9)


def test_si_sdr_rejects_mismatched_inputs():
    with pytest.raises(StemproverError, match="differ in shape"):
        si_sdr(np.zeros(10), np.zeros(11))
    with pytest.raises(StemproverError, match="NaN"):
        si_sdr(np.full(10, np.nan), np.zeros(10))


def _two_sources(n_samples=2 * 8000, seed=5, n_channels=2):
    # short signals: museval solves a 512-tap projection per 1 s window and is slow
    sources = _noise((2, n_channels, n_samples), seed)
    sources /= np.sqrt((sources**2).mean(axis=(1, 2), keepdims=True))  # equal power
    return sources


def test_museval_on_known_interference():
    # est_a = a + 0.1 b and est_b = b + 0.05 a with equal-power, independent a and b:
    # SDR = SIR = 20 dB and 26.02 dB, SAR unbounded.
    sources = _two_sources(n_channels=1)
    estimates = np.stack([sources[0] + 0.1 * sources[1], sources[1] + 0.05 * sources[0]])
    known = [20.0, 26.02]
    museval_scores = bss_eval({"a": estimates[0], "b": estimates[1]},
                              {"a": sources[0], "b": sources[1]}, sample_rate=8000)
    for i, name in enumerate("ab"):
        assert museval_scores[name]["sdr"] == pytest.approx(known[i], abs=0.5)
        assert museval_scores[name]["sir"] == pytest.approx(known[i], abs=0.5)
        assert museval_scores[name]["sar"] > 60


def test_museval_on_known_artifacts():
    # Independent white noise at -20 dB on each estimate: SDR = SAR = 20 dB.
    sources = _two_sources(seed=6)
    estimates = sources + 0.1 * _noise(sources.shape, 7)
    museval_scores = bss_eval({"a": estimates[0], "b": estimates[1]},
                              {"a": sources[0], "b": sources[1]}, sample_rate=8000)
    for name in "ab":  # museval's 512-tap projection absorbs a little of the noise: +0.6 dB
        assert museval_scores[name]["sdr"] == pytest.approx(20.0, abs=1.0)
        assert museval_scores[name]["sar"] == pytest.approx(20.0, abs=1.0)


def test_bss_eval_needs_every_reference_stem():
    sources = _two_sources(n_samples=8000)
    with pytest.raises(StemproverError, match="missing"):
        bss_eval({"a": sources[0]}, {"a": sources[0], "b": sources[1]}, 8000)


def test_pesq_and_stoi_order_clean_and_noisy_speech():
    clean = _speech_like()
    mild = clean + 0.001 * _noise(clean.shape, 8)
    strong = clean + 0.01 * _noise(clean.shape, 9)
    assert pesq_wb(clean, clean, 16000) == pytest.approx(4.64, abs=0.01)  # P.862.2 maximum
    assert 4.0 > pesq_wb(mild, clean, 16000) > pesq_wb(strong, clean, 16000) >= 1.0
    assert np.isnan(pesq_wb(np.zeros(48000), np.zeros(48000), 16000))
    assert stoi(clean, clean, 16000) == pytest.approx(1.0, abs=1e-6)
    very_noisy = clean + 0.2 * _noise(clean.shape, 10)
    assert stoi(very_noisy, clean, 16000) < 0.9
    assert stoi(very_noisy, clean, 16000, extended=True) < stoi(clean, clean, 16000, extended=True)


def test_speech_metrics_resample_other_rates():
    clean16 = _speech_like()
    clean44 = np.interp(np.arange(3 * 44100) / 44100, np.arange(clean16.size) / 16000, clean16)
    assert pesq_wb(clean44, clean44, 44100) == pytest.approx(4.64, abs=0.01)


def test_lsd_of_a_gain_and_of_identity():
    ref = _noise((2, 16000), 11)
    assert lsd(ref, ref, CFG) == 0.0
    assert lsd(0.5 * ref, ref, CFG) == pytest.approx(20 * np.log10(2), abs=1e-6)


def test_mrstft_distance_grows_with_noise():
    ref = _noise(16000, 12)
    assert mrstft_distance(ref, ref) == 0.0
    small = mrstft_distance(ref + 0.05 * _noise(16000, 13), ref)
    large = mrstft_distance(ref + 0.5 * _noise(16000, 13), ref)
    assert 0 < small < large
    with pytest.raises(StemproverError, match="too short"):
        mrstft_distance(ref[:100], ref[:100])


def test_high_band_energy_error_of_a_gain_and_a_lowpass():
    sr = 16000
    ref = _noise((2, sr), 14)
    assert high_band_energy_error(ref, ref, sr) == 0.0
    assert high_band_energy_error(0.5 * ref, ref, sr) == pytest.approx(-6.0206, abs=1e-3)
    assert high_band_energy_error(_lowpass(ref, sr, 3000), ref, sr, f_min=4000) < -30
    with pytest.raises(StemproverError, match="above Nyquist"):
        high_band_energy_error(ref, ref, sr, f_min=9000)


def test_evaluate_pair_reports_the_metric_set():
    ref = _speech_like()
    est = ref + 0.003 * _noise(ref.shape, 15)
    scores = evaluate_pair(est, ref, 16000, stft_cfg=CFG, speech=True)
    assert set(scores) == {"si_sdr", "lsd", "mrstft", "phase_dev", "phase_dev_hf",
                           "hf_energy_error_db", "pesq", "stoi", "estoi"}
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["si_sdr"] == pytest.approx(si_sdr(est, ref))
    perfect = evaluate_pair(ref, ref, 16000, stft_cfg=CFG)
    assert perfect["lsd"] == 0 and perfect["phase_dev"] == pytest.approx(0, abs=1e-9)
    assert "pesq" not in perfect


def test_a_weighting_known_values():
    db = a_weighting([0.0, 100.0, 1000.0, 10000.0])
    assert db[0] == -np.inf
    assert db[1] == pytest.approx(-19.1, abs=0.1)  # IEC 61672 table
    assert db[2] == pytest.approx(0.0, abs=0.01)
    assert db[3] == pytest.approx(-2.5, abs=0.1)


def test_equal_loudness_known_values():
    spl = iso226_spl(40.0)  # the ISO 226:2003 40-phon contour
    assert spl[0] == pytest.approx(99.85, abs=0.05)  # 20 Hz
    assert spl[7] == pytest.approx(64.37, abs=0.05)  # 100 Hz
    assert spl[17] == pytest.approx(40.0, abs=0.05)  # 1 kHz
    db = equal_loudness([1000.0, 100.0, 3150.0, 0.0, 22050.0])
    assert db[0] == 0.0 and db[1] == pytest.approx(40.01 - 64.37, abs=0.05)
    assert db[2] > 0  # hearing is most sensitive around 3-4 kHz
    assert db[3] == equal_loudness(20.0) and db[4] == equal_loudness(12500.0)  # held at ends
    with pytest.raises(StemproverError, match="20-90 phon"):
        iso226_spl(10.0)


@pytest.mark.parametrize("kind", ["a", "equal_loudness", "none"])
def test_perceptual_weights(kind):
    weights = perceptual_weights(44100, 1024, kind)
    assert weights.shape == (513,)
    assert float(weights.mean()) == pytest.approx(1.0, abs=1e-5)
    if kind == "none":
        assert float(weights.min()) == float(weights.max()) == 1.0
    else:
        peak_hz = int(weights.argmax()) * 44100 / 1024
        assert 1500 < peak_hz < 5000
        assert float(weights[2]) < 0.1 * float(weights.max())  # 86 Hz counts little


def test_unknown_weighting():
    with pytest.raises(StemproverError, match="unknown weighting"):
        perceptual_weights(44100, 1024, "c")

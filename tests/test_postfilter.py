"""Classical post-filters on signals whose clean answer is known."""

import numpy as np
import pytest

from stemprover.constants import STEMS
from stemprover.inference.postfilter import PostfilterConfig, postfilter, scaled_sizes

SR = 16000


def _snr_db(estimate, reference):
    return 10 * np.log10(np.sum(reference**2) / np.sum((estimate - reference) ** 2))


def _sine(freq_hz, seconds=1.5, channels=2, amplitude=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return np.tile(amplitude * np.sin(2 * np.pi * freq_hz * t), (channels, 1)).astype(np.float32)


def _sources():
    rng = np.random.default_rng(0)
    sources = {stem: _sine(f) for stem, f in zip(STEMS, (440.0, 1500.0, 110.0, 4000.0))}
    sources["drums"] = sources["drums"] + 0.01 * rng.normal(size=sources["drums"].shape).astype(
        np.float32
    )
    return sources


def test_wiener_removes_bleed_and_sums_to_mixture():
    sources = _sources()
    mixture = sum(sources.values())
    # Each separated stem carries 30% of the next stem: bleed the filter must push back.
    separated = {s: sources[s] + 0.3 * sources[STEMS[(i + 1) % 4]] for i, s in enumerate(STEMS)}
    cleaned = postfilter(separated, SR, mixture=mixture)
    assert set(cleaned) == set(STEMS)
    for stem in STEMS:
        assert cleaned[stem].shape == mixture.shape and cleaned[stem].dtype == np.float32
        assert _snr_db(cleaned[stem], sources[stem]) > _snr_db(separated[stem], sources[stem]) + 6
    total = sum(cleaned.values())
    assert _snr_db(total, mixture) > 30  # masks sum to one


def test_wiener_with_a_subset_keeps_a_residual():
    sources = _sources()
    mixture = sum(sources.values())
    separated = {"vocals": sources["vocals"] + 0.3 * sources["other"]}
    cleaned = postfilter(separated, SR, mixture=mixture)
    assert list(cleaned) == ["vocals"]
    assert _snr_db(cleaned["vocals"], sources["vocals"]) > _snr_db(
        separated["vocals"], sources["vocals"]
    )


def test_smoothing_keeps_a_tone_and_removes_musical_noise():
    clean = _sine(1000.0, seconds=2.0)
    assert _snr_db(postfilter({"x": clean}, SR)["x"], clean) > 25
    # Musical noise: short random tone blips scattered in time and frequency.
    rng = np.random.default_rng(1)
    noisy = clean.copy()
    blip = np.hanning(160)
    for _ in range(60):
        start = rng.integers(0, clean.shape[1] - 160)
        freq = rng.uniform(2000, 7000)
        t = np.arange(160) / SR
        noisy[:, start : start + 160] += 0.2 * blip * np.sin(2 * np.pi * freq * t)
    cleaned = postfilter({"x": noisy}, SR, cfg=PostfilterConfig(method="smoothing"))["x"]
    assert _snr_db(cleaned, clean) > _snr_db(noisy, clean) + 3


@pytest.mark.parametrize("rate, expected", [(44100, (2048, 512)), (16000, (1024, 256))])
def test_stft_sizes_scale_with_rate(rate, expected):
    assert scaled_sizes(PostfilterConfig(), rate) == expected

"""Artifact detectors: each ranks the severities of its own artifact on a rendered song."""

from __future__ import annotations

import numpy as np
import pytest

from stemprover.constants import ADAPTERS, ARTIFACTS, STEMS
from stemprover.corpus import CorpusConfig, list_tracks, load_track, render_corpus
from stemprover.dsp.audio import resample
from stemprover.errors import StemproverError
from stemprover.inference.detectors import Detection, adapter_weights, detect, robust_threshold
from stemprover.separators import get_separator

SR = 16000
SEVERITIES = (0.2, 0.5, 0.9)
# hf_loss is judged on a stem with treble to lose (this song's bass and pad have none above
# the 2.7 kHz reference edge, and its drums own the treble of the mixture).
STEMS_FOR = {"hf_loss": ("vocals",)}


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("det")
    cfg = CorpusConfig(n_train=1, n_valid=0, n_test=1, song_seconds=3.0, sources={"pop": 1.0})
    render_corpus(cfg, corpus, progress=False)
    audio = load_track(list_tracks(corpus, split="test")[0])
    audio = {k: resample(v, 44100, SR) for k, v in audio.items()}
    audio["mixture"] = sum(audio[s] for s in STEMS)
    return audio


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_each_detector_ranks_the_severity_of_its_artifact(song, artifact):
    scores = {s: [] for s in STEMS_FOR.get(artifact, STEMS)}
    for severity in SEVERITIES:
        sep = get_separator("degraded", artifact=artifact, severity=severity, seed=0)
        out = sep.separate(song["mixture"], SR, references=song)
        for stem in scores:
            scores[stem].append(detect(out[stem], SR, song["mixture"]).scores[artifact])
    for stem, values in scores.items():
        assert values[0] < values[1] < values[2], (artifact, stem, values)


def test_detection_shapes_and_ranges(song):
    det = detect(song["vocals"], SR, song["mixture"], bands="octave")
    n_bands = len(det.band_edges_hz) - 1
    assert set(det.scores) == set(ARTIFACTS) == set(det.maps)
    for artifact in ARTIFACTS:
        assert 0.0 <= det.scores[artifact] <= 1.0
        assert det.maps[artifact].shape[0] == n_bands
        assert np.isfinite(det.maps[artifact]).all()
        assert det.maps[artifact].min() >= 0.0 and det.maps[artifact].max() <= 1.0
    assert det.band_edges_hz[0] == 0.0 and det.band_edges_hz[-1] == SR / 2
    assert det.maps["bleed"].shape[1] == pytest.approx(song["vocals"].shape[-1] / det.frame_seconds
                                                       / SR, abs=2)


def test_without_mixture_hf_loss_still_ranks(song):
    values = []
    for severity in SEVERITIES:
        out = get_separator("degraded", artifact="hf_loss", severity=severity).separate(
            song["mixture"], SR, references=song)
        values.append(detect(out["drums"], SR).scores["hf_loss"])
    assert values[0] < values[1] < values[2], values


def test_musical_noise_finds_isolated_peaks_in_a_steady_tone():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    spec_noise = tone.copy()
    blips = rng.choice(len(t) - 64, size=200, replace=False)
    for start in blips:  # 4 ms sine blips at random frequencies: classic musical noise
        f = rng.uniform(1000, 7000)
        spec_noise[start : start + 64] += 0.05 * np.sin(2 * np.pi * f * t[:64])
    clean = detect(tone, SR).scores["musical_noise"]
    noisy = detect(spec_noise, SR).scores["musical_noise"]
    assert noisy > clean + 0.3, (clean, noisy)


def test_robust_threshold_matches_normal_statistics():
    values = np.random.default_rng(0).normal(2.0, 3.0, size=200_000)
    assert robust_threshold(values, 2.0)[0] == pytest.approx(2.0 + 2 * 3.0, abs=0.05)
    with_outliers = np.concatenate([values, np.full(10_000, 1e6)])  # 5% outliers barely move it
    assert 8.0 < robust_threshold(with_outliers, 2.0)[0] < 9.0  # mean + 2 std would be ~5e5


def test_adapter_weights():
    weights = adapter_weights({"hf_loss": 0.6, "musical_noise": 0.0, "bleed": 0.2,
                               "phase_smear": 0.2})
    assert list(weights) == list(ADAPTERS)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["hf_loss"] == pytest.approx(0.6) and weights["general"] == pytest.approx(0.2)
    assert adapter_weights(dict.fromkeys(ARTIFACTS, 0.0))["general"] == 1.0
    det = Detection(scores={"hf_loss": 1.0}, maps={}, band_edges_hz=np.zeros(2),
                    frame_seconds=0.01)
    assert adapter_weights(det)["hf_loss"] == 1.0


def test_mismatched_mixture_is_an_error(song):
    with pytest.raises(StemproverError, match="samples"):
        detect(song["vocals"], SR, song["mixture"][:, :-10])

"""Separators: oracle identities, degraded severities, blind and neural separators on a song."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from stemprover.constants import ARTIFACTS, STEMS
from stemprover.corpus import CorpusConfig, list_tracks, load_track, render_corpus
from stemprover.dsp.audio import resample, save_audio
from stemprover.errors import StemproverError
from stemprover.metrics.signal import si_sdr
from stemprover.separators import available_separators, get_separator, train_neural_separator
from stemprover.separators.degraded import hf_cutoff_hz
from stemprover.separators.neural import openunmix_module

SR = 16000
BLIND = ("hpss", "nmf", "repet", "htdemucs", "openunmix")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A rendered 3 s pop song (train + test split) and tiny neural separators trained on it."""
    root = tmp_path_factory.mktemp("sep")
    corpus = root / "corpus"
    cfg = CorpusConfig(n_train=1, n_valid=0, n_test=1, song_seconds=3.0, sources={"pop": 1.0})
    render_corpus(cfg, corpus, progress=False)
    audio = load_track(list_tracks(corpus, split="test")[0])
    audio = {k: resample(v, 44100, SR) for k, v in audio.items()}
    audio["mixture"] = sum(audio[s] for s in STEMS)
    checkpoints = {
        kind: train_neural_separator(kind, corpus, root / f"{kind}.pt", steps=2, sample_rate=SR,
                                     batch_size=1, segment_seconds=1.0, size="tiny",
                                     progress=False)
        for kind in ("htdemucs", "openunmix")
    }
    return audio, checkpoints, root


def _mean_si_sdr(est: dict, ref: dict) -> float:
    return float(np.mean([si_sdr(est[s], ref[s]) for s in STEMS]))


def test_every_separator_runs_and_irm2_beats_every_blind_one(song):
    audio, checkpoints, root = song
    folder = root / "external"
    for stem in STEMS:  # another tool's output, 7 samples short
        save_audio(folder / f"{stem}.wav", audio[stem][:, :-7], SR)
    kwargs = {**{k: {"checkpoint": p} for k, p in checkpoints.items()},
              "degraded": {"artifact": "bleed", "severity": 0.5}, "external": {"folder": folder}}
    scores = {}
    for name in available_separators():
        out = get_separator(name, **kwargs.get(name, {})).separate(
            audio["mixture"], SR, references=audio)
        assert set(out) == set(STEMS)
        for stem in STEMS:
            assert out[stem].shape == audio["mixture"].shape and out[stem].dtype == np.float32
            assert np.isfinite(out[stem]).all()
        scores[name] = _mean_si_sdr(out, audio)
    assert set(scores) >= {"irm1", "irm2", "ibm", "degraded", "external", *BLIND}
    assert scores["external"] > 40.0  # the reference stems themselves, padded by 7 samples
    for name in BLIND:
        assert scores["irm2"] > scores[name], (name, scores)


def test_ratio_masks_sum_to_the_mixture(song):
    audio = song[0]
    for name in ("irm1", "irm2"):
        out = get_separator(name).separate(audio["mixture"], SR, references=audio)
        total = sum(out.values())
        err = np.abs(total - audio["mixture"]).max() / np.abs(audio["mixture"]).max()
        assert err < 1e-4, name


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_degraded_oracles_get_worse_as_severity_rises(song, artifact):
    audio = song[0]
    values = []
    for severity in (0.0, 0.2, 0.5, 0.9):
        sep = get_separator("degraded", artifact=artifact, severity=severity, seed=1)
        values.append(_mean_si_sdr(sep.separate(audio["mixture"], SR, references=audio), audio))
    assert all(a > b for a, b in zip(values, values[1:])), (artifact, values)


def test_severity_zero_is_irm2_and_seeds_are_deterministic(song):
    audio = song[0]
    irm2 = get_separator("irm2").separate(audio["mixture"], SR, references=audio)
    zero = get_separator("degraded", artifact="musical_noise", severity=0.0).separate(
        audio["mixture"], SR, references=audio)
    np.testing.assert_array_equal(irm2["vocals"], zero["vocals"])
    runs = [get_separator("degraded", artifact="musical_noise", severity=0.7, seed=s).separate(
        audio["mixture"], SR, references=audio)["drums"] for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_hf_cutoff_is_a_fraction_of_nyquist():
    assert hf_cutoff_hz(0.0, 44100) == pytest.approx(22050.0)
    assert hf_cutoff_hz(0.5, 44100) == pytest.approx(14332.5)
    assert hf_cutoff_hz(0.5, 16000) == pytest.approx(5200.0)


def test_hf_loss_removes_energy_above_the_cutoff():
    rng = np.random.default_rng(0)
    noise = {s: rng.standard_normal((1, SR)).astype(np.float32) * 0.1 for s in STEMS}
    mixture = sum(noise.values())
    out = get_separator("degraded", artifact="hf_loss", severity=0.9).separate(
        mixture, SR, references=noise)
    spec = np.abs(np.fft.rfft(out["vocals"][0])) ** 2
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    cutoff = hf_cutoff_hz(0.9, SR)
    below = spec[freqs < 0.7 * cutoff].mean()
    above = spec[freqs > 1.5 * cutoff].mean()
    assert 10 * np.log10(above / below) < -20.0  # 8th-order roll-off: ~-28 dB at 1.5 f_c


def test_mono_input_gives_mono_stems():
    rng = np.random.default_rng(1)
    stems = {s: rng.standard_normal(4000).astype(np.float32) for s in STEMS}
    out = get_separator("irm2").separate(sum(stems.values()), SR, references=stems)
    assert all(out[s].shape == (4000,) for s in STEMS)


def test_clear_errors(song, tmp_path):
    audio, checkpoints, _ = song
    with pytest.raises(StemproverError, match="unknown separator"):
        get_separator("spleeter")
    with pytest.raises(StemproverError, match="needs references"):
        get_separator("irm2").separate(audio["mixture"], SR)
    with pytest.raises(StemproverError, match="unknown artifact"):
        get_separator("degraded", artifact="clipping")
    with pytest.raises(StemproverError, match="severity"):
        get_separator("degraded", artifact="bleed", severity=1.5)
    with pytest.raises(StemproverError, match="not 'openunmix'"):
        get_separator("openunmix", checkpoint=checkpoints["htdemucs"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StemproverError, match="not a readable checkpoint"):
        get_separator("htdemucs", checkpoint=bad)
    state = torch.load(checkpoints["htdemucs"], weights_only=True)
    state["model_kwargs"]["channels"] = 12
    torch.save(state, tmp_path / "mismatch.pt")
    with pytest.raises(StemproverError, match="do not match"):
        get_separator("htdemucs", checkpoint=tmp_path / "mismatch.pt")
    with pytest.raises(StemproverError, match="no audio file"):
        get_separator("external", folder=tmp_path).separate(audio["mixture"], SR)
    with pytest.raises(StemproverError, match="not found"):
        get_separator("external", folder=tmp_path / "nowhere")


def test_openunmix_model_imports_without_torchaudio():
    model = openunmix_module("model")
    net = model.OpenUnmix(nb_bins=33, nb_channels=2, hidden_size=8, nb_layers=1)
    out = net(torch.rand(1, 2, 33, 5))
    assert out.shape == (1, 2, 33, 5)
    assert "torchaudio" not in sys.modules or sys.modules["torchaudio"].__spec__ is not None


def test_training_lowers_the_loss_of_a_neural_separator(song, tmp_path):
    corpus = song[2] / "corpus"
    path = train_neural_separator("openunmix", corpus, tmp_path / "u.pt", steps=30,
                                  sample_rate=SR, batch_size=2, segment_seconds=1.0,
                                  size="tiny", progress=False)
    state = torch.load(path, weights_only=True)
    assert state["final_loss"] < state["first_loss"]


def test_finding_names_the_damaged_bands():
    import pandas as pd

    from stemprover.stages.phase_analysis import finding

    by_separator = pd.DataFrame([
        {"separator": "irm2", "si_sdr": 12.0, "phase_dev": 0.4,
         **{f"score_{a}": 0.3 for a in ARTIFACTS}},
        {"separator": "x", "si_sdr": 3.0, "phase_dev": 0.9,
         **{f"score_{a}": 0.3 for a in ARTIFACTS}, "score_hf_loss": 0.8},
    ])
    bands = pd.DataFrame({
        "separator": ["x"] * 3, "band": ["a", "b", "c"], "f_low": [0.0, 1000.0, 4000.0],
        "f_high": [1000.0, 4000.0, 8000.0], "mag_error_db": [1.0, 2.0, 9.0],
        "phase_dev": [0.2, 1.3, 0.5], "energy_error_db": [0.5, -0.2, -12.0],
        "if_dev": [0.0, 0.0, 0.0],
    })
    text = finding("x", by_separator, bands)
    assert "largest magnitude error in 4.0 kHz-8.0 kHz (9.0 dB)" in text
    assert "largest phase deviation in 1.0 kHz-4.0 kHz (1.30 rad" in text
    assert "loses most energy in 4.0 kHz-8.0 kHz (-12.0 dB)" in text
    assert "detector most above IRM2: hf_loss (+0.50)" in text


def test_training_snapshots_are_weaker_separators_of_the_same_architecture(song, tmp_path):
    from stemprover.data.pairs import PairsConfig, separator_family, separator_jobs
    from stemprover.separators.training import snapshot_path

    audio, _, root = song
    out = tmp_path / "openunmix.pt"
    train_neural_separator("openunmix", root / "corpus", out, steps=3, sample_rate=SR,
                           batch_size=1, segment_seconds=1.0, size="tiny", progress=False,
                           snapshot_steps=(1,))
    early = snapshot_path(out, "openunmix", 1)
    assert early.name == "openunmix@1.pt"
    assert torch.load(early, weights_only=True)["steps"] == 1
    assert torch.load(out, weights_only=True)["steps"] == 3
    separated = get_separator("openunmix", checkpoint=early).separate(audio["mixture"], SR)
    assert separated["vocals"].shape == audio["mixture"].shape
    cfg = PairsConfig(artifacts=[], blind_separators=["openunmix@1"],
                      weights_dir=str(tmp_path))
    [(label, kwargs, artifact, _)] = separator_jobs(cfg, "t")
    assert (label, kwargs["name"], kwargs["checkpoint"]) == ("openunmix@1", "openunmix", str(early))
    assert separator_family(label) == "neural" and artifact == "mixed"
    with pytest.raises(StemproverError, match="snapshot_steps"):
        train_neural_separator("openunmix", root / "corpus", out, steps=3, sample_rate=SR,
                               snapshot_steps=(3,))

"""Enhancement pipeline with small fake models whose right answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from stemprover.dsp.spectral import StftConfig, get_representation
from stemprover.errors import StemproverError
from stemprover.inference.enhance import (
    Enhancer,
    enhance,
    enhance_file,
    output_path,
    parse_adapters,
)

MODEL_RATE = 16000


def _config(**changes):
    values = dict(sample_rate=MODEL_RATE, n_fft=256, hop_length=64, segment_samples=2048,
                  use_mixture=True, prediction_type="epsilon")
    values.update(changes)
    return SimpleNamespace(**values)


class RegressionFake(torch.nn.Module):
    """One-pass model: multiplies the picture by ``gain`` (1 = identity, 0 = silence)."""

    def __init__(self, gain: float = 1.0, **config):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(float(gain)))
        self.config = _config(**config)
        self.representation = get_representation("complex", StftConfig(256, 64))
        self.calls = []

    def forward(self, separated_img, mixture_img=None):
        self.calls.append((separated_img.shape, mixture_img is not None))
        return separated_img * self.gain


class NoisyDiffusionFake(torch.nn.Module):
    """Diffusion-shaped model whose output depends on the starting noise."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.3))
        self.config = _config()
        self.representation = get_representation("complex", StftConfig(256, 64))
        self.scheduler_config = {"num_train_timesteps": 1000}
        self.adapters_seen = []

    def encode_condition(self, separated_img, mixture_img=None):
        return separated_img

    def forward(self, noisy, timesteps, condition, adapter_weights=None):
        self.adapters_seen.append(adapter_weights)
        return self.weight * noisy + 0.01 * condition


def _stereo(n_samples, sample_rate, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    tone = np.sin(2 * np.pi * 440 * t) * np.linspace(0.2, 1.0, n_samples)
    return np.stack([0.3 * tone, 0.1 * rng.standard_normal(n_samples)]).astype(np.float32)


def _rel_err(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


@pytest.mark.parametrize("sample_rate,n_samples", [(16000, 300), (16000, 9001),
                                                   (44100, 20000), (8000, 5000)])
def test_identity_model_returns_input(sample_rate, n_samples):
    audio = _stereo(n_samples, sample_rate)
    out = enhance(audio, sample_rate, RegressionFake(), batch_size=3)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert _rel_err(out, audio) <= 1e-5


def test_content_above_model_band_is_kept_from_input():
    rate, n = 44100, 44100
    t = np.arange(n) / rate
    low = 0.3 * np.sin(2 * np.pi * 1000 * t)
    high = 0.3 * np.sin(2 * np.pi * 12000 * t)  # above the 8 kHz Nyquist of a 16 kHz model
    out = enhance((low + high)[None].astype(np.float32), rate, RegressionFake(gain=0.0),
                  max_drop_db=None)
    inner = slice(2000, n - 2000)  # resampler edge transients at the clip's ends
    # The model silenced its band; the band above it passes untouched.
    assert _rel_err(out[0, inner], high[inner]) < 0.02


def test_silence_in_silence_out():
    model = NoisyDiffusionFake()
    out = enhance(np.zeros((2, 10000), np.float32), 22050, model, steps=2)
    assert np.array_equal(out, np.zeros((2, 10000), np.float32))
    assert model.adapters_seen == []  # no segment reached the model


def test_seed_decides_and_batching_does_not():
    audio = _stereo(12000, MODEL_RATE)
    model = NoisyDiffusionFake()
    a = enhance(audio, MODEL_RATE, model, steps=2, seed=1, batch_size=2)
    b = enhance(audio, MODEL_RATE, model, steps=2, seed=1, batch_size=16)
    c = enhance(audio, MODEL_RATE, model, steps=2, seed=2, batch_size=2)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert _rel_err(a, c) > 1e-3


def test_adapter_mix_reaches_model():
    model = NoisyDiffusionFake()
    enhance(_stereo(3000, MODEL_RATE), MODEL_RATE, model, steps=1,
            adapters="hf_loss:0.7,general:0.3")
    assert model.adapters_seen == [{"hf_loss": 0.7, "general": 0.3}]


def test_parse_adapters():
    assert parse_adapters("bleed") == {"bleed": 1.0}
    assert parse_adapters(" hf_loss:0.7, general:0.3") == {"hf_loss": 0.7, "general": 0.3}
    assert parse_adapters("auto") == "auto" and parse_adapters(None) is None
    for bad in ("reverb", "hf_loss:x", "hf_loss:-1", "general:0"):
        with pytest.raises(StemproverError):
            parse_adapters(bad)


def test_mono_vector_and_mixture_conditioning():
    model = RegressionFake()
    audio = _stereo(5000, MODEL_RATE)[0]
    out = enhance(audio, MODEL_RATE, model, mixture=np.stack([audio, audio]))
    assert out.shape == audio.shape
    assert all(has_mix for _, has_mix in model.calls)
    with pytest.raises(StemproverError, match="mixture"):
        enhance(audio, MODEL_RATE, model, mixture=audio[:-10])


def test_rejects_too_short_and_bad_rate():
    with pytest.raises(StemproverError, match="too short"):
        enhance(np.ones(100, np.float32), MODEL_RATE, RegressionFake())
    with pytest.raises(StemproverError, match="8-96 kHz"):
        enhance(np.ones(5000, np.float32), 4000, RegressionFake())


def test_file_is_streamed_to_same_result(tmp_path):
    rate = 22050
    audio = _stereo(3 * rate + 17, rate)
    src = tmp_path / "song vocals.wav"
    sf.write(src, audio.T, rate, subtype="FLOAT")
    enhancer = Enhancer(RegressionFake(gain=0.5), steps=1, batch_size=2)
    target = enhance_file(src, tmp_path / "out", enhancer)
    assert target == output_path(src, tmp_path / "out")
    assert target.name == "song vocals.enhanced.wav"
    written, written_rate = sf.read(target, dtype="float32", always_2d=True)
    assert written_rate == rate and written.shape == audio.T.shape
    in_memory = enhance(audio, rate, enhancer)
    np.testing.assert_allclose(written.T, in_memory, atol=1e-6)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_never_overwrites_an_input(tmp_path):
    src = tmp_path / "x.enhanced.wav"
    sf.write(src, _stereo(4000, MODEL_RATE).T, MODEL_RATE)
    same = tmp_path / "x.enhanced.enhanced.wav"
    sf.write(same, _stereo(4000, MODEL_RATE).T, MODEL_RATE)
    before = same.read_bytes()
    with pytest.raises(StemproverError, match="overwrite"):
        enhance_file(src, tmp_path, RegressionFake(), protect=(same,))
    assert same.read_bytes() == before


def test_auto_adapters_come_from_detectors(monkeypatch):
    import stemprover.inference.detectors as detectors
    import stemprover.inference.enhance as enhance_module

    scores = {"hf_loss": 0.8, "musical_noise": 0.0, "bleed": 0.1, "phase_smear": 0.3}
    calls = []

    def fake_detect(separated, sample_rate, mixture=None, **kwargs):
        calls.append((separated.shape, sample_rate, mixture is not None))
        return scores

    monkeypatch.setattr(enhance_module, "detect", fake_detect)
    model = NoisyDiffusionFake()
    enhance(_stereo(6000, MODEL_RATE), MODEL_RATE, model, steps=1, adapters="auto",
            mixture=2 * _stereo(6000, MODEL_RATE, seed=1))
    expected = detectors.adapter_weights(scores)
    row = torch.tensor([expected.get(name, 0.0) for name in ("hf_loss", "musical_noise",
                                                             "bleed", "general")])
    weights = model.adapters_seen[0]
    assert weights.shape[1] == 4
    torch.testing.assert_close(weights, row.expand(weights.shape[0], -1))
    assert calls == [((2, 6000), MODEL_RATE, True)]  # one window covers the whole clip


def test_model_sees_training_level_so_output_follows_input_level():
    from stemprover.inference.enhance import MODEL_LEVEL_RMS, level_gain

    assert level_gain(np.full(10, MODEL_LEVEL_RMS**2)) == pytest.approx(1.0)
    assert level_gain(np.zeros(10)) == 1.0
    assert level_gain(np.full(10, 1e-20)) == pytest.approx(100.0)  # capped at +40 dB
    audio = _stereo(5000, MODEL_RATE)
    model = NoisyDiffusionFake()
    loud = enhance(audio, MODEL_RATE, model, steps=2)
    quiet = enhance(0.05 * audio, MODEL_RATE, model, steps=2)
    # float32 STFTs: rounding is relative to the largest sample (the fake's output is large)
    np.testing.assert_allclose(quiet, 0.05 * loud, rtol=1e-3,
                               atol=1e-5 * float(np.abs(0.05 * loud).max()))


def test_auto_leaves_a_stem_without_artifacts_unchanged(monkeypatch):
    import stemprover.inference.enhance as enhance_module

    monkeypatch.setattr(enhance_module, "detect", lambda *a, **k: dict.fromkeys(
        ("hf_loss", "musical_noise", "bleed", "phase_smear"), 0.0))
    audio = _stereo(6000, MODEL_RATE)
    out = enhance(audio, MODEL_RATE, NoisyDiffusionFake(), steps=1, adapters="auto")
    np.testing.assert_array_equal(out, audio)


def test_validated_blend_scales_the_change():
    audio = _stereo(6000, MODEL_RATE)
    full_model, half_model, none_model = NoisyDiffusionFake(), NoisyDiffusionFake(), None
    full = enhance(audio, MODEL_RATE, full_model, steps=1, adapters="general")
    half_model.blend = {"general": 0.5}
    half = enhance(audio, MODEL_RATE, half_model, steps=1, adapters="general")
    np.testing.assert_allclose(half - audio, 0.5 * (full - audio), rtol=1e-4, atol=1e-6)
    none_model = NoisyDiffusionFake()
    none_model.blend = {"general": 0.0, "bleed": 1.0}
    np.testing.assert_array_equal(
        enhance(audio, MODEL_RATE, none_model, steps=1, adapters="general"), audio)
    mixed = enhance(audio, MODEL_RATE, none_model, steps=1, adapters={"general": 1, "bleed": 1})
    assert np.abs(mixed - audio).max() > 0  # half of bleed's alpha 1


@pytest.mark.parametrize("is_bridge,expected", [(True, 1), (False, 4)])
def test_default_steps_are_the_models_own(monkeypatch, is_bridge, expected):
    # a bridge model's one-step estimate scored best in 05; SDEdit starts from noise
    from stemprover.inference import enhance as module

    seen = []

    def sampler(model, separated, mixture=None, **kwargs):
        seen.append(kwargs["steps"])
        return separated

    monkeypatch.setattr(module, "sample_waves", sampler)
    model = NoisyDiffusionFake()
    model.is_bridge = is_bridge
    enhance(_stereo(3000, MODEL_RATE), MODEL_RATE, model)
    enhance(_stereo(3000, MODEL_RATE), MODEL_RATE, model, steps=3)
    assert seen == [expected, 3]


def _music(n_samples, sample_rate, seed=0, channels=2):
    """Harmonic notes over a little noise, like the clips of the benchmark."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    pitch = 110.0 * 2 ** (rng.integers(0, 36) / 12)
    tone = sum(np.sin(2 * np.pi * k * pitch * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    audio = 0.2 * tone + 0.01 * rng.standard_normal((channels, n_samples))
    return audio.astype(np.float32)


def _level_db(out, audio):
    return 10 * np.log10(np.sum(out.astype(np.float64) ** 2) / np.sum(audio.astype(np.float64) ** 2))


def test_a_stem_equal_to_its_mixture_comes_back_unchanged():
    audio = _music(20000, 22050)
    out = enhance(audio, 22050, RegressionFake(gain=0.3), mixture=audio)  # shrinks -10 dB
    assert abs(_level_db(out, audio)) < 0.1
    np.testing.assert_allclose(out, audio, atol=1e-6)  # the residual is zero: nothing moves


def test_the_change_stays_within_the_residual_of_the_mixture():
    audio, other = _music(20000, 22050, seed=1), _music(20000, 22050, seed=2)
    mixture = audio + 0.05 * other  # the rest of the song is 26 dB below the stem
    out = enhance(audio, 22050, RegressionFake(gain=0.0), mixture=mixture, max_drop_db=None)
    inner = slice(1000, -1000)  # filter edge effects at the clip's ends
    change = np.sqrt(np.mean((out - audio)[:, inner] ** 2))
    assert change < 2 * np.sqrt(np.mean((0.05 * other[:, inner]) ** 2))  # silenced otherwise


def test_a_dc_offset_passes_through():
    rate = 22050
    audio = 0.4 + 0.05 * _music(rate, rate)
    for model in (RegressionFake(gain=0.5), RegressionFake(gain=1.5)):
        out = enhance(audio, rate, model)
        np.testing.assert_allclose(out.mean(axis=1), audio.mean(axis=1), atol=2e-3)


def test_the_level_guard_caps_each_bands_drop_and_leaves_rises():
    rate = 22050
    audio = _music(2 * rate, rate, seed=3)
    unguarded = enhance(audio, rate, RegressionFake(gain=0.5), max_drop_db=None)
    assert _level_db(unguarded, audio) < -6  # a compressed picture halved
    shrunk = enhance(audio, rate, RegressionFake(gain=0.5))
    assert -0.5 - 0.05 <= _level_db(shrunk, audio) < 0
    raised = enhance(audio, rate, RegressionFake(gain=2.0))  # a rise is left alone
    assert _level_db(raised, audio) > 6
    np.testing.assert_allclose(
        raised, enhance(audio, rate, RegressionFake(gain=2.0), max_drop_db=None), atol=1e-6)


def test_a_compiled_model_keeps_the_compilers_messages_off_the_terminal(capfd):
    from stemprover.inference.enhance import QuietCompiled

    def scaled(x):
        return x * float(x.sum().item())  # .item() breaks the graph: torch warns about it

    compiled = QuietCompiled(torch.compile(scaled, backend="eager"))  # eager: no C++ build
    x = torch.ones(3)
    assert torch.equal(compiled(x), scaled(x))
    assert "Graph break" not in capfd.readouterr().err

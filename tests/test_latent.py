"""Spectrogram autoencoder: padding round trip, training, save/load and the reconstruction report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stemprover.dsp.spectral import StftConfig, get_representation, wave_to_image
from stemprover.errors import StemproverError
from stemprover.model.autoencoder import (
    SpectrogramAutoencoder,
    autoencoder_config,
    load_autoencoder,
)
from stemprover.train.autoencoder import reconstruction_report, train_autoencoder
from stemprover.train.losses import LossConfig, PhaseAwareLoss

SAMPLE_RATE = 8000
STFT = StftConfig(n_fft=64, hop_length=16)
REP = get_representation("complex", STFT)


def tones(n: int = 8, samples: int = 496, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with random pitch, plus a little noise: ``(n, samples)``."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SAMPLE_RATE
    waves = []
    for _ in range(n):
        f0 = 150 + 500 * float(torch.rand(1, generator=generator))
        wave = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))
        waves.append(0.3 * wave + 0.01 * torch.randn(samples, generator=generator))
    return torch.stack(waves)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images = wave_to_image(tones(), REP)
    cfg = autoencoder_config("smoke", in_channels=2, batch_size=4, learning_rate=1e-2)
    out_dir = tmp_path_factory.mktemp("ae")
    ae, log = train_autoencoder(images, cfg, out_dir, steps=40, progress=False)
    return ae, log, images, out_dir


@pytest.mark.parametrize(("profile", "factor"), [("smoke", 4), ("gpu", 8)])
def test_shapes_round_trip_with_padding(profile, factor):
    overrides = {"block_out_channels": (8, 8, 8, 8)} if profile == "gpu" else {}
    ae = SpectrogramAutoencoder(autoencoder_config(profile, in_channels=2, **overrides)).eval()
    assert ae.factor == factor
    images = torch.randn(2, 2, 33, 30)
    with torch.no_grad():
        latents = ae.encode(images)
        assert latents.shape == (2, 4, math.ceil(33 / factor), math.ceil(30 / factor))
        assert ae.decode(latents, size=(33, 30)).shape == images.shape
        padded = (2, 2, latents.shape[2] * factor, latents.shape[3] * factor)
        assert ae.decode(latents).shape == padded
        assert ae(images).shape == images.shape
    with pytest.raises(StemproverError, match="expected images"):
        ae.encode(torch.randn(2, 1, 33, 30))


def test_training_reduces_reconstruction_error(trained):
    ae, log, images, _ = trained
    assert list(log.columns[:4]) == ["step", "loss", "l1", "kl"] and len(log) == 40
    untrained = SpectrogramAutoencoder(ae.cfg).eval()
    with torch.no_grad():
        before = (untrained(images) - images).abs().mean()
        after = (ae(images) - images).abs().mean()
    assert float(after) < 0.6 * float(before)
    assert log["l1"].tail(5).mean() < 0.6 * log["l1"].head(5).mean()
    # latents are scaled to about unit variance for the diffusion model
    with torch.no_grad():
        assert 0.7 < float(ae.encode(images).std()) < 1.4


def test_training_is_deterministic_and_takes_an_extra_loss():
    images = wave_to_image(tones(4, seed=1), REP)
    cfg = autoencoder_config("smoke", in_channels=2, batch_size=2, seed=3)
    extra = PhaseAwareLoss(LossConfig(diffusion=0.0, mrstft=0.0), REP, STFT, SAMPLE_RATE)
    _, log_a = train_autoencoder(images, cfg, None, steps=3, loss_fn=extra, progress=False)
    from accelerate import Accelerator

    _, log_b = train_autoencoder(
        images, cfg, None, steps=3, loss_fn=extra, progress=False, accelerator=Accelerator()
    )
    assert {"complex", "phase_cosine", "inst_freq"} <= set(log_a.columns)
    assert log_a.equals(log_b)
    with pytest.raises(StemproverError, match="training step"):
        train_autoencoder(images, cfg, None, steps=0)
    with pytest.raises(StemproverError, match="no spectrogram images"):
        train_autoencoder(images[:0], cfg, None, steps=1)


def test_save_and_load_give_identical_outputs(trained, tmp_path):
    ae, _, images, out_dir = trained
    loaded = load_autoencoder(out_dir)
    assert loaded.scaling_factor == pytest.approx(ae.scaling_factor)
    with torch.no_grad():
        assert torch.equal(loaded.encode(images), ae.encode(images))
        assert torch.equal(loaded(images), ae(images))
    with pytest.raises(StemproverError, match="not a StemProver autoencoder"):
        load_autoencoder(tmp_path)
    ae.save_pretrained(tmp_path / "copy")
    meta_path = tmp_path / "copy" / "stemprover_autoencoder.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["block_out_channels"] = [8, 16]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StemproverError, match="block_out_channels"):
        load_autoencoder(tmp_path / "copy")


class Identity:
    """A perfect "autoencoder": the latents are the images themselves."""

    def encode(self, images):
        return images

    def decode(self, latents, size=None):
        return latents if size is None else latents[..., : size[0], : size[1]]


def test_reconstruction_report(trained):
    ae, _, _, _ = trained
    waves = tones(3, seed=2)
    report = reconstruction_report(ae, waves, REP, STFT, SAMPLE_RATE, batch_size=2)
    assert set(report) == {
        "image_mse",
        "image_snr_db",
        "si_sdr_db",
        "lsd_db",
        "phase_dev_rad",
        "n_waves",
    }
    assert all(math.isfinite(v) for v in report.values())
    assert report["n_waves"] == 3 and report["phase_dev_rad"] > 0
    perfect = reconstruction_report(Identity(), waves, REP, STFT, SAMPLE_RATE)
    assert perfect["phase_dev_rad"] == pytest.approx(0.0, abs=1e-4)
    assert perfect["image_mse"] == 0.0 and perfect["image_snr_db"] > 100
    assert perfect["si_sdr_db"] > 60 and perfect["lsd_db"] < 0.01
    assert perfect["si_sdr_db"] > report["si_sdr_db"]
    with pytest.raises(StemproverError, match="waves"):
        reconstruction_report(Identity(), waves[0], REP, STFT, SAMPLE_RATE)


def test_untrained_latent_bridge_returns_its_input_despite_reconstruction_error(trained):
    """Latent mode decodes only the correction, so the autoencoder's error does not cap it."""
    from stemprover.inference.sampler import sample_waves
    from stemprover.model import StemProverModel, model_config

    ae = trained[0]
    cfg = model_config("smoke", mode="latent", sample_rate=SAMPLE_RATE, n_fft=STFT.n_fft,
                       hop_length=STFT.hop_length, latent_channels=ae.vae.config.latent_channels,
                       block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4,
                       cross_attention_dim=16, condition_channels=8)
    model = StemProverModel(cfg, autoencoder=ae.vae).eval()
    model.add_adapters()
    separated = tones(2, seed=3)
    images = wave_to_image(separated, REP)
    with torch.no_grad():
        rebuilt = ae(images)
    assert (rebuilt - images).abs().max() > 1e-3  # the autoencoder is lossy
    out = sample_waves(model, separated, tones(2, seed=4), steps=2)
    torch.testing.assert_close(out, separated, rtol=0, atol=1e-5)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_latent_rows_of_every_profile_build_without_fold_or_gain(profile):
    """The 06 latent row of a profile that folds frequency in pixel mode still builds."""
    from stemprover.model import model_config
    from stemprover.project.config import load_profile

    pixel = model_config(profile)
    latent = model_config(profile, mode="latent")
    assert latent.mode == "latent"
    assert latent.freq_fold == 1 and latent.mask_output is False
    # the profile's fold still applies to its pixel models
    assert pixel.freq_fold == load_profile(profile)["model"].get("freq_fold", 1)

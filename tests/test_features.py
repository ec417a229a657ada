"""Mask-domain input features: what each channel means, and where the models read them."""

import dataclasses

import pytest
import torch

from stemprover.dsp.spectral import StftConfig, get_representation, wave_to_image
from stemprover.model import RegressionModel, StemProverModel, model_config
from stemprover.model.config import config_from_dict
from stemprover.model.features import N_MASK_FEATURES, mask_features

REP = get_representation("complex", StftConfig(n_fft=64, hop_length=16))


def _pictures(gain=0.5, seed=0):
    wave = torch.randn(2, 1024, generator=torch.Generator().manual_seed(seed))
    mixture = wave_to_image(wave, REP)
    return wave_to_image(gain * wave, REP), mixture


def test_features_read_the_implied_mask_and_phase_agreement():
    separated, mixture = _pictures(gain=0.5)
    feats = mask_features(separated, mixture, REP, scale=3.0)
    assert feats.shape == (2, N_MASK_FEATURES, *separated.shape[-2:])
    loud = REP.split_mag_phase(mixture)[0][:, 0] > 1e-3
    assert torch.allclose(feats[:, 2][loud], torch.full_like(feats[:, 2][loud], 0.5), atol=1e-3)
    assert torch.allclose(feats[:, 3][loud], torch.ones_like(feats[:, 3][loud]), atol=1e-4)
    s_mag = REP.split_mag_phase(separated)[0][:, 0]
    assert torch.allclose(feats[:, 0], torch.log1p(3.0 * s_mag))


def test_features_ratio_is_clipped_and_opposite_phase_reads_minus_one():
    separated, mixture = _pictures(gain=-4.0)  # four times louder, phase flipped
    feats = mask_features(separated, mixture, REP)
    loud = REP.split_mag_phase(mixture)[0][:, 0] > 1e-3
    assert feats[:, 2][loud].min() == pytest.approx(2.0)
    assert torch.allclose(feats[:, 3][loud], -torch.ones_like(feats[:, 3][loud]), atol=1e-4)


def test_features_without_a_mixture_are_zero_beyond_the_stem():
    separated, mixture = _pictures()
    dropped = mixture.clone()
    dropped[1] = 0.0  # mixture dropout on the second item
    with_none = mask_features(separated, None, REP)
    with_drop = mask_features(separated, dropped, REP)
    assert with_none[:, 1:].abs().max() == 0
    assert with_drop[1, 1:].abs().max() == 0
    assert with_drop[0, 1:].abs().max() > 0
    assert torch.isfinite(with_drop).all()


def test_regression_reads_features_and_is_still_the_identity_at_start():
    cfg = model_config("smoke")
    assert cfg.mask_features
    plain = RegressionModel(dataclasses.replace(cfg, mask_features=False))
    model = RegressionModel(cfg)
    extra = N_MASK_FEATURES * cfg.freq_fold
    assert model.unet.config.in_channels == plain.unet.config.in_channels + extra
    rep = model.representation
    wave = torch.randn(1, cfg.segment_samples, generator=torch.Generator().manual_seed(1))
    separated, mixture = wave_to_image(0.3 * wave, rep), wave_to_image(wave, rep)
    assert torch.equal(model(separated, mixture), separated)


def test_control_embedding_reads_the_features():
    # without frequency attention the magnitude path sees no phase, and the phase path's
    # zero convolution keeps it out; a stem and its negative then differ in the features alone
    cfg = dataclasses.replace(model_config("smoke"), freq_attention=False)
    model = StemProverModel(cfg)
    n_pictures = 2
    first = model.condition_embedding.magnitude_path[0]
    assert first.in_channels == (n_pictures + N_MASK_FEATURES) * cfg.freq_fold
    rep = model.representation
    wave = torch.randn(1, cfg.segment_samples, generator=torch.Generator().manual_seed(2))
    mixture = wave_to_image(wave, rep)
    with torch.no_grad():
        torch.nn.init.normal_(model.condition_embedding.zero_magnitude.weight)
        same = model.encode_condition(wave_to_image(0.5 * wave, rep), mixture).control
        flipped = model.encode_condition(wave_to_image(-0.5 * wave, rep), mixture).control
    assert not torch.allclose(same, flipped)


def test_configs_saved_before_the_features_load_without_them():
    values = dataclasses.asdict(model_config("smoke"))
    values.pop("mask_features")
    assert config_from_dict(values).mask_features is False
    values["mask_features"] = True
    assert config_from_dict(values).mask_features is True

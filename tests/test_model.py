"""StemProverModel: zero-initialised control, adapters, padding, persistence, SD-shaped bases."""

from __future__ import annotations

import json

import pytest
import torch

from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
from stemprover.model import RegressionModel, StemProverModel, load_base, load_model, model_config
from stemprover.model.adapters import n_adapter_parameters
from stemprover.model.freq_attention import FrequencyAttention


def tiny_config(**overrides):
    values = dict(block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4,
                  cross_attention_dim=16, condition_channels=8, n_condition_tokens=2,
                  lora_rank=2, lora_alpha=2.0,
                  freq_fold=1)  # these tests feed model-space pictures; the fold: test_bridge.py
    values.update(overrides)
    return model_config("smoke", **values)


def inputs(batch=2, n_freqs=33, n_frames=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sep, mix, noisy = (torch.randn(batch, 2, n_freqs, n_frames, generator=gen) for _ in range(3))
    return sep * 0.1, mix * 0.1, noisy, torch.tensor([10, 900])[:batch]


@torch.no_grad()
def perturb(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every trainable-by-design tensor random values (zero convs, LoRA B, ...)."""
    gen = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        param.add_(torch.randn(param.shape, generator=gen) * 0.05)


@pytest.mark.parametrize("control", ["controlnet", "concat"])
def test_controlled_model_equals_base_at_init(control):
    torch.manual_seed(0)
    model = StemProverModel(tiny_config(control=control)).eval()
    sep, mix, noisy, t = inputs()
    with torch.no_grad():  # a fresh bridge base is the identity: its output layer is zero
        assert torch.equal(model(noisy, t, None, None), noisy)
    perturb(model.unet.conv_out)  # stands for a pretrained base
    model.add_adapters()
    with torch.no_grad():
        base = model(noisy, t, None, None)
        assert not torch.allclose(base, noisy)
        cond = model.encode_condition(sep, mix)
        assert torch.equal(model(noisy, t, cond, {"general": 1.0}), base)
        # 0.3 * tokens + 0.7 * tokens rounds in the last bit, hence the tolerance
        mixed = model(noisy, t, cond, {"hf_loss": 0.3, "bleed": 0.7})
        torch.testing.assert_close(mixed, base, rtol=0, atol=1e-5)
    # once the control branch has learned something, the condition matters
    if control == "controlnet":
        perturb(model.condition_embedding)
        perturb(model.controlnet.controlnet_down_blocks)
    else:
        perturb(model.concat_conditioning)
    with torch.no_grad():
        cond = model.encode_condition(sep, mix)
        assert not torch.allclose(model(noisy, t, cond, {"general": 1.0}), base)


def test_any_size_is_padded_and_cropped():
    model = StemProverModel(tiny_config()).eval()
    sep, mix, noisy, t = inputs(n_freqs=17, n_frames=7)
    with torch.no_grad():
        out = model(noisy, t, model.encode_condition(sep, mix))
    assert out.shape == noisy.shape
    with pytest.raises(StemproverError, match="condition was encoded"):
        model(noisy[..., :5], t, model.encode_condition(sep, mix))


def test_adapter_mixing_by_name_and_per_item_rows():
    torch.manual_seed(0)
    model = StemProverModel(tiny_config()).eval()
    model.add_adapters()
    perturb(model.unet)  # LoRA B matrices become non-zero
    sep, mix, noisy, t = inputs()
    with torch.no_grad():
        cond = model.encode_condition(sep, mix)
        hf = model(noisy, t, cond, {"hf_loss": 1.0})
        general = model(noisy, t, cond, {"general": 2.0})  # weights are normalised
        rows = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
        mixed = model(noisy, t, cond, rows)
    assert not torch.allclose(hf, general)
    torch.testing.assert_close(mixed[0], hf[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[1], general[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(StemproverError, match="unknown adapter"):
        model(noisy, t, cond, {"reverb": 1.0})


def test_save_load_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    model = StemProverModel(tiny_config(formulation="sdedit", prediction_type="epsilon")).eval()
    model.add_adapters(("general", "bleed"))
    perturb(model)
    sep, mix, noisy, t = inputs()
    with torch.no_grad():
        expected = model(noisy, t, model.encode_condition(sep, mix), {"bleed": 0.5, "general": 0.5})
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "adapters" / "bleed" / "adapter_model.safetensors").exists()
    loaded = load_model(tmp_path / "m")
    assert loaded.adapter_names == ["general", "bleed"]
    assert loaded.scheduler_config["prediction_type"] == "epsilon"
    with torch.no_grad():
        got = loaded(noisy, t, loaded.encode_condition(sep, mix), {"bleed": 0.5, "general": 0.5})
    assert torch.equal(got, expected)
    meta_path = tmp_path / "m" / "stemprover.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["cross_attention_dim"] = 24
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StemproverError, match="does not match"):
        load_model(tmp_path / "m")


def test_bridge_scheduler_saved_and_folder_names_no_machine_path(tmp_path):
    model = StemProverModel(tiny_config(base_path=str(tmp_path / "somewhere" / "base")))
    model.blend = {"general": 0.7}
    model.save_pretrained(tmp_path / "b")
    saved = json.loads((tmp_path / "b" / "scheduler" / "scheduler_config.json").read_text())
    assert saved["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert saved["shift"] == 1.0
    for config in (tmp_path / "b").rglob("*.json"):
        assert str(tmp_path) not in config.read_text(), config
    loaded = load_model(tmp_path / "b")
    assert loaded.blend == {"general": 0.7}
    assert loaded.is_bridge


def test_v_prediction_scheduler_saved(tmp_path):
    model = StemProverModel(tiny_config(formulation="sdedit", prediction_type="v_prediction"))
    model.save_pretrained(tmp_path / "v")
    saved = json.loads((tmp_path / "v" / "scheduler" / "scheduler_config.json").read_text())
    assert saved["prediction_type"] == "v_prediction"
    assert saved["num_train_timesteps"] == 1000


def test_frequency_attention_works_within_frames_only():
    torch.manual_seed(0)
    attention = FrequencyAttention(8, n_heads=2).eval()
    features = torch.randn(1, 8, 12, 5)
    changed = features.clone()
    changed[..., 3] += 1.0
    with torch.no_grad():
        diff = (attention(changed) - attention(features)).abs().amax(dim=(0, 1, 2))
    assert diff[3] > 1e-3
    assert torch.all(diff[[0, 1, 2, 4]] == 0)
    assert torch.equal(FrequencyAttention(8, enabled=False)(features), features)


def test_regression_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = RegressionModel(tiny_config()).eval()
    sep, mix, _, _ = inputs(n_freqs=31, n_frames=9)
    with torch.no_grad():
        out = model(sep, mix)
    assert out.shape == sep.shape
    model.save_pretrained(tmp_path / "r")
    assert isinstance(load_model(tmp_path / "r"), RegressionModel)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "r")(sep, mix), out)


def test_stable_diffusion_shaped_checkpoint_loads_as_base(tmp_path):
    """A tiny SD-shaped pipeline folder (unet/ + vae/) goes through the base-loading path."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=4, out_channels=4, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, cross_attention_dim=24, attention_head_dim=4, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, scaling_factor=0.18215,
    )
    unet.save_pretrained(tmp_path / "sd" / "unet")
    vae.save_pretrained(tmp_path / "sd" / "vae")
    (tmp_path / "sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    model = load_base(tmp_path / "sd", tiny_config())
    assert model.config.mode == "latent" and model.config.cross_attention_dim == 24
    model.add_adapters()
    sep, mix, _, t = inputs(n_freqs=33, n_frames=12)
    latents = model.encode_image(sep)
    assert latents.shape == (2, 4, 17, 6)  # 2x autoencoder on 33 -> 34 bins, 12 frames
    with torch.no_grad():
        base = model(latents, t, None, None)
        cond = model.encode_condition(sep, mix)
        assert torch.equal(model(latents, t, cond, {"general": 1.0}), base)
    perturb(model.unet)
    with torch.no_grad():
        expected = model(latents, t, cond, {"hf_loss": 1.0})
        assert model.decode_image(expected, (33, 12)).shape == sep.shape
    assert n_adapter_parameters(model.unet, "hf_loss") > 0
    model.save_pretrained(tmp_path / "tuned")
    loaded = load_model(tmp_path / "tuned")
    with torch.no_grad():
        got = loaded(latents, t, loaded.encode_condition(sep, mix), {"hf_loss": 1.0})
    assert torch.equal(got, expected)


def test_pixel_base_with_wrong_channels_is_refused(tmp_path):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )
    unet.save_pretrained(tmp_path / "u")
    with pytest.raises(StemproverError, match="no vae"):
        load_base(tmp_path / "u", tiny_config())
    with pytest.raises(StemproverError, match="not found"):
        load_base(tmp_path / "missing", tiny_config())


def test_model_config_profiles_and_checks():
    smoke, cpu = model_config("smoke"), model_config("cpu")
    assert cpu.sample_rate == 22050 and cpu.n_fft == 512  # from the profile's common section
    assert cpu.block_out_channels != smoke.block_out_channels
    assert smoke.segment_samples == (smoke.segment_frames - 1) * smoke.hop_length
    with pytest.raises(StemproverError, match="unknown key"):
        model_config("smoke", n_layers=3)
    with pytest.raises(StemproverError, match="norm_num_groups"):
        model_config("smoke", block_out_channels=(12, 32))
    with pytest.raises(StemproverError, match="expected one of"):
        model_config("smoke", prediction_type="sample")


def test_branch_with_live_embedding_merge_still_starts_as_the_base():
    """Without zero merge convolutions the branch's zero output heads alone keep the identity."""
    torch.manual_seed(0)
    model = StemProverModel(tiny_config(control="branch", control_zero_embedding=False)).eval()
    assert model.condition_embedding.zero_magnitude.weight.abs().sum() > 0
    perturb(model.unet.conv_out)  # stands for a pretrained base
    model.add_adapters()
    sep, mix, noisy, t = inputs()
    with torch.no_grad():
        base = model(noisy, t, None, None)
        cond = model.encode_condition(sep, mix)
        assert cond.control.abs().sum() > 0  # the condition is live...
        assert torch.equal(model(noisy, t, cond, {"general": 1.0}), base)  # ...the output is not
    zero = StemProverModel(tiny_config(control="branch")).condition_embedding.zero_magnitude
    assert zero.weight.abs().sum() == 0  # ControlNet's recipe by default


@pytest.mark.parametrize("direct", [True, False])
def test_branch_first_convolution_reads_the_mixture_only_with_direct_input(direct):
    """With the embedding still at zero, only the direct input lets the mixture reach the branch."""
    torch.manual_seed(0)
    model = StemProverModel(tiny_config(control="branch", control_direct_input=direct)).eval()
    assert (model.concat_conditioning is not None) == direct
    if direct:  # an ordinary convolution: the zero output heads keep the identity
        assert model.concat_conditioning.extra.weight.abs().sum() > 0
    perturb(model.control_out)
    sep, mix, noisy, t = inputs()
    with torch.no_grad():
        first = model(noisy, t, model.encode_condition(sep, mix), {"general": 1.0})
        other = model(noisy, t, model.encode_condition(sep, mix * 3.0), {"general": 1.0})
    assert torch.equal(first, other) != direct


def test_coarsest_attention_layout_trains_adapters_and_round_trips(tmp_path):
    """Cross-attention only at the deepest level: still the identity, LoRA still attaches."""
    from stemprover.model.unet import attention_levels

    torch.manual_seed(0)
    cfg = tiny_config(attention_levels="coarsest", block_out_channels=(8, 16, 16))
    model = StemProverModel(cfg).eval()
    assert model.unet.config.down_block_types == (
        "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    assert attention_levels(model.unet.config.down_block_types) == "coarsest"
    assert attention_levels(StemProverModel(tiny_config()).unet.config.down_block_types) == "sd"
    sep, mix, noisy, t = inputs(n_freqs=32, n_frames=16)
    perturb(model.unet.conv_out)
    model.add_adapters()
    assert n_adapter_parameters(model.unet, "bleed") > 0
    with torch.no_grad():
        base = model(noisy, t, None, None)
        cond = model.encode_condition(sep, mix)
        assert torch.equal(model(noisy, t, cond, {"bleed": 1.0}), base)
    perturb(model.unet.down_blocks[-1].attentions)  # the only attention left, with its LoRA
    with torch.no_grad():
        moved = model(noisy, t, cond, {"bleed": 1.0})
    assert not torch.allclose(moved, base)
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.attention_levels == "coarsest"
    with torch.no_grad():
        assert torch.equal(loaded(noisy, t, loaded.encode_condition(sep, mix), {"bleed": 1.0}),
                           moved)
    with pytest.raises(StemproverError, match="attention_levels"):
        tiny_config(attention_levels="all")


def test_gain_on_mixture_multiplies_the_additive_half_as_complex_numbers():
    from stemprover.model.unet import fold_freq, gain_on_mixture

    gen = torch.Generator().manual_seed(0)
    fold = 2
    gain, mix, rest = (torch.randn(1, 2, 8, 5, generator=gen) for _ in range(3))
    out = torch.cat([fold_freq(gain, fold), fold_freq(rest, fold)], 1)
    got = gain_on_mixture(out, fold_freq(mix, fold), fold, complex_pairs=True)
    product = torch.complex(gain[:, 0], gain[:, 1]) * torch.complex(mix[:, 0], mix[:, 1])
    expected = fold_freq(torch.stack([product.real, product.imag], 1), fold)
    torch.testing.assert_close(got[:, : 2 * fold], expected)
    assert torch.equal(got[:, 2 * fold :], fold_freq(rest, fold))  # the gain on x is kept


@pytest.mark.parametrize("mixture_gain", [False, True])
def test_branch_and_regression_take_from_the_mixture_with_mixture_gain(mixture_gain):
    """A unit real part in the additive half of F adds the mixture itself, or a constant."""
    torch.manual_seed(0)
    cfg = tiny_config(mixture_gain=mixture_gain, freq_fold=2)
    assert cfg.mixture_gain == mixture_gain
    gen = torch.Generator().manual_seed(3)
    sep, mix = (torch.randn(2, 2, 32, 12, generator=gen) for _ in range(2))
    fold, unit = cfg.freq_fold, torch.zeros(4 * cfg.freq_fold)
    unit[:fold] = 1.0  # the real part of the additive half: gain 1 on the mixture, or +1
    model = StemProverModel(cfg).eval()
    model.add_adapters()
    with torch.no_grad():
        model.control_out[ADAPTERS.index("general")].bias.copy_(unit)
        x = model.encode_image(sep)
        t = torch.full((2,), 1000.0)
        out = model(x, t, model.encode_condition(sep, mix), {"general": 1.0})
    added = out - x  # the base is still the identity
    expected = model.encode_image(mix) if mixture_gain else torch.zeros_like(x)
    if not mixture_gain:
        expected[:, :fold] = 1.0
    torch.testing.assert_close(added, expected, rtol=0, atol=1e-5)
    regression = RegressionModel(cfg).eval()
    with torch.no_grad():
        regression.unet.conv_out.bias.copy_(unit)
        got = regression(sep, mix) - sep
    expected = mix if mixture_gain else model.decode_image(expected, sep.shape[-2:])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_condition_cache_keeps_the_mixture_when_repeated_and_selected():
    model = StemProverModel(tiny_config(mixture_gain=True)).eval()
    sep, mix, _, _ = inputs()
    with torch.no_grad():
        cache = model.encode_condition(sep, mix)
    encoded = model.encode_image(mix)  # padded to the U-Net's multiple, like the input
    assert torch.equal(cache.mixture[..., : encoded.shape[-2], : encoded.shape[-1]], encoded)
    assert torch.equal(cache.repeat(2).mixture, cache.mixture.repeat_interleave(2, 0))
    assert torch.equal(cache.select(torch.tensor([1])).mixture, cache.mixture[1:])
    plain = StemProverModel(tiny_config()).eval()
    assert plain.encode_condition(sep, mix).mixture is None  # no gain on the mixture: not kept

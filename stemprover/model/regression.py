"""The regression baseline: the same U-Net, mapping separated to clean in one pass.

Without it a paper cannot say what diffusion adds. It sees the same condition (the separated
picture, optionally stacked with the mixture), is trained on the same pairs with the same losses
and budget, and predicts a residual: ``clean = separated + unet([separated, mixture])``, so
that an untrained model starts at the identity-like input rather than at zero. Its last
convolution starts at zero, so the untrained model is exactly the identity, like the bridge's
first step, which is what this baseline stands for: the same network at ``t = 1`` only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from stemprover.dsp.spectral import StftConfig, get_representation
from stemprover.errors import StemproverError
from stemprover.model.config import ModelConfig, config_from_dict
from stemprover.model.features import N_MASK_FEATURES, mask_features
from stemprover.model.serialize import (
    CONFIG_FILE,
    EMBEDDINGS,
    FORMAT,
    _plain,
    load_embeddings,
    load_unet,
    read_meta,
    save_unet,
    version,
    write_folder,
)
from stemprover.model.unet import (
    apply_output,
    build_unet,
    crop,
    fold_freq,
    gain_on_mixture,
    pad_to_multiple,
    unet_downsample_factor,
    unfold_freq,
)


class _Tokens(nn.Module):
    def __init__(self, n_tokens: int, width: int):
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, n_tokens, width) * 0.02)


class RegressionModel(nn.Module):
    """U-Net regression from separated (and mixture) pictures to clean pictures.

    Args:
        config: The same ModelConfig as the diffusion model (pixel mode only).
        unet: A prebuilt U-Net (used when loading).
    """

    kind = "regression"

    def __init__(self, config: ModelConfig, unet=None):
        super().__init__()
        if config.mode != "pixel":
            raise StemproverError("the regression baseline runs in pixel mode only")
        self.config = config
        self.stft = StftConfig(n_fft=config.n_fft, hop_length=config.hop_length)
        self.representation = get_representation(config.representation, self.stft)
        channels = self.representation.channels * config.freq_fold
        n_in = channels * (2 if config.use_mixture else 1)
        if config.use_mixture and config.mask_features:
            n_in += N_MASK_FEATURES * config.freq_fold
        n_out = channels * (2 if config.mask_output else 1)
        self.unet = unet if unet is not None else build_unet(
            config, n_in, n_out, zero_output=True
        )
        if self.unet.config.in_channels != n_in or self.unet.config.out_channels != n_out:
            raise StemproverError(
                f"regression U-Net has {self.unet.config.in_channels}->"
                f"{self.unet.config.out_channels} channels, the config needs {n_in}->{n_out}"
            )
        self.artifact_embedding = _Tokens(config.n_condition_tokens, config.cross_attention_dim)

    def forward(
        self, separated_img: torch.Tensor, mixture_img: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Separated picture ``(B, C, F, T)`` (+ mixture) -> clean picture ``(B, C, F, T)``."""
        scale, fold = self.config.image_scale, self.config.freq_fold
        start = fold_freq(separated_img * scale, fold)
        inputs = [start]
        if self.config.use_mixture:
            mix = torch.zeros_like(separated_img) if mixture_img is None else mixture_img
            if mix.shape != separated_img.shape:
                raise StemproverError("mixture picture does not match the separated picture")
            inputs.append(fold_freq(mix * scale, fold))
            mixture = inputs[-1]
            if self.config.mask_features:
                features = mask_features(separated_img, mix, self.representation, scale)
                inputs.append(fold_freq(features, fold))
        x, size = pad_to_multiple(torch.cat(inputs, 1), unet_downsample_factor(self.unet))
        tokens = self.artifact_embedding.table.expand(x.shape[0], -1, -1).to(x.dtype)
        timesteps = torch.zeros(x.shape[0], device=x.device, dtype=torch.long)
        out = crop(self.unet(x, timesteps, encoder_hidden_states=tokens).sample, size)
        complex_pairs = self.representation.name == "complex"
        if self.config.mixture_gain:  # F = g_m * m + g_x * x, as the bridge's branch
            out = gain_on_mixture(out, mixture, fold, complex_pairs)
        residual = apply_output(start, out, fold, complex_pairs)
        residual = unfold_freq(residual, fold, separated_img.shape[-2])
        return separated_img + residual / scale

    def save_pretrained(self, folder) -> None:
        """Write stemprover.json (kind "regression"), unet/ and embeddings.safetensors."""

        def fill(tmp):
            meta = {"kind": self.kind, "version": version(), "format": FORMAT,
                    "config": _plain(self.config), "has_control": False, "adapters": []}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
            save_unet(self.unet, tmp / "unet")
            state = {"artifact_embedding.table": self.artifact_embedding.table.detach().cpu()}
            save_file(state, tmp / EMBEDDINGS)

        write_folder(folder, fill)

    @classmethod
    def from_pretrained(cls, folder, device=None, dtype=None) -> RegressionModel:
        folder = Path(folder)
        meta = read_meta(folder, cls.kind)
        cfg = config_from_dict(meta["config"], where=str(folder / CONFIG_FILE))
        model = cls(cfg, unet=load_unet(folder / "unet"))
        load_embeddings(model, folder / EMBEDDINGS)
        model.eval()
        return model.to(device=device, dtype=dtype) if (device or dtype) else model


SIZE_TOLERANCE = 0.05
"""A matched regression U-Net has a parameter count within 5% of StemProver's."""


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def stemprover_size(config: ModelConfig) -> int:
    """Parameters of the StemProver model ``config`` builds: frozen base, control branch and
    every LoRA adapter, as 04 saves it."""
    from stemprover.model.stemprover_model import StemProverModel  # it imports this module's kin

    model = StemProverModel(config, with_control=True)
    model.add_adapters()
    return parameter_count(model)


def _scaled(widths: tuple[int, ...], scale: float, step: int) -> tuple[int, ...]:
    return tuple(max(step, int(round(w * scale / step)) * step) for w in widths)


def matched_config(config: ModelConfig, target: int | None = None) -> ModelConfig:
    """The regression U-Net's config with block widths whose parameter count is closest to
    ``target`` (default: :func:`stemprover_size` of ``config``).

    The widths keep the profile's proportions, scaled by one factor and rounded to multiples
    of the group-norm and attention-head widths, then the closest candidate is refined one
    level at a time by one such multiple.
    """
    import dataclasses
    import math

    target = stemprover_size(config) if target is None else int(target)
    step = math.lcm(config.norm_num_groups, config.attention_head_dim)
    base = tuple(config.block_out_channels)
    cache: dict[tuple[int, ...], int] = {}

    def size(widths: tuple[int, ...]) -> int:
        if widths not in cache:
            cfg = dataclasses.replace(config, block_out_channels=widths)
            cache[widths] = parameter_count(RegressionModel(cfg))
        return cache[widths]

    candidates = sorted({_scaled(base, 0.5 + 0.05 * i, step) for i in range(71)},
                        key=lambda w: (sum(w), w))
    low, high = 0, len(candidates) - 1  # parameters grow with the widths: bisect on them
    while low < high:
        middle = (low + high) // 2
        if size(candidates[middle]) < target:
            low = middle + 1
        else:
            high = middle
    best = min(candidates[max(0, low - 1): low + 1], key=lambda w: abs(size(w) - target))
    for level in range(len(best)):
        for delta in (-step, step):
            widths = tuple(w + delta if i == level else w for i, w in enumerate(best))
            if min(widths) >= step and abs(size(widths) - target) < abs(size(best) - target):
                best = widths
    return dataclasses.replace(config, block_out_channels=best)


def forward_gflops_per_audio_second(model: nn.Module, config: ModelConfig) -> float:
    """GFLOP of one forward pass over one training segment, per second of its audio.

    StemProver runs one bridge step (condition embedding, branch and base); the regression
    U-Net its single pass. Counted by ``torch.utils.flop_counter.FlopCounterMode`` on a
    batch of one segment of ``config.segment_frames`` frames.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from stemprover.dsp.spectral import wave_to_image

    wave = 0.1 * torch.randn(1, config.segment_samples, generator=torch.Generator().manual_seed(0))
    picture = wave_to_image(wave, model.representation)
    # with autograd on: the counter's module tracker expects it (the graph is dropped at once)
    with FlopCounterMode(display=False) as counter:
        if isinstance(model, RegressionModel):
            model(picture, picture)
        else:
            start = model.encode_image(picture)
            condition = model.encode_condition(picture, picture)
            model(start, torch.full((1,), 1000.0), condition)
    return counter.get_total_flops() / 1e9 / (config.segment_samples / config.sample_rate)


def model_sizes(stemprover: nn.Module, regression: nn.Module) -> dict:
    """``{"stemprover": {...}, "regression": {...}}``: parameters and forward GFLOP per audio
    second of both models (04 records it in its run.json for the paper)."""
    out = {}
    for name, model in (("stemprover", stemprover), ("regression", regression)):
        out[name] = {"parameters": parameter_count(model),
                     "block_out_channels": list(model.config.block_out_channels),
                     "gflops_per_audio_second": round(
                         forward_gflops_per_audio_second(model, model.config), 3)}
    return out

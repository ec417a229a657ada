"""The control branch: a ControlNet with phase-aware zero convolutions, or zero-init concatenation.

``controlnet`` mode (the default) builds ``ControlNetModel.from_unet`` (a trainable copy of the
base encoder whose outputs pass through zero-initialised 1x1 convolutions) and gives it its own
conditioning embedding, :class:`PhaseAwareConditioningEmbedding`: the compressed magnitude and the
phase features of the condition (the separated stem, optionally stacked with the mixture) go
through separate convolution paths, optionally mixed by frequency attention, and merge in two
zero-initialised convolutions. At initialisation the branch therefore adds exactly zero and the
controlled model equals the base.

The embedding is computed once per segment by ``StemProverModel.encode_condition`` and handed to
the ControlNet through :class:`PrecomputedCondition`, so sampling steps reuse it.

``concat`` mode (the ablation) adds the condition as extra input channels of the base's first
convolution whose weights start at zero. Because a convolution is linear in its input channels,
``conv_in([x, c]) = conv_in(x) + W_c * c``; :func:`added_to_conv_in` adds ``W_c * c`` to the
frozen ``conv_in`` output, which is that exact computation without touching the base weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from safetensors.torch import load_file
from torch import nn

from stemprover.errors import StemproverError
from stemprover.model.freq_attention import FrequencyAttention

CONTROLNET_WEIGHTS = "diffusion_pytorch_model.safetensors"


def zero_conv(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Conv2d:
    """A convolution whose weights and bias start at zero."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1)


def _path(in_channels: int, hidden: int, n_down: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.SiLU()]
    for _ in range(n_down):  # latent mode: reach the autoencoder's resolution
        layers += [nn.Conv2d(hidden, hidden, 3, padding=1, stride=2), nn.SiLU()]
    layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU()]
    return nn.Sequential(*layers)


class PhaseAwareConditioningEmbedding(nn.Module):
    """Separate magnitude and phase paths merged by zero-initialised convolutions.

    Args:
        magnitude_channels: Channels of the compressed magnitude input (1 per stacked picture).
        phase_channels: Channels of the phase features (2 per stacked picture: cos, sin).
        hidden: Width of each path.
        out_channels: Width of the ControlNet's first block (``block_out_channels[0]``).
        n_down: Stride-2 stages, ``log2`` of the autoencoder's downsampling (0 in pixel mode).
        freq_attention: Whether frequency attention mixes the two paths before the merge.
        n_heads: Heads of the frequency attention.
        zero_merge: Whether the merging convolutions start at zero (ControlNet's recipe). Where
            the branch's own output is a zero convolution, that already keeps the identity at
            the start, and a second zero layer in series leaves the condition without any
            gradient until the first has moved.
    """

    def __init__(
        self,
        magnitude_channels: int,
        phase_channels: int,
        hidden: int,
        out_channels: int,
        n_down: int = 0,
        freq_attention: bool = True,
        n_heads: int = 2,
        zero_merge: bool = True,
    ):
        super().__init__()
        self.magnitude_path = _path(magnitude_channels, hidden, n_down)
        self.phase_path = _path(phase_channels, hidden, n_down)
        self.freq_attention = FrequencyAttention(2 * hidden, n_heads, enabled=freq_attention)
        merge = zero_conv if zero_merge else _conv1x1
        self.zero_magnitude = merge(hidden, out_channels)
        self.zero_phase = merge(hidden, out_channels)

    def forward(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Embed a condition.

        Args:
            magnitude: ``(B, m, F, T)`` compressed magnitudes.
            phase: ``(B, p, F, T)`` phase features.

        Returns:
            ``(B, out_channels, F / 2**n_down, T / 2**n_down)``; zeros at initialisation
            when ``zero_merge``.
        """
        features = torch.cat([self.magnitude_path(magnitude), self.phase_path(phase)], dim=1)
        features = self.freq_attention(features)
        mag_features, phase_features = features.chunk(2, dim=1)
        return self.zero_magnitude(mag_features) + self.zero_phase(phase_features)


class PrecomputedCondition(nn.Module):
    """Stands in for the ControlNet's conditioning embedding: the input is already embedded."""

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return embedded


def make_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    """``ControlNetModel.from_unet`` (encoder copied from ``unet``, zero convs) with the
    conditioning embedding replaced by :class:`PrecomputedCondition`.

    Must be called before LoRA layers are injected into ``unet``.
    """
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(unet.config.block_out_channels[0],)
    )
    controlnet.controlnet_cond_embedding = PrecomputedCondition()
    return controlnet


def load_controlnet(folder: Path) -> ControlNetModel:
    """Load a ControlNet saved by ``save_pretrained`` from a :func:`make_controlnet` model."""
    folder = Path(folder)
    if not (folder / "config.json").exists() or not (folder / CONTROLNET_WEIGHTS).exists():
        raise StemproverError(f"{folder}: not a saved ControlNet (config.json + safetensors)")
    config = json.loads((folder / "config.json").read_text())
    controlnet = ControlNetModel.from_config(config)
    controlnet.controlnet_cond_embedding = PrecomputedCondition()
    try:
        controlnet.load_state_dict(load_file(folder / CONTROLNET_WEIGHTS), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise StemproverError(f"{folder}: ControlNet weights do not match its config ({first})") from None
    return controlnet


class ConcatConditioning(nn.Module):
    """Extra input channels of ``conv_in``: zero-initialised on the base (the concat ablation),
    or the control branch's direct view of the condition.

    Args:
        condition_channels: Channels of the condition in model space.
        out_channels: ``conv_in`` output channels of the base.
        kernel_size: ``conv_in`` kernel size of the base (3 for diffusers U-Nets).
        zero: Whether the weights start at zero. The control branch's own input keeps the
            ordinary initialisation: its zero output heads already keep the identity.
    """

    def __init__(self, condition_channels: int, out_channels: int, kernel_size: int = 3,
                 zero: bool = True):
        super().__init__()
        self.extra = nn.Conv2d(
            condition_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        if zero:
            nn.init.zeros_(self.extra.weight)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.extra(condition)


@contextmanager
def added_to_conv_in(unet: UNet2DConditionModel, features: torch.Tensor) -> Iterator[None]:
    """Within the block, ``unet.conv_in`` returns its output plus ``features``."""

    def hook(_module, _inputs, output):
        return output + features.to(output.dtype)

    handle = unet.conv_in.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()

"""The base U-Net, the artifact-type embedding that stands in for a text prompt, and padding.

The base is a diffusers ``UNet2DConditionModel`` shaped like Stable Diffusion's (cross-attention
down/up blocks and a plain last level), sized by :class:`~stemprover.model.config.ModelConfig`.
Instead of text-encoder tokens it receives, as ``encoder_hidden_states``, a few learned tokens per
artifact type, mixed with the adapter weights: ``tokens = sum_k w_k * table[k]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
from stemprover.model.config import ModelConfig

CLEAN_ROW = 0
"""Row of the token table used for the unconditional (clean) base model; adapters follow."""


def block_types(
    n_levels: int, levels: str = "sd"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Down and up block types of a U-Net with ``n_levels`` levels.

    ``"sd"``: Stable Diffusion's layout, cross-attention at every level but the deepest.
    ``"coarsest"``: cross-attention only at the deepest level (the middle block attends in both).
    One level always attends.
    """
    if n_levels == 1:
        return ("CrossAttnDownBlock2D",), ("CrossAttnUpBlock2D",)
    if levels == "coarsest":
        down = ("DownBlock2D",) * (n_levels - 1) + ("CrossAttnDownBlock2D",)
        up = ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n_levels - 1)
        return down, up
    down = ("CrossAttnDownBlock2D",) * (n_levels - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n_levels - 1)
    return down, up


def attention_levels(down_block_types) -> str:
    """The ``attention_levels`` of a U-Net's down block types (see :func:`block_types`)."""
    kinds = ["CrossAttn" in name for name in down_block_types]
    return "coarsest" if len(kinds) > 1 and kinds[-1] and not any(kinds[:-1]) else "sd"


def build_unet(
    cfg: ModelConfig, in_channels: int, out_channels: int | None = None, zero_output: bool = False
):
    """A fresh ``UNet2DConditionModel`` for ``cfg``.

    Args:
        cfg: Model configuration (widths, depth, attention, cross-attention width).
        in_channels: Picture (pixel mode) or latent channels.
        out_channels: Output channels; defaults to ``in_channels``.
        zero_output: Zero the last convolution, so that a residual model starts as the identity.
    """
    down, up = block_types(len(cfg.block_out_channels), cfg.attention_levels)
    unet = UNet2DConditionModel(
        in_channels=in_channels,
        out_channels=out_channels or in_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
        only_cross_attention=cfg.only_cross_attention,
    )
    if zero_output:
        nn.init.zeros_(unet.conv_out.weight)
        nn.init.zeros_(unet.conv_out.bias)
    return unet


def apply_output(x: torch.Tensor, out: torch.Tensor, fold: int, complex_pairs: bool) -> torch.Tensor:
    """The correction ``F`` from a U-Net output: ``out`` itself, or a gain on ``x`` plus a term.

    With ``out`` twice as wide as ``x`` its first half is added and its second half ``g`` is a
    gain: ``F = a + g * x``. For a complex picture (channels re, im, each folded into ``fold``
    channels) ``g`` is a complex number per bin, so it can turn the phase as well as scale it.
    Both halves start at zero, so ``x + F`` starts as ``x``.

    Args:
        x: ``(B, C, H, W)`` in model space.
        out: ``(B, C, H, W)`` or ``(B, 2C, H, W)``.
        fold: Frequency fold of the model space (channels are ``c * fold + j``).
        complex_pairs: Whether channels ``[0, fold)`` and ``[fold, 2 fold)`` are re and im.
    """
    channels = x.shape[1]
    if out.shape[1] == channels:
        return out
    add, gain = out[:, :channels], out[:, channels:]
    return add + apply_gain(gain, x, fold, complex_pairs)


def apply_gain(gain: torch.Tensor, x: torch.Tensor, fold: int, complex_pairs: bool) -> torch.Tensor:
    """``gain * x`` per bin; complex pictures (re and im folded in ``fold`` channels each)
    multiply as complex numbers, so the gain can turn the phase as well as scale."""
    if not complex_pairs:
        return gain * x
    g_re, g_im = gain[:, :fold], gain[:, fold:]
    x_re, x_im = x[:, :fold], x[:, fold:]
    return torch.cat([g_re * x_re - g_im * x_im, g_re * x_im + g_im * x_re], dim=1)


def gain_on_mixture(
    out: torch.Tensor, mixture: torch.Tensor, fold: int, complex_pairs: bool
) -> torch.Tensor:
    """``out`` with its additive half turned into a gain on the mixture picture.

    ``x + apply_output(x, out)`` then reads ``x + g_m * m + g_x * x``: what a stem lost (masked
    partials, a cut-off band) is restored from the mixture, where it still is, and bleed is a
    gain below one on the stem. Both halves start at zero, so the identity is kept.
    """
    channels = mixture.shape[1]
    mixed = apply_gain(out[:, :channels], mixture.to(out.dtype), fold, complex_pairs)
    return torch.cat([mixed, out[:, channels:]], dim=1)


def unet_downsample_factor(unet: UNet2DConditionModel) -> int:
    """Factor by which the picture must be divisible (one halving per downsampling block)."""
    return 2 ** sum(1 for block in unet.down_blocks if block.downsamplers is not None)


class ArtifactEmbedding(nn.Module):
    """Learned "prompt" tokens per artifact type, mixed by adapter weights.

    Row 0 is the clean/unconditional token set used in pretraining; rows ``1 + k`` belong to
    ``ADAPTERS[k]``. :meth:`init_adapter_rows` copies row 0 into the adapter rows so that a
    fresh controlled model sees exactly the base's tokens for any weights that sum to 1.
    """

    def __init__(self, n_tokens: int, width: int, n_adapters: int = len(ADAPTERS)):
        super().__init__()
        self.table = nn.Parameter(torch.randn(1 + n_adapters, n_tokens, width) * 0.02)

    @property
    def n_adapters(self) -> int:
        return self.table.shape[0] - 1

    @torch.no_grad()
    def init_adapter_rows(self) -> None:
        self.table[1:] = self.table[CLEAN_ROW]

    def forward(self, weights: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Tokens ``(batch, n_tokens, width)``.

        Args:
            weights: ``(batch, n_adapters)`` adapter weights, or None for the clean tokens.
            batch: Batch size (used when ``weights`` is None).
        """
        if weights is None:
            return self.table[CLEAN_ROW].unsqueeze(0).expand(batch, -1, -1)
        weights = weights.to(self.table.dtype)
        return torch.einsum("bk,ktd->btd", weights, self.table[1:])


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two dims ``(F, T)`` up to multiples of ``multiple``.

    Returns:
        The padded tensor and the original ``(F, T)`` for :func:`crop`.
    """
    n_freq, n_time = image.shape[-2:]
    pad_f = (-n_freq) % multiple
    pad_t = (-n_time) % multiple
    if pad_f or pad_t:
        image = F.pad(image, (0, pad_t, 0, pad_f))
    return image, (n_freq, n_time)


def fold_freq(image: torch.Tensor, fold: int) -> torch.Tensor:
    """Fold groups of ``fold`` neighbouring bins into channels: ``(B, C, F, T) -> (B, C*k, F/k, T)``.

    ``F`` is zero-padded up to a multiple of ``fold`` first; :func:`unfold_freq` inverts it
    exactly. Folding is how the cpu profile runs the U-Net on a quarter of the rows: every
    convolution still sees all bins, in its channels.
    """
    if fold == 1:
        return image
    image, _ = pad_to_multiple_freq(image, fold)
    batch, channels, n_freq, n_time = image.shape
    folded = image.reshape(batch, channels, n_freq // fold, fold, n_time)
    return folded.permute(0, 1, 3, 2, 4).reshape(batch, channels * fold, n_freq // fold, n_time)


def unfold_freq(image: torch.Tensor, fold: int, n_freq: int) -> torch.Tensor:
    """Inverse of :func:`fold_freq`, cropped to ``n_freq`` bins."""
    if fold == 1:
        return image[..., :n_freq, :]
    batch, channels, rows, n_time = image.shape
    out = image.reshape(batch, channels // fold, fold, rows, n_time).permute(0, 1, 3, 2, 4)
    return out.reshape(batch, channels // fold, rows * fold, n_time)[..., :n_freq, :]


def pad_to_multiple_freq(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int]:
    """Zero-pad the frequency axis (dim -2) up to a multiple of ``multiple``."""
    n_freq = image.shape[-2]
    pad = (-n_freq) % multiple
    return (F.pad(image, (0, 0, 0, pad)) if pad else image), n_freq


def crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    return image[..., : size[0], : size[1]]


def freeze(module: nn.Module) -> None:
    """Turn off gradients of every parameter of ``module``."""
    for param in module.parameters():
        param.requires_grad_(False)


def check_unet(
    unet: UNet2DConditionModel, in_channels: int, where: str, cfg: ModelConfig | None = None
) -> None:
    """Raise StemproverError when a U-Net cannot take ``in_channels`` or disagrees with ``cfg``."""
    if cfg is not None:
        ucfg = unet.config
        pairs = {
            "block_out_channels": (tuple(ucfg.block_out_channels), cfg.block_out_channels),
            "layers_per_block": (ucfg.layers_per_block, cfg.layers_per_block),
            "cross_attention_dim": (ucfg.cross_attention_dim, cfg.cross_attention_dim),
        }
        for key, (weights, config) in pairs.items():
            if weights != config:
                raise StemproverError(
                    f"{where}: config {key}={config} does not match the U-Net weights ({weights})"
                )
    outs = (in_channels, 2 * in_channels)
    if unet.config.in_channels != in_channels or unet.config.out_channels not in outs:
        raise StemproverError(
            f"{where}: U-Net has {unet.config.in_channels} input / {unet.config.out_channels} "
            f"output channels but the model needs {in_channels} (or twice that out)"
        )

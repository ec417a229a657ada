"""Latent mode: a diffusers ``AutoencoderKL`` trained on spectrogram images.

    cfg = autoencoder_config("smoke", in_channels=2)
    ae = load_autoencoder(folder)         # trained by stemprover.train.autoencoder
    latents = ae.encode(images)            # (B, 4, F', T'), scaled to about unit variance
    images = ae.decode(latents, size=(F, T))

Images ``(batch, channels, freq, frames)`` are zero-padded (silence in every representation) at
the high-frequency and late-time ends to a multiple of the downsampling factor and cropped back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from diffusers import AutoencoderKL
from torch import Tensor

from stemprover.errors import StemproverError
from stemprover.project.config import build, load_profile

CONFIG_NAME = "stemprover_autoencoder.json"
FORMAT_VERSION = 1


@dataclass
class AutoencoderConfig:
    """Size and training settings of the spectrogram autoencoder."""

    in_channels: int = 2  # channels of the representation (complex: real and imaginary)
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # n blocks downsample by 2^(n-1): 4x here
    layers_per_block: int = 1  # one ResNet block per level keeps CPU training within budget
    latent_channels: int = 4  # as in Stable Diffusion, so SD-shaped UNets fit
    norm_num_groups: int = 8  # must divide every block width; 32 is too many for tiny widths
    mid_attention: bool = False  # attention over all latent pixels is quadratic: off on CPU
    kl_weight: float = 1e-4  # per-element KL; keeps latents Gaussian-like without blurring
    learning_rate: float = 1e-3  # Adam; small nets tolerate a high rate
    batch_size: int = 8
    seed: int = 0
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA, full precision on CPU

    @property
    def factor(self) -> int:
        """Downsampling factor of the frequency and time axes."""
        return 2 ** (len(self.block_out_channels) - 1)


def autoencoder_config(profile: str, in_channels: int, **overrides: Any) -> AutoencoderConfig:
    """The ``autoencoder:`` section of the profile's YAML with ``in_channels`` and ``overrides``."""
    values = load_profile(profile).get("autoencoder", {})
    return build(AutoencoderConfig, {**values, "in_channels": in_channels, **overrides},
                 where=f"{profile}.yaml autoencoder")


def build_vae(cfg: AutoencoderConfig):
    """A freshly initialised diffusers ``AutoencoderKL`` for ``cfg``."""
    if any(width % cfg.norm_num_groups for width in cfg.block_out_channels):
        raise StemproverError(
            f"block_out_channels {cfg.block_out_channels} must be multiples of norm_num_groups"
        )
    n_blocks = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        mid_block_add_attention=cfg.mid_attention,
        scaling_factor=1.0,
    )


class SpectrogramAutoencoder(torch.nn.Module):
    """``AutoencoderKL`` plus padding/cropping and latent scaling for spectrogram images."""

    def __init__(self, cfg: AutoencoderConfig, vae: Any = None):
        super().__init__()
        self.cfg = cfg
        self.vae = vae if vae is not None else build_vae(cfg)

    @property
    def factor(self) -> int:
        return self.cfg.factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def pad(self, images: Tensor) -> Tensor:
        """Zero-pad ``(B, C, F, T)`` so that F and T are multiples of :attr:`factor`."""
        freq, frames = images.shape[-2:]
        pad_f, pad_t = -freq % self.factor, -frames % self.factor
        return functional.pad(images, (0, pad_t, 0, pad_f)) if pad_f or pad_t else images

    def posterior(self, images: Tensor):
        """diffusers ``DiagonalGaussianDistribution`` of the unscaled latents of ``images``."""
        if images.dim() != 4 or images.shape[1] != self.cfg.in_channels:
            raise StemproverError(
                f"expected images (B, {self.cfg.in_channels}, F, T), got {tuple(images.shape)}"
            )
        return self.vae.encode(self.pad(images)).latent_dist

    def encode(self, images: Tensor, sample: bool = False, generator=None) -> Tensor:
        """Scaled latents ``(B, latent_channels, ceil(F/k), ceil(T/k))``; the posterior mean
        unless ``sample``."""
        dist = self.posterior(images)
        latents = dist.sample(generator) if sample else dist.mode()
        return latents * self.scaling_factor

    def decode(self, latents: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Images ``(B, C, F, T)`` from scaled latents, cropped to ``size=(F, T)`` when given."""
        images = self.vae.decode(latents / self.scaling_factor).sample
        if size is not None:
            images = images[..., : size[0], : size[1]]
        return images

    def forward(
        self, images: Tensor, sample: bool = False, generator=None, return_posterior: bool = False
    ):
        """Reconstruction of ``images`` (same shape), from the posterior mean unless ``sample``.

        With ``return_posterior`` returns ``(reconstruction, posterior)`` for the KL term.
        """
        dist = self.posterior(images)
        latents = dist.sample(generator) if sample else dist.mode()
        recon = self.vae.decode(latents).sample[..., : images.shape[-2], : images.shape[-1]]
        return (recon, dist) if return_posterior else recon

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """diffusers weights/config plus ``stemprover_autoencoder.json`` in ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(out_dir)
        meta = {
            "kind": "autoencoder",
            "version": FORMAT_VERSION,
            "config": dataclasses.asdict(self.cfg),
        }
        tmp = out_dir / f"{CONFIG_NAME}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(out_dir / CONFIG_NAME)
        return out_dir


def load_autoencoder(
    path: str | Path, device: str | torch.device | None = None
) -> SpectrogramAutoencoder:
    """Load an autoencoder written by :meth:`SpectrogramAutoencoder.save_pretrained`."""
    path = Path(path)
    meta_path = path / CONFIG_NAME
    if not meta_path.is_file():
        raise StemproverError(f"{path}: not a StemProver autoencoder (no {CONFIG_NAME})")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != "autoencoder" or meta.get("version") != FORMAT_VERSION:
        raise StemproverError(
            f"{meta_path}: unsupported kind/version {meta.get('kind')}/{meta.get('version')}"
        )
    cfg = build(AutoencoderConfig, meta["config"], where=str(meta_path))
    try:
        vae = AutoencoderKL.from_pretrained(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise StemproverError(f"{path}: cannot load autoencoder weights ({exc})") from exc
    expected = build_vae(cfg).config
    for key in ("in_channels", "latent_channels", "block_out_channels", "layers_per_block"):
        if tuple(np.atleast_1d(vae.config[key])) != tuple(np.atleast_1d(expected[key])):
            raise StemproverError(
                f"{path}: weights have {key}={vae.config[key]}, config says {expected[key]}"
            )
    model = SpectrogramAutoencoder(cfg, vae).eval()
    return model.to(device) if device is not None else model



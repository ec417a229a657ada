"""Latent mode: a diffusers ``AutoencoderKL`` trained on spectrogram images.

    cfg = autoencoder_config("smoke", in_channels=2)
    ae, log = train_autoencoder(images, cfg, out_dir, steps=200)
    latents = ae.encode(images)            # (B, 4, F', T'), scaled to about unit variance
    images = ae.decode(latents, size=(F, T))

Images ``(batch, channels, freq, frames)`` are zero-padded (silence in every representation) at
the high-frequency and late-time ends to a multiple of the downsampling factor and cropped back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as functional
from torch import Tensor
from tqdm.auto import tqdm

from stemprover.config import build
from stemprover.errors import StemproverError
from stemprover.seed import seed_everything

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


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"block_out_channels": (8, 16, 16), "batch_size": 4},
    "cpu": {"block_out_channels": (32, 64, 64), "batch_size": 8},
    "gpu": {"block_out_channels": (64, 128, 256, 256), "mid_attention": True, "batch_size": 32},
}


def autoencoder_config(profile: str, in_channels: int, **overrides: Any) -> AutoencoderConfig:
    """The preset of a profile (smoke/cpu 4x, gpu 8x downsampling) with ``overrides`` applied."""
    if profile not in PRESETS:
        raise StemproverError(
            f"no autoencoder preset for profile {profile!r}; use {sorted(PRESETS)}"
        )
    return build(AutoencoderConfig, {**PRESETS[profile], "in_channels": in_channels, **overrides})


def build_vae(cfg: AutoencoderConfig):
    """A freshly initialised diffusers ``AutoencoderKL`` for ``cfg``."""
    from diffusers import AutoencoderKL

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
    from diffusers import AutoencoderKL

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


def _loader(images: Tensor | torch.utils.data.Dataset, batch_size: int, seed: int):
    dataset = torch.utils.data.TensorDataset(images) if isinstance(images, Tensor) else images
    if len(dataset) == 0:
        raise StemproverError("no spectrogram images to train the autoencoder on")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(dataset) > batch_size,
        generator=generator,
    )


def _as_images(batch: Any) -> Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def train_autoencoder(
    images: Tensor | torch.utils.data.Dataset,
    cfg: AutoencoderConfig,
    out_dir: str | Path | None,
    steps: int,
    *,
    loss_fn: Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]] | None = None,
    progress: bool = True,
    accelerator: Any = None,
) -> tuple[SpectrogramAutoencoder, pd.DataFrame]:
    """Train the autoencoder with L1 reconstruction + ``kl_weight`` × KL, under accelerate.

    Args:
        images: Tensor ``(N, C, F, T)`` or a dataset of ``(C, F, T)`` tensors.
        cfg: Architecture and optimiser settings.
        out_dir: Where ``save_pretrained`` writes the result; None to skip saving.
        steps: Optimiser steps (the data are cycled).
        loss_fn: Optional extra loss on (reconstruction, image), e.g. a
            :class:`stemprover.losses.PhaseAwareLoss` without its image term; added as is.
        progress: Show a tqdm bar.
        accelerator: An ``accelerate.Accelerator`` to share with the caller's training (accelerate
            allows one mixed-precision setting per process); default: one for
            ``cfg.mixed_precision``.

    Returns:
        ``(autoencoder, log)``, one log row per step: ``step, loss, l1, kl`` and the
        ``loss_fn`` terms.
        The latent scaling factor is set to ``1 / std`` of the training latents.
    """
    from stemprover.train.loop import make_accelerator

    if steps < 1:
        raise StemproverError(f"the autoencoder needs at least one training step, got {steps}")
    seed_everything(cfg.seed)
    if accelerator is None:
        accelerator = make_accelerator(cfg.mixed_precision)
    model = SpectrogramAutoencoder(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loader = _loader(images, cfg.batch_size, cfg.seed)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # each process its own posterior samples; process 0 keeps the single-process seed
    sample_generator = torch.Generator(device=accelerator.device).manual_seed(
        cfg.seed + accelerator.process_index)
    rows: list[dict[str, float]] = []
    bar = tqdm(total=steps, desc="autoencoder", disable=not progress)
    model.train()
    while len(rows) < steps:
        for batch in loader:
            target = _as_images(batch).float()
            with accelerator.autocast():
                recon, dist = model(target, True, sample_generator, return_posterior=True)
                recon = recon.float()
                l1 = (recon - target).abs().mean()
                kl = dist.kl().mean() / dist.mean[0].numel()
                loss = l1 + cfg.kl_weight * kl
                extra: dict[str, Tensor] = {}
                if loss_fn is not None:
                    extra_loss, extra = loss_fn(recon, target)
                    loss = loss + extra_loss
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            row = {"step": len(rows) + 1, "loss": loss.item(), "l1": l1.item(), "kl": kl.item()}
            row.update({name: float(value) for name, value in extra.items()})
            rows.append(row)
            bar.update(1)
            bar.set_postfix(l1=f"{row['l1']:.4f}")
            if len(rows) >= steps:
                break
    bar.close()
    model = accelerator.unwrap_model(model).eval()
    _set_scaling_factor(model, loader, accelerator)
    model = model.to("cpu")
    if out_dir is not None and accelerator.is_main_process:
        model.save_pretrained(out_dir)
    accelerator.wait_for_everyone()
    return model, pd.DataFrame(rows)


@torch.no_grad()
def _set_scaling_factor(
    model: SpectrogramAutoencoder, loader: Iterable, accelerator=None, max_batches: int = 8
) -> None:
    """Scale latents to unit variance, as Stable Diffusion's 0.18215 does for its VAE.

    Under several processes the latents of every process's shard count, so all agree.
    """
    latents = [
        model.posterior(_as_images(b).float()).mode() for _, b in zip(range(max_batches), loader)
    ]
    flat = torch.cat([x.flatten() for x in latents])
    if accelerator is not None and accelerator.num_processes > 1:
        flat = accelerator.gather(flat.to(accelerator.device)).cpu()
    std = float(flat.std())
    model.vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))


class Codec(Protocol):
    """Anything with the autoencoder's ``encode``/``decode`` (e.g. an identity stand-in)."""

    def encode(self, images: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor, size: tuple[int, int] | None = None) -> Tensor: ...


@torch.no_grad()
def reconstruction_report(
    ae: Codec,
    waves: Tensor | np.ndarray,
    representation: Any,
    stft_cfg: Any,
    sample_rate: int,
    batch_size: int = 8,
) -> dict[str, float]:
    """Reconstruction error of the autoencoder on waves, phase included.

    Args:
        ae: The autoencoder (or any :class:`Codec`).
        waves: Clean mono waves ``(N, samples)``.
        representation, stft_cfg: How waves become images (stemprover.spectral).
        sample_rate: Hz.
        batch_size: Waves per forward pass.

    Returns:
        Means over the waves of ``image_mse`` (image units), ``image_snr_db`` (image power
        over error power), ``si_sdr_db``, ``lsd_db`` and
        ``phase_dev_rad`` (magnitude-weighted mean |wrapped phase error|) of the wave rebuilt
        from the reconstructed image against the input wave, plus ``n_waves``. For the
        ``magnitude`` representation the input phase is reused, so the phase error is 0.
    """
    from stemprover.metrics import lsd, si_sdr
    from stemprover.phase import mean_phase_deviation
    from stemprover.spectral import image_to_wave, stft, wave_to_image

    waves = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    if waves.dim() != 2 or waves.shape[0] == 0:
        raise StemproverError(f"expected waves (N, samples), got {tuple(waves.shape)}")
    device = next(ae.parameters()).device if isinstance(ae, torch.nn.Module) else "cpu"
    rows = []
    for start in range(0, waves.shape[0], batch_size):
        chunk = waves[start : start + batch_size]
        images = wave_to_image(chunk, representation)
        recon = ae.decode(ae.encode(images.to(device)), size=tuple(images.shape[-2:]))
        recon = recon.float().cpu()
        phase = torch.angle(stft(chunk, stft_cfg)) if representation.name == "magnitude" else None
        est = image_to_wave(recon, representation, chunk.shape[-1], phase=phase).numpy()
        for i, ref in enumerate(chunk.numpy()):
            error = (recon[i] - images[i]).pow(2).mean()
            power = images[i].pow(2).mean()
            rows.append(
                {
                    "image_mse": float(error),
                    "image_snr_db": float(10 * torch.log10(power / error.clamp_min(1e-20))),
                    "si_sdr_db": float(si_sdr(est[i], ref)),
                    "lsd_db": float(lsd(est[i], ref, stft_cfg)),
                    "phase_dev_rad": float(
                        mean_phase_deviation(est[i], ref, sample_rate, stft_cfg)
                    ),
                }
            )
    report = pd.DataFrame(rows).mean().to_dict()
    report["n_waves"] = float(len(rows))
    return report

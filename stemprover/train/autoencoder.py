"""Training and measuring the latent mode's autoencoder (:mod:`stemprover.model.autoencoder`).

    ae, log = train_autoencoder(images, autoencoder_config("smoke", 2), out_dir, steps=200)
    report = reconstruction_report(ae, waves, representation, stft_cfg, sample_rate)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from stemprover.dsp.phase import mean_phase_deviation
from stemprover.dsp.spectral import image_to_wave, stft, wave_to_image
from stemprover.errors import StemproverError
from stemprover.metrics.signal import lsd, si_sdr
from stemprover.model.autoencoder import AutoencoderConfig, SpectrogramAutoencoder
from stemprover.project.seed import seed_everything
from stemprover.train.loop import make_accelerator


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
            :class:`stemprover.train.losses.PhaseAwareLoss` without its image term; added as is.
        progress: Show a tqdm bar.
        accelerator: An ``accelerate.Accelerator`` to share with the caller's training (accelerate
            allows one mixed-precision setting per process); default: one for
            ``cfg.mixed_precision``.

    Returns:
        ``(autoencoder, log)``, one log row per step: ``step, loss, l1, kl`` and the
        ``loss_fn`` terms.
        The latent scaling factor is set to ``1 / std`` of the training latents.
    """
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
        representation, stft_cfg: How waves become images (stemprover.dsp.spectral).
        sample_rate: Hz.
        batch_size: Waves per forward pass.

    Returns:
        Means over the waves of ``image_mse`` (image units), ``image_snr_db`` (image power
        over error power), ``si_sdr_db``, ``lsd_db`` and
        ``phase_dev_rad`` (magnitude-weighted mean |wrapped phase error|) of the wave rebuilt
        from the reconstructed image against the input wave, plus ``n_waves``. For the
        ``magnitude`` representation the input phase is reused, so the phase error is 0.
    """
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

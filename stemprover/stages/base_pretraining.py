"""Base pretraining (notebook 03): the bridge restorer from x_t alone, on all pairs.

The base sees only the point ``x_t`` of the bridge between the separated and the clean picture
(no mixture, no control) and predicts the clean picture; it is this project's stand-in for a
pretrained Stable Diffusion, and 04 freezes it. An SDEdit base (the ablation) is a denoising
diffusion model on clean segments instead.

    model = pretrain_base(cfg, profile="cpu")   # -> results/cpu/03_base_pretraining/weights/base

Writes, under the stage folder: ``train_log.csv`` (one row per optimizer step),
``validation.json`` (held-out diffusion loss, image scale, sizes, time), ``checkpoints/``
(resumable) and ``weights/base/`` (``StemProverModel.save_pretrained`` without control).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler

from stemprover.dsp.spectral import StftConfig, get_representation, wave_to_image
from stemprover.model import StemProverModel, load_base, model_config
from stemprover.model.autoencoder import autoencoder_config, load_autoencoder
from stemprover.project.inputs import resolve_inputs
from stemprover.project.paths import results_dir
from stemprover.project.provenance import code_commit, data_source, update_run
from stemprover.project.runtime import cpu_threads
from stemprover.project.seed import seed_everything
from stemprover.train.autoencoder import reconstruction_report, train_autoencoder
from stemprover.train.config import PretrainConfig, manifest_path, model_overrides
from stemprover.train.data import CleanSegments, check_rate, load_pairs
from stemprover.train.loop import (
    CsvLog,
    Monitor,
    PhaseSpec,
    collate,
    fingerprint,
    kept_steps,
    make_accelerator,
    run_phase,
    step_generator,
)
from stemprover.train.steps import diffusion_step, loss_for
from stemprover.train.validate import gain_on_pairs, validation_indices


@torch.no_grad()
def data_scale(model: StemProverModel, dataset, n_items: int = 64) -> float:
    """``1 / std`` of clean data in model space (as SD's 0.18215 for its latents)."""
    waves = torch.stack([dataset[i]["clean"] for i in range(min(n_items, len(dataset)))])
    saved, model.config.image_scale = model.config.image_scale, 1.0
    try:
        encoded = model.encode_image(wave_to_image(waves, model.representation))
    finally:
        model.config.image_scale = saved
    return float(1.0 / encoded.std().clamp_min(1e-6))


@torch.no_grad()
def validation_loss(model, loss_cfg, dataset, seed: int, batch_size: int = 8) -> dict[str, float]:
    """Mean loss terms on held-out items with fixed noise and timesteps (comparable across runs)."""

    model.eval()
    scheduler = None if model.is_bridge else DDPMScheduler.from_config(model.scheduler_config)
    loss_fn = loss_for(model, loss_cfg)
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    n_batches = 0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in collate(items).items()}
        gen = step_generator(seed, "valid", start, 0, device)
        total, terms = diffusion_step(model, loss_fn, scheduler, batch, gen)
        for name, value in {"loss": total, **terms}.items():
            sums[name] = sums.get(name, 0.0) + float(value)
        n_batches += 1
    return {name: value / max(n_batches, 1) for name, value in sums.items()}


def ensure_autoencoder(cfg: PretrainConfig, profile: str, train, valid, out_dir: Path,
                       progress: bool = True):
    """Train (or reuse) the spectrogram autoencoder and report its reconstruction error.

    Writes ``weights/autoencoder/``, ``autoencoder_log.csv`` and ``autoencoder.json`` (image MSE,
    SI-SDR, LSD and phase deviation of waves rebuilt from reconstructed pictures of held-out
    segments). Returns the ``SpectrogramAutoencoder``.
    """

    mcfg = model_config(profile, **model_overrides(cfg))
    folder = out_dir / "weights" / "autoencoder"
    if (folder / "stemprover_autoencoder.json").exists() and (out_dir / "autoencoder.json").exists():
        return load_autoencoder(folder)
    stft_cfg = StftConfig(mcfg.n_fft, mcfg.hop_length)
    rep = get_representation(mcfg.representation, stft_cfg)
    ae_cfg = autoencoder_config(profile, rep.channels, latent_channels=mcfg.latent_channels,
                                seed=cfg.seed)
    images = torch.cat([wave_to_image(train[i]["clean"][None], rep) for i in range(len(train))])
    accelerator = make_accelerator(cfg.mixed_precision)
    ae, ae_log = train_autoencoder(images, ae_cfg, folder, cfg.autoencoder_steps,
                                   progress=progress, accelerator=accelerator)
    if accelerator.is_main_process:  # the main process reports and writes
        ae_log.to_csv(out_dir / "autoencoder_log.csv", index=False)
        held_out = valid if valid is not None and len(valid) else train
        waves = torch.stack([held_out[i]["clean"] for i in range(len(held_out))])
        report = reconstruction_report(ae, waves, rep, stft_cfg, mcfg.sample_rate)
        report["steps"] = cfg.autoencoder_steps
        (out_dir / "autoencoder.json").write_text(json.dumps(report, indent=2))
    accelerator.wait_for_everyone()  # the others read the report
    return ae


def pretrain_autoencoder(cfg: PretrainConfig, profile: str, out_dir: Path | None = None,
                         progress: bool = True) -> dict:
    """Train the spectrogram autoencoder on the profile's clean segments; return its report."""
    seed_everything(cfg.seed)
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        out_dir = Path(out_dir) if out_dir is not None else results_dir(profile, "03_base_pretraining")
        manifest = manifest_path(cfg)
        train = CleanSegments(manifest, "train")
        valid = CleanSegments(manifest, "valid", limit=cfg.n_valid)
        ensure_autoencoder(cfg, profile, train, valid, out_dir, progress)
        return json.loads((out_dir / "autoencoder.json").read_text())


def pretraining_data(cfg: PretrainConfig, bridge: bool):
    """Training and held-out data: all pairs (bridge) or the distinct clean segments (SDEdit)."""
    manifest = manifest_path(cfg)
    if not bridge:
        return CleanSegments(manifest, "train"), CleanSegments(manifest, "valid", limit=cfg.n_valid)

    held_out = [cfg.holdout_family] if cfg.holdout_family else []
    valid = load_pairs(manifest, "valid", exclude_families=held_out)
    keep = validation_indices(valid, max(cfg.n_valid, cfg.n_monitor))
    train = load_pairs(manifest, "train", exclude_families=held_out)
    return train, torch.utils.data.Subset(valid, keep)


def base_monitor(cfg: PretrainConfig, model, valid, out_dir: Path):
    """Budget curve of the base: one-step ΔSI-SDR on held-out pairs every ``eval_every`` steps."""
    if not cfg.eval_every or valid is None or not len(valid):
        return None

    indices = list(range(min(len(valid), cfg.n_monitor)))
    stft_cfg = StftConfig(cfg.n_fft, cfg.hop_length)
    evaluate = lambda: gain_on_pairs(model, valid, indices, sample_rate=cfg.sample_rate,  # noqa: E731
                                     stft_cfg=stft_cfg, steps=1,
                                     adapter="own" if cfg.artifact_tokens else None)
    return Monitor(evaluate, cfg.eval_every, CsvLog(out_dir / "budget_curve.csv"),
                   cfg.patience, cfg.min_delta, keep_best=True)


def build_base(cfg: PretrainConfig, profile: str, train, valid, out_dir: Path, progress: bool):
    """A fresh (or checkpoint-loaded) base model, with its autoencoder in latent mode."""
    mcfg = model_config(profile, **model_overrides(cfg))
    if mcfg.base_path:
        model = load_base(mcfg.base_path, mcfg)
        base = StemProverModel(model.config, model.unet, model.autoencoder, with_control=False)
        base.artifact_embedding.load_state_dict(model.artifact_embedding.state_dict())
        return base
    autoencoder = None
    if mcfg.mode == "latent":
        autoencoder = ensure_autoencoder(cfg, profile, train, valid, out_dir, progress).vae
    return StemProverModel(mcfg, autoencoder=autoencoder, with_control=False)


def pretrain_base(
    cfg: PretrainConfig,
    profile: str,
    *,
    train=None,
    valid=None,
    out_dir: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> StemProverModel:
    """Pretrain the base U-Net (and artifact tokens' clean row) on clean segments.

    Args:
        cfg: Budget, loss weights and model overrides.
        profile: Profile whose ModelConfig defaults and folders are used.
        train, valid: Datasets of ``{"clean": (samples,)}``; default: the distinct clean
            segments of the profile's paired dataset.
        out_dir: Stage folder; default ``results/<profile>/03_base_pretraining``.
        stop_after: Stop after this many optimizer steps (resumable; for tests and budgets).
        progress: Show progress bars.

    Returns:
        The trained base (also saved to ``out_dir/weights/base`` when training completed).
    """
    seed_everything(cfg.seed)
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        out_dir = Path(out_dir) if out_dir is not None else results_dir(profile, "03_base_pretraining")
        bridge = model_config(profile, **model_overrides(cfg)).formulation == "bridge"
        if train is None:
            train, valid = pretraining_data(cfg, bridge)
        check_rate(train, cfg.sample_rate)
        model = build_base(cfg, profile, train, valid, out_dir, progress)
        model.config.image_scale = data_scale(model, train)
        accelerator = make_accelerator(cfg.mixed_precision)
        scheduler = None if bridge else DDPMScheduler.from_config(model.scheduler_config)
        loss_fn = loss_for(model, cfg.loss).to(accelerator.device)
        params = {f"unet.{k}": p for k, p in model.unet.named_parameters()}
        params["artifact_embedding.table"] = model.artifact_embedding.table
        spec = PhaseSpec("base", cfg.steps, cfg.batch_size, cfg.grad_accum, cfg.learning_rate,
                         cfg.warmup_steps, cfg.seed, cfg.checkpoint_every,
                         fingerprint=fingerprint(cfg, model.config, len(train)),
                         max_minutes=cfg.max_minutes)
        started = time.perf_counter()
        done = run_phase(
            accelerator, model, params, train,
            lambda batch, gen: diffusion_step(
                model, loss_fn, scheduler, batch, gen,
                adapter=batch["adapter"] if bridge and cfg.artifact_tokens else None),
            spec, out_dir / "checkpoints", CsvLog(out_dir / "train_log.csv"),
            budget=None if stop_after is None else [stop_after], progress=progress,
            monitor=base_monitor(cfg, model, valid, out_dir) if bridge else None,
        )
        model = model.cpu().eval()
        if not done or not accelerator.is_main_process:
            return model
        log_rows = CsvLog(out_dir / "train_log.csv").rows()
        report = {"train_seconds": float(log_rows[-1]["seconds"]) if log_rows else
                  time.perf_counter() - started, "steps": int(log_rows[-1]["step"]) if log_rows
                  else cfg.steps, "max_steps": cfg.steps, "formulation": model.config.formulation,
                  "n_train_segments": len(train), "image_scale": model.config.image_scale,
                  "n_parameters": sum(p.numel() for p in model.unet.parameters())}
        report["kept_step"] = kept_steps(CsvLog(out_dir / "budget_curve.csv")).get("base")
        if valid is not None and len(valid):
            report["n_valid_segments"] = len(valid)
            report.update({f"valid_{k}": v for k, v in validation_loss(model, cfg.loss, valid,
                                                                       cfg.seed).items()})
        (out_dir / "validation.json").write_text(json.dumps(report, indent=2))
        model.save_pretrained(out_dir / "weights" / "base")
        update_run(out_dir, pairs=data_source(train), n_train=len(train), steps=report["steps"],
                   train_minutes=round(report["train_seconds"] / 60.0, 2), code_commit=code_commit())
        return model

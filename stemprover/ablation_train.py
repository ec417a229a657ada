"""Training one ablation row under the shared budget, with the trainers of notebooks 03-04.

    model = train_row(row, cfg, profile="cpu", work_dir=cache_dir("cpu", "06_ablations"))

Budget of every row: ``cfg.base_steps`` of base pretraining on clean segments, then
``cfg.general_steps + 3 * cfg.adapter_steps`` optimizer steps on the training pairs:

* ``lora`` (reference): notebook 04's progressive schedule: control branch and ``general``
  adapter for ``general_steps``, then each specialised adapter for ``adapter_steps``;
* ``adapters=general``: the same number of steps, all spent on ``general`` (the specialised
  adapters stay copies of it, so the detectors' mix has no effect);
* ``full``: every weight of the base U-Net is trained with the control branch, for all the
  pair steps (LoRA adapters stay at their zero start);
* ``scratch``: no pretraining; the randomly initialised U-Net is trained in full for
  ``base_steps`` plus the pair steps, so it gets the same number of optimizer steps.

Bases are cached by what shapes them (representation, mode, frequency attention, losses),
so rows that change only the control branch, the LoRA rank or the adapters share one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stemprover.constants import ADAPTERS
from stemprover.losses import LossConfig

BASE_KEYS = ("representation", "mode", "freq_attention", "formulation")
"""ModelConfig fields that change the pretrained base (the rest live in control/adapters)."""
PHASE_TERMS = ("complex", "phase_cosine", "inst_freq", "mrstft")
"""LossConfig weights set to zero when the phase-aware losses are off."""


def loss_config(phase_losses: bool, base: dict | None = None,
                formulation: str = "bridge") -> LossConfig:
    """The profile's loss (``base``), without the phase-aware terms when they are off.

    An SDEdit row always keeps its denoising objective (``diffusion``), which a bridge
    profile may weigh at zero.
    """
    values = dict(base or {})
    if not phase_losses:
        values.update(dict.fromkeys(PHASE_TERMS, 0.0))
    if formulation == "sdedit":
        values["diffusion"] = 1.0
    return LossConfig(**values)


def _formulation(row: Any, cfg: Any) -> str:
    return dict(row.model).get("formulation", dict(cfg.model).get("formulation", "bridge"))


def _slug(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def common(cfg: Any) -> dict[str, Any]:
    """The profile's common keys and the shared batch settings of every row."""
    return {
        "seed": cfg.seed,
        "sample_rate": cfg.sample_rate,
        "n_fft": cfg.n_fft,
        "hop_length": cfg.hop_length,
        "representation": cfg.representation,
        "batch_size": cfg.batch_size,
        "torch_threads": cfg.torch_threads,
    }


def ensure_base(row: Any, cfg: Any, profile: str, work_dir: Path) -> Path:
    """Pretrain (or reuse) the base model of ``row``; returns its weights folder."""
    from stemprover.train import PretrainConfig, pretrain_base

    model, train = dict(row.model), dict(row.train)
    scratch = train["finetuning"] == "scratch"
    overrides = dict(cfg.model) | {k: model[k] for k in BASE_KEYS if k in model}
    key = {"model": overrides, "phase_losses": train["phase_losses"], "scratch": scratch}
    out_dir = Path(work_dir) / "bases" / _slug(key)
    weights = out_dir / "weights" / "base"
    if not (weights / "stemprover.json").exists():
        pcfg = PretrainConfig(
            **common(cfg),
            steps=0 if scratch else cfg.base_steps,
            warmup_steps=min(5, cfg.base_steps // 4),
            checkpoint_every=0,
            autoencoder_steps=cfg.autoencoder_steps if model.get("mode") == "latent" else 0,
            n_valid=cfg.batch_size,
            loss=loss_config(train["phase_losses"], cfg.loss, _formulation(row, cfg)),
            model=overrides,
        )
        pretrain_base(pcfg, profile, out_dir=out_dir, progress=False)
    return weights


def train_row(row: Any, cfg: Any, profile: str, work_dir: Path):
    """Train the StemProver model of one ablation row and return it (in eval mode, on CPU).

    Args:
        row: An :class:`stemprover.ablations.Row`.
        cfg: An :class:`stemprover.ablations.AblationConfig` (budget and batch size).
        profile: Profile whose ModelConfig, pairs and base data are used.
        work_dir: Folder for bases, checkpoints and logs (under ``build/cache``).
    """
    from stemprover.train import LoraTrainConfig, train_control_lora

    train = dict(row.train)
    base = ensure_base(row, cfg, profile, work_dir)
    out_dir = Path(work_dir) / "rows" / _slug({"model": dict(row.model), "train": train})
    n_specialised = len(ADAPTERS) - 1
    general_only = train["adapters"] == "general" or train["finetuning"] != "lora"
    lcfg = LoraTrainConfig(
        **common(cfg),
        general_steps=cfg.general_steps + (n_specialised * cfg.adapter_steps if general_only else 0),
        adapter_steps=0 if general_only else cfg.adapter_steps,
        warmup_steps=min(5, cfg.general_steps // 4),
        checkpoint_every=0,
        regression=False,
        base=str(base),
        loss=loss_config(train["phase_losses"], cfg.loss, _formulation(row, cfg)),
        model=dict(cfg.model) | dict(row.model),
    )
    if train["finetuning"] == "lora":
        return train_control_lora(lcfg, profile, out_dir=out_dir, progress=False)
    extra = cfg.base_steps if train["finetuning"] == "scratch" else 0
    return train_full(lcfg, profile, base, out_dir, lcfg.general_steps + extra)


def train_full(lcfg: Any, profile: str, base: Path, out_dir: Path, steps: int):
    """Train every base U-Net weight with the control branch and artifact tokens.

    The LoRA adapters are added (so the model has the usual layout) but stay at their zero
    start; the specialised tokens are copied from the trained ``general`` row.
    """
    import torch
    from diffusers import DDPMScheduler

    from stemprover.model import load_base, model_config
    from stemprover.train.config import model_overrides
    from stemprover.train.control_lora import control_parameters
    from stemprover.train.data import default_manifest, load_pairs
    from stemprover.train.loop import CsvLog, PhaseSpec, make_accelerator, run_phase
    from stemprover.train.steps import diffusion_step, loss_for

    train = load_pairs(default_manifest(profile), "train")
    model = load_base(base, model_config(profile, **model_overrides(lcfg)))
    model.add_adapters()
    accelerator = make_accelerator(lcfg.mixed_precision)
    scheduler = None if model.is_bridge else DDPMScheduler.from_config(model.scheduler_config)
    loss_fn = loss_for(model, lcfg.loss).to(accelerator.device)
    params = {f"unet.{k}": p for k, p in model.unet.named_parameters() if "lora_" not in k}
    params.update(control_parameters(model))
    table = model.artifact_embedding.table
    params["artifact_embedding.table"] = table
    spec = PhaseSpec(
        "full", steps, lcfg.batch_size, lcfg.grad_accum, lcfg.learning_rate,
        lcfg.warmup_steps, lcfg.seed, lcfg.checkpoint_every,
    )
    run_phase(
        accelerator, model, params, train,
        lambda batch, gen: diffusion_step(
            model, loss_fn, scheduler, batch, gen, adapter="general",
            mixture_dropout=lcfg.mixture_dropout,
        ),
        spec, Path(out_dir) / "checkpoints", CsvLog(Path(out_dir) / "train_log.csv"),
        None, False,
    )
    with torch.no_grad():
        general = table[1 + ADAPTERS.index("general")].clone()
        for name in ADAPTERS:
            table[1 + ADAPTERS.index(name)] = general
    return model.cpu().eval()

"""Training the grid's models, every one under the same budget, with the trainers of 03-04.

    manifest = training_manifest(cfg.manifest, cfg.heldout_separators, work_dir / "pairs.json")
    folders, trained = train_models(rows, cfg, "cpu", work_dir, manifest)

Every training row gets ``row_minutes`` of wall time, capped at ``row_steps`` optimizer steps
(:func:`stemprover.stages.ablations.grid.row_budget`), on the training pairs of every
separator but the held-out ones. Where it starts:

* 03's base (``cfg.base``), frozen, with the control branch and LoRA adapters trained in 04's
  order (``general``, then each specialised adapter): the reference, ``control=concat`` and
  ``phase_losses=off``;
* 03's base, every weight trained with the control branch: ``finetuning=full``;
* a randomly initialised U-Net, every weight trained: ``finetuning=scratch``;
* a base of its own, pretrained as 03 does for ``own_base_steps`` (not counted in the
  budget, as 03's is not), then as the reference: rows whose network cannot load 03's
  weights (``formulation=sdedit``, a denoiser of clean segments; ``representation=magnitude``,
  a one-channel picture);
* the regression U-Net of the same size, from random weights, as 04 trains it:
  ``formulation=regression``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
from stemprover.model import load_base, model_config
from stemprover.model.adapters import control_parameters
from stemprover.project.config import COMMON_KEYS
from stemprover.project.inputs import require
from stemprover.project.runtime import cpu_threads
from stemprover.project.seed import seed_everything
from stemprover.stages.ablations.grid import AblationConfig, Row, row_budget
from stemprover.stages.base_pretraining import pretrain_base
from stemprover.stages.lora_training import train_control_lora, train_regression
from stemprover.train.config import LoraTrainConfig, PretrainConfig, manifest_path, model_overrides
from stemprover.train.data import load_pairs, read_manifest
from stemprover.train.loop import CsvLog, PhaseSpec, make_accelerator, run_phase
from stemprover.train.losses import LossConfig
from stemprover.train.steps import diffusion_step, loss_for

PHASE_TERMS = ("complex", "phase_cosine", "inst_freq", "mrstft")
"""LossConfig weights set to zero when the phase-aware losses are off."""


def is_heldout(label: str, heldout: list[str]) -> bool:
    """Whether a pair's separator label is held out: named, or a snapshot (``name@step``) of
    a named separator, which shares its architecture and its artifacts."""
    return label in heldout or label.split("@")[0] in heldout


def training_manifest(manifest: str | Path, heldout: list[str], out_path: Path) -> Path:
    """Write the pairs of every separator but ``heldout`` to ``out_path`` (a manifest whose
    files are absolute paths into 02's folder) and return it.

    Raises:
        StemproverError: a held-out label is not a separator of the pairs, or nothing is
            left to train on.
    """
    source = require(str(manifest), "paired dataset", "02_paired_dataset")
    data = read_manifest(source)
    labels = sorted({pair.get("separator", "") for pair in data["pairs"]})
    unknown = [name for name in heldout if not any(is_heldout(label, [name]) for label in labels)]
    if not heldout or unknown:
        raise StemproverError(f"{source}: held-out separator(s) {', '.join(unknown) or '(none)'} "
                              f"not among the pairs' separators: {', '.join(labels)}")
    root = source.parent.resolve()
    kept = [pair | {"file": str(root / pair["file"])} for pair in data["pairs"]
            if not is_heldout(pair.get("separator", ""), heldout)]
    if not any(pair["split"] == "train" for pair in kept):
        raise StemproverError(f"{source}: no training pairs are left without {', '.join(heldout)}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data | {"pairs": kept}))
    return out_path


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


def common(cfg: AblationConfig) -> dict[str, Any]:
    """The profile's common keys and the shared batch settings of every row."""
    keys = ("seed", *COMMON_KEYS, "batch_size", "torch_threads")
    return {key: getattr(cfg, key) for key in keys}


def _slug(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def row_dir(row: Row, work_dir: Path) -> Path:
    return Path(work_dir) / "rows" / _slug({"model": dict(row.model), "train": dict(row.train)})


def _formulation(row: Row, cfg: AblationConfig) -> str:
    return dict(row.model).get("formulation", cfg.model.get("formulation", "bridge"))


def start_base(row: Row, cfg: AblationConfig, profile: str, work_dir: Path,
               manifest: Path) -> Path:
    """The base weights a row starts from: 03's, or one pretrained here (own-base rows:
    ``own_base_steps``; scratch: none, its random start)."""
    finetuning = dict(row.train)["finetuning"]
    if not row.own_base and finetuning != "scratch":
        return require(cfg.base, "base model", "03_base_pretraining")
    out_dir = row_dir(row, work_dir) / "base"
    weights = out_dir / "weights" / "base"
    if not (weights / "stemprover.json").exists():
        pcfg = PretrainConfig(
            **common(cfg),
            steps=0 if finetuning == "scratch" else cfg.own_base_steps,
            learning_rate=cfg.learning_rate,
            warmup_steps=min(20, cfg.own_base_steps // 4),
            checkpoint_every=0,
            n_valid=cfg.batch_size,
            manifest=str(manifest),
            loss=loss_config(dict(row.train)["phase_losses"], cfg.loss, _formulation(row, cfg)),
            model=dict(cfg.model) | dict(row.model),
        )
        pretrain_base(pcfg, profile, out_dir=out_dir, progress=False)
    return weights


def lora_config(row: Row, cfg: AblationConfig, base: Path, manifest: Path) -> LoraTrainConfig:
    """04's config for a row: its budget, loss, model and the pairs without the held-out
    separators; no budget-curve validation, so no phase stops before its budget."""
    return LoraTrainConfig(
        **common(cfg),
        **row_budget(cfg),
        learning_rate=cfg.learning_rate,
        warmup_steps=min(20, cfg.row_steps // 10),
        checkpoint_every=0,
        general_share=cfg.general_share,
        regression=False,
        base=str(base),
        manifest=str(manifest),
        loss=loss_config(dict(row.train)["phase_losses"], cfg.loss, _formulation(row, cfg)),
        model=dict(cfg.model) | dict(row.model),
    )


def train_row(row: Row, cfg: AblationConfig, profile: str, work_dir: Path, manifest: Path):
    """Train the model of one row under the grid's budget; returns it (eval mode, on CPU)."""
    out_dir = row_dir(row, work_dir)
    base = start_base(row, cfg, profile, work_dir, manifest)
    lcfg = lora_config(row, cfg, base, manifest)
    finetuning = dict(row.train)["finetuning"]
    if finetuning == "lora":
        return train_control_lora(lcfg, profile, out_dir=out_dir, progress=False)
    if finetuning == "regression":
        return train_regression(lcfg, profile, base=base, out_dir=out_dir, progress=False)
    return train_full(lcfg, profile, base, out_dir, cfg.row_steps, cfg.row_minutes)


def train_full(lcfg: LoraTrainConfig, profile: str, base: Path, out_dir: Path, steps: int,
               minutes: float):
    """Train every base U-Net weight with the control branch and artifact tokens.

    The LoRA adapters are added (so the model has the usual layout) but stay at their zero
    start; the specialised tokens are copies of the trained ``general`` row.
    """
    seed_everything(lcfg.seed)  # the adapters' random start: the same in any process or order
    train = load_pairs(manifest_path(lcfg), "train")
    model = load_base(base, model_config(profile, **model_overrides(lcfg)))
    model.add_adapters()
    accelerator = make_accelerator(lcfg.mixed_precision)
    scheduler = None if model.is_bridge else DDPMScheduler.from_config(model.scheduler_config)
    loss_fn = loss_for(model, lcfg.loss).to(accelerator.device)
    params = {f"unet.{k}": p for k, p in model.unet.named_parameters() if "lora_" not in k}
    params.update(control_parameters(model))
    table = model.artifact_embedding.table
    params["artifact_embedding.table"] = table
    spec = PhaseSpec("full", steps, lcfg.batch_size, lcfg.grad_accum, lcfg.learning_rate,
                     lcfg.warmup_steps, lcfg.seed, lcfg.checkpoint_every, max_minutes=minutes)
    run_phase(
        accelerator, model, params, train,
        lambda batch, gen: diffusion_step(model, loss_fn, scheduler, batch, gen,
                                          adapter="general",
                                          mixture_dropout=lcfg.mixture_dropout),
        spec, Path(out_dir) / "checkpoints", CsvLog(Path(out_dir) / "train_log.csv"),
        None, False,
    )
    with torch.no_grad():
        general = table[1 + ADAPTERS.index("general")].clone()
        for name in ADAPTERS:
            table[1 + ADAPTERS.index(name)] = general
    return model.cpu().eval()


def steps_reached(log_path: Path) -> int:
    """Optimizer steps a row took: the last step of each phase in its ``train_log.csv``."""
    last: dict[str, int] = {}
    for entry in CsvLog(log_path).rows():
        last[entry["phase"]] = max(last.get(entry["phase"], 0), int(entry["step"]))
    return sum(last.values())


def _row_task(row: Row, cfg: AblationConfig, profile: str, work_dir: Path,
              manifest: Path) -> tuple[str, dict[str, float]]:
    """Train the model of ``row`` and save it; returns its folder, seconds and steps."""
    with cpu_threads(cfg.torch_threads):
        start_base(row, cfg, profile, work_dir, manifest)  # outside the row's time
        start = time.perf_counter()
        model = train_row(row, cfg, profile, work_dir, manifest)
        spent = round(time.perf_counter() - start, 2)
        folder = row_dir(row, work_dir) / "model"
        model.save_pretrained(folder)
        steps = steps_reached(row_dir(row, work_dir) / "train_log.csv")
        return str(folder), {"train_seconds": spent, "train_steps": steps}


def train_models(rows: list[Row], cfg: AblationConfig, profile: str, work_dir: Path,
                 manifest: Path) -> tuple[dict[tuple, Path], dict[tuple, dict[str, float]]]:
    """Train every distinct model of ``rows`` in ``cfg.workers`` processes and save it.

    Every row seeds its own training, so the models do not depend on the number of workers
    or the order they run in (with a time budget, on how fast each ran).

    Returns:
        ``(folders, trained)`` by ``train_key``: where each model is saved, and its
        ``train_seconds`` and ``train_steps``.
    """
    models: dict[tuple, Row] = {}
    for row in rows:
        models.setdefault(row.train_key, row)
    # rows that pretrain a base of their own first start first, so the workers finish together
    todo = sorted(models.values(), key=lambda row: not row.own_base)
    done: dict[tuple, tuple[str, dict[str, float]]] = {}
    bar = tqdm(total=len(todo), desc="ablation models", unit="model")
    if cfg.workers <= 1:
        for row in todo:
            done[row.train_key] = _row_task(row, cfg, profile, work_dir, manifest)
            bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cfg.workers, mp_context=context) as pool:
            futures = {pool.submit(_row_task, row, cfg, profile, work_dir, manifest): row.train_key
                       for row in todo}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update(1)
    bar.close()
    return ({key: Path(folder) for key, (folder, _) in done.items()},
            {key: spent for key, (_, spent) in done.items()})
